//! Running an engine: its stdout and stderr read line by line (lossily), progress relayed as
//! throttled events, and a failed run classified into a [`Failure`] from the engine's own words.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::env::Env;
use super::locks::restic_holders;
use super::{Fail, emit, log};
use crate::engines::output::{self, Event};
use crate::mover::job::{Engine, Failure, MoverEvent, paths};

/// What one engine run produced.
pub(super) struct Output {
    pub(super) code: i32,
    pub(super) stdout: String,
    /// Error and warning texts (restic's stderr, borg's log messages).
    pub(super) errors: Vec<String>,
    /// borg log message ids.
    pub(super) msgids: Vec<String>,
    /// Items the engine could not read (`path: why`).
    pub(super) unreadable: Vec<String>,
    /// What a relay the engine ran said (its stderr lines, without their prefix): not the
    /// engine's words, so never used to classify its failure.
    pub(super) relay: Vec<String>,
}

/// Runs an engine command, turning its output into events as it comes.
pub(super) fn run(
    argv: &[String],
    env: &Env,
    cwd: Option<&str>,
    stream_stdout: bool,
) -> Result<Output, Fail> {
    run_inner(argv, env, cwd, stream_stdout, false)
}

/// [`run`] without passing the engine's messages on (for probes whose failure is expected).
pub(super) fn run_quiet(argv: &[String], env: &Env) -> Result<Output, Fail> {
    run_inner(argv, env, None, false, true)
}

pub(super) fn run_inner(
    argv: &[String],
    env: &Env,
    cwd: Option<&str>,
    stream_stdout: bool,
    quiet: bool,
) -> Result<Output, Fail> {
    tracing::debug!(command = %argv.join(" "), "running");
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .envs(env.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let mut child = cmd.spawn().map_err(|e| {
        Fail::new(
            Failure::Failed,
            format!(
                "starting {}: {e} (is it installed in the mover image?)",
                argv[0]
            ),
        )
    })?;
    let engine = env.access.engine;
    let stderr = child.stderr.take();
    let err_thread = std::thread::spawn(move || {
        let mut errors = Vec::new();
        let mut msgids = Vec::new();
        let mut unreadable = Vec::new();
        let mut relay = Vec::new();
        let mut throttle = Throttle::default();
        let mut broke = None;
        if let Some(s) = stderr {
            broke = each_line(s, |line| {
                if let Some(said) = line.strip_prefix(super::relay::PREFIX) {
                    if !quiet {
                        log("info", said.to_owned());
                    }
                    relay.push(said.to_owned());
                    return;
                }
                // borg's --log-json lines and restic's JSON errors; anything else is plain text.
                let event = match (line.starts_with('{'), engine) {
                    (false, _) => None,
                    (true, Engine::Borg) => output::borg_line(&line),
                    (true, Engine::Restic) => output::restic_line(&line),
                };
                match event {
                    Some(Event::Progress {
                        bytes_done,
                        bytes_total,
                        files_done,
                    }) => throttle.progress(bytes_done, bytes_total, files_done),
                    Some(Event::Log { message, .. }) if message.is_empty() => {}
                    Some(Event::Log {
                        level,
                        msgid,
                        message,
                    }) => {
                        // A missing repository is said by the step's failure (or made).
                        let missing = msgid.as_deref().is_some_and(|m| NO_REPOSITORY.contains(&m));
                        msgids.extend(msgid);
                        if matches!(level.as_str(), "ERROR" | "WARNING" | "CRITICAL") {
                            errors.push(message.clone());
                        }
                        if !quiet && !missing {
                            log(&level.to_lowercase(), message);
                        }
                    }
                    Some(Event::Unreadable { item, reason }) => {
                        unreadable.push(not_read(&item, &reason))
                    }
                    Some(Event::Summary(_)) => {}
                    None if !line.trim().is_empty() && !line.starts_with('{') => {
                        errors.push(line.clone());
                        if !quiet {
                            log("warn", line);
                        }
                    }
                    None => {}
                }
            })
            .err();
        }
        (errors, msgids, unreadable, relay, broke)
    });
    let mut stdout = String::new();
    let mut stdout_broke = None;
    let mut unreadable_out = Vec::new();
    if let Some(mut s) = child.stdout.take() {
        if stream_stdout && engine == Engine::Restic {
            let mut throttle = Throttle::default();
            stdout_broke = each_line(s, |line| {
                match output::restic_line(&line) {
                    Some(Event::Progress {
                        bytes_done,
                        bytes_total,
                        files_done,
                    }) => {
                        throttle.progress(bytes_done, bytes_total, files_done);
                    }
                    Some(Event::Log { message, .. }) => log("error", message),
                    Some(Event::Unreadable { item, reason }) => {
                        unreadable_out.push(not_read(&item, &reason))
                    }
                    _ => {}
                }
                stdout.push_str(&line);
                stdout.push('\n');
            })
            .err();
        } else if let Err(e) = s.read_to_string(&mut stdout) {
            stdout_broke = Some(e);
        }
    }
    let status = child
        .wait()
        .map_err(|e| Fail::new(Failure::Failed, format!("waiting for {}: {e}", argv[0])))?;
    // What the engine said decides what its exit means (unreadable files, lock holders): output
    // that could not be read in full is a failure, never an empty list of problems.
    let (errors, msgids, mut unreadable, relay, stderr_broke) =
        err_thread.join().map_err(|_| {
            Fail::new(
                Failure::Failed,
                format!("reading the messages of {} failed", argv[0]),
            )
        })?;
    if let Some(e) = stderr_broke.or(stdout_broke) {
        return Err(Fail::new(
            Failure::Failed,
            format!("reading the output of {} failed: {e}", argv[0]),
        ));
    }
    unreadable.extend(unreadable_out);
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255);
    Ok(Output {
        code,
        stdout,
        errors,
        msgids,
        unreadable,
        relay,
    })
}

