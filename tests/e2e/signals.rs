//! SIGTERM and SIGKILL in each phase of the commands that change things, table-driven: phases
//! are the log events kentledge emits, so a case waits for one and then signals. After SIGTERM
//! the command exits 143, leaves no clone, mover or half-made object and releases its Lease;
//! after SIGKILL nothing can clean up, and the next run of the config (taking the Lease over)
//! sweeps what was left and succeeds. Commands: snapshot (hooks, create, cut wait, post-hooks,
//! ready wait), backup (clone and mover start, copy, labels), prune (marking, deleting,
//! repository prune), restore into a new PVC (from an archive while its mover fills it, from a
//! snapshot while it binds); in-place restores: `inplace::sig…`; database
//! restores: `databases::a_restore_stopped_by_sigterm…` and `databases::a_restore_killed…`;
//! bucket backups and restores: `buckets::a_bucket_backup_stopped…`, `buckets::a_bucket_restore_stopped…`.

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

/// Runs `cmd` once the Lease `lease` is aged as a killed run leaves it: it takes the lock over,
/// says so and exits 0. `what` names the case in failures.
pub(crate) fn after_takeover(
    tc: &TestCluster,
    lease: &str,
    cmd: &mut std::process::Command,
    what: &str,
) -> Run {
    tc.age_lease(lease);
    let r = run(cmd);
    assert_eq!(r.code, 0, "{what}: {}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("taking over a run lock whose holder stopped renewing it"),
        "{what}: {}",
        r.stderr
    );
    r
}

/// `r` (the run after a killed one) deleted the mover pod the killed run left.
pub(crate) fn swept_a_mover(r: &Run) {
    assert!(
        r.stderr
            .contains("deleting a mover pod left by an earlier run"),
        "{}",
        r.stderr
    );
}

/// The Leases a restore of `config` holds: both of the config's (the run lock and the backup
/// lock).
pub(crate) fn restore_leases(config: &str) -> [String; 2] {
    [
        format!("kentledge-{config}"),
        format!("kentledge-{config}-backup"),
    ]
}

/// After a restore of `config` was killed: checks it still holds both its Leases (a killed run
/// cannot release them) and ages both, so the next run takes them over at once (aging only one,
/// a restore after it would wait out the other's 60 s).
pub(crate) fn age_killed_restore_leases(tc: &TestCluster, config: &str) {
    for lease in restore_leases(config) {
        assert!(
            holder(tc, &lease).is_some(),
            "a killed run cannot release {lease}"
        );
        tc.age_lease(&lease);
    }
}

