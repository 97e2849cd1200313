//! SIGTERM and SIGKILL in each phase of the commands that change things, table-driven: phases
//! are the log events kentledge emits, so a case waits for one and then signals. After SIGTERM
//! the command exits 143, leaves no clone, mover or half-made object and releases its Lease;
//! after SIGKILL nothing can clean up, and the next run of the config (taking the Lease over)
//! sweeps what was left and succeeds. (Snapshot runs: `snapshot::sig…`; in-place restores:
//! `inplace::sig…`.)

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

use crate::backup::{data_to_borg, empty_pvc, leftovers, passphrase_secret, snapshot_labels};
use crate::cluster::TestCluster;
use crate::support::{Run, run, signal_at, signal_when};

/// The Lease `name`'s holder, if any.
pub(crate) fn holder(tc: &TestCluster, name: &str) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(tc.client(), &tc.namespace);
    tc.block_on(api.get(name)).ok()?.spec?.holder_identity
}

/// Phases of `kentledge backup` and the log event that starts each.
pub(crate) const BACKUP_PHASES: &[(&str, &str)] = &[
    ("clone and mover start", "backup lock taken"),
    ("copy", "INFO copying"),
    ("labels and cleanup", "INFO copied"),
];

pub(crate) fn backup_fixture(ns: &str) -> (TestCluster, std::path::PathBuf, std::path::PathBuf) {
    let tc = TestCluster::start(ns);
    passphrase_secret(&tc);
    let data = tc.pvc_with_files("data", &[], &[("small.txt", "precious\n")]);
    std::fs::write(
        data.join("big.bin"),
        crate::support::incompressible(150 << 20, 3),
    )
    .unwrap();
    empty_pvc(&tc, "repos");
    // The default borg cache volume: a killed copy leaves locks in the repository and the cache.
    let cfg = tc.config(ns, &data_to_borg(&["init: true", "lockWait: 3s"]));
    (tc, cfg, data)
}

/// `kentledge restore` of the fixture's volume from its borg archive into the new PVC `copy`.
pub(crate) const RESTORE_TO_COPY: [&str; 7] = [
    "restore",
    "volume",
    "data",
    "--repository",
    "borg",
    "--to",
    "copy",
];

/// [`backup_fixture`] snapshotted and copied once: what a restore starts from.
pub(crate) fn restore_fixture(ns: &str) -> (TestCluster, std::path::PathBuf, std::path::PathBuf) {
    let (tc, cfg, data) = backup_fixture(ns);
    assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
    assert_eq!(run(tc.kentledge(&cfg).arg("backup")).code, 0);
    (tc, cfg, data)
}

/// Whether a pod of kentledge's is at work (during a restore: the one that fills the new PVC).
pub(crate) fn filling(tc: &TestCluster) -> bool {
    leftovers(tc).iter().any(|l| l.starts_with("pod/"))
}

/// The next backup run (after one that was stopped in `phase`) copies and exits 0.
pub(crate) fn copies_next_time(tc: &TestCluster, cfg: &std::path::Path, phase: &str) {
    let again = run(tc.kentledge(cfg).arg("backup"));
    assert_eq!(again.code, 0, "{phase}: {}{}", again.stdout, again.stderr);
    assert!(copied(tc), "{phase}");
}

/// The fixture's borg repository's last archive equals the volume `data`.
pub(crate) fn archive_equals(tc: &TestCluster, data: &std::path::Path) {
    crate::backup::borg_extract_and_compare(
        tc.volume_dir("repos").join("borg").to_str().unwrap(),
        data,
    );
}

/// Whether the newest snapshot is labelled copied.
pub(crate) fn copied(tc: &TestCluster) -> bool {
    snapshot_labels(tc, &newest(tc)).contains_key("backed-up.kentledge.io/borg")
}

/// The newest snapshot of the namespace.
pub(crate) fn newest(tc: &TestCluster) -> String {
    let api: Api<kentledge::model::snapshots::VolumeSnapshot> =
        Api::namespaced(tc.client(), &tc.namespace);
    let mut names: Vec<String> = tc
        .block_on(api.list(&Default::default()))
        .unwrap()
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    names.sort();
    names.pop().unwrap()
}

