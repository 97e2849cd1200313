//! An in-place restore: stop every workload that mounts the PVC (each one's state recorded on
//! it), wait until no pod mounts it, take a pinned safety snapshot, replace the data (rsync from
//! a clone of the snapshot, or extraction from the archive into the emptied volume), verify it,
//! and bring the workloads back as recorded. The PVC carries the restore's phase all along: on
//! any failure, timeout or SIGTERM/SIGINT the old data is put back from the safety snapshot if
//! the data step had begun, and the workloads are brought back; after a SIGKILL,
//! `--resume` (or the next in-place restore of the PVC, which refuses until then) reads the
//! marks and finishes or rolls back.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use super::{Locks, VolumeOptions, read_pvc, source};
use crate::error::{Error, exit};
use crate::flows::movers as mover;
use crate::kube::marks::set_in_use;
use crate::kube::workloads::{self, Seen, Whose};
use crate::model::snapshots::VolumeSnapshot;
use crate::mover::job::{MoverEvent, Restored};
use crate::plan::restore::inplace::{
    self, IN_PROGRESS_ANNOTATION, InPlace, Kind, Phase, Progress, ROLLBACK_INDEX, Recorded, Resume,
};
use crate::plan::restore::{Context, Source};
use crate::report::Verdict;
use crate::report::restore::{VolumeRestore, WorkloadRecord};
use crate::runtime::output;
use crate::runtime::poll::{Polled, poll};
use crate::runtime::signals::Interrupt;
use crate::settings::Settings;

/// How long stopped workloads' pods may take to go, and brought-back ones to be ready.
const WORKLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// The PVC's mark, read now; an unreadable mark stops the run.
async fn read_mark(
    client: &kube::Client,
    ns: &str,
    pvc: &str,
) -> Result<(PersistentVolumeClaim, Option<Progress>), Error> {
    let Some(target) = read_pvc(client, ns, pvc).await? else {
        return Err(Error::Plan {
            problems: vec![format!(
                "PVC {pvc} does not exist: restore into a new PVC with --to {pvc}"
            )],
        });
    };
    let mark = inplace::mark(&target).map_err(|p| Error::Plan { problems: vec![p] })?;
    Ok((target, mark))
}

fn unfinished_error(pvc: &str, m: &Progress) -> Error {
    Error::Plan {
        problems: vec![format!(
            "an in-place restore of PVC {pvc} (run {}, from {}) did not finish: it stopped while {}; run `kentledge restore volume {pvc} --in-place --resume` to finish or roll it back",
            m.run,
            m.from,
            m.phase.name()
        )],
    }
}

/// Records the restore's phase on the PVC (or removes the mark).
async fn set_mark(
    client: &kube::Client,
    ns: &str,
    pvc: &str,
    mark: Option<&Progress>,
) -> Result<(), String> {
    let value = mark.map(|m| serde_json::to_string(m).unwrap_or_default());
    let patch = json!({"metadata": {"annotations": {IN_PROGRESS_ANNOTATION: value}}});
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .patch(pvc, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| format!("could not record the restore's phase on PVC {pvc}: {e}"))
}

