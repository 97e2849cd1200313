//! The backup flow (`kentledge backup`): copies each selected PVC, at the cut of its newest ready
//! snapshot (or `--from`), into every repository of `spec.offsite.volumes`, through a clone PVC
//! and a mover pod per copy; and dumps each database server of `spec.offsite.databases` into its
//! repositories, by a mover pod per repository that execs the server's own client; and copies
//! each bucket of `spec.offsite.buckets` through its mirror into its repositories, one
//! repository after another. borg repositories take one writer at a time; at most
//! `mover.concurrency` movers run at once. Stale locks of gone movers are broken; others are
//! waited for, then reported. The source snapshot is marked in use while copied and labelled
//! `backed-up.kentledge.io/<repo>` when the copy is done. Clones and pods are deleted on every
//! path; leftovers of killed runs are swept first.

mod execute;

pub use crate::report::backup::{JobRecord, Report};

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::Api;
use serde_json::json;

use crate::error::{Error, exit};
use crate::flows::movers as mover;
use crate::kube::lease;
use crate::kube::marks::set_in_use;
use crate::model::snapshots::VolumeSnapshot;
use crate::plan;
use crate::report::Verdict;
use crate::runtime::output;
use crate::runtime::signals::Interrupt;
use crate::settings::Settings;
use execute::execute;

/// The kentledge pod itself, when running in a cluster: clones and movers are owned by it.
async fn own_pod(client: &kube::Client, ns: &str) -> Option<OwnerReference> {
    std::env::var_os("KUBERNETES_SERVICE_HOST")?;
    let name = std::env::var("HOSTNAME").ok()?;
    let p = Api::<Pod>::namespaced(client.clone(), ns)
        .get_opt(&name)
        .await
        .ok()??;
    Some(OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name,
        uid: p.metadata.uid?,
        ..OwnerReference::default()
    })
}

/// What a backup run is asked for, apart from the settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Copy this snapshot instead of each PVC's newest ready one.
    pub from: Option<String>,
    /// Only these targets; empty: all.
    pub targets: Vec<String>,
    /// Only these repositories; empty: all.
    pub repositories: Vec<String>,
    /// How long to wait for the run lock.
    pub lock_timeout: Duration,
}

