//! The snapshot controller and the driver's snapshotter in one: a VolumeSnapshot of a bound PVC
//! gets a VolumeSnapshotContent and a point-in-time copy of the volume. `status.creationTime` is
//! set only once the data is captured (the cut); `readyToUse` follows after the class's
//! `readyDelay`. Deleting a snapshot deletes its content and data when the policy is Delete,
//! and leaves them when it is Retain; finalizers hold both objects until that is done.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::Ctx;
use super::fsops::{copy_tree, remove_tree, tree_size};
use super::resources::{
    bool_at, parse_delay, snapshot_class_resource, snapshot_content_resource, snapshot_resource,
    str_at,
};

/// Why a reconcile did not finish.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// An API call failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// Disk work failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

const VS_BOUND: &str = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection";
const VS_AS_SOURCE: &str = "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection";
const CONTENT_BOUND: &str = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection";
const DEFAULT_CLASS: &str = "snapshot.storage.kubernetes.io/is-default-class";
const WAIT: Duration = Duration::from_millis(300);

fn content_name(vs: &DynamicObject) -> String {
    format!("snapcontent-{}", vs.uid().unwrap_or_default())
}

async fn set_finalizers(
    api: &Api<DynamicObject>,
    name: &str,
    finalizers: Vec<String>,
) -> kube::Result<()> {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": finalizers}})),
    )
    .await
    .map(|_| ())
}

async fn set_error(api: &Api<DynamicObject>, name: &str, message: &str) -> kube::Result<()> {
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({
        "status": {"readyToUse": false, "error": {"message": message, "time": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}},
    })))
    .await
    .map(|_| ())
}

/// The class a snapshot uses: the named one, else the default class of the PVC's driver.
async fn find_class(
    ctx: &Ctx,
    vs: &DynamicObject,
    pvc: &PersistentVolumeClaim,
) -> Result<Result<DynamicObject, String>, SnapshotError> {
    let classes: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &snapshot_class_resource());
    if let Some(name) = str_at(vs, "/spec/volumeSnapshotClassName") {
        return Ok(classes
            .get_opt(name)
            .await?
            .ok_or_else(|| format!("Failed to get snapshot class with error volumesnapshotclass.snapshot.storage.k8s.io \"{name}\" not found")));
    }
    let driver = super::provisioner::storage_class(ctx, pvc)
        .await?
        .map(|c| c.provisioner)
        .unwrap_or_default();
    let defaults: Vec<DynamicObject> = classes
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|c| {
            str_at(c, "/driver") == Some(driver.as_str())
                && c.annotations()
                    .get(DEFAULT_CLASS)
                    .is_some_and(|v| v == "true")
        })
        .collect();
    match defaults.len() {
        1 => Ok(Ok(defaults.into_iter().next().expect("one"))),
        0 => Ok(Err("Failed to set default snapshot class with error cannot find default snapshot class".into())),
        _ => Ok(Err("Failed to set default snapshot class with error default snapshot class: more than one default class".into())),
    }
}

