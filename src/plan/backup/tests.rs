//! The backup plan on fixed configs and snapshots: which snapshot of each PVC is copied, what is
//! skipped and why, copies already made, and the `--from`, `--target` and `--repository`
//! narrowing with their errors.

use super::*;

const CONFIG: &str = "apiVersion: kentledge.io/v1alpha1\nkind: BackupConfig\nmetadata: {name: shop, namespace: shop}\nspec:\n  snapshots:\n    targets: [{pvc: data}, {pvc: logs}]\n  repositories:\n    - name: r\n      restic:\n        pvc: {claimName: repos}\n        password: {secret: s, key: k}\n    - name: b\n      borg:\n        pvc: {claimName: repos, path: borg}\n        passphrase: {secret: s, key: k}\n  offsite:\n    volumes:\n      repositories: [r, b]\n";

fn snapshot(name: &str, pvc: &str, status: serde_json::Value) -> VolumeSnapshot {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": name, "labels": {PVC: pvc}},
        "spec": {"source": {"persistentVolumeClaimName": pvc}},
        "status": status,
    }))
    .unwrap()
}

fn ready(name: &str, pvc: &str, cut: &str) -> VolumeSnapshot {
    snapshot(
        name,
        pvc,
        serde_json::json!({"readyToUse": true, "creationTime": cut}),
    )
}

fn pvc(name: &str) -> PersistentVolumeClaim {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name},
        "spec": {"volumeName": format!("pv-{name}")}, "status": {"phase": "Bound"}}))
    .unwrap()
}

/// Plans with `from`, `targets` and `repositories` as the flags give them.
fn plan_with(
    snaps: &[VolumeSnapshot],
    from: Option<&str>,
    targets: &[&str],
    repositories: &[&str],
) -> Result<Plan, Vec<String>> {
    let config = crate::config::parse("t.yaml", CONFIG).unwrap();
    let pvcs = vec![pvc("data"), pvc("logs")];
    let targets: Vec<String> = targets.iter().map(|s| s.to_string()).collect();
    let repositories: Vec<String> = repositories.iter().map(|s| s.to_string()).collect();
    plan(&Inputs {
        config: &config,
        namespace: "shop",
        run_id: "r1",
        observed: Observed {
            pvcs: &pvcs,
            deployments: &[],
            statefulsets: &[],
        },
        snapshots: snaps,
        from,
        targets: &targets,
        repositories: &repositories,
        owner: None,
    })
}

fn copies(p: &Plan) -> Vec<(String, String, String)> {
    p.jobs
        .iter()
        .map(|j| (j.pvc.clone(), j.repository.clone(), j.snapshot.clone()))
        .collect()
}

fn c(pvc: &str, repo: &str, snap: &str) -> (String, String, String) {
    (pvc.into(), repo.into(), snap.into())
}

#[test]
fn the_newest_ready_snapshot_of_each_pvc_goes_to_every_repository() {
    let snaps = [
        ready("data-old", "data", "2026-11-20T10:00:00Z"),
        ready("data-new", "data", "2026-11-21T10:00:00Z"),
        snapshot(
            "data-newer-not-ready",
            "data",
            serde_json::json!({"readyToUse": false, "creationTime": "2026-11-22T10:00:00Z"}),
        ),
        ready("logs-1", "logs", "2026-11-21T11:00:00Z"),
        {
            // What an in-place restore replaced: newer, ready, and never copied.
            let mut s = ready("data-safety", "data", "2026-11-23T10:00:00Z");
            s.metadata.labels.get_or_insert_default().insert(
                crate::model::labels::SAFETY_LABEL.to_owned(),
                "r9".to_owned(),
            );
            s
        },
    ];
    let p = plan_with(&snaps, None, &[], &[]).unwrap();
    assert_eq!(
        copies(&p),
        [
            c("data", "r", "data-new"),
            c("data", "b", "data-new"),
            c("logs", "r", "logs-1"),
            c("logs", "b", "logs-1"),
        ]
    );
    assert!(p.skipped.is_empty());
}

