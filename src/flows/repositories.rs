//! Repository-wide jobs through mover pods, one repository after another: `prune` of every
//! series of this config and namespace with the repository's retention (the same engine as
//! snapshot pruning; a dry run lists every archive's decision and deletes nothing), and
//! `check --repositories` (borg check / restic check, optionally reading part of the data).

use jiff::Timestamp;
use serde::Serialize;
use serde_json::json;

use crate::config::Repository;
use crate::error::{Error, exit};
use crate::flows::movers::{self as mover, Verdict};
use crate::kube::lease;
use crate::mover::job::{Action, ArchiveDecision, Job, MoverEvent};
use crate::mover::pod as moverpod;
use crate::plan::backup::access;
use crate::plan::lock::Lock;
use crate::runtime::output;
use crate::runtime::signals::Interrupt;
use crate::settings::Settings;

/// What a job did on one repository.
#[derive(Clone, Debug, Serialize)]
pub struct RepoRecord {
    /// The repository.
    pub repository: String,
    /// `borg` or `restic`.
    pub engine: &'static str,
    /// Whether it worked (and, for prune, its decisions were seen).
    pub ok: bool,
    /// `ok`, `failed`, or `unknown` (the mover exited 0 but its log, with the decisions, could
    /// not be read).
    pub outcome: Verdict,
    /// `ok` or what went wrong.
    pub result: String,
    /// Prune decisions.
    pub archives: Vec<ArchiveDecision>,
}

impl RepoRecord {
    fn new(
        repo: &Repository,
        outcome: Verdict,
        result: String,
        archives: Vec<ArchiveDecision>,
    ) -> Self {
        RepoRecord {
            repository: repo.name.clone(),
            engine: repo.engine().name(),
            ok: outcome == Verdict::Ok,
            outcome,
            result,
            archives,
        }
    }
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
        // A failure here is this repository's, and the lock is still released below.
        if let Err(e) = mover::ensure_cache(client, ns, &config.metadata.name, repo).await {
            records.push(RepoRecord::new(
                repo,
                Verdict::Failed,
                e.to_string(),
                Vec::new(),
            ));
            continue;
        }
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
            // A check's result is its exit code: an unreadable log loses only its words.
            Ok(o) if !results_in_log && o.result_unknown() => {
                let why = format!(
                    "ok (the mover exited 0; its log could not be read: {})",
                    o.log_error.as_deref().unwrap_or_default()
                );
                RepoRecord::new(repo, Verdict::Ok, why, o.archives)
            }
            Ok(o) => RepoRecord::new(repo, o.verdict(), o.reason(), o.archives),
            Err(e) => RepoRecord::new(repo, Verdict::Failed, e.to_string(), Vec::new()),
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
        records.push(RepoRecord {
            repository: "(run lock)".into(),
            engine: "-",
            ok: false,
            outcome: Verdict::Failed,
            result: lost,
            archives: Vec::new(),
        });
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
    results.emit(
        || render_prune(&records, dry_run),
        || json!({"dryRun": dry_run, "repositories": records}),
    )?;
    Ok(code(&records, interrupt))
}

fn render_prune(records: &[RepoRecord], dry_run: bool) -> String {
    let mut out = String::new();
    for r in records {
        if r.outcome == Verdict::Unknown {
            out.push_str(&format!(
                "repository {} ({}): {}: which archives were {} is not known\n",
                r.repository,
                r.engine,
                r.result,
                if dry_run {
                    "kept and which would be deleted"
                } else {
                    "kept and which were deleted"
                }
            ));
            continue;
        }
        let kept = r.archives.iter().filter(|a| a.keep).count();
        let doomed = r.archives.len() - kept;
        let deleted = r.archives.iter().filter(|a| a.deleted).count();
        let done = if dry_run {
            format!("{doomed} would be deleted")
        } else if deleted == doomed {
            format!("{deleted} deleted")
        } else {
            format!(
                "{deleted} deleted, {} to delete NOT deleted",
                doomed - deleted
            )
        };
        out.push_str(&format!(
            "repository {} ({}): {} archive(s), {kept} kept, {done}{}\n",
            r.repository,
            r.engine,
            r.archives.len(),
            if r.ok {
                String::new()
            } else {
                format!(" — FAILED: {}", r.result)
            }
        ));
        for a in &r.archives {
            out.push_str(&format!(
                "  {:<20} {:<56} {:<22} {:<11} {}\n",
                a.series,
                a.archive,
                a.time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                match (a.keep, a.deleted, dry_run) {
                    (true, _, _) => "keep",
                    (false, _, true) => "delete",
                    (false, true, false) => "deleted",
                    (false, false, false) => "not deleted",
                },
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
