//! The API server restarts in the middle of a run (as a control-plane upgrade restarts
//! kube-apiserver while etcd keeps the data): every connection, watch and log stream is cut,
//! connections are refused for a few seconds, then the same objects are served again. A run
//! either rides the restart out or stops with a plain error; either way it leaves nothing
//! behind, releases its Lease, and the next run works. Phases are the log events kentledge
//! emits, as in [`crate::signals`].

use std::time::Duration;

use crate::backup::leftovers;
use crate::cluster::TestCluster;
use crate::signals::{
    BACKUP_PHASES, archive_equals, backup_fixture, copied, copies_next_time, holder,
};
use crate::support::{Run, act_when, run};

/// How long nothing listens.
const DOWN: Duration = Duration::from_secs(3);

/// Runs `cmd`, restarting the API server once `event` is logged.
fn restart_at(tc: &TestCluster, cmd: &mut std::process::Command, event: &str) -> Run {
    act_when(cmd, event, || true, |_| tc.restart_api(DOWN), 180)
}

#[test]
fn an_api_server_restart_in_each_phase_of_a_backup_leaves_nothing_and_the_next_run_copies() {
    let (tc, cfg, data) = backup_fixture("apibackup");
    let lease = "kentledge-apibackup-backup";
    for (phase, event) in BACKUP_PHASES {
        assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
        let r = restart_at(&tc, tc.kentledge(&cfg).arg("backup"), event);
        assert!(
            r.code == 0 || r.code == 1,
            "{phase}: exit {}\n{}",
            r.code,
            r.stderr
        );
        assert!(
            leftovers(&tc).is_empty(),
            "{phase}: left behind: {:?}",
            leftovers(&tc)
        );
        assert_eq!(holder(&tc, lease), None, "{phase}: the Lease is released");
        if r.code == 0 {
            assert!(copied(&tc), "{phase}: a run that exits 0 copied");
        }
        copies_next_time(&tc, &cfg, phase);
    }
    archive_equals(&tc, &data);
}

#[test]
fn an_api_server_restart_while_a_session_holds_the_application_frozen_keeps_no_unfrozen_snapshot() {
    use crate::snapshot::{FLOCK_SESSION, frozen, slow_class, snapshots};
    let tc = TestCluster::start("apisession");
    let data = tc.pvc_with_files("data", &[], &[]);
    tc.sleeper("app", &[], &[], &["data"]);
    slow_class(&tc, "slow-cut", "cutDelay", "6s");
    let cfg = tc.config(
        "apisession",
        &format!("  snapshots:\n    volumeSnapshotClassName: slow-cut\n    targets: [{{pvc: data}}]\n{FLOCK_SESSION}"),
    );
    // The restart cuts the session's exec stream while the driver has not cut yet: the
    // application is released then, and the snapshot (cut seconds later) is not consistent.
    let r = restart_at(
        &tc,
        tc.kentledge(&cfg).args(["snapshot", "-o", "json"]),
        "VolumeSnapshot created",
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("the held session ended before it was finished"),
        "{}",
        r.stderr
    );
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let snapshot = &doc["snapshots"][0];
    assert_eq!(snapshot["deleted"], true, "{doc}");
    assert!(
        snapshot["error"].as_str().unwrap().contains(
            "not cut while the application was frozen: the held session of hook hold ended first"
        ),
        "{doc}"
    );
    let post = doc["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["phase"] == "post")
        .unwrap();
    assert!(
        post["result"]
            .as_str()
            .unwrap()
            .contains("no post command was sent"),
        "{doc}"
    );
    assert!(!frozen(&data), "the application is not left frozen");
    assert!(
        !data.join("post").exists(),
        "the post command could not be sent"
    );
    tc.wait(20, "the inconsistent snapshot to be gone", || {
        snapshots(&tc).is_empty().then_some(())
    });
    // The next run works: frozen, cut, thawed.
    let again = run(tc.kentledge(&cfg).arg("snapshot"));
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert_eq!(
        std::fs::read_to_string(data.join("post")).unwrap(),
        "thawed\n"
    );
    assert_eq!(snapshots(&tc).len(), 1);
}
