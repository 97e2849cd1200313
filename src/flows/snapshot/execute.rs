//! Carrying a snapshot plan out: hooks, creation, waits for cut and readiness, post-hooks on
//! every path, deletion of inconsistent snapshots, annotations.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{HookRecord, POLL, Report, SnapshotRecord, read_snapshot, read_snapshots};
use crate::config::OnError;
use crate::kube::exec::{self, Exit, Outcome, Session};
use crate::model::labels::HOOKS_ANNOTATION;
use crate::model::snapshots::{
    VolumeSnapshot, VolumeSnapshotSource, VolumeSnapshotSpec, cut_settled, cut_time, error_message,
    is_ready, ready_settled,
};
use crate::plan::hooks::{HookAction, PlannedHook};
use crate::plan::snapshot::Plan;
use crate::runtime::poll::poll;
use crate::runtime::signals::Interrupt;
use crate::settings::Settings;

pub(super) fn hook_record(
    h: &PlannedHook,
    phase: &'static str,
    o: &Outcome,
    took: Duration,
) -> HookRecord {
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
pub(super) async fn or_interrupted<T>(
    interrupt: &Interrupt,
    f: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        v = f => Some(v),
        _ = interrupt.token().cancelled() => None,
    }
}

pub(super) async fn execute(
    client: &kube::Client,
    settings: &Settings,
    plan: &Plan,
    interrupt: &Interrupt,
    progress: &crate::runtime::progress::Progress,
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
    let cut_deadline = tokio::time::Instant::now() + cfg.cut_timeout.0;
    progress.phase(format!(
        "waiting for the cut of {} snapshot(s)",
        created.len()
    ));
    if !created.is_empty() {
        // How the wait ended is not needed: each snapshot's state and unread error say it below.
        let _ = poll(POLL, Some(cut_deadline), interrupt.token(), async || {
            read_snapshots(&snaps, plan, &created, &mut state, &mut unread).await;
            if state.values().all(|v| cut_settled(v.as_ref())) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .await;
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
    let ready_deadline = tokio::time::Instant::now() + cfg.ready_timeout.0;
    progress.phase(format!(
        "waiting for {} snapshot(s) to be ready",
        waiting.len()
    ));
    if !waiting.is_empty() {
        // As for the cut, each snapshot's state and unread error say how the wait ended.
        let _ = poll(POLL, Some(ready_deadline), interrupt.token(), async || {
            // No read starts once readyTimeout has passed (unlike the cut, which is read once
            // more after a sleep that ends past cutTimeout).
            if tokio::time::Instant::now() >= ready_deadline {
                return ControlFlow::Break(());
            }
            let mut pending = false;
            for i in &waiting {
                // A snapshot that could not be read is still pending: it is not known to be
                // settled.
                let read = read_snapshot(
                    &snaps,
                    &plan.snapshots[*i].name,
                    *i,
                    &mut state,
                    &mut unread,
                )
                .await;
                pending |= !read || !ready_settled(state.get(i).and_then(Option::as_ref));
            }
            if pending {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        })
        .await;
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