/// `r` (the run after a killed restore) succeeded, deleted the new PVC the killed run left, and
/// nothing of kentledge's is left.
fn swept_a_restore(tc: &TestCluster, r: &Run) {
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("deleting the new PVC of a restore an earlier run did not finish"),
        "{}",
        r.stderr
    );
    assert!(leftovers(tc).is_empty(), "left behind: {:?}", leftovers(tc));
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
        if *phase == "copy" && copied(&tc) {
            // Under load the first progress line (the phase's event) can come as borg ends:
            // then the copy was done before the signal was seen, and its label is true.
            assert!(r.stderr.contains("INFO copied"), "{phase}: {}", r.stderr);
            archive_equals(&tc, &data);
        } else if *phase != "labels and cleanup" {
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
        let held = holder(&tc, lease).is_some();
        if *phase == "labels and cleanup" && !held {
            // The kill landed after the run's last step (releasing its Lease): it had finished.
            assert!(copied(&tc), "{phase}: released its Lease unfinished");
            assert!(
                leftovers(&tc).is_empty(),
                "{phase}: left behind: {:?}",
                leftovers(&tc)
            );
            continue;
        }
        assert!(held, "{phase}: a killed run cannot release its Lease");
        let again = after_takeover(
            &tc,
            lease,
            tc.kentledge(&cfg).args(["backup", "-o", "json"]),
            phase,
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
    after_takeover(
        &tc,
        lease,
        tc.kentledge(&cfg).args(["prune", "--now", later]),
        "after the kill",
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
    age_killed_restore_leases(&tc, "killrestore");
    // Any run of the config that takes the lock sweeps the half-filled PVC and its mover.
    swept_a_restore(&tc, &run(tc.kentledge(&cfg).arg("backup")));
    let r = run(tc.kentledge(&cfg).args(RESTORE_TO_COPY));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    crate::tree::assert_same(&data, &tc.volume_dir("copy"));
}

/// The in-use mark on the snapshot `name`, if any.
fn in_use(tc: &TestCluster, name: &str) -> Option<String> {
    let api: Api<kentledge::model::snapshots::VolumeSnapshot> =
        Api::namespaced(tc.client(), &tc.namespace);
    let s = tc.block_on(api.get(name)).unwrap();
    s.metadata.annotations?.remove("kentledge.io/in-use-by")
}

/// A restore from a snapshot into a new PVC of a class that never binds, stopped while it waits:
/// after SIGTERM the new PVC is deleted, the snapshot's in-use mark removed and both Leases
/// released; after SIGKILL the next run (taking the Leases over) sweeps the PVC and the mark and
/// restores.
#[test]
fn sigterm_and_sigkill_while_a_restore_from_a_snapshot_waits_for_its_new_pvc_to_bind() {
    let tc = TestCluster::start("bindrestore");
    let data = tc.pvc_with_files("data", &[], &[("file", "precious\n")]);
    crate::backup::never_binding_class(&tc);
    let cfg = tc.config("bindrestore", "  snapshots:\n    targets: [{pvc: data}]\n");
    assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
    let snapshot = newest(&tc);
    let leases = restore_leases("bindrestore");
    let restore = |to: &str, class: &[&str]| {
        let mut c = tc.kentledge(&cfg);
        c.args([
            "restore",
            "volume",
            "data",
            "--snapshot",
            &snapshot,
            "--to",
            to,
        ])
        .args(class);
        c
    };
    let pending = |to: &str| leftovers(&tc).contains(&format!("pvc/{to}"));
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        let to = format!("stuck-{signal}");
        let r = signal_when(
            &mut restore(&to, &["--storage-class", "nowhere"]),
            "creating the new PVC",
            || pending(&to),
            signal,
            60,
        );
        assert_eq!(r.code, 128 + signal, "{}{}", r.stdout, r.stderr);
        if signal == libc::SIGTERM {
            assert!(
                r.stdout.contains(&format!("the new PVC {to} was deleted")),
                "{}",
                r.stdout
            );
            assert!(
                leftovers(&tc).is_empty(),
                "left behind: {:?}",
                leftovers(&tc)
            );
            assert_eq!(in_use(&tc, &snapshot), None, "the in-use mark is removed");
            for lease in &leases {
                assert_eq!(holder(&tc, lease), None, "{lease} is released");
            }
        } else {
            assert!(pending(&to), "a killed run cannot clean up");
            assert!(in_use(&tc, &snapshot).is_some_and(|m| m.starts_with("restore/")));
            age_killed_restore_leases(&tc, "bindrestore");
        }
    }
    // The next run sweeps what the killed one left, and restores.
    let r = run(&mut restore("copy", &[]));
    swept_a_restore(&tc, &r);
    assert!(
        r.stderr
            .contains("removing the in-use mark of an earlier run"),
        "{}",
        r.stderr
    );
    assert_eq!(in_use(&tc, &snapshot), None, "the stale mark is gone");
    crate::tree::assert_same(&data, &tc.volume_dir("copy"));
}

/// [`crate::snapshot::FLOCK_SESSION`] (a held session that locks the volume while the
/// application is frozen; the lock goes with the session), then a plain exec hook that takes
/// its time in both directions: its post runs first (reverse order), so a signal can land in
/// each phase of a snapshot run.
fn snapshot_hooks() -> String {
    format!(
        "{}{}",
        crate::snapshot::FLOCK_SESSION,
        "      - name: slow
        pod: {name: app}
        exec:
          pre: [sh, -c, 'touch /data/slow-pre; sleep 3']
          post: [sh, -c, 'touch /data/slow-post-started; sleep 2; echo done > /data/slow-post']
        timeout: 30s
"
    )
}

/// One phase of `kentledge snapshot`: the log event that starts it and what else must hold
/// (files the hooks write), the snapshot class that makes it last, and whether a snapshot made
/// by then was cut while the application was frozen (and so is kept).
struct SnapshotPhase {
    name: &'static str,
    event: &'static str,
    also: fn(&std::path::Path) -> bool,
    class: Option<(&'static str, &'static str)>,
    kept: bool,
}

const SNAPSHOT_PHASES: &[SnapshotPhase] = &[
    SnapshotPhase {
        name: "pre-hooks",
        event: "run lock taken",
        also: |d| d.join("slow-pre").exists() && crate::snapshot::frozen(d),
        class: None,
        kept: false,
    },
    SnapshotPhase {
        name: "create",
        event: "hook ok hook=slow phase=\"pre\"",
        also: |_| true,
        class: Some(("cutDelay", "4s")),
        kept: false,
    },
    SnapshotPhase {
        name: "cut wait",
        event: "VolumeSnapshot created",
        also: |_| true,
        class: Some(("cutDelay", "4s")),
        kept: false,
    },
    SnapshotPhase {
        name: "post-hooks",
        event: "noted on the run lock which snapshots were cut while frozen",
        also: |d| d.join("slow-post-started").exists(),
        class: None,
        kept: true,
    },
    SnapshotPhase {
        name: "ready wait",
        event: "hook ok hook=hold phase=\"post\"",
        also: |d| d.join("post").exists(),
        class: Some(("readyDelay", "6s")),
        kept: true,
    },
];

/// A cluster for one phase's case: the volume `data` (returned), the application pod, the
/// phase's snapshot class and a config with [`snapshot_hooks`].
fn snapshot_case(
    ns: &str,
    p: &SnapshotPhase,
) -> (TestCluster, std::path::PathBuf, std::path::PathBuf) {
    let tc = TestCluster::start(ns);
    let data = tc.pvc_with_files("data", &[], &[]);
    tc.sleeper("app", &[], &[], &["data"]);
    let class = match p.class {
        Some((param, value)) => {
            crate::snapshot::slow_class(&tc, "slow", param, value);
            "    volumeSnapshotClassName: slow\n"
        }
        None => "",
    };
    let cfg = tc.config(
        ns,
        &format!(
            "  snapshots:\n{class}    targets: [{{pvc: data}}]\n{}",
            snapshot_hooks()
        ),
    );
    (tc, cfg, data)
}

/// A snapshot run of [`snapshot_case`] sent `signal` in phase `p`.
fn signalled_snapshot(
    ns: &str,
    p: &SnapshotPhase,
    signal: i32,
) -> (TestCluster, std::path::PathBuf, std::path::PathBuf, Run) {
    let (tc, cfg, data) = snapshot_case(ns, p);
    let r = signal_when(
        tc.kentledge(&cfg).arg("snapshot"),
        p.event,
        || (p.also)(&data),
        signal,
        60,
    );
    (tc, cfg, data, r)
}

fn snapshot_count(tc: &TestCluster) -> usize {
    crate::snapshot::snapshots(tc).len()
}

#[test]
fn sigterm_in_each_phase_of_a_snapshot_thaws_keeps_only_frozen_cuts_and_exits_143() {
    for (i, p) in SNAPSHOT_PHASES.iter().enumerate() {
        let ns = format!("termsnap{i}");
        let (tc, _, data, r) = signalled_snapshot(&ns, p, libc::SIGTERM);
        let phase = p.name;
        assert_eq!(r.code, 143, "{phase}: {}\n{}", r.stdout, r.stderr);
        assert!(
            r.stdout.contains("interrupted (exit 143)"),
            "{phase}: {}",
            r.stdout
        );
        // Every started pre-hook got its post-hook, to its end; the application is not frozen.
        let read = |f: &str| std::fs::read_to_string(data.join(f)).ok();
        assert_eq!(
            read("post").as_deref(),
            Some("thawed\n"),
            "{phase}: {}",
            r.stderr
        );
        assert_eq!(
            read("slow-post").as_deref(),
            Some("done\n"),
            "{phase}: {}",
            r.stderr
        );
        assert!(!crate::snapshot::frozen(&data), "{phase}");
        assert_eq!(
            holder(&tc, &format!("kentledge-{ns}")),
            None,
            "{phase}: the Lease is released"
        );
        assert!(leftovers(&tc).is_empty(), "{phase}: {:?}", leftovers(&tc));
        if p.kept {
            // Cut while frozen: consistent, kept, and it becomes ready by itself.
            tc.wait(20, "the kept snapshot to become ready", || {
                let l = crate::snapshot::snapshots(&tc);
                (l.len() == 1 && kentledge::model::snapshots::is_ready(l.first())).then_some(())
            });
        } else {
            tc.wait(20, "no snapshot: none was cut while frozen", || {
                (snapshot_count(&tc) == 0).then_some(())
            });
        }
    }
}

#[test]
fn sigkill_in_each_phase_of_a_snapshot_releases_the_application_and_the_next_run_keeps_only_frozen_cuts()
 {
    for (i, p) in SNAPSHOT_PHASES.iter().enumerate() {
        let ns = format!("killsnap{i}");
        let (tc, cfg, data, r) = signalled_snapshot(&ns, p, libc::SIGKILL);
        let phase = p.name;
        assert_eq!(r.code, 128 + libc::SIGKILL, "{phase}: {}", r.stderr);
        // The held session died with the process: the application is not frozen.
        tc.wait(
            15,
            "the held session's lock to go with the killed run",
            || (!crate::snapshot::frozen(&data)).then_some(()),
        );
        assert_eq!(
            data.join("post").exists(),
            p.name == "ready wait",
            "{phase}: the session's post-hook ran only if it was sent before the kill"
        );
        let lease = format!("kentledge-{ns}");
        assert!(
            holder(&tc, &lease).is_some(),
            "{phase}: a killed run cannot release its Lease"
        );
        let killed: Vec<String> = crate::snapshot::snapshots(&tc)
            .into_iter()
            .filter_map(|s| s.metadata.name)
            .collect();
        after_takeover(&tc, &lease, tc.kentledge(&cfg).arg("snapshot"), phase);
        // What the killed run cut while frozen stays; what it had not is deleted.
        let expected = if p.kept { 2 } else { 1 };
        tc.wait(20, "only the snapshots cut while frozen", || {
            (snapshot_count(&tc) == expected).then_some(())
        });
        let left = crate::snapshot::snapshots(&tc);
        if p.kept {
            assert!(
                killed
                    .iter()
                    .all(|k| left.iter().any(|s| s.metadata.name.as_ref() == Some(k))),
                "{phase}: the killed run's confirmed snapshot is kept: {killed:?}"
            );
        } else {
            assert!(
                left.iter()
                    .all(|s| !killed.contains(s.metadata.name.as_ref().unwrap())),
                "{phase}: the killed run's unconfirmed snapshots are gone: {killed:?}"
            );
        }
        assert!(leftovers(&tc).is_empty(), "{phase}: {:?}", leftovers(&tc));
        assert_eq!(holder(&tc, &lease), None, "{phase}");
        assert!(!crate::snapshot::frozen(&data), "{phase}");
    }
}

#[test]
fn sigterm_and_sigkill_while_prune_marks_then_the_next_prune_finishes_marking() {
    use crate::prune::{NOW, hourly, labels, setup};
    const MARK: &str = "kentledge.io/delete-after";
    let tc = setup("sigmark", &["data"]);
    // Enough that marking lasts well after its first patch.
    let names = hourly(&tc, "sigmark", "data", 300);
    let cfg = tc.config(
        "sigmark",
        "  snapshots:\n    targets: [{pvc: data}]\n    retention: {last: 1}\n    deleteAfter: 1h\n",
    );
    let lease = "kentledge-sigmark";
    let marked = || {
        let all = labels(&tc);
        assert!(
            !all[&names[0]].contains_key(MARK),
            "the kept one is never marked"
        );
        assert_eq!(all.len(), 300, "nothing is deleted before its mark expires");
        all.values().filter(|l| l.contains_key(MARK)).count()
    };
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        let before = marked();
        let r = signal_at(
            tc.kentledge(&cfg).args(["prune", "--now", NOW]),
            "marked for deletion",
            signal,
            60,
        );
        assert_eq!(r.code, 128 + signal, "signal {signal}: {}", r.stderr);
        let now = marked();
        assert!(
            now > before && now < 299,
            "stopped half way: {before} then {now} marked"
        );
        if signal == libc::SIGTERM {
            assert_eq!(holder(&tc, lease), None, "the Lease is released");
            assert!(r.stdout.contains("not done: interrupted"), "{}", r.stdout);
        }
    }
    after_takeover(
        &tc,
        lease,
        tc.kentledge(&cfg).args(["prune", "--now", NOW]),
        "after the kill",
    );
    assert_eq!(marked(), 299, "every one out of retention is marked");
}

