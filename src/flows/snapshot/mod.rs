//! The snapshot flow (`kentledge snapshot`, and `backup --snapshot-now`): the imperative shell
//! around [`crate::plan::snapshot`]. Observe (one list per kind), plan, then (unless a dry run)
//! take the run lock, run pre-hooks, create every snapshot at once, wait for every cut, run
//! post-hooks (always, for every pre-hook that started: on success, failure, timeout and
//! SIGINT/SIGTERM), delete snapshots that were not cut before the application was released
//! (they would not be consistent), wait for readiness, annotate, release the lock and report.

mod execute;
pub(crate) mod killed;
mod seen;

pub use crate::report::snapshot::{HookRecord, Report, SnapshotRecord};

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use crate::error::{Error, exit};
use crate::kube::lease;
use crate::plan;
use crate::plan::snapshot::classes::{SnapshotClass, classes};
use crate::plan::snapshot::{Classes, Plan};
use crate::runtime::output;
use crate::runtime::signals::Interrupt;
use crate::settings::Settings;
use execute::execute;

fn class_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshotClass"),
        "volumesnapshotclasses",
    )
}

/// Reads StorageClasses and VolumeSnapshotClasses (needs the optional ClusterRole).
async fn read_classes(
    client: &kube::Client,
    pvcs: &[PersistentVolumeClaim],
) -> Result<Classes, Error> {
    let scs = Api::<StorageClass>::all(client.clone())
        .list(&ListParams::default())
        .await;
    let vscs = Api::<DynamicObject>::all_with(client.clone(), &class_resource())
        .list(&ListParams::default())
        .await;
    let forbidden = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 403);
    let (scs, vscs) = match (scs, vscs) {
        (Ok(a), Ok(b)) => (a.items, b.items),
        // Any other error wins over a 403: it is not the documented "no ClusterRole" case.
        (Err(e), _) if !forbidden(&e) => {
            return Err(Error::cluster("list StorageClasses")(e));
        }
        (_, Err(e)) if !forbidden(&e) => {
            return Err(Error::cluster("list VolumeSnapshotClasses")(e));
        }
        _ => {
            tracing::info!(
                "cannot read StorageClasses or VolumeSnapshotClasses (install manifests/cluster-read.yaml): default classes are not detected"
            );
            return Ok(Classes::default());
        }
    };
    let snapshot: Vec<SnapshotClass> = vscs
        .iter()
        .filter_map(|c| {
            Some(SnapshotClass {
                name: c.metadata.name.clone()?,
                driver: c.data.get("driver")?.as_str()?.to_owned(),
                is_default: c
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("snapshot.storage.kubernetes.io/is-default-class"))
                    .is_some_and(|v| v == "true"),
            })
        })
        .collect();
    Ok(classes(pvcs, &scs, &snapshot))
}

/// The snapshot classes the cluster has for `pvcs` (empty when they cannot be read).
pub async fn classes_for(
    client: &kube::Client,
    pvcs: &[PersistentVolumeClaim],
) -> Result<Classes, Error> {
    read_classes(client, pvcs).await
}

/// Takes one planned snapshot outside a snapshot run, without hooks (an in-place restore's
/// safety snapshot: the workloads are stopped), waiting for its cut and readiness as a run does.
/// Returns its name once ready, or why it is not.
pub async fn take_one(
    client: &kube::Client,
    settings: &Settings,
    run_id: &str,
    snapshot: plan::snapshot::PlannedSnapshot,
    interrupt: &Interrupt,
) -> Result<String, String> {
    let plan = Plan {
        run_id: run_id.to_owned(),
        namespace: settings.namespace.clone(),
        config: settings.config.metadata.name.clone(),
        snapshots: vec![snapshot],
        skipped: Vec::new(),
        warnings: Vec::new(),
        hooks: Vec::new(),
    };
    let progress = crate::runtime::progress::Progress::start("taking the safety snapshot");
    let report = execute(client, settings, &plan, None, interrupt, &progress).await;
    drop(progress);
    match report.snapshots.first() {
        Some(s) if s.ready && report.failure.is_none() => Ok(s.name.clone()),
        Some(s) => Err(s
            .error
            .clone()
            .or(report.failure.clone())
            .unwrap_or_else(|| format!("snapshot {} did not become ready", s.name))),
        None => Err(report
            .failure
            .unwrap_or_else(|| "the snapshot was not created".into())),
    }
}

