//! Carrying a backup plan out: mover pods (volume copies and database dumps) under the
//! concurrency and per-repository limits, their events relayed, records kept, and `backed-up`
//! labels written on successful volume copies.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::runtime::progress::Meter;
use futures::future::join_all;
use jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::sync::Semaphore;

use super::JobRecord;
use crate::flows::movers as mover;
use crate::model::labels::{backed_up_label, label_time};
use crate::model::snapshots::VolumeSnapshot;
use crate::mover::job::MoverEvent;
use crate::plan::backup::{Plan, VolumeJob};
use crate::plan::buckets::BucketCopy;
use crate::plan::dumps::DumpJob;
use crate::report::Verdict;
use crate::report::backup::{BucketRecord, DumpPart, DumpRecord};
use crate::runtime::signals::Interrupt;
use crate::settings::Settings;

/// The limits every mover of a run goes through: at most `mover.concurrency` at once, one at a
/// time per repository that takes one writer at a time (borg, or one with a cache volume:
/// [`crate::config::Repository::one_writer`]), and the first into each repository alone (it
/// may create the repository; two concurrent `restic init`s would write two different keys).
struct Gates<'a> {
    permits: Semaphore,
    lanes: BTreeMap<&'a str, tokio::sync::Mutex<()>>,
    first: BTreeMap<&'a str, tokio::sync::Mutex<bool>>,
}

/// A mover's way through the gates: dropped when it ends.
struct Passed<'g> {
    _lane: Option<tokio::sync::MutexGuard<'g, ()>>,
    opening: Option<tokio::sync::MutexGuard<'g, bool>>,
    _permit: Option<tokio::sync::SemaphorePermit<'g>>,
}

impl<'a> Gates<'a> {
    /// Gates for `repositories` (name, whether one writer at a time).
    fn new(concurrency: u32, repositories: impl Iterator<Item = (&'a str, bool)>) -> Self {
        let mut g = Gates {
            permits: Semaphore::new(concurrency.max(1) as usize),
            lanes: BTreeMap::new(),
            first: BTreeMap::new(),
        };
        for (r, one_writer) in repositories {
            if one_writer {
                g.lanes
                    .entry(r)
                    .or_insert_with(|| tokio::sync::Mutex::new(()));
            }
            g.first
                .entry(r)
                .or_insert_with(|| tokio::sync::Mutex::new(false));
        }
        g
    }

    async fn enter(&self, repository: &str) -> Passed<'_> {
        let lane = match self.lanes.get(repository) {
            Some(m) => Some(m.lock().await),
            None => None,
        };
        let mut opening = match self.first.get(repository) {
            Some(m) => Some(m.lock().await),
            None => None,
        };
        if opening.as_deref() == Some(&true) {
            opening = None; // the repository is known to exist: run in parallel
        }
        Passed {
            _lane: lane,
            opening,
            _permit: self.permits.acquire().await.ok(),
        }
    }
}

impl Passed<'_> {
    /// After the first mover into a repository: whether it is known to exist now (exit 0
    /// means it does, whether or not the log could be read).
    fn opened(&mut self, out: &Result<mover::MoverResult, crate::error::Error>) {
        if let Some(mut g) = self.opening.take() {
            *g = matches!(out, Ok(o) if o.succeeded());
        }
    }
}

/// The progress line of a run: one part per running mover.
struct Status<'a> {
    parts: Mutex<BTreeMap<usize, String>>,
    progress: &'a crate::runtime::progress::Progress,
}

impl Status<'_> {
    fn show(&self, index: usize, text: String) {
        if let Ok(mut s) = self.parts.lock() {
            s.insert(index, text);
            self.progress
                .phase(s.values().cloned().collect::<Vec<_>>().join(" | "));
        }
    }

    fn done(&self, index: usize) {
        if let Ok(mut s) = self.parts.lock() {
            s.remove(&index);
        }
    }
}

