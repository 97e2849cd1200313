//! Restore plans on fixed snapshots and listings: which snapshot or archive a request names,
//! every refusal (not ready, another PVC, another config, no archive at or before a time, an
//! archive of another series), and the new PVC's shape.

use super::*;
use crate::model::labels::PVC_ANNOTATION;
use serde_json::json;

const CONFIG_YAML: &str = "apiVersion: kentledge.io/v1alpha1\nkind: BackupConfig\nmetadata: {name: shop, namespace: shop}\nspec:\n  snapshots:\n    targets: [{pvc: data}]\n  repositories:\n    - name: r\n      restic:\n        pvc: {claimName: repos}\n        password: {secret: s, key: k}\n    - name: b\n      borg:\n        pvc: {claimName: repos, path: borg}\n        passphrase: {secret: s, key: k}\n";

fn config() -> Config {
    crate::config::parse("t.yaml", CONFIG_YAML).unwrap()
}

fn snapshot(name: &str, pvc: &str, config: &str, status: serde_json::Value) -> VolumeSnapshot {
    serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": name, "labels": {CONFIG: config}, "annotations": {PVC_ANNOTATION: pvc}},
        "spec": {"source": {"persistentVolumeClaimName": pvc}},
        "status": status,
    }))
    .unwrap()
}

fn entry(kind: SeriesKind, series: &str, archive: &str, time: &str) -> ArchiveEntry {
    ArchiveEntry {
        kind,
        series: series.into(),
        archive: archive.into(),
        time: time.parse().unwrap(),
        size: Some(5 << 30),
        added: None,
        files: Some(3),
    }
}

#[test]
fn a_snapshot_must_be_this_configs_of_this_pvc_and_ready() {
    let ready =
        json!({"readyToUse": true, "creationTime": "2026-11-22T10:00:00Z", "restoreSize": "2Gi"});
    let snaps = vec![
        snapshot("ok", "data", "shop", ready.clone()),
        snapshot("other-pvc", "logs", "shop", ready.clone()),
        snapshot("other-config", "data", "blog", ready),
        snapshot("pending", "data", "shop", json!({"readyToUse": false})),
        snapshot(
            "broken",
            "data",
            "shop",
            json!({"readyToUse": false, "error": {"message": "disk on fire"}}),
        ),
    ];
    let got = choose_snapshot(&snaps, "ok", "data", "shop").unwrap();
    assert_eq!(
        got,
        Source::Snapshot {
            name: "ok".into(),
            time: "2026-11-22T10:00:00Z".parse().unwrap(),
            restore_size: Some("2Gi".into())
        }
    );
    let err = |name| choose_snapshot(&snaps, name, "data", "shop").unwrap_err();
    assert!(
        err("nope").contains("no such VolumeSnapshot"),
        "{}",
        err("nope")
    );
    assert!(
        err("other-pvc").contains("of PVC logs, not of data"),
        "{}",
        err("other-pvc")
    );
    assert!(
        err("other-config").contains("not made by config shop"),
        "{}",
        err("other-config")
    );
    assert!(err("pending").contains("not ready"), "{}", err("pending"));
    assert!(err("broken").contains("disk on fire"), "{}", err("broken"));
}

#[test]
fn archives_are_chosen_by_name_by_time_or_newest_and_fail_closed() {
    let c = config();
    let restic = &c.spec.repositories[0];
    let listing = vec![
        entry(
            SeriesKind::Volume,
            "data",
            "aaaa1111",
            "2026-11-20T10:00:00Z",
        ),
        entry(
            SeriesKind::Volume,
            "data",
            "bbbb2222",
            "2026-11-21T10:00:00Z",
        ),
        entry(
            SeriesKind::Volume,
            "data-wal",
            "cccc3333",
            "2026-11-22T10:00:00Z",
        ),
        entry(
            SeriesKind::Database,
            "data",
            "dddd4444",
            "2026-11-22T11:00:00Z",
        ),
    ];
    let id = |s: &Source| match s {
        Source::Archive { entry, .. } => entry.archive.clone(),
        Source::Snapshot { .. } => unreachable!(),
    };
    let pick = |q: ArchiveQuery<'_>| choose_archive(&listing, restic, "data", q);
    assert_eq!(
        id(&pick(ArchiveQuery::default()).unwrap()),
        "bbbb2222",
        "the newest"
    );
    let as_of = |t: &str| ArchiveQuery {
        archive: None,
        as_of: Some(t.parse().unwrap()),
    };
    assert_eq!(
        id(&pick(as_of("2026-11-20T23:00:00Z")).unwrap()),
        "aaaa1111"
    );
    assert_eq!(
        id(&pick(as_of("2026-11-21T10:00:00Z")).unwrap()),
        "bbbb2222",
        "at counts"
    );
    let before = pick(as_of("2026-11-01T00:00:00Z")).unwrap_err();
    assert!(
        before.contains("no archive of PVC data taken at or before"),
        "{before}"
    );
    assert!(
        before.contains("2026-11-20T10:00:00Z"),
        "names the oldest: {before}"
    );
    let named = |a| ArchiveQuery {
        archive: Some(a),
        as_of: None,
    };
    assert_eq!(
        id(&pick(named("aaaa")).unwrap()),
        "aaaa1111",
        "a restic id prefix"
    );
    let other = pick(named("cccc3333")).unwrap_err();
    assert!(
        other.contains("of PVC data-wal, not of PVC data"),
        "{other}"
    );
    let db = pick(named("dddd4444")).unwrap_err();
    assert!(db.contains("database data"), "{db}");
    assert!(pick(named("zzzz")).unwrap_err().contains("no such archive"));
    // borg names are exact.
    let borg = &c.spec.repositories[1];
    assert!(choose_archive(&listing, borg, "data", named("aaaa")).is_err());
    let none = choose_archive(&[], borg, "data", ArchiveQuery::default()).unwrap_err();
    assert!(none.contains("has no archive of PVC data"), "{none}");
}