/// Calls `f` with each line of `r` (without its end), decoded lossily: an engine may print a
/// path that is not UTF-8, and that must not end the reading. A read error ends it and is
/// returned.
pub(super) fn each_line(r: impl Read, mut f: impl FnMut(String)) -> std::io::Result<()> {
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        let line = String::from_utf8_lossy(&buf);
        f(line.trim_end_matches(['\n', '\r']).to_owned());
    }
}

/// One item an engine could not read, logged as it comes.
pub(super) fn not_read(item: &str, reason: &str) -> String {
    let line = format!("{item}: {reason}");
    log("warn", format!("not read: {line}"));
    line
}

/// At most one progress event a second, except the first that knows the total (a display
/// shows its bar at once). A total of 0 is not known: borg's extract says `"total": 0` while it
/// still counts the archive.
#[derive(Default)]
pub(super) struct Throttle {
    pub(super) last: Option<Instant>,
    totalled: bool,
}

impl Throttle {
    pub(super) fn progress(&mut self, bytes: u64, total: Option<u64>, files: u64) {
        if let Some(total) = self.admits(total, Instant::now()) {
            emit(&MoverEvent::Progress {
                bytes,
                total,
                files,
            });
        }
    }

    /// Whether a report at `now` with `total` goes out (it is then the last one), with the total
    /// it gives.
    fn admits(&mut self, total: Option<u64>, now: Instant) -> Option<Option<u64>> {
        let total = total.filter(|t| *t > 0);
        let first_total = total.is_some() && !self.totalled;
        if !first_total
            && self
                .last
                .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return None;
        }
        self.totalled |= total.is_some();
        self.last = Some(now);
        Some(total)
    }
}

/// Whether an engine said it ran out of space (ENOSPC: borg's "No space left on device",
/// restic's Go "no space left on device").
fn out_of_space(message: &str) -> bool {
    message
        .to_ascii_lowercase()
        .contains("no space left on device")
}

/// What to do when the engine ran out of space on the cache volume (its path is in the message).
pub(super) fn cache_full(message: &str, repository: &str) -> Option<String> {
    (out_of_space(message) && message.contains(paths::CACHE)).then(|| {
        format!(
            " (the cache volume of repository {repository} is full: raise spec.repositories[{repository}].cache.size, or set cache: {{enabled: false}})"
        )
    })
}

/// What to do when the engine ran out of space anywhere but the cache volume: in the
/// repository's storage.
pub(super) fn repository_full(message: &str, repository: &str) -> Option<String> {
    (out_of_space(message) && !message.contains(paths::CACHE)).then(|| {
        format!(
            " (the storage of repository {repository} is full: give it more room, for a volume by \
             raising its claim's size, or delete archives with `kentledge prune`, then run again)"
        )
    })
}

