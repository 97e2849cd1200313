//! One read of what a run looks at in its namespace: PVCs, and (when asked) Deployments and
//! StatefulSets, Pods and VolumeSnapshots. Each list is one API call; they go out together.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams};

use crate::error::Error;
use crate::model::snapshots::VolumeSnapshot;

/// The lists.
#[derive(Default)]
pub struct Namespace {
    /// PVCs.
    pub pvcs: Vec<PersistentVolumeClaim>,
    /// Deployments.
    pub deployments: Vec<Deployment>,
    /// StatefulSets.
    pub statefulsets: Vec<StatefulSet>,
    /// Pods (only when asked).
    pub pods: Vec<Pod>,
    /// VolumeSnapshots matching a label selector (only when asked).
    pub snapshots: Vec<VolumeSnapshot>,
}

/// What to list besides PVCs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Also<'a> {
    /// Deployments and StatefulSets (targets name workloads).
    pub workloads: bool,
    /// Pods.
    pub pods: bool,
    /// VolumeSnapshots with this label selector.
    pub snapshots: Option<&'a str>,
}

/// Lists the namespace.
pub async fn namespace(
    client: &kube::Client,
    ns: &str,
    also: Also<'_>,
) -> Result<Namespace, Error> {
    let lp = ListParams::default();
    let by_label = ListParams::default().labels(also.snapshots.unwrap_or_default());
    let api = || client.clone();
    let (pvcs, deployments, statefulsets, pods, snapshots) = futures::try_join!(
        listed(
            true,
            "list PersistentVolumeClaims",
            Api::namespaced(api(), ns),
            &lp
        ),
        listed(
            also.workloads,
            "list Deployments",
            Api::namespaced(api(), ns),
            &lp
        ),
        listed(
            also.workloads,
            "list StatefulSets",
            Api::namespaced(api(), ns),
            &lp
        ),
        listed(also.pods, "list Pods", Api::namespaced(api(), ns), &lp),
        listed(
            also.snapshots.is_some(),
            "list VolumeSnapshots",
            Api::namespaced(api(), ns),
            &by_label,
        ),
    )?;
    Ok(Namespace {
        pvcs,
        deployments,
        statefulsets,
        pods,
        snapshots,
    })
}

/// The items of one list, when `asked` (none otherwise, without a request).
async fn listed<K>(
    asked: bool,
    what: &'static str,
    api: Api<K>,
    lp: &ListParams,
) -> Result<Vec<K>, Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if !asked {
        return Ok(Vec::new());
    }
    api.list(lp)
        .await
        .map(|l| l.items)
        .map_err(Error::cluster(what))
}
