//! The in-pod side of data movement (`kentledge mover --job …`): prepares the engine's
//! environment from mounted files (never from arguments), makes sure the repository exists
//! (creating it only when the config allows), runs the engine, waits for locks held by others,
//! reports lock holders, and prints progress and results as JSON lines on stdout. The exit code
//! says how it went (see [`crate::mover::job::code`]).

mod backup;
mod bucket;
mod check;
mod databases;
mod dump;
mod env;
mod list;
mod load;
mod locks;
mod pgdump;
mod process;
mod prune;
mod relay;
mod restore;
mod stop;
mod sync;

use std::io::Write;

use crate::mover::job::{Action, AnyJob, Failure, Job, LocalJob, MoverEvent};
use backup::backup;
use check::check;
use env::Env;
use list::list;
use locks::break_lock;
use prune::prune;
use restore::restore;

/// How long the engine itself waits for a lock before the mover looks at who holds it.
pub(super) const LOCK_POLL_SECS: u64 = 5;

/// A failed step: why, in the engine's words, and lock holders when locked.
#[derive(Debug)]
struct Fail {
    pub(super) failure: Failure,
    pub(super) message: String,
    pub(super) holders: Vec<String>,
}

impl Fail {
    pub(super) fn new(failure: Failure, message: impl Into<String>) -> Fail {
        Fail {
            failure,
            message: message.into(),
            holders: Vec::new(),
        }
    }
}

fn emit(e: &MoverEvent) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", e.to_line());
    let _ = out.flush();
}

fn log(level: &str, message: impl Into<String>) {
    emit(&MoverEvent::Log {
        level: level.into(),
        message: message.into(),
    });
}

/// Runs a job given as its JSON argument; returns the process exit code. The last line
/// printed is always the `end` event with that code, so that the controller can tell a log it
/// read to the end from one it could read only in part.
pub fn main(job: &str) -> i32 {
    if let Ok(AnyJob::Local(LocalJob::Relay { .. })) = serde_json::from_str::<AnyJob>(job) {
        // A relay's stdout is the content an engine stores: no events on it.
        return run_job(job);
    }
    let code = run_job(job);
    if let Some(said) = peak_memory() {
        log("debug", said);
    }
    emit(&MoverEvent::End { code });
    code
}

/// The mover's peak memory (for `-v` logs and the benchmarks): this process's resident peak
/// (VmHWM) and that of its largest engine process (the waited-for children's `ru_maxrss`).
fn peak_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let own_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let engine_kb = match unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } {
        0 => u64::try_from(usage.ru_maxrss).ok()?,
        _ => return None,
    };
    Some(format!(
        "mover peak memory: kentledge {own_kb} kB, largest engine process {engine_kb} kB"
    ))
}

fn run_job(job: &str) -> i32 {
    let job: Job = match serde_json::from_str(job) {
        Ok(AnyJob::Engine(j)) => *j,
        Ok(AnyJob::Local(LocalJob::Sync)) => {
            return match sync::sync() {
                Ok(()) => 0,
                Err(f) => fail(f),
            };
        }
        Ok(AnyJob::Local(LocalJob::Relay {
            pod,
            container,
            command,
            stdin_lines,
            check,
            feed,
        })) => {
            // Its stdout is the content: what it says goes to stderr, and no `end` event.
            return relay::relay(&relay::Relay {
                pod: &pod,
                container: &container,
                command: &command,
                stdin_lines: &stdin_lines,
                check: check.as_ref(),
                feed,
            });
        }
        Err(e) => {
            emit(&MoverEvent::Failed {
                failure: Failure::BadJob,
                message: format!("reading the job: {e}"),
                holders: Vec::new(),
            });
            return Failure::BadJob.code();
        }
    };
    let mut env = match Env::prepare(&job.repository) {
        Ok(env) => env,
        Err(f) => return fail(f),
    };
    if let Action::Bucket(b) = &job.action
        && b.kept
    {
        // The engine's cache is kept with the mirror, so unchanged objects are not read again.
        env.cache_in(
            &std::path::Path::new(crate::mover::job::paths::BUCKET)
                .join("engines")
                .join(&job.repository.name),
        );
    }
    match &job.action {
        Action::Backup { series, .. } => env.files_cache_of(series),
        Action::Bucket(b) => env.files_cache_of(&b.series),
        _ => {}
    }
    if job.action.uses_cache() {
        env.archive_indices_off();
    }
    let result = match &job.action {
        Action::Backup {
            series,
            cut,
            snapshot,
            upload_limit,
            exclude,
        } => backup(&env, series, *cut, snapshot, *upload_limit, exclude),
        Action::Prune {
            config,
            namespace,
            retention,
            timezone,
            now,
            dry_run,
        } => prune(&env, config, namespace, retention, timezone, *now, *dry_run),
        Action::Check { read_data_subset } => check(&env, read_data_subset.as_deref()),
        Action::BreakLock => break_lock(&env),
        Action::Databases(job) => databases::databases(&env, job),
        Action::RestoreDatabase(job) => load::restore_database(&env, job),
        Action::Bucket(b) => bucket::bucket_backup(&env, b),
        Action::RestoreBucket(b) => bucket::bucket_restore(&env, b),
        Action::List {
            config,
            namespace,
            series,
            sizes,
        } => list(&env, config, namespace, series.as_ref(), sizes),
        Action::Restore {
            series,
            archive,
            replace,
        } => restore(&env, series, archive, *replace),
    };
    match result {
        Ok(()) => 0,
        Err(f) => fail(f),
    }
}

fn fail(f: Fail) -> i32 {
    let code = f.failure.code();
    emit(&MoverEvent::Failed {
        failure: f.failure,
        message: f.message,
        holders: f.holders,
    });
    code
}

#[cfg(test)]
mod tests;
