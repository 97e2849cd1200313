//! A database restore as data: which database of an entry's dumps (the only one, or
//! `--database`), which archive of it (as for volumes, failing closed), which database of the
//! server it goes into (`--to-database`, else its own name), and the mover pod that loads it;
//! printed by `--dry-run`.

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

use super::{ArchiveQuery, Source, choose_series_archive};
use crate::config::{Config, DatabaseBackup, Repository};
use crate::engines::SeriesKind;
use crate::engines::databases::{DatabaseEngine, Decoded, decode, file_name, series_name};
use crate::mover::job::{Action, ArchiveEntry, DatabasesJob, Job, RestoreDatabaseJob};
use crate::mover::pod;
use crate::plan::backup::access;
use crate::plan::dumps::client;

/// A planned database restore.
#[derive(Clone, Debug, Serialize)]
pub struct DatabaseRestorePlan {
    /// The `spec.offsite.databases` entry.
    pub name: String,
    /// The engine.
    pub engine: DatabaseEngine,
    /// The database the dump is of.
    pub database: String,
    /// The database it is loaded into.
    pub target: String,
    /// Whether an existing target is replaced (after a safety dump).
    pub replace: bool,
    /// The database pod and container.
    pub pod: String,
    /// Its container.
    pub container: String,
    /// The archive.
    pub source: Source,
    /// The mover pod's name.
    pub pod_name: String,
    /// The mover pod.
    #[serde(skip)]
    pub mover: Pod,
    /// Its job.
    #[serde(skip)]
    pub job: Job,
    /// The repository's config.
    #[serde(skip)]
    pub repo: Repository,
}

