//! What `kentledge list` shows, as data: every restore point of the config's series (snapshots
//! with their retention state, archives of every repository), grouped by series (volumes now;
//! databases and buckets have their own kinds), newest first, filtered by series, repository and
//! time; and each repository's listing result (a repository that could not be listed is said).

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::engines::SeriesKind;
use crate::model::labels::{
    BACKED_UP_PREFIX, DELETE_AFTER, IN_USE_ANNOTATION, PIN, PVC_ANNOTATION, SAFETY_LABEL,
    keep_label, parse_label_time,
};
use crate::model::policy::Rule;
use crate::model::snapshots::VolumeSnapshot;
use crate::mover::job::ArchiveEntry;
use crate::report::table::{Column, Table};
use crate::report::{self, Render, Run, Verdict};

/// A VolumeSnapshot as `list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SnapshotRow {
    /// The VolumeSnapshot.
    pub name: String,
    /// The cut (`status.creationTime`), when the driver has set it.
    pub time: Option<Timestamp>,
    /// The cut in the config's zone, for people.
    pub local_time: String,
    /// `status.restoreSize`.
    pub size: Option<String>,
    /// `status.readyToUse`.
    pub ready: bool,
    /// The driver's error, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Retention rules that keep it, with their periods (`daily` → `2026-11-22`).
    pub keep: BTreeMap<String, String>,
    /// When prune may delete it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_after: Option<Timestamp>,
    /// Pinned by a person (never deleted).
    pub pinned: bool,
    /// The safety snapshot an in-place restore took of what it replaced (its run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safety_of_run: Option<String>,
    /// Repository → when a backup copied it there.
    pub backed_up: BTreeMap<String, String>,
    /// The run that is reading it now, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_use_by: Option<String>,
}

/// An archive as `list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArchiveRow {
    /// The repository.
    pub repository: String,
    /// borg archive name or restic snapshot id.
    pub archive: String,
    /// Its time (the snapshot's cut).
    pub time: Timestamp,
    /// The time in the config's zone, for people.
    pub local_time: String,
    /// Bytes of data, when the engine said.
    pub size: Option<u64>,
    /// Bytes it added to the repository, when the engine said.
    pub added: Option<u64>,
    /// Files, when the engine said.
    pub files: Option<u64>,
}

/// One series: a PVC (or, as they land, a database or a bucket) and its restore points.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SeriesRows {
    /// `volume`, `database` or `bucket`.
    pub kind: &'static str,
    /// The PVC, database or bucket series name.
    pub name: String,
    /// Its VolumeSnapshots, newest first.
    pub snapshots: Vec<SnapshotRow>,
    /// Its archives in every repository, newest first.
    pub archives: Vec<ArchiveRow>,
}

/// How listing one repository went.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RepoListing {
    /// The repository.
    pub repository: String,
    /// `borg` or `restic`.
    pub engine: &'static str,
    /// Whether it was listed (and the listing seen).
    pub ok: bool,
    /// `ok`, `failed` or `unknown`.
    pub outcome: Verdict,
    /// `ok` or what went wrong.
    pub result: String,
    /// Archives of this config it holds (after filters).
    pub archives: usize,
}

/// Everything `list` shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Listing {
    /// The config's name.
    pub config: String,
    /// The namespace.
    pub namespace: String,
    /// The config's zone, in which local times are given.
    pub timezone: String,
    /// The series, by kind then name.
    pub series: Vec<SeriesRows>,
    /// Each repository listed.
    pub repositories: Vec<RepoListing>,
}

/// What to show.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only these series (PVC, database or bucket names); empty: all.
    pub series: Vec<String>,
    /// Only restore points at or after this time.
    pub since: Option<Timestamp>,
    /// Only restore points at or before this time.
    pub until: Option<Timestamp>,
}

impl Filter {
    /// Whether series `name` is asked for: by its name, or (a database series `entry.db`) by
    /// its `spec.offsite.databases` entry's name.
    fn series(&self, name: &str) -> bool {
        self.series.is_empty()
            || self.series.iter().any(|s| {
                s == name
                    || name
                        .strip_prefix(s.as_str())
                        .is_some_and(|r| r.starts_with('.'))
            })
    }

    fn time(&self, t: Option<Timestamp>) -> bool {
        match t {
            // A snapshot not cut yet has no time: shown unless a time filter is asked for.
            None => self.since.is_none() && self.until.is_none(),
            Some(t) => self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u),
        }
    }
}

/// A repository's listing as the flow got it.
#[derive(Clone, Debug)]
pub struct RepoResult {
    /// The repository.
    pub repository: String,
    /// `borg` or `restic`.
    pub engine: &'static str,
    /// Its archives, or the verdict and why it could not be listed.
    pub archives: Result<Vec<ArchiveEntry>, (Verdict, String)>,
}