pub(super) async fn execute(
    client: &kube::Client,
    settings: &Settings,
    plan: &Plan,
    dumps: &[DumpJob],
    buckets: &[BucketCopy],
    interrupt: &Interrupt,
    progress: &crate::runtime::progress::Progress,
) -> (Vec<JobRecord>, Vec<DumpRecord>, Vec<BucketRecord>) {
    let config = &settings.config;
    let one_writer = |name: &str| {
        config
            .spec
            .repositories
            .iter()
            .any(|r| r.name == name && r.one_writer())
    };
    let gates = Gates::new(
        config.spec.mover.concurrency,
        plan.jobs
            .iter()
            .map(|j| j.repository.as_str())
            .chain(dumps.iter().map(|d| d.repository.as_str()))
            .chain(buckets.iter().map(|b| b.repository.as_str()))
            .map(|r| (r, one_writer(r))),
    );
    // A bucket's copies share its mirror: one at a time.
    let mirrors: BTreeMap<&str, tokio::sync::Mutex<()>> = buckets
        .iter()
        .map(|b| (b.name.as_str(), tokio::sync::Mutex::new(())))
        .collect();
    let status = Status {
        parts: Mutex::new(BTreeMap::new()),
        progress,
    };
    let in_use = InUse::new(plan);
    let ns = settings.namespace.as_str();
    let runs = plan.jobs.iter().map(|j| {
        let gates = &gates;
        let status = &status;
        let in_use = &in_use;
        async move {
            let rec = copy(client, settings, j, gates, status, in_use, interrupt).await;
            announce(client, ns, &rec).await;
            rec
        }
    });
    let dump_runs = dumps.iter().map(|d| {
        let gates = &gates;
        let status = &status;
        async move {
            let mut passed = gates.enter(&d.repository).await;
            if interrupt.is_set() {
                return vec![server_record(d, Verdict::Failed, "not started: interrupted".into())];
            }
            let current = Mutex::new((d.name.clone(), Arc::new(Meter::default())));
            status.show(d.index, format!("{} → {}: starting", d.name, d.repository));
            let on_event = |e: &MoverEvent| match e {
                MoverEvent::Dumping { database } => {
                    if let Ok(mut c) = current.lock() {
                        let what = match database {
                            Some(db) => format!("{}/{db}", d.name),
                            None => format!("{} (users)", d.name),
                        };
                        status.show(d.index, format!("{what} → {}: dumping", d.repository));
                        *c = (what, Arc::new(Meter::default()));
                    }
                }
                MoverEvent::Progress { bytes, .. } => {
                    let (what, meter) = current
                        .lock()
                        .map(|c| c.clone())
                        .unwrap_or_else(|_| (d.name.clone(), Arc::new(Meter::default())));
                    status.show(
                        d.index,
                        format!("{what} → {}: {}", d.repository, meter.text(*bytes, None, None)),
                    );
                    if progress_line_due(d.index) {
                        tracing::info!(database = %what, repository = %d.repository, bytes, "dumping");
                    }
                }
                MoverEvent::Dumped(r) => {
                    let what = match &r.database {
                        Some(db) => format!("{}/{db}", d.name),
                        None => format!("{} (users)", d.name),
                    };
                    if r.ok {
                        tracing::info!(database = %what, repository = %d.repository, archive = %r.archive,
                            bytes = r.bytes, added = r.bytes_added, seconds = r.seconds, "dumped");
                    } else {
                        tracing::error!(database = %what, repository = %d.repository, "dump failed: {}", r.message);
                    }
                }
                _ => mover::relay(e, &d.repository, None),
            };
            let task = mover::Task {
                namespace: &settings.namespace,
                config: &config.metadata.name,
                pod: &d.mover,
                clone: None,
                access: &d.job.repository,
                repository: &d.repo,
                mover: &config.spec.mover,
            };
            let out = mover::run_with_locks(client, &task, interrupt, &on_event).await;
            passed.opened(&out);
            status.done(d.index);
            dump_records(d, out)
        }
    });
    let bucket_runs = buckets.iter().map(|b| {
        let gates = &gates;
        let status = &status;
        let mirrors = &mirrors;
        async move {
            let _mirror = match mirrors.get(b.name.as_str()) {
                Some(m) => Some(m.lock().await),
                None => None,
            };
            let mut passed = gates.enter(&b.repository).await;
            if interrupt.is_set() {
                return BucketRecord {
                    result: "not started: interrupted".into(),
                    ..bucket_skeleton(b, 0.0)
                };
            }
            let started = Instant::now();
            let meter = Meter::default();
            status.show(b.index, format!("bucket {} → {}: starting", b.name, b.repository));
            let on_event = |e: &MoverEvent| match e {
                MoverEvent::Progress { bytes, files, .. } => {
                    status.show(
                        b.index,
                        format!(
                            "bucket {} → {}: {} downloaded",
                            b.name,
                            b.repository,
                            meter.text(*bytes, None, Some((*files, "objects")))
                        ),
                    );
                    if progress_line_due(b.index) {
                        tracing::info!(bucket = %b.name, repository = %b.repository, bytes, objects = files, "copying");
                    }
                }
                MoverEvent::BucketSynced(x) => {
                    tracing::info!(bucket = %b.name, repository = %b.repository, objects = x.objects,
                        downloaded = x.fetched, downloaded_bytes = x.fetched_bytes, gone = x.gone,
                        changed = x.changed, "bucket read; archiving");
                    status.show(b.index, format!("bucket {} → {}: archiving", b.name, b.repository));
                }
                _ => mover::relay(e, &b.repository, None),
            };
            let task = mover::Task {
                namespace: &settings.namespace,
                config: &config.metadata.name,
                pod: &b.mover,
                clone: None,
                access: &b.job.repository,
                repository: &b.repo,
                mover: &config.spec.mover,
            };
            let out = mover::run_with_locks(client, &task, interrupt, &on_event).await;
            passed.opened(&out);
            status.done(b.index);
            bucket_record(b, out, started.elapsed().as_secs_f64())
        }
    });
    let (volumes, dumps, copied) =
        futures::join!(join_all(runs), join_all(dump_runs), join_all(bucket_runs));
    (volumes, dumps.into_iter().flatten().collect(), copied)
}