/// The databases an entry's dumps (not its safety dumps) in a listing are of, by name.
pub fn databases_in(entries: &[ArchiveEntry], entry: &str) -> Vec<String> {
    let mut out: Vec<String> = entries
        .iter()
        .filter(|e| e.kind == SeriesKind::Database)
        .filter_map(|e| match decode(&e.series) {
            Some(Decoded {
                entry: b,
                database: Some(db),
                safety: false,
            }) if b == entry => Some(db),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The database to restore: `wanted`, or the only one the repository has dumps of.
pub fn choose_database(
    entries: &[ArchiveEntry],
    entry: &str,
    repository: &str,
    wanted: Option<&str>,
) -> Result<String, String> {
    let found = databases_in(entries, entry);
    match (wanted, &found[..]) {
        (Some(w), _) if found.iter().any(|d| d == w) => Ok(w.to_owned()),
        (_, []) => Err(format!(
            "repository {repository} has no dumps of {entry}{}",
            wanted
                .map(|w| format!(" (asked for database {w})"))
                .unwrap_or_default()
        )),
        (Some(w), _) => Err(format!(
            "--database {w}: repository {repository} has no dump of it; it has dumps of {}",
            found.join(", ")
        )),
        (None, [one]) => Ok(one.clone()),
        (None, _) => Err(format!(
            "the dumps of {entry} in repository {repository} are of several databases: say which with --database ({})",
            found.join(", ")
        )),
    }
}

/// What a database restore is made from.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The config.
    pub config: &'a Config,
    /// Names and owner of the run's objects.
    pub ctx: &'a pod::Context<'a>,
    /// The entry.
    pub entry: &'a DatabaseBackup,
    /// The repository.
    pub repo: &'a Repository,
    /// Its listing.
    pub entries: &'a [ArchiveEntry],
    /// `--database`.
    pub database: Option<&'a str>,
    /// `--archive`, `--as-of`.
    pub query: ArchiveQuery<'a>,
    /// `--to-database`.
    pub to: Option<&'a str>,
    /// `--replace`.
    pub replace: bool,
    /// The pod and container the entry's dumps run in.
    pub server: (&'a str, &'a str),
    /// The mover's index in the run (the listing took the first).
    pub index: usize,
}

/// Plans a database restore; a refusal says why, and nothing is changed.
pub fn plan(i: &Inputs<'_>) -> Result<DatabaseRestorePlan, String> {
    let d = i.entry;
    // A named archive: the database it is a dump of (a safety dump's too).
    let of_archive: Vec<(String, String)> = match i.query.archive {
        Some(id) => i
            .entries
            .iter()
            .filter(|e| e.kind == SeriesKind::Database)
            .filter(|e| e.archive == id || e.archive.starts_with(id))
            .filter_map(|e| match decode(&e.series) {
                Some(Decoded {
                    entry,
                    database: Some(db),
                    ..
                }) if entry == d.name && i.database.is_none_or(|w| w == db) => {
                    Some((db, e.series.clone()))
                }
                _ => None,
            })
            .collect(),
        None => Vec::new(),
    };
    let (database, series) = match &of_archive[..] {
        [(db, series)] => (db.clone(), series.clone()),
        _ => {
            let db = choose_database(i.entries, &d.name, &i.repo.name, i.database)?;
            let series = series_name(&d.name, Some(&db));
            (db, series)
        }
    };
    let source = choose_series_archive(i.entries, i.repo, SeriesKind::Database, &series, i.query)?;
    let Source::Archive { entry, .. } = &source else {
        unreachable!("archives only")
    };
    let target = i.to.unwrap_or(&database).to_owned();
    if crate::engines::databases::is_system(d.engine, &target) {
        return Err(format!(
            "{target} is one of the server's own databases: kentledge never restores into it"
        ));
    }
    let (client, files) = client(d.engine, &d.credentials);
    let mover = &i.config.spec.mover;
    let job = Job {
        repository: access(i.repo, i.ctx.namespace),
        action: Action::RestoreDatabase(RestoreDatabaseJob {
            server: DatabasesJob {
                config: i.config.metadata.name.clone(),
                namespace: i.ctx.namespace.to_owned(),
                name: d.name.clone(),
                pod: i.server.0.to_owned(),
                container: i.server.1.to_owned(),
                client,
                stdin_lines: files.iter().map(|(_, p)| (*p).to_owned()).collect(),
                databases: Vec::new(),
                upload_limit: None,
            },
            source: database.clone(),
            archive: entry.archive.clone(),
            file_name: file_name(d.engine, Some(&database)),
            target: target.clone(),
            replace: i.replace,
        }),
    };
    let (pod_name, _) = pod::names(i.ctx.namespace, i.ctx.run_id, i.index);
    let dumper = crate::plan::dumps::dumper(mover, files);
    let mover_pod = pod::dump_pod(i.ctx, &pod_name, mover, i.repo, &job, &dumper);
    Ok(DatabaseRestorePlan {
        name: d.name.clone(),
        engine: d.engine,
        database,
        target,
        replace: i.replace,
        pod: i.server.0.to_owned(),
        container: i.server.1.to_owned(),
        source,
        pod_name,
        mover: mover_pod,
        job,
        repo: i.repo.clone(),
    })
}

/// The `--dry-run` text.
pub fn render(p: &DatabaseRestorePlan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "restore of database {} of {} ({}) (dry run: nothing is changed)\n  from       {}\n  into       database {} in {}/{}, by exec of its own client ({})\n  if {} exists: {}\n  mover      {}",
        p.database,
        p.name,
        p.engine.name(),
        p.source.describe(),
        p.target,
        p.pod,
        p.container,
        match p.engine {
            DatabaseEngine::Postgresql => "pg_restore --single-transaction --exit-on-error",
            _ => "mariadb --one-database, stopping at the first error",
        },
        p.target,
        if p.replace {
            "it is dumped into the same repository first (the safety dump), then replaced"
        } else {
            "refused, nothing is changed (--replace replaces it after a safety dump)"
        },
        p.pod_name,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn entry(series: &str, archive: &str, time: &str) -> ArchiveEntry {
        ArchiveEntry {
            kind: SeriesKind::Database,
            series: series.into(),
            archive: archive.into(),
            time: time.parse::<Timestamp>().unwrap(),
            size: None,
            added: None,
            files: None,
        }
    }

    #[test]
    fn the_database_is_the_only_one_or_the_one_named() {
        let listing = [
            entry("maria", "u1", "2026-12-01T10:00:00Z"),
            entry("maria.shop..safety", "x1", "2026-12-01T11:00:00Z"),
            entry("maria.gone..safety", "x2", "2026-12-01T11:00:00Z"),
            entry("maria.shop", "s1", "2026-12-01T10:00:00Z"),
            entry("maria.my.5fapp", "a1", "2026-12-01T10:00:00Z"),
            entry("other.shop", "o1", "2026-12-01T10:00:00Z"),
        ];
        assert_eq!(databases_in(&listing, "maria"), ["my_app", "shop"]);
        assert_eq!(
            choose_database(&listing, "maria", "r", Some("my_app")),
            Ok("my_app".into())
        );
        let e = choose_database(&listing, "maria", "r", None).unwrap_err();
        assert!(
            e.contains("say which with --database (my_app, shop)"),
            "{e}"
        );
        let e = choose_database(&listing, "maria", "r", Some("nope")).unwrap_err();
        assert!(
            e.contains("has no dump of it; it has dumps of my_app, shop"),
            "{e}"
        );
        assert_eq!(
            choose_database(&listing, "other", "r", None),
            Ok("shop".into())
        );
        let e = choose_database(&listing, "pg", "r", None).unwrap_err();
        assert_eq!(e, "repository r has no dumps of pg");
    }
}
