//! The API server restarts in the middle of a run (as a control-plane upgrade restarts
//! kube-apiserver while etcd keeps the data): every connection, watch and log stream is cut,
//! connections are refused for a few seconds, then the same objects are served again. A run
//! either rides the restart out or stops with a plain error; either way it leaves nothing
//! behind, releases its Lease, and the next run works. Phases are the log events kentledge
//! emits, as in [`crate::signals`]: a backup in each phase, a snapshot while a session holds
//! the application frozen, a prune while it deletes, a restore while it fills a new PVC.

use std::time::Duration;

use crate::backup::leftovers;
use crate::cluster::TestCluster;
use crate::signals::{
    BACKUP_PHASES, RESTORE_TO_COPY, archive_equals, backup_fixture, copied, copies_next_time,
    filling, holder, restore_fixture,
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

#[test]
fn an_api_server_restart_while_prune_deletes_then_the_policy_is_finished() {
    use crate::prune::{NOW, hourly, labels, setup};
    let tc = setup("apiprune", &["data"]);
    let names = hourly(&tc, "apiprune", "data", 40);
    let cfg = tc.config(
        "apiprune",
        "  snapshots:\n    targets: [{pvc: data}]\n    retention: {last: 1}\n    deleteAfter: 1h\n    maxDeletesPerSecond: 4\n",
    );
    let r = run(tc.kentledge(&cfg).args(["prune", "--now", NOW]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let later = "2026-11-22T15:00:00Z";
    // Deleting 39 snapshots at 4 a second: the restart lands in the middle.
    let r = restart_at(
        &tc,
        tc.kentledge(&cfg).args(["prune", "--now", later]),
        "INFO deleted",
    );
    assert!(r.code == 0 || r.code == 1, "exit {}\n{}", r.code, r.stderr);
    eprintln!("prune through a restart: exit {}", r.code);
    assert_eq!(
        holder(&tc, "kentledge-apiprune"),
        None,
        "the Lease is released"
    );
    let left = labels(&tc);
    assert!(left.contains_key(&names[0]), "the kept one stays");
    if r.code == 0 {
        assert_eq!(left.len(), 1, "a run that exits 0 finished: {left:?}");
    }
    let again = run(tc.kentledge(&cfg).args(["prune", "--now", later]));
    assert_eq!(again.code, 0, "{}", again.stderr);
    let left: Vec<String> = labels(&tc).into_keys().collect();
    assert_eq!(left, [names[0].clone()], "exactly what the policy keeps");
}

#[test]
fn an_api_server_restart_while_a_restore_fills_a_new_pvc_leaves_a_whole_copy_or_nothing() {
    let (tc, cfg, data) = restore_fixture("apirestore");
    let r = act_when(
        tc.kentledge(&cfg).args(RESTORE_TO_COPY),
        "creating the new PVC",
        || filling(&tc),
        |_| tc.restart_api(DOWN),
        180,
    );
    assert!(r.code == 0 || r.code == 1, "exit {}\n{}", r.code, r.stderr);
    eprintln!("restore through a restart: exit {}\n{}", r.code, r.stderr);
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );
    assert_eq!(
        holder(&tc, "kentledge-apirestore-backup"),
        None,
        "the Lease is released"
    );
    let claims: kube::Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        kube::Api::namespaced(tc.client(), &tc.namespace);
    let made = tc.block_on(claims.get_opt("copy")).unwrap().is_some();
    if r.code == 0 {
        crate::tree::assert_same(&data, &tc.volume_dir("copy"));
    } else {
        assert!(!made, "a restore that failed leaves no half-filled PVC");
        let again = run(tc.kentledge(&cfg).args(RESTORE_TO_COPY));
        assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
        crate::tree::assert_same(&data, &tc.volume_dir("copy"));
    }
}
