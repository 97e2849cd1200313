//! `kentledge snapshot` on the local test cluster, run as the ServiceAccount of manifests/:
//! selection, labels, hooks (order, output, failures, timeouts), errors, a killed run's late cut
//! (signals in every phase: `signals::`), the run lock and dry runs.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use kentledge::model::snapshots::VolumeSnapshot;
use kube::api::{Api, ListParams};
use serde_json::json;

use crate::cluster::TestCluster;
use crate::support::run;

pub(crate) fn snapshots(tc: &TestCluster) -> Vec<VolumeSnapshot> {
    let api: Api<VolumeSnapshot> = Api::namespaced(tc.client(), &tc.namespace);
    let mut l = tc.block_on(api.list(&ListParams::default())).unwrap().items;
    l.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    l
}

fn label<'a>(s: &'a VolumeSnapshot, key: &str) -> &'a str {
    s.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
        .unwrap_or("")
}

fn by_pvc(list: &[VolumeSnapshot]) -> BTreeMap<String, &VolumeSnapshot> {
    list.iter()
        .map(|s| {
            (
                s.spec
                    .source
                    .persistent_volume_claim_name
                    .clone()
                    .unwrap_or_default(),
                s,
            )
        })
        .collect()
}

#[test]
fn several_pvcs_by_name_label_and_workload_in_one_run() {
    let tc = TestCluster::start("shop");
    tc.pvc_with_files("data", &[], &[("a.txt", "a")]);
    tc.pvc_with_files("media-1", &[("app", "media")], &[("m.txt", "m")]);
    tc.pvc_with_files("media-2", &[("app", "media")], &[]);
    tc.pvc_with_files("other", &[], &[]);
    let _: StatefulSet = tc.create(json!({
        "metadata": {"name": "db"},
        "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "mariadb", "command": ["sleep", "3600"],
                     "volumeMounts": [{"name": "mysql", "mountPath": "/var/lib/mysql"}]}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "mysql"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]},
    }));
    tc.volume_dir("mysql-db-0");
    let cfg = tc.config("shop", "  snapshots:\n    targets:\n      - pvc: data\n      - selector: {matchLabels: {app: media}}\n      - workload: {kind: StatefulSet, name: db}\n");
    let r = run(tc.kentledge(&cfg).arg("snapshot"));
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    let list = snapshots(&tc);
    let by = by_pvc(&list);
    assert_eq!(
        by.keys().map(String::as_str).collect::<Vec<_>>(),
        ["data", "media-1", "media-2", "mysql-db-0"]
    );
    let run_id = label(&list[0], "kentledge.io/run").to_owned();
    assert!(!run_id.is_empty());
    for s in &list {
        assert_eq!(label(s, "app.kubernetes.io/managed-by"), "kentledge");
        assert_eq!(label(s, "kentledge.io/config"), "shop");
        assert_eq!(
            label(s, "kentledge.io/run"),
            run_id,
            "one run id for the whole run"
        );
        assert_eq!(
            label(s, "kentledge.io/pvc"),
            s.spec
                .source
                .persistent_volume_claim_name
                .as_deref()
                .unwrap()
        );
        assert_eq!(
            s.spec.volume_snapshot_class_name.as_deref(),
            Some("hostpath-snapclass"),
            "the driver's default class"
        );
        assert_eq!(s.status.as_ref().and_then(|st| st.ready_to_use), Some(true));
        assert!(
            s.metadata.name.as_deref().unwrap().starts_with(
                s.spec
                    .source
                    .persistent_volume_claim_name
                    .as_deref()
                    .unwrap()
            )
        );
    }
    assert!(r.stdout.contains("snapshot run"), "{}", r.stdout);
    assert!(r.stdout.contains("mysql-db-0"), "{}", r.stdout);
    // --target narrows exactly
    let r = run(tc
        .kentledge(&cfg)
        .args(["snapshot", "--target", "media-1", "-o", "json"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["snapshots"].as_array().unwrap().len(), 1);
    assert_eq!(v["snapshots"][0]["pvc"], "media-1");
    assert_eq!(v["snapshots"][0]["ready"], true);
}

const HOOKED: &str = "  snapshots:
    targets: [{pvc: data}]
    hooks:
      - name: first
        pod: {name: app}
        exec:
          pre: [sh, -c, 'echo pre-first >> /data/hooks.log; echo said-first']
          post: [sh, -c, 'echo post-first >> /data/hooks.log']
      - name: second
        pod: {selector: {matchLabels: {app: web}}}
        exec:
          pre: [sh, -c, 'echo pre-second >> /data/hooks.log']
          post: [sh, -c, 'echo post-second >> /data/hooks.log']
";

fn hook_log(tc: &TestCluster) -> String {
    std::fs::read_to_string(tc.volume_dir("data").join("hooks.log")).unwrap_or_default()
}

#[test]
fn hooks_run_in_order_around_the_snapshot_and_are_recorded() {
    let tc = TestCluster::start("hooks");
    tc.pvc_with_files("data", &[], &[]);
    tc.sleeper(
        "app",
        &[("app", "web")],
        &[
            (
                "kentledge.io/pre-snapshot",
                "echo pre-annotation >> /data/hooks.log",
            ),
            (
                "kentledge.io/post-snapshot",
                "echo post-annotation >> /data/hooks.log",
            ),
        ],
        &["data"],
    );
    let cfg = tc.config("hooks", HOOKED);
    let r = run(tc.kentledge(&cfg).arg("snapshot"));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        hook_log(&tc),
        "pre-first\npre-second\npre-annotation\npost-annotation\npost-second\npost-first\n"
    );
    assert!(
        r.stderr.contains("said-first"),
        "hook output is logged: {}",
        r.stderr
    );
    assert!(r.stdout.contains("freeze window:"), "{}", r.stdout);
    let list = snapshots(&tc);
    assert_eq!(list.len(), 1);
    let note = list[0]
        .metadata
        .annotations
        .as_ref()
        .unwrap()
        .get("kentledge.io/hooks")
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(note).unwrap();
    // The pre-hooks that froze the application, written when the snapshot was created.
    assert_eq!(v.as_array().unwrap().len(), 3, "{v}");
    assert!(
        v.as_array().unwrap().iter().all(|h| h["phase"] == "pre"),
        "{v}"
    );
    assert_eq!(
        v[0],
        json!({"hook": "first", "phase": "pre", "pod": "app", "result": "exit code 0"})
    );
    // The snapshot holds what the pre-hooks wrote, not what the post-hooks wrote.
}

