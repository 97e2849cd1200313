//! Running a mover job whose repository may be locked: a lock held only by mover pods of this
//! namespace that no longer exist is broken by a break-lock pod and the job retried once; a lock
//! held by a live mover is waited for; any other holder is never broken (decisions:
//! [`crate::plan::movers`]).

use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::Api;

use super::{MoverResult, relay, run};
use crate::config::{Mover, Repository};
use crate::error::Error;
use crate::model::labels::RUN;
use crate::mover::job::{Access, Action, Failure, Job, MoverEvent, classify_holders};
use crate::mover::pod::{self as moverpod};
use crate::plan::movers::{LockStep, mover_holders, on_locked};
use crate::runtime::signals::Interrupt;

/// A mover job with what is needed to deal with its repository's locks.
pub struct Task<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// The config's name.
    pub config: &'a str,
    /// The mover pod.
    pub pod: &'a Pod,
    /// Its clone, if any.
    pub clone: Option<&'a PersistentVolumeClaim>,
    /// How the mover reaches the repository.
    pub access: &'a Access,
    /// The repository's config.
    pub repository: &'a Repository,
    /// Mover settings (for a break-lock pod).
    pub mover: &'a Mover,
}

/// Runs a mover job. A lock held only by mover pods of this namespace that no longer exist is
/// broken (a break-lock pod) and the job retried once; a lock held by a live mover is waited for
/// (up to the repository's lock wait); any other holder is never broken (the mover already waited).
pub async fn run_with_locks(
    client: &kube::Client,
    t: &Task<'_>,
    interrupt: &Interrupt,
    on_event: &(dyn Fn(&MoverEvent) + Sync),
) -> Result<MoverResult, Error> {
    let mut broke = false;
    let waited_since = std::time::Instant::now();
    loop {
        let clone = t.clone.map(|c| (c, t.mover.clone.bind_timeout.0));
        let out = run(client, t.namespace, clone, t.pod, interrupt, on_event).await?;
        if out.failure != Some(Failure::Locked) || out.interrupted {
            return Ok(out);
        }
        let holders = classify_holders(&out.holders, &t.access.mover_prefix);
        let Some(movers) = mover_holders(&holders) else {
            return Ok(out);
        };
        let pods: Api<Pod> = Api::namespaced(client.clone(), t.namespace);
        let mut live = Vec::new();
        for m in movers {
            if pods
                .get_opt(&m)
                .await
                .map_err(Error::cluster("read a lock holder Pod"))?
                .is_some()
            {
                live.push(m);
            }
        }
        let wait = Duration::from_secs(t.access.lock_wait_secs);
        match on_locked(&live, broke, waited_since.elapsed(), wait) {
            LockStep::GiveUp => return Ok(out),
            LockStep::Break => {
                tracing::warn!(repository = %t.access.name, holders = %out.holders.join(", "),
                    "breaking a stale lock: its holder, a mover pod, no longer exists");
                let brk = break_lock(client, t, interrupt).await?;
                if !brk.succeeded() {
                    return Ok(brk);
                }
                broke = true;
                continue;
            }
            LockStep::TimedOut => {
                return Ok(MoverResult {
                    message: format!(
                        "{} (still held by the running mover pod {} after {})",
                        out.message,
                        live.join(", "),
                        crate::model::units::HumanDuration(wait)
                    ),
                    ..out
                });
            }
            LockStep::Wait => {}
        }
        tracing::info!(repository = %t.access.name, holders = %live.join(", "), "the repository is locked by a running mover; waiting");
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = interrupt.token().cancelled() => return Ok(MoverResult { interrupted: true, message: "interrupted".into(), ..out }),
        }
    }
}

/// Runs a break-lock job for the task's repository in its own pod.
async fn break_lock(
    client: &kube::Client,
    t: &Task<'_>,
    interrupt: &Interrupt,
) -> Result<MoverResult, Error> {
    let job = Job {
        repository: t.access.clone(),
        action: Action::BreakLock,
    };
    let name = format!(
        "{}-unlock",
        t.pod.metadata.name.as_deref().unwrap_or("kentledge-mover")
    );
    let run_id = t
        .pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(RUN))
        .map(String::as_str)
        .unwrap_or_default();
    let ctx = moverpod::Context {
        namespace: t.namespace,
        config: t.config,
        run_id,
        owner: t
            .pod
            .metadata
            .owner_references
            .as_ref()
            .and_then(|o| o.first()),
    };
    let mut pod = moverpod::mover_pod(
        &ctx,
        &name,
        t.mover,
        t.repository,
        &job,
        moverpod::Data::None,
        None,
    );
    // It breaks the cache's lock too, so it mounts the cache volume when the job it unblocks
    // does (made here if no writer made it yet); a reader's break-lock never waits for it.
    if moverpod::cache_claim(t.pod).is_some() {
        super::ensure_cache(client, t.namespace, t.config, t.repository).await?;
    } else {
        moverpod::without_cache_volume(&mut pod);
    }
    let log = |e: &MoverEvent| relay(e, &t.access.name, None);
    run(client, t.namespace, None, &pod, interrupt, &log).await
}