fn kind_name(k: SeriesKind) -> &'static str {
    match k {
        SeriesKind::Volume => "volume",
        SeriesKind::Database => "database",
        SeriesKind::Bucket => "bucket",
    }
}

/// `t` in `tz` as `2026-11-22 11:00:07`.
pub fn local(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A VolumeSnapshot's row and the PVC it is of.
pub fn snapshot_row(s: &VolumeSnapshot, tz: &TimeZone) -> (String, SnapshotRow) {
    let labels = s.metadata.labels.clone().unwrap_or_default();
    let annotations = s.metadata.annotations.clone().unwrap_or_default();
    let pvc = annotations
        .get(PVC_ANNOTATION)
        .cloned()
        .or_else(|| s.spec.source.persistent_volume_claim_name.clone())
        .unwrap_or_default();
    let st = s.status.as_ref();
    let time = crate::model::snapshots::cut_time(Some(s));
    let keep = Rule::ALL
        .iter()
        .filter_map(|r| Some((r.name().to_owned(), labels.get(&keep_label(*r))?.clone())))
        .collect();
    let backed_up = labels
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(BACKED_UP_PREFIX)?.to_owned(), v.clone())))
        .collect();
    let row = SnapshotRow {
        name: s.metadata.name.clone().unwrap_or_default(),
        time,
        local_time: time.map(|t| local(t, tz)).unwrap_or_else(|| "-".into()),
        size: st.and_then(|st| st.restore_size.as_ref().map(|q| q.0.clone())),
        ready: crate::model::snapshots::is_ready(Some(s)),
        error: crate::model::snapshots::error_message(Some(s)),
        keep,
        delete_after: labels.get(DELETE_AFTER).and_then(|v| parse_label_time(v)),
        pinned: labels.get(PIN).is_some_and(|v| v == "true"),
        safety_of_run: labels.get(SAFETY_LABEL).cloned(),
        backed_up,
        in_use_by: annotations.get(IN_USE_ANNOTATION).cloned(),
    };
    (pvc, row)
}

/// Builds the listing: snapshots (already selected by the config's label) and each repository's
/// archives, filtered, grouped by series, newest first.
pub fn assemble(
    config: &str,
    namespace: &str,
    timezone: &str,
    tz: &TimeZone,
    snapshots: &[VolumeSnapshot],
    repos: &[RepoResult],
    filter: &Filter,
) -> Listing {
    let mut grouped: BTreeMap<(SeriesKind, String), (Vec<SnapshotRow>, Vec<ArchiveRow>)> =
        BTreeMap::new();
    for s in snapshots {
        let (pvc, row) = snapshot_row(s, tz);
        if filter.series(&pvc) && filter.time(row.time) {
            grouped
                .entry((SeriesKind::Volume, pvc))
                .or_default()
                .0
                .push(row);
        }
    }
    let mut listings = Vec::new();
    for r in repos {
        let (outcome, result) = match &r.archives {
            Ok(_) => (Verdict::Ok, "ok".to_owned()),
            Err((v, why)) => (*v, why.clone()),
        };
        let mut n = 0;
        for a in r.archives.as_ref().map(Vec::as_slice).unwrap_or_default() {
            if !(filter.series(&a.series) && filter.time(Some(a.time))) {
                continue;
            }
            n += 1;
            grouped
                .entry((a.kind, a.series.clone()))
                .or_default()
                .1
                .push(ArchiveRow {
                    repository: r.repository.clone(),
                    archive: a.archive.clone(),
                    time: a.time,
                    local_time: local(a.time, tz),
                    size: a.size,
                    added: a.added,
                    files: a.files,
                });
        }
        listings.push(RepoListing {
            repository: r.repository.clone(),
            engine: r.engine,
            ok: outcome == Verdict::Ok,
            outcome,
            result,
            archives: n,
        });
    }
    // Grouped by kind, then name (the map's order); each group newest first.
    let series = grouped
        .into_iter()
        .map(|((kind, name), (mut snapshots, mut archives))| {
            snapshots.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.name.cmp(&b.name)));
            archives.sort_by(|a, b| {
                b.time
                    .cmp(&a.time)
                    .then_with(|| a.repository.cmp(&b.repository))
            });
            SeriesRows {
                kind: kind_name(kind),
                name,
                snapshots,
                archives,
            }
        })
        .collect();
    Listing {
        config: config.to_owned(),
        namespace: namespace.to_owned(),
        timezone: timezone.to_owned(),
        series,
        repositories: listings,
    }
}

fn bytes(b: Option<u64>) -> String {
    b.map(|b| indicatif::HumanBytes(b).to_string())
        .unwrap_or_else(|| "-".into())
}

