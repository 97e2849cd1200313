//! The run lock on the API: acquiring the Lease (waiting up to `--lock-timeout`), renewing it
//! while the run lasts, releasing it at the end. Decisions come from [`crate::plan::lock`]; every
//! write carries the resourceVersion read, so a race loses with 409 Conflict and retries.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio_util::sync::CancellationToken;

use crate::model::labels::{CONFIG, MANAGED_BY, MANAGER, RUN};
use crate::plan::lock::{
    CUT_WHILE_FROZEN, LEASE_SECONDS, LeaseView, Lock, LockDecision, LockError, Stale, decide,
};

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
    // What the previous holder noted is not this run's.
    if let Some(a) = lease.metadata.annotations.as_mut() {
        a.remove(CUT_WHILE_FROZEN);
    }
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
    /// The Lease as last written (renewals and the release write it without reading it first).
    last: Arc<Mutex<Option<Lease>>>,
    stop: CancellationToken,
    /// Ends with why the lock was lost, if it was.
    renewer: tokio::task::JoinHandle<Option<String>>,
    /// The run this one took the lock over from, if its holder had stopped renewing it.
    taken_over: Option<Stale>,
}

/// What a killed holder left on the Lease `l`: its run (label) and its note.
fn stale(l: &Lease) -> Stale {
    let run = l
        .metadata
        .labels
        .as_ref()
        .and_then(|m| m.get(RUN))
        .map(String::as_str)
        .unwrap_or_default();
    let note = l
        .metadata
        .annotations
        .as_ref()
        .and_then(|m| m.get(CUT_WHILE_FROZEN))
        .map(String::as_str);
    Stale::new(run, note)
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
    let mut taken_over;
    let written = loop {
        let current = api.get_opt(&name).await.map_err(LockError::Api)?;
        taken_over = None;
        let transitions = current
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.lease_transitions)
            .unwrap_or(0);
        let result = match decide(current.as_ref().map(view).as_ref(), me, Timestamp::now()) {
            LockDecision::Create => {
                api.create(
                    &PostParams::default(),
                    &fresh(None, &name, config, run_id, me, 0),
                )
                .await
            }
            LockDecision::Take | LockDecision::Renew => {
                api.replace(
                    &name,
                    &PostParams::default(),
                    &fresh(current, &name, config, run_id, me, transitions + 1),
                )
                .await
            }
            LockDecision::TakeOver {
                previous,
                expired_at,
            } => {
                tracing::warn!(lease = %name, %previous, %expired_at, "taking over a run lock whose holder stopped renewing it");
                taken_over = current.as_ref().map(stale);
                api.replace(
                    &name,
                    &PostParams::default(),
                    &fresh(current, &name, config, run_id, me, transitions + 1),
                )
                .await
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
            Ok(written) => break written,
            // Someone else wrote first: read again.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(LockError::Api(e)),
        }
    };
    let last = Arc::new(Mutex::new(Some(written)));
    let stop = CancellationToken::new();
    let renewer = tokio::spawn(renew(
        Own {
            api: api.clone(),
            name: name.clone(),
            me: me.to_owned(),
            last: last.clone(),
        },
        stop.clone(),
    ));
    Ok(Held {
        api,
        name,
        me: me.to_owned(),
        last,
        stop,
        renewer,
        taken_over,
    })
}

/// What became of a write to the Lease this run holds.
enum Wrote {
    Written,
    /// Another run holds it now.
    Taken,
    /// It is gone.
    Deleted,
}

/// This run's Lease, written from the copy last written (one request when nobody else wrote
/// since; on a conflict it is read again and written only if this run still holds it).
struct Own {
    api: Api<Lease>,
    name: String,
    me: String,
    last: Arc<Mutex<Option<Lease>>>,
}

