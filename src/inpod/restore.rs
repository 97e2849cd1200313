//! The `restore` action: check that the archive belongs to the series, empty the volume (an
//! in-place restore) or make sure it is empty (a new one), extract the archive into it with
//! owners by number, modes, times, links, xattrs and holes, and verify the result against the
//! archive's own listing (entries and bytes).

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Instant;

use super::env::Env;
use super::list::entries;
use super::locks::with_lock_wait;
use super::process::{diagnose, run, run_quiet};
use super::{Fail, emit, log};
use crate::engines::output::{Tally, borg_items_tally, restic_ls_tally};
use crate::engines::{Series, borg, restic};
use crate::mover::job::{Engine, Failure, MoverEvent, Restored, Sizes, paths};

const LOST_FOUND: &str = "lost+found";

pub(super) fn restore(
    env: &Env,
    series: &Series,
    archive: &str,
    replace: bool,
) -> Result<(), Fail> {
    // The archive must be one of this series'. A borg archive's name says its series (the
    // prefix ends in `_`: `db` never matches `db-wal`), and extract fails on a name the
    // repository does not have: no listing needed. A restic id may be given short: listed.
    let archive = match env.access.engine {
        Engine::Borg => borg_archive_of(series, archive, &env.access.name)?,
        Engine::Restic => restic_snapshot_of(env, series, archive)?,
    };
    let root = Path::new(paths::DATA);
    emit(&MoverEvent::Writing);
    prepare(root, replace)?;
    let version = engine_version(env);
    let sparse = match env.access.engine {
        Engine::Borg => true,
        Engine::Restic => restic::restores_sparse(&version),
    };
    if !sparse {
        log(
            "warn",
            format!(
                "{version} writes sparse files in full (restic 0.15 and newer keep their holes)"
            ),
        );
    }
    log(
        "info",
        format!("extracting {archive} from {}", env.access.name),
    );
    let started = Instant::now();
    let out = with_lock_wait(env, |w| {
        let argv = match env.access.engine {
            Engine::Borg => borg::extract(&env.borg_repo(w), &archive),
            Engine::Restic => env.restic_argv(restic::restore(&archive, paths::DATA, sparse)),
        };
        run(&argv, env, Some(paths::DATA), false)
    })?;
    let seconds = started.elapsed().as_secs_f64();
    if !out.errors.is_empty() {
        // Exit 0 with warnings (an xattr or owner that could not be set) is not the same tree.
        return Err(Fail::new(
            Failure::Incomplete,
            format!(
                "the engine warned while extracting: {}",
                out.errors.join("; ")
            ),
        ));
    }
    let expected = archive_tally(env, &archive)?;
    let found = tree_tally(root, !expected.lost_found)
        .map_err(|e| Fail::new(Failure::Failed, format!("reading the restored volume: {e}")))?;
    let restored = Restored {
        archive: archive.clone(),
        entries: found.entries,
        bytes: found.bytes,
        expected_entries: expected.entries,
        expected_bytes: expected.bytes,
        sparse,
        engine_version: version,
        seconds,
    };
    if (found.entries, found.bytes) != (expected.entries, expected.bytes) {
        let msg = format!(
            "the restored volume does not match the archive: {} entries and {} bytes of files \
             written, the archive lists {} entries and {} bytes",
            found.entries, found.bytes, expected.entries, expected.bytes
        );
        emit(&MoverEvent::Restored(restored));
        return Err(Fail::new(Failure::Incomplete, msg));
    }
    emit(&MoverEvent::Restored(restored));
    Ok(())
}

/// `archive` when it is a borg archive of `series` (by its name).
pub(super) fn borg_archive_of(
    series: &Series,
    archive: &str,
    repository: &str,
) -> Result<String, Fail> {
    if archive.starts_with(&series.borg_prefix()) {
        Ok(archive.to_owned())
    } else {
        Err(not_of_series(series, archive, repository))
    }
}

fn not_of_series(series: &Series, archive: &str, repository: &str) -> Fail {
    Fail::new(
        Failure::Failed,
        format!(
            "{archive} is not an archive of the series {} in repository {repository}",
            series.name
        ),
    )
}

