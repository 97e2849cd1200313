//! What `kentledge status` says, as data: per series (PVC, database, bucket) the newest ready
//! snapshot and the newest copy in each repository the config copies it to, their ages, and
//! whether each is within what `spec.status` expects, derived from the state kentledge keeps in
//! the cluster (snapshots and their `backed-up` labels) and in the repositories (archive
//! times), never from a process's memory, so a run that was killed counts as not done. Text,
//! JSON and the Prometheus exposition format.

use std::fmt::Write as _;

use jiff::Timestamp;
use serde::Serialize;

use crate::config::Config;
use crate::engines::databases::decode;
use crate::model::labels::parse_label_time;
use crate::report::list::{Listing, RepoListing};
use crate::report::metrics::escape;
use crate::report::table::{Column, Table};
use crate::report::{Render, Run, Verdict, exit_code};

/// The newest copy of a series in one repository.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyState {
    /// The repository.
    pub repository: String,
    /// When the newest copy was made (archive time, or the snapshot's `backed-up` label).
    pub last: Option<Timestamp>,
    /// Its age in seconds at the status time.
    pub age_seconds: Option<i64>,
    /// Within `spec.status.offsiteWithin` (or there at all, when it says nothing).
    pub fresh: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// One series' state.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesState {
    /// `volume`, `database` or `bucket`.
    pub kind: &'static str,
    /// The PVC, `entry.database` or bucket entry.
    pub name: String,
    /// The newest ready snapshot's cut (volumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_snapshot: Option<Timestamp>,
    /// Its age in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_age_seconds: Option<i64>,
    /// Within `spec.status.snapshotsWithin` (volumes; none for other kinds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_fresh: Option<bool>,
    /// The newest copy in each repository the config copies the series to.
    pub copies: Vec<CopyState>,
    /// Everything of the series is fresh.
    pub fresh: bool,
}

/// The whole status.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The config.
    pub config: String,
    /// The namespace.
    pub namespace: String,
    /// When it was taken.
    pub now: Timestamp,
    /// `spec.status.snapshotsWithin`, seconds.
    pub snapshots_within: Option<u64>,
    /// `spec.status.offsiteWithin`, seconds.
    pub offsite_within: Option<u64>,
    /// Every series.
    pub series: Vec<SeriesState>,
    /// Each repository listed (none with `--snapshots-only`).
    pub repositories: Vec<RepoListing>,
    /// Everything is fresh, and everything asked for could be seen.
    pub fresh: bool,
}

/// The repositories the config copies a series of `kind` named `name` to.
fn repositories_of(config: &Config, kind: &str, name: &str) -> Vec<String> {
    let o = &config.spec.offsite;
    match kind {
        "volume" => o
            .volumes
            .as_ref()
            .map(|v| v.repositories.clone())
            .unwrap_or_default(),
        "database" => {
            let entry = decode(name).map(|d| d.entry).unwrap_or_default();
            o.databases
                .iter()
                .find(|d| d.name == entry)
                .map(|d| d.repositories.clone())
                .unwrap_or_default()
        }
        _ => o
            .buckets
            .iter()
            .find(|b| b.name == name)
            .map(|b| b.repositories.clone())
            .unwrap_or_default(),
    }
}

