//! The storage agent against the test API server, driven only through kube-rs: provisioning,
//! snapshots (cut, readiness, errors, deletion policies), restore from a snapshot, clones; and
//! the workload controllers; the ServiceAccount token volume through a node's kubelet.

mod smoke;
mod token;
mod workloads;

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kentledge_nodeagents::storage::{
    self, Storage, StorageOptions, snapshot_class_resource, snapshot_content_resource,
    snapshot_resource,
};
use kentledge_testcluster::ServerOptions;
use kube::api::{Api, DeleteParams, PostParams};
use kube::core::DynamicObject;
use serde_json::{Value, json};

pub struct Env {
    pub client: kube::Client,
    data: tempfile::TempDir,
    _storage: storage::StorageHandle,
    _server: kentledge_testcluster::ServerHandle,
}

pub async fn env() -> Env {
    let (server, client) =
        kentledge_nodeagents::testing::server_with_namespace(ServerOptions::default(), "app").await;
    storage::install_defaults(&client, storage::DRIVER)
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let handle = Storage::start(client.clone(), StorageOptions::new(data.path()))
        .await
        .unwrap();
    Env {
        client,
        data,
        _storage: handle,
        _server: server,
    }
}

pub use kentledge_nodeagents::testing::eventually;

fn pvc(name: &str, size: &str, data_source: Option<Value>) -> PersistentVolumeClaim {
    let mut spec =
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}});
    if let Some(ds) = data_source {
        spec["dataSource"] = ds;
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

/// Creates a PVC and returns the directory of its bound volume.
async fn bound_dir(e: &Env, claim: PersistentVolumeClaim) -> PathBuf {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(e.client.clone(), "app");
    let name = claim.metadata.name.clone().unwrap();
    claims.create(&PostParams::default(), &claim).await.unwrap();
    let pv_name = eventually(10, "the PVC to bind", || async {
        let c = claims.get(&name).await.ok()?;
        (c.status.as_ref()?.phase.as_deref() == Some("Bound"))
            .then(|| c.spec?.volume_name)
            .flatten()
    })
    .await;
    let pv = Api::<PersistentVolume>::all(e.client.clone())
        .get(&pv_name)
        .await
        .unwrap();
    assert_eq!(pv.status.unwrap().phase.as_deref(), Some("Bound"));
    let spec = pv.spec.unwrap();
    assert_eq!(spec.claim_ref.unwrap().name.as_deref(), Some(name.as_str()));
    PathBuf::from(spec.host_path.unwrap().path)
}

fn snapshot(name: &str, pvc: &str, class: Option<&str>) -> DynamicObject {
    let mut spec = json!({"source": {"persistentVolumeClaimName": pvc}});
    if let Some(c) = class {
        spec["volumeSnapshotClassName"] = json!(c);
    }
    serde_json::from_value(json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "metadata": {"name": name}, "spec": spec})).unwrap()
}

fn snaps(e: &Env) -> Api<DynamicObject> {
    Api::namespaced_with(e.client.clone(), "app", &snapshot_resource())
}

async fn ready_snapshot(e: &Env, name: &str) -> DynamicObject {
    eventually(10, "the snapshot to be ready", || async {
        let s = snaps(e).get(name).await.ok()?;
        (s.data.pointer("/status/readyToUse") == Some(&json!(true))).then_some(s)
    })
    .await
}

fn write_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub/empty")).unwrap();
    std::fs::write(dir.join("sub/file.txt"), "hello\n").unwrap();
    std::os::unix::fs::symlink("sub/file.txt", dir.join("link")).unwrap();
    std::fs::hard_link(dir.join("sub/file.txt"), dir.join("hard")).unwrap();
    std::fs::write(dir.join("data.bin"), vec![7u8; 100_000]).unwrap();
}

