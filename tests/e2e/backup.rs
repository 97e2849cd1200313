//! `kentledge backup` on the local test cluster with real engines: a tricky tree copied through a
//! snapshot clone and a mover pod into borg and restic repositories, then extracted with the
//! engines directly and compared; what a run leaves behind; failures; locks; interruption.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kentledge::model::snapshots::VolumeSnapshot;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use crate::cluster::TestCluster;
use crate::servers::{self, Sshd};
use crate::support::run;
use crate::tree;

pub const PASSPHRASE: &str = "correct horse battery staple 42";

/// A Secret `repo-pass` with the repositories' passphrase.
pub fn passphrase_secret(tc: &TestCluster) {
    let _: Secret = tc.create(json!({
        "metadata": {"name": "repo-pass"},
        "stringData": {"passphrase": PASSPHRASE},
    }));
}

/// An empty bound PVC (for repositories on volumes) and its host directory.
pub fn empty_pvc(tc: &TestCluster, name: &str) -> PathBuf {
    tc.pvc_with_files(name, &[], &[])
}

/// Mover pods and clone PVCs of kentledge in the namespace.
/// The StorageClass `nowhere`, whose provisioner is not running here: nothing ever binds its
/// claims.
pub fn never_binding_class(tc: &TestCluster) {
    use k8s_openapi::api::storage::v1::StorageClass;
    let classes: Api<StorageClass> = Api::all(tc.client());
    let sc: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": "nowhere"}, "provisioner": "none.example.com"}))
    .unwrap();
    tc.block_on(classes.create(&Default::default(), &sc))
        .unwrap();
}

pub fn leftovers(tc: &TestCluster) -> Vec<String> {
    let sel = ListParams::default()
        .labels("app.kubernetes.io/managed-by=kentledge,kentledge.io/role in (mover,clone,reader,restore-target)");
    let pods: Api<Pod> = Api::namespaced(tc.client(), &tc.namespace);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(tc.client(), &tc.namespace);
    let mut out: Vec<String> = tc
        .block_on(pods.list(&sel))
        .unwrap()
        .items
        .into_iter()
        .map(|p| format!("pod/{}", p.metadata.name.unwrap()))
        .collect();
    out.extend(
        tc.block_on(pvcs.list(&sel))
            .unwrap()
            .items
            .into_iter()
            .map(|p| format!("pvc/{}", p.metadata.name.unwrap())),
    );
    out
}

/// Whether a Warning Event `reason` was recorded on PVC `pvc`.
pub fn has_event(tc: &TestCluster, reason: &str, pvc: &str) -> bool {
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(tc.client(), &tc.namespace);
    tc.block_on(events.list(&ListParams::default()))
        .unwrap()
        .items
        .iter()
        .any(|e| {
            e.reason.as_deref() == Some(reason) && e.involved_object.name.as_deref() == Some(pvc)
        })
}

pub fn snapshot_labels(tc: &TestCluster, name: &str) -> std::collections::BTreeMap<String, String> {
    let api: Api<VolumeSnapshot> = Api::namespaced(tc.client(), &tc.namespace);
    tc.block_on(api.get(name))
        .unwrap()
        .metadata
        .labels
        .unwrap_or_default()
}

pub fn only_snapshot(tc: &TestCluster) -> String {
    let api: Api<VolumeSnapshot> = Api::namespaced(tc.client(), &tc.namespace);
    let list = tc.block_on(api.list(&ListParams::default())).unwrap().items;
    assert_eq!(list.len(), 1, "one snapshot");
    list[0].metadata.name.clone().unwrap()
}