#[test]
fn a_failing_pre_hook_means_no_snapshot_and_the_started_posts_still_run() {
    let tc = TestCluster::start("failing");
    tc.pvc_with_files("data", &[], &[]);
    tc.sleeper("app", &[("app", "web")], &[], &["data"]);
    let cfg = tc.config(
        "failing",
        &HOOKED.replace(
            "echo pre-second >> /data/hooks.log",
            "echo pre-second >> /data/hooks.log; echo broken >&2; exit 7",
        ),
    );
    let r = run(tc.kentledge(&cfg).arg("snapshot"));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        snapshots(&tc).is_empty(),
        "no snapshot after a failed pre-hook"
    );
    assert_eq!(
        hook_log(&tc),
        "pre-first\npre-second\npost-second\npost-first\n"
    );
    assert!(
        r.stdout
            .contains("failed: pre-hook second in app failed: exit code 7"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("broken"),
        "stderr of the hook is logged: {}",
        r.stderr
    );
}

#[test]
fn a_hook_that_hangs_is_stopped_by_its_timeout() {
    let tc = TestCluster::start("hangs");
    tc.pvc_with_files("data", &[], &[]);
    tc.sleeper("app", &[("app", "web")], &[], &["data"]);
    let cfg = tc.config("hangs", "  snapshots:\n    targets: [{pvc: data}]\n    hooks:\n      - name: stuck\n        pod: {name: app}\n        exec: {pre: [sleep, '30'], post: [sh, -c, 'echo released > /data/post']}\n        timeout: 1s\n");
    let started = std::time::Instant::now();
    let r = run(tc.kentledge(&cfg).arg("snapshot"));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        r.stdout.contains("pre-hook stuck in app failed: timed out"),
        "{}",
        r.stdout
    );
    assert_eq!(
        std::fs::read_to_string(tc.volume_dir("data").join("post")).unwrap(),
        "released\n"
    );
    assert!(snapshots(&tc).is_empty());
}

