//! The run lock on the API: acquiring the Lease (waiting up to `--lock-timeout`), renewing it
//! while the run lasts, releasing it at the end. Decisions come from [`crate::plan::lock`]; every
//! write carries the resourceVersion read, so a race loses with 409 Conflict and retries.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio_util::sync::CancellationToken;

use crate::model::labels::{CONFIG, MANAGED_BY, MANAGER, RUN};
use crate::plan::lock::{LEASE_SECONDS, LeaseView, Lock, LockDecision, LockError, decide};

fn view(l: &Lease) -> LeaseView {
    let spec = l.spec.as_ref();
    LeaseView {
        holder: spec.and_then(|s| s.holder_identity.clone()),
        renew_time: spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0),
        duration_seconds: spec.and_then(|s| s.lease_duration_seconds),
    }
}

fn fresh(
    l: Option<Lease>,
    name: &str,
    config: &str,
    run_id: &str,
    me: &str,
    transitions: i32,
) -> Lease {
    let now = MicroTime(Timestamp::now());
    let mut lease = l.unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    let labels = lease.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(MANAGED_BY.into(), MANAGER.into());
    labels.insert(CONFIG.into(), config.into());
    labels.insert(RUN.into(), run_id.into());
    let spec = lease.spec.get_or_insert_with(Default::default);
    spec.holder_identity = Some(me.to_owned());
    spec.lease_duration_seconds = Some(LEASE_SECONDS);
    spec.acquire_time = Some(now.clone());
    spec.renew_time = Some(now);
    spec.lease_transitions = Some(transitions);
    lease
}

/// A held run lock; renewals run until [`Held::release`].
pub struct Held {
    api: Api<Lease>,
    name: String,
    me: String,
    stop: CancellationToken,
    /// Ends with why the lock was lost, if it was.
    renewer: tokio::task::JoinHandle<Option<String>>,
}

/// Takes `lock` of `config` for run `run_id` as this host (`$HOSTNAME`: the pod in a cluster),
/// waiting at most `wait`.
pub async fn acquire(
    client: &kube::Client,
    namespace: &str,
    config: &str,
    lock: Lock,
    run_id: &str,
    wait: Duration,
    interrupted: &CancellationToken,
) -> Result<Held, LockError> {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    let me = &crate::plan::lock::holder_identity(run_id, &host);
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let name = lock.lease_name(config);
    let started = tokio::time::Instant::now();
    loop {
        let current = api.get_opt(&name).await.map_err(LockError::Api)?;
        let transitions = current
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.lease_transitions)
            .unwrap_or(0);
        let result = match decide(current.as_ref().map(view).as_ref(), me, Timestamp::now()) {
            LockDecision::Create => api
                .create(
                    &PostParams::default(),
                    &fresh(None, &name, config, run_id, me, 0),
                )
                .await
                .map(|_| ()),
            LockDecision::Take | LockDecision::Renew => api
                .replace(
                    &name,
                    &PostParams::default(),
                    &fresh(current, &name, config, run_id, me, transitions + 1),
                )
                .await
                .map(|_| ()),
            LockDecision::TakeOver {
                previous,
                expired_at,
            } => {
                tracing::warn!(lease = %name, %previous, %expired_at, "taking over a run lock whose holder stopped renewing it");
                api.replace(
                    &name,
                    &PostParams::default(),
                    &fresh(current, &name, config, run_id, me, transitions + 1),
                )
                .await
                .map(|_| ())
            }
            LockDecision::Wait { holder, expires_at } => {
                if started.elapsed() >= wait {
                    return Err(LockError::Held {
                        kind: lock.holder_kind(),
                        config: config.to_owned(),
                        lease: name,
                        holder,
                        waited: crate::model::units::HumanDuration(wait).to_string(),
                    });
                }
                tracing::info!(lease = %name, %holder, %expires_at, "waiting for another run of this config to finish");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = interrupted.cancelled() => return Err(LockError::Interrupted),
                }
                continue;
            }
        };
        match result {
            Ok(()) => break,
            // Someone else wrote first: read again.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(LockError::Api(e)),
        }
    }
    let stop = CancellationToken::new();
    let renewer = tokio::spawn(renew(
        api.clone(),
        name.clone(),
        me.to_owned(),
        stop.clone(),
    ));
    Ok(Held {
        api,
        name,
        me: me.to_owned(),
        stop,
        renewer,
    })
}

/// Renews the Lease until stopped; returns why the lock was lost, if it was: taken by another
/// run, deleted, or not renewed for a whole lease duration (another run may then take it).
async fn renew(
    api: Api<Lease>,
    name: String,
    me: String,
    stop: CancellationToken,
) -> Option<String> {
    let every = Duration::from_secs(u64::try_from(LEASE_SECONDS / 3).unwrap_or(20));
    let duration = Duration::from_secs(u64::try_from(LEASE_SECONDS).unwrap_or(60));
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return None,
        }
        let result = match api.get_opt(&name).await {
            Ok(Some(mut lease)) => {
                if view(&lease).holder.as_deref() != Some(me.as_str()) {
                    let why = format!("the run lock (Lease {name}) was taken by another run");
                    tracing::error!("{why}");
                    return Some(why);
                }
                if let Some(spec) = lease.spec.as_mut() {
                    spec.renew_time = Some(MicroTime(Timestamp::now()));
                }
                api.replace(&name, &PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
            Ok(None) => {
                let why = format!("the run lock (Lease {name}) was deleted by someone else");
                tracing::error!("{why}");
                return Some(why);
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => renewed = tokio::time::Instant::now(),
            Err(e) if renewed.elapsed() >= duration => {
                let why = format!(
                    "the run lock (Lease {name}) could not be renewed for {} ({e}); another run may have taken it",
                    crate::model::units::HumanDuration(duration)
                );
                tracing::error!("{why}");
                return Some(why);
            }
            Err(e) => tracing::warn!(lease = %name, error = %e, "could not renew the run lock"),
        }
    }
}

impl Held {
    /// Stops renewing and frees the lock for the next run. Returns why the lock was lost during
    /// the run, if it was (then another run may have worked at the same time).
    pub async fn release(self) -> Option<String> {
        self.stop.cancel();
        let lost = match self.renewer.await {
            Ok(lost) => lost,
            Err(e) => Some(format!("the run lock's renewal stopped: {e}")),
        };
        if lost.is_some() {
            return lost;
        }
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await
            && view(&lease).holder.as_deref() == Some(self.me.as_str())
        {
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
                spec.renew_time = None;
            }
            if let Err(e) = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
            {
                tracing::warn!(lease = %self.name, error = %e, "could not release the run lock; it expires by itself");
            }
        }
        None
    }
}

/// [`acquire`] for a command: a held lock or an interruption becomes the command's error.
pub async fn take(
    client: &kube::Client,
    namespace: &str,
    config: &str,
    lock: Lock,
    run_id: &str,
    wait: Duration,
    interrupt: &crate::runtime::signals::Interrupt,
) -> Result<Held, crate::error::Error> {
    acquire(
        client,
        namespace,
        config,
        lock,
        run_id,
        wait,
        interrupt.token(),
    )
    .await
    .map_err(|e| crate::error::Error::from_lock(e, interrupt.code()))
}
