//! `kentledge restore volume` into new PVCs on the local test cluster with real engines: the
//! tricky tree comes back entry by entry from a snapshot, a borg archive and a restic archive;
//! every refusal (a time before the first archive, an archive of another PVC, a snapshot that is
//! not ready, an existing target, an unreachable repository) changes nothing.

use std::path::Path;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::Api;
use serde_json::{Value, json};

use kentledge::model::snapshots::VolumeSnapshot;

use crate::backup::leftovers;
use crate::cluster::TestCluster;
use crate::list::backed_up;
use crate::support::run;
use crate::tree;

fn pvc_exists(tc: &TestCluster, name: &str) -> bool {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(tc.client(), &tc.namespace);
    tc.block_on(api.get_opt(name)).unwrap().is_some()
}

fn json_of(r: &crate::support::Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", r.stdout, r.stderr))
}

/// A restore that must fail and change nothing.
fn refused(tc: &TestCluster, cfg: &Path, args: &[&str], says: &str) {
    let r = run(tc
        .kentledge(cfg)
        .args(["restore", "volume", "data"])
        .args(args));
    assert_eq!(r.code, 1, "{args:?}: {}{}", r.stdout, r.stderr);
    eprintln!(
        "{args:?}: {}",
        r.stderr
            .lines()
            .filter(|l| l.contains("error") || l.starts_with("  "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    assert!(
        r.stderr.contains("nothing was changed"),
        "{args:?}: {}",
        r.stderr
    );
    assert!(!pvc_exists(tc, "restored"), "{args:?} made the PVC");
    assert!(leftovers(tc).is_empty(), "{args:?}: {:?}", leftovers(tc));
}

#[test]
fn new_pvcs_from_a_snapshot_and_from_borg_and_restic_archives_equal_the_source() {
    let mut source = None;
    let (tc, spec, snap) = backed_up("shop", |d| {
        tree::build(d);
        source = Some(d.to_owned());
    });
    let data = source.unwrap();
    let cfg = tc.config("shop", &spec);

    // A dry run names the source and the new PVC and writes nothing.
    let before = tc.kentledge_requests().len();
    let r = run(tc.kentledge(&cfg).args([
        "restore",
        "volume",
        "data",
        "--snapshot",
        &snap,
        "--to",
        "from-snap",
        "--dry-run",
    ]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&snap) && r.stdout.contains("from-snap"),
        "{}",
        r.stdout
    );
    tc.assert_only_reads_since(before, "a dry run writes nothing");

    let r = run(tc.kentledge(&cfg).args([
        "restore",
        "volume",
        "data",
        "--snapshot",
        &snap,
        "--to",
        "from-snap",
        "-o",
        "json",
    ]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = json_of(&r);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["bound"], true, "{v}");
    tree::assert_same(&data, &tc.volume_dir("from-snap"));
    let said = crate::support::events_of(&tc, "PersistentVolumeClaim", "from-snap");
    assert!(
        said.iter().any(|(t, r, m, _)| t == "Normal"
            && r == "Restored"
            && m.contains("restored from the data of data")
            && m.contains(&snap)),
        "a Normal Restored Event on the new PVC: {said:?}"
    );

    // A class that binds on first use is reported, not waited for.
    let sc: k8s_openapi::api::storage::v1::StorageClass = serde_json::from_value(json!({
        "metadata": {"name": "late"}, "provisioner": kentledge_nodeagents::storage::DRIVER,
        "volumeBindingMode": "WaitForFirstConsumer"}))
    .unwrap();
    tc.block_on(
        Api::<k8s_openapi::api::storage::v1::StorageClass>::all(tc.client())
            .create(&Default::default(), &sc),
    )
    .unwrap();
    let r = run(tc.kentledge(&cfg).args([
        "restore",
        "volume",
        "data",
        "--snapshot",
        &snap,
        "--to",
        "late-pvc",
        "--storage-class",
        "late",
    ]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("is not bound yet"), "{}", r.stdout);
    assert!(pvc_exists(&tc, "late-pvc"));

    for (repo, to) in [("borg-local", "from-borg"), ("restic-local", "from-restic")] {
        let r = run(tc.kentledge(&cfg).args([
            "restore",
            "volume",
            "data",
            "--repository",
            repo,
            "--to",
            to,
            "--dry-run",
        ]));
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("extracts"), "{}", r.stdout);
        assert!(!pvc_exists(&tc, to), "a dry run makes no PVC");
        let r = run(tc.kentledge(&cfg).args([
            "restore",
            "volume",
            "data",
            "--repository",
            repo,
            "--to",
            to,
            "-o",
            "json",
        ]));
        assert_eq!(r.code, 0, "{repo}: {}{}", r.stdout, r.stderr);
        let v = json_of(&r);
        let restored = &v["restored"];
        assert_eq!(restored["entries"], restored["expectedEntries"], "{v}");
        assert_eq!(restored["bytes"], restored["expectedBytes"], "{v}");
        assert!(restored["entries"].as_u64().unwrap() > 10, "{v}");
        let dir = tc.volume_dir(to);
        tree::assert_same(&data, &dir);
        let sparse = tree::is_sparse(&dir.join("sparse.img"));
        if repo == "borg-local" {
            assert!(sparse, "borg keeps holes");
            assert_eq!(restored["sparse"], true);
        } else {
            // restic 0.14 cannot write holes; newer versions do (--sparse).
            assert_eq!(restored["sparse"], sparse, "{v}");
        }
        let labels = tc
            .block_on(Api::<PersistentVolumeClaim>::namespaced(tc.client(), &tc.namespace).get(to))
            .unwrap()
            .metadata;
        assert!(
            !labels
                .labels
                .unwrap_or_default()
                .contains_key("kentledge.io/role"),
            "a finished restore is no longer a restore target (a sweep would delete it)"
        );
        assert!(
            labels.annotations.unwrap_or_default()["kentledge.io/restored-from"].starts_with(repo),
        );
    }
    // SIGTERM while the mover fills the new PVC: the half-filled PVC is deleted, nothing is left.
    let child = tc
        .kentledge(&cfg)
        .args([
            "restore",
            "volume",
            "data",
            "--repository",
            "borg-local",
            "--to",
            "cut-short",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tc.wait(60, "the new PVC and its mover", || {
        (pvc_exists(&tc, "cut-short") && leftovers(&tc).iter().any(|l| l.starts_with("pod/")))
            .then_some(())
    });
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(143),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("was deleted"), "{stdout}");
    assert!(!pvc_exists(&tc, "cut-short"), "the half-filled PVC is gone");
    assert!(leftovers(&tc).is_empty(), "{:?}", leftovers(&tc));

    let r = run(tc.kentledge(&cfg).args([
        "restore",
        "volume",
        "data",
        "--repository",
        "restic-local",
        "--to",
        "again",
    ]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("verified"), "{}", r.stdout);
    eprintln!("{}", r.stdout);
    assert!(leftovers(&tc).is_empty(), "{:?}", leftovers(&tc));
}

#[test]
fn refused_restores_change_nothing() {
    let (tc, spec, snap) = backed_up("shop", |d| std::fs::write(d.join("a.txt"), "a\n").unwrap());
    // A second series, `logs`, with its own archive and snapshot.
    tc.pvc_with_files("logs", &[], &[("l.txt", "log\n")]);
    let spec = spec
        .replace("targets: [{pvc: data}]", "targets: [{pvc: data}, {pvc: logs}]")
        .replace(
            "  offsite:",
            "    - name: nowhere\n      restic:\n        repository: rest:http://127.0.0.1:9/\n        password: {secret: repo-pass, key: passphrase}\n  offsite:",
        );
    let cfg = tc.config("shop", &spec);
    let r = run(tc.kentledge(&cfg).args(["snapshot", "--target", "logs"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r =
        run(tc
            .kentledge(&cfg)
            .args(["backup", "--target", "logs", "--repository", "borg-local"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let listed = json_of(&run(tc
        .kentledge(&cfg)
        .args(["list", "-o", "json", "--series", "logs"])));
    let logs_archive = listed["series"][0]["archives"][0]["archive"]
        .as_str()
        .unwrap()
        .to_owned();
    let logs_snap = listed["series"][0]["snapshots"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();

    refused(
        &tc,
        &cfg,
        &[
            "--repository",
            "borg-local",
            "--as-of",
            "2001-01-01T00:00:00Z",
            "--to",
            "restored",
        ],
        "taken at or before",
    );
    refused(
        &tc,
        &cfg,
        &[
            "--repository",
            "borg-local",
            "--archive",
            &logs_archive,
            "--to",
            "restored",
        ],
        "not of PVC data",
    );
    refused(
        &tc,
        &cfg,
        &["--snapshot", &logs_snap, "--to", "restored"],
        "not of data",
    );
    refused(
        &tc,
        &cfg,
        &["--repository", "nowhere", "--to", "restored"],
        "could not be listed",
    );
    // A snapshot of this config that is not ready (its class fails every snapshot).
    tc.block_on(async {
        let class = kube::discovery::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk(
                "snapshot.storage.k8s.io",
                "v1",
                "VolumeSnapshotClass",
            ),
            "volumesnapshotclasses",
        );
        let obj: kube::core::DynamicObject = serde_json::from_value(json!({
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
            "metadata": {"name": "broken"}, "driver": "hostpath.csi.kentledge.io",
            "deletionPolicy": "Delete", "parameters": {"fail": "disk on fire"},
        }))
        .unwrap();
        Api::<kube::core::DynamicObject>::all_with(tc.client(), &class)
            .create(&Default::default(), &obj)
            .await
            .unwrap();
    });
    let _: VolumeSnapshot = tc.create(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": "data-broken", "labels": {"kentledge.io/config": "shop", "app.kubernetes.io/managed-by": "kentledge"}},
        "spec": {"source": {"persistentVolumeClaimName": "data"}, "volumeSnapshotClassName": "broken"},
    }));
    refused(
        &tc,
        &cfg,
        &["--snapshot", "data-broken", "--to", "restored"],
        "not ready",
    );
    // An existing target is refused before anything is read.
    let r = run(tc.kentledge(&cfg).args([
        "restore",
        "volume",
        "data",
        "--snapshot",
        &snap,
        "--to",
        "logs",
    ]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("a PVC of that name exists"),
        "{}",
        r.stderr
    );
    // Bad arguments are usage errors, before any API call.
    let r = run(tc.kentledge(&cfg).args([
        "restore",
        "volume",
        "data",
        "--repository",
        "nope",
        "--to",
        "x",
    ]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = run(tc.kentledge(&cfg).args([
        "restore",
        "volume",
        "data",
        "--snapshot",
        &snap,
        "--to",
        "data",
    ]));
    assert_eq!(r.code, 2, "{}", r.stderr);
}
