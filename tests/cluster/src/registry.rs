//! The resource registry: every kind the server knows, with its plural, scope, subresources, verbs and rules.

use crate::status::ResourceName;

/// How a resource's object names are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most resources).
    Subdomain,
    /// RFC 1123 label (namespaces).
    Label,
    /// Any path segment (RBAC objects).
    PathSegment,
}

/// How a resource is stored and served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// A stored object.
    Stored,
    /// A create-only review (SelfSubjectAccessReview, SelfSubjectReview) answered without storage.
    Review,
}

/// One subresource of a resource.
#[derive(Debug, Clone, Copy)]
pub struct Subresource {
    /// `status`, `scale`, `exec`, ...
    pub name: &'static str,
    /// The kind it speaks (`Pod`, `Scale`, `PodExecOptions`).
    pub kind: &'static str,
    /// Discovery verbs.
    pub verbs: &'static [&'static str],
    /// For `scale`: the group/version of the kind.
    pub kind_group_version: Option<(&'static str, &'static str)>,
}

/// One resource type.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group (`""` for core).
    pub group: &'static str,
    /// Version (`v1`).
    pub version: &'static str,
    /// Plural (`pods`).
    pub plural: &'static str,
    /// Singular (`pod`).
    pub singular: &'static str,
    /// Kind (`Pod`).
    pub kind: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Categories (`all`).
    pub categories: &'static [&'static str],
    /// Subresources.
    pub subresources: &'static [Subresource],
    /// Built in (`true`) or a CustomResourceDefinition (`false`: sorted-key lists, no strategic merge patch).
    pub builtin: bool,
    /// Whether `metadata.generation` is maintained.
    pub generation: bool,
    /// How names are validated.
    pub name_rule: NameRule,
    /// Field selector labels besides `metadata.name` and `metadata.namespace`.
    pub field_labels: &'static [&'static str],
    /// Stored or a review.
    pub storage: Storage,
}

const VERBS_ALL: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const VERBS_CRD: &[&str] = &[
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "create",
    "update",
    "watch",
];
const VERBS_STATUS: &[&str] = &["get", "patch", "update"];

const fn status(kind: &'static str) -> Subresource {
    Subresource {
        name: "status",
        kind,
        verbs: VERBS_STATUS,
        kind_group_version: None,
    }
}
const SCALE: Subresource = Subresource {
    name: "scale",
    kind: "Scale",
    verbs: VERBS_STATUS,
    kind_group_version: Some(("autoscaling", "v1")),
};

const POD_SUBS: &[Subresource] = &[
    Subresource {
        name: "attach",
        kind: "PodAttachOptions",
        verbs: &["create", "get"],
        kind_group_version: None,
    },
    Subresource {
        name: "binding",
        kind: "Binding",
        verbs: &["create"],
        kind_group_version: None,
    },
    Subresource {
        name: "exec",
        kind: "PodExecOptions",
        verbs: &["create", "get"],
        kind_group_version: None,
    },
    Subresource {
        name: "log",
        kind: "Pod",
        verbs: &["get"],
        kind_group_version: None,
    },
    Subresource {
        name: "portforward",
        kind: "PodPortForwardOptions",
        verbs: &["create", "get"],
        kind_group_version: None,
    },
    status("Pod"),
];

impl ResourceType {
    /// `(plural, group)` for error messages.
    pub fn name(&self) -> ResourceName<'static> {
        ResourceName {
            plural: self.plural,
            group: self.group,
        }
    }
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    /// Whether writes to the main resource ignore `.status` (and `/status` writes only change `.status`).
    pub fn has_status_subresource(&self) -> bool {
        self.subresource("status").is_some()
    }
    /// Look up a subresource.
    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }
    /// Discovery verbs of the main resource.
    pub fn verbs(&self) -> &'static [&'static str] {
        match self.storage {
            Storage::Review => &["create"],
            Storage::Stored if self.builtin => VERBS_ALL,
            Storage::Stored => VERBS_CRD,
        }
    }
    /// The key used for the object map (`group/plural`).
    pub fn key(&self) -> GroupResource {
        GroupResource {
            group: self.group,
            plural: self.plural,
        }
    }
}

/// A `(group, plural)` pair identifying a stored resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    /// API group.
    pub group: &'static str,
    /// Plural.
    pub plural: &'static str,
}

macro_rules! res {
    ($group:expr, $plural:expr, $singular:expr, $kind:expr, $namespaced:expr) => {
        ResourceType {
            group: $group,
            version: "v1",
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $namespaced,
            short_names: &[],
            categories: &[],
            subresources: const { &[] },
            builtin: true,
            generation: false,
            name_rule: NameRule::Subdomain,
            field_labels: &[],
            storage: Storage::Stored,
        }
    };
}