#[test]
fn a_driver_error_is_reported_and_fails_the_run() {
    let tc = TestCluster::start("driver");
    tc.pvc_with_files("data", &[], &[]);
    let classes: Api<kube::core::DynamicObject> = Api::all_with(
        tc.client(),
        &kentledge_nodeagents::storage::snapshot_class_resource(),
    );
    let broken: kube::core::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass", "metadata": {"name": "broken"},
        "driver": kentledge_nodeagents::storage::DRIVER, "deletionPolicy": "Delete", "parameters": {"fail": "the disk is on fire"}})).unwrap();
    tc.block_on(classes.create(&Default::default(), &broken))
        .unwrap();
    let cfg = tc.config("driver", "  snapshots:\n    volumeSnapshotClassName: broken\n    targets: [{pvc: data}]\n    cutTimeout: 20s\n");
    let r = run(tc.kentledge(&cfg).arg("snapshot"));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("the disk is on fire"), "{}", r.stdout);
    // Deleted by the run; the snapshot controller releases its finalizers a moment later.
    tc.wait(30, "the failed snapshot, never cut, is deleted", || {
        snapshots(&tc).is_empty().then_some(())
    });
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(tc.client(), &tc.namespace);
    let failed: Vec<_> = tc
        .block_on(events.list(&ListParams::default()))
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("SnapshotFailed"))
        .collect();
    assert_eq!(failed.len(), 1, "one Event on the PVC");
    assert_eq!(failed[0].involved_object.name.as_deref(), Some("data"));
    assert!(
        failed[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("the disk is on fire")
    );
}

