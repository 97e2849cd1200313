//! The `dump` action: store what a relay prints (a database dump streamed by exec from the
//! database's own pod) as one archive of a series, whole or not at all. borg runs the relay
//! itself (`--content-from-command`: no archive when it exits non-zero); restic 0.14 reads it on
//! stdin, and a snapshot of a failed stream is forgotten at once.

use std::process::{Command, Stdio};

use jiff::Timestamp;

use super::backup::{delete_archives, ensure_repository, summary_or_fail};
use super::env::Env;
use super::locks::with_lock_wait;
use super::process::{diagnose, run};
use super::{Fail, log};
use crate::engines::output::{self, Event, Summary};
use crate::engines::{Series, Tuning, borg, restic};
use crate::mover::job::{Engine, Failure, LocalJob};

/// The relay as a command line of this very binary.
fn relay_argv(relay: &LocalJob) -> Result<Vec<String>, Fail> {
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

pub(super) fn dump(
    env: &Env,
    series: &Series,
    time: Timestamp,
    file_name: &str,
    relay: &LocalJob,
    upload_limit: Option<u64>,
) -> Result<(), Fail> {
    ensure_repository(env)?;
    let tuning = Tuning {
        compression: env.access.compression.as_deref(),
        upload_limit,
        exclude: &[],
    };
    let command = relay_argv(relay)?;
    log(
        "info",
        format!("dumping into {} as {file_name}", env.access.name),
    );
    let summary = match env.access.engine {
        Engine::Borg => {
            let out = with_lock_wait(env, |w| {
                let argv = borg::create_from_command(
                    &env.borg_repo(w),
                    series,
                    time,
                    tuning,
                    file_name,
                    &command,
                );
                run(&argv, env, None, false)
            })?;
            output::borg_result(&out.stdout)
        }
        Engine::Restic => restic_dump(env, series, time, tuning, file_name, &command)?,
    };
    summary_or_fail(env, summary)
}

/// restic 0.14: the relay's stdout piped into `restic backup --stdin`; a snapshot made of a
/// stream the relay did not call whole is forgotten.
fn restic_dump(
    env: &Env,
    series: &Series,
    time: Timestamp,
    tuning: Tuning<'_>,
    file_name: &str,
    command: &[String],
) -> Result<Option<Summary>, Fail> {
    let failed = |what: &str, e: std::io::Error| Fail::new(Failure::Failed, format!("{what}: {e}"));
    let mut relay = Command::new(&command[0])
        .args(&command[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed("starting the relay", e))?;
    let relay_out = relay.stdout.take().expect("piped");
    let relay_err = relay.stderr.take().expect("piped");
    let said = std::thread::spawn(move || std::io::read_to_string(relay_err).unwrap_or_default());
    let argv = env.restic_argv(restic::backup_stdin(series, time, tuning, file_name));
    let engine = Command::new(&argv[0])
        .args(&argv[1..])
        .envs(env.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::from(relay_out))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| failed("running restic", e))?;
    let relay_status = relay
        .wait()
        .map_err(|e| failed("waiting for the relay", e))?;
    let said = said.join().unwrap_or_default();
    for line in said.lines().filter(|l| !l.trim().is_empty()) {
        log("info", line.to_owned());
    }
    let stdout = String::from_utf8_lossy(&engine.stdout);
    let summary = stdout
        .lines()
        .rev()
        .find_map(|l| match output::restic_line(l) {
            Some(Event::Summary(s)) => Some(s),
            _ => None,
        });
    if !relay_status.success() {
        let why = said.lines().last().unwrap_or("the relay failed").to_owned();
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
            format!("the dump was not whole: {why}{removed}"),
        ));
    }
    if !engine.status.success() {
        let out = super::process::Output {
            code: engine.status.code().unwrap_or(1),
            stdout: stdout.into_owned(),
            errors: String::from_utf8_lossy(&engine.stderr)
                .lines()
                .map(String::from)
                .collect(),
            msgids: Vec::new(),
            unreadable: Vec::new(),
        };
        return Err(diagnose(env, &out));
    }
    Ok(summary)
}
