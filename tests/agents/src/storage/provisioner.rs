//! The provisioner: binds each pending PVC of this driver's StorageClass to a new PV (a fresh
//! directory), populated from a `dataSource` VolumeSnapshot or cloned from a PVC; and deletes
//! the directory and the PV of a released volume whose reclaim policy is Delete.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::Ctx;
use super::fsops::{copy_tree, mount_limited, quantity_bytes, remove_tree, unmount_now};
use super::resources::{bool_at, snapshot_resource, str_at};

/// Why a reconcile did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// An API call failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// Disk work failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
const WAIT: Duration = Duration::from_millis(300);

fn pvc_storage_request(pvc: &PersistentVolumeClaim) -> String {
    pvc.spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone())
        .unwrap_or_else(|| "1Gi".into())
}

/// Whether volumes of `class` hold no more than their size (parameter `limitCapacity: "true"`).
fn limited(class: &StorageClass) -> bool {
    class
        .parameters
        .as_ref()
        .and_then(|p| p.get("limitCapacity"))
        .is_some_and(|v| v == "true")
}

/// Makes `dir` a size-limited volume of `request` (a tmpfs), or grows the one there; says why
/// it could not on the claim.
async fn limit(
    ctx: &Ctx,
    pvc: &PersistentVolumeClaim,
    dir: &std::path::Path,
    request: &str,
) -> Result<bool, ProvisionError> {
    let Some(bytes) = quantity_bytes(request) else {
        warn(
            ctx,
            pvc,
            "ProvisioningFailed",
            &format!("size {request} is not a quantity"),
        )
        .await;
        return Ok(false);
    };
    let mounted = ctx
        .mounts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(dir);
    if let Err(e) = mount_limited(dir, bytes, mounted).await {
        warn(ctx, pvc, "ProvisioningFailed", &e.to_string()).await;
        return Ok(false);
    }
    ctx.mounts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(dir.to_owned());
    Ok(true)
}

/// Unmounts the size-limited volume at `dir`, if there is one.
fn unlimit(ctx: &Ctx, dir: &std::path::Path) {
    if ctx
        .mounts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(dir)
    {
        unmount_now(dir);
    }
}

/// A bound size-limited volume whose claim asks for more than it has is grown, as the
/// external resizer and the kubelet do together: the volume, then the PV's capacity, then the
/// claim's status.
async fn grow(ctx: &Ctx, pvc: &PersistentVolumeClaim, pv: &str) -> Result<(), ProvisionError> {
    let request = pvc_storage_request(pvc);
    let has = pvc
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(|q| quantity_bytes(&q.0));
    let dir = ctx.volume_dir(pv);
    let ours = ctx
        .mounts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&dir);
    if !ours || has.is_none_or(|h| quantity_bytes(&request).is_none_or(|r| r <= h)) {
        return Ok(());
    }
    if !limit(ctx, pvc, &dir, &request).await? {
        return Ok(());
    }
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    volumes
        .patch(
            pv,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"capacity": {"storage": request}}})),
        )
        .await?;
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(ctx.client.clone(), &pvc.namespace().unwrap_or_default());
    claims
        .patch_status(
            &pvc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"capacity": {"storage": request}}})),
        )
        .await?;
    tracing::debug!(pvc = %pvc.name_any(), %request, "grown");
    Ok(())
}

/// The PVC's StorageClass: the named one, or the cluster default when none is named.
pub(crate) async fn storage_class(
    ctx: &Ctx,
    pvc: &PersistentVolumeClaim,
) -> kube::Result<Option<StorageClass>> {
    let classes: Api<StorageClass> = Api::all(ctx.client.clone());
    let named = pvc.spec.as_ref().and_then(|s| s.storage_class_name.clone());
    match named {
        Some(name) if !name.is_empty() => classes.get_opt(&name).await,
        Some(_) => Ok(None),
        None => Ok(classes
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .find(|c| {
                c.annotations()
                    .get("storageclass.kubernetes.io/is-default-class")
                    .is_some_and(|v| v == "true")
            })),
    }
}

/// Emits a Warning event about a PVC (best effort).
async fn warn(ctx: &Ctx, pvc: &PersistentVolumeClaim, reason: &str, message: &str) {
    let ns = pvc.namespace().unwrap_or_default();
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(ctx.client.clone(), &ns);
    let now = jiff::Timestamp::now().to_string();
    let ev = json!({
        "metadata": {"generateName": format!("{}.", pvc.name_any())},
        "involvedObject": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": ns,
                           "name": pvc.name_any(), "uid": pvc.uid()},
        "reason": reason, "message": message, "type": "Warning",
        "source": {"component": ctx.opts.driver},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    });
    if let Ok(ev) = serde_json::from_value(ev) {
        let _ = events.create(&PostParams::default(), &ev).await;
    }
}

