//! `kentledge backup`: copies each selected PVC, at the cut of its newest ready snapshot (or
//! `--from`), into every repository of `spec.offsite.volumes`, through a clone PVC and a mover
//! pod per copy. borg repositories take one volume at a time; at most `mover.concurrency` movers
//! run at once. Stale locks of gone movers are broken; others are waited for, then reported.
//! The source snapshot is marked in use while copied and labelled `backed-up.kentledge.io/<repo>`
//! when the copy is done. Clones and pods are deleted on every path; leftovers of killed runs
//! are swept first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::join_all;
use indicatif::HumanBytes;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::backupplan::{self, AlreadyCopied, Plan, SkippedVolume, VolumeJob};
use crate::cli::{BackupArgs, GlobalArgs};
use crate::commands::prune::IN_USE_ANNOTATION;
use crate::error::{Error, exit};
use crate::k8s::snapshots::VolumeSnapshot;
use crate::k8s::{lease, mover};
use crate::labels::{backed_up_label, label_time};
use crate::mover::job::MoverEvent;
use crate::output;
use crate::settings::{self, Settings};
use crate::signals::Interrupt;

/// What happened to one copy.
#[derive(Clone, Debug, Serialize)]
pub struct JobRecord {
    /// The PVC.
    pub pvc: String,
    /// The repository.
    pub repository: String,
    /// `borg` or `restic`.
    pub engine: &'static str,
    /// The source snapshot.
    pub snapshot: String,
    /// The archive name or snapshot id.
    pub archive: String,
    /// Whether it worked (and what it did was seen).
    pub ok: bool,
    /// `ok`, `failed`, or `unknown` (the mover exited 0 but its log could not be read: no
    /// `backed-up` label was written on a guess).
    pub outcome: mover::Verdict,
    /// `ok` or what went wrong.
    pub result: String,
    /// Why the source snapshot could not be labelled `backed-up.kentledge.io/<repository>`
    /// after a good copy (then the run is partial: the next backup copies it again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_error: Option<String>,
    /// Bytes read from the volume.
    pub bytes_read: u64,
    /// New bytes stored.
    pub bytes_added: u64,
    /// Files read.
    pub files: u64,
    /// How long the copy took.
    pub seconds: f64,
}

/// The run's result.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The run id.
    pub run: String,
    /// The namespace.
    pub namespace: String,
    /// The copies.
    pub jobs: Vec<JobRecord>,
    /// PVCs left out.
    pub skipped: Vec<SkippedVolume>,
    /// Copies an earlier run made.
    pub already: Vec<AlreadyCopied>,
    /// What the config asks for that this version cannot copy yet (databases, buckets).
    pub unavailable: Vec<String>,
    /// The signal's exit code, when interrupted.
    pub interrupted: Option<u8>,
}

impl Report {
    /// 0 all copied; 3 some; 1 none (or nothing to copy); 130/143 interrupted.
    pub fn code(&self) -> u8 {
        if let Some(c) = self.interrupted {
            return c;
        }
        let ok = self.jobs.iter().filter(|j| j.ok).count();
        let unlabelled = self.jobs.iter().filter(|j| j.label_error.is_some()).count();
        let bad = self.jobs.len() - ok + unlabelled + self.skipped.len() + self.unavailable.len();
        match (ok, bad) {
            (_, 0) if ok > 0 || !self.already.is_empty() => exit::SUCCESS,
            (0, _) => exit::FAILURE,
            _ => exit::PARTIAL,
        }
    }

    /// The summary for people.
    pub fn render(&self) -> String {
        let mut out = format!("backup run {} in namespace {}\n", self.run, self.namespace);
        if !self.jobs.is_empty() {
            out.push_str(&format!(
                "  {:<20} {:<14} {:<7} {:>10} {:>10} {:>10} {:>8}  {}\n",
                "PVC", "REPOSITORY", "ENGINE", "READ", "ADDED", "DEDUP", "TIME", "RESULT"
            ));
        }
        for j in &self.jobs {
            out.push_str(&format!(
                "  {:<20} {:<14} {:<7} {:>10} {:>10} {:>10} {:>7.1}s  {}\n",
                j.pvc,
                j.repository,
                j.engine,
                HumanBytes(j.bytes_read).to_string(),
                HumanBytes(j.bytes_added).to_string(),
                HumanBytes(j.bytes_read.saturating_sub(j.bytes_added)).to_string(),
                j.seconds,
                if let (true, Some(e)) = (j.ok, &j.label_error) {
                    format!("ok: {}, but {e}", j.archive)
                } else if j.ok {
                    format!("ok: {}", j.archive)
                } else {
                    j.result.clone()
                }
            ));
        }
        for a in &self.already {
            out.push_str(&format!(
                "  {} → {}: already copied from {} ({})\n",
                a.pvc, a.repository, a.snapshot, a.at
            ));
        }
        for s in &self.skipped {
            out.push_str(&format!("  skipped {}: {}\n", s.pvc, s.reason));
        }
        for u in &self.unavailable {
            out.push_str(&format!(
                "  NOT COPIED {u}: not available in this version\n"
            ));
        }
        let ok = self.jobs.iter().filter(|j| j.ok).count();
        out.push_str(&format!(
            "{ok} of {} copies done{}\n",
            self.jobs.len(),
            match self.interrupted {
                Some(c) => format!("; interrupted (exit {c}): clones and mover pods were deleted"),
                None => String::new(),
            }
        ));
        out
    }
}

