use std::collections::BTreeMap;

use super::*;
use crate::report::list::{ArchiveRow, SeriesRows, SnapshotRow};

const CONFIG: &str = "apiVersion: kentledge.io/v1alpha1\nkind: BackupConfig\nmetadata: {name: shop, namespace: shop}\nspec:\n  snapshots: {targets: [{pvc: data}]}\n  status: {snapshotsWithin: 2h, offsiteWithin: 1d}\n  repositories:\n    - name: borg\n      borg: {pvc: {claimName: r}, passphrase: {secret: s, key: k}}\n    - name: restic\n      restic: {repository: \"rest:http://h/\", password: {secret: s, key: k}}\n  offsite:\n    volumes: {repositories: [borg, restic]}\n    databases:\n      - {name: maria, engine: mariadb, pod: {name: db}, repositories: [borg]}\n      - {name: pg, engine: postgresql, pod: {name: pg}, repositories: [restic]}\n    buckets:\n      - name: media\n        endpoint: http://s3\n        bucket: media\n        credentials: {accessKeyId: {secret: s, key: a}, secretAccessKey: {secret: s, key: b}}\n        repositories: [borg]\n";

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn snap(time: &str, backed_up: &[(&str, &str)]) -> SnapshotRow {
    SnapshotRow {
        name: format!("data-{time}"),
        time: Some(t(time)),
        local_time: String::new(),
        size: None,
        ready: true,
        error: None,
        keep: BTreeMap::new(),
        delete_after: None,
        pinned: false,
        safety_of_run: None,
        backed_up: backed_up
            .iter()
            .map(|(r, v)| ((*r).to_owned(), (*v).to_owned()))
            .collect(),
        in_use_by: None,
    }
}

fn archive(repo: &str, time: &str) -> ArchiveRow {
    ArchiveRow {
        repository: repo.into(),
        archive: format!("a-{time}"),
        time: t(time),
        local_time: String::new(),
        size: None,
        added: None,
        files: None,
    }
}

fn repo(name: &str, ok: bool) -> RepoListing {
    RepoListing {
        repository: name.into(),
        engine: "borg",
        ok,
        outcome: if ok { Verdict::Ok } else { Verdict::Failed },
        result: if ok {
            "ok".into()
        } else {
            "unreachable".into()
        },
        archives: 0,
    }
}

fn listing(series: Vec<SeriesRows>, repos: Vec<RepoListing>) -> Listing {
    Listing {
        config: "shop".into(),
        namespace: "shop".into(),
        timezone: "UTC".into(),
        series,
        repositories: repos,
    }
}

fn rows(kind: &'static str, name: &str, s: Vec<SnapshotRow>, a: Vec<ArchiveRow>) -> SeriesRows {
    SeriesRows {
        kind,
        name: name.into(),
        snapshots: s,
        archives: a,
    }
}