/// Where the new volume's data comes from.
enum Source {
    Empty,
    Dir(std::path::PathBuf, Option<u64>),
    NotYet(String),
    Invalid(String),
}

async fn data_source(ctx: &Ctx, pvc: &PersistentVolumeClaim) -> Result<Source, ProvisionError> {
    let spec = pvc.spec.as_ref();
    let Some(ds) = spec
        .and_then(|s| {
            s.data_source_ref
                .as_ref()
                .map(|r| (r.kind.clone(), r.name.clone(), r.api_group.clone()))
        })
        .or_else(|| {
            spec.and_then(|s| {
                s.data_source
                    .as_ref()
                    .map(|r| (r.kind.clone(), r.name.clone(), r.api_group.clone()))
            })
        })
    else {
        return Ok(Source::Empty);
    };
    let ns = pvc.namespace().unwrap_or_default();
    match (ds.0.as_str(), ds.2.as_deref().unwrap_or("")) {
        ("VolumeSnapshot", "snapshot.storage.k8s.io") => {
            let snaps: Api<DynamicObject> =
                Api::namespaced_with(ctx.client.clone(), &ns, &snapshot_resource());
            let Some(vs) = snaps.get_opt(&ds.1).await? else {
                return Ok(Source::NotYet(format!("VolumeSnapshot {} not found", ds.1)));
            };
            if bool_at(&vs, "/status/readyToUse") != Some(true) {
                return Ok(Source::NotYet(format!(
                    "VolumeSnapshot {} is not ready",
                    ds.1
                )));
            }
            let Some(content) = str_at(&vs, "/status/boundVolumeSnapshotContentName") else {
                return Ok(Source::NotYet(format!(
                    "VolumeSnapshot {} has no content",
                    ds.1
                )));
            };
            let size = str_at(&vs, "/status/restoreSize").and_then(quantity_bytes);
            Ok(Source::Dir(ctx.snapshot_dir(content), size))
        }
        ("PersistentVolumeClaim", "") => {
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
            let Some(src) = claims.get_opt(&ds.1).await? else {
                return Ok(Source::NotYet(format!("source PVC {} not found", ds.1)));
            };
            let Some(pv) = src
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.clone())
                .filter(|v| !v.is_empty())
            else {
                return Ok(Source::NotYet(format!("source PVC {} is not bound", ds.1)));
            };
            Ok(Source::Dir(ctx.volume_dir(&pv), claim_capacity(&src)))
        }
        (kind, group) => Ok(Source::Invalid(format!(
            "unsupported dataSource {group}/{kind}"
        ))),
    }
}

/// The bytes a bound claim holds (`status.capacity.storage`).
pub(super) fn claim_capacity(pvc: &PersistentVolumeClaim) -> Option<u64> {
    pvc.status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(|q| quantity_bytes(&q.0))
}

