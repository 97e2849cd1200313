//! The plan of the database part of a backup run, as data: for each `spec.offsite.databases`
//! entry the pod and container its dumps run in and how its client authenticates, and for each
//! of its repositories one mover pod that dumps its databases there (each database its own
//! series). No I/O.

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

use crate::config::{Config, DatabaseBackup, DatabaseCredentials, Repository};
use crate::engines::databases::{Client, Credential, DatabaseEngine};
use crate::mover::job::{Action, DatabasesJob, Engine, Job, paths};
use crate::mover::pod::{self, Context, DUMPER_ACCOUNT, Dumper};
use crate::plan::backup::access;
use crate::plan::hooks::{pick, resolve_container};

/// The dumps of one database server into one repository.
#[derive(Clone, Debug, Serialize)]
pub struct DumpJob {
    /// Position in the run (the mover pod's name).
    pub index: usize,
    /// The `spec.offsite.databases` entry.
    pub name: String,
    /// `mariadb`, `mysql` or `postgresql`.
    pub engine: DatabaseEngine,
    /// The database pod.
    pub pod: String,
    /// Its container.
    pub container: String,
    /// The databases; empty: every one but the server's own (listed when the dump starts).
    pub databases: Vec<String>,
    /// The repository's name.
    pub repository: String,
    /// Which engine stores it.
    pub repository_engine: Engine,
    /// The mover pod's name.
    pub pod_name: String,
    /// The mover pod.
    #[serde(skip)]
    pub mover: Pod,
    /// The job it runs.
    #[serde(skip)]
    pub job: Job,
    /// The repository's config.
    #[serde(skip)]
    pub repo: Repository,
}

/// A database entry left out of the run.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SkippedDatabase {
    /// The `spec.offsite.databases` entry.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// What the plan is made from.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The config.
    pub config: &'a Config,
    /// Names and owner of the run's objects.
    pub ctx: &'a Context<'a>,
    /// The namespace's pods.
    pub pods: &'a [Pod],
    /// Only these entries (`--target`); empty: all.
    pub targets: &'a [String],
    /// Only these repositories (`--repository`); empty: all.
    pub repositories: &'a [String],
    /// The index of the first job (after the volume jobs).
    pub first_index: usize,
}

/// The client's credentials as the command in the database's container gets them, and the
/// Secret files the mover writes to its stdin (user first, then password).
pub fn client(
    engine: DatabaseEngine,
    c: &DatabaseCredentials,
) -> (Client, Vec<(&crate::config::SecretKeyRef, &'static str)>) {
    let mut files = Vec::new();
    let user = if let Some(u) = &c.user {
        Some(Credential::Literal(u.clone()))
    } else if let Some(v) = &c.user_from_env {
        Some(Credential::Env(v.clone()))
    } else if let Some(r) = &c.user_secret {
        files.push((r, paths::DB_USER));
        Some(Credential::Stdin)
    } else {
        None
    };
    let password = if let Some(v) = &c.password_from_env {
        Some(Credential::Env(v.clone()))
    } else if let Some(r) = &c.password_secret {
        files.push((r, paths::DB_PASSWORD));
        Some(Credential::Stdin)
    } else {
        None
    };
    (
        Client {
            engine,
            user,
            password,
        },
        files,
    )
}

/// What a mover that dumps or restores databases needs: the dumper account's token and the
/// credentials' Secret files.
pub fn dumper<'a>(
    mover: &'a crate::config::Mover,
    files: Vec<(&'a crate::config::SecretKeyRef, &'static str)>,
) -> Dumper<'a> {
    Dumper {
        service_account: mover
            .dump_service_account_name
            .as_deref()
            .unwrap_or(DUMPER_ACCOUNT),
        files,
    }
}