fn param(class: &DynamicObject, key: &str) -> Option<String> {
    class
        .data
        .pointer(&format!("/parameters/{key}"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

async fn class_named(ctx: &Ctx, name: Option<&str>) -> kube::Result<Option<DynamicObject>> {
    let classes: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &snapshot_class_resource());
    match name {
        Some(n) => classes.get_opt(n).await,
        None => Ok(None),
    }
}

async fn reconcile_snapshot(
    vs: Arc<DynamicObject>,
    ctx: Arc<Ctx>,
) -> Result<Action, SnapshotError> {
    let ns = vs.namespace().unwrap_or_default();
    let name = vs.name_any();
    let snaps: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &ns, &snapshot_resource());
    let contents: Api<DynamicObject> =
        Api::all_with(ctx.client.clone(), &snapshot_content_resource());
    let finalizers = vs.finalizers().to_vec();

    if vs.metadata.deletion_timestamp.is_some() {
        if !finalizers
            .iter()
            .any(|f| f == VS_BOUND || f == VS_AS_SOURCE)
        {
            return Ok(Action::await_change());
        }
        // Held while a PVC is still being populated from it.
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
        let populating = claims
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .any(|c| {
                let spec = c.spec.as_ref();
                let from_this = spec
                    .and_then(|s| s.data_source.as_ref())
                    .is_some_and(|d| d.kind == "VolumeSnapshot" && d.name == name);
                from_this && c.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound")
            });
        if populating {
            return Ok(Action::requeue(WAIT));
        }
        if let Some(content) = str_at(&vs, "/status/boundVolumeSnapshotContentName")
            && let Some(c) = contents.get_opt(content).await?
            && str_at(&c, "/spec/deletionPolicy") == Some("Delete")
        {
            if c.metadata.deletion_timestamp.is_none() {
                contents.delete(content, &DeleteParams::default()).await?;
            }
            return Ok(Action::requeue(WAIT));
        }
        let keep: Vec<String> = finalizers
            .into_iter()
            .filter(|f| f != VS_BOUND && f != VS_AS_SOURCE)
            .collect();
        set_finalizers(&snaps, &name, keep).await?;
        return Ok(Action::await_change());
    }
    if bool_at(&vs, "/status/readyToUse") == Some(true) {
        return Ok(Action::await_change());
    }
    if let Some(content) = str_at(&vs, "/status/boundVolumeSnapshotContentName") {
        // Cut done: readyToUse follows after the class's readyDelay.
        let c = contents.get_opt(content).await?;
        // Only this driver's contents become ready here; a missing or foreign one is left alone.
        if c.as_ref().and_then(|c| str_at(c, "/spec/driver")) != Some(ctx.opts.driver.as_str()) {
            return Ok(Action::await_change());
        }
        let class = class_named(
            &ctx,
            c.as_ref()
                .and_then(|c| str_at(c, "/spec/volumeSnapshotClassName")),
        )
        .await?;
        let delay = class
            .as_ref()
            .and_then(|c| param(c, "readyDelay"))
            .and_then(|d| parse_delay(&d))
            .unwrap_or_default();
        let cut: jiff::Timestamp = str_at(&vs, "/status/creationTime")
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(jiff::Timestamp::now);
        let ready_at = cut + jiff::SignedDuration::try_from(delay).unwrap_or_default();
        let now = jiff::Timestamp::now();
        if now < ready_at {
            let left = (ready_at - now)
                .total(jiff::Unit::Millisecond)
                .unwrap_or(100.0)
                .max(10.0);
            return Ok(Action::requeue(Duration::from_millis(left as u64)));
        }
        if c.is_some() {
            contents
                .patch_status(
                    content,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"readyToUse": true}})),
                )
                .await?;
        }
        snaps
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"readyToUse": true}})),
            )
            .await?;
        return Ok(Action::await_change());
    }

    // A new snapshot.
    let Some(pvc_name) = str_at(&vs, "/spec/source/persistentVolumeClaimName").map(str::to_owned)
    else {
        if str_at(&vs, "/spec/source/volumeSnapshotContentName").is_some() {
            set_error(
                &snaps,
                &name,
                "pre-provisioned snapshots are not supported by the local test cluster",
            )
            .await?;
        }
        return Ok(Action::await_change());
    };
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(pvc) = claims.get_opt(&pvc_name).await? else {
        set_error(
            &snaps,
            &name,
            &format!("error getting PVC: persistentvolumeclaims \"{pvc_name}\" not found"),
        )
        .await?;
        return Ok(Action::requeue(Duration::from_secs(1)));
    };
    let Some(pv) = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|v| !v.is_empty())
    else {
        set_error(
            &snaps,
            &name,
            &format!(
                "the PVC {pvc_name} is not yet bound to a PV, will not attempt to take a snapshot"
            ),
        )
        .await?;
        return Ok(Action::requeue(Duration::from_secs(1)));
    };
    let class = match find_class(&ctx, &vs, &pvc).await? {
        Ok(c) => c,
        Err(message) => {
            set_error(&snaps, &name, &message).await?;
            return Ok(Action::requeue(Duration::from_secs(2)));
        }
    };
    if str_at(&class, "/driver") != Some(ctx.opts.driver.as_str()) {
        return Ok(Action::await_change());
    }
    let mut want = finalizers.clone();
    for f in [VS_AS_SOURCE, VS_BOUND] {
        if !want.iter().any(|x| x == f) {
            want.push(f.to_owned());
        }
    }
    if want != finalizers {
        set_finalizers(&snaps, &name, want).await?;
    }
    if let Some(message) = param(&class, "fail") {
        set_error(&snaps, &name, &format!(
            "Failed to check and update snapshot content: failed to take snapshot of the volume {pv}: \"rpc error: code = Internal desc = {message}\""
        ))
        .await?;
        return Ok(Action::await_change());
    }
    let content = content_name(&vs);
    // A snapshot is cut once, as a CSI driver's CreateSnapshot of the same name is idempotent: a
    // reconcile that read an older copy of the VolumeSnapshot (the last one's status not seen
    // yet) finds the content and writes its status again instead of cutting anew (which would
    // rewrite the snapshot's data under a clone being made from it).
    if let Some(c) = contents.get_opt(&content).await?
        && let Some(nanos) = c
            .data
            .pointer("/status/creationTime")
            .and_then(Value::as_i64)
    {
        let cut = jiff::Timestamp::from_nanosecond(i128::from(nanos))
            .unwrap_or_else(|_| jiff::Timestamp::now());
        let ready = bool_at(&c, "/status/readyToUse").unwrap_or(false);
        let size = c
            .data
            .pointer("/status/restoreSize")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        bind_status(&snaps, &name, &content, cut, ready, size).await?;
        return Ok(Action::requeue(WAIT));
    }
    if let Some(delay) = param(&class, "cutDelay").and_then(|d| parse_delay(&d)) {
        tokio::time::sleep(delay).await;
    }
    let cut = jiff::Timestamp::now();
    let dir = ctx.snapshot_dir(&content);
    remove_tree(&dir).await?;
    copy_tree(&ctx.volume_dir(&pv), &dir).await?;
    // restoreSize is the volume's capacity, as a CSI driver reports it (the smallest volume the
    // snapshot restores into), not the bytes of its data.
    let size = match super::provisioner::claim_capacity(&pvc) {
        Some(bytes) => bytes,
        None => tree_size(&dir).await?,
    };
    let policy = str_at(&class, "/deletionPolicy")
        .unwrap_or("Delete")
        .to_owned();
    let new_content: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotContent",
        "metadata": {"name": content, "finalizers": [CONTENT_BOUND]},
        "spec": {
            "deletionPolicy": policy,
            "driver": ctx.opts.driver,
            "source": {"volumeHandle": pv},
            "volumeSnapshotClassName": class.name_any(),
            "volumeSnapshotRef": {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                                   "namespace": ns, "name": name, "uid": vs.uid(), "resourceVersion": vs.resource_version()},
        },
    }))
    .expect("static content shape");
    match contents.create(&PostParams::default(), &new_content).await {
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    let delay = param(&class, "readyDelay")
        .and_then(|d| parse_delay(&d))
        .unwrap_or_default();
    let ready = delay.is_zero();
    contents
        .patch_status(&content, &PatchParams::default(), &Patch::Merge(json!({
            "status": {"snapshotHandle": content, "creationTime": cut.as_nanosecond() as i64, "readyToUse": ready, "restoreSize": size},
        })))
        .await?;
    bind_status(&snaps, &name, &content, cut, ready, size).await?;
    tracing::debug!(snapshot = %name, %content, size, "cut");
    Ok(if ready {
        Action::await_change()
    } else {
        Action::requeue(delay)
    })
}