/// Why a run failed, from borg's message ids and exit codes or restic's words and exit codes.
pub(super) fn classify(engine: Engine, out: &Output) -> Fail {
    let text = out.errors.join("\n");
    let failure = match engine {
        Engine::Borg => classify_borg(&out.msgids, out.code, &text),
        Engine::Restic => classify_restic(out.code, &text),
    };
    let message = if text.trim().is_empty() {
        format!("{} exited with {}", engine.name(), out.code)
    } else {
        output::without_tracebacks(&text)
    };
    let holders = if failure == Failure::Locked && engine == Engine::Restic {
        restic_holders(&message)
    } else {
        Vec::new()
    };
    Fail {
        failure,
        message,
        holders,
    }
}

/// [`classify`], and for borg over ssh a closed connection explained by ssh itself (borg does not
/// pass on why ssh gave up: host key, authentication, refused).
pub(super) fn diagnose(env: &Env, out: &Output) -> Fail {
    let mut f = classify(env.access.engine, out);
    if let Some(hint) = cache_full(&f.message, &env.access.name)
        .or_else(|| repository_full(&f.message, &env.access.name))
    {
        f.message.push_str(&hint);
    }
    if f.failure != Failure::Unreachable {
        return f;
    }
    // borg hides ssh's words, and restic may exit before it relays them: ask ssh itself.
    let Some(argv) = env
        .location
        .ssh_target()
        .and_then(|t| env.ssh_argv(t.destination(), t.port, vec!["true".into()]))
    else {
        return f;
    };
    if let Ok(o) = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
    {
        let err = String::from_utf8_lossy(&o.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        if !o.status.success() && !last.is_empty() && !f.message.contains(last) {
            f.message = format!("{} (ssh: {last})", f.message);
        }
    }
    f
}

/// borg's message ids saying there is no repository at the location.
const NO_REPOSITORY: [&str; 2] = ["Repository.DoesNotExist", "Repository.InvalidRepository"];

pub(super) fn classify_borg(msgids: &[String], code: i32, text: &str) -> Failure {
    let has = |ids: &[&str]| msgids.iter().any(|m| ids.contains(&m.as_str()));
    if has(&[
        "LockTimeout",
        "LockFailed",
        "LockError",
        "NotLocked",
        "NotMyLock",
    ]) || code == 73
    {
        Failure::Locked
    } else if has(&["PassphraseWrong", "PasscommandFailure"]) || code == 52 {
        Failure::Passphrase
    } else if has(&NO_REPOSITORY) || code == 13 {
        Failure::NoRepository
    } else if has(&["ConnectionClosed", "ConnectionClosedWithHint"])
        || text.contains("Connection closed by remote host")
        || text.contains("Host key verification failed")
        || text.contains("Connection refused")
    {
        Failure::Unreachable
    } else {
        Failure::Failed
    }
}

pub(super) fn classify_restic(code: i32, text: &str) -> Failure {
    let unreachable = [
        "connection refused",
        "dial tcp",
        "no such host",
        "i/o timeout",
        "Host key verification failed",
        "ssh command exited",
        "unable to start the sftp session",
        "Connection closed",
    ];
    if code == 11 || text.contains("repository is already locked") {
        Failure::Locked
    } else if code == 12 || text.contains("wrong password or no key found") {
        Failure::Passphrase
    } else if unreachable.iter().any(|u| text.contains(u)) {
        Failure::Unreachable
    } else if code == 10
        || text.contains("Is there a repository at the following location?")
        || text.contains("The specified bucket does not exist")
    {
        Failure::NoRepository
    } else {
        Failure::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_goes_out_once_a_second_but_the_first_known_total_at_once() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut t = Throttle::default();
        // borg extract's first line: "total": 0 while it counts the archive.
        assert_eq!(t.admits(Some(0), ms(0)), Some(None));
        assert_eq!(t.admits(None, ms(100)), None);
        assert_eq!(t.admits(Some(160), ms(200)), Some(Some(160)));
        assert_eq!(t.admits(Some(160), ms(300)), None);
        assert_eq!(t.admits(Some(160), ms(1199)), None);
        assert_eq!(t.admits(Some(160), ms(1200)), Some(Some(160)));
        assert_eq!(t.admits(None, ms(1300)), None);
        assert_eq!(t.admits(None, ms(2300)), Some(None));
    }
}
