//! One read of what a run looks at in its namespace: PVCs, Deployments, StatefulSets, and
//! (when asked) Pods and VolumeSnapshots. Each list is one API call.

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

/// What to list besides PVCs and workloads.
#[derive(Clone, Copy, Debug, Default)]
pub struct Also<'a> {
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
    let mut out = Namespace {
        pvcs: Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
            .list(&lp)
            .await
            .map_err(Error::cluster("list PersistentVolumeClaims"))?
            .items,
        deployments: Api::<Deployment>::namespaced(client.clone(), ns)
            .list(&lp)
            .await
            .map_err(Error::cluster("list Deployments"))?
            .items,
        statefulsets: Api::<StatefulSet>::namespaced(client.clone(), ns)
            .list(&lp)
            .await
            .map_err(Error::cluster("list StatefulSets"))?
            .items,
        ..Namespace::default()
    };
    if also.pods {
        out.pods = Api::<Pod>::namespaced(client.clone(), ns)
            .list(&lp)
            .await
            .map_err(Error::cluster("list Pods"))?
            .items;
    }
    if let Some(sel) = also.snapshots {
        out.snapshots = Api::<VolumeSnapshot>::namespaced(client.clone(), ns)
            .list(&ListParams::default().labels(sel))
            .await
            .map_err(Error::cluster("list VolumeSnapshots"))?
            .items;
    }
    Ok(out)
}