/// Runs `kentledge backup`.
pub fn run(global: &GlobalArgs, args: &BackupArgs) -> Result<u8, Error> {
    let settings = settings::load(global)?;
    let offsite = &settings.config.spec.offsite;
    if offsite.volumes.is_none() && (!offsite.databases.is_empty() || !offsite.buckets.is_empty()) {
        return Err(Error::NotImplemented {
            command: "backup of databases and buckets".into(),
            version: env!("CARGO_PKG_VERSION"),
            what: "this version copies volumes (spec.offsite.volumes) only",
        });
    }
    let mut results = output::Results::new(global.output);
    let code = super::runtime()?.block_on(async {
        let (client, interrupt) = super::connect(global).await?;
        if args.snapshot_now {
            // The snapshot command's whole flow (hooks included); its newest snapshots are then
            // the sources.
            let snap = crate::cli::SnapshotArgs {
                targets: args.targets.clone(),
                lock: args.lock.clone(),
            };
            results.nest(Some("snapshot"));
            let code = super::snapshot::run_async(
                global,
                &settings,
                &snap,
                &client,
                &interrupt,
                &mut results,
            )
            .await;
            results.nest(None);
            let code = code?;
            if code != exit::SUCCESS {
                tracing::error!(
                    code,
                    "the snapshot before the backup failed: nothing was copied"
                );
                return Ok(code);
            }
        }
        run_async(global, &settings, args, &client, &interrupt, &mut results).await
    });
    results.finish()?;
    code
}

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

