//! Workloads around an in-place restore: reading every kind that can mount a PVC, stopping one
//! (its state recorded in an annotation on it first, so a killed run's successor can bring it
//! back), bringing it back as recorded, the pods that still mount a PVC, and readiness.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::error::Error;
use crate::plan::restore::inplace::{Kind, Observed, Recorded, STOPPED_ANNOTATION, Workload};

/// The objects [`Observed`] borrows, as read.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Pods.
    pub pods: Vec<Pod>,
    /// ReplicaSets.
    pub replicasets: Vec<ReplicaSet>,
    /// Deployments.
    pub deployments: Vec<Deployment>,
    /// StatefulSets.
    pub statefulsets: Vec<StatefulSet>,
    /// DaemonSets.
    pub daemonsets: Vec<DaemonSet>,
    /// Jobs.
    pub jobs: Vec<Job>,
    /// CronJobs.
    pub cronjobs: Vec<CronJob>,
    /// HorizontalPodAutoscalers.
    pub autoscalers: Vec<HorizontalPodAutoscaler>,
}

impl Seen {
    /// The view the plan reads.
    pub fn observed(&self) -> Observed<'_> {
        Observed {
            pods: &self.pods,
            replicasets: &self.replicasets,
            deployments: &self.deployments,
            statefulsets: &self.statefulsets,
            daemonsets: &self.daemonsets,
            jobs: &self.jobs,
            cronjobs: &self.cronjobs,
            autoscalers: &self.autoscalers,
        }
    }
}

/// A namespaced kind kube-rs can read and patch (every kind this module touches).
trait Namespaced:
    kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> Namespaced for K where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
{
}

async fn list<K: Namespaced>(client: &kube::Client, ns: &str, what: &str) -> Result<Vec<K>, Error> {
    Ok(Api::<K>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(Error::cluster(&format!("list {what}")))?
        .items)
}

/// Reads every kind that can mount a PVC (one list each).
pub async fn read(client: &kube::Client, ns: &str) -> Result<Seen, Error> {
    Ok(Seen {
        pods: list(client, ns, "Pods").await?,
        replicasets: list(client, ns, "ReplicaSets").await?,
        deployments: list(client, ns, "Deployments").await?,
        statefulsets: list(client, ns, "StatefulSets").await?,
        daemonsets: list(client, ns, "DaemonSets").await?,
        jobs: list(client, ns, "Jobs").await?,
        cronjobs: list(client, ns, "CronJobs").await?,
        autoscalers: list(client, ns, "HorizontalPodAutoscalers").await?,
    })
}

fn note(rec: Option<&Recorded>) -> serde_json::Value {
    json!({"metadata": {"annotations": {STOPPED_ANNOTATION: rec.map(|r| serde_json::to_string(r).unwrap_or_default())}}})
}

