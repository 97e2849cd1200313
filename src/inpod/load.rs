//! The `restore-database` action: load a dump from the repository into a database of its
//! server. An existing target is refused unless asked to replace it, and then dumped first (a
//! safety dump into the database's safety series). The engine extracts the dump to a pipe; the
//! mover reads it through (the end marker of an SQL dump, a pg_dump archive's blocks, the tables
//! it creates) and feeds it to a relay that runs the server's own client, set to stop at the
//! first error (PostgreSQL: one transaction). Afterwards the tables are counted. A database this
//! restore created is dropped again when the load fails or the mover is stopped (SIGTERM).

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use super::LOCK_POLL_SECS;
use super::databases::dump_one;
use super::dump::{read_lines, relay_argv, relay_reason};
use super::env::Env;
use super::pgdump::PgCustomCheck;
use super::relay::{COMMAND_FAILED, has_marker};
use super::stop::{stop_on_sigterm, stopped};
use super::{Fail, emit, log};
use crate::engines::databases::{self, DatabaseEngine, MYSQL_END};
use crate::engines::{borg, restic};
use crate::mover::job::{Engine, Failure, Loaded, LocalJob, MoverEvent, RestoreDatabaseJob};

/// What the fed stream held, read as it passed.
enum Scan {
    /// An SQL dump: its `CREATE TABLE` lines, and its last bytes (for the end marker).
    Sql {
        tables: u64,
        line: Vec<u8>,
        tail: Vec<u8>,
    },
    /// A pg_dump custom archive.
    Pg(Box<PgCustomCheck>),
}