async fn reconcile_claim(
    pvc: Arc<PersistentVolumeClaim>,
    ctx: Arc<Ctx>,
) -> Result<Action, ProvisionError> {
    if pvc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = pvc.namespace().unwrap_or_default();
    let name = pvc.name_any();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let bound_phase = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let volume_name = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|v| !v.is_empty());
    if let (true, Some(pv)) = (bound_phase, &volume_name) {
        grow(&ctx, &pvc, pv).await?;
        return Ok(Action::await_change());
    }
    let Some(class) = storage_class(&ctx, &pvc).await? else {
        return Ok(Action::await_change());
    };
    if class.provisioner != ctx.opts.driver
        || volume_name.as_ref().is_some_and(|v| !v.starts_with("pvc-"))
    {
        // Another driver's claim, or one bound by hand to a pre-provisioned PV.
        return Ok(Action::await_change());
    }
    let pv_name = format!("pvc-{}", pvc.uid().unwrap_or_default());
    let request = pvc_storage_request(&pvc);
    let dir = ctx.volume_dir(&pv_name);
    if volumes.get_opt(&pv_name).await?.is_none() {
        match data_source(&ctx, &pvc).await? {
            Source::NotYet(why) => {
                tracing::debug!(pvc = %name, %why, "waiting for the data source");
                return Ok(Action::requeue(WAIT));
            }
            Source::Invalid(why) => {
                warn(&ctx, &pvc, "ProvisioningFailed", &why).await;
                return Ok(Action::await_change());
            }
            Source::Dir(src, size) => {
                if let (Some(need), Some(asked)) = (size, quantity_bytes(&request))
                    && asked < need
                {
                    warn(&ctx, &pvc, "ProvisioningFailed", &format!(
                            "requested volume size {asked} is less than the size {need} for the source"
                        )).await;
                    return Ok(Action::requeue(Duration::from_secs(2)));
                }
                unlimit(&ctx, &dir);
                remove_tree(&dir).await?;
                if limited(&class) && !limit(&ctx, &pvc, &dir, &request).await? {
                    return Ok(Action::requeue(Duration::from_secs(2)));
                }
                copy_tree(&src, &dir).await?;
            }
            Source::Empty => {
                tokio::fs::create_dir_all(&dir).await?;
                if limited(&class) && !limit(&ctx, &pvc, &dir, &request).await? {
                    return Ok(Action::requeue(Duration::from_secs(2)));
                }
            }
        }
        let access_modes = pvc
            .spec
            .as_ref()
            .and_then(|s| s.access_modes.clone())
            .unwrap_or_else(|| vec!["ReadWriteOnce".into()]);
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": pv_name, "annotations": {PROVISIONED_BY: ctx.opts.driver}},
            "spec": {
                "capacity": {"storage": request},
                "accessModes": access_modes,
                "persistentVolumeReclaimPolicy": class.reclaim_policy.clone().unwrap_or_else(|| "Delete".into()),
                "storageClassName": class.metadata.name,
                "volumeMode": "Filesystem",
                "hostPath": {"path": dir.display().to_string(), "type": "Directory"},
                "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": ns,
                             "name": name, "uid": pvc.uid(), "resourceVersion": pvc.resource_version()},
            },
        }))
        .expect("PV from static shape");
        match volumes.create(&PostParams::default(), &pv).await {
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
    }
    // Bind both sides, as the PV controller does.
    volumes
        .patch_status(
            &pv_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Bound"}})),
        )
        .await?;
    claims
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"annotations": {
                    "pv.kubernetes.io/bind-completed": "yes",
                    "pv.kubernetes.io/bound-by-controller": "yes",
                    "volume.kubernetes.io/storage-provisioner": ctx.opts.driver,
                }},
                "spec": {"volumeName": pv_name},
            })),
        )
        .await?;
    let access_modes = pvc
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default();
    claims
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({
            "status": {"phase": "Bound", "accessModes": access_modes, "capacity": {"storage": request}},
        })))
        .await?;
    tracing::debug!(pvc = %name, pv = %pv_name, "bound");
    Ok(Action::await_change())
}

async fn reconcile_volume(
    pv: Arc<PersistentVolume>,
    ctx: Arc<Ctx>,
) -> Result<Action, ProvisionError> {
    if pv.annotations().get(PROVISIONED_BY) != Some(&ctx.opts.driver) {
        return Ok(Action::await_change());
    }
    let Some(claim) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return Ok(Action::await_change());
    };
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(ctx.client.clone(), claim.namespace.as_deref().unwrap_or(""));
    let live = claims.get_opt(claim.name.as_deref().unwrap_or("")).await?;
    if live.as_ref().is_some_and(|c| c.uid() == claim.uid) {
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    // Released: say so first, as the PV controller does (pv-protection holds a deleted PV while it is
    // Bound), then reclaim.
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let policy = pv
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.clone())
        .unwrap_or_default();
    if pv.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Released") {
        volumes
            .patch_status(
                &pv.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": "Released"}})),
            )
            .await?;
    }
    if policy == "Delete" {
        let dir = ctx.volume_dir(&pv.name_any());
        unlimit(&ctx, &dir);
        remove_tree(&dir).await?;
        match volumes
            .delete(&pv.name_any(), &DeleteParams::default())
            .await
        {
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
    }
    Ok(Action::await_change())
}

fn retry(_: Arc<impl Resource>, e: &ProvisionError, _: Arc<Ctx>) -> Action {
    tracing::debug!(error = %e, "storage reconcile failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

/// Runs the claim binder until aborted.
pub async fn run_claims(ctx: Arc<Ctx>) {
    // Claims waiting for a snapshot or a source PVC requeue themselves (see reconcile_claim).
    let claims: Api<PersistentVolumeClaim> = Api::all(ctx.client.clone());
    Controller::new(claims, watcher::Config::default())
        .run(reconcile_claim, retry, ctx)
        .for_each(|_| async {})
        .await;
}

/// Runs the volume reclaimer until aborted.
pub async fn run_volumes(ctx: Arc<Ctx>) {
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::all(ctx.client.clone());
    Controller::new(volumes, watcher::Config::default())
        .watches(claims, watcher::Config::default(), |pvc| {
            pvc.spec
                .and_then(|s| s.volume_name)
                .map(|v| ObjectRef::new(&v))
        })
        .run(reconcile_volume, retry, ctx)
        .for_each(|_| async {})
        .await;
}
