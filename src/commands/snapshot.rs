//! `kentledge snapshot`: the imperative shell around [`crate::snapshotplan`]. Observe (one list
//! per kind), plan, then (unless `--dry-run`) take the run lock, run pre-hooks, create every
//! snapshot at once, wait for every cut, run post-hooks (always, for every pre-hook that
//! started: on success, failure, timeout and SIGINT/SIGTERM), delete snapshots that were not cut
//! before the application was released (they would not be consistent), wait for readiness,
//! annotate, release the lock and report.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde::Serialize;
use serde_json::json;

use crate::cli::{GlobalArgs, SnapshotArgs};
use crate::config::OnError;
use crate::error::{Error, exit};
use crate::hookplan::{HookAction, PlannedHook};
use crate::k8s::exec::{self, Exit, Outcome, Session};
use crate::k8s::lease;
use crate::k8s::snapshots::{
    VolumeSnapshot, VolumeSnapshotSource, VolumeSnapshotSpec, cut_time, error_message, is_ready,
};
use crate::labels::{HOOKS_ANNOTATION, RUN};
use crate::output;
use crate::settings::{self, Settings};
use crate::signals::Interrupt;
use crate::snapshotplan::{self, Classes, Plan};

/// How often waits poll the API.
const POLL: Duration = Duration::from_millis(200);

/// One hook command's result.
#[derive(Clone, Debug, Serialize)]
pub struct HookRecord {
    /// The hook.
    pub hook: String,
    /// `pre` or `post`.
    pub phase: &'static str,
    /// The pod.
    pub pod: String,
    /// The container.
    pub container: String,
    /// How it ended.
    pub result: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// How long it took, in seconds.
    pub seconds: f64,
}

/// One snapshot's result.
#[derive(Clone, Debug, Serialize)]
pub struct SnapshotRecord {
    /// The PVC.
    pub pvc: String,
    /// The VolumeSnapshot.
    pub name: String,
    /// The cut.
    pub cut: Option<String>,
    /// Ready to use.
    pub ready: bool,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// Deleted because it was not cut while the application was frozen.
    pub deleted: bool,
}

/// The whole run's result.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// The run id.
    pub run: String,
    /// The namespace.
    pub namespace: String,
    /// The config.
    pub config: String,
    /// Hooks, in the order they ran.
    pub hooks: Vec<HookRecord>,
    /// Snapshots.
    pub snapshots: Vec<SnapshotRecord>,
    /// End of the last pre-hook to start of the first post-hook, in seconds.
    pub freeze_window_seconds: Option<f64>,
    /// Why the run failed, if it did.
    pub failure: Option<String>,
    /// The signal exit code, if interrupted.
    pub interrupted: Option<u8>,
}

impl Report {
    /// The exit code: interrupted, failed, partial or success.
    pub fn code(&self) -> u8 {
        if let Some(c) = self.interrupted {
            return c;
        }
        let ready = self.snapshots.iter().filter(|s| s.ready).count();
        let bad = self.snapshots.iter().filter(|s| !s.ready).count();
        match (self.failure.is_some() || bad > 0, ready > 0) {
            (false, _) => exit::SUCCESS,
            (true, true) if self.failure.is_none() => exit::PARTIAL,
            _ => exit::FAILURE,
        }
    }

