//! The `backup` action: make sure the repository exists (creating it only when the config
//! allows), copy the mounted clone into one archive, and delete an incomplete copy.

use jiff::Timestamp;

use super::LOCK_POLL_SECS;
use super::env::Env;
use super::locks::{with_lock_wait, with_lock_wait_ok};
use super::process::{Output, diagnose, run, run_quiet};
use super::{Fail, emit, log};
use crate::engines::output::{self, Event};
use crate::engines::{Series, Tuning, borg, restic};
use crate::mover::job::{Engine, Failure, MoverEvent, paths};

/// Makes sure the repository exists: creates it when missing and the config allows.
pub(super) fn ensure_repository(env: &Env) -> Result<(), Fail> {
    if let Some(f) = absent(env) {
        return create_repository(env, &f);
    }
    // The probe waits for locks like any step (borg info takes the repository's lock).
    let probe = with_lock_wait(env, |wait| {
        let argv = match env.access.engine {
            Engine::Borg => borg::repo_command(&env.borg_repo(wait), &["info", "--json"], &[]),
            Engine::Restic => env.restic(&["cat", "config", "--no-lock"]),
        };
        run_quiet(&argv, env)
    });
    match probe {
        Ok(_) => Ok(()),
        Err(f) if f.failure == Failure::NoRepository => create_repository(env, &f),
        Err(f) => Err(f),
    }
}

/// A repository on a path in the mover's filesystem that is certainly not there (nothing at the
/// path, or an empty directory), as the engine would say it (`None` where it may exist or
/// cannot be looked at: then the engine finds out). Saves a first copy's engine start that can
/// only fail.
fn absent(env: &Env) -> Option<Fail> {
    if !env.location.is_path() {
        return None;
    }
    let text = env.location.as_str();
    let path = std::path::Path::new(text.strip_prefix("local:").unwrap_or(text));
    let missing = match std::fs::read_dir(path) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    };
    missing.then(|| {
        Fail::new(
            Failure::NoRepository,
            format!("there is no repository at {}", path.display()),
        )
    })
}

/// Creates the repository that a step found missing (`f` says so), when the config allows.
fn create_repository(env: &Env, f: &Fail) -> Result<(), Fail> {
    let Some(encryption) = &env.access.init else {
        return Err(Fail::new(
            Failure::NoRepository,
            format!(
                "repository {} ({}) does not exist and init is off in the config: {}",
                env.access.name, env.access.location, f.message
            ),
        ));
    };
    log(
        "info",
        format!(
            "creating repository {} ({})",
            env.access.name, env.access.location
        ),
    );
    let init = match env.access.engine {
        Engine::Borg => borg::init(&env.borg_repo(LOCK_POLL_SECS), encryption),
        Engine::Restic => env.restic(&["init"]),
    };
    let out = run(&init, env, None, false)?;
    if out.code == 0 {
        Ok(())
    } else {
        Err(diagnose(env, &out))
    }
}

pub(super) fn backup(
    env: &Env,
    series: &Series,
    cut: Timestamp,
    snapshot: &str,
    upload_limit: Option<u64>,
    exclude: &[String],
) -> Result<(), Fail> {
    let tuning = Tuning {
        compression: env.access.compression.as_deref(),
        upload_limit,
        exclude,
    };
    let create = |wait| match env.access.engine {
        Engine::Borg => borg::create(&env.borg_repo(wait), series, cut, snapshot, tuning),
        Engine::Restic => env.restic_argv(restic::backup(series, cut, tuning)),
    };
    // borg starts slowly (half a second a command): a repository certainly missing from its
    // path is made first (when the config allows); a copy into any other goes straight to
    // `borg create`, and only one that finds no repository makes it and copies again. A clone
    // can be read twice; a dump's stream cannot, so dumps and buckets probe first. restic's
    // probe is cheap and its missing-repository message is plain text: it probes first too.
    if let Some(f) = absent(env) {
        create_repository(env, &f)?;
    } else if env.access.engine == Engine::Borg {
        match make_archive(env, series, cut, Some(snapshot), paths::DATA, &create) {
            Err(f) if f.failure == Failure::NoRepository => create_repository(env, &f)?,
            other => return other.map(|_| ()),
        }
    } else {
        ensure_repository(env)?;
    }
    make_archive(env, series, cut, Some(snapshot), paths::DATA, &create).map(|_| ())
}

