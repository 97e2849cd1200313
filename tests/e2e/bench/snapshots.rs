//! Snapshot runs at scale on the local cluster, as `make bench` rows (nothing asserted about
//! speed): P1, the application's freeze window with a held session hook for 32 PVCs against 1
//! PVC (medians of several runs); P5, the API requests one snapshot run of N PVCs makes, as
//! the API server's log of the `kentledge` ServiceAccount's requests counts them, against the
//! goal 3N + 10, for 1, 32 and 100 PVCs, and P6's peak memory of the 100-PVC run (`SHOW_REQUESTS=1` prints each run's requests, `SHOW_LOG=<filter>` its log). Next to P1, each window against the floor the local snapshot driver sets:
//! the time it alone needs to cut as many snapshots created at once (it runs on the same cores
//! as everything else here, so its cost grows with N where a real CSI driver's would not).
//! And P1 once more with every cut waiting [`STORAGE_CUT_SECONDS`] first, in parallel, as a real driver
//! waits on its storage: the window then shows what kentledge adds per PVC beside a cut that
//! costs what a real one does.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use kentledge::model::snapshots::VolumeSnapshot;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

use super::{median, row};
use crate::cluster::TestCluster;
use crate::support::run_measured;

/// Runs per measure (the median is printed).
const RUNS: usize = 5;

/// The cut latency of the P1 rows that model a storage backend: a real driver's CreateSnapshot
/// waits on its storage (about 2 s of a Ceph RBD cut was the CSI call in
/// kubernetes-csi/external-snapshotter#326), in parallel for every snapshot; the local driver
/// waits as long (its class's `cutDelay`) and then cuts as it always does.
const STORAGE_CUT_SECONDS: u64 = 1;

/// The config `scale-storage` beside `scale`: the same snapshot run of `n` PVCs, its snapshots
/// of a class whose cuts take [`STORAGE_CUT_SECONDS`].
fn with_storage_latency(tc: &TestCluster, n: usize) -> std::path::PathBuf {
    let delay = format!("{STORAGE_CUT_SECONDS}s");
    crate::snapshot::slow_class(tc, "storage", "cutDelay", &delay);
    tc.config("scale-storage", &held(n, Some("storage")))
}

/// A namespace with `n` PVCs and a pod a session hook holds frozen, and the config's path.
fn frozen(namespace: &str, n: usize) -> (TestCluster, std::path::PathBuf) {
    let tc = TestCluster::start(namespace);
    for i in 0..n {
        tc.pvc_with_files(&format!("data-{i:03}"), &[], &[("f.txt", "some data\n")]);
    }
    tc.sleeper("app", &[("app", "frozen")], &[], &[]);
    let cfg = tc.config("scale", &held(n, None));
    (tc, cfg)
}

/// The snapshots spec of the PVCs `data-000`… of [`frozen`], a session hook holding the pod
/// frozen, and a VolumeSnapshotClass when one is named.
fn held(n: usize, class: Option<&str>) -> String {
    let targets: Vec<String> = (0..n).map(|i| format!("{{pvc: data-{i:03}}}")).collect();
    let class = class
        .map(|c| format!("    volumeSnapshotClassName: {c}\n"))
        .unwrap_or_default();
    format!(
        r#"  snapshots:
{class}    targets: [{}]
    hooks:
      - name: hold
        pod: {{selector: {{matchLabels: {{app: frozen}}}}}}
        session:
          command: [sh]
          pre: "echo kentledge-frozen"
          readyMarker: kentledge-frozen
          post: "exit 0"
        timeout: 30s
"#,
        targets.join(", ")
    )
}