/// A bucket copy's record before anything is known of it: failed.
fn bucket_skeleton(b: &BucketCopy, seconds: f64) -> BucketRecord {
    BucketRecord {
        name: b.name.clone(),
        bucket: b.bucket.clone(),
        repository: b.repository.clone(),
        engine: b.repository_engine.name(),
        seconds,
        ..BucketRecord::default()
    }
}

/// The record of one bucket copy, from how its mover ended.
fn bucket_record(
    b: &BucketCopy,
    out: Result<mover::MoverResult, crate::error::Error>,
    seconds: f64,
) -> BucketRecord {
    let mut r = bucket_skeleton(b, seconds);
    let o = match out {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(bucket = %b.name, repository = %b.repository, "bucket copy failed: {e}");
            r.result = e.to_string();
            return r;
        }
    };
    if let Some(x) = &o.synced {
        r.objects = x.objects;
        r.bytes = x.bytes;
        r.fetched = x.fetched;
        r.fetched_bytes = x.fetched_bytes;
        r.gone = x.gone;
        r.changed = x.changed;
        r.gone_keys = x.gone_keys.clone();
        r.changed_keys = x.changed_keys.clone();
    }
    if let Some(s) = &o.summary {
        r.archive = s.archive.clone();
        r.bytes_added = s.bytes_added;
    }
    r.outcome = o.verdict();
    r.ok = r.outcome == Verdict::Ok && o.synced.is_some() && o.summary.is_some();
    if r.outcome == Verdict::Ok && !r.ok {
        r.outcome = Verdict::Unknown;
        r.result = "the mover ended without saying what it archived".into();
    } else {
        r.result = if r.ok { "ok".into() } else { o.reason() };
    }
    match r.outcome {
        Verdict::Ok => {
            tracing::info!(bucket = %b.name, repository = %b.repository, archive = %r.archive,
            objects = r.objects, downloaded = r.fetched, added = r.bytes_added, seconds, "copied")
        }
        _ => {
            tracing::error!(bucket = %b.name, repository = %b.repository, "bucket copy failed: {}", r.result)
        }
    }
    r
}

/// A record of a server's dumps as a whole.
fn server_record(d: &DumpJob, outcome: Verdict, result: String) -> DumpRecord {
    DumpRecord {
        name: d.name.clone(),
        part: DumpPart::Server,
        pod: d.pod.clone(),
        repository: d.repository.clone(),
        engine: d.repository_engine.name(),
        archive: String::new(),
        ok: outcome == Verdict::Ok,
        outcome,
        result,
        bytes: 0,
        bytes_added: 0,
        seconds: 0.0,
    }
}