/// Assesses a listing (snapshots and, unless only snapshots were read, every repository's
/// archives) against `spec.status` at `now`.
pub fn assess(config: &Config, listing: &Listing, archives_read: bool, now: Timestamp) -> Status {
    let within = |d: Option<crate::model::units::HumanDuration>| d.map(|d| d.as_secs());
    let snapshots_within = within(config.spec.status.snapshots_within);
    let offsite_within = within(config.spec.status.offsite_within);
    let age = |t: Timestamp| (now - t).get_seconds();
    let ok_age = |t: Option<Timestamp>, limit: Option<u64>| match t {
        None => false,
        Some(t) => limit.is_none_or(|l| age(t) <= l as i64),
    };
    let listed = |repo: &str| {
        listing
            .repositories
            .iter()
            .find(|r| r.repository == repo)
            .filter(|r| r.ok)
            .is_some()
    };
    let mut series: Vec<SeriesState> = Vec::new();
    let mut seen: Vec<(String, String)> = Vec::new();
    for s in &listing.series {
        // Safety dumps and safety snapshots are not what a schedule makes.
        if s.kind == "database" && decode(&s.name).is_some_and(|d| d.safety) {
            continue;
        }
        seen.push((s.kind.to_owned(), s.name.clone()));
        let last_snapshot = s
            .snapshots
            .iter()
            .filter(|r| r.ready && r.safety_of_run.is_none())
            .filter_map(|r| r.time)
            .max();
        let copies = repositories_of(config, s.kind, &s.name)
            .into_iter()
            .map(|repo| {
                let from_archives = s
                    .archives
                    .iter()
                    .filter(|a| a.repository == repo)
                    .map(|a| a.time)
                    .max();
                let from_labels = s
                    .snapshots
                    .iter()
                    .filter_map(|r| r.backed_up.get(&repo))
                    .filter_map(|v| parse_label_time(v))
                    .max();
                let last = from_archives.max(from_labels);
                let seeable = !archives_read || listed(&repo) || from_labels.is_some();
                let fresh = seeable && ok_age(last, offsite_within);
                let why = if !seeable {
                    Some("the repository could not be listed".into())
                } else if last.is_none() {
                    Some("never copied".into())
                } else if !fresh {
                    Some("older than spec.status.offsiteWithin".into())
                } else {
                    None
                };
                CopyState {
                    repository: repo,
                    last,
                    age_seconds: last.map(age),
                    fresh,
                    why,
                }
            })
            .collect::<Vec<_>>();
        let snapshot_fresh = (s.kind == "volume").then(|| ok_age(last_snapshot, snapshots_within));
        let fresh = snapshot_fresh.unwrap_or(true) && copies.iter().all(|c| c.fresh);
        series.push(SeriesState {
            kind: s.kind,
            name: s.name.clone(),
            last_snapshot,
            snapshot_age_seconds: last_snapshot.map(age),
            snapshot_fresh,
            copies,
            fresh,
        });
    }
    // Entries the config copies that have no restore point at all.
    let o = &config.spec.offsite;
    let missing = o
        .databases
        .iter()
        .filter(|d| {
            !seen
                .iter()
                .any(|(k, n)| k == "database" && decode(n).is_some_and(|x| x.entry == d.name))
        })
        .map(|d| ("database", d.name.clone(), d.repositories.clone()))
        .chain(
            o.buckets
                .iter()
                .filter(|b| !seen.iter().any(|(k, n)| k == "bucket" && n == &b.name))
                .map(|b| ("bucket", b.name.clone(), b.repositories.clone())),
        );
    for (kind, name, repos) in missing {
        series.push(SeriesState {
            kind,
            name,
            last_snapshot: None,
            snapshot_age_seconds: None,
            snapshot_fresh: None,
            copies: repos
                .into_iter()
                .map(|repository| CopyState {
                    fresh: false,
                    why: Some(if archives_read && !listed(&repository) {
                        "the repository could not be listed".into()
                    } else {
                        "never copied".into()
                    }),
                    repository,
                    last: None,
                    age_seconds: None,
                })
                .collect(),
            fresh: false,
        });
    }
    let fresh = series.iter().all(|s| s.fresh) && listing.repositories.iter().all(|r| r.ok);
    Status {
        config: listing.config.clone(),
        namespace: listing.namespace.clone(),
        now,
        snapshots_within,
        offsite_within,
        series,
        repositories: listing.repositories.clone(),
        fresh,
    }
}

