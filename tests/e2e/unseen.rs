//! kentledge never reports what it did not see. When the mover pods' logs cannot be read (a
//! kubelet that refuses log requests, or one that cuts the stream short), a copy is "result
//! unknown", no `backed-up` label is written on a guess, a repository prune's decisions are
//! unknown and the exit code says so, and a check (whose result is its exit code) still passes
//! with a note; the movers did their work all the same, which the repositories show. A label
//! that cannot be written makes a backup partial, and a run lock lost mid-run fails the run.

use std::path::Path;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::rbac::v1::Role;
use kentledge_nodeagents::node::LogFault;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::Value;

use crate::backup::{
    borg, empty_pvc, has_event, leftovers, only_snapshot, passphrase_secret, pvc_repository,
    restic, snapshot_labels,
};
use crate::cluster::TestCluster;
use crate::support::{Run, run};
use kentledge::model::snapshots::VolumeSnapshot;

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

/// A cluster with PVC `data` (one file), the repositories' passphrase, and a config that copies
/// `data` to `(engine, extra)`: a repository per engine on PVC `repos` (created by the mover),
/// named after it, with `extra` YAML lines under it. Returns the cluster, the repositories'
/// directory and the config.
fn setup(engines: &[(&str, &str)]) -> (TestCluster, std::path::PathBuf, std::path::PathBuf) {
    let tc = TestCluster::start("shop");
    passphrase_secret(&tc);
    tc.pvc_with_files("data", &[], &[("file", "precious\n")]);
    let repos = empty_pvc(&tc, "repos");
    let entries: String = engines
        .iter()
        .map(|(e, extra)| pvc_repository(e, e, e, &["init: true"]) + extra)
        .collect();
    let names: Vec<&str> = engines.iter().map(|(e, _)| *e).collect();
    let cfg = tc.config(
        "shop",
        &format!(
            "  snapshots:\n    targets: [{{pvc: data}}]\n  repositories:\n{entries}  offsite:\n    volumes:\n      repositories: [{}]\n",
            names.join(", ")
        ),
    );
    (tc, repos, cfg)
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
    let (tc, repos, cfg) = setup(&[
        ("borg", "      retention: {last: 1}\n"),
        ("restic", "      retention: {last: 1}\n"),
    ]);
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

#[test]
fn a_backed_up_label_that_cannot_be_written_makes_the_backup_partial() {
    let (tc, repos, cfg) = setup(&[("restic", "")]);
    assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
    let snap = only_snapshot(&tc);
    // An admin's Role without `patch` on VolumeSnapshots: kentledge cannot label.
    let roles: Api<Role> = Api::namespaced(tc.client(), &tc.namespace);
    let patch = serde_json::json!([{"op": "replace", "path": "/rules/0/verbs",
        "value": ["get", "list", "watch", "create", "delete"]}]);
    tc.block_on(roles.patch(
        "kentledge",
        &PatchParams::default(),
        &Patch::Json::<()>(serde_json::from_value(patch).unwrap()),
    ))
    .unwrap();
    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert_eq!(
        r.code, 3,
        "copied but not labelled is partial: {}{}",
        r.stdout, r.stderr
    );
    let job = &json(&r)["jobs"][0];
    assert_eq!(job["ok"], true, "{job}");
    assert!(
        job["label_error"].as_str().is_some_and(
            |e| e.contains("could not be labelled backed-up") && e.contains("forbidden")
        ),
        "{job}"
    );
    assert_eq!(restic_snapshots(&repos.join("restic")), 1);
    assert!(
        !snapshot_labels(&tc, &snap)
            .keys()
            .any(|k| k.starts_with("backed-up.")),
    );
}

#[test]
fn a_run_lock_deleted_during_the_run_fails_it() {
    let tc = TestCluster::start("shop");
    tc.pvc_with_files("data", &[], &[]);
    tc.sleeper("app", &[], &[], &["data"]);
    // The pre-hook lasts past the first renewal of the Lease (every 20 s).
    let cfg = tc.config(
        "shop",
        "  snapshots:\n    targets: [{pvc: data}]\n    hooks:\n      - name: slow\n        pod: {name: app}\n        exec: {pre: [sleep, '24'], post: [sh, -c, 'echo released > /data/post']}\n",
    );
    let child = tc
        .kentledge(&cfg)
        .arg("snapshot")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let leases: Api<Lease> = Api::namespaced(tc.client(), &tc.namespace);
    tc.wait(20, "the run lock", || {
        tc.block_on(leases.get_opt("kentledge-shop"))
            .unwrap()
            .map(|_| ())
    });
    tc.block_on(leases.delete("kentledge-shop", &DeleteParams::default()))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the run lock (Lease kentledge-shop) was deleted by someone else"),
        "{stderr}"
    );
    // The run itself finished: the application was released, the snapshot taken.
    assert_eq!(
        std::fs::read_to_string(tc.volume_dir("data").join("post")).unwrap(),
        "released\n"
    );
    only_snapshot(&tc);
}
