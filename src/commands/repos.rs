//! Repository-wide jobs through mover pods, one repository after another: `prune` of every
//! series of this config and namespace with the repository's retention (the same engine as
//! snapshot pruning; a dry run lists every archive's decision and deletes nothing), and
//! `check --repositories` (borg check / restic check, optionally reading part of the data).

use jiff::Timestamp;
use serde::Serialize;
use serde_json::json;

use crate::backupplan::access;
use crate::cli::{GlobalArgs, LockArgs};
use crate::config::Repository;
use crate::error::{Error, exit};
use crate::k8s::{lease, mover};
use crate::mover::job::{Action, ArchiveDecision, Job, MoverEvent};
use crate::mover::pod as moverpod;
use crate::output;
use crate::runlock::Lock;
use crate::settings::Settings;
use crate::signals::Interrupt;

/// What a job did on one repository.
#[derive(Clone, Debug, Serialize)]
pub struct RepoRecord {
    /// The repository.
    pub repository: String,
    /// `borg` or `restic`.
    pub engine: &'static str,
    /// Whether it worked.
    pub ok: bool,
    /// `ok` or what went wrong.
    pub result: String,
    /// Prune decisions.
    pub archives: Vec<ArchiveDecision>,
}

async fn run_jobs(
    settings: &Settings,
    client: &kube::Client,
    lock_wait: Option<std::time::Duration>,
    interrupt: &Interrupt,
    repos: &[&Repository],
    action: impl Fn(&Repository) -> Action,
) -> Result<Vec<RepoRecord>, Error> {
    let ns = settings.namespace.as_str();
    let config = &settings.config;
    let run_id = crate::labels::new_run_id();
    // Jobs that change a repository hold the backup lock (`lock_wait`: how long to wait for it).
    let held = match lock_wait {
        Some(wait) => {
            let name = &config.metadata.name;
            Some(lease::take(client, ns, name, Lock::Backup, &run_id, wait, interrupt).await?)
        }
        None => None,
    };
    let ctx = moverpod::Context {
        namespace: ns,
        config: &config.metadata.name,
        run_id: &run_id,
        owner: None,
    };
    let mut records = Vec::new();
    for (i, repo) in repos.iter().enumerate() {
        if interrupt.is_set() {
            break;
        }
        mover::ensure_cache(client, ns, &config.metadata.name, repo).await?;
        let job = Job {
            repository: access(repo, ns),
            action: action(repo),
        };
        let (pod_name, _) = moverpod::names(ns, &run_id, i);
        let pod = moverpod::mover_pod(&ctx, &pod_name, &config.spec.mover, repo, &job, None, None);
        let log = |e: &MoverEvent| mover::relay(e, &repo.name, None);
        tracing::info!(repository = %repo.name, action = job.action.name(), "starting a mover");
        let out = mover::run_with_locks(
            client,
            &mover::Task {
                namespace: ns,
                config: &config.metadata.name,
                pod: &pod,
                clone: None,
                access: &job.repository,
                repository: repo,
                mover: &config.spec.mover,
            },
            interrupt,
            &log,
        )
        .await;
        let record = match out {
            Ok(o) => RepoRecord {
                repository: repo.name.clone(),
                engine: repo.engine(),
                ok: o.ok(),
                result: o.reason(),
                archives: o.archives,
            },
            Err(e) => RepoRecord {
                repository: repo.name.clone(),
                engine: repo.engine(),
                ok: false,
                result: e.to_string(),
                archives: Vec::new(),
            },
        };
        if !record.ok {
            tracing::error!(repository = %record.repository, "{}", record.result);
        }
        records.push(record);
    }
    if let Some(h) = held {
        h.release().await;
    }
    Ok(records)
}

fn code(records: &[RepoRecord], interrupt: &Interrupt) -> u8 {
    if let Some(c) = interrupt.code() {
        return c;
    }
    if records.iter().all(|r| r.ok) {
        exit::SUCCESS
    } else if records.iter().any(|r| r.ok) {
        exit::PARTIAL
    } else {
        exit::FAILURE
    }
}

/// `kentledge prune` for the repositories with retention.
pub async fn prune(
    global: &GlobalArgs,
    settings: &Settings,
    client: &kube::Client,
    now: Timestamp,
    lock: &LockArgs,
    interrupt: &Interrupt,
    results: &mut output::Results,
) -> Result<u8, Error> {
    let config = &settings.config;
    let repos: Vec<&Repository> = config
        .spec
        .repositories
        .iter()
        .filter(|r| r.retention.is_some())
        .collect();
    let dry_run = global.dry_run;
    let records = run_jobs(
        settings,
        client,
        (!dry_run).then_some(lock.lock_timeout.0),
        interrupt,
        &repos,
        |r| Action::Prune {
            config: config.metadata.name.clone(),
            namespace: settings.namespace.clone(),
            retention: r.retention.clone().unwrap_or_default(),
            timezone: config.spec.timezone.clone(),
            now,
            dry_run,
        },
    )
    .await?;
    results.emit(
        || render_prune(&records, dry_run),
        || json!({"dryRun": dry_run, "repositories": records}),
    )?;
    Ok(code(&records, interrupt))
}

fn render_prune(records: &[RepoRecord], dry_run: bool) -> String {
    let mut out = String::new();
    for r in records {
        let kept = r.archives.iter().filter(|a| a.keep).count();
        let gone = r.archives.len() - kept;
        out.push_str(&format!(
            "repository {} ({}): {} archive(s), {kept} kept, {gone} {}{}\n",
            r.repository,
            r.engine,
            r.archives.len(),
            if dry_run {
                "would be deleted"
            } else {
                "deleted"
            },
            if r.ok {
                String::new()
            } else {
                format!(" — FAILED: {}", r.result)
            }
        ));
        for a in &r.archives {
            out.push_str(&format!(
                "  {:<20} {:<56} {:<22} {:<6} {}\n",
                a.series,
                a.archive,
                a.time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                if a.keep { "keep" } else { "delete" },
                a.reasons
            ));
        }
    }
    out
}

/// `kentledge check --repositories` (no lock: checks only read).
pub async fn check(
    settings: &Settings,
    client: &kube::Client,
    read_data: Option<&str>,
    interrupt: &Interrupt,
    results: &mut output::Results,
) -> Result<u8, Error> {
    let repos: Vec<&Repository> = settings.config.spec.repositories.iter().collect();
    let records = run_jobs(settings, client, None, interrupt, &repos, |r| {
        Action::Check {
            read_data_subset: read_data
                .map(String::from)
                .or_else(|| r.check.read_data_subset.clone()),
        }
    })
    .await?;
    results.emit(
        || {
            let mut out = String::new();
            for r in &records {
                out.push_str(&format!(
                    "repository {} ({}): {}\n",
                    r.repository,
                    r.engine,
                    if r.ok {
                        "no problems found".to_owned()
                    } else {
                        format!("FAILED: {}", r.result)
                    }
                ));
            }
            out
        },
        || json!({"repositories": records}),
    )?;
    Ok(code(&records, interrupt))
}