#[test]
fn sigterm_in_each_phase_of_a_backup_cleans_up_releases_the_lease_and_exits_143() {
    let (tc, cfg, data) = backup_fixture("termbackup");
    let lease = "kentledge-termbackup-backup";
    for (phase, event) in BACKUP_PHASES {
        assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
        let r: Run = signal_at(tc.kentledge(&cfg).arg("backup"), event, libc::SIGTERM, 120);
        // After the copy the run may be done before the signal lands: then it exits 0.
        let done = *phase == "labels and cleanup" && r.code == 0;
        assert!(
            r.code == 143 || done,
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
        if *phase != "labels and cleanup" {
            assert!(!copied(&tc), "{phase}: nothing is labelled copied");
        }
        // The next run copies what the signal stopped.
        copies_next_time(&tc, &cfg, phase);
    }
    archive_equals(&tc, &data);
}

#[test]
fn sigkill_in_each_phase_of_a_backup_then_the_next_run_sweeps_and_copies() {
    let (tc, cfg, data) = backup_fixture("killbackup");
    let lease = "kentledge-killbackup-backup";
    for (phase, event) in BACKUP_PHASES {
        assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
        let r = signal_at(tc.kentledge(&cfg).arg("backup"), event, libc::SIGKILL, 120);
        // After the copy the run may be done before the signal lands: then it exits 0.
        if *phase == "labels and cleanup" && r.code == 0 {
            continue;
        }
        assert_eq!(r.code, 128 + libc::SIGKILL, "{phase}: {}", r.stderr);
        assert!(
            holder(&tc, lease).is_some(),
            "{phase}: a killed run cannot release its Lease"
        );
        tc.age_lease(lease);
        let again = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
        assert_eq!(again.code, 0, "{phase}: {}{}", again.stdout, again.stderr);
        assert!(
            again
                .stderr
                .contains("taking over a run lock whose holder stopped renewing it"),
            "{phase}: {}",
            again.stderr
        );
        assert!(
            leftovers(&tc).is_empty(),
            "{phase}: left behind: {:?}",
            leftovers(&tc)
        );
        assert_eq!(holder(&tc, lease), None, "{phase}");
        assert!(copied(&tc), "{phase}: {}", again.stderr);
    }
    archive_equals(&tc, &data);
}

#[test]
fn sigterm_and_sigkill_while_prune_deletes_then_the_next_prune_finishes_the_policy() {
    use crate::prune::{NOW, hourly, labels, setup};
    let tc = setup("sigprune", &["data"]);
    let names = hourly(&tc, "sigprune", "data", 40);
    let cfg = tc.config(
        "sigprune",
        "  snapshots:\n    targets: [{pvc: data}]\n    retention: {last: 1}\n    deleteAfter: 1h\n    maxDeletesPerSecond: 4\n",
    );
    let lease = "kentledge-sigprune";
    // Marking: 39 marked, none deleted yet (deleteAfter).
    let r = run(tc.kentledge(&cfg).args(["prune", "--now", NOW]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(labels(&tc).len(), 40);
    let later = "2026-11-22T15:00:00Z";

    // SIGTERM while deleting: stops between two deletions, releases the Lease.
    let r = signal_at(
        tc.kentledge(&cfg).args(["prune", "--now", later]),
        "INFO deleted",
        libc::SIGTERM,
        60,
    );
    assert_eq!(r.code, 143, "{}", r.stderr);
    assert_eq!(holder(&tc, lease), None, "the Lease is released");
    let left = labels(&tc);
    assert!(
        left.len() > 1 && left.len() < 40,
        "stopped half way: {}",
        left.len()
    );
    assert!(left.contains_key(&names[0]), "the kept one stays");
    assert!(
        left.iter()
            .filter(|(n, _)| *n != &names[0])
            .all(|(_, l)| l.contains_key("kentledge.io/delete-after")),
        "the rest are still marked"
    );

    // SIGKILL while deleting: the next prune takes the Lease over and finishes.
    let r = signal_at(
        tc.kentledge(&cfg).args(["prune", "--now", later]),
        "INFO deleted",
        libc::SIGKILL,
        60,
    );
    assert_eq!(r.code, 128 + libc::SIGKILL, "{}", r.stderr);
    assert!(holder(&tc, lease).is_some());
    tc.age_lease(lease);
    let r = run(tc.kentledge(&cfg).args(["prune", "--now", later]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("taking over a run lock whose holder stopped renewing it"),
        "{}",
        r.stderr
    );
    let left: Vec<String> = labels(&tc).into_keys().collect();
    assert_eq!(left, [names[0].clone()], "exactly what the policy keeps");
}

#[test]
fn sigkill_while_a_restore_fills_a_new_pvc_then_the_next_run_sweeps_it() {
    let (tc, cfg, data) = restore_fixture("killrestore");
    let r = signal_when(
        tc.kentledge(&cfg).args(RESTORE_TO_COPY),
        "creating the new PVC",
        || filling(&tc),
        libc::SIGKILL,
        60,
    );
    assert_eq!(r.code, 128 + libc::SIGKILL, "{}", r.stderr);
    let lease = "kentledge-killrestore-backup";
    tc.age_lease(lease);
    // Any run of the config that takes the lock sweeps the half-filled PVC and its mover.
    let b = run(tc.kentledge(&cfg).arg("backup"));
    assert_eq!(b.code, 0, "{}{}", b.stdout, b.stderr);
    assert!(
        b.stderr
            .contains("deleting the new PVC of a restore an earlier run did not finish"),
        "{}",
        b.stderr
    );
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );
    let r = run(tc.kentledge(&cfg).args(RESTORE_TO_COPY));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    crate::tree::assert_same(&data, &tc.volume_dir("copy"));
}