pub(super) async fn run(
    settings: &Settings,
    opts: &VolumeOptions,
    client: &kube::Client,
    interrupt: &Interrupt,
    results: &mut output::Results,
) -> Result<u8, Error> {
    let ns = settings.namespace.as_str();
    let (_, unfinished) = read_mark(client, ns, &opts.pvc).await?;
    if opts.resume {
        return resume(settings, opts, client, interrupt, results).await;
    }
    if let Some(m) = &unfinished {
        return Err(unfinished_error(&opts.pvc, m));
    }
    let run_id = crate::model::labels::new_run_id();
    let locks = if settings.dry_run {
        None
    } else {
        Some(Locks::take(client, settings, &run_id, opts.lock_timeout, interrupt).await?)
    };
    // Read again under the locks: a run that held them may have left its mark meanwhile.
    let planned = async {
        let (target, mark) = read_mark(client, ns, &opts.pvc).await?;
        if let Some(m) = &mark {
            return Err(unfinished_error(&opts.pvc, m));
        }
        plan(settings, opts, client, interrupt, &run_id, &target).await
    }
    .await;
    let (plan, locks) = super::or_release(locks, planned).await?;
    let Some(locks) = locks else {
        results.emit(
            || inplace::render(&plan),
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
    client: &kube::Client,
    interrupt: &Interrupt,
    run_id: &str,
    target: &PersistentVolumeClaim,
) -> Result<InPlace, Error> {
    let ns = settings.namespace.as_str();
    let seen = workloads::read(client, ns).await?;
    let found = inplace::workloads(&opts.pvc, &seen.observed());
    let refused = inplace::refusals(&found, opts.accept);
    if !refused.is_empty() {
        return Err(Error::Plan { problems: refused });
    }
    let src = source(client, settings, opts, run_id, false, interrupt).await?;
    let classes = crate::flows::snapshot::classes_for(client, std::slice::from_ref(target)).await?;
    let class = crate::plan::selection::select(
        &settings.config.spec.snapshots,
        &crate::plan::selection::Observed {
            pvcs: std::slice::from_ref(target),
            deployments: &[],
            statefulsets: &[],
        },
        std::slice::from_ref(&opts.pvc),
    )
    .chosen
    .first()
    .and_then(|c| c.class.clone())
    .or_else(|| {
        settings
            .config
            .spec
            .snapshots
            .volume_snapshot_class_name
            .clone()
    });
    let safety = crate::plan::snapshot::planned_snapshot(
        &settings.config,
        run_id,
        jiff::Timestamp::now(),
        &opts.pvc,
        class,
        &classes,
    )
    .map_err(|p| Error::Plan {
        problems: vec![format!("the safety snapshot cannot be planned: {p}")],
    })?;
    let ctx = Context {
        config: &settings.config,
        namespace: ns,
        run_id,
    };
    Ok(inplace::plan(
        &ctx,
        target,
        src,
        found,
        inplace::safety(safety, run_id),
    ))
}

fn record(
    plan_pvc: &str,
    source: Option<&Source>,
    from: &str,
    outcome: Verdict,
    result: String,
) -> VolumeRestore {
    VolumeRestore::new(plan_pvc, plan_pvc, source, from.to_owned(), outcome, result)
}

fn fail(rec: &mut VolumeRestore, why: String) {
    rec.ok = false;
    rec.outcome = Verdict::Failed;
    rec.result = why;
}

/// What a run has done so far, for its cleanup.
#[derive(Default)]
struct Done {
    stopped: Vec<(Kind, String, Recorded)>,
    deleted_pods: Vec<String>,
    safety: Option<String>,
    /// The data step may have written: the volume may be half old, half new.
    data_started: bool,
    /// The data step finished and was verified.
    data_done: bool,
    /// Things to say that are not failures.
    notes: Vec<String>,
}

async fn execute(
    client: &kube::Client,
    settings: &Settings,
    plan: &InPlace,
    run_id: &str,
    interrupt: &Interrupt,
) -> VolumeRestore {
    let ns = settings.namespace.as_str();
    let mut done = Done::default();
    let mut mark = Progress {
        config: settings.config.metadata.name.clone(),
        run: run_id.to_owned(),
        phase: Phase::Stopping,
        safety_snapshot: None,
        from: plan.source.describe(),
    };
    let outcome = steps(
        client, settings, plan, run_id, interrupt, &mut done, &mut mark,
    )
    .await;
    let mut rec = record(
        &plan.pvc,
        Some(&plan.source),
        &plan.source.describe(),
        Verdict::Ok,
        "ok".into(),
    );
    rec.safety_snapshot = done.safety.clone();
    rec.notes.append(&mut done.notes);
    match outcome {
        Ok(restored) => rec.restored = restored,
        Err((why, restored)) => {
            fail(&mut rec, why);
            rec.restored = restored;
        }
    }
    for p in &done.deleted_pods {
        rec.workloads.push(WorkloadRecord::deleted_pod(p));
    }
    // Whatever happened: put the old data back if the volume may be half written, then bring
    // the workloads back. A signal does not stop this (a later --resume would do the same).
    let calm = Interrupt::new();
    let mut data_whole = true;
    if !rec.ok && done.data_started && !done.data_done {
        data_whole = match &done.safety {
            Some(s) => {
                mark.phase = Phase::RollingBack;
                if let Err(e) = set_mark(client, ns, &plan.pvc, Some(&mark)).await {
                    rec.notes.push(e);
                }
                match put_back(client, settings, &plan.pvc, s, run_id, &calm).await {
                    Ok(()) => {
                        mark.phase = Phase::RolledBack;
                        if let Err(e) = set_mark(client, ns, &plan.pvc, Some(&mark)).await {
                            rec.notes.push(e);
                        }
                        rec.notes.push(format!(
                            "the old data was put back from the safety snapshot {s}"
                        ));
                        true
                    }
                    Err(e) => {
                        rec.notes.push(format!(
                            "the old data could NOT be put back from the safety snapshot {s}: {e}"
                        ));
                        false
                    }
                }
            }
            None => false,
        };
    } else if !rec.ok {
        rec.notes.push("the data was not touched".into());
    }
    bring_back(client, ns, &plan.pvc, &done.stopped, data_whole, &mut rec).await;
    if let Some(s) = &done.safety {
        rec.notes.push(format!(
            "the safety snapshot {s} (pinned) holds the data as it was before the restore; remove its label kentledge.io/pin to let prune delete it"
        ));
    }
    rec
}

/// Brings the stopped workloads back when the data is whole (old or restored) and clears the
/// PVC's mark once every one is back; otherwise leaves them stopped and the mark in place, and
/// says so.
async fn bring_back(
    client: &kube::Client,
    ns: &str,
    pvc: &str,
    stopped: &[(Kind, String, Recorded)],
    data_whole: bool,
    rec: &mut VolumeRestore,
) {
    if !data_whole {
        for (k, n, _) in stopped {
            rec.workloads.push(WorkloadRecord::left_stopped(*k, n));
        }
        rec.notes.push(format!(
            "the PVC's data may be half restored, so its workloads are LEFT STOPPED (recorded in their {} annotations); run `kentledge restore volume {pvc} --in-place --resume` once the cause is fixed",
            inplace::STOPPED_ANNOTATION
        ));
        return;
    }
    // No mover may still write the volume (one that outlived its run) when the apps start.
    if let Err(e) = wait_free(client, ns, pvc, Whose::Movers, &Interrupt::new()).await {
        for (k, n, _) in stopped {
            rec.workloads.push(WorkloadRecord::left_stopped(*k, n));
        }
        rec.notes.push(format!(
            "the workloads are LEFT STOPPED: {e}; run `kentledge restore volume {pvc} --in-place --resume` once it is gone"
        ));
        return;
    }
    start_all(client, ns, stopped, rec).await;
    if rec
        .workloads
        .iter()
        .all(|w| w.back || w.result.starts_with("deleted"))
    {
        if let Err(e) = set_mark(client, ns, pvc, None).await {
            rec.notes.push(e);
        }
    } else {
        rec.notes.push(format!(
            "not every workload could be brought back: the PVC keeps its {IN_PROGRESS_ANNOTATION} mark; run `kentledge restore volume {pvc} --in-place --resume`"
        ));
    }
}

type StepError = (String, Option<Restored>);

async fn steps(
    client: &kube::Client,
    settings: &Settings,
    plan: &InPlace,
    run_id: &str,
    interrupt: &Interrupt,
    done: &mut Done,
    mark: &mut Progress,
) -> Result<Option<Restored>, StepError> {
    let ns = settings.namespace.as_str();
    let fail = |s: String| (s, None);
    let phase =
        |p: Phase| tracing::info!(pvc = %plan.pvc, phase = ?p, "in-place restore: {}", p.name());
    // 1. Stop the workloads, each one's state recorded on it first.
    phase(Phase::Stopping);
    set_mark(client, ns, &plan.pvc, Some(mark))
        .await
        .map_err(fail)?;
    for w in &plan.workloads {
        if interrupt.is_set() {
            return Err(fail("interrupted".into()));
        }
        let rec = Recorded {
            run: run_id.to_owned(),
            pvc: plan.pvc.clone(),
            replicas: w.replicas,
            suspend: w.suspended,
        };
        tracing::info!(pvc = %plan.pvc, "{}", inplace::stop_step(w));
        let what = |e: String| fail(format!("could not stop {} {}: {e}", w.kind.name(), w.name));
        workloads::record(client, ns, w, &rec).await.map_err(what)?;
        // Recorded: from here on it is brought back whatever the next call does.
        if w.kind == Kind::Pod {
            done.deleted_pods.push(w.name.clone());
        } else {
            done.stopped.push((w.kind, w.name.clone(), rec));
        }
        workloads::halt(client, ns, w).await.map_err(what)?;
    }
    wait_free(client, ns, &plan.pvc, Whose::Apps, interrupt)
        .await
        .map_err(fail)?;
    // 2. The safety snapshot.
    phase(Phase::SafetySnapshot);
    mark.phase = Phase::SafetySnapshot;
    set_mark(client, ns, &plan.pvc, Some(mark))
        .await
        .map_err(fail)?;
    let taken =
        crate::flows::snapshot::take_one(client, settings, run_id, plan.safety.clone(), interrupt)
            .await;
    let name = match taken {
        Ok(n) => n,
        Err(e) => {
            // A pinned snapshot that is not a whole safety snapshot must not stay for ever.
            let api: Api<VolumeSnapshot> = Api::namespaced(client.clone(), ns);
            if let Ok(Some(_)) = api.get_opt(&plan.safety.name).await
                && let Err(d) = api
                    .delete(&plan.safety.name, &DeleteParams::default())
                    .await
            {
                done.notes.push(format!(
                    "the unfinished safety snapshot {} could not be deleted ({d}): delete it by hand",
                    plan.safety.name
                ));
            }
            return Err(fail(format!("the safety snapshot failed: {e}")));
        }
    };
    tracing::info!(pvc = %plan.pvc, snapshot = %name, "safety snapshot taken");
    done.safety = Some(name.clone());
    if interrupt.is_set() {
        return Err(fail("interrupted".into()));
    }
    // 3. Replace the data.
    phase(Phase::Replacing);
    mark.phase = Phase::Replacing;
    mark.safety_snapshot = Some(name);
    set_mark(client, ns, &plan.pvc, Some(mark))
        .await
        .map_err(fail)?;
    let (out, started) = replace(client, settings, plan, run_id, interrupt).await;
    done.data_started = started;
    let restored = out?;
    done.data_done = true;
    mark.phase = Phase::Replaced;
    if let Err(e) = set_mark(client, ns, &plan.pvc, Some(mark)).await {
        // The data is restored and verified; the mark is cleared (or kept) below.
        done.notes.push(e);
    }
    phase(Phase::Replaced);
    Ok(Some(restored))
}

/// Waits until no pod of `whose` mounts the PVC.
async fn wait_free(
    client: &kube::Client,
    ns: &str,
    pvc: &str,
    whose: Whose,
    interrupt: &Interrupt,
) -> Result<(), String> {
    let progress =
        crate::runtime::progress::Progress::start("waiting until no pod mounts the volume");
    let mut last: Result<Vec<String>, String> = Ok(Vec::new());
    let polled = poll(
        Duration::from_millis(500),
        Some(tokio::time::Instant::now() + WORKLOAD_TIMEOUT),
        interrupt.token(),
        async || {
            last = workloads::pods_mounting(client, ns, pvc, whose).await;
            match &last {
                Ok(p) if p.is_empty() => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        },
    )
    .await;
    drop(progress);
    match polled {
        Polled::Done(()) => Ok(()),
        Polled::Interrupted => Err("interrupted".into()),
        Polled::TimedOut => Err(match last {
            Ok(p) => format!(
                "pods still mount PVC {pvc} after {}: {}",
                crate::model::units::HumanDuration(WORKLOAD_TIMEOUT),
                p.join(", ")
            ),
            Err(e) => {
                format!("could not tell whether pods still mount PVC {pvc} (listing pods: {e})")
            }
        }),
    }
}

/// Runs the data step's pod (with its clone) and checks what it wrote; also whether the pod may
/// have written the volume (it started, or said so).
async fn run_data_pod(
    client: &kube::Client,
    settings: &Settings,
    replace: &inplace::Replace,
    job: Option<&crate::mover::job::Job>,
    repository: Option<&str>,
    interrupt: &Interrupt,
) -> (Result<Restored, StepError>, bool) {
    let ns = settings.namespace.as_str();
    let progress = crate::runtime::progress::Progress::start("replacing the data");
    let writing = std::sync::atomic::AtomicBool::new(false);
    let on_event = |e: &MoverEvent| {
        if matches!(e, MoverEvent::Writing) {
            writing.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        super::show_progress(e, &progress, "writing", "files", repository.unwrap_or("-"));
    };
    let out = match (job, repository) {
        (Some(job), Some(r)) => {
            let repo = super::repository(settings, r);
            mover::run_with_locks(
                client,
                &mover::Task {
                    namespace: ns,
                    config: &settings.config.metadata.name,
                    pod: &replace.pod,
                    clone: replace.clone.as_ref(),
                    access: &job.repository,
                    repository: repo,
                    mover: &settings.config.spec.mover,
                },
                interrupt,
                &on_event,
            )
            .await
        }
        _ => {
            mover::run(
                client,
                ns,
                replace
                    .clone
                    .as_ref()
                    .map(|c| (c, settings.config.spec.mover.clone.bind_timeout.0)),
                &replace.pod,
                interrupt,
                &on_event,
            )
            .await
        }
    };
    drop(progress);
    let said = writing.load(std::sync::atomic::Ordering::SeqCst);
    match out {
        // It may have written if it said so, ran to an exit, was stopped while running, or its
        // log was not read; a pod that never started wrote nothing.
        Ok(o) => {
            let started = said || o.exit_code.is_some() || o.interrupted || o.log_error.is_some();
            let result = if o.ok() {
                o.restored.ok_or_else(|| {
                    (
                        "the data step exited 0 without saying what it wrote".to_owned(),
                        None,
                    )
                })
            } else {
                Err((o.reason(), o.restored))
            };
            (result, started)
        }
        Err(e) => ((Err((e.to_string(), None))), said),
    }
}

async fn replace(
    client: &kube::Client,
    settings: &Settings,
    plan: &InPlace,
    run_id: &str,
    interrupt: &Interrupt,
) -> (Result<Restored, StepError>, bool) {
    let ns = settings.namespace.as_str();
    let (repository, in_use) = match &plan.source {
        Source::Archive { repository, .. } => (Some(repository.as_str()), None),
        Source::Snapshot { name, .. } => (None, Some(name.as_str())),
    };
    let mark = format!("restore/{run_id}");
    if let Some(s) = in_use {
        set_in_use(client, ns, s, Some(&mark)).await;
    }
    let out = run_data_pod(
        client,
        settings,
        &plan.replace,
        plan.job.as_ref(),
        repository,
        interrupt,
    )
    .await;
    if let Some(s) = in_use {
        set_in_use(client, ns, s, None).await;
    }
    out
}

/// Copies the safety snapshot back onto the PVC, once no other pod mounts it.
async fn put_back(
    client: &kube::Client,
    settings: &Settings,
    pvc: &str,
    snapshot: &str,
    run_id: &str,
    interrupt: &Interrupt,
) -> Result<(), String> {
    let ns = settings.namespace.as_str();
    // The writer that was cut (or a killed run's) must be gone before another one starts.
    wait_free(client, ns, pvc, Whose::All, interrupt).await?;
    tracing::warn!(
        pvc,
        snapshot,
        "putting the old data back from the safety snapshot"
    );
    let target = read_pvc(client, ns, pvc).await.map_err(|e| e.to_string())?;
    let ctx = Context {
        config: &settings.config,
        namespace: ns,
        run_id,
    };
    let replace =
        inplace::sync_from_snapshot(&ctx, ROLLBACK_INDEX, snapshot, pvc, target.as_ref(), None);
    run_data_pod(client, settings, &replace, None, None, interrupt)
        .await
        .0
        .map(|_| ())
        .map_err(|(e, _)| e)
}

/// Brings every stopped workload back and waits until it is ready.
async fn start_all(
    client: &kube::Client,
    ns: &str,
    stopped: &[(Kind, String, Recorded)],
    rec: &mut VolumeRestore,
) {
    let first = rec.workloads.len();
    for (kind, name, r) in stopped {
        let mut w = WorkloadRecord {
            kind: *kind,
            name: name.clone(),
            replicas: r.replicas,
            back: false,
            ready: false,
            result: String::new(),
        };
        match workloads::start(client, ns, *kind, name, r).await {
            Ok(()) => w.back = true,
            Err(e) => w.result = format!("could NOT be brought back: {e}"),
        }
        rec.workloads.push(w);
    }
    // Ready: every one, within one timeout.
    let deadline = tokio::time::Instant::now() + WORKLOAD_TIMEOUT;
    let progress =
        crate::runtime::progress::Progress::start("waiting for the workloads to be ready");
    for w in rec.workloads[first..].iter_mut().filter(|w| w.back) {
        let calm = Interrupt::new();
        let polled = poll(
            Duration::from_millis(500),
            Some(deadline),
            calm.token(),
            async || match workloads::ready(client, ns, w.kind, &w.name).await {
                Ok(true) => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            },
        )
        .await;
        if polled == Polled::Done(()) {
            w.ready = true;
            w.result = "ready".into();
        } else {
            w.result = format!(
                "brought back, but not ready within {}",
                crate::model::units::HumanDuration(WORKLOAD_TIMEOUT)
            );
        }
    }
    drop(progress);
}

/// `--resume`: finishes or rolls back what a killed run left, from its marks as read under the
/// locks (a run still alive holds them, so its marks are never taken for a dead run's).
async fn resume(
    settings: &Settings,
    opts: &VolumeOptions,
    client: &kube::Client,
    interrupt: &Interrupt,
    results: &mut output::Results,
) -> Result<u8, Error> {
    let ns = settings.namespace.as_str();
    let run_id = crate::model::labels::new_run_id();
    let locks = if settings.dry_run {
        None
    } else {
        Some(Locks::take(client, settings, &run_id, opts.lock_timeout, interrupt).await?)
    };
    let read = async {
        let (_, mark) = read_mark(client, ns, &opts.pvc).await?;
        let seen: Seen = workloads::read(client, ns).await?;
        let stopped = workloads::stopped(&seen, &opts.pvc).map_err(|p| Error::Plan { problems: vec![p] })?;
        if mark.is_none() && stopped.is_empty() {
            return Err(Error::Plan {
                problems: vec![format!(
                    "--resume: no unfinished in-place restore of PVC {} (no {IN_PROGRESS_ANNOTATION} mark, no workload stopped by one)",
                    opts.pvc
                )],
            });
        }
        Ok((mark, stopped))
    }
    .await;
    let ((mark, stopped), locks) = super::or_release(locks, read).await?;
    let decision = mark.as_ref().map(inplace::resume);
    let Some(locks) = locks else {
        let what = match &decision {
            Some(Resume::RollBack { snapshot }) => {
                format!("put the old data back from {snapshot}, then ")
            }
            Some(Resume::Stuck) => "nothing can be put back (no safety snapshot); ".into(),
            _ => String::new(),
        };
        let names: Vec<String> = stopped
            .iter()
            .map(|(k, n, r)| {
                format!(
                    "{} {n} (to {})",
                    k.name(),
                    r.replicas
                        .map(|x| format!("{x} replicas"))
                        .unwrap_or_else(|| "its suspend state".into())
                )
            })
            .collect();
        results.emit(
            || {
                format!(
                    "resume the in-place restore of PVC {}: {what}bring back {}\n",
                    opts.pvc,
                    if names.is_empty() {
                        "nothing".into()
                    } else {
                        names.join(", ")
                    }
                )
            },
            || json!({"dryRun": true, "pvc": opts.pvc, "mark": mark, "stopped": names}),
        )?;
        return Ok(exit::SUCCESS);
    };
    let from = mark
        .as_ref()
        .map(|m| m.from.clone())
        .unwrap_or_else(|| "(no mark on the PVC)".into());
    let mut rec = record(&opts.pvc, None, &from, Verdict::Ok, "ok".into());
    rec.resumed = true;
    rec.safety_snapshot = mark.as_ref().and_then(|m| m.safety_snapshot.clone());
    // The killed run's movers and clones must be gone before anything else writes the volume.
    if let Err(e) = super::sweep(client, settings, &run_id).await {
        fail(
            &mut rec,
            format!("{e}; nothing was changed, run --resume again"),
        );
        return super::finish(client, settings, locks, rec, interrupt, results).await;
    }
    let calm = Interrupt::new();
    let mut whole = true;
    match decision {
        Some(Resume::RollBack { snapshot }) => {
            let mut m = mark.clone().expect("a decision comes from a mark");
            m.phase = Phase::RollingBack;
            if let Err(e) = set_mark(client, ns, &opts.pvc, Some(&m)).await {
                rec.notes.push(e);
            }
            match put_back(client, settings, &opts.pvc, &snapshot, &run_id, &calm).await {
                Ok(()) => {
                    m.phase = Phase::RolledBack;
                    if let Err(e) = set_mark(client, ns, &opts.pvc, Some(&m)).await {
                        rec.notes.push(e);
                    }
                    rec.result = format!(
                        "rolled back: run {} was stopped while it wrote the data; the data before the restore was put back from {snapshot}",
                        m.run
                    );
                }
                Err(e) => {
                    whole = false;
                    fail(
                        &mut rec,
                        format!("the old data could not be put back from {snapshot}: {e}"),
                    );
                }
            }
        }
        Some(Resume::Stuck) => {
            whole = false;
            fail(&mut rec, "the run was stopped while it wrote the data, before a safety snapshot was recorded: the data may be half restored".into());
        }
        Some(Resume::Restart) => {
            let m = mark.as_ref().expect("a decision comes from a mark");
            rec.result = match m.phase {
                Phase::Replaced => format!(
                    "finished: run {} had restored and verified the data; it is kept",
                    m.run
                ),
                Phase::RolledBack => format!("finished: run {} had put the old data back", m.run),
                _ => format!(
                    "finished: run {} was stopped before the data was touched; the data is the old one",
                    m.run
                ),
            };
        }
        None => {
            rec.result = "finished: no restore mark on the PVC, only workloads left stopped".into()
        }
    }
    bring_back(client, ns, &opts.pvc, &stopped, whole, &mut rec).await;
    super::finish(client, settings, locks, rec, interrupt, results).await
}
