//! A restore into a new PVC: refuse an existing name; from a snapshot, a PVC with `dataSource`
//! (the snapshot marked in use until it is bound; a `WaitForFirstConsumer` class is reported,
//! not waited for); from an archive, an empty PVC filled and verified by a mover pod. The new
//! PVC is labelled a restore target until the restore is done: a failed or interrupted restore
//! deletes it, and one left by a killed run is swept by the next run.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{Locks, VolumeOptions, read_pvc, source};
use crate::error::{Error, exit};
use crate::flows::movers as mover;
use crate::kube::marks::set_in_use as mark_in_use;
use crate::model::labels::RUN;
use crate::mover::job::MoverEvent;
use crate::mover::pod::ROLE;
use crate::plan::restore::{self, Fresh, ShapeInputs, Source};
use crate::report::Verdict;
use crate::report::restore::VolumeRestore;
use crate::runtime::output;
use crate::runtime::poll::{Polled, poll};
use crate::runtime::signals::Interrupt;
use crate::settings::Settings;

/// How long a new PVC of an `Immediate` class may take to bind.
const BIND_TIMEOUT: Duration = Duration::from_secs(300);

pub(super) async fn run(
    settings: &Settings,
    opts: &VolumeOptions,
    to: &str,
    client: &kube::Client,
    interrupt: &Interrupt,
    results: &mut output::Results,
) -> Result<u8, Error> {
    let ns = settings.namespace.as_str();
    if read_pvc(client, ns, to).await?.is_some() {
        return Err(Error::Plan {
            problems: vec![format!(
                "--to {to}: a PVC of that name exists; a restore never writes into an existing PVC (pick another name, or restore --in-place)"
            )],
        });
    }
    let source_pvc = read_pvc(client, ns, &opts.pvc).await?;
    let run_id = crate::model::labels::new_run_id();
    // The source is chosen under the locks, so that no prune deletes it before it is read.
    let locks = if settings.dry_run {
        None
    } else {
        Some(Locks::take(client, settings, &run_id, opts.lock_timeout, interrupt).await?)
    };
    let planned = plan(
        settings,
        opts,
        to,
        client,
        interrupt,
        &run_id,
        source_pvc.as_ref(),
    )
    .await;
    let (plan, locks) = super::or_release(locks, planned).await?;
    let Some(locks) = locks else {
        results.emit(
            || restore::render(&plan),
            || json!({"dryRun": true, "plan": &plan}),
        )?;
        return Ok(exit::SUCCESS);
    };
    if let Err(e) = super::sweep(client, settings, &run_id).await {
        tracing::warn!("{e}");
    }
    let started = Instant::now();
    let mut report = execute(client, settings, &plan, &run_id, interrupt).await;
    report.seconds = started.elapsed().as_secs_f64();
    super::finish(client, settings, locks, report, interrupt, results).await
}

async fn plan(
    settings: &Settings,
    opts: &VolumeOptions,
    to: &str,
    client: &kube::Client,
    interrupt: &Interrupt,
    run_id: &str,
    source_pvc: Option<&PersistentVolumeClaim>,
) -> Result<Fresh, Error> {
    let src = source(client, settings, opts, run_id, true, interrupt).await?;
    let mut inputs = ShapeInputs {
        source_pvc,
        size: opts.size.as_deref(),
        storage_class: opts.storage_class.as_deref(),
        ..Default::default()
    };
    let restore_size = match &src {
        Source::Snapshot { restore_size, .. } => restore_size.clone(),
        Source::Archive { .. } => None,
    };
    inputs.restore_size = restore_size.as_deref();
    if let Source::Archive { entry, .. } = &src {
        inputs.data_bytes = entry.size;
    }
    let shape = restore::shape(&inputs).map_err(|p| Error::Plan { problems: vec![p] })?;
    Ok(restore::fresh(
        &restore::Context {
            config: &settings.config,
            namespace: &settings.namespace,
            run_id,
        },
        &opts.pvc,
        to,
        src,
        shape,
    ))
}

fn record(plan: &Fresh, outcome: Verdict, result: String) -> VolumeRestore {
    let from = plan.source.describe();
    VolumeRestore::new(
        &plan.pvc,
        &plan.target,
        Some(&plan.source),
        from,
        outcome,
        result,
    )
}

async fn execute(
    client: &kube::Client,
    settings: &Settings,
    plan: &Fresh,
    run_id: &str,
    interrupt: &Interrupt,
) -> VolumeRestore {
    let ns = settings.namespace.as_str();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let mark = format!("restore/{run_id}");
    if let Source::Snapshot { name, .. } = &plan.source {
        mark_in_use(client, ns, name, Some(&mark)).await;
    }
    tracing::info!(pvc = %plan.target, from = %plan.source.describe(), "creating the new PVC");
    let created = pvcs.create(&PostParams::default(), &plan.target_pvc).await;
    let made = created.is_ok();
    let mut rec = match created {
        Ok(_) => match (&plan.mover, &plan.source) {
            (Some(pod), Source::Archive { repository, .. }) => {
                fill(client, settings, plan, pod, repository, interrupt).await
            }
            _ => bind(client, settings, plan, interrupt).await,
        },
        // Nothing was made, so nothing is deleted (a PVC of that name that appeared meanwhile
        // is someone else's).
        Err(e) => record(
            plan,
            Verdict::Failed,
            format!("cannot create the new PVC: {e}"),
        ),
    };
    if let Source::Snapshot { name, .. } = &plan.source {
        mark_in_use(client, ns, name, None).await;
        rec.notes.push(format!(
            "prune keeps snapshot {name} while {} names it as its dataSource",
            plan.target
        ));
    }
    if rec.ok {
        // Done: the PVC is the user's now, no longer a restore target that a sweep would delete.
        let patch = json!({"metadata": {"labels": {ROLE: null, RUN: null}}});
        if let Err(e) = pvcs
            .patch(&plan.target, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            rec.ok = false;
            rec.outcome = Verdict::Failed;
            rec.result = format!(
                "the data was restored, but {} could not be marked done ({e}): the next kentledge run would delete it as a leftover; remove its label {ROLE} by hand",
                plan.target
            );
        }
    } else if made {
        mover::cleanup(client, ns, None, Some(&plan.target)).await;
        let gone = matches!(pvcs.get_opt(&plan.target).await, Ok(None));
        rec.notes.push(if gone {
            format!("the new PVC {} was deleted; nothing else was changed", plan.target)
        } else {
            format!(
                "the new PVC {} could not be deleted yet; the next kentledge run of this config deletes it",
                plan.target
            )
        });
    }
    rec
}

