//! When the mover pods' logs cannot be read (a kubelet that refuses log requests, or one that
//! cuts the stream short), kentledge does not report results it never saw: a copy is "result
//! unknown", no `backed-up` label is written on a guess, a repository prune's decisions are
//! unknown and the exit code says so, and a check (whose result is its exit code) still passes
//! with a note. The movers did their work all the same, which the repositories show.

use std::path::Path;

use kentledge_nodeagents::node::LogFault;
use kube::api::{Api, ListParams};
use serde_json::Value;

use crate::backup::{
    borg, empty_pvc, has_event, leftovers, only_snapshot, passphrase_secret, pvc_repository,
    restic, snapshot_labels,
};
use crate::cluster::TestCluster;
use crate::support::{Run, run};
use kentledge::k8s::snapshots::VolumeSnapshot;

fn json(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", r.stdout, r.stderr))
}

fn borg_archives(repo: &Path) -> usize {
    let work = tempfile::tempdir().unwrap();
    let list: Value = serde_json::from_str(&borg(
        &["list", "--json", repo.to_str().unwrap()],
        work.path(),
        &work.path().join("base"),
    ))
    .unwrap();
    list["archives"].as_array().unwrap().len()
}

fn restic_snapshots(repo: &Path) -> usize {
    let list: Value = serde_json::from_str(&restic(
        repo.to_str().unwrap(),
        &["snapshots", "--json"],
        &[],
    ))
    .unwrap();
    list.as_array().unwrap().len()
}

/// Every copy of a backup run is reported as unknown, with `why` in its result.
fn assert_all_unknown(r: &Run, why: &str) {
    assert_eq!(r.code, 1, "no copy was confirmed: {}{}", r.stdout, r.stderr);
    let report = json(r);
    let jobs = report["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{report}");
    for j in jobs {
        assert_eq!(j["ok"], false, "{j}");
        assert_eq!(j["outcome"], "unknown", "{j}");
        let result = j["result"].as_str().unwrap();
        assert!(
            result.starts_with("result unknown: could not read the mover's log")
                && result.contains(why),
            "{result}"
        );
    }
}

#[test]
fn unreadable_mover_logs_make_results_unknown_never_ok() {
    let tc = TestCluster::start("shop");
    passphrase_secret(&tc);
    tc.pvc_with_files("data", &[], &[("file", "precious\n")]);
    let repos = empty_pvc(&tc, "repos");
    let cfg = tc.config(
        "shop",
        &format!(
            "  snapshots:\n    targets: [{{pvc: data}}]\n  repositories:\n{}      retention: {{last: 1}}\n{}      retention: {{last: 1}}\n  offsite:\n    volumes:\n      repositories: [borg, restic]\n",
            pvc_repository("borg", "borg", "borg", &["init: true"]),
            pvc_repository("restic", "restic", "restic", &["init: true"]),
        ),
    );
    assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
    let snap = only_snapshot(&tc);

    // The kubelet refuses every log request: the copies happen, but are not confirmed.
    tc.faults().set_logs(LogFault::Refuse);
    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_all_unknown(&r, "refuses log requests");
    assert_eq!(borg_archives(&repos.join("borg")), 1, "the mover did copy");
    assert_eq!(
        restic_snapshots(&repos.join("restic")),
        1,
        "the mover did copy"
    );
    let labels = snapshot_labels(&tc, &snap);
    assert!(
        !labels.keys().any(|k| k.starts_with("backed-up.")),
        "no backed-up label on a guess: {labels:?}"
    );
    assert!(leftovers(&tc).is_empty(), "{:?}", leftovers(&tc));
    assert!(
        has_event(&tc, "BackupResultUnknown", "data"),
        "an Event on the PVC says the copy was not confirmed"
    );

    // A log cut after its first line is not a complete result either (of a new snapshot, so
    // that borg makes a new archive rather than finding the first one).
    tc.faults().set_logs(LogFault::None);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
    let newest = newest_snapshot(&tc);
    assert_ne!(newest, snap);
    tc.faults().set_logs(LogFault::Cut);
    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_all_unknown(&r, "the log ended before the mover's last line");
    assert_eq!(borg_archives(&repos.join("borg")), 2);
    assert_eq!(restic_snapshots(&repos.join("restic")), 2);

    // Repository prune (last: 1) with refused logs: the movers delete, the decisions are unknown.
    tc.faults().set_logs(LogFault::Refuse);
    let r = run(tc.kentledge(&cfg).args(["prune", "--only", "repositories"]));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    for repo in ["borg", "restic"] {
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("repository {repo} ")))
            .unwrap_or_else(|| panic!("{}", r.stdout));
        assert!(
            line.contains("result unknown: could not read the mover's log")
                && line.contains("is not known"),
            "{line}"
        );
        assert!(!line.contains("0 archive(s)"), "{line}");
    }
    assert_eq!(borg_archives(&repos.join("borg")), 1, "the mover did prune");
    assert_eq!(
        restic_snapshots(&repos.join("restic")),
        1,
        "the mover did prune"
    );

    // A check's result is its exit code: it passes, and says the log was not read.
    let r = run(tc
        .kentledge(&cfg)
        .args(["check", "--repositories", "-o", "json"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for rec in json(&r)["repositories"].as_array().unwrap() {
        assert_eq!(rec["outcome"], "ok", "{rec}");
        assert!(
            rec["result"]
                .as_str()
                .unwrap()
                .contains("its log could not be read"),
            "{rec}"
        );
    }

    // With logs readable again, the copy is confirmed (borg finds the archive the unconfirmed
    // run made; restic makes another snapshot) and labelled.
    tc.faults().set_logs(LogFault::None);
    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let labels = snapshot_labels(&tc, &newest);
    assert!(
        labels.contains_key("backed-up.kentledge.io/borg")
            && labels.contains_key("backed-up.kentledge.io/restic"),
        "{labels:?}"
    );
    assert!(leftovers(&tc).is_empty(), "{:?}", leftovers(&tc));
}

/// The name of the snapshot cut last.
fn newest_snapshot(tc: &TestCluster) -> String {
    let api: Api<VolumeSnapshot> = Api::namespaced(tc.client(), &tc.namespace);
    let list = tc.block_on(api.list(&ListParams::default())).unwrap().items;
    list.into_iter()
        .max_by_key(|s| {
            s.status
                .as_ref()
                .and_then(|st| st.creation_time.clone())
                .map(|t| t.0)
        })
        .and_then(|s| s.metadata.name)
        .unwrap()
}