/// A VolumeSnapshot's status once its content is cut.
async fn bind_status(
    snaps: &Api<DynamicObject>,
    name: &str,
    content: &str,
    cut: jiff::Timestamp,
    ready: bool,
    size: u64,
) -> kube::Result<()> {
    snaps
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({
                "status": {
                    "boundVolumeSnapshotContentName": content,
                    "creationTime": cut.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    "readyToUse": ready,
                    "restoreSize": size.to_string(),
                    "error": null,
                },
            })),
        )
        .await
        .map(|_| ())
}

async fn reconcile_content(c: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, SnapshotError> {
    if c.metadata.deletion_timestamp.is_none() || !c.finalizers().iter().any(|f| f == CONTENT_BOUND)
    {
        return Ok(Action::await_change());
    }
    if str_at(&c, "/spec/deletionPolicy") == Some("Delete") {
        remove_tree(&ctx.snapshot_dir(&c.name_any())).await?;
    }
    let contents: Api<DynamicObject> =
        Api::all_with(ctx.client.clone(), &snapshot_content_resource());
    let keep: Vec<String> = c
        .finalizers()
        .iter()
        .filter(|f| *f != CONTENT_BOUND)
        .cloned()
        .collect();
    set_finalizers(&contents, &c.name_any(), keep).await?;
    Ok(Action::await_change())
}

fn retry(_: Arc<impl Resource>, e: &SnapshotError, _: Arc<Ctx>) -> Action {
    tracing::debug!(error = %e, "snapshot reconcile failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

/// Runs the VolumeSnapshot controller until aborted.
pub async fn run_snapshots(ctx: Arc<Ctx>) {
    let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &snapshot_resource());
    Controller::new_with(api, watcher::Config::default(), snapshot_resource())
        .run(reconcile_snapshot, retry, ctx)
        .for_each(|_| async {})
        .await;
}

/// Runs the VolumeSnapshotContent finaliser until aborted.
pub async fn run_contents(ctx: Arc<Ctx>) {
    let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &snapshot_content_resource());
    Controller::new_with(api, watcher::Config::default(), snapshot_content_resource())
        .run(reconcile_content, retry, ctx)
        .for_each(|_| async {})
        .await;
}