/// The records of one server's dumps: one per dump the mover reported; and one for the server
/// when the mover failed beyond them (nothing listed, stopped, killed) or its log was not seen.
fn dump_records(
    d: &DumpJob,
    out: Result<mover::MoverResult, crate::error::Error>,
) -> Vec<DumpRecord> {
    let o = match out {
        Ok(o) => o,
        Err(e) => return vec![server_record(d, Verdict::Failed, e.to_string())],
    };
    let mut records: Vec<DumpRecord> = o
        .dumps
        .iter()
        .map(|r| DumpRecord {
            part: match &r.database {
                Some(db) => DumpPart::Database(db.clone()),
                None => DumpPart::Users,
            },
            archive: r.archive.clone(),
            ok: r.ok,
            outcome: if r.ok { Verdict::Ok } else { Verdict::Failed },
            result: r.message.clone(),
            bytes: r.bytes,
            bytes_added: r.bytes_added,
            seconds: r.seconds,
            ..server_record(d, Verdict::Failed, String::new())
        })
        .collect();
    // Dumps the mover was about to make but never reported: not made, for the mover's reason.
    let reported: Vec<&Option<String>> = o.dumps.iter().map(|r| &r.database).collect();
    let missing: Vec<Option<String>> = o
        .dump_plan
        .iter()
        .flatten()
        .filter(|db| !reported.contains(db))
        .cloned()
        .collect();
    for db in &missing {
        records.push(DumpRecord {
            part: match db {
                Some(name) => DumpPart::Database(name.clone()),
                None => DumpPart::Users,
            },
            ..server_record(
                d,
                if o.verdict() == Verdict::Unknown {
                    Verdict::Unknown
                } else {
                    Verdict::Failed
                },
                format!("not dumped: {}", o.reason()),
            )
        });
    }
    match o.verdict() {
        Verdict::Ok if o.dumps.is_empty() => records.push(server_record(
            d,
            Verdict::Failed,
            "the mover ended without dumping anything (the server has no databases of its own?)"
                .into(),
        )),
        Verdict::Ok => {}
        // The mover said what it was about to dump: every dump has its row.
        _ if o.dump_plan.is_some() && !records.is_empty() => {}
        v => records.push(server_record(d, v, o.reason())),
    }
    if o.verdict() == Verdict::Unknown {
        // The mover exited 0 but not all of its log was read: dumps not seen are not claimed.
        for r in records.iter_mut().filter(|r| r.ok) {
            r.result = "ok (the rest of the mover's log could not be read)".into();
        }
    }
    records
}