/// The set of resources one server serves.
#[derive(Debug, Clone)]
pub struct Registry {
    types: Vec<ResourceType>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// Every resource kentledge and the node agents use.
    pub fn new() -> Self {
        let snap = "snapshot.storage.k8s.io";
        let rbac = "rbac.authorization.k8s.io";
        let types = vec![
            ResourceType {
                name_rule: NameRule::Label,
                short_names: &["ns"],
                subresources: const {
                    &[
                        Subresource {
                            name: "finalize",
                            kind: "Namespace",
                            verbs: &["update"],
                            kind_group_version: None,
                        },
                        status("Namespace"),
                    ]
                },
                field_labels: &["status.phase"],
                ..res!("", "namespaces", "namespace", "Namespace", false)
            },
            ResourceType {
                short_names: &["po"],
                categories: &["all"],
                subresources: POD_SUBS,
                field_labels: &[
                    "spec.nodeName",
                    "spec.restartPolicy",
                    "spec.schedulerName",
                    "spec.serviceAccountName",
                    "spec.hostNetwork",
                    "status.phase",
                    "status.podIP",
                    "status.podIPs",
                    "status.nominatedNodeName",
                ],
                ..res!("", "pods", "pod", "Pod", true)
            },
            ResourceType {
                short_names: &["pvc"],
                subresources: const { &[status("PersistentVolumeClaim")] },
                ..res!(
                    "",
                    "persistentvolumeclaims",
                    "persistentvolumeclaim",
                    "PersistentVolumeClaim",
                    true
                )
            },
            ResourceType {
                short_names: &["pv"],
                subresources: const { &[status("PersistentVolume")] },
                ..res!(
                    "",
                    "persistentvolumes",
                    "persistentvolume",
                    "PersistentVolume",
                    false
                )
            },
            ResourceType {
                field_labels: &["type"],
                ..res!("", "secrets", "secret", "Secret", true)
            },
            ResourceType {
                short_names: &["cm"],
                ..res!("", "configmaps", "configmap", "ConfigMap", true)
            },
            ResourceType {
                short_names: &["sa"],
                subresources: const {
                    &[Subresource {
                        name: "token",
                        kind: "TokenRequest",
                        verbs: &["create"],
                        kind_group_version: Some(("authentication.k8s.io", "v1")),
                    }]
                },
                ..res!(
                    "",
                    "serviceaccounts",
                    "serviceaccount",
                    "ServiceAccount",
                    true
                )
            },
            ResourceType {
                short_names: &["ev"],
                field_labels: &[
                    "involvedObject.kind",
                    "involvedObject.namespace",
                    "involvedObject.name",
                    "involvedObject.uid",
                    "involvedObject.apiVersion",
                    "involvedObject.resourceVersion",
                    "involvedObject.fieldPath",
                    "reason",
                    "reportingComponent",
                    "source",
                    "type",
                ],
                ..res!("", "events", "event", "Event", true)
            },
            ResourceType {
                short_names: &["no"],
                subresources: const {
                    &[
                        Subresource {
                            name: "proxy",
                            kind: "NodeProxyOptions",
                            verbs: &["create", "delete", "get", "patch", "update"],
                            kind_group_version: None,
                        },
                        status("Node"),
                    ]
                },
                field_labels: &["spec.unschedulable"],
                ..res!("", "nodes", "node", "Node", false)
            },
            ResourceType {
                short_names: &["deploy"],
                categories: &["all"],
                subresources: const { &[SCALE, status("Deployment")] },
                generation: true,
                ..res!("apps", "deployments", "deployment", "Deployment", true)
            },
            ResourceType {
                short_names: &["sts"],
                categories: &["all"],
                subresources: const { &[SCALE, status("StatefulSet")] },
                generation: true,
                ..res!("apps", "statefulsets", "statefulset", "StatefulSet", true)
            },
            ResourceType {
                short_names: &["rs"],
                categories: &["all"],
                subresources: const { &[SCALE, status("ReplicaSet")] },
                generation: true,
                field_labels: &["status.replicas"],
                ..res!("apps", "replicasets", "replicaset", "ReplicaSet", true)
            },
            ResourceType {
                short_names: &["ds"],
                categories: &["all"],
                subresources: const { &[status("DaemonSet")] },
                generation: true,
                ..res!("apps", "daemonsets", "daemonset", "DaemonSet", true)
            },
            ResourceType {
                short_names: &["hpa"],
                categories: &["all"],
                subresources: const { &[status("HorizontalPodAutoscaler")] },
                version: "v2",
                ..res!(
                    "autoscaling",
                    "horizontalpodautoscalers",
                    "horizontalpodautoscaler",
                    "HorizontalPodAutoscaler",
                    true
                )
            },
            ResourceType {
                categories: &["all"],
                subresources: const { &[status("Job")] },
                generation: true,
                field_labels: &["status.successful"],
                ..res!("batch", "jobs", "job", "Job", true)
            },
            ResourceType {
                categories: &["all"],
                short_names: &["cj"],
                subresources: const { &[status("CronJob")] },
                generation: true,
                ..res!("batch", "cronjobs", "cronjob", "CronJob", true)
            },
            res!("coordination.k8s.io", "leases", "lease", "Lease", true),
            ResourceType {
                short_names: &["sc"],
                ..res!(
                    "storage.k8s.io",
                    "storageclasses",
                    "storageclass",
                    "StorageClass",
                    false
                )
            },
            ResourceType {
                short_names: &["ev"],
                field_labels: &[],
                ..res!("events.k8s.io", "events", "event", "Event", true)
            },
            ResourceType {
                short_names: &["vs"],
                subresources: const { &[status("VolumeSnapshot")] },
                builtin: false,
                generation: true,
                ..res!(
                    snap,
                    "volumesnapshots",
                    "volumesnapshot",
                    "VolumeSnapshot",
                    true
                )
            },
            ResourceType {
                short_names: &["vsc", "vscs"],
                subresources: const { &[status("VolumeSnapshotContent")] },
                builtin: false,
                generation: true,
                ..res!(
                    snap,
                    "volumesnapshotcontents",
                    "volumesnapshotcontent",
                    "VolumeSnapshotContent",
                    false
                )
            },
            ResourceType {
                short_names: &["vsclass", "vsclasses"],
                builtin: false,
                generation: true,
                ..res!(
                    snap,
                    "volumesnapshotclasses",
                    "volumesnapshotclass",
                    "VolumeSnapshotClass",
                    false
                )
            },
            ResourceType {
                name_rule: NameRule::PathSegment,
                ..res!(rbac, "roles", "role", "Role", true)
            },
            ResourceType {
                name_rule: NameRule::PathSegment,
                ..res!(rbac, "rolebindings", "rolebinding", "RoleBinding", true)
            },
            ResourceType {
                name_rule: NameRule::PathSegment,
                ..res!(rbac, "clusterroles", "clusterrole", "ClusterRole", false)
            },
            ResourceType {
                name_rule: NameRule::PathSegment,
                ..res!(
                    rbac,
                    "clusterrolebindings",
                    "clusterrolebinding",
                    "ClusterRoleBinding",
                    false
                )
            },
            ResourceType {
                storage: Storage::Review,
                ..res!(
                    "authorization.k8s.io",
                    "selfsubjectaccessreviews",
                    "selfsubjectaccessreview",
                    "SelfSubjectAccessReview",
                    false
                )
            },
            ResourceType {
                storage: Storage::Review,
                ..res!(
                    "authentication.k8s.io",
                    "selfsubjectreviews",
                    "selfsubjectreview",
                    "SelfSubjectReview",
                    false
                )
            },
        ];
        Registry { types }
    }

