//! VolumeSnapshot (snapshot.storage.k8s.io/v1), hand-written (generated crates pin older kube
//! majors), with the readiness predicates kentledge waits on as pure functions.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// `spec` of a VolumeSnapshot.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[kube(
    group = "snapshot.storage.k8s.io",
    version = "v1",
    kind = "VolumeSnapshot",
    namespaced,
    status = "VolumeSnapshotStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotSpec {
    /// What is snapshotted.
    pub source: VolumeSnapshotSource,
    /// The class; default: the driver's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_class_name: Option<String>,
}

/// The source of a snapshot: exactly one field.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotSource {
    /// A PVC in the snapshot's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim_name: Option<String>,
    /// A pre-provisioned content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_content_name: Option<String>,
}

/// `status` of a VolumeSnapshot.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotStatus {
    /// The bound content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_volume_snapshot_content_name: Option<String>,
    /// The cut: when the data was captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<Time>,
    /// Usable for restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_to_use: Option<bool>,
    /// Minimum size of a volume restored from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_size: Option<Quantity>,
    /// The last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<VolumeSnapshotError>,
}

/// An error reported on a snapshot.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct VolumeSnapshotError {
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

/// The cut time, once the data is captured.
pub fn cut_time(vs: Option<&VolumeSnapshot>) -> Option<jiff::Timestamp> {
    vs?.status.as_ref()?.creation_time.as_ref().map(|t| t.0)
}

/// Whether the snapshot is ready to use.
pub fn is_ready(vs: Option<&VolumeSnapshot>) -> bool {
    vs.and_then(|v| v.status.as_ref())
        .and_then(|s| s.ready_to_use)
        .unwrap_or(false)
}

/// The error message on the snapshot, if any.
pub fn error_message(vs: Option<&VolumeSnapshot>) -> Option<String> {
    vs?.status.as_ref()?.error.as_ref()?.message.clone()
}

/// Whether waiting for the cut is over for this snapshot: it is cut, or it failed.
pub fn cut_settled(vs: Option<&VolumeSnapshot>) -> bool {
    cut_time(vs).is_some() || error_message(vs).is_some()
}

/// Whether waiting for readiness is over for this snapshot: it is ready, or it failed.
pub fn ready_settled(vs: Option<&VolumeSnapshot>) -> bool {
    is_ready(vs) || error_message(vs).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vs(status: serde_json::Value) -> VolumeSnapshot {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
            "metadata": {"name": "s", "namespace": "n"},
            "spec": {"source": {"persistentVolumeClaimName": "data"}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn predicates() {
        assert_eq!(cut_time(None), None);
        assert!(!is_ready(None));
        let pending = vs(serde_json::json!({}));
        assert_eq!(cut_time(Some(&pending)), None);
        let cut =
            vs(serde_json::json!({"creationTime": "2026-11-22T10:00:00Z", "readyToUse": false}));
        assert_eq!(
            cut_time(Some(&cut)).unwrap().to_string(),
            "2026-11-22T10:00:00Z"
        );
        assert!(!is_ready(Some(&cut)));
        let failed = vs(serde_json::json!({"error": {"message": "boom"}}));
        assert_eq!(error_message(Some(&failed)).as_deref(), Some("boom"));
    }

    #[test]
    fn settled_for_the_cut_and_for_readiness() {
        let not_read = None;
        let pending = vs(serde_json::json!({}));
        let cut =
            vs(serde_json::json!({"creationTime": "2026-11-22T10:00:00Z", "readyToUse": false}));
        let ready =
            vs(serde_json::json!({"creationTime": "2026-11-22T10:00:00Z", "readyToUse": true}));
        let failed = vs(serde_json::json!({"error": {"message": "boom"}}));
        let cut_then_failed = vs(serde_json::json!({
            "creationTime": "2026-11-22T10:00:00Z", "readyToUse": false,
            "error": {"message": "boom"},
        }));
        for (what, v, cut_done, ready_done) in [
            ("not read", not_read, false, false),
            ("pending", Some(&pending), false, false),
            ("cut", Some(&cut), true, false),
            ("ready", Some(&ready), true, true),
            ("failed", Some(&failed), true, true),
            ("cut, then failed", Some(&cut_then_failed), true, true),
        ] {
            assert_eq!(cut_settled(v), cut_done, "cut settled: {what}");
            assert_eq!(ready_settled(v), ready_done, "ready settled: {what}");
        }
    }

    #[test]
    fn a_new_snapshot_serialises_as_the_api_expects() {
        let s = VolumeSnapshot::new(
            "data-20261122-100000",
            VolumeSnapshotSpec {
                source: VolumeSnapshotSource {
                    persistent_volume_claim_name: Some("data".into()),
                    ..Default::default()
                },
                volume_snapshot_class_name: Some("csi".into()),
            },
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["apiVersion"], "snapshot.storage.k8s.io/v1");
        assert_eq!(
            v["spec"],
            serde_json::json!({"source": {"persistentVolumeClaimName": "data"}, "volumeSnapshotClassName": "csi"})
        );
    }
}