/// The full id of the restic snapshot of `series` whose id is or starts with `id`.
fn restic_snapshot_of(env: &Env, series: &Series, id: &str) -> Result<String, Fail> {
    let listed = entries(
        env,
        &series.config,
        &series.namespace,
        Some(series),
        &Sizes::None,
    )?;
    match crate::mover::job::matching_archives(&listed, id, true)[..] {
        [one] => Ok(one.archive.clone()),
        [] => Err(not_of_series(series, id, &env.access.name)),
        _ => Err(Fail::new(
            Failure::Failed,
            format!("more than one archive id of the series starts with {id}"),
        )),
    }
}

/// Empties the volume for an in-place restore (all but `lost+found`), or checks that a new one
/// is empty: a restore never mixes old and restored files.
fn prepare(root: &Path, replace: bool) -> Result<(), Fail> {
    let io = |e: std::io::Error| Fail::new(Failure::Failed, format!("{}: {e}", root.display()));
    let mut present = Vec::new();
    for e in std::fs::read_dir(root).map_err(io)? {
        let e = e.map_err(io)?;
        if e.file_name() != LOST_FOUND {
            present.push(e);
        }
    }
    if present.is_empty() {
        return Ok(());
    }
    if !replace {
        return Err(Fail::new(
            Failure::Failed,
            format!(
                "the volume to restore into is not empty ({} entries, e.g. {:?}): nothing was written",
                present.len(),
                present[0].file_name()
            ),
        ));
    }
    log(
        "info",
        format!(
            "removing the {} entries at the top of the volume",
            present.len()
        ),
    );
    for e in present {
        let p = e.path();
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let r = if is_dir {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(|err| Fail::new(Failure::Failed, format!("removing {}: {err}", p.display())))?;
    }
    Ok(())
}

/// `borg 1.4.0` / `restic 0.14.0`.
fn engine_version(env: &Env) -> String {
    let argv = match env.access.engine {
        Engine::Borg => vec!["borg".to_owned(), "--version".to_owned()],
        Engine::Restic => vec!["restic".to_owned(), "version".to_owned()],
    };
    run_quiet(&argv, env)
        .ok()
        .and_then(|o| {
            o.stdout
                .lines()
                .next()
                .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| env.access.engine.name().to_owned())
}

/// What the archive lists, from the engine.
fn archive_tally(env: &Env, archive: &str) -> Result<Tally, Fail> {
    let out = with_lock_wait(env, |w| {
        let argv = match env.access.engine {
            Engine::Borg => borg::items(&env.borg_repo(w), archive),
            Engine::Restic => env.restic_argv(restic::ls(archive)),
        };
        run(&argv, env, None, false)
    })?;
    if out.code != 0 {
        return Err(diagnose(env, &out));
    }
    match env.access.engine {
        Engine::Borg => borg_items_tally(&out.stdout),
        Engine::Restic => restic_ls_tally(&out.stdout),
    }
    .map_err(|e| {
        Fail::new(
            Failure::Failed,
            format!("reading the archive's listing: {e}"),
        )
    })
}

/// The tally of a tree as [`Tally`] counts an archive: every entry below `root`, and the bytes
/// of regular files (each path). `skip_lost_found`: leave out a top-level `lost+found` the
/// archive does not have.
pub(super) fn tree_tally(root: &Path, skip_lost_found: bool) -> std::io::Result<Tally> {
    let mut t = Tally::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            if skip_lost_found && dir == root && e.file_name() == LOST_FOUND {
                continue;
            }
            let m = std::fs::symlink_metadata(e.path())?;
            let ft = m.file_type();
            t.entries += 1;
            if ft.is_file() {
                t.bytes += m.len();
            } else if ft.is_dir() {
                stack.push(e.path());
            } else if !(ft.is_symlink()
                || ft.is_fifo()
                || ft.is_socket()
                || ft.is_block_device()
                || ft.is_char_device())
            {
                return Err(std::io::Error::other(format!(
                    "{}: unknown file type",
                    e.path().display()
                )));
            }
            if dir == root && e.file_name() == LOST_FOUND {
                t.lost_found = true;
            }
        }
    }
    Ok(t)
}
