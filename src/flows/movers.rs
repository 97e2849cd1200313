//! Running one mover pod: create its clone PVC (if any) and the pod, follow its log for the
//! mover's events, take the result from the container's terminated state, and always delete the
//! pod and then the clone: on success, failure, timeout and interruption. Also the deletion of
//! movers and clones left by killed runs.

mod locks;
mod log;

use std::ops::ControlFlow;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};

use crate::config::Repository;
use crate::error::Error;
use crate::kube::pods::{self as pods_state, End};
use crate::model::labels::RUN;
use crate::mover::job::{
    ArchiveDecision, ArchiveEntry, BucketPlan, BucketRestored, Dumped, Failure, Loaded, MoverEvent,
    Restored, Synced,
};
use crate::mover::pod::{self as moverpod, ROLE};
use crate::report::Verdict;
use crate::runtime::poll::{Polled, poll_paced, poll_woken, rising};
use crate::runtime::signals::Interrupt;
pub use locks::{Task, run_with_locks};
use log::{LogRead, follow};

/// How a mover pod ended.
#[derive(Clone, Debug, Default)]
pub struct MoverResult {
    /// The container's exit code, when it ran to the end.
    pub exit_code: Option<i32>,
    /// Why it failed (from the exit code, or the pod's state when it never ran or was stopped).
    pub failure: Option<Failure>,
    /// What went wrong, for people.
    pub message: String,
    /// Lock holders the mover reported.
    pub holders: Vec<String>,
    /// The backup's numbers.
    pub summary: Option<crate::engines::output::Summary>,
    /// Prune decisions.
    pub archives: Vec<ArchiveDecision>,
    /// Archives a list job found.
    pub listed: Vec<ArchiveEntry>,
    /// What a restore job wrote.
    pub restored: Option<Restored>,
    /// The dumps a databases job was about to make (`None`: the users and roles), once it said.
    pub dump_plan: Option<Vec<Option<String>>>,
    /// The dumps a databases job made or tried.
    pub dumps: Vec<Dumped>,
    /// What a database restore did.
    pub loaded: Option<Loaded>,
    /// What a bucket backup read.
    pub synced: Option<Synced>,
    /// What a bucket restore planned.
    pub bucket_plan: Option<BucketPlan>,
    /// What a bucket restore wrote.
    pub bucket_restored: Option<BucketRestored>,
    /// Whether the run was interrupted while the mover ran.
    pub interrupted: bool,
    /// Why the mover's log could not be read to its last line, when it could not: then the
    /// summary, the prune decisions and the engine's failure text were not seen.
    pub log_error: Option<String>,
}

impl MoverResult {
    /// Whether the pod says the job did what it was asked (exit 0, not interrupted), whether or
    /// not its log was read.
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.interrupted
    }

    /// Whether the job did what it was asked and what it did was seen in its log.
    pub fn ok(&self) -> bool {
        self.succeeded() && self.log_error.is_none()
    }

    /// Whether the pod exited 0 but its log, and so its results, could not be read.
    pub fn result_unknown(&self) -> bool {
        self.succeeded() && self.log_error.is_some()
    }

    /// `ok`, or what went wrong for people (with the holders of a lock), or that the result is
    /// unknown because the mover's log could not be read.
    pub fn reason(&self) -> String {
        if let (true, Some(e)) = (self.succeeded(), &self.log_error) {
            return format!(
                "result unknown: could not read the mover's log ({e}); the mover pod exited 0"
            );
        }
        let reason = match self.failure {
            _ if self.ok() => return "ok".into(),
            Some(f) if self.message.is_empty() => f.describe().to_owned(),
            Some(Failure::Locked) if !self.holders.is_empty() => {
                format!("{}: held by {}", self.message, self.holders.join(", "))
            }
            _ => self.message.clone(),
        };
        match &self.log_error {
            Some(e) => format!("{reason} (could not read the mover's log: {e})"),
            None => reason,
        }
    }
}

impl MoverResult {
    /// The verdict for reports.
    pub fn verdict(&self) -> Verdict {
        if self.ok() {
            Verdict::Ok
        } else if self.result_unknown() {
            Verdict::Unknown
        } else {
            Verdict::Failed
        }
    }
}

