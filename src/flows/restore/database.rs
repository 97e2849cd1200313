//! `kentledge restore database`: under both locks, list the repository, choose the database and
//! archive, and run one mover pod that loads the dump into the database's own server by exec
//! (an existing target refused unless `--replace`, then dumped first); the report says what was
//! restored, from what, the safety dump, and the tables found.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::json;

use super::{judged, list_archives, locked_plan};
use crate::config::DatabaseBackup;
use crate::error::{Error, exit};
use crate::flows::movers as mover;
use crate::mover::job::MoverEvent;
use crate::plan::restore::ArchiveQuery;
use crate::plan::restore::database::{DatabaseRestorePlan, Inputs, plan, render};
use crate::report::Verdict;
use crate::report::restore::DatabaseRestore;
use crate::runtime::output;
use crate::runtime::signals::Interrupt;
use crate::settings::Settings;

/// What a database restore is asked for.
#[derive(Clone, Debug)]
pub struct DatabaseOptions {
    /// The `spec.offsite.databases` entry.
    pub name: String,
    /// From this repository (default: the entry's first).
    pub repository: Option<String>,
    /// This archive.
    pub archive: Option<String>,
    /// The newest archive at or before this time.
    pub as_of: Option<jiff::Timestamp>,
    /// This database of the entry's dumps (default: the only one).
    pub database: Option<String>,
    /// Into this database (default: the database's own name).
    pub to_database: Option<String>,
    /// Replace an existing target (after a safety dump).
    pub replace: bool,
    /// How long to wait for the locks.
    pub lock_timeout: Duration,
}

fn entry<'a>(settings: &'a Settings, name: &str) -> &'a DatabaseBackup {
    settings
        .config
        .spec
        .offsite
        .databases
        .iter()
        .find(|d| d.name == name)
        .expect("the command checked the entry's name")
}

/// `kentledge restore database`.
pub async fn database(
    settings: &Settings,
    opts: &DatabaseOptions,
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
    let Some(locks) = locks else {
        results.emit(|| render(&plan), || json!({"dryRun": true, "plan": &plan}))?;
        return Ok(exit::SUCCESS);
    };
    if let Err(e) = super::sweep(client, settings, &run_id).await {
        tracing::warn!("{e}");
    }
    let started = Instant::now();
    let mut report = execute(client, settings, &plan, interrupt).await;
    report.seconds = started.elapsed().as_secs_f64();
    report.interrupted = interrupt.code();
    let lost = locks.release().await;
    if let Some(l) = &lost {
        report
            .notes
            .push(format!("a lock was lost during the restore: {l}"));
    }
    if !report.ok {
        crate::kube::events::record_on(
            client,
            &settings.namespace,
            "Pod",
            &plan.pod,
            "RestoreFailed",
            &format!(
                "restore of database {} into {} failed: {}",
                plan.database, plan.target, report.result
            ),
        )
        .await;
    }
    if report.ok {
        crate::kube::events::note_on(
            client,
            &settings.namespace,
            "Pod",
            &plan.pod,
            "Restored",
            &format!(
                "database {} of {} restored into {} from {}",
                plan.database, plan.name, plan.target, report.archive
            ),
        )
        .await;
    }
    results.report(&report)?;
    Ok(report.code(lost.is_some()))
}

async fn plan_restore(
    settings: &Settings,
    opts: &DatabaseOptions,
    client: &kube::Client,
    interrupt: &Interrupt,
    run_id: &str,
) -> Result<DatabaseRestorePlan, Error> {
    let plan_err = |p: String| Error::Plan { problems: vec![p] };
    let d = entry(settings, &opts.name);
    let pods = Api::<Pod>::namespaced(client.clone(), &settings.namespace)
        .list(&ListParams::default())
        .await
        .map_err(Error::cluster("list Pods"))?
        .items;
    let (pod, container) = crate::plan::dumps::server(d, &pods)
        .map_err(|e| plan_err(format!("database {}: {e}", d.name)))?;
    let repo_name = opts
        .repository
        .clone()
        .or_else(|| d.repositories.first().cloned())
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
        entry: d,
        repo,
        entries: &listed,
        database: opts.database.as_deref(),
        query: ArchiveQuery {
            archive: opts.archive.as_deref(),
            as_of: opts.as_of,
        },
        to: opts.to_database.as_deref(),
        replace: opts.replace,
        server: (&pod, &container),
        index: 1,
    })
    .map_err(plan_err)
}

async fn execute(
    client: &kube::Client,
    settings: &Settings,
    p: &DatabaseRestorePlan,
    interrupt: &Interrupt,
) -> DatabaseRestore {
    let progress = crate::runtime::progress::Progress::start(&format!(
        "restoring database {} into {}",
        p.database, p.target
    ));
    let what = format!("{} → {}", p.database, p.target);
    let on_event =
        |e: &MoverEvent| super::show_progress(e, &progress, &what, "files", &p.repo.name);
    let task = mover::Task {
        namespace: &settings.namespace,
        config: &settings.config.metadata.name,
        pod: &p.mover,
        clone: None,
        access: &p.job.repository,
        repository: &p.repo,
        mover: &settings.config.spec.mover,
    };
    // The safety dump goes into the repository: its writer mounts the cache volume.
    let out = match mover::ensure_cache(client, &settings.namespace, task.config, &p.repo).await {
        Ok(()) => mover::run_with_locks(client, &task, interrupt, &on_event).await,
        Err(e) => Err(e),
    };
    drop(progress);
    let archive = match &p.source {
        crate::plan::restore::Source::Archive { entry, .. } => entry.archive.clone(),
        crate::plan::restore::Source::Snapshot { name, .. } => name.clone(),
    };
    let mut report = DatabaseRestore {
        name: p.name.clone(),
        database: p.database.clone(),
        target: p.target.clone(),
        server: format!("{}/{}", p.pod, p.container),
        repository: p.repo.name.clone(),
        archive,
        ok: false,
        outcome: Verdict::Failed,
        result: String::new(),
        loaded: None,
        notes: Vec::new(),
        seconds: 0.0,
        interrupted: None,
    };
    match out {
        Err(e) => report.result = e.to_string(),
        Ok(o) => {
            (report.outcome, report.result) = judged(&o, o.loaded.is_some());
            report.ok = report.outcome == Verdict::Ok;
            report.loaded = o.loaded;
        }
    }
    report
}