async fn run_async(
    global: &GlobalArgs,
    settings: &Settings,
    args: &BackupArgs,
    client: &kube::Client,
    interrupt: &Interrupt,
    results: &mut output::Results,
) -> Result<u8, Error> {
    let ns = settings.namespace.as_str();
    let config = &settings.config;
    let cfg_name = config.metadata.name.as_str();
    let mut seen = crate::k8s::observe::namespace(
        client,
        ns,
        crate::k8s::observe::Also {
            pods: false,
            snapshots: Some(&crate::labels::config_selector(cfg_name)),
        },
    )
    .await?;
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
    let owner = own_pod(client, ns).await;
    let run_id = crate::labels::new_run_id();
    let plan = backupplan::plan(&backupplan::Inputs {
        config,
        namespace: ns,
        run_id: &run_id,
        observed: crate::selection::Observed {
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
    for s in &plan.skipped {
        tracing::warn!(pvc = %s.pvc, "skipped: {}", s.reason);
    }
    if global.dry_run {
        results.emit(
            || backupplan::render(&plan, config, ns),
            || {
                json!({
                    "run": plan.run_id,
                    "namespace": ns,
                    "jobs": plan.jobs,
                    "skipped": plan.skipped,
                    "already": plan.already,
                    "pods": plan.jobs.iter().map(|j| &j.pod).collect::<Vec<_>>(),
                    "clones": plan.jobs.iter().map(|j| &j.clone).collect::<Vec<_>>(),
                })
            },
        )?;
        return Ok(exit::SUCCESS);
    }
    let progress = crate::progress::Progress::start("waiting for the backup lock");
    let held = lease::take(
        client,
        ns,
        cfg_name,
        crate::runlock::Lock::Backup,
        &run_id,
        args.lock.lock_timeout.0,
        interrupt,
    )
    .await?;
    tracing::info!(run = %run_id, copies = plan.jobs.len(), "backup lock taken");
    progress.phase("sweeping leftovers of earlier runs");
    let swept = mover::sweep(client, ns, cfg_name, &run_id).await;
    if let Err(e) = &swept {
        tracing::warn!(error = %e, "could not sweep leftovers of earlier runs");
    }
    release_stale_marks(client, &seen.snapshots, ns, &run_id).await;
    for r in &config.spec.repositories {
        if plan.jobs.iter().any(|j| j.repository == r.name) {
            mover::ensure_cache(client, ns, cfg_name, r).await?;
        }
    }
    let sources: BTreeSet<&str> = plan.jobs.iter().map(|j| j.snapshot.as_str()).collect();
    let mark = format!("backup/{run_id}");
    for s in &sources {
        set_in_use(client, ns, s, Some(&mark)).await;
    }
    let records = execute(client, settings, &plan, interrupt, &progress).await;
    progress.phase("cleaning up");
    for s in &sources {
        set_in_use(client, ns, s, None).await;
    }
    let lost = held.release().await;
    drop(progress);
    let report = Report {
        run: run_id.clone(),
        namespace: ns.to_owned(),
        jobs: records,
        skipped: plan.skipped.clone(),
        already: plan.already.clone(),
        unavailable: config
            .spec
            .offsite
            .databases
            .iter()
            .map(|d| format!("database {}", d.name))
            .chain(
                config
                    .spec
                    .offsite
                    .buckets
                    .iter()
                    .map(|b| format!("bucket {}", b.name)),
            )
            .collect(),
        interrupted: interrupt.code(),
    };
    for j in report.jobs.iter().filter(|j| !j.ok) {
        let (reason, what) = match j.outcome {
            mover::Verdict::Unknown => ("BackupResultUnknown", "not confirmed"),
            _ => ("BackupFailed", "failed"),
        };
        crate::k8s::events::record(
            client,
            ns,
            &j.pvc,
            reason,
            &format!("backup to {} {what}: {}", j.repository, j.result),
        )
        .await;
    }
    results.emit(
        || report.render(),
        || serde_json::to_value(&report).unwrap_or_default(),
    )?;
    Ok(lease::exit_code(report.code(), lost.as_deref()))
}

/// Sets (or removes) the in-use mark that keeps `prune` off a snapshot while it is copied.
async fn set_in_use(client: &kube::Client, ns: &str, snapshot: &str, value: Option<&str>) {
    let api: Api<VolumeSnapshot> = Api::namespaced(client.clone(), ns);
    let patch = json!({"metadata": {"annotations": {IN_USE_ANNOTATION: value}}});
    if let Err(e) = api
        .patch(snapshot, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(snapshot, error = %e, "could not update the in-use mark");
    }
}

/// Removes in-use marks that killed backup runs left.
async fn release_stale_marks(
    client: &kube::Client,
    snapshots: &[VolumeSnapshot],
    ns: &str,
    run_id: &str,
) {
    for s in snapshots {
        let mark = s
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(IN_USE_ANNOTATION));
        if let Some(m) = mark
            && m.starts_with("backup/")
            && m != &format!("backup/{run_id}")
        {
            let name = s.metadata.name.as_deref().unwrap_or_default();
            tracing::warn!(snapshot = name, mark = %m, "removing the in-use mark of an earlier backup run");
            set_in_use(client, ns, name, None).await;
        }
    }
}

async fn execute(
    client: &kube::Client,
    settings: &Settings,
    plan: &Plan,
    interrupt: &Interrupt,
    progress: &crate::progress::Progress,
) -> Vec<JobRecord> {
    let config = &settings.config;
    let permits = Semaphore::new(config.spec.mover.concurrency.max(1) as usize);
    let borg_lanes: BTreeMap<&str, tokio::sync::Mutex<()>> = plan
        .jobs
        .iter()
        .filter(|j| j.engine == "borg")
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
                return record(j, mover::Verdict::Failed, "not started: interrupted".into(), None, 0.0);
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
                    let mut rec = record(j, mover::Verdict::Ok, "ok".into(), o.summary, seconds);
                    rec.label_error = labelled.err();
                    rec
                }
                Ok(o) if o.result_unknown() => {
                    let why = o.reason();
                    tracing::error!(pvc = %j.pvc, repository = %j.repository,
                        "copy not confirmed, the snapshot is not labelled backed-up: {why}");
                    record(j, mover::Verdict::Unknown, why, o.summary, seconds)
                }
                Ok(o) => {
                    let why = o.reason();
                    tracing::error!(pvc = %j.pvc, repository = %j.repository, "copy failed: {why}");
                    record(j, mover::Verdict::Failed, why, o.summary, seconds)
                }
                Err(e) => {
                    tracing::error!(pvc = %j.pvc, repository = %j.repository, "copy failed: {e}");
                    record(j, mover::Verdict::Failed, e.to_string(), None, seconds)
                }
            }
        }
    });
    join_all(runs).await
}

fn record(
    j: &VolumeJob,
    outcome: mover::Verdict,
    result: String,
    s: Option<crate::mover::job::SummaryDto>,
    seconds: f64,
) -> JobRecord {
    let s = s.unwrap_or_default();
    JobRecord {
        pvc: j.pvc.clone(),
        repository: j.repository.clone(),
        engine: j.engine,
        snapshot: j.snapshot.clone(),
        archive: if s.archive.is_empty() {
            j.archive.clone()
        } else {
            s.archive
        },
        ok: outcome == mover::Verdict::Ok,
        outcome,
        result,
        label_error: None,
        bytes_read: s.bytes_read,
        bytes_added: s.bytes_added,
        files: s.files,
        seconds,
    }
}

fn on_event(j: &VolumeJob, e: &MoverEvent, started: Instant, shown: &(dyn Fn(String) + Sync)) {
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
fn throttled_progress_log(j: &VolumeJob, bytes: u64, files: u64) {
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
async fn label_backed_up(
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
