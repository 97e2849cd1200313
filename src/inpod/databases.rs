//! The `databases` action: the dumps of one database server into one repository. The databases
//! are the job's, or the server's own list without its system databases; each is dumped by its
//! own client in its own container (a relay) into its own series, then the users and grants
//! (MariaDB) or roles (PostgreSQL). Each dump is reported as it ends; one that fails does not
//! stop the others, and the job fails if any did.

use std::process::{Command, Stdio};
use std::time::Instant;

use jiff::Timestamp;

use super::backup::ensure_repository;
use super::dump::{dump, relay_argv};
use super::env::Env;
use super::{Fail, emit, log};
use crate::engines::databases;
use crate::engines::{Series, SeriesKind};
use crate::mover::job::{DatabasesJob, Dumped, Failure, LocalJob, MoverEvent};

impl DatabasesJob {
    /// Runs `command` in the database's container by a relay; its stdout, or why it failed.
    pub(super) fn run(&self, command: Vec<String>, what: &str) -> Result<String, Fail> {
        self.run_relay(self.relay(command, None), what)
    }

    /// Whether an exec's stdin can be closed and its status still arrive (the v5 exec
    /// protocol, Kubernetes 1.30 and newer): a restore feeds the dump on stdin, so it checks
    /// this before it changes anything.
    pub(super) fn probe_stdin(&self) -> Result<(), Fail> {
        let mut relay = self.relay(
            vec!["sh".into(), "-c".into(), "cat >/dev/null".into()],
            None,
        );
        if let LocalJob::Relay { feed, .. } = &mut relay {
            *feed = true;
        }
        self.run_relay(relay, "closing an exec's stdin").map(|_| ()).map_err(|f| {
            Fail::new(
                f.failure,
                format!(
                    "{}: kentledge writes Secret credentials and dumps to an exec's stdin and must close it without losing the exec's status, which needs the v5 exec protocol (Kubernetes 1.30 or newer); nothing was changed",
                    f.message
                ),
            )
        })
    }

    fn run_relay(&self, relay: LocalJob, what: &str) -> Result<String, Fail> {
        let argv = relay_argv(&relay)?;
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Fail::new(Failure::Failed, format!("starting the relay: {e}")))?;
        if !out.status.success() {
            let said: Vec<String> = String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter_map(|l| l.strip_prefix(super::relay::PREFIX))
                .map(String::from)
                .collect();
            return Err(Fail::new(
                Failure::Failed,
                format!(
                    "{what} in {}/{} failed: {}",
                    self.pod,
                    self.container,
                    super::dump::relay_reason(&said).unwrap_or_else(|| "the relay failed".into())
                ),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The server's databases, its own system databases left out.
    pub(super) fn list(&self) -> Result<Vec<String>, Fail> {
        let out = self.run(
            databases::list_databases(&self.client),
            "listing the databases",
        )?;
        let names = databases::listed_names(&out).map_err(|e| Fail::new(Failure::Failed, e))?;
        Ok(names
            .into_iter()
            .filter(|d| !databases::is_system(self.client.engine, d))
            .collect())
    }

    /// A relay job of `command` in the database's container.
    pub(super) fn relay(
        &self,
        command: Vec<String>,
        check: Option<databases::StreamCheck>,
    ) -> LocalJob {
        LocalJob::Relay {
            pod: self.pod.clone(),
            container: self.container.clone(),
            command,
            stdin_lines: self.stdin_lines.clone(),
            check,
            feed: false,
        }
    }
}

pub(super) fn databases(env: &Env, server: &DatabasesJob) -> Result<(), Fail> {
    ensure_repository(env)?;
    if !server.stdin_lines.is_empty() {
        // The credentials go on stdin: say plainly when the API server cannot close it.
        server.probe_stdin()?;
    }
    let engine = server.client.engine;
    let listed = if server.databases.is_empty() {
        server.list()?
    } else {
        server.databases.clone()
    };
    log(
        "info",
        format!(
            "dumping {} database(s) of {}/{} into {}: {}",
            listed.len(),
            server.pod,
            server.container,
            env.access.name,
            listed.join(", ")
        ),
    );
    let mut todo: Vec<Option<String>> = listed.into_iter().map(Some).collect();
    if databases::dump_globals(&server.client).is_some() {
        todo.push(None);
    } else {
        log(
            "warn",
            format!(
                "the users and grants of {} are not dumped: mysqldump has no mode for them (back up the mysql database's grants yourself)",
                engine.name()
            ),
        );
    }
    emit(&MoverEvent::DumpPlan {
        databases: todo.clone(),
    });
    let mut failed = Vec::new();
    let total = todo.len();
    for db in todo {
        let what = match &db {
            Some(d) => format!("database {d}"),
            None => "the users and roles".to_owned(),
        };
        if let Err(f) = dump_one(env, server, db.as_deref(), false) {
            log("error", format!("{what}: {}", f.message));
            if matches!(
                f.failure,
                Failure::Locked | Failure::Passphrase | Failure::Unreachable
            ) {
                // The repository, not the database: the next dumps would fail the same way.
                return Err(f);
            }
            failed.push(what);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Fail::new(
            Failure::Failed,
            format!(
                "{} of {total} dumps failed: {}",
                failed.len(),
                failed.join(", ")
            ),
        ))
    }
}

/// Dumps one database (`None`: the users and roles) into its series (a `safety` dump into the
/// database's safety series), saying so before (`dumping`) and after (`dumped`); the archive
/// made, or why there is none.
pub(super) fn dump_one(
    env: &Env,
    server: &DatabasesJob,
    db: Option<&str>,
    safety: bool,
) -> Result<String, Fail> {
    emit(&MoverEvent::Dumping {
        database: db.map(String::from),
    });
    let engine = server.client.engine;
    let (command, check) = match db {
        Some(d) => databases::dump(&server.client, d),
        None => databases::dump_globals(&server.client).ok_or_else(|| {
            Fail::new(
                Failure::Failed,
                format!("{} has no dump of its users", engine.name()),
            )
        })?,
    };
    let series = Series {
        config: server.config.clone(),
        namespace: server.namespace.clone(),
        kind: SeriesKind::Database,
        name: match db {
            Some(d) if safety => databases::safety_series(&server.name, d),
            _ => databases::series_name(&server.name, db),
        },
    };
    let started = Instant::now();
    let result = dump(
        env,
        &series,
        Timestamp::now(),
        &databases::file_name(engine, db),
        &server.relay(command, Some(check)),
        server.upload_limit,
    );
    let mut record = Dumped {
        database: db.map(String::from),
        series: series.name.clone(),
        seconds: started.elapsed().as_secs_f64(),
        ..Dumped::default()
    };
    let out = match result {
        Ok(s) => {
            record.ok = true;
            record.message = "ok".into();
            record.archive = s.archive.clone();
            record.bytes = s.bytes_read;
            record.bytes_added = s.bytes_added;
            Ok(s.archive)
        }
        Err(f) => {
            record.message = f.message.clone();
            Err(f)
        }
    };
    emit(&MoverEvent::Dumped(record));
    out
}