/// What a snapshot run is asked for, apart from the settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Only these targets (names of `spec.snapshots.targets`); empty: all.
    pub targets: Vec<String>,
    /// How long to wait for the run lock.
    pub lock_timeout: Duration,
}

/// The snapshot run (also the first part of `backup --snapshot-now`).
pub async fn run(
    settings: &Settings,
    args: &Options,
    client: &kube::Client,
    interrupt: &Interrupt,
    results: &mut output::Results,
) -> Result<u8, Error> {
    let ns = settings.namespace.as_str();
    let seen = crate::kube::observe::namespace(
        client,
        ns,
        crate::kube::observe::Also {
            workloads: settings.config.spec.snapshots.names_workloads(),
            pods: true,
            snapshots: None,
        },
    )
    .await?;
    let (pvcs, deployments, statefulsets, pods) =
        (seen.pvcs, seen.deployments, seen.statefulsets, seen.pods);
    let half = crate::flows::restore::warn_unfinished(client, settings, &pvcs).await;
    let classes = read_classes(client, &pvcs).await?;
    let now = Timestamp::now();
    let run_id = crate::model::labels::run_id(now, crate::model::labels::random_u16());
    let cluster = plan::snapshot::Cluster {
        pvcs: &pvcs,
        deployments: &deployments,
        statefulsets: &statefulsets,
        pods: &pods,
    };
    let plan = plan::snapshot::plan(
        &settings.config,
        ns,
        &run_id,
        now,
        cluster,
        &classes,
        &args.targets,
    )
    .map_err(|problems| Error::Plan { problems })?;
    // A PVC an in-place restore was writing when it was stopped is not a restore point.
    let mut plan = plan;
    for pvc in &half {
        if plan.snapshots.iter().any(|s| &s.pvc == pvc) {
            plan.snapshots.retain(|s| &s.pvc != pvc);
            plan.skipped.push(crate::plan::selection::Skipped {
                pvc: pvc.clone(),
                reason: "an in-place restore of it did not finish and its data may be half written: run `kentledge restore volume PVC --in-place --resume` first".into(),
            });
        }
    }
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    for s in &plan.skipped {
        tracing::warn!(pvc = %s.pvc, "skipped: {}", s.reason);
    }
    if settings.dry_run {
        results.emit(
            || plan::snapshot::render(&plan),
            || json!({"run": plan.run_id, "namespace": ns, "snapshots": plan.snapshots}),
        )?;
        return Ok(exit::SUCCESS);
    }
    if plan.snapshots.is_empty() {
        results.emit(
            || "nothing to snapshot (allowEmpty)\n".into(),
            || json!({"run": plan.run_id, "namespace": ns, "snapshots": []}),
        )?;
        return Ok(exit::SUCCESS);
    }

    let progress = crate::runtime::progress::Progress::start("waiting for the run lock");
    let held = lease::take(
        client,
        ns,
        &plan.config,
        crate::plan::lock::Lock::Run,
        &run_id,
        args.lock_timeout,
        interrupt,
    )
    .await?;
    tracing::info!(run = %run_id, snapshots = plan.snapshots.len(), hooks = plan.hooks.len(), "run lock taken");
    killed::sweep(client, ns, &held).await;
    let report = execute(client, settings, &plan, Some(&held), interrupt, &progress).await;
    progress.phase("releasing the run lock");
    let lost = held.release().await;
    drop(progress);
    if report.code(false) != exit::SUCCESS {
        for s in report.snapshots.iter().filter(|s| !s.ready) {
            crate::kube::events::record(
                client,
                ns,
                &s.pvc,
                "SnapshotFailed",
                s.error
                    .as_deref()
                    .or(report.failure.as_deref())
                    .unwrap_or("snapshot failed"),
            )
            .await;
        }
    }
    for s in report.snapshots.iter().filter(|s| s.ready) {
        crate::kube::events::note_on(
            client,
            ns,
            "PersistentVolumeClaim",
            &s.pvc,
            "SnapshotTaken",
            &format!("snapshot {} is ready", s.name),
        )
        .await;
    }
    results.report(&report)?;
    Ok(report.code(lost.is_some()))
}
