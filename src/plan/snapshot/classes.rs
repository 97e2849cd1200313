//! Default classes: which CSI driver each PVC's volume has (its StorageClass's provisioner, the
//! cluster's default StorageClass when it names none) and which VolumeSnapshotClass is each
//! driver's default (`snapshot.storage.kubernetes.io/is-default-class: "true"`). Pure: the flow
//! lists the classes, this decides.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;

use super::Classes;

/// A VolumeSnapshotClass as far as defaults go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotClass {
    /// Its name.
    pub name: String,
    /// Its `driver`.
    pub driver: String,
    /// Whether it is annotated as its driver's default.
    pub is_default: bool,
}

/// The classes of `pvcs` given the cluster's StorageClasses and VolumeSnapshotClasses.
pub fn classes(
    pvcs: &[PersistentVolumeClaim],
    storage: &[StorageClass],
    snapshot: &[SnapshotClass],
) -> Classes {
    let default_sc = storage.iter().find(|c| {
        c.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("storageclass.kubernetes.io/is-default-class"))
            .is_some_and(|v| v == "true")
    });
    let mut pvc_driver = BTreeMap::new();
    for p in pvcs {
        let named = p
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref());
        let sc = match named {
            Some(n) => storage
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(n)),
            None => default_sc,
        };
        if let (Some(name), Some(sc)) = (p.metadata.name.clone(), sc) {
            pvc_driver.insert(name, sc.provisioner.clone());
        }
    }
    let default_for_driver = snapshot
        .iter()
        .filter(|c| c.is_default)
        .map(|c| (c.driver.clone(), c.name.clone()))
        .collect();
    Classes {
        pvc_driver,
        default_for_driver,
        readable: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_pvc_gets_its_classs_driver_and_each_driver_its_default_snapshot_class() {
        let pvcs: Vec<PersistentVolumeClaim> = serde_json::from_value(json!([
            {"metadata": {"name": "fast"}, "spec": {"storageClassName": "ssd"}},
            {"metadata": {"name": "plain"}, "spec": {}},
            {"metadata": {"name": "lost"}, "spec": {"storageClassName": "gone"}},
        ]))
        .unwrap();
        let storage: Vec<StorageClass> = serde_json::from_value(json!([
            {"metadata": {"name": "ssd"}, "provisioner": "ssd.csi.example.com"},
            {"metadata": {"name": "std", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
             "provisioner": "hostpath.csi.k8s.io"},
        ]))
        .unwrap();
        let snapshot = [
            SnapshotClass {
                name: "ssd-snap".into(),
                driver: "ssd.csi.example.com".into(),
                is_default: true,
            },
            SnapshotClass {
                name: "hp-other".into(),
                driver: "hostpath.csi.k8s.io".into(),
                is_default: false,
            },
            SnapshotClass {
                name: "hp-snap".into(),
                driver: "hostpath.csi.k8s.io".into(),
                is_default: true,
            },
        ];
        let c = classes(&pvcs, &storage, &snapshot);
        assert_eq!(
            c.pvc_driver,
            BTreeMap::from([
                ("fast".to_owned(), "ssd.csi.example.com".to_owned()),
                ("plain".to_owned(), "hostpath.csi.k8s.io".to_owned()),
            ]),
            "a PVC naming a missing class has no known driver"
        );
        assert_eq!(
            c.default_for_driver,
            BTreeMap::from([
                ("ssd.csi.example.com".to_owned(), "ssd-snap".to_owned()),
                ("hostpath.csi.k8s.io".to_owned(), "hp-snap".to_owned()),
            ])
        );
        assert!(c.readable);
    }
}