/// Runs a mover pod to its end (its clone, if any, with how long it may stay unbound).
/// `on_event` sees each event as it is logged.
pub async fn run(
    client: &kube::Client,
    ns: &str,
    clone: Option<(&PersistentVolumeClaim, Duration)>,
    pod: &Pod,
    interrupt: &Interrupt,
    on_event: &(dyn Fn(&MoverEvent) + Sync),
) -> Result<MoverResult, Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let bind_timeout = clone.map(|(_, t)| t);
    let clone = clone.map(|(c, _)| c);
    let clone_name = clone.and_then(|c| c.metadata.name.clone());
    // Only what this call created is deleted: a create that failed (a name taken by another
    // run, say) must not delete the other's object.
    let (mut made_clone, mut made_pod) = (false, false);
    let result = async {
        tracing::debug!(pod = %pod_name, clone = clone_name.as_deref(), "creating the mover pod");
        if let Some(c) = clone {
            pvcs.create(&PostParams::default(), c)
                .await
                .map_err(Error::cluster("create the clone PersistentVolumeClaim"))?;
            made_clone = true;
        }
        pods.create(&PostParams::default(), pod)
            .await
            .map_err(Error::cluster("create the mover Pod"))?;
        made_pod = true;
        let binding = clone_name
            .as_deref()
            .zip(bind_timeout)
            .map(|(name, patience)| Binding {
                pvcs: &pvcs,
                name,
                patience,
            });
        Ok::<_, Error>(watch(&pods, &pod_name, binding, interrupt, on_event).await)
    }
    .await;
    cleanup(
        client,
        ns,
        made_pod.then_some(pod_name.as_str()),
        clone_name.as_deref().filter(|_| made_clone),
    )
    .await;
    result
}

/// Deletes a mover pod (waiting until it is gone, so its volumes are released) and then a clone.
pub async fn cleanup(client: &kube::Client, ns: &str, pod: Option<&str>, clone: Option<&str>) {
    if let Some(p) = pod {
        delete_and_wait::<Pod>(client, ns, p, "mover pod").await;
    }
    if let Some(c) = clone {
        delete_and_wait::<PersistentVolumeClaim>(client, ns, c, "clone").await;
    }
}

/// Deletes one object and waits (up to a minute) until it is gone: finalizers such as
/// `kubernetes.io/pvc-protection` keep it a moment longer. A failure is logged, never fatal:
/// the next run's sweep finds what is left.
async fn delete_and_wait<K>(client: &kube::Client, ns: &str, name: &str, what: &str)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {
            let until = tokio::time::Instant::now() + Duration::from_secs(60);
            let gone = poll_paced(
                // A pod that has ended is gone in milliseconds (its clone right after): the
                // first looks come soon, as the copy's whole run waits for them.
                rising(Duration::from_millis(10), Duration::from_millis(500)),
                Some(until),
                &tokio_util::sync::CancellationToken::new(),
                async || match api.get_opt(name).await {
                    Ok(None) => ControlFlow::Break(()),
                    _ => ControlFlow::Continue(()),
                },
            )
            .await;
            if gone == Polled::Done(()) {
                return;
            }
            tracing::warn!(
                name,
                "the {what} is still being deleted; the next run sweeps it"
            );
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => {
            tracing::warn!(name, error = %e, "could not delete the {what}; the next run sweeps it")
        }
    }
}

