//! One dump into one archive, whole or not at all: store what a relay prints (a database dump
//! streamed by exec from the database's own pod) as one archive of a series. borg runs the relay
//! itself (`--content-from-command`: no archive when it exits non-zero); restic 0.14 reads it on
//! stdin, and a snapshot of a stream the relay did not call whole is forgotten at once.

use std::process::{Command, Stdio};

use jiff::Timestamp;

use super::backup::delete_archives;
use super::env::Env;
use super::locks::with_lock_wait;
use super::process::{Output, Throttle, diagnose, each_line, run};
use super::{Fail, log};
use crate::engines::output::{self, Event, Summary};
use crate::engines::{Series, Tuning, borg, restic};
use crate::mover::job::{Engine, Failure, LocalJob};

/// The relay as a command line of this very binary.
pub(super) fn relay_argv(relay: &LocalJob) -> Result<Vec<String>, Fail> {
    let me = std::env::current_exe().map_err(|e| {
        Fail::new(
            Failure::Failed,
            format!("finding the kentledge binary: {e}"),
        )
    })?;
    Ok(vec![
        me.display().to_string(),
        "mover".into(),
        "--job".into(),
        relay.to_arg(),
    ])
}

/// Reads a child's stderr in a thread: its non-empty lines (a relay's without their prefix,
/// and logged as they come when `relay`).
pub(super) fn read_lines(
    r: impl std::io::Read + Send + 'static,
    relay: bool,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        let _ = each_line(r, |l| {
            let l = match l.strip_prefix(super::relay::PREFIX) {
                Some(said) if relay => said.to_owned(),
                _ => l,
            };
            if !l.trim().is_empty() {
                if relay {
                    log("info", l.clone());
                }
                lines.push(l);
            }
        });
        lines
    })
}

/// Why the relay did not call its stream whole, from what it said: its verdict (the last
/// line), and what the command in the database's container wrote on stderr; `None` when it
/// called the stream whole.
pub(super) fn relay_reason(said: &[String]) -> Option<String> {
    let (last, before) = said.split_last()?;
    if last.contains(" bytes, complete") {
        return None;
    }
    let mut why = last.clone();
    let details: Vec<&str> = before.iter().map(String::as_str).collect();
    if !details.is_empty() {
        let mut d = details.join("; ");
        if d.len() > 600 {
            let mut cut = 600;
            while !d.is_char_boundary(cut) {
                cut -= 1;
            }
            d.truncate(cut);
            d.push('…');
        }
        why.push_str(&format!(" ({d})"));
    }
    Some(why)
}

/// Why a stream was not stored, in the relay's words when it said why, else the engine's.
fn not_whole(relay: &[String], engine: Fail) -> Fail {
    match relay_reason(relay) {
        Some(why) => Fail::new(
            engine.failure,
            format!("the dump was not whole, no archive was made: {why}"),
        ),
        None => engine,
    }
}

/// Stores what `relay` prints as the file `file_name` of a new archive of `series` at `time`;
/// returns the engine's numbers.
pub(super) fn dump(
    env: &Env,
    series: &Series,
    time: Timestamp,
    file_name: &str,
    relay: &LocalJob,
    upload_limit: Option<u64>,
) -> Result<Summary, Fail> {
    let tuning = Tuning {
        compression: env.access.compression.as_deref(),
        upload_limit,
        exclude: &[],
    };
    let command = relay_argv(relay)?;
    let summary = match env.access.engine {
        Engine::Borg => {
            let mut said = Vec::new();
            let out = with_lock_wait(env, |w| {
                let argv = borg::create_from_command(
                    &env.borg_repo(w),
                    series,
                    time,
                    tuning,
                    file_name,
                    &command,
                );
                let out = run(&argv, env, None, false)?;
                said = out.relay.clone();
                Ok(out)
            })
            .map_err(|f| not_whole(&said, f))?;
            output::borg_result(&out.stdout)
        }
        Engine::Restic => restic_dump(env, series, time, tuning, file_name, &command)?,
    };
    summary.ok_or_else(|| {
        Fail::new(
            Failure::Failed,
            format!("{} finished without a result", env.access.engine.name()),
        )
    })
}

