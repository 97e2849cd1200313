//! Repository-wide jobs through mover pods, one repository after another: `prune` of every
//! series of this config and namespace with the repository's retention (the same engine as
//! snapshot pruning; a dry run lists every archive's decision and deletes nothing), and
//! `check --repositories` (borg check / restic check, optionally reading part of the data).

use jiff::Timestamp;

use crate::config::Repository;
use crate::error::Error;
use crate::flows::movers as mover;
use crate::kube::lease;
use crate::mover::job::{Action, ArchiveDecision, Job, MoverEvent};
use crate::mover::pod as moverpod;
use crate::plan::backup::access;
use crate::plan::lock::Lock;
use crate::report::Verdict;
use crate::report::repositories::{self as report, RepoRecord};
use crate::runtime::output;
use crate::runtime::signals::Interrupt;
use crate::settings::Settings;

fn record(
    repo: &Repository,
    outcome: Verdict,
    result: String,
    archives: Vec<ArchiveDecision>,
) -> RepoRecord {
    RepoRecord::new(&repo.name, repo.engine().name(), outcome, result, archives)
}

enum ReadOnly {
    Yes,
    No,
}

fn action_kind(a: &Action) -> ReadOnly {
    match a {
        Action::List { .. } | Action::Check { .. } => ReadOnly::Yes,
        Action::Prune { dry_run: true, .. } => ReadOnly::Yes,
        _ => ReadOnly::No,
    }
}

/// Runs one repository-wide job (`action`, no data volume) in mover pod `index` of run
/// `run_id`, with the engine cache the repository asks for and the lock handling of every job.
pub async fn run_one(
    client: &kube::Client,
    settings: &Settings,
    run_id: &str,
    index: usize,
    repo: &Repository,
    action: Action,
    interrupt: &Interrupt,
) -> Result<mover::MoverResult, Error> {
    let ns = settings.namespace.as_str();
    let config = &settings.config;
    if action.uses_cache() {
        mover::ensure_cache(client, ns, &config.metadata.name, repo).await?;
    }
    let job = Job {
        repository: access(repo, ns),
        action,
    };
    let ctx = moverpod::Context {
        namespace: ns,
        config: &config.metadata.name,
        run_id,
        owner: None,
    };
    let (pod_name, _) = moverpod::names(ns, run_id, index);
    let read_only = matches!(action_kind(&job.action), ReadOnly::Yes);
    let mut pod = moverpod::mover_pod(
        &ctx,
        &pod_name,
        &config.spec.mover,
        repo,
        &job,
        moverpod::Data::None,
        None,
    );
    if read_only {
        // Runs without the backup lock: a sweep leaves it alone while it runs.
        if let Some(l) = pod.metadata.labels.as_mut() {
            l.insert(moverpod::ROLE.to_owned(), moverpod::READER_ROLE.to_owned());
        }
    }
    let log = |e: &MoverEvent| mover::relay(e, &repo.name, None);
    tracing::info!(repository = %repo.name, action = job.action.name(), "starting a mover");
    mover::run_with_locks(
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
    .await
}

async fn run_jobs(
    settings: &Settings,
    client: &kube::Client,
    lock_wait: Option<std::time::Duration>,
    interrupt: &Interrupt,
    repos: &[&Repository],
    action: impl Fn(&Repository) -> Action,
    results_in_log: bool,
) -> Result<Vec<RepoRecord>, Error> {
    let ns = settings.namespace.as_str();
    let config = &settings.config;
    let run_id = crate::model::labels::new_run_id();
    // Jobs that change a repository hold the backup lock (`lock_wait`: how long to wait for it).
    let held = match lock_wait {
        Some(wait) => {
            let name = &config.metadata.name;
            Some(lease::take(client, ns, name, Lock::Backup, &run_id, wait, interrupt).await?)
        }
        None => None,
    };
    // Under the backup lock, the movers of a killed run are swept first (its repository
    // locks are then seen as a gone mover's and broken).
    if held.is_some()
        && let Err(e) =
            crate::flows::movers::delete_leftovers(client, ns, &config.metadata.name, &run_id).await
    {
        tracing::warn!(error = %e, "could not sweep leftovers of earlier runs");
    }
    let mut records = Vec::new();
    for (i, repo) in repos.iter().enumerate() {
        if interrupt.is_set() {
            break;
        }
        // A failure here is this repository's, and the lock is still released below.
        let out = run_one(client, settings, &run_id, i, repo, action(repo), interrupt).await;
        let record = match out {
            // A check's result is its exit code: an unreadable log loses only its words.
            Ok(o) if !results_in_log && o.result_unknown() => {
                let why = format!(
                    "ok (the mover exited 0; its log could not be read: {})",
                    o.log_error.as_deref().unwrap_or_default()
                );
                record(repo, Verdict::Ok, why, o.archives)
            }
            Ok(o) => record(repo, o.verdict(), o.reason(), o.archives),
            Err(e) => record(repo, Verdict::Failed, e.to_string(), Vec::new()),
        };
        if !record.ok {
            tracing::error!(repository = %record.repository, "{}", record.result);
        }
        records.push(record);
    }
    if let Some(h) = held
        && let Some(lost) = h.release().await
    {
        // The jobs' own results stand; the run was not alone, which is not a success.
        records.push(RepoRecord::new(
            crate::report::repositories::LOCK_LOST,
            "-",
            Verdict::Failed,
            lost,
            Vec::new(),
        ));
    }
    Ok(records)
}

/// `kentledge prune` for the repositories with retention.
pub async fn prune(
    settings: &Settings,
    client: &kube::Client,
    now: Timestamp,
    lock_timeout: std::time::Duration,
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
    let dry_run = settings.dry_run;
    let records = run_jobs(
        settings,
        client,
        (!dry_run).then_some(lock_timeout),
        interrupt,
        &repos,
        |r| Action::Prune {
            config: config.metadata.name.clone(),
            namespace: settings.namespace.clone(),
            retention: r.retention.as_ref().map(Into::into).unwrap_or_default(),
            timezone: config.spec.timezone.clone(),
            now,
            dry_run,
        },
        true,
    )
    .await?;
    results.report(&report::Prune {
        records: &records,
        dry_run,
    })?;
    Ok(report::code(&records, interrupt.code()))
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
    let records = run_jobs(
        settings,
        client,
        None,
        interrupt,
        &repos,
        |r| Action::Check {
            read_data_subset: read_data
                .map(String::from)
                .or_else(|| r.check.read_data_subset.clone()),
        },
        false,
    )
    .await?;
    results.report(&report::Check { records: &records })?;
    Ok(report::code(&records, interrupt.code()))
}