/// `borg` with the test passphrase.
pub fn borg(args: &[&str], cwd: &Path, base: &Path) -> String {
    let out = Command::new("borg")
        .args(args)
        .current_dir(cwd)
        .env("BORG_PASSPHRASE", PASSPHRASE)
        .env("BORG_BASE_DIR", base)
        .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
        .env("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "borg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `restic` on `repo` with the test password.
pub fn restic(repo: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, PASSPHRASE).unwrap();
    let out = Command::new("restic")
        .args(args)
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD_FILE", &pw)
        .env("RESTIC_CACHE_DIR", dir.path().join("cache"))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restic {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Extracts the only archive of a borg repository and compares it with `source`.
pub fn borg_extract_and_compare(repo: &str, source: &Path) -> String {
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("base");
    let list: Value =
        serde_json::from_str(&borg(&["list", "--json", repo], work.path(), &base)).unwrap();
    let archives = list["archives"].as_array().unwrap();
    let name = archives.last().unwrap()["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let target = work.path().join("restored");
    std::fs::create_dir_all(&target).unwrap();
    borg(
        &["extract", "--sparse", &format!("{repo}::{name}")],
        &target,
        &base,
    );
    tree::assert_same(source, &target);
    if source.join("sparse.img").exists() {
        assert!(
            tree::is_sparse(&target.join("sparse.img")),
            "borg extract --sparse keeps holes"
        );
    }
    name
}

/// Restores the newest restic snapshot and compares it with `source`.
pub fn restic_restore_and_compare(repo: &str, env: &[(&str, &str)], source: &Path) -> Value {
    let snaps: Value = serde_json::from_str(&restic(repo, &["snapshots", "--json"], env)).unwrap();
    let newest = snaps.as_array().unwrap().last().unwrap().clone();
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("restored");
    restic(
        repo,
        &[
            "restore",
            newest["id"].as_str().unwrap(),
            "--target",
            target.to_str().unwrap(),
        ],
        env,
    );
    // The mover backs up `.` in /data: the volume's contents are the snapshot's root.
    tree::assert_same(source, &target);
    newest
}

fn json_report(r: &crate::support::Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", r.stdout, r.stderr))
}

#[test]
fn volumes_are_copied_to_borg_and_restic_on_volumes_and_come_back_identical() {
    let tc = TestCluster::start("shop");
    passphrase_secret(&tc);
    let data = tc.pvc_with_files("data", &[], &[]);
    tree::build(&data);
    let borg_dir = empty_pvc(&tc, "borg-repo");
    let restic_dir = empty_pvc(&tc, "restic-repo");
    let cfg = tc.config(
        "shop",
        r#"  snapshots:
    targets: [{pvc: data}]
  repositories:
    - name: borg-local
      borg:
        pvc: {claimName: borg-repo, path: shop}
        passphrase: {secret: repo-pass, key: passphrase}
        init: true
        compression: lz4
    - name: restic-local
      restic:
        pvc: {claimName: restic-repo}
        password: {secret: repo-pass, key: passphrase}
        init: true
  offsite:
    volumes:
      repositories: [borg-local, restic-local]
"#,
    );
    let r = run(tc.kentledge(&cfg).arg("snapshot"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let snap = only_snapshot(&tc);

    // The dry run names everything and changes nothing.
    let before = tc.kentledge_requests().len();
    let r = run(tc.kentledge(&cfg).args(["backup", "--dry-run"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&snap) && r.stdout.contains("kentledge_shop_shop_vol_data_"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("kentledge-clone-") && r.stdout.contains("kentledge-mover-"),
        "{}",
        r.stdout
    );
    tc.assert_only_reads_since(before, "a dry run writes nothing");

    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // The first copy into each makes its repository and says so; borg's "does not exist"
    // (its copy is tried before the repository is made) is not passed on as an error.
    for name in [
        "borg-local (/repository/shop)",
        "restic-local (/repository)",
    ] {
        assert!(
            r.stderr.contains(&format!("creating repository {name}")),
            "{}",
            r.stderr
        );
    }
    assert!(!r.stderr.contains("does not exist"), "{}", r.stderr);
    let report = json_report(&r);
    let jobs = report["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    for j in jobs {
        assert_eq!(j["ok"], true, "{j}");
        assert!(j["bytes_read"].as_u64().unwrap() >= 6 * 1024 * 1024, "{j}");
    }
    // `kubectl describe pvc data` tells what happened: the snapshot, then each copy.
    let said = crate::support::events_of(&tc, "PersistentVolumeClaim", "data");
    for (reason, what) in [
        ("SnapshotTaken", snap.as_str()),
        (
            "BackedUp",
            "copied to borg-local (borg) as kentledge_shop_shop_vol_data_",
        ),
        ("BackedUp", "copied to restic-local (restic) as "),
    ] {
        assert!(
            said.iter()
                .any(|(t, r, m, _)| t == "Normal" && r == reason && m.contains(what)),
            "no Normal {reason} Event with {what:?}: {said:?}"
        );
    }
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );
    let labels = snapshot_labels(&tc, &snap);
    assert!(
        labels.contains_key("backed-up.kentledge.io/borg-local"),
        "{labels:?}"
    );
    assert!(
        labels.contains_key("backed-up.kentledge.io/restic-local"),
        "{labels:?}"
    );

    let archive = borg_extract_and_compare(borg_dir.join("shop").to_str().unwrap(), &data);
    assert!(
        archive.starts_with("kentledge_shop_shop_vol_data_"),
        "{archive}"
    );
    let snap_json = restic_restore_and_compare(restic_dir.to_str().unwrap(), &[], &data);
    let tags: Vec<&str> = snap_json["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tags.contains(&"name=data") && tags.contains(&"config=shop"),
        "{tags:?}"
    );

    // Running again copies nothing: the snapshot is already in both repositories.
    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let report = json_report(&r);
    assert_eq!(report["jobs"].as_array().unwrap().len(), 0, "{report}");
    assert_eq!(report["already"].as_array().unwrap().len(), 2, "{report}");

    // A new snapshot of unchanged data adds (almost) nothing.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = run(tc.kentledge(&cfg).arg("snapshot"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for j in json_report(&r)["jobs"].as_array().unwrap() {
        assert_eq!(j["ok"], true, "{j}");
        assert!(j["bytes_added"].as_u64().unwrap() < 64 * 1024, "dedup: {j}");
    }
    assert!(leftovers(&tc).is_empty());
}

/// Secrets for remote repositories: the ssh key and known_hosts, and the S3 keys.
/// A config's repository entry reaching the test sshd (secrets from [`remote_secrets`]): borg over
/// `ssh://` or restic over `sftp://`, with the `known_hosts` key given.
pub fn ssh_repository(
    name: &str,
    engine: &str,
    sshd: &Sshd,
    path: &Path,
    known_hosts: &str,
) -> String {
    let (port, path) = (sshd.server.port, path.display());
    // sftp's path after the authority is relative unless it starts with another slash.
    let location = match engine {
        "borg" => format!("repository: ssh://root@127.0.0.1:{port}{path}"),
        _ => format!("repository: sftp://root@127.0.0.1:{port}/{path}"),
    };
    repository_entry(
        name,
        engine,
        &location,
        &[
            "sshKey: {secret: ssh, key: key}",
            &format!("knownHosts: {{secret: ssh, key: {known_hosts}}}"),
            "init: true",
        ],
    )
}

/// A config's repository entry on the PVC `repos` at `path`, with the test passphrase and
/// `fields` (the engine's other settings, e.g. `init: true`).
/// A spec that snapshots the PVC `data` and copies it to the borg repository `borg` (in the
/// PVC `repos`, at `borg`) with `fields` (e.g. `init: true`).
pub fn data_to_borg(fields: &[&str]) -> String {
    format!(
        "  snapshots:\n    targets: [{{pvc: data}}]\n  repositories:\n{}  offsite:\n    volumes:\n      repositories: [borg]\n",
        pvc_repository("borg", "borg", "borg", fields),
    )
}

/// The archives of the borg repository at `repo`, by name, oldest first.
pub fn borg_archive_names(repo: &Path) -> Vec<String> {
    let work = tempfile::tempdir().unwrap();
    let list: serde_json::Value = serde_json::from_str(&borg(
        &["list", "--json", repo.to_str().unwrap()],
        work.path(),
        &work.path().join("base"),
    ))
    .unwrap();
    list["archives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

pub fn pvc_repository(name: &str, engine: &str, path: &str, fields: &[&str]) -> String {
    let location = format!("pvc: {{claimName: repos, path: {path}}}");
    repository_entry(name, engine, &location, fields)
}

fn repository_entry(name: &str, engine: &str, location: &str, fields: &[&str]) -> String {
    let secret = if engine == "borg" {
        "passphrase"
    } else {
        "password"
    };
    let mut entry = format!(
        "    - name: {name}\n      {engine}:\n        {location}\n        {secret}: {{secret: repo-pass, key: passphrase}}\n"
    );
    for f in fields {
        entry.push_str(&format!("        {f}\n"));
    }
    entry
}

pub fn remote_secrets(tc: &TestCluster, sshd: &Sshd) {
    let _: Secret = tc.create(json!({
        "metadata": {"name": "ssh"},
        "stringData": {"key": sshd.private_key, "known_hosts": sshd.known_hosts, "wrong_known_hosts": sshd.wrong_known_hosts},
    }));
    let _: Secret = tc.create(json!({
        "metadata": {"name": "s3"},
        "stringData": {"id": servers::S3_KEY, "secret": servers::S3_SECRET},
    }));
}

#[test]
fn volumes_are_copied_to_borg_over_ssh_and_restic_over_sftp_rest_and_s3() {
    let tc = TestCluster::start("shop");
    let sshd = Sshd::start();
    let rest = servers::rclone("restic", &[]);
    let s3 = servers::s3();
    passphrase_secret(&tc);
    remote_secrets(&tc, &sshd);
    let data = tc.pvc_with_files("data", &[], &[]);
    tree::build(&data);
    let borg_path = sshd.server.dir.path().join("borg-repo");
    let sftp_path = sshd.server.dir.path().join("restic-repo");
    let cfg = tc.config(
        "shop",
        &format!(
            r#"  snapshots:
    targets: [{{pvc: data}}]
  repositories:
{borg_ssh}{restic_sftp}    - name: restic-rest
      restic:
        repository: rest:http://127.0.0.1:{rest_port}/shop
        password: {{secret: repo-pass, key: passphrase}}
        init: true
    - name: restic-s3
      restic:
        repository: s3:http://127.0.0.1:{s3_port}/backups/shop
        password: {{secret: repo-pass, key: passphrase}}
        s3:
          accessKeyId: {{secret: s3, key: id}}
          secretAccessKey: {{secret: s3, key: secret}}
        init: true
  offsite:
    volumes:
      repositories: [borg-ssh, restic-sftp, restic-rest, restic-s3]
"#,
            borg_ssh = ssh_repository("borg-ssh", "borg", &sshd, &borg_path, "known_hosts"),
            restic_sftp = ssh_repository("restic-sftp", "restic", &sshd, &sftp_path, "known_hosts"),
            rest_port = rest.port,
            s3_port = s3.port,
        ),
    );
    let r = run(tc.kentledge(&cfg).arg("snapshot"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let watcher = Watcher::start(&tc);
    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json", "-vv"]));
    let seen = watcher.finish();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let report = json_report(&r);
    assert_eq!(report["jobs"].as_array().unwrap().len(), 4, "{report}");
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );

    // No secret value in kentledge's output and logs, the mover pods' specs (args, env) and
    // logs, Events, or the snapshots' labels and annotations.
    assert_eq!(seen.pods.len(), 4, "{:?}", seen.pods.keys());
    assert!(!seen.logs.is_empty());
    let secrets = [
        PASSPHRASE,
        sshd.private_key.as_str(),
        servers::S3_SECRET,
        servers::S3_KEY,
    ];
    assert_no_secrets("kentledge's stdout", &r.stdout, &secrets);
    assert_no_secrets("kentledge's stderr", &r.stderr, &secrets);
    for (name, pod) in &seen.pods {
        assert_no_secrets(&format!("pod {name}"), pod, &secrets);
    }
    assert!(
        seen.pods.values().any(|p| p.contains("secretKeyRef")),
        "S3 keys by reference"
    );
    for (name, log) in &seen.logs {
        assert_no_secrets(&format!("the log of {name}"), log, &secrets);
    }
    assert_no_secrets(
        "Events and snapshot metadata",
        &cluster_record(&tc),
        &secrets,
    );

    borg_extract_and_compare(borg_path.to_str().unwrap(), &data);
    // The sftp repository is a directory of the sshd's machine.
    restic_restore_and_compare(sftp_path.to_str().unwrap(), &[], &data);
    restic_restore_and_compare(
        &format!("rest:http://127.0.0.1:{}/shop", rest.port),
        &[],
        &data,
    );
    restic_restore_and_compare(
        &format!("s3:http://127.0.0.1:{}/backups/shop", s3.port),
        &[
            ("AWS_ACCESS_KEY_ID", servers::S3_KEY),
            ("AWS_SECRET_ACCESS_KEY", servers::S3_SECRET),
        ],
        &data,
    );
}

/// Watches mover pods while a run goes: their specs, their logs, and how many ran at once per
/// repository.
pub struct Watcher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<Seen>>,
}

#[derive(Default, Debug)]
pub struct Seen {
    /// Every mover pod as JSON.
    pub pods: std::collections::BTreeMap<String, String>,
    /// The last log read of each mover pod.
    pub logs: std::collections::BTreeMap<String, String>,
    /// The most mover pods that existed at once, per repository.
    pub max_at_once: std::collections::BTreeMap<String, usize>,
}

impl Watcher {
    pub fn start(tc: &TestCluster) -> Watcher {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let client = tc.client();
        let ns = tc.namespace.clone();
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let pods: Api<Pod> = Api::namespaced(client, &ns);
            let mut seen = Seen::default();
            let lp = ListParams::default().labels("kentledge.io/role=mover");
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(list) = rt.block_on(pods.list(&lp)) {
                    let mut per_repo: std::collections::BTreeMap<String, usize> =
                        Default::default();
                    for p in &list.items {
                        let name = p.metadata.name.clone().unwrap_or_default();
                        let repo = p
                            .metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get("kentledge.io/repository"))
                            .cloned()
                            .unwrap_or_default();
                        *per_repo.entry(repo).or_default() += 1;
                        seen.pods
                            .insert(name.clone(), serde_json::to_string(p).unwrap());
                        if let Ok(log) = rt.block_on(pods.logs(&name, &Default::default()))
                            && !log.is_empty()
                        {
                            seen.logs.insert(name, log);
                        }
                    }
                    for (repo, n) in per_repo {
                        let m = seen.max_at_once.entry(repo).or_default();
                        *m = (*m).max(n);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
            seen
        });
        Watcher {
            stop,
            handle: Some(handle),
        }
    }

    pub fn finish(mut self) -> Seen {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap()
    }
}

/// Everything a person or a log collector could see of a run in the cluster: Events and the
/// snapshots' labels and annotations.
pub fn cluster_record(tc: &TestCluster) -> String {
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(tc.client(), &tc.namespace);
    let snaps: Api<VolumeSnapshot> = Api::namespaced(tc.client(), &tc.namespace);
    let mut out = serde_json::to_string(
        &tc.block_on(events.list(&ListParams::default()))
            .unwrap()
            .items,
    )
    .unwrap();
    for s in tc
        .block_on(snaps.list(&ListParams::default()))
        .unwrap()
        .items
    {
        out.push_str(&serde_json::to_string(&s.metadata).unwrap());
    }
    out
}

/// Asserts that no secret value appears in `text` (whole values, and each line of multi-line ones).
pub fn assert_no_secrets(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        for piece in s
            .lines()
            .map(str::trim)
            .filter(|l| l.len() >= 12 && !l.starts_with("-----"))
        {
            assert!(!text.contains(piece), "a secret value appears in {what}");
        }
    }
}