/// Fills the new PVC from the archive in a mover pod and checks what it wrote.
async fn fill(
    client: &kube::Client,
    settings: &Settings,
    plan: &Fresh,
    pod: &k8s_openapi::api::core::v1::Pod,
    repository: &str,
    interrupt: &Interrupt,
) -> VolumeRestore {
    let config = &settings.config;
    let repo = super::repository(settings, repository);
    let job = plan.job.as_ref().expect("an archive restore has a job");
    let progress = crate::runtime::progress::Progress::start("restoring");
    let target = plan.target.as_str();
    let on_event = |e: &MoverEvent| {
        super::show_progress(
            e,
            &progress,
            &format!("{repository} → {target}"),
            "files",
            repository,
        )
    };
    let out = mover::run_with_locks(
        client,
        &mover::Task {
            namespace: &settings.namespace,
            config: &config.metadata.name,
            pod,
            clone: None,
            access: &job.repository,
            repository: repo,
            mover: &config.spec.mover,
        },
        interrupt,
        &on_event,
    )
    .await;
    drop(progress);
    match out {
        Ok(o) if o.ok() && o.restored.is_some() => {
            let mut r = record(plan, Verdict::Ok, "ok".into());
            r.restored = o.restored;
            r.bound = Some(true);
            r
        }
        Ok(o) if o.ok() => record(
            plan,
            Verdict::Unknown,
            "the mover exited 0 without saying what it restored".into(),
        ),
        Ok(o) => {
            let mut r = record(plan, o.verdict(), o.reason());
            r.restored = o.restored;
            r
        }
        Err(e) => record(plan, Verdict::Failed, e.to_string()),
    }
}

/// The binding mode of the new PVC's storage class (`None` when it cannot be read: the optional
/// read-only ClusterRole is not installed).
async fn binding_mode(client: &kube::Client, class: Option<&str>) -> Option<String> {
    let api: Api<StorageClass> = Api::all(client.clone());
    let sc = match class {
        Some(name) => api.get_opt(name).await.ok()??,
        None => api
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|s| {
                s.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("storageclass.kubernetes.io/is-default-class"))
                    .is_some_and(|v| v == "true")
            })?,
    };
    sc.volume_binding_mode
}

/// Waits until a new PVC from a snapshot is bound, unless its class binds on first use.
async fn bind(
    client: &kube::Client,
    settings: &Settings,
    plan: &Fresh,
    interrupt: &Interrupt,
) -> VolumeRestore {
    let mode = binding_mode(client, plan.shape.storage_class.as_deref()).await;
    if mode.as_deref() == Some("WaitForFirstConsumer") {
        let mut r = record(plan, Verdict::Ok, "ok".into());
        r.bound = Some(false);
        return r;
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &settings.namespace);
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(client.clone(), &settings.namespace);
    // The class could not be read: the PV controller's Event on the claim tells a class that
    // waits for a first consumer.
    let waits_for_consumer = async || -> bool {
        if mode.is_some() {
            return false;
        }
        events.list(&ListParams::default()).await.is_ok_and(|l| {
            l.items.iter().any(|e| {
                e.reason.as_deref() == Some("WaitForFirstConsumer")
                    && e.involved_object.name.as_deref() == Some(plan.target.as_str())
                    && e.involved_object.kind.as_deref() == Some("PersistentVolumeClaim")
            })
        })
    };
    let progress = crate::runtime::progress::Progress::start("waiting for the new PVC to bind");
    let deadline = tokio::time::Instant::now() + BIND_TIMEOUT;
    let polled = poll(
        Duration::from_millis(500),
        Some(deadline),
        interrupt.token(),
        async || match pvcs.get_opt(&plan.target).await {
            Ok(Some(p)) if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound") => {
                ControlFlow::Break(Ok(true))
            }
            Ok(None) => {
                ControlFlow::Break(Err("the new PVC was deleted by someone else".to_owned()))
            }
            _ if waits_for_consumer().await => ControlFlow::Break(Ok(false)),
            _ => ControlFlow::Continue(()),
        },
    )
    .await;
    drop(progress);
    match polled {
        Polled::Done(Ok(bound)) => {
            let mut r = record(plan, Verdict::Ok, "ok".into());
            r.bound = Some(bound);
            r
        }
        Polled::Done(Err(why)) => record(plan, Verdict::Failed, why),
        Polled::Interrupted => record(plan, Verdict::Failed, "interrupted".into()),
        Polled::TimedOut => record(
            plan,
            Verdict::Failed,
            format!(
                "the new PVC was not bound within {} (see `kubectl describe pvc {}`{})",
                crate::model::units::HumanDuration(BIND_TIMEOUT),
                plan.target,
                if mode.is_none() {
                    "; its storage class could not be read to tell whether it waits for a first consumer"
                } else {
                    ""
                }
            ),
        ),
    }
}
