//! Carrying a backup plan out: mover pods under the concurrency and per-repository limits,
//! their events relayed, records kept, and `backed-up` labels written on success.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::join_all;
use indicatif::HumanBytes;
use jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::sync::Semaphore;

use super::JobRecord;
use crate::flows::movers as mover;
use crate::model::labels::{backed_up_label, label_time};
use crate::model::snapshots::VolumeSnapshot;
use crate::mover::job::{Engine, MoverEvent};
use crate::plan::backup::{Plan, VolumeJob};
use crate::report::Verdict;
use crate::runtime::signals::Interrupt;
use crate::settings::Settings;

pub(super) async fn execute(
    client: &kube::Client,
    settings: &Settings,
    plan: &Plan,
    interrupt: &Interrupt,
    progress: &crate::runtime::progress::Progress,
) -> Vec<JobRecord> {
    let config = &settings.config;
    let permits = Semaphore::new(config.spec.mover.concurrency.max(1) as usize);
    let borg_lanes: BTreeMap<&str, tokio::sync::Mutex<()>> = plan
        .jobs
        .iter()
        .filter(|j| j.engine == Engine::Borg)
        .map(|j| (j.repository.as_str(), tokio::sync::Mutex::new(())))
        .collect();
    // The first copy into each repository runs alone (it may create the repository; two
    // concurrent `restic init`s would write two different keys).
    let first: BTreeMap<&str, tokio::sync::Mutex<bool>> = plan
        .jobs
        .iter()
        .map(|j| (j.repository.as_str(), tokio::sync::Mutex::new(false)))
        .collect();
    let status: Mutex<BTreeMap<usize, String>> = Mutex::new(BTreeMap::new());
    let runs = plan.jobs.iter().map(|j| {
        let permits = &permits;
        let lane = borg_lanes.get(j.repository.as_str());
        let first = first.get(j.repository.as_str());
        let status = &status;
        async move {
            let _lane = match lane {
                Some(m) => Some(m.lock().await),
                None => None,
            };
            let mut opening = match first {
                Some(m) => Some(m.lock().await),
                None => None,
            };
            if opening.as_deref() == Some(&true) {
                opening = None; // the repository is known to exist: run in parallel
            }
            let _permit = permits.acquire().await;
            if interrupt.is_set() {
                return record(j, Verdict::Failed, "not started: interrupted".into(), None, 0.0);
            }
            let started = Instant::now();
            let shown = |text: String| {
                if let Ok(mut s) = status.lock() {
                    s.insert(j.index, text);
                    progress.phase(s.values().cloned().collect::<Vec<_>>().join(" | "));
                }
            };
            shown(format!("{} → {}: starting", j.pvc, j.repository));
            let on_event = |e: &MoverEvent| on_event(j, e, started, &shown);
            let task = mover::Task {
                namespace: &settings.namespace,
                config: &config.metadata.name,
                pod: &j.pod,
                clone: Some(&j.clone),
                access: &j.job.repository,
                repository: &j.repo,
                mover: &config.spec.mover,
            };
            let out = mover::run_with_locks(client, &task, interrupt, &on_event).await;
            if let Some(mut g) = opening.take() {
                // Exit 0 means the repository exists, whether or not the log could be read.
                *g = matches!(&out, Ok(o) if o.succeeded());
            }
            if let Ok(mut s) = status.lock() {
                s.remove(&j.index);
            }
            let seconds = started.elapsed().as_secs_f64();
            match out {
                Ok(o) if o.ok() => {
                    let labelled =
                        label_backed_up(client, &settings.namespace, &j.snapshot, &j.repository)
                            .await;
                    let s = o.summary.clone().unwrap_or_default();
                    tracing::info!(pvc = %j.pvc, repository = %j.repository, archive = %s.archive,
                        read = s.bytes_read, added = s.bytes_added, files = s.files, seconds, "copied");
                    let mut rec = record(j, Verdict::Ok, "ok".into(), o.summary, seconds);
                    rec.label_error = labelled.err();
                    rec
                }
                Ok(o) if o.result_unknown() => {
                    let why = o.reason();
                    tracing::error!(pvc = %j.pvc, repository = %j.repository,
                        "copy not confirmed, the snapshot is not labelled backed-up: {why}");
                    record(j, Verdict::Unknown, why, o.summary, seconds)
                }
                Ok(o) => {
                    let why = o.reason();
                    tracing::error!(pvc = %j.pvc, repository = %j.repository, "copy failed: {why}");
                    record(j, Verdict::Failed, why, o.summary, seconds)
                }
                Err(e) => {
                    tracing::error!(pvc = %j.pvc, repository = %j.repository, "copy failed: {e}");
                    record(j, Verdict::Failed, e.to_string(), None, seconds)
                }
            }
        }
    });
    join_all(runs).await
}

