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
    fn relay(&self, command: Vec<String>, check: Option<databases::StreamCheck>) -> LocalJob {
        LocalJob::Relay {
            pod: self.pod.clone(),
            container: self.container.clone(),
            command,
            stdin_lines: self.stdin_lines.clone(),
            check,
        }
    }

    /// The server's databases, its own system databases left out.
    fn list(&self) -> Result<Vec<String>, Fail> {
        let argv = relay_argv(&self.relay(databases::list_databases(&self.client), None))?;
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Fail::new(Failure::Failed, format!("starting the relay: {e}")))?;
        let said = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            let why: Vec<&str> = said
                .lines()
                .filter_map(|l| l.strip_prefix(super::relay::PREFIX))
                .collect();
            return Err(Fail::new(
                Failure::Failed,
                format!(
                    "listing the databases in {}/{} failed: {}",
                    self.pod,
                    self.container,
                    why.join("; ")
                ),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|d| !d.is_empty() && !databases::is_system(self.client.engine, d))
            .map(String::from)
            .collect())
    }
}

pub(super) fn databases(env: &Env, server: &DatabasesJob) -> Result<(), Fail> {
    ensure_repository(env)?;
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
    let mut failed = Vec::new();
    let total = todo.len();
    for db in todo {
        emit(&MoverEvent::Dumping {
            database: db.clone(),
        });
        let (command, check) = match &db {
            Some(d) => databases::dump(&server.client, d),
            None => databases::dump_globals(&server.client).expect("checked above"),
        };
        let series = Series {
            config: server.config.clone(),
            namespace: server.namespace.clone(),
            kind: SeriesKind::Database,
            name: databases::series_name(&server.name, db.as_deref()),
        };
        let what = match &db {
            Some(d) => format!("database {d}"),
            None => "the users and roles".to_owned(),
        };
        let started = Instant::now();
        let result = dump(
            env,
            &series,
            Timestamp::now(),
            &databases::file_name(engine, db.as_deref()),
            &server.relay(command, Some(check)),
            server.upload_limit,
        );
        let mut record = Dumped {
            database: db,
            series: series.name.clone(),
            seconds: started.elapsed().as_secs_f64(),
            ..Dumped::default()
        };
        match result {
            Ok(s) => {
                record.ok = true;
                record.message = "ok".into();
                record.archive = s.archive;
                record.bytes = s.bytes_read;
                record.bytes_added = s.bytes_added;
                emit(&MoverEvent::Dumped(record));
            }
            Err(f) => {
                log("error", format!("{what}: {}", f.message));
                record.message = f.message.clone();
                emit(&MoverEvent::Dumped(record));
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