fn assert_same_tree(a: &Path, b: &Path) {
    let out = std::process::Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    assert_eq!(
        ino(&b.join("hard")),
        ino(&b.join("sub/file.txt")),
        "hard link preserved"
    );
    assert_eq!(
        std::fs::read_link(b.join("link")).unwrap(),
        PathBuf::from("sub/file.txt")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_bound_to_a_fresh_directory_and_released_on_delete() {
    let e = env().await;
    let dir = bound_dir(&e, pvc("data", "1Gi", None)).await;
    assert!(dir.is_dir());
    assert!(dir.starts_with(e.data.path()));
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(e.client.clone(), "app");
    let c = claims.get("data").await.unwrap();
    assert_eq!(
        c.metadata.finalizers.as_deref(),
        Some(&["kubernetes.io/pvc-protection".to_string()][..])
    );
    let pv_name = c.spec.as_ref().and_then(|s| s.volume_name.clone()).unwrap();
    assert_eq!(
        c.spec.unwrap().storage_class_name.as_deref(),
        Some(storage::STORAGE_CLASS),
        "DefaultStorageClass admission names the default class"
    );
    let pvs: Api<PersistentVolume> = Api::all(e.client.clone());
    let pv = pvs.get(&pv_name).await.unwrap();
    assert_eq!(
        pv.metadata.finalizers.as_deref(),
        Some(&["kubernetes.io/pv-protection".to_string()][..])
    );
    claims
        .delete("data", &DeleteParams::default())
        .await
        .unwrap();
    // The provisioner marks the PV Released (pv-protection lets it go then) and reclaims it.
    eventually(10, "the PV and its directory to go", || async {
        (pvs.list(&Default::default()).await.ok()?.items.is_empty() && !dir.exists()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_a_point_in_time_copy_with_status_and_content() {
    let e = env().await;
    let dir = bound_dir(&e, pvc("data", "1Gi", None)).await;
    write_tree(&dir);
    snaps(&e)
        .create(&PostParams::default(), &snapshot("s1", "data", None))
        .await
        .unwrap();
    let s = ready_snapshot(&e, "s1").await;
    let content = s
        .data
        .pointer("/status/boundVolumeSnapshotContentName")
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        s.data
            .pointer("/status/creationTime")
            .unwrap()
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let size: u64 = s
        .data
        .pointer("/status/restoreSize")
        .unwrap()
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(size >= 100_000, "{size}");
    assert!(
        s.metadata
            .finalizers
            .as_ref()
            .unwrap()
            .iter()
            .any(|f| f == "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection")
    );
    let c = Api::<DynamicObject>::all_with(e.client.clone(), &snapshot_content_resource())
        .get(&content)
        .await
        .unwrap();
    assert_eq!(
        c.data.pointer("/spec/driver"),
        Some(&json!(storage::DRIVER))
    );
    assert_eq!(
        c.data.pointer("/spec/volumeSnapshotRef/name"),
        Some(&json!("s1"))
    );
    assert_eq!(
        c.data.pointer("/spec/deletionPolicy"),
        Some(&json!("Delete"))
    );
    assert_eq!(c.data.pointer("/status/readyToUse"), Some(&json!(true)));
    // Writes after the cut do not reach the snapshot: restore it and compare with the old tree.
    let before = tempfile::tempdir().unwrap();
    storage_copy(&dir, before.path());
    std::fs::write(dir.join("sub/file.txt"), "changed after the cut\n").unwrap();
    let restored = bound_dir(&e, pvc("restored", "1Gi", Some(json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "s1"})))).await;
    assert_same_tree(before.path(), &restored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_cut_once_even_when_a_reconcile_sees_it_without_its_status() {
    let e = env().await;
    let dir = bound_dir(&e, pvc("data", "1Gi", None)).await;
    write_tree(&dir);
    snaps(&e)
        .create(&PostParams::default(), &snapshot("s1", "data", None))
        .await
        .unwrap();
    let s = ready_snapshot(&e, "s1").await;
    let cut = s.data.pointer("/status/creationTime").cloned().unwrap();
    let before = tempfile::tempdir().unwrap();
    storage_copy(&dir, before.path());
    // After the cut the volume changes; then the driver reads the snapshot without the status
    // it wrote (as a reconcile from a cache that has not seen that write yet does).
    std::fs::write(dir.join("sub/file.txt"), "changed after the cut\n").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // a later second
    snaps(&e)
        .patch_status(
            "s1",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"status": null})),
        )
        .await
        .unwrap();
    let again = ready_snapshot(&e, "s1").await;
    assert_eq!(
        again.data.pointer("/status/creationTime"),
        Some(&cut),
        "the cut stays the cut"
    );
    let restored = bound_dir(&e, pvc("restored", "1Gi", Some(json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "s1"})))).await;
    assert_same_tree(before.path(), &restored);
}

fn storage_copy(src: &Path, dst: &Path) {
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dst)
        .status()
        .unwrap();
    assert!(ok.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pvc_can_be_cloned() {
    let e = env().await;
    let dir = bound_dir(&e, pvc("data", "1Gi", None)).await;
    write_tree(&dir);
    let clone = bound_dir(
        &e,
        pvc(
            "copy",
            "1Gi",
            Some(json!({"kind": "PersistentVolumeClaim", "name": "data"})),
        ),
    )
    .await;
    assert_ne!(dir, clone);
    assert_same_tree(&dir, &clone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cut_comes_before_readiness_with_a_ready_delay() {
    let e = env().await;
    bound_dir(&e, pvc("data", "1Gi", None)).await;
    let class: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
        "metadata": {"name": "slow"}, "driver": storage::DRIVER, "deletionPolicy": "Delete",
        "parameters": {"readyDelay": "1500ms"},
    }))
    .unwrap();
    Api::<DynamicObject>::all_with(e.client.clone(), &snapshot_class_resource())
        .create(&PostParams::default(), &class)
        .await
        .unwrap();
    snaps(&e)
        .create(
            &PostParams::default(),
            &snapshot("s1", "data", Some("slow")),
        )
        .await
        .unwrap();
    let cut = eventually(10, "the cut", || async {
        let s = snaps(&e).get("s1").await.ok()?;
        s.data
            .pointer("/status/creationTime")
            .is_some()
            .then_some(s)
    })
    .await;
    assert_eq!(
        cut.data.pointer("/status/readyToUse"),
        Some(&json!(false)),
        "cut before ready"
    );
    ready_snapshot(&e, "s1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_errors_and_a_missing_default_class_surface_in_status_error() {
    let e = env().await;
    bound_dir(&e, pvc("data", "1Gi", None)).await;
    let classes = Api::<DynamicObject>::all_with(e.client.clone(), &snapshot_class_resource());
    let failing: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
        "metadata": {"name": "broken"}, "driver": storage::DRIVER, "deletionPolicy": "Delete",
        "parameters": {"fail": "disk on fire"},
    }))
    .unwrap();
    classes
        .create(&PostParams::default(), &failing)
        .await
        .unwrap();
    snaps(&e)
        .create(
            &PostParams::default(),
            &snapshot("bad", "data", Some("broken")),
        )
        .await
        .unwrap();
    let msg = eventually(10, "status.error", || async {
        let s = snaps(&e).get("bad").await.ok()?;
        s.data
            .pointer("/status/error/message")
            .and_then(Value::as_str)
            .map(str::to_owned)
    })
    .await;
    assert!(
        msg.contains("rpc error: code = Internal desc = disk on fire"),
        "{msg}"
    );
    classes
        .delete(storage::SNAPSHOT_CLASS, &DeleteParams::default())
        .await
        .unwrap();
    snaps(&e)
        .create(&PostParams::default(), &snapshot("nodefault", "data", None))
        .await
        .unwrap();
    let msg = eventually(10, "status.error", || async {
        let s = snaps(&e).get("nodefault").await.ok()?;
        s.data
            .pointer("/status/error/message")
            .and_then(Value::as_str)
            .map(str::to_owned)
    })
    .await;
    assert_eq!(
        msg,
        "Failed to set default snapshot class with error cannot find default snapshot class"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_policies_delete_or_retain_the_content() {
    let e = env().await;
    bound_dir(&e, pvc("data", "1Gi", None)).await;
    let retain: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
        "metadata": {"name": "keep"}, "driver": storage::DRIVER, "deletionPolicy": "Retain",
    }))
    .unwrap();
    Api::<DynamicObject>::all_with(e.client.clone(), &snapshot_class_resource())
        .create(&PostParams::default(), &retain)
        .await
        .unwrap();
    snaps(&e)
        .create(&PostParams::default(), &snapshot("gone", "data", None))
        .await
        .unwrap();
    snaps(&e)
        .create(
            &PostParams::default(),
            &snapshot("kept", "data", Some("keep")),
        )
        .await
        .unwrap();
    let content_of = |s: &DynamicObject| {
        s.data
            .pointer("/status/boundVolumeSnapshotContentName")
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    };
    let gone = content_of(&ready_snapshot(&e, "gone").await);
    let kept = content_of(&ready_snapshot(&e, "kept").await);
    snaps(&e)
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    snaps(&e)
        .delete("kept", &DeleteParams::default())
        .await
        .unwrap();
    let contents = Api::<DynamicObject>::all_with(e.client.clone(), &snapshot_content_resource());
    eventually(10, "both snapshots to go", || async {
        (snaps(&e)
            .list(&Default::default())
            .await
            .ok()?
            .items
            .is_empty())
        .then_some(())
    })
    .await;
    eventually(10, "the Delete content to go", || async {
        contents.get_opt(&gone).await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(!e.data.path().join("snapshots").join(&gone).exists());
    assert!(
        contents.get_opt(&kept).await.unwrap().is_some(),
        "Retain keeps the content"
    );
    assert!(
        e.data.path().join("snapshots").join(&kept).exists(),
        "and its data"
    );
}
