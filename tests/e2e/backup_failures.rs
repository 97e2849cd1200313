//! `kentledge backup` when things go wrong: wrong passphrase, missing repository, unreachable
//! repositories and host key mismatch, locks held by others and stale locks of gone movers,
//! serialisation on one borg repository, SIGTERM during the copy, a repository volume that fills
//! up, a clone that never binds, a snapshot that never becomes ready. Each leaves nothing
//! behind.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use kentledge::model::snapshots::VolumeSnapshot;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use crate::backup::{
    PASSPHRASE, Watcher, data_to_borg, empty_pvc, has_event, leftovers, only_snapshot,
    passphrase_secret, pvc_repository, remote_secrets, snapshot_labels, ssh_repository,
};
use crate::cluster::TestCluster;
use crate::servers::Sshd;
use crate::support::run;

fn report(r: &crate::support::Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", r.stdout, r.stderr))
}

fn results(report: &Value) -> std::collections::BTreeMap<String, (bool, String)> {
    report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["repository"].as_str().unwrap().to_owned(),
                (
                    j["ok"].as_bool().unwrap(),
                    j["result"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

/// `borg init` a repository on the host with `passphrase`.
fn borg_init(path: &Path, passphrase: &str) {
    borg_init_in(path, passphrase, tempfile::tempdir().unwrap().path());
}

/// `borg init` a repository on the host with `passphrase`, borg's own files in `base`.
pub(crate) fn borg_init_in(path: &Path, passphrase: &str, base: &Path) {
    let st = Command::new("borg")
        .args(["init", "--encryption", "repokey-blake2"])
        .arg(path)
        .env("BORG_PASSPHRASE", passphrase)
        .env("BORG_BASE_DIR", base)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
}

fn borg_break_lock(path: &Path) {
    let base = tempfile::tempdir().unwrap();
    let st = Command::new("borg")
        .arg("break-lock")
        .arg(path)
        .env("BORG_PASSPHRASE", PASSPHRASE)
        .env("BORG_BASE_DIR", base.path())
        .status()
        .unwrap();
    assert!(st.success());
}

/// Holds a borg repository's lock as `host_id` until the child is killed.
fn hold_borg_lock(path: &Path, host_id: &str) -> std::process::Child {
    let base = tempfile::tempdir().unwrap().keep();
    let child = Command::new("borg")
        .args(["with-lock"])
        .arg(path)
        .args(["sleep", "120"])
        .env("BORG_PASSPHRASE", PASSPHRASE)
        .env("BORG_BASE_DIR", base)
        .env("BORG_HOST_ID", host_id)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // The exclusive lock directory comes first, then its holder file and the roster.
    let held = || {
        std::fs::read_to_string(path.join("lock.roster"))
            .is_ok_and(|roster| roster.contains(host_id))
            && std::fs::read_dir(path.join("lock.exclusive")).is_ok_and(|mut d| d.next().is_some())
    };
    while !held() {
        assert!(
            std::time::Instant::now() < deadline,
            "borg with-lock took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn wrong_passphrase_missing_and_unreachable_repositories_fail_clearly_and_leave_nothing() {
    let tc = TestCluster::start("shop");
    let sshd = Sshd::start();
    passphrase_secret(&tc);
    remote_secrets(&tc, &sshd);
    tc.pvc_with_files("data", &[], &[("file", "precious\n")]);
    let repos = empty_pvc(&tc, "repos");
    borg_init(&repos.join("borg"), "a different passphrase");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let never = sshd.server.dir.path().join("never");
    let cfg = tc.config(
        "shop",
        &format!(
            r#"  snapshots:
    targets: [{{pvc: data}}]
  repositories:
    - name: wrong-pass
      borg:
        pvc: {{claimName: repos, path: borg}}
        passphrase: {{secret: repo-pass, key: passphrase}}
    - name: missing
      restic:
        pvc: {{claimName: repos, path: nothing-here}}
        password: {{secret: repo-pass, key: passphrase}}
    - name: down
      restic:
        repository: rest:http://127.0.0.1:{closed}/x
        password: {{secret: repo-pass, key: passphrase}}
{bad_host_key}{sftp_bad_host_key}  offsite:
    volumes:
      repositories: [wrong-pass, missing, down, bad-host-key, sftp-bad-host-key]
"#,
            bad_host_key =
                ssh_repository("bad-host-key", "borg", &sshd, &never, "wrong_known_hosts"),
            sftp_bad_host_key = ssh_repository(
                "sftp-bad-host-key",
                "restic",
                &sshd,
                &never,
                "wrong_known_hosts"
            ),
        ),
    );
    assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
    let snap = only_snapshot(&tc);
    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(r.code, 1, "every copy failed: {}{}", r.stdout, r.stderr);
    let got = results(&report(&r));
    let expect = [
        ("wrong-pass", "passphrase"),
        ("missing", "does not exist and init is off"),
        ("down", "connection refused"),
        ("bad-host-key", "Host key verification failed"),
        ("sftp-bad-host-key", "Host key verification failed"),
    ];
    for (repo, words) in expect {
        let (ok, why) = &got[repo];
        assert!(!ok, "{repo}");
        assert!(
            why.to_lowercase().contains(&words.to_lowercase()),
            "{repo}: {why}\n{}",
            r.stderr
        );
    }
    assert!(
        !sshd.server.dir.path().join("never").exists(),
        "no repository created past a bad host key"
    );
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );
    let labels = snapshot_labels(&tc, &snap);
    assert!(
        !labels.keys().any(|k| k.starts_with("backed-up.")),
        "{labels:?}"
    );
    let api: Api<VolumeSnapshot> = Api::namespaced(tc.client(), &tc.namespace);
    let s = tc.block_on(api.get(&snap)).unwrap();
    assert!(
        !s.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("kentledge.io/in-use-by"),
        "the in-use mark is removed"
    );
    assert!(
        has_event(&tc, "BackupFailed", "data"),
        "an Event on the PVC"
    );
}

#[test]
fn a_lock_held_by_another_holder_is_waited_for_and_never_broken_a_gone_movers_lock_is_broken() {
    let tc = TestCluster::start("shop");
    passphrase_secret(&tc);
    tc.pvc_with_files("data", &[], &[("file", "precious\n")]);
    let repos = empty_pvc(&tc, "repos");
    let repo = repos.join("borg");
    borg_init(&repo, PASSPHRASE);
    let cfg = tc.config("shop", &data_to_borg(&["lockWait: 3s"]));
    assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);

    // Someone else holds the lock: the run waits, fails naming the holder, and leaves the lock.
    let mut other = hold_borg_lock(&repo, "admin-laptop");
    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let (ok, why) = results(&report(&r))["borg"].clone();
    assert!(!ok && why.contains("admin-laptop"), "{why}");
    assert!(
        repo.join("lock.exclusive").exists(),
        "another holder's lock is never broken"
    );
    assert!(other.try_wait().unwrap().is_none(), "the holder still runs");
    other.kill().unwrap();
    other.wait().unwrap();
    borg_break_lock(&repo); // the admin cleans up after the killed holder
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );

    // A mover pod of this namespace that no longer exists left its lock: it is broken.
    let prefix = kentledge::mover::pod::mover_prefix(&tc.namespace);
    let mut dead = hold_borg_lock(&repo, &format!("{prefix}0000-0"));
    dead.kill().unwrap();
    dead.wait().unwrap();
    assert!(
        repo.join("lock.exclusive").exists(),
        "the killed holder left its lock"
    );
    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("breaking a stale lock"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("{prefix}0000-0")),
        "names the gone holder: {}",
        r.stderr
    );
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );
}

