//! The `prune` action: list every series of this config and namespace, decide each archive with
//! the retention engine, print every decision, and delete what is not kept (unless a dry run).

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::backup::delete_archives;
use super::env::Env;
use super::list::entries;
use super::locks::with_lock_wait;
use super::process::run;
use super::{Fail, emit, log};
use crate::engines::{Series, borg};
use crate::model::units::HumanDuration;
use crate::mover::job::{ArchiveDecision, Engine, Failure, MoverEvent, Sizes};
use crate::plan::retention::{self, Member};

/// A series and its archives (name or id, time).
pub(super) type SeriesArchives = (Series, Vec<(String, Timestamp)>);

/// Every series of `config` in `namespace` in the repository, with its archives and their times.
pub(super) fn list_all(
    env: &Env,
    config: &str,
    namespace: &str,
) -> Result<Vec<SeriesArchives>, Fail> {
    let mut out: std::collections::BTreeMap<_, Vec<(String, Timestamp)>> =
        std::collections::BTreeMap::new();
    for e in entries(env, config, namespace, None, &Sizes::None)? {
        out.entry((e.kind, e.series))
            .or_default()
            .push((e.archive, e.time));
    }
    Ok(out
        .into_iter()
        .map(|((kind, name), archives)| {
            let series = Series {
                config: config.to_owned(),
                namespace: namespace.to_owned(),
                kind,
                name,
            };
            (series, archives)
        })
        .collect())
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
