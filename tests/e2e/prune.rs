//! `kentledge prune` for snapshots on the local test cluster: snapshots with chosen cut times
//! and readiness are created through the API (their class belongs to another driver, so the
//! local snapshot controller leaves them alone; status is written as an admin may), then pruned.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kentledge::model::snapshots::VolumeSnapshot;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::cluster::TestCluster;
use crate::support::run;

pub(crate) const NOW: &str = "2026-11-22T12:30:00Z";

fn foreign_class(tc: &TestCluster) {
    let classes: Api<kube::core::DynamicObject> = Api::all_with(
        tc.client(),
        &kentledge_nodeagents::storage::snapshot_class_resource(),
    );
    let c: kube::core::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass", "metadata": {"name": "foreign"},
        "driver": "other.csi.example.com", "deletionPolicy": "Delete"})).unwrap();
    tc.block_on(classes.create(&PostParams::default(), &c))
        .unwrap();
}

/// Creates a kentledge snapshot of `pvc` cut at `time`.
pub(crate) fn seed(
    tc: &TestCluster,
    config: &str,
    pvc: &str,
    time: Timestamp,
    ready: bool,
) -> String {
    let api: Api<VolumeSnapshot> = Api::namespaced(tc.client(), &tc.namespace);
    tc.block_on(seed_with(&api, config, pvc, time, ready))
}

/// [`seed`] on a client of the test's own (many at once).
pub(crate) async fn seed_with(
    api: &Api<VolumeSnapshot>,
    config: &str,
    pvc: &str,
    time: Timestamp,
    ready: bool,
) -> String {
    let name = format!("{pvc}-{}", time.strftime("%Y%m%d-%H%M%S"));
    let vs: VolumeSnapshot = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "kentledge", "kentledge.io/config": config, "kentledge.io/pvc": pvc, "kentledge.io/run": "seeded"}},
        "spec": {"source": {"persistentVolumeClaimName": pvc}, "volumeSnapshotClassName": "foreign"},
    }))
    .unwrap();
    api.create(&PostParams::default(), &vs).await.unwrap();
    let status = json!({"status": {"creationTime": time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(), "readyToUse": ready, "boundVolumeSnapshotContentName": format!("content-{name}")}});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    name
}

pub(crate) fn hourly(tc: &TestCluster, config: &str, pvc: &str, hours: i64) -> Vec<String> {
    let now: Timestamp = NOW.parse().unwrap();
    (1..=hours)
        .map(|h| seed(tc, config, pvc, now - SignedDuration::from_hours(h), true))
        .collect()
}

pub(crate) fn labels(tc: &TestCluster) -> BTreeMap<String, BTreeMap<String, String>> {
    let api: Api<VolumeSnapshot> = Api::namespaced(tc.client(), &tc.namespace);
    tc.block_on(api.list(&ListParams::default()))
        .unwrap()
        .items
        .into_iter()
        .map(|s| {
            (
                s.metadata.name.unwrap(),
                s.metadata.labels.unwrap_or_default(),
            )
        })
        .collect()
}

fn with_label<'a>(
    all: &'a BTreeMap<String, BTreeMap<String, String>>,
    key: &str,
) -> BTreeSet<&'a str> {
    all.iter()
        .filter(|(_, l)| l.contains_key(key))
        .map(|(n, _)| n.as_str())
        .collect()
}

pub(crate) fn setup(ns: &str, pvcs: &[&str]) -> TestCluster {
    let tc = TestCluster::start(ns);
    foreign_class(&tc);
    for p in pvcs {
        tc.pvc_with_files(p, &[], &[]);
    }
    tc
}

const POLICY: &str = "  timezone: Europe/Berlin\n  snapshots:\n    targets: [{pvc: data}]\n    retention: {hourly: 24, daily: 7, weekly: 4}\n    deleteAfter: 24h\n    maxDeletesPerSecond: 1000\n";