pub(super) fn record(
    j: &VolumeJob,
    outcome: Verdict,
    result: String,
    s: Option<crate::engines::output::Summary>,
    seconds: f64,
) -> JobRecord {
    let s = s.unwrap_or_default();
    JobRecord {
        pvc: j.pvc.clone(),
        repository: j.repository.clone(),
        engine: j.engine.name(),
        snapshot: j.snapshot.clone(),
        archive: if s.archive.is_empty() {
            j.archive.clone()
        } else {
            s.archive
        },
        ok: outcome == Verdict::Ok,
        outcome,
        result,
        label_error: None,
        bytes_read: s.bytes_read,
        bytes_added: s.bytes_added,
        files: s.files,
        seconds,
    }
}

pub(super) fn on_event(
    j: &VolumeJob,
    e: &MoverEvent,
    started: Instant,
    shown: &(dyn Fn(String) + Sync),
) {
    match e {
        MoverEvent::Progress {
            bytes,
            total,
            files,
        } => {
            let of = total
                .map(|t| format!(" of {}", HumanBytes(t)))
                .unwrap_or_default();
            let secs = started.elapsed().as_secs_f64().max(0.001);
            let rate = HumanBytes((*bytes as f64 / secs) as u64);
            shown(format!(
                "{} → {}: {}{of}, {files} files, {rate}/s",
                j.pvc,
                j.repository,
                HumanBytes(*bytes)
            ));
            tracing::debug!(pvc = %j.pvc, repository = %j.repository, bytes, files, "progress");
            throttled_progress_log(j, *bytes, *files);
        }
        _ => mover::relay(e, &j.repository, Some(&j.pvc)),
    }
}

/// In a CronJob (no terminal), progress appears as an info line at most every 10 seconds per copy.
pub(super) fn throttled_progress_log(j: &VolumeJob, bytes: u64, files: u64) {
    static LAST: Mutex<BTreeMap<usize, Instant>> = Mutex::new(BTreeMap::new());
    let Ok(mut last) = LAST.lock() else { return };
    let due = last
        .get(&j.index)
        .is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
    if due {
        last.insert(j.index, Instant::now());
        tracing::info!(pvc = %j.pvc, repository = %j.repository, bytes, files, "copying");
    }
}

/// Labels the source snapshot `backed-up.kentledge.io/<repository>=<time>`; says why not.
pub(super) async fn label_backed_up(
    client: &kube::Client,
    ns: &str,
    snapshot: &str,
    repository: &str,
) -> Result<(), String> {
    let api: Api<VolumeSnapshot> = Api::namespaced(client.clone(), ns);
    let patch = json!({"metadata": {"labels": {backed_up_label(repository): label_time(Timestamp::now())}}});
    api.patch(snapshot, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| {
            tracing::error!(snapshot, error = %e, "could not label the snapshot as backed up");
            format!("the snapshot could not be labelled backed-up ({e}): the next backup copies it again")
        })
}