/// Where an entry's dumps run: the first running pod its selector picks (by name) and the
/// container; or why none.
pub fn server(d: &DatabaseBackup, pods: &[Pod]) -> Result<(String, String), String> {
    let chosen = pick(&d.pod, pods);
    let Some(p) = chosen.first() else {
        return Err(match &d.pod.name {
            Some(n) => format!("pod {n} is not running (or does not exist)"),
            None => "no running pod matches its pod selector".into(),
        });
    };
    let container = resolve_container(p, d.container.as_deref())?;
    Ok((p.metadata.name.clone().unwrap_or_default(), container))
}

/// Plans the dump jobs of a run.
pub fn plan(i: &Inputs<'_>) -> (Vec<DumpJob>, Vec<SkippedDatabase>) {
    let spec = &i.config.spec;
    let mover = &spec.mover;
    let upload_limit = mover
        .bandwidth_limit
        .as_deref()
        .and_then(|b| crate::model::units::parse_byte_rate(b).ok());
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for d in spec
        .offsite
        .databases
        .iter()
        .filter(|d| i.targets.is_empty() || i.targets.contains(&d.name))
    {
        let (pod_name, container) = match server(d, i.pods) {
            Ok(s) => s,
            Err(reason) => {
                skipped.push(SkippedDatabase {
                    name: d.name.clone(),
                    reason,
                });
                continue;
            }
        };
        let (client, files) = client(d.engine, &d.credentials);
        let stdin_lines: Vec<String> = files.iter().map(|(_, p)| (*p).to_owned()).collect();
        let dumper = dumper(mover, files);
        for repo in d
            .repositories
            .iter()
            .filter(|r| i.repositories.is_empty() || i.repositories.contains(r))
            .filter_map(|name| spec.repositories.iter().find(|r| &r.name == name))
        {
            let index = i.first_index + jobs.len();
            let (mover_name, _) = pod::names(i.ctx.namespace, i.ctx.run_id, index);
            let job = Job {
                repository: access(repo, i.ctx.namespace),
                action: Action::Databases(DatabasesJob {
                    config: i.config.metadata.name.clone(),
                    namespace: i.ctx.namespace.to_owned(),
                    name: d.name.clone(),
                    pod: pod_name.clone(),
                    container: container.clone(),
                    client: client.clone(),
                    stdin_lines: stdin_lines.clone(),
                    databases: d.databases.clone(),
                    upload_limit,
                }),
            };
            let mover_pod = pod::dump_pod(i.ctx, &mover_name, mover, repo, &job, &dumper);
            jobs.push(DumpJob {
                index,
                name: d.name.clone(),
                engine: d.engine,
                pod: pod_name.clone(),
                container: container.clone(),
                databases: d.databases.clone(),
                repository: repo.name.clone(),
                repository_engine: job.repository.engine,
                pod_name: mover_name,
                mover: mover_pod,
                job,
                repo: repo.clone(),
            });
        }
    }
    (jobs, skipped)
}

/// The `--dry-run` text of the dump jobs.
pub fn render(jobs: &[DumpJob], skipped: &[SkippedDatabase], config: &Config) -> String {
    let mut out = String::new();
    for j in jobs {
        let dbs = if j.databases.is_empty() {
            "every database but the server's own (listed when the dump starts)".to_owned()
        } else {
            j.databases.join(", ")
        };
        let _ = writeln!(
            out,
            "\ndatabase {} ({}) → {} ({})\n  dumped in  {}/{} by exec, streamed into the repository\n  databases  {dbs}{}\n  mover      {} (image {}, timeout {})\n  series     {}.<database> (characters other than a-z, 0-9 and - written .xx)",
            j.name,
            j.engine.name(),
            j.repository,
            j.repository_engine,
            j.pod,
            j.container,
            if j.engine == DatabaseEngine::Mysql {
                ""
            } else {
                ", and the users and roles"
            },
            j.pod_name,
            config.spec.mover.image,
            config.spec.mover.timeout,
            j.name,
        );
    }
    for s in skipped {
        let _ = writeln!(out, "\nskipped database {}: {}", s.name, s.reason);
    }
    out
}

#[cfg(test)]
mod tests;