#[test]
fn fresh_stale_never_and_unseen() {
    let config = crate::config::parse("k.yaml", CONFIG).unwrap();
    let now = t("2026-12-01T12:00:00Z");
    let l = listing(
        vec![
            // Snapshot 1h old (fresh), borg copy from the archives 3h old (fresh), restic only
            // from the label, 2 days old (stale).
            rows(
                "volume",
                "data",
                vec![snap(
                    "2026-12-01T11:00:00Z",
                    &[("restic", "20261129T120000Z")],
                )],
                vec![archive("borg", "2026-12-01T09:00:00Z")],
            ),
            // Snapshot 3h old: stale.
            rows(
                "volume",
                "logs",
                vec![snap("2026-12-01T09:00:00Z", &[])],
                vec![
                    archive("borg", "2026-12-01T09:00:00Z"),
                    archive("restic", "2026-12-01T09:00:00Z"),
                ],
            ),
            rows(
                "database",
                "maria.shop",
                vec![],
                vec![archive("borg", "2026-12-01T02:00:00Z")],
            ),
            // A safety dump is not a schedule's.
            rows("database", "maria.shop..safety", vec![], vec![]),
        ],
        vec![repo("borg", true), repo("restic", true)],
    );
    let s = assess(&config, &l, true, now);
    let by = |name: &str| s.series.iter().find(|x| x.name == name).unwrap();
    let data = by("data");
    assert_eq!(data.snapshot_fresh, Some(true));
    assert_eq!(data.snapshot_age_seconds, Some(3600));
    assert!(data.copies[0].fresh && data.copies[0].repository == "borg");
    assert_eq!(data.copies[1].repository, "restic");
    assert!(!data.copies[1].fresh);
    assert_eq!(data.copies[1].age_seconds, Some(2 * 86400));
    assert!(!data.fresh);
    let logs = by("logs");
    assert_eq!(logs.snapshot_fresh, Some(false));
    assert!(logs.copies.iter().all(|c| c.fresh));
    assert!(!logs.fresh);
    let maria = by("maria.shop");
    assert_eq!(maria.snapshot_fresh, None);
    assert!(maria.fresh, "{maria:?}");
    assert!(s.series.iter().all(|x| !x.name.ends_with("..safety")));
    // Entries with no restore point at all are there, never copied.
    let pg = by("pg");
    assert!(!pg.fresh && pg.copies[0].why.as_deref() == Some("never copied"));
    let media = by("media");
    assert_eq!(media.kind, "bucket");
    assert!(!media.fresh);
    assert!(!s.fresh);
    assert_eq!(s.code(None), crate::error::exit::FAILURE);

    // A repository that could not be listed: its copies are not seen, so not fresh.
    let l = listing(
        vec![rows(
            "volume",
            "data",
            vec![snap("2026-12-01T11:30:00Z", &[])],
            vec![archive("borg", "2026-12-01T11:00:00Z")],
        )],
        vec![repo("borg", true), repo("restic", false)],
    );
    let s = assess(&config, &l, true, now);
    let c = &s.series[0].copies[1];
    assert_eq!(c.why.as_deref(), Some("the repository could not be listed"));
    // The same without archives read: only the labels count, and none says restic.
    let mut only_snapshots = l.series.clone();
    for x in &mut only_snapshots {
        x.archives.clear();
    }
    let s = assess(&config, &listing(only_snapshots, vec![]), false, now);
    assert_eq!(s.series[0].copies[1].why.as_deref(), Some("never copied"));
    assert_eq!(
        s.series[0].copies[0].why.as_deref(),
        Some("never copied"),
        "archives not read"
    );
}

#[test]
fn everything_fresh_exits_0_and_the_exposition_format_is_well_formed() {
    let config = crate::config::parse(
        "k.yaml",
        &CONFIG.replace(
            "    databases:\n      - {name: maria, engine: mariadb, pod: {name: db}, repositories: [borg]}\n      - {name: pg, engine: postgresql, pod: {name: pg}, repositories: [restic]}\n    buckets:\n      - name: media\n        endpoint: http://s3\n        bucket: media\n        credentials: {accessKeyId: {secret: s, key: a}, secretAccessKey: {secret: s, key: b}}\n        repositories: [borg]\n",
            "",
        ),
    )
    .unwrap();
    let now = t("2026-12-01T12:00:00Z");
    let l = listing(
        vec![rows(
            "volume",
            "da\"ta",
            vec![snap(
                "2026-12-01T11:30:00Z",
                &[("restic", "20261201T113500Z")],
            )],
            vec![archive("borg", "2026-12-01T11:40:00Z")],
        )],
        vec![repo("borg", true), repo("restic", true)],
    );
    let s = assess(&config, &l, true, now);
    assert!(s.fresh, "{s:?}");
    assert_eq!(s.code(None), crate::error::exit::SUCCESS);
    let p = s.prometheus();
    assert!(p.contains("# TYPE kentledge_series_fresh gauge"), "{p}");
    assert!(
        p.contains("kentledge_series_fresh{config=\"shop\",namespace=\"shop\",kind=\"volume\",series=\"da\\\"ta\"} 1"),
        "{p}"
    );
    assert!(
        p.contains(&format!(
            "kentledge_offsite_last_timestamp_seconds{{config=\"shop\",namespace=\"shop\",kind=\"volume\",series=\"da\\\"ta\",repository=\"restic\"}} {}",
            t("2026-12-01T11:35:00Z").as_second()
        )),
        "{p}"
    );
    insta::assert_snapshot!("text", s.text());
}