/// The backup run (after the snapshot part of `backup --snapshot-now`, when asked for).
pub async fn run(
    settings: &Settings,
    args: &Options,
    client: &kube::Client,
    interrupt: &Interrupt,
    results: &mut output::Results,
) -> Result<u8, Error> {
    let ns = settings.namespace.as_str();
    let config = &settings.config;
    let cfg_name = config.metadata.name.as_str();
    let mut seen = crate::kube::observe::namespace(
        client,
        ns,
        crate::kube::observe::Also {
            workloads: settings.config.spec.snapshots.names_workloads(),
            pods: !config.spec.offsite.databases.is_empty(),
            snapshots: Some(&crate::model::labels::config_selector(cfg_name)),
        },
    )
    .await?;
    let half = crate::flows::restore::warn_unfinished(client, settings, &seen.pvcs).await;
    if let Some(from) = &args.from
        && !seen
            .snapshots
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some(from))
        && let Some(s) = Api::<VolumeSnapshot>::namespaced(client.clone(), ns)
            .get_opt(from)
            .await
            .map_err(Error::cluster("read the --from VolumeSnapshot"))?
    {
        seen.snapshots.push(s);
    }
    // A snapshot run that holds the run lock (running, or killed and not yet taken over) has
    // not confirmed its frozen snapshots were cut while frozen until it notes so; a killed one
    // never will (the next snapshot, prune or restore deletes them): never a source to copy.
    let killed =
        crate::kube::lease::current_holder(client, ns, cfg_name, crate::plan::lock::Lock::Run)
            .await
            .map_err(Error::cluster("read the snapshot run lock"))?;
    if let Some(k) = &killed {
        seen.snapshots.retain(|s| {
            let keep = !k.distrusts(s);
            if !keep {
                                tracing::warn!(snapshot = s.metadata.name.as_deref().unwrap_or(""), run = %k.run,
                    "not copying a snapshot whose run has not confirmed it was cut while the application was frozen (killed, or still running)");
            }
            keep
        });
    }
    let owner = own_pod(client, ns).await;
    let run_id = crate::model::labels::new_run_id();
    let plan = plan::backup::plan(&plan::backup::Inputs {
        config,
        namespace: ns,
        run_id: &run_id,
        observed: crate::plan::selection::Observed {
            pvcs: &seen.pvcs,
            deployments: &seen.deployments,
            statefulsets: &seen.statefulsets,
        },
        snapshots: &seen.snapshots,
        from: args.from.as_deref(),
        targets: &args.targets,
        repositories: &args.repositories,
        owner: owner.as_ref(),
    })
    .map_err(|problems| Error::Plan { problems })?;
    // A PVC an in-place restore was writing when it was stopped: its snapshots are fine, but
    // the restore must be finished first (the newest snapshot may be of half-written data).
    let mut plan = plan;
    for pvc in &half {
        if plan.jobs.iter().any(|j| &j.pvc == pvc) {
            plan.jobs.retain(|j| &j.pvc != pvc);
            plan.skipped.push(plan::backup::SkippedVolume {
                pvc: pvc.clone(),
                reason: "an in-place restore of it did not finish: run `kentledge restore volume PVC --in-place --resume` first".into(),
            });
        }
    }
    let ctx = crate::mover::pod::Context {
        namespace: ns,
        config: cfg_name,
        run_id: &run_id,
        owner: owner.as_ref(),
    };
    let (dumps, skipped_databases) = plan::dumps::plan(&plan::dumps::Inputs {
        config,
        ctx: &ctx,
        pods: &seen.pods,
        targets: &args.targets,
        repositories: &args.repositories,
        first_index: plan.jobs.len(),
    });
    let buckets = plan::buckets::plan(&plan::buckets::Inputs {
        config,
        ctx: &ctx,
        targets: &args.targets,
        repositories: &args.repositories,
        first_index: plan.jobs.len() + dumps.len(),
        time: jiff::Timestamp::now(),
    });
    for s in &plan.skipped {
        tracing::warn!(pvc = %s.pvc, "skipped: {}", s.reason);
    }
    for s in &skipped_databases {
        tracing::warn!(database = %s.name, "skipped: {}", s.reason);
    }
    if settings.dry_run {
        results.emit(
            || {
                let mut text = plan::backup::render(&plan, config, ns);
                text.push_str(&plan::dumps::render(&dumps, &skipped_databases, config));
                text.push_str(&plan::buckets::render(&buckets, config));
                text
            },
            || {
                json!({
                    "run": plan.run_id,
                    "namespace": ns,
                    "jobs": plan.jobs,
                    "skipped": plan.skipped,
                    "already": plan.already,
                    "dumps": dumps,
                    "skippedDatabases": skipped_databases,
                    "buckets": buckets,
                    "pods": plan.jobs.iter().map(|j| &j.pod).chain(dumps.iter().map(|d| &d.mover)).chain(buckets.iter().map(|b| &b.mover)).collect::<Vec<_>>(),
                    "clones": plan.jobs.iter().map(|j| &j.clone).collect::<Vec<_>>(),
                })
            },
        )?;
        return Ok(exit::SUCCESS);
    }
    let progress = crate::runtime::progress::Progress::start("waiting for the backup lock");
    let held = lease::take(
        client,
        ns,
        cfg_name,
        crate::plan::lock::Lock::Backup,
        &run_id,
        args.lock_timeout,
        interrupt,
    )
    .await?;
    tracing::info!(run = %run_id, copies = plan.jobs.len(), dumps = dumps.len(), buckets = buckets.len(), "backup lock taken");
    progress.phase("sweeping leftovers of earlier runs");
    let swept = mover::delete_leftovers(client, ns, cfg_name, &run_id).await;
    if let Err(e) = &swept {
        tracing::warn!(error = %e, "could not sweep leftovers of earlier runs");
    }
    crate::kube::marks::release_stale(client, &seen.snapshots, ns, &run_id).await;
    for r in &config.spec.repositories {
        if plan.jobs.iter().any(|j| j.repository == r.name)
            || dumps.iter().any(|d| d.repository == r.name)
            || buckets.iter().any(|b| b.repository == r.name)
        {
            mover::ensure_cache(client, ns, cfg_name, r).await?;
        }
    }
    for b in &config.spec.offsite.buckets {
        if buckets.iter().any(|c| c.name == b.name) {
            mover::ensure_bucket_cache(client, ns, cfg_name, b).await?;
        }
    }
    let sources: BTreeSet<&str> = plan.jobs.iter().map(|j| j.snapshot.as_str()).collect();
    let mark = format!("backup/{run_id}");
    for s in &sources {
        set_in_use(client, ns, s, Some(&mark)).await;
    }
    let (records, dumped, copied) = execute(
        client, settings, &plan, &dumps, &buckets, interrupt, &progress,
    )
    .await;
    // Each snapshot's in-use mark went when its last copy ended (see execute::copy).
    progress.phase("cleaning up");
    let lost = held.release().await;
    drop(progress);
    let report = Report {
        run: run_id.clone(),
        namespace: ns.to_owned(),
        jobs: records,
        skipped: plan.skipped.clone(),
        already: plan.already.clone(),
        dumps: dumped,
        skipped_databases,
        buckets: copied,
        interrupted: interrupt.code(),
    };
    // The volume copies' Events went out as each ended (execute::announce).
    for d in report.dumps.iter().filter(|d| !d.ok) {
        let (reason, what) = match d.outcome {
            Verdict::Unknown => ("DumpResultUnknown", "not confirmed"),
            _ => ("DumpFailed", "failed"),
        };
        crate::kube::events::record_on(
            client,
            ns,
            "Pod",
            &d.pod,
            reason,
            &format!(
                "dump of {} to {} {what}: {}",
                d.target(),
                d.repository,
                d.result
            ),
        )
        .await;
    }
    for b in report.buckets.iter().filter(|b| !b.ok) {
        // The bucket's cache volume is the one object of the cluster that stands for it.
        if let Some(c) = buckets
            .iter()
            .find(|c| c.name == b.name)
            .and_then(|c| c.cache.as_ref())
        {
            let reason = match b.outcome {
                Verdict::Unknown => "BucketBackupResultUnknown",
                _ => "BucketBackupFailed",
            };
            crate::kube::events::record(
                client,
                ns,
                c,
                reason,
                &format!(
                    "backup of bucket {} to {}: {}",
                    b.name, b.repository, b.result
                ),
            )
            .await;
        }
    }
    for d in report.dumps.iter().filter(|d| d.ok) {
        crate::kube::events::note_on(
            client,
            ns,
            "Pod",
            &d.pod,
            "Dumped",
            &format!(
                "dump of {} to {} as {}",
                d.target(),
                d.repository,
                d.archive
            ),
        )
        .await;
    }
    for b in report.buckets.iter().filter(|b| b.ok) {
        if let Some(c) = buckets
            .iter()
            .find(|c| c.name == b.name)
            .and_then(|c| c.cache.as_ref())
        {
            crate::kube::events::note_on(
                client,
                ns,
                "PersistentVolumeClaim",
                c,
                "BucketBackedUp",
                &format!(
                    "bucket {} copied to {} as {}: {} objects, {} downloaded",
                    b.name, b.repository, b.archive, b.objects, b.fetched
                ),
            )
            .await;
        }
    }
    results.report(&report)?;
    Ok(report.code(lost.is_some()))
}