#[test]
fn volumes_to_one_borg_repository_take_turns_and_restic_runs_in_parallel() {
    let tc = TestCluster::start("shop");
    passphrase_secret(&tc);
    for p in ["one", "two", "three"] {
        tc.pvc_with_files(
            p,
            &[("app", "shop")],
            &[("file", &format!("{p}\n").repeat(100_000))],
        );
    }
    empty_pvc(&tc, "repos");
    let cfg = tc.config(
        "shop",
        &format!(
            r#"  snapshots:
    targets: [{{selector: {{matchLabels: {{app: shop}}}}}}]
  repositories:
{}{}  offsite:
    volumes:
      repositories: [borg, restic]
  mover:
    concurrency: 4
"#,
            pvc_repository("borg", "borg", "borg", &["init: true", "lockWait: 1s"]),
            pvc_repository("restic", "restic", "restic", &["init: true"]),
        ),
    );
    assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
    // Run as if in the pod `kentledge-cron-1`: clones and movers are owned by it.
    tc.sleeper("kentledge-cron-1", &[], &[], &[]);
    let watcher = Watcher::start(&tc);
    let r = run(tc
        .kentledge(&cfg)
        .args(["backup", "-o", "json"])
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("HOSTNAME", "kentledge-cron-1"));
    let seen = watcher.finish();
    for (name, pod) in &seen.pods {
        assert!(
            pod.contains(r#""kind":"Pod","name":"kentledge-cron-1""#),
            "{name} is owned by the kentledge pod: {pod}"
        );
    }
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(results(&report(&r)).len(), 2);
    assert_eq!(report(&r)["jobs"].as_array().unwrap().len(), 6);
    assert_eq!(
        seen.max_at_once.get("borg"),
        Some(&1),
        "one borg mover at a time: {seen:?}"
    );
    assert!(seen.pods.len() == 6, "{:?}", seen.pods.keys());
    assert!(leftovers(&tc).is_empty());
}

/// Starts `kentledge backup` and returns once its mover pod runs (and has copied a little).
fn backup_with_a_running_mover(tc: &TestCluster, cfg: &Path) -> std::process::Child {
    let child = tc
        .kentledge(cfg)
        .arg("backup")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(tc.client(), &tc.namespace);
    tc.wait(60, "a running mover", || {
        let list = tc
            .block_on(pods.list(&ListParams::default().labels("kentledge.io/role=mover")))
            .ok()?;
        list.items
            .iter()
            .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    child
}

#[test]
fn sigterm_during_the_copy_cleans_up_and_the_next_run_sweeps_what_sigkill_left() {
    let tc = TestCluster::start("shop");
    passphrase_secret(&tc);
    let data = tc.pvc_with_files("data", &[], &[]);
    crate::tree::build(&data);
    empty_pvc(&tc, "repos");
    let cfg = tc.config(
        "shop",
        &format!(
            "  snapshots:\n    targets: [{{pvc: data}}]\n  repositories:\n{}  offsite:\n    volumes:\n      repositories: [restic]\n  mover:\n    bandwidthLimit: 256KiB\n",
            pvc_repository("restic", "restic", "restic", &["init: true"]),
        ),
    );
    assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
    let snap = only_snapshot(&tc);
    let child = backup_with_a_running_mover(&tc, &cfg);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );
    let labels = snapshot_labels(&tc, &snap);
    assert!(
        !labels.keys().any(|k| k.starts_with("backed-up.")),
        "{labels:?}"
    );

    // SIGKILL: nothing can clean up. The mover, its clone, the in-use mark and the Lease stay;
    // the next run takes the Lease over, sweeps the mover and the clone, releases the mark and
    // copies (the killed mover's restic lock is a shared one: it does not stop a backup).
    let mut child = backup_with_a_running_mover(&tc, &cfg);
    child.kill().unwrap();
    child.wait().unwrap();
    let left = leftovers(&tc);
    assert_eq!(left.len(), 2, "a mover and its clone: {left:?}");
    let api: Api<VolumeSnapshot> = Api::namespaced(tc.client(), &tc.namespace);
    let marked = |api: &Api<VolumeSnapshot>| {
        tc.block_on(api.get(&snap))
            .unwrap()
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("kentledge.io/in-use-by")
    };
    assert!(marked(&api), "the killed run's in-use mark is still there");
    let r = crate::signals::after_takeover(
        &tc,
        "kentledge-shop-backup",
        tc.kentledge(&cfg).args(["backup", "-o", "json"]),
        "after the kill",
    );
    for said in [
        "deleting a mover pod left by an earlier run",
        "deleting a clone left by an earlier run",
        "removing the in-use mark of an earlier run",
    ] {
        assert!(r.stderr.contains(said), "{said}: {}", r.stderr);
    }
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );
    assert!(!marked(&api), "the in-use mark is released");
    assert!(snapshot_labels(&tc, &snap).contains_key("backed-up.kentledge.io/restic"));
    crate::backup::restic_restore_and_compare(
        tc.volume_dir("repos").join("restic").to_str().unwrap(),
        &[],
        &data,
    );
}

#[test]
fn snapshot_now_with_a_kept_cache_volume_and_a_mover_timeout() {
    let tc = TestCluster::start("shop");
    passphrase_secret(&tc);
    let data = tc.pvc_with_files("data", &[], &[]);
    crate::tree::build(&data);
    empty_pvc(&tc, "repos");
    let spec = |timeout: &str, limit: &str, path: &str| {
        format!(
            r#"  snapshots:
    targets: [{{pvc: data}}]
  repositories:
{entry}      cache: {{size: 1Gi}}
  offsite:
    volumes:
      repositories: [restic]
  mover:
    timeout: {timeout}
    bandwidthLimit: {limit}
"#,
            entry = pvc_repository("restic", "restic", path, &["init: true"]),
        )
    };
    // --snapshot-now: the snapshot flow first, then its snapshot is copied; one JSON document
    // with the snapshot run's report in it.
    let cfg = tc.config("shop", &spec("10m", "100MiB", "restic"));
    let r = run(tc
        .kentledge(&cfg)
        .args(["backup", "--snapshot-now", "-o", "json"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let snap = only_snapshot(&tc);
    let doc = report(&r);
    assert_eq!(
        doc["snapshot"]["snapshots"][0]["name"],
        snap.as_str(),
        "{doc}"
    );
    assert!(results(&doc)["restic"].0, "{doc}");
    assert!(snapshot_labels(&tc, &snap).contains_key("backed-up.kentledge.io/restic"));
    // The cache volume is made once and kept, with restic's cache in it.
    let cache = tc.volume_dir(&kentledge::mover::pod::cache_pvc_name("shop", "restic"));
    assert!(
        cache.join("restic").read_dir().unwrap().next().is_some(),
        "restic's cache is on the volume"
    );
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );

    // A mover that runs past mover.timeout is stopped; the run fails and cleans up.
    // (A new repository: nothing deduplicates against the first copy.)
    let cfg = tc.config("shop", &spec("2s", "64KiB", "restic-slow"));
    assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let (ok, why) = results(&report(&r))["restic"].clone();
    assert!(!ok && why.contains("DeadlineExceeded"), "{why}");
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );
}

/// Leaves an exclusive restic lock whose host is `host`: `restic key passwd` takes the lock and
/// waits for the new password on stdin; it is killed there.
fn stale_restic_lock(repo: &Path, host: &str) {
    let pw = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pw.path(), PASSPHRASE).unwrap();
    let mut child = Command::new("unshare")
        .args(["--uts", "sh", "-c"])
        .arg(format!(
            "hostname {host} && exec restic -r {} key passwd",
            repo.display()
        ))
        .env("RESTIC_PASSWORD_FILE", pw.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The lock file appears before its contents are written: wait until restic itself reads it
    // back with the host in it, or the kill could leave an empty file that restic ignores.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let restic = |args: &[&str]| {
        Command::new("restic")
            .args(["--no-lock", "-r", repo.to_str().unwrap()])
            .args(args)
            .env("RESTIC_PASSWORD_FILE", pw.path())
            .env("RESTIC_CACHE_DIR", repo.with_extension("cache"))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let written = || {
        restic(&["list", "locks"])
            .lines()
            .any(|id| restic(&["cat", "lock", id]).contains(&format!("\"{host}\"")))
    };
    while !written() {
        assert!(std::time::Instant::now() < deadline, "restic took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn restic_locks_of_gone_movers_are_removed_and_others_are_not() {
    let tc = TestCluster::start("shop");
    passphrase_secret(&tc);
    tc.pvc_with_files("data", &[], &[("file", "precious\n")]);
    let repos = empty_pvc(&tc, "repos");
    let repo = repos.join("restic");
    crate::backup::restic(repo.to_str().unwrap(), &["init"], &[]);
    let cfg = tc.config(
        "shop",
        &format!(
            "  snapshots:\n    targets: [{{pvc: data}}]\n  repositories:\n{}  offsite:\n    volumes:\n      repositories: [restic]\n",
            pvc_repository("restic", "restic", "restic", &["lockWait: 2s"]),
        ),
    );
    assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
    let lock_count = || std::fs::read_dir(repo.join("locks")).unwrap().count();

    // Another holder: waited for, reported by name, left in place.
    stale_restic_lock(&repo, "admin-laptop");
    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let (ok, why) = results(&report(&r))["restic"].clone();
    assert!(!ok && why.contains("admin-laptop"), "{why}");
    assert_eq!(lock_count(), 1, "another holder's lock is never removed");
    crate::backup::restic(repo.to_str().unwrap(), &["unlock", "--remove-all"], &[]);

    // A gone mover of this namespace: removed, logged, and the copy goes through.
    let prefix = kentledge::mover::pod::mover_prefix(&tc.namespace);
    stale_restic_lock(&repo, &format!("{prefix}0000-0"));
    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("breaking a stale lock"), "{}", r.stderr);
    assert_eq!(lock_count(), 0);
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );
}

#[test]
fn files_the_mover_cannot_read_fail_the_copy_and_leave_no_archive() {
    let tc = TestCluster::start("shop");
    let sshd = Sshd::start();
    let rest = crate::servers::rclone("restic", &[]);
    passphrase_secret(&tc);
    remote_secrets(&tc, &sshd);
    let data = tc.pvc_with_files(
        "data",
        &[],
        &[("open", "anyone\n"), ("locked", "root only\n")],
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data.join("locked"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    let borg_path = sshd.server.dir.path().join("borg-repo");
    let spec = |user: u32| {
        format!(
            r#"  snapshots:
    targets: [{{pvc: data}}]
  repositories:
{borg}    - name: restic
      restic:
        repository: rest:http://127.0.0.1:{rest_port}/shop
        password: {{secret: repo-pass, key: passphrase}}
        init: true
  offsite:
    volumes:
      repositories: [borg, restic]
  mover:
    securityContext: {{runAsUser: {user}, runAsGroup: {user}, fsGroup: {user}}}
"#,
            borg = ssh_repository("borg", "borg", &sshd, &borg_path, "known_hosts"),
            rest_port = rest.port,
        )
    };
    // A mover that is not root cannot read a root-only file of the read-only clone.
    let cfg = tc.config("shop", &spec(1000));
    assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
    let snap = only_snapshot(&tc);
    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    for (repo, (ok, why)) in results(&report(&r)) {
        assert!(!ok, "{repo}");
        for words in [
            "incomplete: 1 item(s) could not be read",
            "locked",
            "was removed",
            "runs as uid 1000",
            "spec.mover.securityContext",
        ] {
            assert!(why.contains(words), "{repo}: {words:?} in {why}");
        }
    }
    assert!(
        !snapshot_labels(&tc, &snap)
            .keys()
            .any(|k| k.starts_with("backed-up.")),
        "an incomplete copy is not a backup"
    );
    let base = tempfile::tempdir().unwrap();
    let borg_list = crate::backup::borg(
        &["list", "--short", borg_path.to_str().unwrap()],
        base.path(),
        base.path(),
    );
    assert_eq!(borg_list.trim(), "", "no incomplete borg archive is left");
    let rest_repo = format!("rest:http://127.0.0.1:{}/shop", rest.port);
    let snaps: Value = serde_json::from_str(&crate::backup::restic(
        &rest_repo,
        &["snapshots", "--json"],
        &[],
    ))
    .unwrap();
    assert_eq!(snaps, json!([]), "no incomplete restic snapshot is left");
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );

    // As root (the default) the same snapshot is copied whole.
    let cfg = tc.config("shop", &spec(0));
    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    crate::backup::borg_extract_and_compare(borg_path.to_str().unwrap(), &data);
    crate::backup::restic_restore_and_compare(&rest_repo, &[], &data);
}

/// The borg caches on a repository's cache volume (`<volume>/borg/.cache/borg/<repository id>`).
fn borg_caches(tc: &TestCluster, repository: &str) -> Vec<std::path::PathBuf> {
    let dir = tc
        .volume_dir(&kentledge::mover::pod::cache_pvc_name("shop", repository))
        .join("borg/.cache/borg");
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_mover_deleted_mid_copy_fails_the_run_and_the_next_breaks_the_locks_it_left_in_the_repository_and_the_cache()
 {
    let tc = TestCluster::start("shop");
    passphrase_secret(&tc);
    let data = tc.pvc_with_files("data", &[], &[]);
    std::fs::write(
        data.join("big.bin"),
        crate::support::incompressible(400 << 20, 7),
    )
    .unwrap();
    std::fs::write(data.join("small.txt"), "precious\n").unwrap();
    empty_pvc(&tc, "repos");
    // The default config: no `cache:` set, so the borg repository gets its cache volume.
    let cfg = tc.config(
        "shop",
        &format!(
            "  snapshots:\n    targets: [{{pvc: data}}]\n  repositories:\n{}  offsite:\n    volumes:\n      repositories: [borg]\n",
            pvc_repository("borg", "borg", "borg", &["init: true", "lockWait: 3s"]),
        ),
    );
    assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
    let child = tc
        .kentledge(&cfg)
        .args(["backup", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // borg create holds the repository's lock and its cache's while it copies.
    let held = tc.wait(120, "borg create holding the cache's lock", || {
        borg_caches(&tc, "borg")
            .into_iter()
            .find(|c| c.join("lock.exclusive").exists())
    });
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(tc.client(), &tc.namespace);
    let mover = tc
        .block_on(pods.list(&ListParams::default().labels("kentledge.io/role=mover")))
        .unwrap()
        .items
        .remove(0)
        .metadata
        .name
        .unwrap();
    // Its node goes away: the pod is deleted at once.
    tc.block_on(pods.delete(&mover, &kube::api::DeleteParams::default().grace_period(0)))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let (ok, why) = results(&serde_json::from_str(&stdout).unwrap())["borg"].clone();
    assert!(
        !ok && why.contains(&mover),
        "names the mover that went away: {why}"
    );
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );
    let snap = only_snapshot(&tc);
    assert!(
        !snapshot_labels(&tc, &snap)
            .keys()
            .any(|k| k.starts_with("backed-up.")),
        "nothing is labelled copied"
    );

    // Whether or not the killed borg got to remove its locks, a dead mover's lock is left in
    // the cache (as SIGKILL leaves it): the next run breaks it and copies.
    let prefix = kentledge::mover::pod::mover_prefix(&tc.namespace);
    let gone = format!("{prefix}0000-0");
    std::fs::create_dir_all(held.join("lock.exclusive")).unwrap();
    std::fs::write(held.join(format!("lock.exclusive/{gone}.7-0")), "").unwrap();
    std::fs::write(
        held.join("lock.roster"),
        json!({"exclusive": [[gone, 7, 0]], "shared": []}).to_string(),
    )
    .unwrap();
    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("breaking a stale lock"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&gone),
        "names the gone holder: {}",
        r.stderr
    );
    assert!(snapshot_labels(&tc, &snap).contains_key("backed-up.kentledge.io/borg"));
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );
    // The copy kept borg's caches on the volume, its files cache apart from other series'.
    let cache = &borg_caches(&tc, "borg")[0];
    let files = format!("files.kentledge_shop_{}_vol_data", tc.namespace);
    assert!(cache.join(&files).exists(), "{files} in {cache:?}");
    assert!(cache.join("chunks").exists());
    assert!(
        cache.join("chunks.archive.d").is_file(),
        "the per-archive chunk indices are off (borg's switch: a file in the directory's place)"
    );
    assert!(
        !cache.join("lock.exclusive").exists(),
        "the cache's lock is released"
    );
    crate::backup::borg_extract_and_compare(
        tc.volume_dir("repos").join("borg").to_str().unwrap(),
        &data,
    );
}

#[test]
fn a_clone_that_never_binds_fails_its_copy_naming_its_class_and_leaves_nothing() {
    let tc = TestCluster::start("unbound");
    passphrase_secret(&tc);
    let data = tc.pvc_with_files("data", &[], &[("file", "precious\n")]);
    empty_pvc(&tc, "repos");
    crate::backup::never_binding_class(&tc);
    let spec = |clone: &str| {
        format!(
            "  snapshots:\n    targets: [{{pvc: data}}]\n  repositories:\n{}  offsite:\n    volumes:\n      repositories: [borg]\n  mover:\n    clone: {clone}\n",
            pvc_repository("borg", "borg", "borg", &["init: true"]),
        )
    };
    let cfg = tc.config(
        "unbound",
        &spec("{storageClassName: nowhere, bindTimeout: 3s}"),
    );
    assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let (ok, reason) = results(&report(&r))["borg"].clone();
    assert!(!ok);
    assert!(
        reason.contains(
            "did not bind within spec.mover.clone.bindTimeout 3s (Pending, storage class nowhere)"
        ),
        "{reason}"
    );
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );
    let snapshot = only_snapshot(&tc);
    assert!(
        !snapshot_labels(&tc, &snapshot).contains_key("backed-up.kentledge.io/borg"),
        "nothing is labelled copied"
    );
    // With the source's own class the next run copies.
    let cfg = tc.config("unbound", &spec("{bindTimeout: 3s}"));
    let again = run(tc.kentledge(&cfg).arg("backup"));
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(snapshot_labels(&tc, &snapshot).contains_key("backed-up.kentledge.io/borg"));
    crate::signals::archive_equals(&tc, &data);
}

/// The archives (borg) or snapshot ids (restic) in the repository `repos`/`engine`.
fn archives(tc: &TestCluster, engine: &str) -> Vec<String> {
    let repo = tc.volume_dir("repos").join(engine);
    if engine == "borg" {
        return crate::backup::borg_archive_names(&repo);
    }
    let snaps: Value = serde_json::from_str(&crate::backup::restic(
        repo.to_str().unwrap(),
        &["snapshots", "--json"],
        &[],
    ))
    .unwrap();
    snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_borg_repository_volume_that_fills_up_fails_the_copy_keeps_what_it_had_and_the_next_run_after_growing_it_copies()
 {
    fills_up("borg");
}

#[test]
fn a_restic_repository_volume_that_fills_up_fails_the_copy_keeps_what_it_had_and_the_next_run_after_growing_it_copies()
 {
    fills_up("restic");
}

/// A copy into `engine`'s repository on a small volume that fills up: the job says the
/// repository is full (without the engine's traceback), nothing is left behind, the archives it
/// had stay, the snapshot is not labelled copied; once the claim is grown the next run copies it.
fn fills_up(engine: &str) {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    use k8s_openapi::api::storage::v1::StorageClass;
    let tc = TestCluster::start(&format!("full-{engine}"));
    passphrase_secret(&tc);
    // A class whose volumes hold no more than their size, and a small repository volume of it.
    let sc: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": "small"}, "provisioner": kentledge_nodeagents::storage::DRIVER,
        "parameters": {"limitCapacity": "true"}, "allowVolumeExpansion": true}))
    .unwrap();
    tc.block_on(Api::<StorageClass>::all(tc.client()).create(&Default::default(), &sc))
        .unwrap();
    let _: PersistentVolumeClaim = tc.create(json!({
        "metadata": {"name": "repos"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "small",
                 "resources": {"requests": {"storage": "8Mi"}}}}));
    let data = tc.pvc_with_files("data", &[], &[("small.txt", "precious\n")]);
    std::fs::write(
        data.join("first.bin"),
        crate::support::incompressible(1 << 20, 5),
    )
    .unwrap();
    let cfg = tc.config(
        "full",
        &format!(
            "  snapshots:\n    targets: [{{pvc: data}}]\n  repositories:\n{}  offsite:\n    volumes:\n      repositories: [{engine}]\n",
            pvc_repository(engine, engine, engine, &["init: true"]),
        ),
    );
    assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
    let r = run(tc.kentledge(&cfg).arg("backup"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let before = archives(&tc, engine);
    assert_eq!(before.len(), 1, "{before:?}");

    // 12 MiB more than the 8 MiB volume holds.
    std::fs::write(
        data.join("second.bin"),
        crate::support::incompressible(12 << 20, 6),
    )
    .unwrap();
    assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let (ok, reason) = results(&report(&r))[engine].clone();
    assert!(!ok);
    assert!(
        reason.to_lowercase().contains("no space left on device")
            && reason.contains(&format!("the storage of repository {engine} is full"))
            && !reason.contains("Traceback"),
        "the job says the repository is full, without a traceback: {reason}"
    );
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );
    assert_eq!(archives(&tc, engine), before, "the archive it had is kept");
    let copied = |tc: &TestCluster| {
        let newest = crate::signals::newest(tc);
        snapshot_labels(tc, &newest).contains_key(&format!("backed-up.kentledge.io/{engine}"))
    };
    assert!(
        !copied(&tc),
        "the snapshot that did not fit is not labelled copied"
    );

    // The admin grows the claim; the next run copies the snapshot that did not fit.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(tc.client(), &tc.namespace);
    tc.block_on(claims.patch(
        "repos",
        &Default::default(),
        &kube::api::Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": "64Mi"}}}})),
    ))
    .unwrap();
    tc.wait(20, "the repository volume to grow", || {
        let c = tc.block_on(claims.get("repos")).ok()?;
        (c.status?.capacity?.get("storage")?.0 == "64Mi").then_some(())
    });
    let again = run(tc.kentledge(&cfg).arg("backup"));
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(copied(&tc), "copied after growing the repository volume");
    assert_eq!(archives(&tc, engine).len(), 2);
    let repo = tc.volume_dir("repos").join(engine);
    if engine == "borg" {
        crate::signals::archive_equals(&tc, &data);
    } else {
        crate::backup::restic_restore_and_compare(repo.to_str().unwrap(), &[], &data);
    }
}

#[test]
fn a_snapshot_that_never_becomes_ready_fails_its_run_is_never_copied_and_the_next_run_works() {
    let tc = TestCluster::start("neverready");
    passphrase_secret(&tc);
    let data = tc.pvc_with_files("data", &[], &[("small.txt", "precious\n")]);
    empty_pvc(&tc, "repos");
    // A driver that cuts but never finishes (its upload hangs).
    crate::snapshot::slow_class(&tc, "stuck", "readyDelay", "60m");
    let config = |class: &str| {
        format!(
            "  snapshots:\n    volumeSnapshotClassName: {class}\n    readyTimeout: 2s\n    targets: [{{pvc: data}}]\n    retention: {{last: 5}}\n  repositories:\n{}  offsite:\n    volumes:\n      repositories: [borg]\n",
            pvc_repository("borg", "borg", "borg", &["init: true"])
        )
    };
    let cfg = tc.config("neverready", &config("stuck"));
    let r = run(tc.kentledge(&cfg).args(["snapshot"]));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("not ready within readyTimeout 2s"),
        "{}",
        r.stdout
    );
    let name = only_snapshot(&tc);
    assert!(!kentledge::model::snapshots::is_ready(
        crate::snapshot::snapshots(&tc).first()
    ));
    // A backup never copies it: it says there is nothing ready and starts no mover.
    let b = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(b.code, 1, "a run that copies nothing fails: {}", b.stderr);
    assert!(
        b.stdout.contains("no ready snapshot of this config"),
        "{}{}",
        b.stdout,
        b.stderr
    );
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );
    assert!(
        !snapshot_labels(&tc, &name).contains_key("backed-up.kentledge.io/borg"),
        "the stuck snapshot is not labelled copied"
    );
    // Prune keeps it within its grace (it may still become ready).
    let p = run(tc.kentledge(&cfg).arg("prune"));
    assert_eq!(p.code, 0, "{}{}", p.stdout, p.stderr);
    assert!(
        crate::snapshot::snapshots(&tc)
            .iter()
            .any(|s| s.metadata.name.as_ref() == Some(&name)),
        "prune keeps a not-ready snapshot within its grace"
    );
    // Once the driver works again, the next runs snapshot and copy.
    let cfg = tc.config("neverready", &config("hostpath-snapclass"));
    let r = run(tc.kentledge(&cfg).args(["snapshot"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let b = run(tc.kentledge(&cfg).arg("backup"));
    assert_eq!(b.code, 0, "{}{}", b.stdout, b.stderr);
    crate::signals::archive_equals(&tc, &data);
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );
}

/// Removes the borg repository's backed-up label from snapshot `name`, as a run killed after its
/// copy and before its label leaves it.
fn unlabel(tc: &TestCluster, name: &str) {
    let api: Api<VolumeSnapshot> = Api::namespaced(tc.client(), &tc.namespace);
    let patch = json!({"metadata": {"labels": {"backed-up.kentledge.io/borg": null}}});
    tc.block_on(api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(patch),
    ))
    .unwrap();
}