/// Deletes mover pods, clones and half-filled new PVCs of restores of this config left by other
/// (killed) runs (callers hold the backup lock, which every run that makes them holds).
pub async fn delete_leftovers(
    client: &kube::Client,
    ns: &str,
    config: &str,
    run_id: &str,
) -> Result<usize, Error> {
    let sel = format!(
        "{},{RUN}!={run_id}",
        crate::model::labels::config_selector(config)
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let mut n = 0;
    for p in pods
        .list(&ListParams::default().labels(&format!("{sel},{ROLE}=mover")))
        .await
        .map_err(Error::cluster("list mover Pods"))?
        .items
    {
        let name = p.metadata.name.unwrap_or_default();
        tracing::warn!(pod = %name, "deleting a mover pod left by an earlier run");
        cleanup(client, ns, Some(&name), None).await;
        n += 1;
    }
    for p in pods
        .list(&ListParams::default().labels(&format!("{sel},{ROLE}={}", moverpod::READER_ROLE)))
        .await
        .map_err(Error::cluster("list reader mover Pods"))?
        .items
    {
        // Readers of unlocked runs (list, check) may be running: only ended ones are swept.
        if crate::kube::pods::ended(&p, jiff::Timestamp::now()).is_some() {
            let name = p.metadata.name.unwrap_or_default();
            cleanup(client, ns, Some(&name), None).await;
            n += 1;
        }
    }
    let roles = format!("{sel},{ROLE} in (clone,{})", moverpod::RESTORE_ROLE);
    for c in pvcs
        .list(&ListParams::default().labels(&roles))
        .await
        .map_err(Error::cluster("list clone PersistentVolumeClaims"))?
        .items
    {
        let role = c
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ROLE))
            .cloned();
        let name = c.metadata.name.unwrap_or_default();
        if role.as_deref() == Some(moverpod::RESTORE_ROLE) {
            tracing::warn!(pvc = %name, "deleting the new PVC of a restore an earlier run did not finish");
        } else {
            tracing::warn!(pvc = %name, "deleting a clone left by an earlier run");
        }
        cleanup(client, ns, None, Some(&name)).await;
        n += 1;
    }
    Ok(n)
}

/// How often the mover pod is read while it runs (and while it cannot be read): soon after it
/// is made (it starts in well under a second), then every 500 ms.
const POD_POLL: (Duration, Duration) = (Duration::from_millis(50), Duration::from_millis(500));

/// How often a mover pod is read once its log stream has ended (the container has usually
/// exited, and its state follows within a second: the kubelet's next status update): the time
/// since the end, from 50 ms up to [`POD_POLL`]'s 500 ms, so the reads double their spacing
/// (a stream that broke does not make it poll fast for long).
const ENDED_POLL: (Duration, Duration) = (Duration::from_millis(50), POD_POLL.1);

/// How long the mover pod may stay unreadable before the run stops waiting for it.
const POD_READ_PATIENCE: Duration = Duration::from_secs(60);

/// A clone the mover waits for, and how long it may stay unbound.
struct Binding<'a> {
    pvcs: &'a Api<PersistentVolumeClaim>,
    name: &'a str,
    patience: Duration,
}

/// How often a clone is read while the mover pod has not started.
const BIND_CHECK: Duration = Duration::from_secs(2);

