//! The snapshot.storage.k8s.io/v1 kinds as dynamic resources, and small JSON accessors.

use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::Value;

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", kind),
        plural,
    )
}

/// VolumeSnapshot (namespaced).
pub fn snapshot_resource() -> ApiResource {
    resource("VolumeSnapshot", "volumesnapshots")
}

/// VolumeSnapshotContent (cluster-scoped).
pub fn snapshot_content_resource() -> ApiResource {
    resource("VolumeSnapshotContent", "volumesnapshotcontents")
}

/// VolumeSnapshotClass (cluster-scoped).
pub fn snapshot_class_resource() -> ApiResource {
    resource("VolumeSnapshotClass", "volumesnapshotclasses")
}

/// A string at a JSON pointer of a dynamic object's fields (`/spec/source/...`).
pub fn str_at<'a>(o: &'a DynamicObject, pointer: &str) -> Option<&'a str> {
    o.data.pointer(pointer).and_then(Value::as_str)
}

/// A bool at a JSON pointer.
pub fn bool_at(o: &DynamicObject, pointer: &str) -> Option<bool> {
    o.data.pointer(pointer).and_then(Value::as_bool)
}

/// Parses a knob duration such as `500ms`, `2s` or `1m`.
pub fn parse_delay(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else {
        (s, 1000)
    };
    num.parse::<u64>()
        .ok()
        .map(|n| std::time::Duration::from_millis(n * mult))
}