    /// Look up by group, version and plural.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// Look up a stored resource by its key.
    pub fn by_key(&self, key: GroupResource) -> Option<&ResourceType> {
        self.types.iter().find(|t| t.key() == key)
    }

    /// Look up by apiVersion and kind (for ownerReferences).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.kind == kind && t.api_version() == api_version)
    }

    /// All resource types.
    pub fn all(&self) -> &[ResourceType] {
        &self.types
    }

    /// Stored resource types.
    pub fn stored(&self) -> impl Iterator<Item = &ResourceType> {
        self.types.iter().filter(|t| t.storage == Storage::Stored)
    }

    /// Known groups with their versions, in registration order (core excluded).
    pub fn groups(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for t in &self.types {
            if !t.group.is_empty() && !out.contains(&t.group) {
                out.push(t.group);
            }
        }
        out
    }

    /// Whether any resource is served under `group/version`.
    pub fn has_group_version(&self, group: &str, version: &str) -> bool {
        self.types
            .iter()
            .any(|t| t.group == group && t.version == version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_issue_resource_is_registered() {
        let r = Registry::new();
        for (g, p) in [
            ("", "pods"),
            ("", "namespaces"),
            ("apps", "replicasets"),
            ("coordination.k8s.io", "leases"),
            ("snapshot.storage.k8s.io", "volumesnapshots"),
            ("rbac.authorization.k8s.io", "clusterrolebindings"),
            ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ] {
            assert!(r.find(g, "v1", p).is_some(), "{g}/{p}");
        }
        assert!(
            r.find("", "v1", "pods")
                .is_some_and(|p| p.subresource("exec").is_some())
        );
        assert_eq!(
            r.by_kind("apps/v1", "Deployment").map(|t| t.plural),
            Some("deployments")
        );
    }
}