#[test]
fn an_archive_of_another_snapshot_cut_in_the_same_second_is_not_taken_for_this_snapshots_copy() {
    let tc = TestCluster::start("samesecond");
    passphrase_secret(&tc);
    let data = tc.pvc_with_files("data", &[], &[("file.txt", "first\n")]);
    empty_pvc(&tc, "repos");
    let cfg = tc.config("samesecond", &data_to_borg(&["init: true"]));
    assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
    let first = only_snapshot(&tc);
    let b = run(tc.kentledge(&cfg).arg("backup"));
    assert_eq!(b.code, 0, "{}{}", b.stdout, b.stderr);
    assert_eq!(archives(&tc, "borg").len(), 1);

    // Copied, but the label was never written: the next run finds the archive, and its comment
    // says it holds this snapshot, so it labels it without copying again.
    unlabel(&tc, &first);
    let b = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(b.code, 0, "{}{}", b.stdout, b.stderr);
    assert!(
        snapshot_labels(&tc, &first).contains_key("backed-up.kentledge.io/borg"),
        "labelled copied again"
    );
    assert_eq!(archives(&tc, "borg").len(), 1, "no second archive");

    // A second snapshot of other data, cut in the same second as the first (its cut time made
    // so here), while the first's label is again missing: the archive of that second holds the
    // first snapshot, not this one.
    std::fs::write(data.join("file.txt"), "second\n").unwrap();
    crate::support::next_second();
    assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
    let api: Api<VolumeSnapshot> = Api::namespaced(tc.client(), &tc.namespace);
    let cut = tc
        .block_on(api.get(&first))
        .unwrap()
        .status
        .unwrap()
        .creation_time;
    let second = crate::signals::newest(&tc);
    assert_ne!(second, first);
    tc.block_on(api.patch_status(
        &second,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"status": {"creationTime": cut}})),
    ))
    .unwrap();
    unlabel(&tc, &first);
    let b = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(b.code, 1, "{}{}", b.stdout, b.stderr);
    let (ok, said) = results(&report(&b))["borg"].clone();
    assert!(!ok, "{said}");
    assert!(
        said.contains("already exists")
            && said.contains(&format!("kentledge snapshot {first}"))
            && said.contains(&format!("snapshot {second} was cut in the same second")),
        "{said}"
    );
    assert!(
        !snapshot_labels(&tc, &second).contains_key("backed-up.kentledge.io/borg"),
        "the second snapshot is not labelled copied"
    );
    assert_eq!(archives(&tc, "borg").len(), 1);
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );
}