/// restic 0.14 (no `--stdin-from-command`): the relay's stdout passed on to `restic backup
/// --stdin` by this process, which ends restic's input only once the relay has called the stream
/// whole; otherwise restic is killed before it reads an end, so it makes no snapshot. restic dies
/// with this process (`PR_SET_PDEATHSIG`), so a mover killed half way cannot hand it an end
/// either. (A snapshot of a failed stream, should one exist anyway, is forgotten.)
fn restic_dump(
    env: &Env,
    series: &Series,
    time: Timestamp,
    tuning: Tuning<'_>,
    file_name: &str,
    command: &[String],
) -> Result<Option<Summary>, Fail> {
    let failed = |what: &str, e: std::io::Error| Fail::new(Failure::Failed, format!("{what}: {e}"));
    let argv = env.restic_argv(restic::backup_stdin(series, time, tuning, file_name));
    let mut engine = Command::new(&argv[0]);
    engine
        .args(&argv[1..])
        .envs(env.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(&mut engine);
    let mut engine = engine.spawn().map_err(|e| failed("running restic", e))?;
    let mut relay = Command::new(&command[0])
        .args(&command[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed("starting the relay", e))?;
    // What the relay says is logged as it comes (it is the dump's progress and its verdict).
    let said = read_lines(relay.stderr.take().expect("piped"), true);
    let engine_err = read_lines(engine.stderr.take().expect("piped"), false);
    // restic's JSON status lines are the dump's progress; the last summary is its result.
    let engine_out = engine.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut summary = None;
        let mut throttle = Throttle::default();
        let mut stdout = String::new();
        let _ = each_line(engine_out, |l| {
            match output::restic_line(&l) {
                Some(Event::Summary(s)) => summary = Some(s),
                Some(Event::Progress {
                    bytes_done,
                    files_done,
                    ..
                }) => throttle.progress(bytes_done, None, files_done),
                _ => {}
            }
            stdout.push_str(&l);
            stdout.push('\n');
        });
        (summary, stdout)
    });
    let mut to_engine = engine.stdin.take().expect("piped");
    let copied = std::io::copy(&mut relay.stdout.take().expect("piped"), &mut to_engine);
    let relay_status = relay
        .wait()
        .map_err(|e| failed("waiting for the relay", e))?;
    let whole = relay_status.success() && copied.is_ok();
    if whole {
        drop(to_engine); // the end of restic's input: now it makes the snapshot
    } else {
        let _ = engine.kill();
        drop(to_engine);
    }
    let status = engine.wait().map_err(|e| failed("waiting for restic", e))?;
    let (summary, stdout) = reader.join().unwrap_or_default();
    let said = said.join().unwrap_or_default();
    let engine_errors = engine_err.join().unwrap_or_default();
    // restic that could not use the repository (locked, wrong password, unreachable) ends the
    // relay's stream early: that, not the cut stream, is the reason, and it is the repository's.
    let engine_fail = (!status.success()).then(|| {
        diagnose(
            env,
            &Output {
                code: status.code().unwrap_or(1),
                stdout: stdout.clone(),
                errors: engine_errors.clone(),
                msgids: Vec::new(),
                unreadable: Vec::new(),
                relay: said.clone(),
            },
        )
    });
    if let Some(f) = &engine_fail
        && f.failure != Failure::Failed
    {
        return Err(Fail::new(f.failure, f.message.clone()));
    }
    if !whole {
        let why = match (&copied, relay_reason(&said)) {
            (_, Some(why)) => why,
            (Err(e), None) => format!("passing the stream on to restic: {e}"),
            (Ok(_), None) => "the relay failed".into(),
        };
        let removed = match &summary {
            Some(s) if !s.archive.is_empty() => {
                match delete_archives(env, std::slice::from_ref(&s.archive)) {
                    Ok(_) => format!("; the snapshot {} of it was forgotten", s.archive),
                    Err(f) => format!(
                        "; its snapshot {} could NOT be forgotten ({}): forget it by hand",
                        s.archive, f.message
                    ),
                }
            }
            _ => String::new(),
        };
        return Err(Fail::new(
            Failure::Failed,
            format!("the dump was not whole, no snapshot was made: {why}{removed}"),
        ));
    }
    if let Some(f) = engine_fail {
        return Err(f);
    }
    Ok(summary)
}

/// The child is killed when this process (the mover) dies, whatever kills it.
fn die_with_parent(c: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec here.
    unsafe {
        c.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}