impl Status {
    /// 0 everything fresh; 1 not (stale, never copied, or a repository that could not be
    /// listed); an interruption's code.
    pub fn code(&self, interrupted: Option<u8>) -> u8 {
        let v = if self.fresh {
            Verdict::Ok
        } else {
            Verdict::Failed
        };
        exit_code([v], Run::new(interrupted))
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let base = format!(
            "config=\"{}\",namespace=\"{}\"",
            escape(&self.config),
            escape(&self.namespace)
        );
        let mut family = |name: &str, help: &str, rows: Vec<(String, f64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{{{base}{labels}}} {v}");
            }
        };
        let series =
            |s: &SeriesState| format!(",kind=\"{}\",series=\"{}\"", s.kind, escape(&s.name));
        family(
            "kentledge_snapshot_last_timestamp_seconds",
            "Cut time of the newest ready snapshot of a PVC (Unix seconds).",
            self.series
                .iter()
                .filter_map(|s| Some((series(s), s.last_snapshot?.as_second() as f64)))
                .collect(),
        );
        family(
            "kentledge_offsite_last_timestamp_seconds",
            "Time of the newest copy of a series in a repository (Unix seconds).",
            self.series
                .iter()
                .flat_map(|s| {
                    s.copies.iter().filter_map(move |c| {
                        Some((
                            format!("{},repository=\"{}\"", series(s), escape(&c.repository)),
                            c.last?.as_second() as f64,
                        ))
                    })
                })
                .collect(),
        );
        family(
            "kentledge_series_fresh",
            "1 when the series' newest snapshot and copies are within spec.status, else 0.",
            self.series
                .iter()
                .map(|s| (series(s), if s.fresh { 1.0 } else { 0.0 }))
                .collect(),
        );
        family(
            "kentledge_repository_listed",
            "1 when the repository could be listed, else 0.",
            self.repositories
                .iter()
                .map(|r| {
                    (
                        format!(",repository=\"{}\"", escape(&r.repository)),
                        if r.ok { 1.0 } else { 0.0 },
                    )
                })
                .collect(),
        );
        family(
            "kentledge_status_timestamp_seconds",
            "When this status was taken (Unix seconds).",
            vec![(String::new(), self.now.as_second() as f64)],
        );
        out
    }
}

/// An age for people: `3h12m`, `2d4h`, `45s`.
pub(crate) fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

impl Render for Status {
    fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn text(&self) -> String {
        let mut out = format!(
            "status of config {} in namespace {} at {} (fresh: snapshots within {}, copies within {})\n",
            self.config,
            self.namespace,
            self.now.strftime("%Y-%m-%d %H:%M:%S UTC"),
            self.snapshots_within
                .map(|s| human_age(s as i64))
                .unwrap_or_else(|| "any age".into()),
            self.offsite_within
                .map(|s| human_age(s as i64))
                .unwrap_or_else(|| "any age".into()),
        );
        let mut t = Table::new(
            "  ",
            vec![
                Column::left("SERIES").width(24),
                Column::right("SNAPSHOT").width(9),
                Column::left("REPOSITORY").width(14),
                Column::right("COPY").width(9),
                Column::left("STATE").gap(2),
            ],
        );
        for s in &self.series {
            let snap = s.snapshot_age_seconds.map(human_age).unwrap_or_else(|| {
                if s.kind == "volume" {
                    "never".into()
                } else {
                    "-".into()
                }
            });
            let name = format!("{} {}", s.kind, s.name);
            if s.copies.is_empty() {
                t.row([
                    name.clone(),
                    snap.clone(),
                    "-".into(),
                    "-".into(),
                    if s.fresh {
                        "fresh".into()
                    } else {
                        "STALE: no snapshot within spec.status.snapshotsWithin".into()
                    },
                ]);
            }
            for (i, c) in s.copies.iter().enumerate() {
                let state = match (&c.why, s.snapshot_fresh) {
                    (None, Some(false)) if i == 0 => {
                        "STALE: snapshot older than spec.status.snapshotsWithin".to_owned()
                    }
                    (None, _) => "fresh".to_owned(),
                    (Some(w), _) => format!("STALE: {w}"),
                };
                t.row([
                    if i == 0 { name.clone() } else { String::new() },
                    if i == 0 { snap.clone() } else { String::new() },
                    c.repository.clone(),
                    c.age_seconds
                        .map(human_age)
                        .unwrap_or_else(|| "never".into()),
                    state,
                ]);
            }
        }
        out.push_str(&t.render());
        for r in self.repositories.iter().filter(|r| !r.ok) {
            out.push_str(&format!(
                "  repository {} could not be listed: {}\n",
                r.repository, r.result
            ));
        }
        let stale = self.series.iter().filter(|s| !s.fresh).count();
        out.push_str(&if self.fresh {
            format!("all {} series fresh\n", self.series.len())
        } else {
            format!("{stale} of {} series not fresh\n", self.series.len())
        });
        out
    }
}

#[cfg(test)]
mod tests;