/// One volume copy through the gates: its mover, then its snapshot's labels (the backed-up
/// label on success; the in-use mark when it was the snapshot's last copy).
async fn copy(
    client: &kube::Client,
    settings: &Settings,
    j: &VolumeJob,
    gates: &Gates<'_>,
    status: &Status<'_>,
    in_use: &InUse,
    interrupt: &Interrupt,
) -> JobRecord {
    let config = &settings.config;
    let mut passed = gates.enter(&j.repository).await;
    if interrupt.is_set() {
        if in_use.ended(&j.snapshot) {
            crate::kube::marks::set_in_use(client, &settings.namespace, &j.snapshot, None).await;
        }
        return record(
            j,
            Verdict::Failed,
            "not started: interrupted".into(),
            None,
            0.0,
        );
    }
    let started = Instant::now();
    let shown = |text: String| status.show(j.index, text);
    shown(format!("{} → {}: starting", j.pvc, j.repository));
    let meter = Meter::default();
    let on_event = |e: &MoverEvent| on_event(j, e, &meter, &shown);
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
    passed.opened(&out);
    status.done(j.index);
    let seconds = started.elapsed().as_secs_f64();
    let last = in_use.ended(&j.snapshot);
    if last && !matches!(&out, Ok(o) if o.ok()) {
        crate::kube::marks::set_in_use(client, &settings.namespace, &j.snapshot, None).await;
    }
    match out {
        Ok(o) if o.ok() => {
            let labelled = label_backed_up(
                client,
                &settings.namespace,
                &j.snapshot,
                &j.repository,
                last,
            )
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

/// The in-use marks of a run's source snapshots (set before its first copy): each goes when
/// the snapshot's last copy ends, in the same patch as its backed-up label when that copy
/// succeeded. A run of many snapshots writes them as its copies end, not all at its end.
struct InUse {
    left: Mutex<BTreeMap<String, usize>>,
}

impl InUse {
    fn new(plan: &Plan) -> Self {
        let mut left: BTreeMap<String, usize> = BTreeMap::new();
        for j in &plan.jobs {
            *left.entry(j.snapshot.clone()).or_default() += 1;
        }
        InUse {
            left: Mutex::new(left),
        }
    }

    /// Counts one copy of `snapshot` as ended; whether it was the snapshot's last.
    fn ended(&self, snapshot: &str) -> bool {
        let mut left = self.left.lock().unwrap_or_else(|e| e.into_inner());
        match left.get_mut(snapshot) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n == 0
            }
            None => false,
        }
    }
}

/// The Event of one volume copy on its PVC, as soon as the copy ended: `BackedUp` (Normal), or
/// `BackupFailed` / `BackupResultUnknown` (Warning).
async fn announce(client: &kube::Client, ns: &str, j: &JobRecord) {
    if j.ok {
        crate::kube::events::note_on(
            client,
            ns,
            "PersistentVolumeClaim",
            &j.pvc,
            "BackedUp",
            &format!(
                "copied to {} ({}) as {}, from snapshot {}",
                j.repository, j.engine, j.archive, j.snapshot
            ),
        )
        .await;
        return;
    }
    let (reason, what) = match j.outcome {
        Verdict::Unknown => ("BackupResultUnknown", "not confirmed"),
        _ => ("BackupFailed", "failed"),
    };
    crate::kube::events::record(
        client,
        ns,
        &j.pvc,
        reason,
        &format!("backup to {} {what}: {}", j.repository, j.result),
    )
    .await;
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
    meter: &Meter,
    shown: &(dyn Fn(String) + Sync),
) {
    match e {
        MoverEvent::Progress {
            bytes,
            total,
            files,
        } => {
            shown(format!(
                "{} → {}: {}",
                j.pvc,
                j.repository,
                meter.text(*bytes, *total, Some((*files, "files")))
            ));
            tracing::debug!(pvc = %j.pvc, repository = %j.repository, bytes, files, "progress");
            throttled_progress_log(j, *bytes, *files);
        }
        _ => mover::relay(e, &j.repository, Some(&j.pvc)),
    }
}

/// Whether mover `index`'s progress is due as a log line: at most every 10 seconds per mover,
/// so a CronJob's log (no terminal) shows a copy or a dump going on.
fn progress_line_due(index: usize) -> bool {
    static LAST: Mutex<BTreeMap<usize, Instant>> = Mutex::new(BTreeMap::new());
    let Ok(mut last) = LAST.lock() else {
        return false;
    };
    let due = last
        .get(&index)
        .is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
    if due {
        last.insert(index, Instant::now());
    }
    due
}

/// In a CronJob (no terminal), progress appears as an info line at most every 10 seconds per copy.
pub(super) fn throttled_progress_log(j: &VolumeJob, bytes: u64, files: u64) {
    if progress_line_due(j.index) {
        tracing::info!(pvc = %j.pvc, repository = %j.repository, bytes, files, "copying");
    }
}

/// Labels the source snapshot `backed-up.kentledge.io/<repository>=<time>` (and removes its
/// in-use mark in the same patch when `release`); says why not.
pub(super) async fn label_backed_up(
    client: &kube::Client,
    ns: &str,
    snapshot: &str,
    repository: &str,
    release: bool,
) -> Result<(), String> {
    let api: Api<VolumeSnapshot> = Api::namespaced(client.clone(), ns);
    let mut patch = json!({"metadata": {"labels": {backed_up_label(repository): label_time(Timestamp::now())}}});
    if release {
        patch["metadata"]["annotations"] = json!({crate::model::labels::IN_USE_ANNOTATION: null});
    }
    api.patch(snapshot, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| {
            tracing::error!(snapshot, error = %e, "could not label the snapshot as backed up");
            format!("the snapshot could not be labelled backed-up ({e}): the next backup copies it again")
        })
}