impl Own {
    async fn write(&self, edit: impl Fn(&mut Lease)) -> Result<Wrote, kube::Error> {
        let mut known = self.last.lock().ok().and_then(|l| l.clone());
        let mut conflicts = 0;
        loop {
            let mut lease = match known.take() {
                Some(l) => l,
                None => match self.api.get_opt(&self.name).await? {
                    None => return Ok(Wrote::Deleted),
                    Some(l) if view(&l).holder.as_deref() != Some(self.me.as_str()) => {
                        return Ok(Wrote::Taken);
                    }
                    Some(l) => l,
                },
            };
            edit(&mut lease);
            match self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
            {
                Ok(written) => {
                    if let Ok(mut l) = self.last.lock() {
                        *l = Some(written);
                    }
                    return Ok(Wrote::Written);
                }
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Wrote::Deleted),
                // Written by someone else since: read it again.
                Err(kube::Error::Api(s)) if s.code == 409 && conflicts < 3 => conflicts += 1,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Renews the Lease until stopped; returns why the lock was lost, if it was: taken by another
/// run, deleted, or not renewed for a whole lease duration (another run may then take it).
async fn renew(own: Own, stop: CancellationToken) -> Option<String> {
    let name = &own.name;
    let every = Duration::from_secs(u64::try_from(LEASE_SECONDS / 3).unwrap_or(20));
    let duration = Duration::from_secs(u64::try_from(LEASE_SECONDS).unwrap_or(60));
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return None,
        }
        let result = own
            .write(|l| spec(l).renew_time = Some(MicroTime(Timestamp::now())))
            .await;
        match result {
            Ok(Wrote::Written) => renewed = tokio::time::Instant::now(),
            Ok(Wrote::Taken) => {
                let why = format!("the run lock (Lease {name}) was taken by another run");
                tracing::error!("{why}");
                return Some(why);
            }
            Ok(Wrote::Deleted) => {
                let why = format!("the run lock (Lease {name}) was deleted by someone else");
                tracing::error!("{why}");
                return Some(why);
            }
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

fn spec(l: &mut Lease) -> &mut LeaseSpec {
    l.spec.get_or_insert_with(Default::default)
}

impl Held {
    /// This run's Lease, to write.
    fn own(&self) -> Own {
        Own {
            api: self.api.clone(),
            name: self.name.clone(),
            me: self.me.clone(),
            last: self.last.clone(),
        }
    }

    /// The run this one took the lock over from (it stopped renewing: killed, or cut off).
    pub fn taken_over(&self) -> Option<&Stale> {
        self.taken_over.as_ref()
    }

    /// Writes `value` into the Lease's annotation `key` (kept by every later renewal); says why
    /// not when it could not.
    pub async fn note(&self, key: &str, value: &str) -> Result<(), String> {
        let wrote = self
            .own()
            .write(|l| {
                l.metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key.to_owned(), value.to_owned());
            })
            .await;
        match wrote {
            Ok(Wrote::Written) => Ok(()),
            Ok(Wrote::Taken) => Err(format!("the Lease {} is held by another run", self.name)),
            Ok(Wrote::Deleted) => Err(format!("the Lease {} was deleted", self.name)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Stops renewing and frees the lock for the next run. Returns why the lock was lost during
    /// the run, if it was (then another run may have worked at the same time).
    pub async fn release(self) -> Option<String> {
        self.stop.cancel();
        let own = self.own();
        let lost = match self.renewer.await {
            Ok(lost) => lost,
            Err(e) => Some(format!("the run lock's renewal stopped: {e}")),
        };
        if lost.is_some() {
            return lost;
        }
        let released = own
            .write(|l| {
                let spec = spec(l);
                spec.holder_identity = None;
                spec.renew_time = None;
            })
            .await;
        if let Err(e) = released {
            tracing::warn!(lease = %own.name, error = %e, "could not release the run lock; it expires by itself");
        }
        None
    }
}

/// The run that holds `lock` of `config` now, live or killed (it stopped renewing), if one does,
/// with what it noted: read without taking the lock.
pub async fn current_holder(
    client: &kube::Client,
    namespace: &str,
    config: &str,
    lock: Lock,
) -> Result<Option<Stale>, kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let Some(l) = api.get_opt(&lock.lease_name(config)).await? else {
        return Ok(None);
    };
    Ok(match decide(Some(&view(&l)), "", Timestamp::now()) {
        LockDecision::TakeOver { .. } | LockDecision::Wait { .. } => Some(stale(&l)),
        _ => None,
    })
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
