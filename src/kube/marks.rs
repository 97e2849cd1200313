//! The in-use mark on a VolumeSnapshot (`kentledge.io/in-use-by: <command>/<run>`): a command
//! that reads a snapshot (a backup copying it, a restore cloning it) sets it, and prune keeps a
//! marked snapshot.

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::model::labels::IN_USE_ANNOTATION;
use crate::model::snapshots::VolumeSnapshot;

/// Sets (or, with `None`, removes) the in-use mark; a failure is logged (prune may then delete
/// the snapshot after the reader is done with it, never while a clone of it is provisioned: a
/// PVC that names it as dataSource keeps it too).
pub async fn set_in_use(client: &kube::Client, ns: &str, snapshot: &str, value: Option<&str>) {
    let api: Api<VolumeSnapshot> = Api::namespaced(client.clone(), ns);
    let patch = json!({"metadata": {"annotations": {IN_USE_ANNOTATION: value}}});
    if let Err(e) = api
        .patch(snapshot, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(snapshot, error = %e, "could not update the in-use mark");
    }
}

/// Removes in-use marks that killed backup and restore runs left (`backup/<run>`,
/// `restore/<run>` of runs other than `run_id`). Callers hold the backup lock, which every run
/// that sets a mark holds, so no live run's mark is removed.
pub async fn release_stale(
    client: &kube::Client,
    snapshots: &[VolumeSnapshot],
    ns: &str,
    run_id: &str,
) {
    for s in snapshots {
        let mark = s
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(IN_USE_ANNOTATION));
        if let Some(m) = mark
            && (m.starts_with("backup/") || m.starts_with("restore/"))
            && m.split_once('/').map(|(_, r)| r) != Some(run_id)
        {
            let name = s.metadata.name.as_deref().unwrap_or_default();
            tracing::warn!(snapshot = name, mark = %m, "removing the in-use mark of an earlier run");
            set_in_use(client, ns, name, None).await;
        }
    }
}