impl Listing {
    /// The exit code: 0 when everything asked for was listed, 3 when some repositories could
    /// not be (the rest is shown), 1 when nothing could; an interruption's code.
    pub fn code(&self, snapshots_listed: bool, interrupted: Option<u8>) -> u8 {
        let outcomes = snapshots_listed
            .then_some(Verdict::Ok)
            .into_iter()
            .chain(self.repositories.iter().map(|r| r.outcome));
        report::exit_code(outcomes, Run::new(interrupted))
    }

    fn failed(&self) -> Vec<&RepoListing> {
        self.repositories.iter().filter(|r| !r.ok).collect()
    }
}

impl Render for Listing {
    /// Per series: its snapshots, then its archives; then how each repository was listed.
    fn text(&self) -> String {
        let mut out = format!(
            "restore points of config {} in namespace {} (times in {})\n",
            self.config, self.namespace, self.timezone
        );
        if self.series.is_empty() {
            out.push_str("none found\n");
        }
        for s in &self.series {
            if s.kind == "database" {
                // `maria.my.5fapp` is database my_app of entry maria.
                out.push_str(&format!(
                    "database {} (series {})\n",
                    crate::engines::databases::describe_series(&s.name),
                    s.name
                ));
            } else {
                out.push_str(&format!("{} {}\n", s.kind, s.name));
            }
            if !s.snapshots.is_empty() {
                let mut t = Table::new(
                    "  ",
                    vec![
                        Column::left("SNAPSHOT"),
                        Column::left("CUT"),
                        Column::right("SIZE"),
                        Column::left("READY"),
                        Column::left("RETENTION"),
                        Column::left("COPIED TO"),
                    ],
                );
                for r in &s.snapshots {
                    let mut retention: Vec<String> =
                        r.keep.iter().map(|(k, v)| format!("{k} {v}")).collect();
                    if r.pinned {
                        retention.insert(0, "pinned".into());
                    }
                    if let Some(run) = &r.safety_of_run {
                        retention.insert(0, format!("safety snapshot of restore {run}"));
                    }
                    if let Some(d) = r.delete_after {
                        retention.push(format!("delete after {}", local_of(d, &self.timezone)));
                    }
                    if let Some(u) = &r.in_use_by {
                        retention.push(format!("in use by {u}"));
                    }
                    let ready = match (&r.error, r.ready) {
                        (Some(e), _) => format!("error: {e}"),
                        (None, true) => "yes".into(),
                        (None, false) => "no".into(),
                    };
                    let copied: Vec<&str> = r.backed_up.keys().map(String::as_str).collect();
                    t.row([
                        r.name.clone(),
                        r.local_time.clone(),
                        r.size.clone().unwrap_or_else(|| "-".into()),
                        ready,
                        or_dash(retention.join(", ")),
                        or_dash(copied.join(", ")),
                    ]);
                }
                out.push_str(&t.render());
            }
            if !s.archives.is_empty() {
                let mut t = Table::new(
                    "  ",
                    vec![
                        Column::left("ARCHIVE"),
                        Column::left("REPOSITORY"),
                        Column::left("TIME"),
                        Column::right("SIZE"),
                        Column::right("ADDED"),
                        Column::right("FILES"),
                    ],
                );
                for a in &s.archives {
                    t.row([
                        a.archive.clone(),
                        a.repository.clone(),
                        a.local_time.clone(),
                        bytes(a.size),
                        bytes(a.added),
                        a.files.map(|f| f.to_string()).unwrap_or_else(|| "-".into()),
                    ]);
                }
                out.push_str(&t.render());
            }
        }
        if !self.repositories.is_empty() {
            out.push_str("repositories\n");
            let mut t = Table::new(
                "  ",
                vec![
                    Column::left("REPOSITORY"),
                    Column::left("ENGINE"),
                    Column::left("RESULT"),
                ],
            )
            .without_headers();
            for r in &self.repositories {
                let result = match r.outcome {
                    Verdict::Ok => format!("{} archive(s)", r.archives),
                    Verdict::Failed => format!("NOT LISTED: {}", r.result),
                    Verdict::Unknown => format!("NOT LISTED: {}", r.result),
                };
                t.row([r.repository.clone(), r.engine.to_owned(), result]);
            }
            out.push_str(&t.render());
        }
        let failed = self.failed();
        if !failed.is_empty() {
            let names: Vec<&str> = failed.iter().map(|r| r.repository.as_str()).collect();
            out.push_str(&format!(
                "the list is PARTIAL: {} could not be listed; their archives are not shown\n",
                names.join(", ")
            ));
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["partial"] = serde_json::Value::Bool(!self.failed().is_empty());
        v
    }
}

fn or_dash(s: String) -> String {
    if s.is_empty() { "-".into() } else { s }
}

fn local_of(t: Timestamp, zone: &str) -> String {
    TimeZone::get(zone)
        .map(|tz| local(t, &tz))
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_entry_selects_its_databases_series() {
        let f = Filter {
            series: vec!["maria".into()],
            ..Filter::default()
        };
        assert!(f.series("maria") && f.series("maria.shop") && f.series("maria.my.5fapp"));
        assert!(!f.series("mariadb.x") && !f.series("other"));
    }
    use serde_json::json;

    fn snapshot(name: &str, pvc: &str, cut: &str, labels: serde_json::Value) -> VolumeSnapshot {
        serde_json::from_value(json!({
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshot",
            "metadata": {"name": name, "labels": labels, "annotations": {PVC_ANNOTATION: pvc}},
            "spec": {"source": {"persistentVolumeClaimName": pvc}},
            "status": {"creationTime": cut, "readyToUse": true, "restoreSize": "1Gi"},
        }))
        .unwrap()
    }

    fn archive(series: &str, name: &str, time: &str, size: Option<u64>) -> ArchiveEntry {
        ArchiveEntry {
            kind: SeriesKind::Volume,
            series: series.into(),
            archive: name.into(),
            time: time.parse().unwrap(),
            size,
            added: None,
            files: size.map(|_| 12),
        }
    }

    fn fixture() -> (Vec<VolumeSnapshot>, Vec<RepoResult>) {
        let snaps = vec![
            snapshot(
                "data-1",
                "data",
                "2026-11-21T10:00:00Z",
                json!({"kentledge.io/keep-daily": "2026-11-21", "backed-up.kentledge.io/borg": "20261121T110000Z"}),
            ),
            snapshot(
                "data-2",
                "data",
                "2026-11-22T10:00:00Z",
                json!({"kentledge.io/pin": "true", "kentledge.io/keep-daily": "2026-11-22"}),
            ),
            snapshot("logs-1", "logs", "2026-11-22T09:00:00Z", json!({})),
        ];
        let repos = vec![
            RepoResult {
                repository: "borg".into(),
                engine: "borg",
                archives: Ok(vec![
                    archive(
                        "data",
                        "kentledge_c_ns_vol_data_2026-11-21T10-00-00Z",
                        "2026-11-21T10:00:00Z",
                        Some(6 << 20),
                    ),
                    archive(
                        "gone",
                        "kentledge_c_ns_vol_gone_2026-10-01T10-00-00Z",
                        "2026-10-01T10:00:00Z",
                        Some(1 << 20),
                    ),
                ]),
            },
            RepoResult {
                repository: "offsite".into(),
                engine: "restic",
                archives: Err((Verdict::Failed, "the repository cannot be reached".into())),
            },
        ];
        (snaps, repos)
    }

    #[test]
    fn restore_points_are_grouped_by_series_newest_first() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let (snaps, repos) = fixture();
        let l = assemble(
            "c",
            "shop",
            "Europe/Berlin",
            &tz,
            &snaps,
            &repos,
            &Filter::default(),
        );
        let names: Vec<&str> = l.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["data", "gone", "logs"],
            "a series whose PVC is gone is listed too"
        );
        let data = &l.series[0];
        assert_eq!(data.snapshots[0].name, "data-2", "newest first");
        assert!(data.snapshots[0].pinned);
        assert_eq!(
            data.snapshots[1].backed_up.keys().collect::<Vec<_>>(),
            ["borg"]
        );
        assert_eq!(
            data.snapshots[0].local_time, "2026-11-22 11:00:00",
            "in the config's zone"
        );
        assert_eq!(l.code(true, None), crate::error::exit::PARTIAL);
        insta::assert_snapshot!(l.text());
        insta::assert_snapshot!(serde_json::to_string_pretty(&l.json()).unwrap());
    }

    #[test]
    fn filters_by_series_and_time() {
        let tz = TimeZone::get("UTC").unwrap();
        let (snaps, repos) = fixture();
        let f = Filter {
            series: vec!["data".into()],
            since: Some("2026-11-22T00:00:00Z".parse().unwrap()),
            until: None,
        };
        let l = assemble("c", "shop", "UTC", &tz, &snaps, &repos, &f);
        assert_eq!(l.series.len(), 1);
        assert_eq!(l.series[0].snapshots.len(), 1);
        assert!(l.series[0].archives.is_empty());
        assert_eq!(l.repositories[0].archives, 0);
        let every_repo_failed = Listing {
            repositories: vec![l.repositories[1].clone()],
            ..l.clone()
        };
        assert_eq!(
            every_repo_failed.code(false, None),
            crate::error::exit::FAILURE
        );
        assert_eq!(
            every_repo_failed.code(true, None),
            crate::error::exit::PARTIAL
        );
        let all_ok = Listing {
            repositories: vec![l.repositories[0].clone()],
            ..l
        };
        assert_eq!(all_ok.code(true, None), crate::error::exit::SUCCESS);
        assert_eq!(all_ok.code(true, Some(143)), 143);
    }
}
