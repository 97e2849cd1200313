//! Repository locks: who holds them (borg's lock listing, restic's message), waiting for locks
//! held by others up to the job's lock wait, and breaking stale locks of gone movers.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::LOCK_POLL_SECS;
use super::env::Env;
use super::process::{Output, diagnose, run};
use super::{Fail, log};
use crate::engines::borg;
use crate::model::repository::Kind;
use crate::model::units::HumanDuration;
use crate::mover::job::{Engine, Failure};

/// `… locked [exclusively] by PID 123 on HOST by user …` → `HOST 123`.
pub(super) fn restic_holders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in text.split("by PID ").skip(1) {
        let mut w = part.split_whitespace();
        let pid = w.next().unwrap_or_default();
        if w.next() == Some("on")
            && let Some(host) = w.next()
        {
            out.push(format!("{host} {pid}"));
        }
    }
    out
}

/// Holders of a borg repository's locks (the exclusive lock directory's entries and the
/// roster) and of its cache's lock (a mover killed while it ran leaves both behind on a cache
/// volume).
pub(super) fn borg_holders(env: &Env) -> Vec<String> {
    let mut listing = cache_locks(env);
    listing.push_str(&match env.location.kind() {
                Kind::Path => lock_listing(Path::new(env.location.as_str())),
        // Works where the key may run commands; with a `borg serve`-only key the holder stays
        // unknown, and an unknown holder is never broken.
        Kind::Ssh(t) => env
            .ssh_argv(
                t.destination(),
                t.port,
                vec![format!(
                    "ls -1 '{path}/lock.exclusive' 2>/dev/null; cat '{path}/lock.roster' 2>/dev/null",
                    path = t.path
                )],
            )
            .and_then(|argv| {
                Command::new(&argv[0])
                    .args(&argv[1..])
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .output()
                    .ok()
            })
                        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default(),
        _ => String::new(),
    });
    parse_borg_locks(&listing)
}

/// The lock entries of every borg cache under `BORG_BASE_DIR` (`.cache/borg/<repository id>/`).
fn cache_locks(env: &Env) -> String {
    let mut s = String::new();
    let Some(base) = env.var("BORG_BASE_DIR") else {
        return s;
    };
    let caches = Path::new(base).join(".cache").join("borg");
    for cache in std::fs::read_dir(caches).into_iter().flatten().flatten() {
        s.push_str(&lock_listing(&cache.path()));
    }
    s
}

/// A borg lock's entries in `dir`: the names in `lock.exclusive/` and the `lock.roster`.
fn lock_listing(dir: &Path) -> String {
    let mut s = String::new();
    if let Ok(rd) = std::fs::read_dir(dir.join("lock.exclusive")) {
        for e in rd.flatten() {
            s.push_str(&e.file_name().to_string_lossy());
            s.push('\n');
        }
    }
    s.push_str(&std::fs::read_to_string(dir.join("lock.roster")).unwrap_or_default());
    s.push('\n');
    s
}

/// Lock entries (`host.pid-thread` file names, and the roster's `[host, pid, thread]` triples).
pub(super) fn parse_borg_locks(listing: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in listing.lines() {
        let line = line.trim();
        if line.starts_with('{') {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                for kind in ["exclusive", "shared"] {
                    for e in v[kind].as_array().into_iter().flatten() {
                        if let (Some(h), Some(p)) = (e[0].as_str(), e[1].as_i64()) {
                            out.push(format!("{h} {p}"));
                        }
                    }
                }
            }
        } else if let Some((host, rest)) = line.rsplit_once('.')
            && let Some((pid, _)) = rest.split_once('-')
        {
            out.push(format!("{host} {pid}"));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Runs an engine step, waiting for locks held by others until the repository's lock wait ends.
/// A lock held by a mover of this namespace is reported at once (the controller knows whether
/// that pod still exists).
pub(super) fn with_lock_wait(
    env: &Env,
    step: impl FnMut(u64) -> Result<Output, Fail>,
) -> Result<Output, Fail> {
    with_lock_wait_ok(env, &[0], step)
}

/// [`with_lock_wait`], with the exit codes that count as success (borg create's 1 is a warning:
/// the archive was written; borg check's 1 means it found errors).
pub(super) fn with_lock_wait_ok(
    env: &Env,
    ok_codes: &[i32],
    mut step: impl FnMut(u64) -> Result<Output, Fail>,
) -> Result<Output, Fail> {
    let started = Instant::now();
    let total = Duration::from_secs(env.access.lock_wait_secs);
    loop {
        let out = step(LOCK_POLL_SECS.min(env.access.lock_wait_secs.max(1)))?;
        if ok_codes.contains(&out.code) {
            return Ok(out);
        }
        let mut f = diagnose(env, &out);
        if f.failure != Failure::Locked {
            return Err(f);
        }
        if env.access.engine == Engine::Borg {
            f.holders = borg_holders(env);
        }
        let ours = f
            .holders
            .iter()
            .any(|h| h.starts_with(&env.access.mover_prefix));
        if ours || started.elapsed() >= total {
            if f.holders.is_empty() {
                f.message.push_str(" (holder unknown)");
            }
            return Err(f);
        }
        log(
            "info",
            format!(
                "repository {} is locked by {}; waiting (up to {})",
                env.access.name,
                if f.holders.is_empty() {
                    "an unknown holder".to_owned()
                } else {
                    f.holders.join(", ")
                },
                HumanDuration::from_secs(env.access.lock_wait_secs)
            ),
        );
        std::thread::sleep(Duration::from_secs(LOCK_POLL_SECS));
    }
}

pub(super) fn break_lock(env: &Env) -> Result<(), Fail> {
    let argv = match env.access.engine {
        Engine::Borg => borg::repo_command(&env.borg_repo(LOCK_POLL_SECS), &["break-lock"], &[]),
        Engine::Restic => env.restic(&["unlock", "--remove-all"]),
    };
    let out = run(&argv, env, None, false)?;
    if out.code == 0 {
        log(
            "warn",
            format!("removed the locks of repository {}", env.access.name),
        );
        Ok(())
    } else {
        Err(diagnose(env, &out))
    }
}