#[test]
fn sigterm_and_sigkill_while_a_repository_prune_runs_then_the_next_prune_finishes_it() {
    let tc = TestCluster::start("sigrepoprune");
    passphrase_secret(&tc);
    tc.pvc_with_files("data", &[], &[("small.txt", "precious\n")]);
    let repos = empty_pvc(&tc, "repos");
    let cfg = tc.config(
        "sigrepoprune",
        &format!(
            "  snapshots:\n    targets: [{{pvc: data}}]\n  repositories:\n{}      retention: {{last: 1}}\n  offsite:\n    volumes:\n      repositories: [borg]\n",
            crate::backup::pvc_repository("borg", "borg", "borg", &["init: true", "lockWait: 30s"])
        ),
    );
    for _ in 0..3 {
        crate::support::next_second();
        assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
        let b = run(tc.kentledge(&cfg).arg("backup"));
        assert_eq!(b.code, 0, "{}", b.stderr);
    }
    let repo = repos.join("borg");
    let archives = || crate::backup::borg_archive_names(&repo);
    let newest = archives().pop().unwrap();
    assert_eq!(archives().len(), 3);
    let lease = "kentledge-sigrepoprune-backup";
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        // Someone else holds the repository: the prune's mover waits for the lock.
        let work = tempfile::tempdir().unwrap();
        use std::os::unix::process::CommandExt;
        let mut other = std::process::Command::new("borg")
            .args(["with-lock", repo.to_str().unwrap(), "sleep", "120"])
            .env("BORG_PASSPHRASE", crate::backup::PASSPHRASE)
            .env("BORG_BASE_DIR", work.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let r = signal_when(
            tc.kentledge(&cfg).args(["prune", "--only", "repositories"]),
            "is locked by",
            || filling(&tc),
            signal,
            60,
        );
        // SAFETY: signalling the process group of our own child (borg and its `sleep`).
        unsafe { libc::kill(-(other.id() as i32), libc::SIGKILL) };
        let _ = other.wait();
        assert_eq!(r.code, 128 + signal, "signal {signal}: {}", r.stderr);
        assert_eq!(archives().len(), 3, "nothing was pruned yet");
        if signal == libc::SIGTERM {
            assert!(
                leftovers(&tc).is_empty(),
                "left behind: {:?}",
                leftovers(&tc)
            );
            assert_eq!(holder(&tc, lease), None, "the Lease is released");
        } else {
            tc.age_lease(lease);
        }
    }
    // The next prune sweeps the killed run's mover and prunes.
    let r = run(tc.kentledge(&cfg).args(["prune", "--only", "repositories"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    swept_a_mover(&r);
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );
    assert_eq!(archives(), [newest], "exactly what the policy keeps");
}