#[test]
fn a_dry_run_prints_the_plan_and_writes_nothing() {
    let tc = TestCluster::start("dry");
    tc.pvc_with_files("data", &[], &[]);
    tc.sleeper("app", &[("app", "web")], &[], &["data"]);
    let cfg = tc.config("dry", HOOKED);
    let before = tc.kentledge_requests().len();
    let r = run(tc.kentledge(&cfg).args(["snapshot", "--dry-run"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    tc.assert_only_reads_since(before, "a dry run made a write request");
    assert!(
        r.stdout.contains("take the run lock (Lease kentledge-dry)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("pre-hook first in app/main"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("of PVC data with class hostpath-snapclass"),
        "{}",
        r.stdout
    );
    assert!(snapshots(&tc).is_empty());
}

pub(crate) fn slow_class(tc: &TestCluster, name: &str, param: &str, value: &str) {
    let classes: Api<kube::core::DynamicObject> = Api::all_with(
        tc.client(),
        &kentledge_nodeagents::storage::snapshot_class_resource(),
    );
    let c: kube::core::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass", "metadata": {"name": name},
        "driver": kentledge_nodeagents::storage::DRIVER, "deletionPolicy": "Delete", "parameters": {param: value}})).unwrap();
    tc.block_on(classes.create(&Default::default(), &c))
        .unwrap();
}

const SIGNAL_HOOKS: &str = "    hooks:
      - name: freeze
        pod: {name: app}
        exec:
          pre: [sh, -c, 'echo frozen > /data/pre; sleep 5']
          post: [sh, -c, 'echo thawed > /data/post']
        timeout: 30s
";

#[test]
fn a_second_concurrent_run_fails_clearly_naming_the_holder() {
    let tc = TestCluster::start("lock");
    let data = tc.pvc_with_files("data", &[], &[]);
    tc.sleeper("app", &[], &[], &["data"]);
    let cfg = tc.config(
        "lock",
        &format!(
            "  snapshots:\n    targets: [{{pvc: data}}]\n{}",
            SIGNAL_HOOKS.replace("sleep 5", "sleep 3")
        ),
    );
    let first = tc
        .kentledge(&cfg)
        .arg("snapshot")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tc.wait(20, "the first run to hold the lock", || {
        data.join("pre").exists().then_some(())
    });
    let second = run(tc
        .kentledge(&cfg)
        .args(["snapshot", "--lock-timeout", "1s"]));
    assert_eq!(second.code, 4, "{}\n{}", second.stdout, second.stderr);
    assert!(
        second
            .stderr
            .contains("another run of config lock holds the lock (Lease kentledge-lock, holder "),
        "{}",
        second.stderr
    );
    let first = first.wait_with_output().unwrap();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // The lock is free again: a third run succeeds at once.
    let third = run(tc
        .kentledge(&cfg)
        .args(["snapshot", "--lock-timeout", "1s"]));
    assert_eq!(third.code, 0, "{}", third.stderr);
}

#[test]
fn a_lock_whose_holder_stopped_renewing_is_taken_over() {
    let tc = TestCluster::start("stale");
    tc.pvc_with_files("data", &[], &[]);
    let _: k8s_openapi::api::coordination::v1::Lease = tc.create(json!({
        "metadata": {"name": "kentledge-stale"},
        "spec": {"holderIdentity": "killed-run@old-pod", "leaseDurationSeconds": 60,
                 "renewTime": "2026-01-01T00:00:00.000000Z", "acquireTime": "2026-01-01T00:00:00.000000Z"},
    }));
    let cfg = tc.config("stale", "  snapshots:\n    targets: [{pvc: data}]\n");
    let r = run(tc
        .kentledge(&cfg)
        .args(["snapshot", "--lock-timeout", "1s"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("taking over a run lock whose holder stopped renewing it"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("killed-run@old-pod"), "{}", r.stderr);
    assert_eq!(snapshots(&tc).len(), 1);
}

/// A held session whose pre-command takes a lock on the volume (`flock` on
/// `/data/frozen.lock`) for as long as the session lives, as `FLUSH TABLES WITH READ LOCK` does.
pub(crate) const FLOCK_SESSION: &str = "    hooks:
      - name: hold
        pod: {name: app}
        session:
          command: [sh]
          pre: 'exec 9>/data/frozen.lock && flock 9 && echo kentledge-frozen'
          readyMarker: kentledge-frozen
          post: 'echo thawed > /data/post'
        timeout: 30s
";

/// Whether the session's lock on the volume is held now.
pub(crate) fn frozen(data: &std::path::Path) -> bool {
    !std::process::Command::new("flock")
        .args(["-n"])
        .arg(data.join("frozen.lock"))
        .arg("true")
        .status()
        .unwrap()
        .success()
}

#[test]
fn sigkill_while_waiting_for_the_cut_releases_the_application_and_the_next_run_deletes_the_unconfirmed_snapshot()
 {
    let tc = TestCluster::start("killcut");
    let data = tc.pvc_with_files("data", &[], &[]);
    tc.sleeper("app", &[], &[], &["data"]);
    slow_class(&tc, "slow-cut", "cutDelay", "4s");
    crate::backup::passphrase_secret(&tc);
    crate::backup::empty_pvc(&tc, "repos");
    let cfg = tc.config(
        "killcut",
        &format!(
            "  snapshots:\n    volumeSnapshotClassName: slow-cut\n    targets: [{{pvc: data}}]\n{FLOCK_SESSION}  repositories:\n{}  offsite:\n    volumes:\n      repositories: [borg]\n",
            crate::backup::pvc_repository("borg", "borg", "borg", &["init: true"]),
        ),
    );
    let r = crate::support::signal_at(
        tc.kentledge(&cfg).arg("snapshot"),
        "VolumeSnapshot created",
        libc::SIGKILL,
        30,
    );
    assert_eq!(r.code, 128 + libc::SIGKILL, "{}", r.stderr);
    // The session died with kentledge: the application is not frozen (the lock is free).
    tc.wait(
        15,
        "the held session's lock to go with the killed run",
        || (!frozen(&data)).then_some(()),
    );
    assert!(
        !data.join("post").exists(),
        "no post-hook ran: kentledge was killed"
    );
    let killed = snapshots(&tc);
    assert_eq!(killed.len(), 1);
    let killed = killed[0].metadata.name.clone().unwrap();
    // The driver cuts it later, after the freeze had gone: it is not consistent, and a backup
    // does not copy it (the killed run still holds the lock: nobody has swept yet).
    tc.wait(20, "the late cut", || {
        snapshots(&tc)
            .iter()
            .any(|s| kentledge::model::snapshots::is_ready(Some(s)))
            .then_some(())
    });
    tc.age_lease("kentledge-killcut");
    let b = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    assert!(
        b.stderr
                        .contains("not copying a snapshot whose run has not confirmed it was cut while the application was frozen"),
        "{}",
        b.stderr
    );
    let doc: serde_json::Value = serde_json::from_str(&b.stdout).unwrap();
    assert_eq!(doc["jobs"].as_array().map(Vec::len), Some(0), "{doc}");
    assert_eq!(doc["skipped"][0]["pvc"], "data", "{doc}");

    let r = run(tc.kentledge(&cfg).args(["snapshot", "-o", "json"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("deleting a snapshot of a killed run that never confirmed it was cut while the application was frozen")
            && r.stderr.contains(&killed),
        "{}",
        r.stderr
    );
    tc.wait(20, "the unconfirmed snapshot to be gone", || {
        snapshots(&tc)
            .iter()
            .all(|s| s.metadata.name.as_deref() != Some(&killed))
            .then_some(())
    });
    let left = snapshots(&tc);
    assert_eq!(left.len(), 1, "the new run's snapshot");
    assert!(kentledge::model::snapshots::is_ready(Some(&left[0])));
    assert_eq!(
        std::fs::read_to_string(data.join("post")).unwrap(),
        "thawed\n"
    );
    assert!(!frozen(&data));
}
