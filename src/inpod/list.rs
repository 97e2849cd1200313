//! The `list` action: every archive of a config and namespace (or of one series) with its time
//! and, where the engine knows them, its size and file count, printed as `listed` events; the
//! same listing serves `prune`.

use jiff::Timestamp;
use serde_json::Value;

use super::env::Env;
use super::locks::with_lock_wait;
use super::process::run;
use super::{Fail, emit};
use crate::engines::{Series, SeriesKind, borg, restic, scope_prefix, scope_tags};
use crate::mover::job::{ArchiveEntry, Engine, Failure, MoverEvent, Sizes};

/// The time in a borg archive name's stamp (`2026-11-22T10-00-07Z`).
pub(super) fn archive_time(stamp: &str) -> Option<Timestamp> {
    let (date, time) = stamp.split_once('T')?;
    format!("{date}T{}", time.replace('-', ":")).parse().ok()
}

/// The series and time a borg archive name of this config and namespace stands for.
fn borg_name(prefix: &str, name: &str) -> Option<(SeriesKind, String, Timestamp)> {
    let rest = name.strip_prefix(prefix)?;
    match rest.split('_').collect::<Vec<_>>()[..] {
        [kind, series, stamp] => Some((
            SeriesKind::from_short(kind)?,
            series.to_owned(),
            archive_time(stamp)?,
        )),
        _ => None,
    }
}

fn parse_json(engine: &str, text: &str) -> Result<Value, Fail> {
    serde_json::from_str(text.trim())
        .map_err(|e| Fail::new(Failure::Failed, format!("{engine} listing output: {e}")))
}

/// Every archive of `config` in `namespace` (only `series`' when given), oldest first as the
/// engine lists them. The archives `sizes` names get their size and file count where the
/// listing lacks them (borg info; restic stats when its snapshots carry no summary).
pub(super) fn entries(
    env: &Env,
    config: &str,
    namespace: &str,
    series: Option<&Series>,
    sizes: &Sizes,
) -> Result<Vec<ArchiveEntry>, Fail> {
    let scope = scope_prefix(config, namespace);
    let mut out = Vec::new();
    match env.access.engine {
        Engine::Borg => {
            let prefix = series.map(Series::borg_prefix).unwrap_or(scope.clone());
            let mut archives = borg_archives(env, *sizes == Sizes::All, &prefix)?;
            if let Sizes::Of(of) = sizes {
                // Only this series' archives are asked about (borg info is the slow part).
                let sized: std::collections::HashMap<String, Value> =
                    borg_archives(env, true, &of.borg_prefix())?
                        .into_iter()
                        .filter_map(|a| Some((a["name"].as_str()?.to_owned(), a)))
                        .collect();
                for a in archives.iter_mut() {
                    if let Some(info) = a["name"].as_str().and_then(|n| sized.get(n)) {
                        *a = info.clone();
                    }
                }
            }
            for a in &archives {
                let Some(name) = a["name"].as_str() else {
                    continue;
                };
                let Some((kind, s, time)) = borg_name(&scope, name) else {
                    continue;
                };
                let stats = &a["stats"];
                out.push(ArchiveEntry {
                    kind,
                    series: s,
                    archive: name.to_owned(),
                    time,
                    size: stats["original_size"].as_u64(),
                    added: None,
                    files: stats["nfiles"].as_u64(),
                });
            }
        }
        Engine::Restic => {
            let tags = series
                .map(Series::restic_tags)
                .unwrap_or_else(|| scope_tags(config, namespace));
            let argv = env.restic_argv(restic::snapshots(&tags));
            let o = with_lock_wait(env, |_| run(&argv, env, None, false))?;
            let v = parse_json("restic", &o.stdout)?;
            let Some(snaps) = v.as_array() else {
                return Err(Fail::new(
                    Failure::Failed,
                    "restic's snapshot listing is not a list",
                ));
            };
            for snap in snaps {
                let tag =
                    |k: &str| {
                        snap["tags"].as_array().into_iter().flatten().find_map(|t| {
                            t.as_str()?.strip_prefix(&format!("{k}=")).map(String::from)
                        })
                    };
                let (Some(id), Some(time), Some(kind), Some(name)) = (
                    snap["id"].as_str(),
                    snap["time"]
                        .as_str()
                        .and_then(|t| t.parse::<Timestamp>().ok()),
                    tag("kind").as_deref().and_then(SeriesKind::from_short),
                    tag("name"),
                ) else {
                    continue;
                };
                // restic 0.17 and newer keep the backup's summary in the snapshot.
                let summary = &snap["summary"];
                let mut entry = ArchiveEntry {
                    kind,
                    series: name,
                    archive: id.to_owned(),
                    time,
                    size: summary["total_bytes_processed"].as_u64(),
                    added: summary["data_added"].as_u64(),
                    files: summary["total_files_processed"].as_u64(),
                };
                if sizes.wanted(entry.kind, &entry.series) && entry.size.is_none() {
                    let argv = env.restic(&["stats", "--json", "--mode", "restore-size", id]);
                    let o = with_lock_wait(env, |_| run(&argv, env, None, false))?;
                    let v = parse_json("restic stats", &o.stdout)?;
                    entry.size = v["total_size"].as_u64();
                    entry.files = v["total_file_count"].as_u64();
                }
                out.push(entry);
            }
        }
    }
    Ok(out)
}

/// borg's archives whose names start with `prefix`: `borg list`, or with `info` `borg info`
/// (their sizes and file counts too).
pub(super) fn borg_archives(env: &Env, info: bool, prefix: &str) -> Result<Vec<Value>, Fail> {
    let glob = format!("{prefix}*");
    let o = with_lock_wait(env, |w| {
        let verb = if info { "info" } else { "list" };
        run(
            &borg::repo_command(
                &env.borg_repo(w),
                &[verb, "--json", "--glob-archives", &glob],
                &[],
            ),
            env,
            None,
            false,
        )
    })?;
    let mut v = parse_json("borg", &o.stdout)?;
    match v["archives"].take() {
        Value::Array(a) => Ok(a),
        _ => Err(Fail::new(
            Failure::Failed,
            "borg's listing has no \"archives\" list",
        )),
    }
}

/// The `list` action: one `listed` event per archive.
pub(super) fn list(
    env: &Env,
    config: &str,
    namespace: &str,
    series: Option<&Series>,
    sizes: &Sizes,
) -> Result<(), Fail> {
    for e in entries(env, config, namespace, series, sizes)? {
        emit(&MoverEvent::Listed(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borg_names_give_their_series_and_time() {
        let scope = scope_prefix("shop", "prod");
        assert_eq!(
            borg_name(
                &scope,
                "kentledge_shop_prod_vol_db-wal_2026-11-22T10-00-07Z"
            ),
            Some((
                SeriesKind::Volume,
                "db-wal".into(),
                "2026-11-22T10:00:07Z".parse().unwrap()
            ))
        );
        assert_eq!(
            borg_name(&scope, "kentledge_shop_other_vol_db_2026-11-22T10-00-07Z"),
            None
        );
        assert_eq!(
            borg_name(&scope, "kentledge_shop_prod_vol_db_yesterday"),
            None
        );
        assert_eq!(
            borg_name(&scope, "kentledge_shop_prod_zip_db_2026-11-22T10-00-07Z"),
            None
        );
    }
}