#[test]
fn a_pvc_without_a_ready_snapshot_is_skipped_with_the_reason() {
    let p = plan_with(
        &[ready("data-1", "data", "2026-11-21T10:00:00Z")],
        None,
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(p.skipped.len(), 1);
    assert_eq!(p.skipped[0].pvc, "logs");
    assert!(
        p.skipped[0].reason.contains("no ready snapshot"),
        "{}",
        p.skipped[0].reason
    );
}

#[test]
fn a_ready_snapshot_without_a_cut_time_is_skipped_not_named_1970() {
    let p = plan_with(
        &[
            snapshot("data-1", "data", serde_json::json!({"readyToUse": true})),
            ready("logs-1", "logs", "2026-11-21T11:00:00Z"),
        ],
        None,
        &[],
        &[],
    )
    .unwrap();
    assert!(p.jobs.iter().all(|j| j.pvc == "logs"), "{:?}", copies(&p));
    assert_eq!(p.skipped.len(), 1);
    assert!(
        p.skipped[0].reason.contains("has no cut time"),
        "{}",
        p.skipped[0].reason
    );
}

#[test]
fn copies_already_made_are_not_planned_again() {
    let mut s = ready("data-1", "data", "2026-11-21T10:00:00Z");
    s.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(
            crate::model::labels::backed_up_label("r"),
            "20261121T110000Z".into(),
        );
    let p = plan_with(
        &[s, ready("logs-1", "logs", "2026-11-21T11:00:00Z")],
        None,
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(
        copies(&p),
        [
            c("data", "b", "data-1"),
            c("logs", "r", "logs-1"),
            c("logs", "b", "logs-1")
        ]
    );
    assert_eq!(p.already.len(), 1);
    assert_eq!(
        (p.already[0].pvc.as_str(), p.already[0].repository.as_str()),
        ("data", "r")
    );
}

#[test]
fn a_snapshot_cut_in_the_same_second_as_one_already_in_borg_is_not_taken_for_copied() {
    let label = |mut s: VolumeSnapshot, repo: &str| {
        s.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(
                crate::model::labels::backed_up_label(repo),
                "20261121T100001Z".into(),
            );
        s
    };
    // data-1 is in both repositories; data-2, cut in the same second, would get data-1's borg
    // archive name (restic has no names: it is copied there).
    let first = label(
        label(ready("data-1", "data", "2026-11-21T10:00:00Z"), "b"),
        "r",
    );
    let p = plan_with(
        &[
            first.clone(),
            ready("data-2", "data", "2026-11-21T10:00:00Z"),
        ],
        None,
        &["data"],
        &[],
    )
    .unwrap();
    assert_eq!(copies(&p), [c("data", "r", "data-2")]);
    assert_eq!(p.skipped.len(), 1, "{:?}", p.skipped);
    assert_eq!(p.skipped[0].pvc, "data");
    assert!(
        p.skipped[0]
            .reason
            .contains("data-2 was cut in the same second as data-1")
            && p.skipped[0]
                .reason
                .contains("kentledge_shop_shop_vol_data_2026-11-21T10-00-00Z"),
        "{}",
        p.skipped[0].reason
    );
    // A second later, the names differ: copied.
    let p = plan_with(
        &[first, ready("data-2", "data", "2026-11-21T10:00:01Z")],
        None,
        &["data"],
        &[],
    )
    .unwrap();
    assert_eq!(
        copies(&p),
        [c("data", "r", "data-2"), c("data", "b", "data-2")]
    );
    assert!(p.skipped.is_empty(), "{:?}", p.skipped);
}

#[test]
fn from_copies_that_snapshot_only_and_refuses_what_it_cannot_use() {
    let snaps = [
        ready("data-old", "data", "2026-11-20T10:00:00Z"),
        ready("data-new", "data", "2026-11-21T10:00:00Z"),
        snapshot(
            "data-pending",
            "data",
            serde_json::json!({"readyToUse": false}),
        ),
    ];
    let p = plan_with(&snaps, Some("data-old"), &[], &[]).unwrap();
    assert_eq!(
        copies(&p),
        [c("data", "r", "data-old"), c("data", "b", "data-old")]
    );
    let e = plan_with(&snaps, Some("nope"), &[], &[]).unwrap_err();
    assert_eq!(e, ["--from nope: no such VolumeSnapshot in namespace shop"]);
    let e = plan_with(&snaps, Some("data-pending"), &[], &[]).unwrap_err();
    assert_eq!(e, ["--from data-pending: the snapshot is not ready to use"]);
}

#[test]
fn target_and_repository_narrow_the_copies_and_unknown_ones_are_errors() {
    let snaps = [
        ready("data-1", "data", "2026-11-21T10:00:00Z"),
        ready("logs-1", "logs", "2026-11-21T11:00:00Z"),
    ];
    let p = plan_with(&snaps, None, &["logs"], &["b"]).unwrap();
    assert_eq!(copies(&p), [c("logs", "b", "logs-1")]);
    let e = plan_with(&snaps, None, &["cache"], &["x"]).unwrap_err();
    assert_eq!(
        e,
        [
            "--repository x: not a repository spec.offsite copies to (b, r)",
            "--target cache: not a volume, database or bucket this config backs up",
        ]
    );
}

/// The mover job JSON is a contract with mover images of the same version: written from the
/// output before the job had its own types, it must not change.
#[test]
fn jobs_on_the_wire_are_unchanged() {
    let c = crate::config::parse(
        "t.yaml",
        "apiVersion: kentledge.io/v1alpha1\nkind: BackupConfig\nmetadata: {name: shop, namespace: shop}\nspec:\n  snapshots:\n    targets: [{pvc: data}]\n  repositories:\n    - name: b\n      borg:\n        repository: ssh://borg@backup:2222/./shop\n        passphrase: {secret: s, key: p}\n        sshKey: {secret: s, key: k}\n        knownHosts: {secret: s, key: h}\n        init: true\n        compression: zstd,3\n        remotePath: borg-1.4\n      retention: {last: 3, hourly: 24, daily: 7, weekly: 4, monthly: 12, yearly: 2, within: 2d}\n    - name: r\n      restic:\n        repository: s3:http://127.0.0.1:9000/backups/shop\n        password: {secret: s, key: k}\n        s3: {accessKeyId: {secret: s3, key: id}, secretAccessKey: {secret: s3, key: secret}}\n        compression: max\n        init: true\n      retention: {keep: all}\n    - name: f\n      restic:\n        repository: sftp:restic@backup:/srv/restic\n        password: {secret: s, key: k}\n        sshKey: {secret: s, key: k}\n        insecureSkipHostKeyCheck: true\n    - name: v\n      borg:\n        pvc: {claimName: repos, path: shop/}\n        encryption: none\n  offsite:\n    volumes:\n      repositories: [b, r]\n",
    )
    .unwrap();
    let series = Series {
        config: "shop".into(),
        namespace: "shop".into(),
        kind: SeriesKind::Volume,
        name: "data".into(),
    };
    let cut: Timestamp = "2026-11-22T10:00:07Z".parse().unwrap();
    let jobs: Vec<(String, String)> = c
        .spec
        .repositories
        .iter()
        .map(|r| {
            let backup = Job {
                repository: access(r, "shop"),
                action: Action::Backup {
                    series: series.clone(),
                    cut,
                    snapshot: "data-20261122-100007-k3x9".into(),
                    upload_limit: Some(1_048_576),
                    exclude: vec!["lost+found".into()],
                },
            };
            let prune = Job {
                repository: access(r, "shop"),
                action: Action::Prune {
                    config: "shop".into(),
                    namespace: "shop".into(),
                    retention: r.retention.as_ref().map(Into::into).unwrap_or_default(),
                    timezone: "Europe/Berlin".into(),
                    now: cut,
                    dry_run: false,
                },
            };
            (backup.to_arg(), prune.to_arg())
        })
        .collect();
    let expected = [
        (
            r#"{"repository":{"name":"b","engine":"borg","location":"ssh://borg@backup:2222/./shop","init":"repokey-blake2","passphrase":true,"ssh":{"key":true,"knownHosts":true,"insecure":false},"lockWaitSecs":600,"remotePath":"borg-1.4","compression":"zstd,3","moverPrefix":"kentledge-mover-a847e0-"},"action":"backup","series":{"config":"shop","namespace":"shop","kind":"vol","name":"data"},"cut":"2026-11-22T10:00:07Z","snapshot":"data-20261122-100007-k3x9","upload_limit":1048576,"exclude":["lost+found"]}"#,
            r#"{"repository":{"name":"b","engine":"borg","location":"ssh://borg@backup:2222/./shop","init":"repokey-blake2","passphrase":true,"ssh":{"key":true,"knownHosts":true,"insecure":false},"lockWaitSecs":600,"remotePath":"borg-1.4","compression":"zstd,3","moverPrefix":"kentledge-mover-a847e0-"},"action":"prune","config":"shop","namespace":"shop","retention":{"keep":null,"last":3,"hourly":24,"daily":7,"weekly":4,"monthly":12,"yearly":2,"within":"2d"},"timezone":"Europe/Berlin","now":"2026-11-22T10:00:07Z","dry_run":false}"#,
        ),
        (
            r#"{"repository":{"name":"r","engine":"restic","location":"s3:http://127.0.0.1:9000/backups/shop","init":"","passphrase":true,"lockWaitSecs":600,"compression":"max","moverPrefix":"kentledge-mover-a847e0-"},"action":"backup","series":{"config":"shop","namespace":"shop","kind":"vol","name":"data"},"cut":"2026-11-22T10:00:07Z","snapshot":"data-20261122-100007-k3x9","upload_limit":1048576,"exclude":["lost+found"]}"#,
            r#"{"repository":{"name":"r","engine":"restic","location":"s3:http://127.0.0.1:9000/backups/shop","init":"","passphrase":true,"lockWaitSecs":600,"compression":"max","moverPrefix":"kentledge-mover-a847e0-"},"action":"prune","config":"shop","namespace":"shop","retention":{"keep":"all","last":null,"hourly":null,"daily":null,"weekly":null,"monthly":null,"yearly":null,"within":null},"timezone":"Europe/Berlin","now":"2026-11-22T10:00:07Z","dry_run":false}"#,
        ),
        (
            r#"{"repository":{"name":"f","engine":"restic","location":"sftp:restic@backup:/srv/restic","passphrase":true,"ssh":{"key":true,"knownHosts":false,"insecure":true},"lockWaitSecs":600,"moverPrefix":"kentledge-mover-a847e0-"},"action":"backup","series":{"config":"shop","namespace":"shop","kind":"vol","name":"data"},"cut":"2026-11-22T10:00:07Z","snapshot":"data-20261122-100007-k3x9","upload_limit":1048576,"exclude":["lost+found"]}"#,
            r#"{"repository":{"name":"f","engine":"restic","location":"sftp:restic@backup:/srv/restic","passphrase":true,"ssh":{"key":true,"knownHosts":false,"insecure":true},"lockWaitSecs":600,"moverPrefix":"kentledge-mover-a847e0-"},"action":"prune","config":"shop","namespace":"shop","retention":{"keep":null,"last":null,"hourly":null,"daily":null,"weekly":null,"monthly":null,"yearly":null,"within":null},"timezone":"Europe/Berlin","now":"2026-11-22T10:00:07Z","dry_run":false}"#,
        ),
        (
            r#"{"repository":{"name":"v","engine":"borg","location":"/repository/shop","passphrase":false,"lockWaitSecs":600,"moverPrefix":"kentledge-mover-a847e0-"},"action":"backup","series":{"config":"shop","namespace":"shop","kind":"vol","name":"data"},"cut":"2026-11-22T10:00:07Z","snapshot":"data-20261122-100007-k3x9","upload_limit":1048576,"exclude":["lost+found"]}"#,
            r#"{"repository":{"name":"v","engine":"borg","location":"/repository/shop","passphrase":false,"lockWaitSecs":600,"moverPrefix":"kentledge-mover-a847e0-"},"action":"prune","config":"shop","namespace":"shop","retention":{"keep":null,"last":null,"hourly":null,"daily":null,"weekly":null,"monthly":null,"yearly":null,"within":null},"timezone":"Europe/Berlin","now":"2026-11-22T10:00:07Z","dry_run":false}"#,
        ),
    ];
    assert_eq!(jobs.len(), expected.len());
    for ((backup, prune), (want_backup, want_prune)) in jobs.iter().zip(expected) {
        assert_eq!(backup, want_backup);
        assert_eq!(prune, want_prune);
        for arg in [backup, prune] {
            let back: Job = serde_json::from_str(arg).unwrap();
            assert_eq!(&back.to_arg(), arg);
        }
    }
}
