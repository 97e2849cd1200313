//! The in-pod side of data movement (`kentledge mover --job …`): prepares the engine's
//! environment from mounted files (never from arguments), makes sure the repository exists
//! (creating it only when the config allows), runs the engine, waits for locks held by others,
//! reports lock holders, and prints progress and results as JSON lines on stdout. The exit code
//! says how it went (see [`super::job::code`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::job::{Access, Action, ArchiveDecision, Engine, Failure, Job, MoverEvent, paths};
use crate::engines::progress::{self, Event};
use crate::engines::{Series, Tuning, borg, restic};
use crate::retention::{self, Member, Policy};
use crate::units::HumanDuration;

/// How long the engine itself waits for a lock before the mover looks at who holds it.
const LOCK_POLL_SECS: u64 = 5;

/// A failed step: why, in the engine's words, and lock holders when locked.
#[derive(Debug)]
struct Fail {
    failure: Failure,
    message: String,
    holders: Vec<String>,
}

impl Fail {
    fn new(failure: Failure, message: impl Into<String>) -> Fail {
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
    let code = run_job(job);
    emit(&MoverEvent::End { code });
    code
}

fn run_job(job: &str) -> i32 {
    let job: Job = match serde_json::from_str(job) {
        Ok(j) => j,
        Err(e) => {
            emit(&MoverEvent::Failed {
                failure: Failure::BadJob,
                message: format!("reading the job: {e}"),
                holders: Vec::new(),
            });
            return Failure::BadJob.code();
        }
    };
    let env = match Env::prepare(&job.repository) {
        Ok(env) => env,
        Err(f) => return fail(f),
    };
    let result = match &job.action {
        Action::Backup {
            series,
            cut,
            upload_limit,
            exclude,
        } => backup(&env, series, *cut, *upload_limit, exclude),
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

/// The engine's environment and the repository's access settings.
struct Env {
    access: Access,
    vars: Vec<(String, String)>,
    /// A private copy of the ssh key (secret volumes may be group-readable, which ssh refuses).
    _key_dir: Option<PrivateDir>,
    ssh_command: Option<String>,
}

impl Env {
    fn prepare(access: &Access) -> Result<Env, Fail> {
        let mut vars: Vec<(String, String)> = Vec::new();
        let cache = PathBuf::from(paths::CACHE);
        let (key_dir, ssh_command) = match &access.ssh {
            Some(ssh) => {
                let mut cmd = vec!["ssh".to_owned(), "-o".into(), "BatchMode=yes".into()];
                let mut dir = None;
                if ssh.key {
                    let d = PrivateDir::new()?;
                    let key = d.0.join("key");
                    copy_private(Path::new(paths::SSH_KEY), &key)?;
                    cmd.extend([
                        "-i".into(),
                        key.display().to_string(),
                        "-o".into(),
                        "IdentitiesOnly=yes".into(),
                    ]);
                    dir = Some(d);
                }
                if ssh.insecure {
                    log(
                        "warn",
                        format!(
                            "ssh host key checking is OFF for repository {} (insecureSkipHostKeyCheck)",
                            access.name
                        ),
                    );
                    cmd.extend([
                        "-o".into(),
                        "StrictHostKeyChecking=no".into(),
                        "-o".into(),
                        "UserKnownHostsFile=/dev/null".into(),
                    ]);
                } else {
                    cmd.extend(["-o".into(), "StrictHostKeyChecking=yes".into()]);
                    if ssh.known_hosts {
                        cmd.extend([
                            "-o".into(),
                            format!("UserKnownHostsFile={}", paths::KNOWN_HOSTS),
                        ]);
                    }
                }
                (dir, Some(cmd.join(" ")))
            }
            None => (None, None),
        };
        for d in ["borg", "restic"] {
            let _ = std::fs::create_dir_all(cache.join(d));
        }
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "kentledge-mover".into());
        match access.engine {
            Engine::Borg => {
                vars.push((
                    "BORG_BASE_DIR".into(),
                    cache.join("borg").display().to_string(),
                ));
                vars.push(("BORG_HOST_ID".into(), host));
                vars.push(("BORG_EXIT_CODES".into(), "modern".into()));
                vars.push((
                    "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK".into(),
                    "yes".into(),
                ));
                vars.push(("BORG_RELOCATED_REPO_ACCESS_IS_OK".into(), "yes".into()));
                vars.push(("BORG_DISPLAY_PASSPHRASE".into(), "no".into()));
                if access.passphrase {
                    vars.push((
                        "BORG_PASSCOMMAND".into(),
                        format!("cat {}", paths::PASSPHRASE),
                    ));
                } else {
                    vars.push(("BORG_PASSPHRASE".into(), String::new()));
                }
                if let Some(c) = &ssh_command {
                    vars.push(("BORG_RSH".into(), c.clone()));
                }
            }
            Engine::Restic => {
                vars.push(("RESTIC_REPOSITORY".into(), access.location.clone()));
                vars.push(("RESTIC_PASSWORD_FILE".into(), paths::PASSPHRASE.into()));
                vars.push((
                    "RESTIC_CACHE_DIR".into(),
                    cache.join("restic").display().to_string(),
                ));
            }
        }
        Ok(Env {
            access: access.clone(),
            vars,
            _key_dir: key_dir,
            ssh_command,
        })
    }

    fn borg_repo(&self, lock_wait: u64) -> borg::Repo {
        borg::Repo {
            location: self.access.location.clone(),
            lock_wait_secs: lock_wait,
            remote_path: self.access.remote_path.clone(),
        }
    }

    /// restic's global options: `-o sftp.command=…` for sftp repositories.
    fn restic_options(&self) -> Vec<String> {
        match (&self.ssh_command, sftp_target(&self.access.location)) {
            (Some(ssh), Some((target, port))) => {
                let port = port.map(|p| format!(" -p {p}")).unwrap_or_default();
                vec![
                    "-o".into(),
                    format!("sftp.command={ssh}{port} {target} -s sftp"),
                ]
            }
            _ => Vec::new(),
        }
    }

    fn restic(&self, words: &[&str]) -> Vec<String> {
        self.restic_argv(restic::command(words))
    }

    /// A restic command line with the repository's global options (`-o sftp.command=…`).
    fn restic_argv(&self, mut argv: Vec<String>) -> Vec<String> {
        argv.splice(1..1, self.restic_options());
        argv
    }

    /// `ssh [options] [-p port] target command…` with the repository's ssh settings.
    fn ssh_argv(&self, target: String, port: Option<u16>, command: String) -> Option<Vec<String>> {
        let mut argv: Vec<String> = self
            .ssh_command
            .as_ref()?
            .split(' ')
            .map(String::from)
            .collect();
        if let Some(p) = port {
            argv.extend(["-p".into(), p.to_string()]);
        }
        argv.extend([target, command]);
        Some(argv)
    }
}

/// A directory only the mover can read, removed when dropped.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn new() -> Result<PrivateDir, Fail> {
        use std::os::unix::fs::DirBuilderExt;
        let p = std::env::temp_dir().join(format!("kentledge-ssh-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&p)
            .map_err(|e| Fail::new(Failure::Failed, format!("creating {}: {e}", p.display())))?;
        Ok(PrivateDir(p))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_private(from: &Path, to: &Path) -> Result<(), Fail> {
    use std::os::unix::fs::OpenOptionsExt;
    let data = std::fs::read(from)
        .map_err(|e| Fail::new(Failure::Failed, format!("reading {}: {e}", from.display())))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(|e| Fail::new(Failure::Failed, format!("writing {}: {e}", to.display())))?;
    f.write_all(&data)
        .map_err(|e| Fail::new(Failure::Failed, format!("writing {}: {e}", to.display())))
}

/// `user@host` and the port of an `sftp:` location (`sftp:user@host:/path` or
/// `sftp://user@host:port//path`).
fn sftp_target(location: &str) -> Option<(String, Option<u16>)> {
    let rest = location.strip_prefix("sftp:")?;
    if let Some(url) = rest.strip_prefix("//") {
        let authority = url.split('/').next()?;
        match authority.rsplit_once(':') {
            Some((h, p)) => Some((h.to_owned(), p.parse().ok())),
            None => Some((authority.to_owned(), None)),
        }
    } else {
        Some((rest.split(':').next()?.to_owned(), None))
    }
}

/// What one engine run produced.
struct Output {
    code: i32,
    stdout: String,
    /// Error and warning texts (restic's stderr, borg's log messages).
    errors: Vec<String>,
    /// borg log message ids.
    msgids: Vec<String>,
    /// Items the engine could not read (`path: why`).
    unreadable: Vec<String>,
}

/// Runs an engine command, turning its output into events as it comes.
fn run(argv: &[String], env: &Env, cwd: Option<&str>, stream_stdout: bool) -> Result<Output, Fail> {
    run_inner(argv, env, cwd, stream_stdout, false)
}

/// [`run`] without passing the engine's messages on (for probes whose failure is expected).
fn run_quiet(argv: &[String], env: &Env) -> Result<Output, Fail> {
    run_inner(argv, env, None, false, true)
}

fn run_inner(
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
        let mut throttle = Throttle::default();
        let mut broke = None;
        if let Some(s) = stderr {
            broke = each_line(s, |line| {
                // borg's --log-json lines and restic's JSON errors; anything else is plain text.
                let event = match (line.starts_with('{'), engine) {
                    (false, _) => None,
                    (true, Engine::Borg) => progress::borg_line(&line),
                    (true, Engine::Restic) => progress::restic_line(&line),
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
                        msgids.extend(msgid);
                        if matches!(level.as_str(), "ERROR" | "WARNING" | "CRITICAL") {
                            errors.push(message.clone());
                        }
                        if !quiet {
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
        (errors, msgids, unreadable, broke)
    });
    let mut stdout = String::new();
    let mut stdout_broke = None;
    let mut unreadable_out = Vec::new();
    if let Some(mut s) = child.stdout.take() {
        if stream_stdout && engine == Engine::Restic {
            let mut throttle = Throttle::default();
            stdout_broke = each_line(s, |line| {
                match progress::restic_line(&line) {
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
    let (errors, msgids, mut unreadable, stderr_broke) = err_thread.join().map_err(|_| {
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
    })
}

/// Calls `f` with each line of `r` (without its end), decoded lossily: an engine may print a
/// path that is not UTF-8, and that must not end the reading. A read error ends it and is
/// returned.
fn each_line(r: impl Read, mut f: impl FnMut(String)) -> std::io::Result<()> {
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
fn not_read(item: &str, reason: &str) -> String {
    let line = format!("{item}: {reason}");
    log("warn", format!("not read: {line}"));
    line
}

/// At most one progress event a second.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
}

impl Throttle {
    fn progress(&mut self, bytes: u64, total: Option<u64>, files: u64) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last = Some(Instant::now());
        emit(&MoverEvent::Progress {
            bytes,
            total,
            files,
        });
    }
}

/// Why a run failed, from borg's message ids and exit codes or restic's words and exit codes.
fn classify(engine: Engine, out: &Output) -> Fail {
    let text = out.errors.join("\n");
    let failure = match engine {
        Engine::Borg => classify_borg(&out.msgids, out.code, &text),
        Engine::Restic => classify_restic(out.code, &text),
    };
    let message = if text.trim().is_empty() {
        format!("{} exited with {}", engine.name(), out.code)
    } else {
        text
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
fn diagnose(env: &Env, out: &Output) -> Fail {
    let mut f = classify(env.access.engine, out);
    if f.failure != Failure::Unreachable {
        return f;
    }
    // borg hides ssh's words, and restic may exit before it relays them: ask ssh itself.
    let loc = &env.access.location;
    let Some(argv) = borg_ssh_target(loc)
        .map(|(target, port, _)| (target, port))
        .or_else(|| sftp_target(loc))
        .and_then(|(target, port)| env.ssh_argv(target, port, "true".into()))
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

fn classify_borg(msgids: &[String], code: i32, text: &str) -> Failure {
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
    } else if has(&["Repository.DoesNotExist", "Repository.InvalidRepository"]) || code == 13 {
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

fn classify_restic(code: i32, text: &str) -> Failure {
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

/// `… locked [exclusively] by PID 123 on HOST by user …` → `HOST 123`.
fn restic_holders(text: &str) -> Vec<String> {
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

/// Holders of a borg repository's locks: the exclusive lock directory's entries and the roster.
fn borg_holders(env: &Env) -> Vec<String> {
    let loc = &env.access.location;
    let listing = if loc.starts_with('/') {
        let mut s = String::new();
        if let Ok(rd) = std::fs::read_dir(Path::new(loc).join("lock.exclusive")) {
            for e in rd.flatten() {
                s.push_str(&e.file_name().to_string_lossy());
                s.push('\n');
            }
        }
        s.push_str(
            &std::fs::read_to_string(Path::new(loc).join("lock.roster")).unwrap_or_default(),
        );
        s
    } else if let Some(argv) = borg_ssh_target(loc).and_then(|(target, port, path)| {
        // Works where the key may run commands; with a `borg serve`-only key the holder stays
        // unknown, and an unknown holder is never broken.
        env.ssh_argv(
            target,
            port,
            format!(
                "ls -1 '{path}/lock.exclusive' 2>/dev/null; cat '{path}/lock.roster' 2>/dev/null"
            ),
        )
    }) {
        Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    parse_borg_locks(&listing)
}

/// `user@host`, port and path of a borg `ssh://` location (`/./rel` and `/~/rel` are relative to
/// the home directory).
fn borg_ssh_target(loc: &str) -> Option<(String, Option<u16>, String)> {
    let rest = loc.strip_prefix("ssh://")?;
    let (authority, path) = rest.split_once('/')?;
    let (target, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().ok()),
        None => (authority.to_owned(), None),
    };
    let path = if let Some(rel) = path.strip_prefix("./") {
        rel.to_owned()
    } else if let Some(rel) = path.strip_prefix("~/") {
        rel.to_owned()
    } else {
        format!("/{path}")
    };
    Some((target, port, path))
}

/// Lock entries (`host.pid-thread` file names, and the roster's `[host, pid, thread]` triples).
fn parse_borg_locks(listing: &str) -> Vec<String> {
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
fn with_lock_wait(
    env: &Env,
    step: impl FnMut(u64) -> Result<Output, Fail>,
) -> Result<Output, Fail> {
    with_lock_wait_ok(env, &[0], step)
}

/// [`with_lock_wait`], with the exit codes that count as success (borg create's 1 is a warning:
/// the archive was written; borg check's 1 means it found errors).
fn with_lock_wait_ok(
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

/// Makes sure the repository exists: creates it when missing and the config allows.
fn ensure_repository(env: &Env) -> Result<(), Fail> {
    // The probe waits for locks like any step (borg info takes the repository's lock).
    let probe = with_lock_wait(env, |wait| {
        let argv = match env.access.engine {
            Engine::Borg => borg::repo_command(&env.borg_repo(wait), &["info", "--json"], &[]),
            Engine::Restic => env.restic(&["cat", "config", "--no-lock"]),
        };
        run_quiet(&argv, env)
    });
    let f = match probe {
        Ok(_) => return Ok(()),
        Err(f) if f.failure == Failure::NoRepository => f,
        Err(f) => return Err(f),
    };
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

fn backup(
    env: &Env,
    series: &Series,
    cut: Timestamp,
    upload_limit: Option<u64>,
    exclude: &[String],
) -> Result<(), Fail> {
    ensure_repository(env)?;
    let tuning = Tuning {
        compression: env.access.compression.as_deref(),
        upload_limit,
        exclude,
    };
    // Warnings (borg's modern 1 and 100–127, restic backup's 3: files not read) leave an archive,
    // which is checked below.
    let ok_codes: Vec<i32> = match env.access.engine {
        Engine::Borg => [0, 1].into_iter().chain(100..=127).collect(),
        Engine::Restic => vec![0, 3],
    };
    let out = with_lock_wait_ok(env, &ok_codes, |wait| {
        let argv = match env.access.engine {
            Engine::Borg => borg::create(&env.borg_repo(wait), series, cut, tuning),
            Engine::Restic => env.restic_argv(restic::backup(series, cut, tuning)),
        };
        run(&argv, env, Some(paths::DATA), true)
    });
    let out = match out {
        Err(f)
            if env.access.engine == Engine::Borg
                && f.message.contains(&series.borg_archive(cut))
                && f.message.contains("already exists") =>
        {
            // The same cut was copied before (archive names carry the cut): nothing to add.
            log("info", format!("{} (copied by an earlier run)", f.message));
            emit(&MoverEvent::Summary {
                summary: crate::mover::job::SummaryDto {
                    archive: series.borg_archive(cut),
                    ..Default::default()
                },
            });
            return Ok(());
        }
        other => other?,
    };
    let summary = match env.access.engine {
        Engine::Borg => progress::borg_result(&out.stdout),
        Engine::Restic => out
            .stdout
            .lines()
            .rev()
            .find_map(|l| match progress::restic_line(l) {
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
        Some(s) => {
            emit(&MoverEvent::Summary { summary: s.into() });
            Ok(())
        }
        None => Err(Fail::new(
            Failure::Failed,
            format!("{} finished without a result", env.access.engine.name()),
        )),
    }
}

/// A copy that lacks files is not a backup: the archive is removed (it would count in the series'
/// retention like a whole one) and the failure names what was not read and how to fix it.
fn incomplete(env: &Env, archive: &str, unreadable: &[String]) -> Fail {
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
fn delete_archives(env: &Env, archives: &[String]) -> Result<Output, Fail> {
    with_lock_wait(env, |w| {
        let argv = match env.access.engine {
            Engine::Borg => borg::delete(&env.borg_repo(w), archives),
            Engine::Restic => env.restic_argv(restic::forget(archives, false)),
        };
        run(&argv, env, None, false)
    })
}

fn check(env: &Env, read_data_subset: Option<&str>) -> Result<(), Fail> {
    let argv = match env.access.engine {
        Engine::Borg => {
            let mut words = vec!["check"];
            if read_data_subset.is_some() {
                words.push("--verify-data");
            }
            borg::repo_command(&env.borg_repo(LOCK_POLL_SECS), &words, &[])
        }
        Engine::Restic => {
            let mut a = env.restic(&["check"]);
            if let Some(s) = read_data_subset {
                a.push(format!("--read-data-subset={s}"));
            }
            a
        }
    };
    let _ = with_lock_wait(env, |_| {
        let out = run(&argv, env, None, false)?;
        for l in out.stdout.lines().filter(|l| !l.trim().is_empty()) {
            log("info", l);
        }
        Ok(out)
    })?;
    log(
        "info",
        format!("repository {} checked: no errors", env.access.name),
    );
    Ok(())
}

fn break_lock(env: &Env) -> Result<(), Fail> {
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

/// A series and its archives (name or id, time).
type SeriesArchives = (Series, Vec<(String, Timestamp)>);

/// Every series of `config` in `namespace` in the repository, with its archives and their times.
fn list_all(env: &Env, config: &str, namespace: &str) -> Result<Vec<SeriesArchives>, Fail> {
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
fn archive_time(stamp: &str) -> Option<Timestamp> {
    let (date, time) = stamp.split_once('T')?;
    format!("{date}T{}", time.replace('-', ":")).parse().ok()
}

fn prune(
    env: &Env,
    config: &str,
    namespace: &str,
    retention: &crate::config::Retention,
    timezone: &str,
    now: Timestamp,
    dry_run: bool,
) -> Result<(), Fail> {
    let tz = TimeZone::get(timezone)
        .map_err(|e| Fail::new(Failure::BadJob, format!("time zone {timezone}: {e}")))?;
    let policy = Policy::from(retention);
    let ctx = retention::Context {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_lines_that_are_not_utf8_do_not_end_the_reading() {
        let mut lines = Vec::new();
        let input: &[u8] = b"first\n/data/caf\xe9: permission denied\r\nlast";
        each_line(input, |l| lines.push(l)).unwrap();
        assert_eq!(
            lines,
            ["first", "/data/caf\u{fffd}: permission denied", "last"]
        );
    }

    #[test]
    fn failures_are_classified_from_borg_ids_and_restic_words() {
        let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            classify_borg(&ids(&["LockTimeout"]), 2, ""),
            Failure::Locked
        );
        assert_eq!(
            classify_borg(&ids(&["PassphraseWrong"]), 2, ""),
            Failure::Passphrase
        );
        assert_eq!(classify_borg(&[], 13, ""), Failure::NoRepository);
        assert_eq!(
            classify_borg(&ids(&["Repository.DoesNotExist"]), 2, ""),
            Failure::NoRepository
        );
        assert_eq!(
            classify_borg(
                &ids(&["ConnectionClosed"]),
                2,
                "Remote: Host key verification failed."
            ),
            Failure::Unreachable
        );
        assert_eq!(classify_borg(&[], 2, "something else"), Failure::Failed);

        let locked = "unable to create lock in backend: repository is already locked exclusively by PID 4242 on kentledge-mover-1a2b3c-3f9a-0 by root (UID 0, GID 0)\nlock was created at 2026-11-22 10:00:00 (1m0s ago)";
        assert_eq!(classify_restic(1, locked), Failure::Locked);
        assert_eq!(
            restic_holders(locked),
            vec!["kentledge-mover-1a2b3c-3f9a-0 4242"]
        );
        assert_eq!(
            classify_restic(1, "Fatal: wrong password or no key found"),
            Failure::Passphrase
        );
        assert_eq!(
            classify_restic(
                1,
                "Fatal: unable to open config file: Head \"http://127.0.0.1:1/config\": dial tcp 127.0.0.1:1: connect: connection refused\nIs there a repository at the following location?"
            ),
            Failure::Unreachable
        );
        assert_eq!(
            classify_restic(
                1,
                "Fatal: unable to open config file: stat /repository/config: no such file or directory\nIs there a repository at the following location?"
            ),
            Failure::NoRepository
        );
        assert_eq!(classify_restic(10, ""), Failure::NoRepository);
    }

    #[test]
    fn borg_lock_listings_name_their_holders() {
        let listing = "kentledge-mover-1a2b3c-3f9a-0.17-7f00aa\n{\"shared\": [], \"exclusive\": [[\"kentledge-mover-1a2b3c-3f9a-0\", 17, 0]]}\n";
        assert_eq!(
            parse_borg_locks(listing),
            vec!["kentledge-mover-1a2b3c-3f9a-0 17"]
        );
        assert!(parse_borg_locks("").is_empty());
    }

    #[test]
    fn ssh_targets_of_locations() {
        assert_eq!(
            borg_ssh_target("ssh://borg@127.0.0.1:2222/./repos/shop"),
            Some(("borg@127.0.0.1".into(), Some(2222), "repos/shop".into()))
        );
        assert_eq!(
            borg_ssh_target("ssh://borg@backup/srv/borg"),
            Some(("borg@backup".into(), None, "/srv/borg".into()))
        );
        assert_eq!(
            sftp_target("sftp:restic@backup:/srv/restic"),
            Some(("restic@backup".into(), None))
        );
        assert_eq!(
            sftp_target("sftp://restic@backup:2222//srv/restic"),
            Some(("restic@backup".into(), Some(2222)))
        );
        assert_eq!(sftp_target("rest:http://x/"), None);
    }

    #[test]
    fn archive_names_carry_their_time() {
        assert_eq!(
            archive_time("2026-11-22T10-00-07Z"),
            Some("2026-11-22T10:00:07Z".parse().unwrap())
        );
        assert_eq!(archive_time("garbage"), None);
    }
}