#[test]
fn a_month_of_hourly_snapshots_is_marked_to_the_policy_then_swept() {
    let tc = setup("month", &["data"]);
    let names = hourly(&tc, "month", "data", 30 * 24);
    let newest = names[0].clone();
    let cfg = tc.config("month", POLICY);

    let before = tc.kentledge_requests().len();
    let r = run(tc
        .kentledge(&cfg)
        .args(["prune", "--dry-run", "--now", NOW]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    tc.assert_only_reads_since(before, "a dry run made a write request");
    assert!(
        r.stdout.contains("dry run: prune of config month"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("hourly 2026-11-22T12, daily 2026-11-22, weekly 2026-W47, newest ready"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("(nothing was changed)"), "{}", r.stdout);

    let r = run(tc.kentledge(&cfg).args(["prune", "--now", NOW]));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let all = labels(&tc);
    assert_eq!(all.len(), 720, "the first prune only marks");
    let hourly_kept = with_label(&all, "kentledge.io/keep-hourly");
    let daily_kept = with_label(&all, "kentledge.io/keep-daily");
    let weekly_kept = with_label(&all, "kentledge.io/keep-weekly");
    let marked = with_label(&all, "kentledge.io/delete-after");
    assert_eq!(hourly_kept.len(), 24);
    // The last 24 hours span two local days (Berlin); their newest are already kept by hourly
    // (labelled, not counted, as in borg), then seven more days are counted: 9 labelled.
    assert_eq!(daily_kept.len(), 9);
    let days: BTreeSet<&str> = daily_kept
        .iter()
        .map(|n| all[*n]["kentledge.io/keep-daily"].as_str())
        .collect();
    assert_eq!(days.len(), 9, "one per day");
    // Derived by hand (Berlin): W47 and W46 were already kept by hourly/daily (labelled, not
    // counted); W45, W44 and W43 are counted; the data ends, so borg's "oldest" rule keeps the
    // oldest snapshot for the missing fourth week.
    let expected: BTreeSet<&str> = [
        "data-20261122-113000",
        "data-20261115-223000",
        "data-20261108-223000",
        "data-20261101-223000",
        "data-20261025-223000",
        "data-20261023-123000",
    ]
    .into();
    assert_eq!(weekly_kept, expected);
    let kept: BTreeSet<&str> = hourly_kept
        .union(&daily_kept)
        .chain(weekly_kept.iter())
        .cloned()
        .collect();
    assert!(kept.contains(newest.as_str()));
    assert_eq!(
        marked.len() + kept.len(),
        720,
        "every snapshot is either kept or marked"
    );
    assert!(marked.is_disjoint(&kept));
    let mark = &all[*marked.iter().next().unwrap()]["kentledge.io/delete-after"];
    assert_eq!(mark, "20261123T123000Z", "now + deleteAfter");

    // Before the mark is due nothing is deleted; after it, the marked ones go.
    let r = run(tc
        .kentledge(&cfg)
        .args(["prune", "--now", "2026-11-23T12:00:00Z"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(labels(&tc).len(), 720);
    let r = run(tc
        .kentledge(&cfg)
        .args(["prune", "--now", "2026-11-23T12:30:00Z", "-o", "json"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["summary"]["deleted"], marked.len());
    let left: BTreeSet<String> = labels(&tc).into_keys().collect();
    assert_eq!(left.len(), 720 - marked.len());
    assert!(marked.iter().all(|m| !left.contains(*m)));
}

#[test]
fn a_removed_mark_a_pin_and_a_clone_source_are_honoured() {
    let tc = setup("rescue", &["data"]);
    let names = hourly(&tc, "rescue", "data", 5);
    let cfg = tc.config(
        "rescue",
        "  snapshots:\n    targets: [{pvc: data}]\n    retention: {last: 1}\n",
    );
    let r = run(tc.kentledge(&cfg).args(["prune", "--now", NOW]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let api: Api<VolumeSnapshot> = Api::namespaced(tc.client(), &tc.namespace);
    let (unmarked, pinned, source) = (&names[1], &names[2], &names[3]);
    // A person removes one mark, pins another; a PVC is restored from a third.
    tc.block_on(api.patch(
        unmarked,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"kentledge.io/delete-after": null}}})),
    ))
    .unwrap();
    tc.block_on(api.patch(
        pinned,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"kentledge.io/pin": "true"}}})),
    ))
    .unwrap();
    let _: PersistentVolumeClaim = tc.create(json!({
        "metadata": {"name": "restored"},
        "spec": {"storageClassName": "none", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "dataSource": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": source}},
    }));
    let r = run(tc
        .kentledge(&cfg)
        .args(["prune", "--now", "2026-11-24T00:00:00Z"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let all = labels(&tc);
    assert!(all.contains_key(&names[0]), "the newest stays");
    assert!(
        all[unmarked].contains_key("kentledge.io/delete-after"),
        "a removed mark is set again, not swept"
    );
    assert!(
        all.contains_key(pinned) && !all[pinned].contains_key("kentledge.io/delete-after"),
        "pinned: kept, mark removed"
    );
    assert!(all.contains_key(source), "the source of a PVC survives");
    assert!(
        r.stdout.contains("hold: source of PVC restored"),
        "{}",
        r.stdout
    );
    assert!(
        !all.contains_key(&names[4]),
        "an ordinary marked one is deleted"
    );
    assert!(r.stdout.contains("rescued 1"), "{}", r.stdout);
}

#[test]
fn series_are_separate_per_pvc_and_never_mix_by_prefix() {
    let tc = setup("series", &["db", "db-wal", "other"]);
    let now: Timestamp = NOW.parse().unwrap();
    // db has old snapshots only; db-wal has newer ones. Each is its own series.
    let db: Vec<String> = (0..3)
        .map(|d| {
            seed(
                &tc,
                "series",
                "db",
                now - SignedDuration::from_hours(48 + 24 * d),
                true,
            )
        })
        .collect();
    let wal: Vec<String> = (0..3)
        .map(|h| {
            seed(
                &tc,
                "series",
                "db-wal",
                now - SignedDuration::from_hours(h + 1),
                true,
            )
        })
        .collect();
    // Another config's snapshot is never touched.
    let foreign = seed(
        &tc,
        "someone-else",
        "other",
        now - SignedDuration::from_hours(500),
        true,
    );
    let cfg = tc.config(
        "series",
        "  snapshots:\n    targets: [{pvc: db}, {pvc: db-wal}]\n    retention: {daily: 1}\n",
    );
    let r = run(tc.kentledge(&cfg).args(["prune", "--now", NOW]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let all = labels(&tc);
    assert!(
        all[&db[0]].contains_key("kentledge.io/keep-daily"),
        "db keeps its own newest"
    );
    assert!(all[&db[1]].contains_key("kentledge.io/delete-after"));
    assert!(
        all[&wal[0]].contains_key("kentledge.io/keep-daily"),
        "db-wal keeps its own newest"
    );
    assert!(all[&wal[1]].contains_key("kentledge.io/delete-after"));
    assert_eq!(
        all[&foreign].get("kentledge.io/delete-after"),
        None,
        "another config's snapshot is untouched"
    );
    assert_eq!(all[&foreign].get("kentledge.io/keep-daily"), None);
    assert!(
        r.stdout.contains("PVC db (3 snapshots)") && r.stdout.contains("PVC db-wal (3 snapshots)"),
        "{}",
        r.stdout
    );
}

#[test]
fn not_ready_snapshots_go_after_their_grace_and_never_displace_ready_ones() {
    let tc = setup("notready", &["data"]);
    let now: Timestamp = NOW.parse().unwrap();
    let good = seed(
        &tc,
        "notready",
        "data",
        now - SignedDuration::from_hours(30),
        true,
    );
    let broken = seed(
        &tc,
        "notready",
        "data",
        now - SignedDuration::from_hours(2),
        false,
    );
    let cfg = tc.config("notready", "  snapshots:\n    targets: [{pvc: data}]\n    retention: {last: 1}\n    notReadyGrace: 1h\n");
    let r = run(tc.kentledge(&cfg).args(["prune", "--now", NOW]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let all = labels(&tc);
    assert!(
        all.contains_key(&good) && !all[&good].contains_key("kentledge.io/delete-after"),
        "the last ready one is kept: {}",
        r.stdout
    );
    assert!(
        !all.contains_key(&broken),
        "the never-ready one is deleted after its grace"
    );
    assert!(r.stdout.contains("not ready (grace ended"), "{}", r.stdout);
}

#[test]
fn retain_contents_are_held_and_snapshots_newer_than_the_last_offsite_copy_are_kept() {
    let tc = setup("holds", &["data"]);
    let names = hourly(&tc, "holds", "data", 6);
    // names[4] has a content with deletionPolicy Retain.
    let contents: Api<kube::core::DynamicObject> = Api::all_with(
        tc.client(),
        &kentledge_nodeagents::storage::snapshot_content_resource(),
    );
    let c: kube::core::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent", "metadata": {"name": format!("content-{}", names[4])},
        "spec": {"deletionPolicy": "Retain", "driver": "other.csi.example.com", "source": {"snapshotHandle": "h"},
                 "volumeSnapshotRef": {"name": names[4], "namespace": "holds"}},
    }))
    .unwrap();
    tc.block_on(contents.create(&PostParams::default(), &c))
        .unwrap();
    // names[2] was copied offsite: everything newer (names[0], names[1]) must stay.
    let api: Api<VolumeSnapshot> = Api::namespaced(tc.client(), &tc.namespace);
    tc.block_on(api.patch(
        &names[2],
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"labels": {"backed-up.kentledge.io/offsite": "20261122T100000Z"}}}),
        ),
    ))
    .unwrap();
    let cfg = tc.config("holds", "  snapshots:\n    targets: [{pvc: data}]\n    retention: {within: 1m}\n    keepUntilBackedUp: true\n    deleteAfter: 1s\n");
    let r = run(tc.kentledge(&cfg).args(["prune", "--now", NOW]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(tc
        .kentledge(&cfg)
        .args(["prune", "--now", "2026-11-22T13:00:00Z"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let left: BTreeSet<String> = labels(&tc).into_keys().collect();
    assert!(left.contains(&names[0]), "newest ready");
    assert!(
        left.contains(&names[1]),
        "newer than the last offsite copy: {}",
        r.stdout
    );
    assert!(
        left.contains(&names[4]),
        "Retain content held: {}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("has deletionPolicy Retain (would be orphaned)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("hold: not yet copied offsite"),
        "{}",
        r.stdout
    );
    for gone in [&names[2], &names[3], &names[5]] {
        assert!(!left.contains(gone), "{gone} should be swept: {}", r.stdout);
    }
}