async fn watch(
    pods: &Api<Pod>,
    name: &str,
    binding: Option<Binding<'_>>,
    interrupt: &Interrupt,
    on_event: &(dyn Fn(&MoverEvent) + Sync),
) -> MoverResult {
    let mut out = MoverResult::default();
    let mut log_task: Option<tokio::task::JoinHandle<LogRead>> = None;
    // The pod was stopped at its deadline: that, not what the mover said last, is the result.
    let mut deadline = false;
    let mut unreadable_since: Option<std::time::Instant> = None;
    let made = std::time::Instant::now();
    let mut clone_read: Option<std::time::Instant> = None;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<MoverEvent>();
    let log_ended: std::cell::Cell<Option<std::time::Instant>> = std::cell::Cell::new(None);
    let pace = |n| match log_ended.get() {
        Some(t) => t.elapsed().clamp(ENDED_POLL.0, ENDED_POLL.1),
        _ => rising(POD_POLL.0, POD_POLL.1)(n),
    };
    // The log stream ends when the container exits: the pod is read again at once.
    let exited = std::sync::Arc::new(tokio::sync::Notify::new());
    let polled = poll_woken(pace, None, interrupt.token(), &exited, async || {
        while let Ok(e) = rx.try_recv() {
            on_event(&e);
        }
        let p = match pods.get_opt(name).await {
            Ok(Some(p)) => {
                unreadable_since = None;
                p
            }
            Ok(None) => {
                out.failure = Some(Failure::Failed);
                out.message = format!(
                    "the mover pod {name} was deleted before it finished (by someone else, or its node went away)"
                );
                return ControlFlow::Break(());
            }
            Err(e) => {
                let since = *unreadable_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= POD_READ_PATIENCE {
                    out.failure = Some(Failure::Failed);
                    out.message = format!(
                        "result unknown: could not read the mover pod for {} ({e}); it was stopped",
                        crate::model::units::HumanDuration(POD_READ_PATIENCE)
                    );
                    return ControlFlow::Break(());
                }
                tracing::debug!(error = %e, "reading the mover pod");
                return ControlFlow::Continue(());
            }
        };
        // A clone that does not bind keeps the pod from starting: read it now and then.
        if let Some(b) = binding.as_ref().filter(|_| !pods_state::started(&p))
            && clone_read.is_none_or(|t| t.elapsed() >= BIND_CHECK)
        {
            clone_read = Some(std::time::Instant::now());
            match b.pvcs.get_opt(b.name).await {
                Ok(c) => {
                    if let Some(why) =
                        pods_state::unbound(b.name, c.as_ref(), made.elapsed(), b.patience)
                    {
                        out.failure = Some(Failure::Failed);
                        out.message = why;
                        return ControlFlow::Break(());
                    }
                }
                Err(e) => tracing::debug!(error = %e, "reading the clone"),
            }
        }
        if log_task.is_none() && pods_state::started(&p) {
            tracing::debug!(pod = %name, after_ms = made.elapsed().as_millis() as u64, "mover pod started");
            let (pods, name, tx, exited) = (pods.clone(), name.to_owned(), tx.clone(), exited.clone());
            log_task = Some(tokio::spawn(async move {
                let read = follow(pods, name, tx).await;
                exited.notify_one();
                read
            }));
        }
        if let Some(end) = pods_state::ended(&p, jiff::Timestamp::now()) {
            tracing::debug!(pod = %name, after_ms = made.elapsed().as_millis() as u64, "mover pod ended");
            out.failure = Some(Failure::Failed);
            match end {
                End::DeadlineExceeded(code) => {
                    deadline = true;
                    out.message = "the mover ran longer than spec.mover.timeout and was stopped (DeadlineExceeded)".into();
                    out.exit_code = code;
                }
                End::Exited(code, message) => {
                    out.exit_code = Some(code);
                    out.failure = Failure::from_code(code);
                    out.message = message;
                }
                End::Failed(message) | End::CannotStart(message) => out.message = message,
            }
            return ControlFlow::Break(());
        }
        if log_ended.get().is_none() && log_task.as_ref().is_some_and(|t| t.is_finished()) {
            log_ended.set(Some(std::time::Instant::now()));
        }
        ControlFlow::Continue(())
    })
    .await;
    match polled {
        Polled::Done(()) => {}
        // TimedOut cannot happen: there is no deadline here (the pod's activeDeadlineSeconds
        // stops a mover that runs too long, seen as End::DeadlineExceeded).
        Polled::Interrupted | Polled::TimedOut => {
            while let Ok(e) = rx.try_recv() {
                on_event(&e);
            }
            out.interrupted = true;
            out.failure = Some(Failure::Failed);
            out.message = "interrupted".into();
        }
    }
    drop(tx);
    if out.interrupted {
        if let Some(t) = log_task {
            t.abort();
        }
        return out;
    }
    // The rest of the log (the stream ends when the container exits).
    let followed = match log_task {
        Some(mut t) => match tokio::time::timeout(Duration::from_secs(10), &mut t).await {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => LogRead::failed(format!("following the log: {e}")),
            Err(_) => {
                t.abort();
                LogRead::failed("the log stream did not end 10 s after the mover exited")
            }
        },
        None => LogRead::default(),
    };
    while let Ok(e) = rx.try_recv() {
        on_event(&e);
    }
    let read = if followed.complete() || out.exit_code.is_none() {
        // Read to the end, or the mover never ran: there is no more log to read.
        followed
    } else {
        // The stream never started, ended early or failed: read the whole log once.
        let again = match pods.logs(name, &LogParams::default()).await {
            Ok(text) => LogRead::parse(&text),
            Err(e) => LogRead::failed(e.to_string()),
        };
        again
            .events
            .iter()
            .skip(followed.events.len())
            .for_each(on_event);
        if again.complete() || followed.error.is_none() {
            again
        } else {
            LogRead {
                error: followed.error,
                ..again
            }
        }
    };
    if out.exit_code.is_some() && !read.complete() {
        out.log_error = Some(
            read.error
                .clone()
                .unwrap_or_else(|| "the log ended before the mover's last line".into()),
        );
    }
    for e in read.events {
        match e {
            MoverEvent::Summary { summary } => out.summary = Some(summary),
            MoverEvent::Archive(a) => out.archives.push(a),
            MoverEvent::Listed(a) => out.listed.push(a),
            MoverEvent::Restored(r) => out.restored = Some(r),
            MoverEvent::Dumped(d) => out.dumps.push(d),
            MoverEvent::DumpPlan { databases } => out.dump_plan = Some(databases),
            MoverEvent::Loaded(l) => out.loaded = Some(l),
            MoverEvent::BucketSynced(x) => out.synced = Some(x),
            MoverEvent::BucketPlan(x) => out.bucket_plan = Some(x),
            MoverEvent::BucketRestored(x) => out.bucket_restored = Some(x),
            MoverEvent::Deleted { series, archives } => {
                for a in out.archives.iter_mut() {
                    if a.series == series && archives.contains(&a.archive) {
                        a.deleted = true;
                    }
                }
            }
            MoverEvent::Failed {
                failure,
                message,
                holders,
            } if !deadline => {
                out.failure = Some(failure);
                out.message = message;
                out.holders = holders;
            }
            _ => {}
        }
    }
    if out.exit_code.is_some_and(|c| c != 0) && out.failure.is_none() {
        out.failure = Some(Failure::Failed);
    }
    out
}

