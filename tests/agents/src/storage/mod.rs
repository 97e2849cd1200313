//! Storage: a CSI hostpath-style driver. Every PersistentVolume is a directory on local disk
//! (`<data>/volumes/<pv>`, exposed as the PV's `spec.hostPath.path`), every snapshot a
//! point-in-time copy (`<data>/snapshots/<content>`). Two controllers, both ordinary API
//! clients: the provisioner (binds PVCs to new PVs, populates from a VolumeSnapshot or clones a
//! PVC, deletes released volumes) and the snapshot controller (VolumeSnapshot → content and
//! status: cut, creationTime, readyToUse, restoreSize, error; deletion policy Delete/Retain).
//!
//! Test knobs ride on VolumeSnapshotClass `parameters`, as a CSI driver's would:
//! `cutDelay` and `readyDelay` (durations such as `2s`) and `fail` (an error message). A
//! StorageClass with the parameter `limitCapacity: "true"` makes volumes that hold no more than
//! their requested size (each a tmpfs of that size; needs root), and grows them when their claim
//! asks for more: for tests of a volume that fills up.

mod fsops;
mod provisioner;
mod resources;
mod snapshotter;

use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, PostParams};
use kube::core::DynamicObject;
use serde_json::json;

pub use resources::{snapshot_class_resource, snapshot_content_resource, snapshot_resource};

/// The CSI driver name this agent implements.
pub const DRIVER: &str = "hostpath.csi.kentledge.io";
/// The StorageClass [`install_defaults`] creates (the cluster's default).
pub const STORAGE_CLASS: &str = "hostpath";
/// The VolumeSnapshotClass [`install_defaults`] creates (the driver's default).
pub const SNAPSHOT_CLASS: &str = "hostpath-snapclass";

/// Settings of the storage agent.
#[derive(Clone, Debug)]
pub struct StorageOptions {
    /// Where volumes and snapshots live.
    pub data_dir: PathBuf,
    /// The driver name (default [`DRIVER`]).
    pub driver: String,
}

impl StorageOptions {
    /// Options with the default driver name.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StorageOptions {
            data_dir: data_dir.into(),
            driver: DRIVER.to_owned(),
        }
    }
}

/// Shared state of the storage controllers.
pub(crate) struct Ctx {
    pub client: kube::Client,
    pub opts: StorageOptions,
    /// The size-limited volumes' mounts (unmounted when the agent stops).
    pub mounts: std::sync::Mutex<std::collections::BTreeSet<PathBuf>>,
}

impl Ctx {
    pub fn volume_dir(&self, pv: &str) -> PathBuf {
        self.opts.data_dir.join("volumes").join(pv)
    }
    pub fn snapshot_dir(&self, content: &str) -> PathBuf {
        self.opts.data_dir.join("snapshots").join(content)
    }
}

/// The running storage controllers; dropping it stops them.
pub struct StorageHandle {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    ctx: Arc<Ctx>,
}

impl Drop for StorageHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let mounts =
            std::mem::take(&mut *self.ctx.mounts.lock().unwrap_or_else(|e| e.into_inner()));
        for dir in mounts {
            fsops::unmount_now(&dir);
        }
    }
}

/// The storage agent.
pub struct Storage;

impl Storage {
    /// Starts the provisioner and the snapshot controller.
    pub async fn start(
        client: kube::Client,
        opts: StorageOptions,
    ) -> std::io::Result<StorageHandle> {
        tokio::fs::create_dir_all(opts.data_dir.join("volumes")).await?;
        tokio::fs::create_dir_all(opts.data_dir.join("snapshots")).await?;
        let ctx = Arc::new(Ctx {
            client,
            opts,
            mounts: Default::default(),
        });
        let tasks = vec![
            tokio::spawn(provisioner::run_claims(ctx.clone())),
            tokio::spawn(provisioner::run_volumes(ctx.clone())),
            tokio::spawn(snapshotter::run_snapshots(ctx.clone())),
            tokio::spawn(snapshotter::run_contents(ctx.clone())),
        ];
        Ok(StorageHandle { tasks, ctx })
    }
}

/// Creates the default StorageClass and VolumeSnapshotClass for `driver` (as an admin installing
/// a CSI driver would); existing ones are left as they are.
pub async fn install_defaults(client: &kube::Client, driver: &str) -> kube::Result<()> {
    let classes: Api<StorageClass> = Api::all(client.clone());
    let sc: StorageClass = serde_json::from_value(json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": driver,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": true,
    }))
    .expect("static StorageClass");
    ignore_exists(classes.create(&PostParams::default(), &sc).await)?;
    let snap_classes: Api<DynamicObject> =
        Api::all_with(client.clone(), &snapshot_class_resource());
    let vsc: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotClass",
        "metadata": {
            "name": SNAPSHOT_CLASS,
            "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"},
        },
        "driver": driver,
        "deletionPolicy": "Delete",
    }))
    .expect("static VolumeSnapshotClass");
    ignore_exists(snap_classes.create(&PostParams::default(), &vsc).await)?;
    Ok(())
}

fn ignore_exists<T>(r: kube::Result<T>) -> kube::Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