/// Runs `argv` (given the lock wait) in `cwd` to make the series' archive of `time`, and passes
/// its numbers on; an archive that lacks files is deleted and the copy fails. A borg archive of
/// that name made before is this copy's only when its comment names `snapshot` (a volume's
/// copy; dumps and buckets name none).
pub(super) fn make_archive(
    env: &Env,
    series: &Series,
    cut: Timestamp,
    snapshot: Option<&str>,
    cwd: &str,
    argv: &dyn Fn(u64) -> Vec<String>,
) -> Result<crate::engines::output::Summary, Fail> {
    // Warnings (borg's modern 1 and 100–127, restic backup's 3: files not read) leave an archive,
    // which is checked below.
    let ok_codes: Vec<i32> = match env.access.engine {
        Engine::Borg => [0, 1].into_iter().chain(100..=127).collect(),
        Engine::Restic => vec![0, 3],
    };
    let out = with_lock_wait_ok(env, &ok_codes, |wait| {
        run(&argv(wait), env, Some(cwd), true)
    });
    let out = match out {
        Err(f)
            if env.access.engine == Engine::Borg
                && f.message.contains(&series.borg_archive(cut))
                && f.message.contains("already exists") =>
        {
            // The same cut was copied before (archive names carry the cut): nothing to add,
            // unless that archive holds another snapshot cut in the same second.
            if let Some(snapshot) = snapshot {
                archive_holds(env, &series.borg_archive(cut), snapshot)?;
            }
            log("info", format!("{} (copied by an earlier run)", f.message));
            let summary = crate::engines::output::Summary {
                archive: series.borg_archive(cut),
                ..Default::default()
            };
            emit(&MoverEvent::Summary {
                summary: summary.clone(),
            });
            return Ok(summary);
        }
        other => other?,
    };
    let summary = match env.access.engine {
        Engine::Borg => output::borg_result(&out.stdout),
        Engine::Restic => out
            .stdout
            .lines()
            .rev()
            .find_map(|l| match output::restic_line(l) {
                Some(Event::Summary(s)) => Some(s),
                _ => None,
            }),
    };
    // borg's warning exits (1, 100–127) mean something was not copied as it was; an unexplained
    // one is not taken for a whole copy (101, an include pattern that never matched, is harmless:
    // kentledge passes none).
    let unexplained = env.access.engine == Engine::Borg
        && out.code != 0
        && out.code != 101
        && out.unreadable.is_empty();
    match summary {
        Some(s)
            if !out.unreadable.is_empty()
                || unexplained
                || (env.access.engine == Engine::Restic && out.code == 3) =>
        {
            let said: Vec<String> = if out.unreadable.is_empty() {
                out.errors
                    .iter()
                    .map(|e| format!("borg exit {}: {e}", out.code))
                    .collect()
            } else {
                out.unreadable.clone()
            };
            Err(incomplete(env, &s.archive, &said))
        }
        other => summary_or_fail(env, other),
    }
}

/// Fails unless the borg archive `archive` holds `snapshot` (its comment says so): an archive of
/// the same name holds another snapshot of the volume cut in the same second, or was made
/// before archives named their snapshot, and is not this snapshot's copy.
fn archive_holds(env: &Env, archive: &str, snapshot: &str) -> Result<(), Fail> {
    let found = super::list::borg_archives(env, true, archive)?;
    let comment = found
        .iter()
        .find(|a| a["name"].as_str() == Some(archive))
        .and_then(|a| a["comment"].as_str());
    if comment == Some(borg::snapshot_comment(snapshot).as_str()) {
        return Ok(());
    }
    let holds = match comment {
        Some(c) if !c.is_empty() => format!("holds another ({c})"),
        _ => "names no snapshot".to_owned(),
    };
    Err(Fail::new(
        Failure::Failed,
        format!(
            "the archive {archive} already exists in repository {} and {holds}: snapshot {snapshot} was cut in the same second (borg archive names carry the cut to the second) and is not copied; the next snapshot is",
            env.access.name
        ),
    ))
}

/// Passes a copy's numbers on, or fails when the engine said none (never an empty success).
pub(super) fn summary_or_fail(
    env: &Env,
    summary: Option<crate::engines::output::Summary>,
) -> Result<crate::engines::output::Summary, Fail> {
    match summary {
        Some(s) => {
            emit(&MoverEvent::Summary { summary: s.clone() });
            Ok(s)
        }
        None => Err(Fail::new(
            Failure::Failed,
            format!("{} finished without a result", env.access.engine.name()),
        )),
    }
}

/// A copy that lacks files is not a backup: the archive is removed (it would count in the series'
/// retention like a whole one) and the failure names what was not read and how to fix it.
pub(super) fn incomplete(env: &Env, archive: &str, unreadable: &[String]) -> Fail {
    let removed = match delete_archives(env, &[archive.to_owned()]) {
        Ok(_) => format!("the incomplete archive {archive} was removed"),
        Err(f) => format!(
            "the incomplete archive {archive} could not be removed ({}): delete it by hand",
            f.message
        ),
    };
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid().to_string())
        .unwrap_or_else(|_| "?".into());
    let shown: Vec<&str> = unreadable.iter().take(3).map(String::as_str).collect();
    Fail::new(
        Failure::Incomplete,
        format!(
            "incomplete: {} item(s) could not be read ({}{}); {removed}. The mover runs as uid \
             {uid}: give it access with spec.mover.securityContext (runAsUser: 0, or privileged: \
             true for volumes owned by other users)",
            unreadable.len().max(1),
            if shown.is_empty() {
                "the engine did not say which"
            } else {
                ""
            },
            shown.join("; "),
        ),
    )
}

/// Deletes archives (borg names, restic snapshot ids); restic's data goes at its next prune.
pub(super) fn delete_archives(env: &Env, archives: &[String]) -> Result<Output, Fail> {
    with_lock_wait(env, |w| {
        let argv = match env.access.engine {
            Engine::Borg => borg::delete(&env.borg_repo(w), archives),
            Engine::Restic => env.restic_argv(restic::forget(archives)),
        };
        run(&argv, env, None, false)
    })
}