async fn patch<K: Namespaced>(
    client: &kube::Client,
    ns: &str,
    name: &str,
    body: &serde_json::Value,
) -> Result<(), String> {
    Api::<K>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(body))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn scale<K: Namespaced>(
    client: &kube::Client,
    ns: &str,
    name: &str,
    replicas: i32,
) -> Result<(), String> {
    Api::<K>::namespaced(client.clone(), ns)
        .patch_scale(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Records what `w` is in its annotation (first, so that whatever happens next a later run
/// can bring it back). Says why not.
pub async fn record(
    client: &kube::Client,
    ns: &str,
    w: &Workload,
    rec: &Recorded,
) -> Result<(), String> {
    let (n, body) = (&w.name, note(Some(rec)));
    match w.kind {
        Kind::Deployment => patch::<Deployment>(client, ns, n, &body).await,
        Kind::StatefulSet => patch::<StatefulSet>(client, ns, n, &body).await,
        Kind::CronJob => patch::<CronJob>(client, ns, n, &body).await,
        Kind::Job => patch::<Job>(client, ns, n, &body).await,
        // Nothing to bring back: a bare pod is deleted for good.
        Kind::Pod => Ok(()),
        Kind::DaemonSet | Kind::Foreign => Err(format!("{} cannot be stopped", w.kind.name())),
    }
}

/// Stops `w` (recorded first with [`record`]): scale to 0, suspend, or delete a bare pod.
pub async fn halt(client: &kube::Client, ns: &str, w: &Workload) -> Result<(), String> {
    let n = &w.name;
    let suspend = json!({"spec": {"suspend": true}});
    match w.kind {
        Kind::Deployment => scale::<Deployment>(client, ns, n, 0).await,
        Kind::StatefulSet => scale::<StatefulSet>(client, ns, n, 0).await,
        Kind::CronJob => patch::<CronJob>(client, ns, n, &suspend).await,
        Kind::Job => patch::<Job>(client, ns, n, &suspend).await,
        Kind::Pod => Api::<Pod>::namespaced(client.clone(), ns)
            .delete(n, &DeleteParams::default())
            .await
            .map(|_| ())
            .or_else(|e| match e {
                kube::Error::Api(s) if s.code == 404 => Ok(()),
                e => Err(e.to_string()),
            }),
        Kind::DaemonSet | Kind::Foreign => Err(format!("{} cannot be stopped", w.kind.name())),
    }
}

/// Brings a stopped workload back as recorded and removes the record.
pub async fn start(
    client: &kube::Client,
    ns: &str,
    kind: Kind,
    name: &str,
    rec: &Recorded,
) -> Result<(), String> {
    match kind {
        Kind::Deployment => {
            scale::<Deployment>(client, ns, name, rec.replicas.unwrap_or(1)).await?;
            patch::<Deployment>(client, ns, name, &note(None)).await
        }
        Kind::StatefulSet => {
            scale::<StatefulSet>(client, ns, name, rec.replicas.unwrap_or(1)).await?;
            patch::<StatefulSet>(client, ns, name, &note(None)).await
        }
        Kind::CronJob => {
            let back = json!({"spec": {"suspend": rec.suspend.unwrap_or(false)}});
            patch::<CronJob>(client, ns, name, &back).await?;
            patch::<CronJob>(client, ns, name, &note(None)).await
        }
        Kind::Job => {
            let back = json!({"spec": {"suspend": rec.suspend.unwrap_or(false)}});
            patch::<Job>(client, ns, name, &back).await?;
            patch::<Job>(client, ns, name, &note(None)).await
        }
        Kind::Pod | Kind::DaemonSet | Kind::Foreign => Ok(()),
    }
}

/// Every workload an in-place restore of `pvc` stopped and has not brought back (its record);
/// an unreadable record is an error, never "not stopped".
pub fn stopped(seen: &Seen, pvc: &str) -> Result<Vec<(Kind, String, Recorded)>, String> {
    let mut out = Vec::new();
    let metas = seen
        .deployments
        .iter()
        .map(|d| (Kind::Deployment, &d.metadata))
        .chain(
            seen.statefulsets
                .iter()
                .map(|d| (Kind::StatefulSet, &d.metadata)),
        )
        .chain(seen.cronjobs.iter().map(|d| (Kind::CronJob, &d.metadata)))
        .chain(seen.jobs.iter().map(|d| (Kind::Job, &d.metadata)));
    for (kind, meta) in metas {
        if let Some(r) = crate::plan::restore::inplace::record_of(meta)?
            && r.pvc == pvc
        {
            out.push((kind, meta.name.clone().unwrap_or_default(), r));
        }
    }
    Ok(out)
}

/// Whose pods [`pods_mounting`] looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whose {
    /// The applications' (not kentledge's).
    Apps,
    /// kentledge's own movers.
    Movers,
    /// Both.
    All,
}

/// Pods that mount `pvc` and have not finished, terminating ones included (the volume is free
/// only when they are gone): the applications', kentledge's movers', or both.
pub async fn pods_mounting(
    client: &kube::Client,
    ns: &str,
    pvc: &str,
    whose: Whose,
) -> Result<Vec<String>, String> {
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut found: Vec<String> = Vec::new();
    if whose != Whose::Movers {
        found.extend(
            crate::plan::restore::inplace::workloads(
                pvc,
                &Observed {
                    pods: &pods.items,
                    ..Observed::default()
                },
            )
            .into_iter()
            .flat_map(|w| w.pods),
        );
    }
    if whose != Whose::Apps {
        found.extend(
            pods.items
                .iter()
                .filter(|p| crate::plan::restore::inplace::is_mover_mounting(p, pvc))
                .filter_map(|p| p.metadata.name.clone()),
        );
    }
    Ok(found)
}

/// Whether a workload brought back is ready (Deployments and StatefulSets: every replica ready
/// and up to date; the rest: at once).
pub async fn ready(
    client: &kube::Client,
    ns: &str,
    kind: Kind,
    name: &str,
) -> Result<bool, String> {
    match kind {
        Kind::Deployment => {
            let d = Api::<Deployment>::namespaced(client.clone(), ns)
                .get(name)
                .await
                .map_err(|e| e.to_string())?;
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let observed =
                d.status.as_ref().and_then(|s| s.observed_generation) >= d.metadata.generation;
            let st = d.status.unwrap_or_default();
            Ok(observed
                && st.ready_replicas.unwrap_or(0) >= want
                && st.updated_replicas.unwrap_or(0) >= want)
        }
        Kind::StatefulSet => {
            let s = Api::<StatefulSet>::namespaced(client.clone(), ns)
                .get(name)
                .await
                .map_err(|e| e.to_string())?;
            let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let observed =
                s.status.as_ref().and_then(|s| s.observed_generation) >= s.metadata.generation;
            Ok(observed && s.status.and_then(|st| st.ready_replicas).unwrap_or(0) >= want)
        }
        _ => Ok(true),
    }
}
