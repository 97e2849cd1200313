//! The `prune` action: list every series of this config and namespace, decide each archive with
//! the retention engine, print every decision, and delete what is not kept (unless a dry run).

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::backup::delete_archives;
use super::env::Env;
use super::locks::with_lock_wait;
use super::process::run;
use super::{Fail, emit, log};
use crate::engines::{Series, borg, restic};
use crate::model::units::HumanDuration;
use crate::mover::job::{ArchiveDecision, Engine, Failure, MoverEvent};
use crate::plan::retention::{self, Member};

/// A series and its archives (name or id, time).
pub(super) type SeriesArchives = (Series, Vec<(String, Timestamp)>);

/// Every series of `config` in `namespace` in the repository, with its archives and their times.
pub(super) fn list_all(
    env: &Env,
    config: &str,
    namespace: &str,
) -> Result<Vec<SeriesArchives>, Fail> {
    let mut out: std::collections::BTreeMap<(String, String), Vec<(String, Timestamp)>> =
        std::collections::BTreeMap::new();
    match env.access.engine {
        Engine::Borg => {
            let prefix = crate::engines::scope_prefix(config, namespace);
            let out_json = with_lock_wait(env, |w| {
                run(&borg::list(&env.borg_repo(w), &prefix), env, None, false)
            })?;
            let v: serde_json::Value = serde_json::from_str(&out_json.stdout)
                .map_err(|e| Fail::new(Failure::Failed, format!("borg list output: {e}")))?;
            for a in v["archives"].as_array().into_iter().flatten() {
                let Some(name) = a["name"].as_str() else {
                    continue;
                };
                let Some(rest) = name.strip_prefix(&prefix) else {
                    continue;
                };
                let parts: Vec<&str> = rest.split('_').collect();
                if let [kind, series, stamp] = parts[..]
                    && let Some(t) = archive_time(stamp)
                {
                    out.entry((kind.to_owned(), series.to_owned()))
                        .or_default()
                        .push((name.to_owned(), t));
                }
            }
        }
        Engine::Restic => {
            let tags = crate::engines::scope_tags(config, namespace);
            let argv = env.restic_argv(restic::snapshots(&tags));
            let o = with_lock_wait(env, |_| run(&argv, env, None, false))?;
            let v: serde_json::Value = serde_json::from_str(o.stdout.trim())
                .map_err(|e| Fail::new(Failure::Failed, format!("restic snapshots output: {e}")))?;
            for snap in v.as_array().into_iter().flatten() {
                let tag =
                    |k: &str| {
                        snap["tags"].as_array().into_iter().flatten().find_map(|t| {
                            t.as_str()?.strip_prefix(&format!("{k}=")).map(String::from)
                        })
                    };
                let (Some(id), Some(t), Some(kind), Some(name)) = (
                    snap["id"].as_str(),
                    snap["time"]
                        .as_str()
                        .and_then(|t| t.parse::<Timestamp>().ok()),
                    tag("kind"),
                    tag("name"),
                ) else {
                    continue;
                };
                out.entry((kind, name))
                    .or_default()
                    .push((id.to_owned(), t));
            }
        }
    }
    Ok(out
        .into_iter()
        .filter_map(|((kind, name), archives)| {
            let kind = crate::engines::SeriesKind::from_short(&kind)?;
            Some((
                Series {
                    config: config.to_owned(),
                    namespace: namespace.to_owned(),
                    kind,
                    name,
                },
                archives,
            ))
        })
        .collect())
}

/// The time in a borg archive name's stamp (`2026-11-22T10-00-07Z`).
pub(super) fn archive_time(stamp: &str) -> Option<Timestamp> {
    let (date, time) = stamp.split_once('T')?;
    format!("{date}T{}", time.replace('-', ":")).parse().ok()
}

pub(super) fn prune(
    env: &Env,
    config: &str,
    namespace: &str,
    retention: &crate::mover::job::Retention,
    timezone: &str,
    now: Timestamp,
    dry_run: bool,
) -> Result<(), Fail> {
    let tz = TimeZone::get(timezone)
        .map_err(|e| Fail::new(Failure::BadJob, format!("time zone {timezone}: {e}")))?;
    let policy = retention.policy();
    let ctx = retention::Clock {
        tz,
        now,
        not_ready_grace: HumanDuration::from_secs(0),
    };
    let mut doomed_total = 0usize;
    for (s, archives) in list_all(env, config, namespace)? {
        let s = &s;
        let members: Vec<Member> = archives
            .iter()
            .map(|(id, time)| Member {
                id: id.clone(),
                time: *time,
                ready: true,
                pinned: false,
            })
            .collect();
        let decisions = retention::evaluate(&members, &policy, &ctx);
        let mut doomed = Vec::new();
        for ((id, time), d) in archives.iter().zip(&decisions) {
            emit(&MoverEvent::Archive(ArchiveDecision {
                series: s.name.clone(),
                archive: id.clone(),
                time: *time,
                keep: d.keep,
                reasons: d.explain(),
                deleted: false,
            }));
            if !d.keep {
                doomed.push(id.clone());
            }
        }
        if dry_run || doomed.is_empty() {
            continue;
        }
        doomed_total += doomed.len();
        delete_archives(env, &doomed)?;
        emit(&MoverEvent::Deleted {
            series: s.name.clone(),
            archives: doomed.clone(),
        });
        log(
            "info",
            format!(
                "deleted {} archive(s) of {} from {}",
                doomed.len(),
                s.name,
                env.access.name
            ),
        );
    }
    if !dry_run && doomed_total > 0 {
        with_lock_wait(env, |w| {
            let argv = match env.access.engine {
                Engine::Borg => borg::compact(&env.borg_repo(w)),
                Engine::Restic => env.restic(&["prune"]),
            };
            run(&argv, env, None, false)
        })?;
        log("info", format!("reclaimed space in {}", env.access.name));
    }
    Ok(())
}