/// One snapshot run: its freeze window in seconds, the requests kentledge made, the
/// VolumeSnapshotClass it used, and the run's peak resident memory in bytes.
fn snapshot_run(tc: &TestCluster, cfg: &std::path::Path, n: usize) -> (f64, usize, String, u64) {
    let before = tc.kentledge_requests().len();
    let mut cmd = tc.kentledge(cfg);
    if let Ok(filter) = std::env::var("SHOW_LOG") {
        cmd.env("KENTLEDGE_LOG", filter);
    }
    let (r, rss) = run_measured(cmd.args(["snapshot", "-o", "json"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    if std::env::var("SHOW_LOG").is_ok() {
        eprintln!("{n}: {}", r.stderr);
    }
    let all = tc.kentledge_requests();
    let requests = all.len() - before;
    if std::env::var("SHOW_REQUESTS").is_ok() {
        eprintln!("{n}: {:#?}", &all[before..]);
    }
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["snapshots"].as_array().map(Vec::len), Some(n), "{v}");
    let name = v["snapshots"][0]["name"].as_str().unwrap().to_owned();
    let api: Api<VolumeSnapshot> = Api::namespaced(tc.client(), &tc.namespace);
    let class = tc
        .block_on(api.get(&name))
        .unwrap()
        .spec
        .volume_snapshot_class_name
        .unwrap();
    let window = v["freeze_window_seconds"]
        .as_f64()
        .expect("a freeze window");
    (window, requests, class, rss)
}

/// What the local cluster's snapshot driver alone needs for `n` cuts: `n` VolumeSnapshots
/// created at once by a plain client until the last has its `creationTime` (polled every 5 ms),
/// in seconds. The floor under any freeze window of `n` PVCs here.
fn driver_floor(tc: &TestCluster, class: &str, n: usize, round: usize) -> f64 {
    let api: Api<VolumeSnapshot> = Api::namespaced(tc.client(), &tc.namespace);
    let label = format!("floor-{round}");
    tc.block_on(async {
        let started = Instant::now();
        let creates = (0..n).map(|i| {
            let vs: VolumeSnapshot = serde_json::from_value(json!({
                "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                "metadata": {"name": format!("{label}-{i:03}"), "labels": {"bench": label}},
                "spec": {"volumeSnapshotClassName": class,
                         "source": {"persistentVolumeClaimName": format!("data-{i:03}")}}}))
            .unwrap();
            let api = api.clone();
            async move { api.create(&PostParams::default(), &vs).await.unwrap() }
        });
        join_all(creates).await;
        let lp = ListParams::default().labels(&format!("bench={label}"));
        loop {
            let list = api.list(&lp).await.unwrap().items;
            if list.len() == n
                && list
                    .iter()
                    .all(|v| v.status.as_ref().is_some_and(|s| s.creation_time.is_some()))
            {
                return started.elapsed().as_secs_f64();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

#[test]
#[ignore = "a benchmark: make bench"]
fn p1_p5_freeze_window_and_requests_of_snapshot_runs_by_pvc_count() {
    let mut windows = BTreeMap::new();
    let mut floors = BTreeMap::new();
    let mut modelled = BTreeMap::new();
    let mut requests = BTreeMap::new();
    for n in [1usize, 32] {
        let (tc, cfg) = frozen(&format!("scale-{n}"), n);
        let storage = with_storage_latency(&tc, n);
        let (mut w, mut f, mut m) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..RUNS {
            let (window, made, class, _) = snapshot_run(&tc, &cfg, n);
            w.push(window);
            requests.insert(n, made);
            f.push(driver_floor(&tc, &class, n, round));
            let (window, _, class, _) = snapshot_run(&tc, &storage, n);
            assert_eq!(class, "storage");
            assert!(
                window >= STORAGE_CUT_SECONDS as f64,
                "a window shorter than the cut latency: {window} s"
            );
            m.push(window);
        }
        windows.insert(n, median(w));
        floors.insert(n, median(f));
        modelled.insert(n, median(m));
    }
    row(
        "P1 freeze window, 32 PVCs vs 1 (held session)",
        windows[&32] * 1000.0,
        windows[&1] * 1000.0,
        "ms",
        "<= 1.3x",
    );
    row(
        &format!("P1 the same, cuts of {STORAGE_CUT_SECONDS}s as on real storage"),
        modelled[&32] * 1000.0,
        modelled[&1] * 1000.0,
        "ms",
        "<= 1.3x",
    );
    for n in [1, 32] {
        row(
            &format!("P1 freeze window, {n} PVCs vs the driver's {n} cuts"),
            windows[&n] * 1000.0,
            floors[&n] * 1000.0,
            "ms",
            "(the local driver's own cost)",
        );
    }
    // 100 PVCs once: requests and the run's peak memory (P6).
    let (tc, cfg) = frozen("scale-100", 100);
    let (_, made, _, rss) = snapshot_run(&tc, &cfg, 100);
    requests.insert(100, made);
    drop(tc);
    row(
        "P6 peak RSS, snapshot run of 100 PVCs vs 50 MB",
        rss as f64 / 1e6,
        50.0,
        "MB",
        "<= 1.0x",
    );
    for (n, made) in requests {
        row(
            &format!("P5 API requests, snapshot of {n} PVCs vs 3N+10"),
            made as f64,
            (3 * n + 10) as f64,
            "req",
            "<= 1.0x",
        );
    }
}