/// Passes a mover's log message on to kentledge's log at the mover's level, with the repository
/// (and the PVC of a copy).
pub fn relay(e: &MoverEvent, repository: &str, pvc: Option<&str>) {
    let MoverEvent::Log { level, message } = e else {
        return;
    };
    match level.as_str() {
        "error" | "critical" => tracing::error!(pvc, repository, "{message}"),
        "warn" | "warning" => tracing::warn!(pvc, repository, "{message}"),
        "debug" => tracing::debug!(pvc, repository, "{message}"),
        _ => tracing::info!(pvc, repository, "{message}"),
    }
}

/// Creates a repository's persistent engine cache PVC when the config asks for one and it does
/// not exist yet (it is kept between runs; deleting it only costs a slower next run).
pub async fn ensure_cache(
    client: &kube::Client,
    ns: &str,
    config: &str,
    repo: &Repository,
) -> Result<(), Error> {
    match moverpod::cache_pvc(ns, config, repo) {
        Some(pvc) => ensure_pvc(client, ns, pvc, &format!("repository {}", repo.name)).await,
        None => Ok(()),
    }
}

/// Creates a bucket's cache PVC (its mirror) when the config asks for one and it does not
/// exist yet (kept between runs; deleting it only makes the next backup download everything).
pub async fn ensure_bucket_cache(
    client: &kube::Client,
    ns: &str,
    config: &str,
    bucket: &crate::config::BucketBackup,
) -> Result<(), Error> {
    match moverpod::bucket_cache_pvc(ns, config, bucket) {
        Some(pvc) => ensure_pvc(client, ns, pvc, &format!("bucket {}", bucket.name)).await,
        None => Ok(()),
    }
}

async fn ensure_pvc(
    client: &kube::Client,
    ns: &str,
    pvc: PersistentVolumeClaim,
    of: &str,
) -> Result<(), Error> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let name = pvc.metadata.name.clone().unwrap_or_default();
    if api
        .get_opt(&name)
        .await
        .map_err(Error::cluster("read the cache PersistentVolumeClaim"))?
        .is_some()
    {
        return Ok(());
    }
    tracing::info!(pvc = %name, "creating the cache volume of {of}");
    api.create(&PostParams::default(), &pvc)
        .await
        .map_err(Error::cluster("create the cache PersistentVolumeClaim"))?;
    Ok(())
}