fn pvc(size: &str, class: &str) -> PersistentVolumeClaim {
    serde_json::from_value(json!({"metadata": {"name": "data"},
        "spec": {"storageClassName": class, "accessModes": ["ReadWriteMany"],
                 "resources": {"requests": {"storage": size}}}}))
    .unwrap()
}

#[test]
fn the_new_pvc_takes_flags_then_the_source_pvc_then_the_data() {
    let src = pvc("10Gi", "fast");
    let s = shape(&ShapeInputs {
        source_pvc: Some(&src),
        data_bytes: Some(3 << 30),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        (s.size.as_str(), s.storage_class.as_deref()),
        ("10Gi", Some("fast"))
    );
    assert_eq!(s.access_modes, ["ReadWriteMany"]);
    let s = shape(&ShapeInputs {
        source_pvc: Some(&src),
        size: Some("20Gi"),
        storage_class: Some("slow"),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        (s.size.as_str(), s.storage_class.as_deref()),
        ("20Gi", Some("slow"))
    );
    // The source PVC is gone: room for the data.
    let s = shape(&ShapeInputs {
        data_bytes: Some(5 << 30),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.size, "6Gi");
    assert_eq!(s.access_modes, ["ReadWriteOnce"]);
    assert_eq!(s.storage_class, None, "the cluster's default");
    // A source PVC smaller than the data (recreated smaller) does not decide.
    let small = pvc("1Gi", "fast");
    let s = shape(&ShapeInputs {
        source_pvc: Some(&small),
        data_bytes: Some(5 << 30),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.size, "6Gi");
    let s = shape(&ShapeInputs {
        restore_size: Some("2Gi"),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.size, "2Gi");
    let too_small = shape(&ShapeInputs {
        size: Some("1Gi"),
        data_bytes: Some(5 << 30),
        ..Default::default()
    })
    .unwrap_err();
    assert!(too_small.contains("smaller than the data"), "{too_small}");
    assert!(
        shape(&ShapeInputs::default())
            .unwrap_err()
            .contains("--size")
    );
    assert!(
        shape(&ShapeInputs {
            size: Some("big"),
            ..Default::default()
        })
        .is_err()
    );
    assert_eq!(size_for(0), "1Gi");
    assert_eq!(size_for(1 << 30), "2Gi");
}

#[test]
fn an_archive_restore_fills_an_empty_pvc_with_a_mover_writing_to_it() {
    let c = config();
    let listing = vec![entry(
        SeriesKind::Volume,
        "data",
        "kentledge_shop_shop_vol_data_2026-11-21T10-00-00Z",
        "2026-11-21T10:00:00Z",
    )];
    let source = choose_archive(
        &listing,
        &c.spec.repositories[1],
        "data",
        ArchiveQuery::default(),
    )
    .unwrap();
    let shape = shape(&ShapeInputs {
        data_bytes: Some(5 << 30),
        ..Default::default()
    })
    .unwrap();
    let ctx = Context {
        config: &c,
        namespace: "shop",
        run_id: "20261122t100000z-3f9a",
    };
    let p = fresh(&ctx, "data", "data-restored", source, shape);
    let pvc = serde_json::to_value(&p.target_pvc).unwrap();
    assert!(pvc["spec"].get("dataSource").is_none(), "{pvc}");
    assert_eq!(
        pvc["metadata"]["labels"]["kentledge.io/role"],
        "restore-target"
    );
    assert_eq!(
        pvc["metadata"]["annotations"]["kentledge.io/restored-from"],
        "b/kentledge_shop_shop_vol_data_2026-11-21T10-00-00Z"
    );
    let pod = serde_json::to_value(p.mover.as_ref().unwrap()).unwrap();
    let data = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "data")
        .unwrap()
        .clone();
    assert_eq!(data["persistentVolumeClaim"]["claimName"], "data-restored");
    assert_eq!(
        data["persistentVolumeClaim"]["readOnly"], false,
        "a restore writes"
    );
    insta::assert_snapshot!(render(&p));
}
