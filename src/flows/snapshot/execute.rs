//! Carrying a snapshot plan out: hooks, creation, waits for cut and readiness, post-hooks on
//! every path, deletion of inconsistent snapshots, annotations.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use serde_json::json;

use super::seen::{Seen, Watch};
use super::{HookRecord, Report, SnapshotRecord};
use crate::config::OnError;
use crate::kube::exec::{self, Exit, Outcome, Session};
use crate::model::labels::{HOOKS_ANNOTATION, RUN};
use crate::model::snapshots::{
    VolumeSnapshot, VolumeSnapshotSource, VolumeSnapshotSpec, cut_settled, cut_time, error_message,
    is_ready, ready_settled,
};
use crate::plan::hooks::{HookAction, PlannedHook};
use crate::plan::lock::{CUT_WHILE_FROZEN, frozen_note};
use crate::plan::snapshot::Plan;
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
    held: Option<&crate::kube::lease::Held>,
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

    // The run's snapshots are watched from before the pre-hooks: the waits below cost no
    // request per snapshot and end at the event that settles the last one.
    progress.phase("watching the run's VolumeSnapshots");
    let selector = format!("{RUN}={}", plan.run_id);
    let mut watch = Watch::start(&snaps, &selector, interrupt.token()).await;

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

    // Snapshots, all at once, then the cut. Each carries the pre-hooks that froze its
    // application from the moment it exists.
    let mut created: Vec<usize> = Vec::new();
    if report.failure.is_none() && !interrupt.is_set() {
        let hooks_note = (!report.hooks.is_empty()).then(|| hooks_note(&report.hooks));
        let creates = plan.snapshots.iter().map(|p| {
            let mut annotations = p.annotations.clone();
            if let Some(note) = &hooks_note {
                annotations.insert(HOOKS_ANNOTATION.to_owned(), note.clone());
            }
            let vs = VolumeSnapshot {
                metadata: ObjectMeta {
                    name: Some(p.name.clone()),
                    labels: Some(p.labels.clone()),
                    annotations: Some(annotations),
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
    let names = |which: &[usize]| -> Vec<String> {
        which
            .iter()
            .map(|i| plan.snapshots[*i].name.clone())
            .collect()
    };
    let cut_deadline = tokio::time::Instant::now() + cfg.cut_timeout.0;
    progress.phase(format!(
        "waiting for the cut of {} snapshot(s)",
        created.len()
    ));
    if !created.is_empty() {
        let names = names(&created);
        let all_cut = |seen: &Seen| names.iter().all(|n| seen.settled(n, cut_settled));
        watch
            .wait_until(cut_deadline, interrupt.token(), &all_cut)
            .await;
        // One last look before the application is released, unless every cut is seen: a cut
        // made by now was made while frozen (the wait may have ended on a signal or timeout).
        if !all_cut(&watch.seen) {
            watch.look().await;
        }
    }
    let mut state: BTreeMap<usize, Option<VolumeSnapshot>> = BTreeMap::new();
    let mut unread: BTreeMap<usize, String> = BTreeMap::new();
    record(&watch.seen, plan, &created, &mut state, &mut unread);
    // A held session that ended by itself (its exec stream cut: the API server or the kubelet
    // went away) released the application then: a cut first seen after that is not trusted.
    let lost: Option<(String, std::time::Instant)> = started
        .iter()
        .filter_map(|(h, s)| Some((h.name.clone(), s.as_ref()?.ended_at()?)))
        .min_by_key(|(_, at)| *at);
    let cut_while_held = |i: &usize| match &lost {
        None => true,
        Some((_, at)) => watch
            .seen
            .cut_seen
            .get(&plan.snapshots[*i].name)
            .is_some_and(|seen| seen <= at),
    };
    if let Some((hook, _)) = &lost {
        tracing::error!(%hook, "the held session ended before it was finished (its exec stream was cut, as when the API server or the kubelet restarts): the application was released then");
    }

    // As the application is released, the run lock says which snapshots were cut while it was
    // frozen: if this run is killed from here on, the run that takes the lock over keeps those
    // and deletes the others (which may be cut after the freeze went with this process).
    let confirmed: Vec<String> = created
        .iter()
        .filter(|i| {
            let vs = state.get(*i).cloned().flatten();
            cut_time(vs.as_ref()).is_some()
                && error_message(vs.as_ref()).is_none()
                && cut_while_held(i)
        })
        .map(|i| plan.snapshots[*i].name.clone())
        .collect();
    // Whenever the snapshots carry pre-hooks (the annotation is written from the same records).
    let froze = !report.hooks.is_empty();
    let noting = async {
        let Some(held) = held.filter(|_| froze) else {
            return; // nothing was frozen
        };
        match held.note(CUT_WHILE_FROZEN, &frozen_note(&confirmed)).await {
            Ok(()) => tracing::info!(
                snapshots = confirmed.len(),
                "noted on the run lock which snapshots were cut while frozen"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not note on the run lock which snapshots were cut while frozen: were this run killed now, the next would delete them")
            }
        }
    };

    // Post-hooks: always, in reverse, for every started pre-hook.
    if !started.is_empty() {
        report.freeze_window_seconds = Some(frozen_at.elapsed().as_secs_f64());
    }
    let posts = async {
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
    };
    tokio::join!(noting, posts);

    // Snapshots not cut while frozen are not consistent: delete them.
    let mut waiting: Vec<usize> = Vec::new();
    for i in &created {
        let p = &plan.snapshots[*i];
        let vs = state.get(i).cloned().flatten();
        let err = error_message(vs.as_ref());
        let cut = cut_time(vs.as_ref()).is_some();
        if cut && err.is_none() && cut_while_held(i) {
            waiting.push(*i);
            continue;
        }
        let mut why = err.unwrap_or_else(|| match unread.get(i) {
            _ if cut => format!(
                "not cut while the application was frozen: the held session of hook {} ended first (its exec stream was cut, as when the API server or the kubelet restarts)",
                lost.as_ref().map_or("?", |(h, _)| h.as_str())
            ),
            Some(e) => {
                format!("its cut while the application was frozen could not be confirmed: {e}")
            }
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
        let names = names(&waiting);
        watch
            .wait_until(ready_deadline, interrupt.token(), |seen| {
                names.iter().all(|n| seen.settled(n, ready_settled))
            })
            .await;
        record(&watch.seen, plan, &waiting, &mut state, &mut unread);
    }
    for i in waiting {
        let p = &plan.snapshots[i];
        let vs = state.get(&i).cloned().flatten();
        let ready = is_ready(vs.as_ref());
        let error = error_message(vs.as_ref()).or_else(|| {
            (!ready).then(|| match unread.get(&i) {
                Some(e) => format!("readiness unknown: {e}"),
                None if interrupt.is_set() => "interrupted before ready".into(),
                None => format!("not ready within readyTimeout {}", cfg.ready_timeout),
            })
        });
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

/// The pre-hooks' results as the snapshot's `kentledge.io/hooks` annotation (JSON).
fn hooks_note(hooks: &[HookRecord]) -> String {
    serde_json::to_string(
        &hooks
            .iter()
            .map(|h| json!({"hook": h.hook, "phase": h.phase, "pod": h.pod, "result": h.result}))
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default()
}

/// Snapshots `which` as `seen` has them now: into `state`, or why not into `unread`.
fn record(
    seen: &Seen,
    plan: &Plan,
    which: &[usize],
    state: &mut BTreeMap<usize, Option<VolumeSnapshot>>,
    unread: &mut BTreeMap<usize, String>,
) {
    for i in which {
        match seen.get(&plan.snapshots[*i].name) {
            Ok(vs) => {
                state.insert(*i, vs.cloned());
                unread.remove(i);
            }
            Err(e) => {
                unread.insert(*i, e);
            }
        }
    }
}