    /// The summary table for people.
    pub fn render(&self) -> String {
        let mut out = format!(
            "snapshot run {} of config {} in namespace {}\n",
            self.run, self.config, self.namespace
        );
        if !self.snapshots.is_empty() {
            out.push_str(&format!(
                "  {:<24} {:<40} {:<22} {}\n",
                "PVC", "SNAPSHOT", "CUT", "STATE"
            ));
            for s in &self.snapshots {
                let state = if s.ready {
                    "ready".to_owned()
                } else if s.deleted {
                    format!("deleted ({})", s.error.as_deref().unwrap_or("not cut"))
                } else {
                    format!("not ready: {}", s.error.as_deref().unwrap_or("timed out"))
                };
                out.push_str(&format!(
                    "  {:<24} {:<40} {:<22} {state}\n",
                    s.pvc,
                    s.name,
                    s.cut.as_deref().unwrap_or("-")
                ));
            }
        }
        for h in &self.hooks {
            out.push_str(&format!(
                "  hook {} {} in {}/{}: {} ({:.1}s)\n",
                h.hook, h.phase, h.pod, h.container, h.result, h.seconds
            ));
        }
        if let Some(f) = self.freeze_window_seconds {
            out.push_str(&format!("  freeze window: {f:.2}s\n"));
        }
        if let Some(c) = self.interrupted {
            out.push_str(&format!(
                "  interrupted (exit {c}); post-hooks and cleanup ran\n"
            ));
        }
        if let Some(f) = &self.failure {
            out.push_str(&format!("  failed: {f}\n"));
        }
        out
    }
}

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
    let default_sc = scs.iter().find(|c| {
        c.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("storageclass.kubernetes.io/is-default-class"))
            .is_some_and(|v| v == "true")
    });
    let mut pvc_driver = BTreeMap::new();
    for p in pvcs {
        let named = p
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref());
        let sc = match named {
            Some(n) => scs.iter().find(|c| c.metadata.name.as_deref() == Some(n)),
            None => default_sc,
        };
        if let (Some(name), Some(sc)) = (p.metadata.name.clone(), sc) {
            pvc_driver.insert(name, sc.provisioner.clone());
        }
    }
    let mut default_for_driver = BTreeMap::new();
    for c in &vscs {
        let is_default = c
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("snapshot.storage.kubernetes.io/is-default-class"))
            .is_some_and(|v| v == "true");
        if let (true, Some(driver), Some(name)) = (
            is_default,
            c.data.get("driver").and_then(|d| d.as_str()),
            c.metadata.name.clone(),
        ) {
            default_for_driver.insert(driver.to_owned(), name);
        }
    }
    Ok(Classes {
        pvc_driver,
        default_for_driver,
        readable: true,
    })
}

/// Runs `kentledge snapshot`.
pub fn run(global: &GlobalArgs, args: &SnapshotArgs) -> Result<u8, Error> {
    let settings = settings::load(global)?;
    let mut results = output::Results::new(global.output);
    let code = super::runtime()?.block_on(async {
        let (client, interrupt) = super::connect(global).await?;
        run_async(global, &settings, args, &client, &interrupt, &mut results).await
    });
    results.finish()?;
    code
}

