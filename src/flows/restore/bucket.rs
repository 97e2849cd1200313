//! `kentledge restore bucket`: under both locks (none for `--dry-run`, which changes nothing),
//! list the repository, choose the archive, and run one mover pod that plans against the target
//! bucket and, unless the plan stops it or it is a dry run, writes the objects; the report says
//! what was (or would be) written, left, overwritten and deleted.

use std::time::{Duration, Instant};

use super::{judged, list_archives, locked_plan};
use crate::config::BucketBackup;
use crate::error::Error;
use crate::flows::movers as mover;
use crate::mover::job::MoverEvent;
use crate::plan::restore::ArchiveQuery;
use crate::plan::restore::bucket::{BucketRestorePlan, Inputs, plan, render};
use crate::report::Verdict;
use crate::report::restore::BucketRestore;
use crate::runtime::output;
use crate::runtime::signals::Interrupt;
use crate::settings::Settings;

/// What a bucket restore is asked for.
#[derive(Clone, Debug)]
pub struct BucketOptions {
    /// The `spec.offsite.buckets` entry.
    pub name: String,
    /// From this repository (default: the entry's first).
    pub repository: Option<String>,
    /// This archive.
    pub archive: Option<String>,
    /// The newest archive at or before this time.
    pub as_of: Option<jiff::Timestamp>,
    /// Into this bucket (default: the entry's).
    pub to_bucket: Option<String>,
    /// Under this prefix (default: the entry's).
    pub to_prefix: Option<String>,
    /// Rewrite differing objects.
    pub overwrite: bool,
    /// Delete objects under the prefix the archive lacks.
    pub delete_extra: bool,
    /// How long to wait for the locks.
    pub lock_timeout: Duration,
}

fn entry<'a>(settings: &'a Settings, name: &str) -> &'a BucketBackup {
    settings
        .config
        .spec
        .offsite
        .buckets
        .iter()
        .find(|b| b.name == name)
        .expect("the command checked the entry's name")
}

/// `kentledge restore bucket`.
pub async fn bucket(
    settings: &Settings,
    opts: &BucketOptions,
    client: &kube::Client,
    interrupt: &Interrupt,
    results: &mut output::Results,
) -> Result<u8, Error> {
    let run_id = crate::model::labels::new_run_id();
    let (plan, locks) = locked_plan(
        client,
        settings,
        &run_id,
        opts.lock_timeout,
        interrupt,
        plan_restore(settings, opts, client, interrupt, &run_id),
    )
    .await?;
    if locks.is_some()
        && let Err(e) = super::sweep(client, settings, &run_id).await
    {
        tracing::warn!("{e}");
    }
    if settings.dry_run {
        tracing::info!("{}", render(&plan).trim_end());
    }
    let started = Instant::now();
    let mut report = execute(client, settings, &plan, interrupt).await;
    report.seconds = started.elapsed().as_secs_f64();
    report.interrupted = interrupt.code();
    let lost = match locks {
        Some(l) => l.release().await,
        None => None,
    };
    if let Some(l) = &lost {
        report
            .notes
            .push(format!("a lock was lost during the restore: {l}"));
    }
    results.report(&report)?;
    Ok(report.code(lost.is_some()))
}

async fn plan_restore(
    settings: &Settings,
    opts: &BucketOptions,
    client: &kube::Client,
    interrupt: &Interrupt,
    run_id: &str,
) -> Result<BucketRestorePlan, Error> {
    let b = entry(settings, &opts.name);
    let repo_name = opts
        .repository
        .clone()
        .or_else(|| b.repositories.first().cloned())
        .unwrap_or_default();
    let repo = super::repository(settings, &repo_name);
    let listed = list_archives(client, settings, run_id, 0, repo, None, interrupt).await?;
    let ctx = crate::mover::pod::Context {
        namespace: &settings.namespace,
        config: &settings.config.metadata.name,
        run_id,
        owner: None,
    };
    plan(&Inputs {
        config: &settings.config,
        ctx: &ctx,
        entry: b,
        repo,
        entries: &listed,
        query: ArchiveQuery {
            archive: opts.archive.as_deref(),
            as_of: opts.as_of,
        },
        to_bucket: opts.to_bucket.as_deref(),
        to_prefix: opts.to_prefix.as_deref(),
        overwrite: opts.overwrite,
        delete_extra: opts.delete_extra,
        dry_run: settings.dry_run,
        index: 1,
    })
    .map_err(|p| Error::Plan { problems: vec![p] })
}

async fn execute(
    client: &kube::Client,
    settings: &Settings,
    p: &BucketRestorePlan,
    interrupt: &Interrupt,
) -> BucketRestore {
    let progress = crate::runtime::progress::Progress::start(&format!(
        "restoring bucket {} into {}/{}",
        p.name, p.target.bucket, p.target.prefix
    ));
    let what = format!(
        "bucket {} → {}/{}",
        p.name, p.target.bucket, p.target.prefix
    );
    let on_event =
        |e: &MoverEvent| super::show_progress(e, &progress, &what, "objects", &p.repo.name);
    let task = mover::Task {
        namespace: &settings.namespace,
        config: &settings.config.metadata.name,
        pod: &p.mover,
        clone: None,
        access: &p.job.repository,
        repository: &p.repo,
        mover: &settings.config.spec.mover,
    };
    let out = mover::run_with_locks(client, &task, interrupt, &on_event).await;
    drop(progress);
    let archive = match &p.source {
        crate::plan::restore::Source::Archive { entry, .. } => entry.archive.clone(),
        crate::plan::restore::Source::Snapshot { name, .. } => name.clone(),
    };
    let mut report = BucketRestore {
        name: p.name.clone(),
        bucket: p.target.bucket.clone(),
        prefix: p.target.prefix.clone(),
        repository: p.repo.name.clone(),
        archive,
        dry_run: settings.dry_run,
        ok: false,
        outcome: Verdict::Failed,
        result: String::new(),
        plan: None,
        restored: None,
        notes: Vec::new(),
        seconds: 0.0,
        interrupted: None,
    };
    match out {
        Err(e) => report.result = e.to_string(),
        Ok(o) => {
            let seen = if settings.dry_run {
                o.bucket_plan.is_some()
            } else {
                o.bucket_restored.is_some()
            };
            (report.outcome, report.result) = judged(&o, seen);
            report.ok = report.outcome == Verdict::Ok;
            report.plan = o.bucket_plan;
            report.restored = o.bucket_restored;
        }
    }
    report
}