impl Scan {
    fn new(engine: DatabaseEngine) -> Scan {
        match engine {
            DatabaseEngine::Postgresql => Scan::Pg(Box::new(PgCustomCheck::new())),
            _ => Scan::Sql {
                tables: 0,
                line: Vec::new(),
                tail: Vec::new(),
            },
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        match self {
            Scan::Pg(c) => c.feed(bytes),
            Scan::Sql { tables, line, tail } => {
                for &b in bytes {
                    if b == b'\n' {
                        if line.starts_with(b"CREATE TABLE `") {
                            *tables += 1;
                        }
                        line.clear();
                    } else if line.len() < 16 {
                        line.push(b);
                    }
                }
                tail.extend_from_slice(bytes);
                if tail.len() > 4096 {
                    tail.drain(..tail.len() - 4096);
                }
            }
        }
    }

    /// The tables the dump creates, or why it is not whole.
    fn finish(self) -> Result<u64, String> {
        match self {
            Scan::Pg(c) => {
                let tables = c.tables();
                c.finish().map(|_| tables)
            }
            Scan::Sql { tables, tail, .. } => {
                if has_marker(&tail, MYSQL_END) {
                    Ok(tables)
                } else {
                    Err(format!("the dump does not end with {MYSQL_END:?}"))
                }
            }
        }
    }
}

/// A failed load, and whether the client itself said so (its own exit status arrived): only
/// then did a client that runs in one transaction roll it back.
struct LoadFail {
    fail: Fail,
    client_failed: bool,
}

impl From<Fail> for LoadFail {
    fn from(fail: Fail) -> Self {
        LoadFail {
            fail,
            client_failed: false,
        }
    }
}

pub(super) fn restore_database(env: &Env, job: &RestoreDatabaseJob) -> Result<(), Fail> {
    stop_on_sigterm();
    let server = &job.server;
    let engine = server.client.engine;
    let target = job.target.as_str();
    let place = format!("{}/{}", server.pod, server.container);
    server.probe_stdin()?;
    let exists = server.list()?.iter().any(|d| d == target);
    if exists && !job.replace {
        return Err(Fail::new(
            Failure::Failed,
            format!(
                "database {target} already exists in {place}; nothing was changed: restore under another name with --to-database NEW, or replace it with --replace (it is dumped into the repository first)"
            ),
        ));
    }
    let mut loaded = Loaded {
        target: target.to_owned(),
        mode: match engine {
            DatabaseEngine::Postgresql => {
                "pg_restore --single-transaction --exit-on-error".to_owned()
            }
            _ => "mariadb --one-database (stops at the first error)".to_owned(),
        },
        ..Loaded::default()
    };
    // PostgreSQL replaces in one transaction (pg_restore --clean); MariaDB drops and recreates,
    // so there the dump is read through first: a bad archive never costs the database.
    let recreate = !exists || engine != DatabaseEngine::Postgresql;
    if exists && recreate {
        let tables = verify(env, job)?;
        log(
            "info",
            format!(
                "{} of {} is whole ({tables} tables): replacing database {target}",
                job.file_name, job.archive
            ),
        );
    }
    if exists {
        log(
            "info",
            format!("dumping database {target} before it is replaced"),
        );
        let archive = dump_one(env, server, Some(target), true).map_err(|f| {
            Fail::new(
                f.failure,
                format!(
                    "the safety dump of database {target} failed, so it was not replaced: {}",
                    f.message
                ),
            )
        })?;
        log("info", format!("safety dump of {target}: {archive}"));
        loaded.safety_archive = Some(archive);
    }
    if stopped() {
        return Err(Fail::new(
            Failure::Failed,
            format!("stopped (SIGTERM) before database {target} was changed"),
        ));
    }
    if exists && recreate {
        server
            .run(
                databases::drop_database(&server.client, target),
                "dropping the database",
            )
            .map_err(|f| with_safety(f, &loaded, target))?;
    }
    if recreate {
        server
            .run(
                databases::create_database(&server.client, target),
                "creating the database",
            )
            .map_err(|f| with_safety(f, &loaded, target))?;
        loaded.created = !exists;
    }
    let started = Instant::now();
    let fed = feed(env, job, exists && !recreate).and_then(|(bytes, expected)| {
        let out = server.run(
            databases::count_tables(&server.client, target),
            "counting the tables",
        )?;
        let found: u64 = out.trim().parse().map_err(|_| {
            Fail::new(
                Failure::Failed,
                format!("counting the tables of {target} gave {out:?}"),
            )
        })?;
        if found < expected {
            return Err(LoadFail::from(Fail::new(
                Failure::Failed,
                format!("the dump creates {expected} tables but {target} has {found}"),
            )));
        }
        Ok((bytes, expected, found))
    });
    loaded.seconds = started.elapsed().as_secs_f64();
    match fed {
        Ok((bytes, expected, found)) => {
            loaded.bytes = bytes;
            loaded.expected_tables = expected;
            loaded.tables = found;
            emit(&MoverEvent::Loaded(loaded));
            Ok(())
        }
        Err(LoadFail {
            mut fail,
            client_failed,
        }) => {
            if loaded.created {
                // Never leave a half-loaded database behind that did not exist before.
                match server.run(
                    databases::drop_database(&server.client, target),
                    "dropping the half-restored database",
                ) {
                    Ok(_) => fail
                        .message
                        .push_str(&format!("; the new database {target} was dropped again")),
                    Err(d) => fail.message.push_str(&format!(
                        "; the new database {target} could NOT be dropped ({}): drop it by hand",
                        d.message
                    )),
                }
            } else if let Some(a) = &loaded.safety_archive {
                let rolled_back = engine == DatabaseEngine::Postgresql && client_failed;
                fail.message.push_str(&if rolled_back {
                    format!(
                        "; pg_restore failed in its one transaction, so {target} is as it was (its safety dump is {a})"
                    )
                } else {
                    format!(
                        "; {target} may be half restored: its contents before are archive {a} (restore it with --archive {a} --replace)"
                    )
                });
            }
            Err(fail)
        }
    }
}

/// `f`, saying that the database was dumped first (when it was) and where that dump is.
fn with_safety(mut f: Fail, loaded: &Loaded, target: &str) -> Fail {
    if let Some(a) = &loaded.safety_archive {
        f.message.push_str(&format!(
            "; database {target} may be gone: its contents before are archive {a} (restore it with --archive {a})"
        ));
    }
    f
}

/// The engine reading the dump out of the archive onto its stdout.
fn extract(env: &Env, job: &RestoreDatabaseJob) -> Result<Child, Fail> {
    let argv = match env.access.engine {
        Engine::Borg => borg::extract_stdout(
            &env.borg_repo(env.access.lock_wait_secs.max(LOCK_POLL_SECS)),
            &job.archive,
            &job.file_name,
        ),
        Engine::Restic => env.restic_argv(restic::dump(&job.archive, &job.file_name)),
    };
    Command::new(&argv[0])
        .args(&argv[1..])
        .envs(env.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Fail::new(Failure::Failed, format!("starting {}: {e}", argv[0])))
}

/// Why the engine could not read the dump, in its words.
fn unreadable(env: &Env, job: &RestoreDatabaseJob, said: &[String]) -> Fail {
    Fail::new(
        Failure::Failed,
        format!(
            "{} could not read {} from the repository: {}",
            env.access.engine.name(),
            job.archive,
            said.iter()
                .filter_map(|l| message_of(l))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    )
}

/// Reads the dump through without loading it; the tables it creates, or why it is not whole.
fn verify(env: &Env, job: &RestoreDatabaseJob) -> Result<u64, Fail> {
    let mut source = extract(env, job)?;
    let said = read_lines(source.stderr.take().expect("piped"), false);
    let mut scan = Scan::new(job.server.client.engine);
    let mut from = source.stdout.take().expect("piped");
    let mut buf = vec![0u8; 256 * 1024];
    let read = loop {
        match from.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => scan.feed(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted && !stopped() => {}
            Err(e) => break Err(e),
        }
    };
    let status = source
        .wait()
        .map_err(|e| Fail::new(Failure::Failed, format!("waiting for the engine: {e}")))?;
    let said = said.join().unwrap_or_default();
    if !status.success() {
        return Err(unreadable(env, job, &said));
    }
    if let Err(e) = read {
        return Err(Fail::new(Failure::Failed, format!("reading the dump: {e}")));
    }
    scan.finish().map_err(|why| {
        Fail::new(
            Failure::Failed,
            format!(
                "the dump read from {} is not whole ({why}): nothing was changed",
                job.archive
            ),
        )
    })
}

/// Streams the dump from the repository through the scan into the relay; the bytes fed and the
/// tables the dump creates.
fn feed(env: &Env, job: &RestoreDatabaseJob, replace: bool) -> Result<(u64, u64), LoadFail> {
    let failed = |what: &str, e: std::io::Error| Fail::new(Failure::Failed, format!("{what}: {e}"));
    let server = &job.server;
    let engine = server.client.engine;
    let relay = LocalJob::Relay {
        pod: server.pod.clone(),
        container: server.container.clone(),
        command: databases::load(&server.client, &job.target, replace),
        stdin_lines: server.stdin_lines.clone(),
        check: None,
        feed: true,
    };
    let relay_cmd = relay_argv(&relay)?;
    log(
        "info",
        format!(
            "loading {} of {} into database {} in {}/{}",
            job.file_name, job.archive, job.target, server.pod, server.container
        ),
    );
    let mut source = extract(env, job)?;
    let mut client = Command::new(&relay_cmd[0])
        .args(&relay_cmd[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed("starting the relay", e))?;
    let engine_said = read_lines(source.stderr.take().expect("piped"), false);
    let relay_said = read_lines(client.stderr.take().expect("piped"), true);
    let mut relay_out = client.stdout.take().expect("piped");
    let drain = std::thread::spawn(move || std::io::copy(&mut relay_out, &mut std::io::sink()));
    let mut scan = Scan::new(engine);
    let mut bytes = 0u64;
    let mut write_error = None;
    {
        let mut from = source.stdout.take().expect("piped");
        let mut to = client.stdin.take().expect("piped");
        let mut buf = vec![0u8; 256 * 1024];
        let mut last = Instant::now();
        loop {
            if stopped() {
                write_error = Some("stopped (SIGTERM) while loading".to_owned());
                // Cut the exec instead of ending its input: the client must not take a
                // shortened dump for a whole one.
                let _ = client.kill();
                let _ = source.kill();
                break;
            }
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    write_error = Some(format!("reading the dump: {e}"));
                    break;
                }
            };
            scan.feed(&buf[..n]);
            bytes += n as u64;
            if let Err(e) = to.write_all(&buf[..n]) {
                write_error = Some(format!("passing the dump on: {e}"));
                break;
            }
            if last.elapsed().as_secs() >= 1 {
                last = Instant::now();
                emit(&MoverEvent::Progress {
                    bytes,
                    total: None,
                    files: 0,
                });
            }
        }
        // `to` is dropped here: the relay sees the end of its input and closes the exec's stdin.
    }
    let source_status = source
        .wait()
        .map_err(|e| failed("waiting for the engine", e))?;
    let client_status = client
        .wait()
        .map_err(|e| failed("waiting for the relay", e))?;
    let _ = drain.join();
    let engine_said = engine_said.join().unwrap_or_default();
    let relay_said = relay_said.join().unwrap_or_default();
    let whole = scan.finish();
    let client_failed = client_status.code() == Some(COMMAND_FAILED);
    let client_error = || LoadFail {
        fail: Fail::new(
            Failure::Failed,
            format!(
                "loading into database {} failed: {}",
                job.target,
                relay_reason(&relay_said).unwrap_or_else(|| "the relay failed".into())
            ),
        ),
        client_failed,
    };
    if stopped() {
        return Err(Fail::new(
            Failure::Failed,
            write_error.unwrap_or_else(|| "stopped (SIGTERM) while loading".into()),
        )
        .into());
    }
    // A client that stopped at an error closes the pipe: its error says more than the engine's.
    if !client_status.success() && (write_error.is_some() || source_status.success()) {
        return Err(client_error());
    }
    if !source_status.success() {
        return Err(unreadable(env, job, &engine_said).into());
    }
    if !client_status.success() {
        return Err(client_error());
    }
    if let Some(e) = write_error {
        return Err(Fail::new(Failure::Failed, e).into());
    }
    let tables = whole.map_err(|why| {
        Fail::new(
            Failure::Failed,
            format!("the dump read from {} is not whole: {why}", job.archive),
        )
    })?;
    Ok((bytes, tables))
}

/// The text of an engine's stderr line (borg's `--log-json` lines by their message).
fn message_of(line: &str) -> Option<String> {
    if line.starts_with('{') {
        match crate::engines::output::borg_line(line) {
            Some(crate::engines::output::Event::Log { message, .. }) if !message.is_empty() => {
                Some(message)
            }
            _ => None,
        }
    } else {
        Some(line.to_owned())
    }
}