/// The snapshot run on an existing runtime (also `backup --snapshot-now`).
pub(crate) async fn run_async(
    global: &GlobalArgs,
    settings: &Settings,
    args: &SnapshotArgs,
    client: &kube::Client,
    interrupt: &Interrupt,
    results: &mut output::Results,
) -> Result<u8, Error> {
    let ns = settings.namespace.as_str();
    let seen = crate::k8s::observe::namespace(
        client,
        ns,
        crate::k8s::observe::Also {
            pods: true,
            snapshots: None,
        },
    )
    .await?;
    let (pvcs, deployments, statefulsets, pods) =
        (seen.pvcs, seen.deployments, seen.statefulsets, seen.pods);
    let classes = read_classes(client, &pvcs).await?;
    let now = Timestamp::now();
    let run_id = crate::labels::run_id(now, crate::labels::random_u16());
    let cluster = snapshotplan::Cluster {
        pvcs: &pvcs,
        deployments: &deployments,
        statefulsets: &statefulsets,
        pods: &pods,
    };
    let plan = snapshotplan::plan(
        &settings.config,
        ns,
        &run_id,
        now,
        cluster,
        &classes,
        &args.targets,
    )
    .map_err(|problems| Error::Plan { problems })?;
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    for s in &plan.skipped {
        tracing::warn!(pvc = %s.pvc, "skipped: {}", s.reason);
    }
    if global.dry_run {
        results.emit(
            || snapshotplan::render(&plan),
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
    report_leftovers(client, ns, &settings.config.metadata.name, &run_id).await;
    let progress = crate::progress::Progress::start("waiting for the run lock");
    let held = lease::take(
        client,
        ns,
        &plan.config,
        crate::runlock::Lock::Run,
        &run_id,
        args.lock.lock_timeout.0,
        interrupt,
    )
    .await?;
    tracing::info!(run = %run_id, snapshots = plan.snapshots.len(), hooks = plan.hooks.len(), "run lock taken");
    let report = execute(client, settings, &plan, interrupt, &progress).await;
    progress.phase("releasing the run lock");
    let lost = held.release().await;
    drop(progress);
    if report.code() != exit::SUCCESS {
        for s in report.snapshots.iter().filter(|s| !s.ready) {
            crate::k8s::events::record(
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
    results.emit(
        || report.render(),
        || serde_json::to_value(&report).unwrap_or_default(),
    )?;
    Ok(lease::exit_code(report.code(), lost.as_deref()))
}

/// Reports snapshots of earlier runs of this config that never became ready.
async fn report_leftovers(client: &kube::Client, ns: &str, config: &str, run_id: &str) {
    let api: Api<VolumeSnapshot> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&crate::labels::config_selector(config));
    let Ok(list) = api.list(&lp).await else {
        return;
    };
    for s in list.items {
        let run = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(RUN))
            .cloned()
            .unwrap_or_default();
        if run != run_id && !is_ready(Some(&s)) {
            tracing::warn!(snapshot = s.metadata.name.as_deref().unwrap_or(""), %run, error = error_message(Some(&s)).unwrap_or_default(),
                "left by an earlier run and never ready; prune deletes it after spec.snapshots.notReadyGrace");
        }
    }
}

/// [`read_snapshot`] for each of `which`.
async fn read_snapshots(
    snaps: &Api<VolumeSnapshot>,
    plan: &Plan,
    which: &[usize],
    state: &mut BTreeMap<usize, Option<VolumeSnapshot>>,
    unread: &mut BTreeMap<usize, String>,
) {
    for i in which {
        read_snapshot(snaps, &plan.snapshots[*i].name, *i, state, unread).await;
    }
}

/// Reads snapshot `name` into `state[i]`; a failed read is remembered in `unread[i]` (and the
/// state kept as last seen). Returns whether the read worked.
async fn read_snapshot(
    snaps: &Api<VolumeSnapshot>,
    name: &str,
    i: usize,
    state: &mut BTreeMap<usize, Option<VolumeSnapshot>>,
    unread: &mut BTreeMap<usize, String>,
) -> bool {
    match snaps.get(name).await {
        Ok(vs) => {
            state.insert(i, Some(vs));
            unread.remove(&i);
            true
        }
        Err(e) => {
            tracing::warn!(snapshot = %name, error = %e, "could not read the VolumeSnapshot");
            unread.insert(i, e.to_string());
            false
        }
    }
}

fn hook_record(h: &PlannedHook, phase: &'static str, o: &Outcome, took: Duration) -> HookRecord {
    let level_ok = o.exit.ok();
    for (stream, text) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
        if !text.trim().is_empty() {
            tracing::info!(hook = %h.name, phase, pod = %h.pod, stream, "{}", text.trim_end());
        }
    }
    if level_ok {
        tracing::info!(hook = %h.name, phase, pod = %h.pod, container = %h.container, "hook ok");
    } else {
        tracing::error!(hook = %h.name, phase, pod = %h.pod, container = %h.container, result = %o.exit, "hook failed");
    }
    HookRecord {
        hook: h.name.clone(),
        phase,
        pod: h.pod.clone(),
        container: h.container.clone(),
        result: o.exit.to_string(),
        ok: level_ok,
        seconds: took.as_secs_f64(),
    }
}

/// Runs a future unless the run is interrupted first.
async fn or_interrupted<T>(
    interrupt: &Interrupt,
    f: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        v = f => Some(v),
        _ = interrupt.token().cancelled() => None,
    }
}

async fn execute(
    client: &kube::Client,
    settings: &Settings,
    plan: &Plan,
    interrupt: &Interrupt,
    progress: &crate::progress::Progress,
) -> Report {
    let ns = plan.namespace.as_str();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let snaps: Api<VolumeSnapshot> = Api::namespaced(client.clone(), ns);
    let cfg = &settings.config.spec.snapshots;
    let mut report = Report {
        run: plan.run_id.clone(),
        namespace: ns.to_owned(),
        config: plan.config.clone(),
        ..Report::default()
    };

    // Pre-hooks, in order. A hook counts as started before its command runs, so its post runs.
    let mut started: Vec<(&PlannedHook, Option<Session>)> = Vec::new();
    for h in &plan.hooks {
        if interrupt.is_set() {
            break;
        }
        let t = Instant::now();
        progress.phase(format!("pre-hook {} in {}/{}", h.name, h.pod, h.container));
        match &h.action {
            HookAction::Exec { pre, .. } => {
                started.push((h, None));
                let Some(argv) = pre else { continue };
                let o = or_interrupted(
                    interrupt,
                    exec::run(&pods, &h.pod, &h.container, argv, h.timeout.0),
                )
                .await
                .unwrap_or(Outcome {
                    exit: Exit::Failed("interrupted".into()),
                    stdout: String::new(),
                    stderr: String::new(),
                });
                let rec = hook_record(h, "pre", &o, t.elapsed());
                let failed = !rec.ok;
                report.hooks.push(rec);
                if failed && h.on_error == OnError::Fail {
                    report.failure = Some(format!(
                        "pre-hook {} in {} failed: {}",
                        h.name, h.pod, o.exit
                    ));
                    break;
                }
            }
            HookAction::Session {
                command,
                pre,
                ready_marker,
                ..
            } => {
                let started_session = or_interrupted(
                    interrupt,
                    exec::start_session(
                        &pods,
                        &h.pod,
                        &h.container,
                        command,
                        pre,
                        ready_marker,
                        h.timeout.0,
                    ),
                )
                .await;
                match started_session {
                    Some(Ok(session)) => {
                        report.hooks.push(hook_record(
                            h,
                            "pre",
                            &Outcome {
                                exit: Exit::Code(0),
                                stdout: String::new(),
                                stderr: String::new(),
                            },
                            t.elapsed(),
                        ));
                        started.push((h, Some(session)));
                    }
                    Some(Err(o)) => {
                        let rec = hook_record(h, "pre", &o, t.elapsed());
                        report.hooks.push(rec);
                        if h.on_error == OnError::Fail {
                            report.failure = Some(format!(
                                "pre-hook {} in {} failed: {}",
                                h.name, h.pod, o.exit
                            ));
                            break;
                        }
                    }
                    // Interrupted while starting: dropping the exec stream ends the session.
                    None => break,
                }
            }
        }
    }
    let frozen_at = Instant::now();

    // Snapshots, all at once, then the cut.
    let mut created: Vec<usize> = Vec::new();
    if report.failure.is_none() && !interrupt.is_set() {
        let creates = plan.snapshots.iter().map(|p| {
            let vs = VolumeSnapshot {
                metadata: ObjectMeta {
                    name: Some(p.name.clone()),
                    labels: Some(p.labels.clone()),
                    annotations: Some(p.annotations.clone()),
                    ..ObjectMeta::default()
                },
                spec: VolumeSnapshotSpec {
                    source: VolumeSnapshotSource {
                        persistent_volume_claim_name: Some(p.pvc.clone()),
                        ..Default::default()
                    },
                    volume_snapshot_class_name: Some(p.class.clone()),
                },
                status: None,
            };
            let snaps = snaps.clone();
            async move { snaps.create(&PostParams::default(), &vs).await }
        });
        for (i, r) in join_all(creates).await.into_iter().enumerate() {
            let p = &plan.snapshots[i];
            match r {
                Ok(_) => {
                    tracing::info!(snapshot = %p.name, pvc = %p.pvc, "VolumeSnapshot created");
                    created.push(i);
                }
                Err(e) => {
                    tracing::error!(snapshot = %p.name, error = %e, "could not create the VolumeSnapshot");
                    report.snapshots.push(SnapshotRecord {
                        pvc: p.pvc.clone(),
                        name: p.name.clone(),
                        cut: None,
                        ready: false,
                        error: Some(format!("create failed: {e}")),
                        deleted: false,
                    });
                }
            }
        }
    }
    let mut state: BTreeMap<usize, Option<VolumeSnapshot>> =
        created.iter().map(|i| (*i, None)).collect();
    // The last failed read of each snapshot: what kentledge could not see is said, not guessed.
    let mut unread: BTreeMap<usize, String> = BTreeMap::new();
    let cut_deadline = Instant::now() + cfg.cut_timeout.0;
    progress.phase(format!(
        "waiting for the cut of {} snapshot(s)",
        created.len()
    ));
    while !created.is_empty() && !interrupt.is_set() {
        read_snapshots(&snaps, plan, &created, &mut state, &mut unread).await;
        let all_settled = state
            .values()
            .all(|v| cut_time(v.as_ref()).is_some() || error_message(v.as_ref()).is_some());
        if all_settled || Instant::now() >= cut_deadline {
            break;
        }
        let _ = or_interrupted(interrupt, tokio::time::sleep(POLL)).await;
    }

    // One last look before the application is released: anything cut by now was cut while
    // frozen (the loop above may have stopped between polls, e.g. on a signal).
    read_snapshots(&snaps, plan, &created, &mut state, &mut unread).await;

    // Post-hooks: always, in reverse, for every started pre-hook.
    if !started.is_empty() {
        report.freeze_window_seconds = Some(frozen_at.elapsed().as_secs_f64());
    }
    while let Some((h, session)) = started.pop() {
        let t = Instant::now();
        progress.phase(format!("post-hook {} in {}/{}", h.name, h.pod, h.container));
        let o = match (&h.action, session) {
            (HookAction::Session { post, .. }, Some(s)) => {
                Some(s.finish(post.as_deref(), h.timeout.0).await)
            }
            (
                HookAction::Exec {
                    post: Some(argv), ..
                },
                _,
            ) => Some(exec::run(&pods, &h.pod, &h.container, argv, h.timeout.0).await),
            _ => None,
        };
        if let Some(o) = o {
            let rec = hook_record(h, "post", &o, t.elapsed());
            if !rec.ok && h.on_error == OnError::Fail && report.failure.is_none() {
                report.failure = Some(format!(
                    "post-hook {} in {} failed: {}",
                    h.name, h.pod, o.exit
                ));
            }
            report.hooks.push(rec);
        }
    }

    // Snapshots not cut while frozen are not consistent: delete them.
    let mut waiting: Vec<usize> = Vec::new();
    for i in &created {
        let p = &plan.snapshots[*i];
        let vs = state.get(i).cloned().flatten();
        let err = error_message(vs.as_ref());
        if cut_time(vs.as_ref()).is_some() && err.is_none() {
            waiting.push(*i);
            continue;
        }
        let mut why = err.unwrap_or_else(|| match unread.get(i) {
            Some(e) => format!(
                "its cut while the application was frozen could not be confirmed: could not read the VolumeSnapshot ({e})"
            ),
            None if interrupt.is_set() => "interrupted before the cut".into(),
            None => format!("no cut within cutTimeout {}", cfg.cut_timeout),
        });
        let deleted = match snaps.delete(&p.name, &DeleteParams::default()).await {
            Ok(_) => true,
            Err(kube::Error::Api(s)) if s.code == 404 => true,
            Err(e) => {
                why.push_str(&format!(
                    "; it could NOT be deleted ({e}): it is not consistent, delete it by hand"
                ));
                false
            }
        };
        tracing::error!(snapshot = %p.name, deleted, "{why}");
        if report.failure.is_none() && !interrupt.is_set() {
            report.failure = Some(format!("snapshot {} of {}: {why}", p.name, p.pvc));
        }
        report.snapshots.push(SnapshotRecord {
            pvc: p.pvc.clone(),
            name: p.name.clone(),
            cut: None,
            ready: false,
            error: Some(why),
            deleted,
        });
    }

    // Readiness (skipped when interrupted: cut snapshots are consistent and become ready alone).
    let ready_deadline = Instant::now() + cfg.ready_timeout.0;
    progress.phase(format!(
        "waiting for {} snapshot(s) to be ready",
        waiting.len()
    ));
    while !waiting.is_empty() && !interrupt.is_set() && Instant::now() < ready_deadline {
        let mut pending = false;
        for i in &waiting {
            // A snapshot that could not be read is still pending: it is not known to be settled.
            let read = read_snapshot(
                &snaps,
                &plan.snapshots[*i].name,
                *i,
                &mut state,
                &mut unread,
            )
            .await;
            let vs = state.get(i).cloned().flatten();
            pending |= !read || (!is_ready(vs.as_ref()) && error_message(vs.as_ref()).is_none());
        }
        if !pending {
            break;
        }
        let _ = or_interrupted(interrupt, tokio::time::sleep(POLL)).await;
    }
    let hooks_note = serde_json::to_string(
        &report
            .hooks
            .iter()
            .map(|h| json!({"hook": h.hook, "phase": h.phase, "pod": h.pod, "result": h.result}))
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    for i in waiting {
        let p = &plan.snapshots[i];
        let vs = state.get(&i).cloned().flatten();
        let ready = is_ready(vs.as_ref());
        let error = error_message(vs.as_ref()).or_else(|| {
            (!ready).then(|| match unread.get(&i) {
                Some(e) => format!("readiness unknown: could not read the VolumeSnapshot ({e})"),
                None if interrupt.is_set() => "interrupted before ready".into(),
                None => format!("not ready within readyTimeout {}", cfg.ready_timeout),
            })
        });
        if !report.hooks.is_empty() {
            let patch = json!({"metadata": {"annotations": {HOOKS_ANNOTATION: hooks_note}}});
            if let Err(e) = snaps
                .patch(&p.name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                tracing::warn!(snapshot = %p.name, error = %e, "could not annotate the snapshot with its hooks");
            }
        }
        report.snapshots.push(SnapshotRecord {
            pvc: p.pvc.clone(),
            name: p.name.clone(),
            cut: cut_time(vs.as_ref()).map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            ready,
            error,
            deleted: false,
        });
    }
    report.snapshots.sort_by(|a, b| a.pvc.cmp(&b.pvc));
    report.interrupted = interrupt.code();
    report
}
