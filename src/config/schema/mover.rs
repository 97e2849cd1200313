//! `spec.mover`: mover pod settings (image, resources, security, tolerations, clone PVCs).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::units::HumanDuration;

/// Mover pod settings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mover {
    /// The kentledge image the mover pods run (same version as the controller).
    #[serde(default = "default_image")]
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`.
    #[serde(default)]
    pub image_pull_policy: Option<PullPolicy>,
    /// The ServiceAccount mover pods run as; default: the namespace's default.
    #[serde(default)]
    pub service_account_name: Option<String>,
    /// The ServiceAccount of mover pods that dump databases (they exec into the database's pod
    /// with its token, so it needs `pods/exec`); default `kentledge-dumper` (manifests/rbac.yaml).
    #[serde(default)]
    pub dump_service_account_name: Option<String>,
    /// CPU and memory requests and limits.
    #[serde(default)]
    pub resources: Resources,
    /// User, group and privilege of the mover.
    #[serde(default)]
    pub security_context: MoverSecurityContext,
    /// Node labels the mover pods must match.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the mover pods.
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    /// Time limit of one mover pod (`activeDeadlineSeconds`).
    #[serde(default = "default_mover_timeout")]
    pub timeout: HumanDuration,
    /// How many mover pods run at once (borg repositories are always one at a time).
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Upload limit per mover, bytes per second (e.g. `10MiB`).
    #[serde(default)]
    pub bandwidth_limit: Option<String>,
    /// The clone PVCs made from snapshots.
    #[serde(default)]
    pub clone: CloneSettings,
}

impl Default for Mover {
    fn default() -> Self {
        Mover {
            image: default_image(),
            image_pull_policy: None,
            service_account_name: None,
            dump_service_account_name: None,
            resources: Resources::default(),
            security_context: MoverSecurityContext::default(),
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            timeout: default_mover_timeout(),
            concurrency: default_concurrency(),
            bandwidth_limit: None,
            clone: CloneSettings::default(),
        }
    }
}

/// The default mover image: this very version of kentledge.
pub fn default_image() -> String {
    format!("ghcr.io/kentledge/kentledge:{}", env!("CARGO_PKG_VERSION"))
}
fn default_mover_timeout() -> HumanDuration {
    HumanDuration::from_secs(6 * 3600)
}
fn default_concurrency() -> u32 {
    2
}

/// Image pull policies.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum PullPolicy {
    /// Always pull.
    Always,
    /// Pull when missing.
    IfNotPresent,
    /// Never pull.
    Never,
}

/// Requests and limits, as Kubernetes quantities by resource name (`cpu`, `memory`, …).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resources {
    /// Requests.
    #[serde(default)]
    pub requests: BTreeMap<String, String>,
    /// Limits.
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
}

/// Security settings of mover pods.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MoverSecurityContext {
    /// UID of the mover process.
    #[serde(default)]
    pub run_as_user: Option<i64>,
    /// GID of the mover process.
    #[serde(default)]
    pub run_as_group: Option<i64>,
    /// fsGroup of the mover pod.
    #[serde(default)]
    pub fs_group: Option<i64>,
    /// Run privileged, to read volumes owned by other users whatever their modes.
    #[serde(default)]
    pub privileged: bool,
}

/// A pod toleration.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Toleration {
    /// The taint key (empty with `Exists` matches every taint).
    #[serde(default)]
    pub key: Option<String>,
    /// `Equal` (default) or `Exists`.
    #[serde(default)]
    pub operator: Option<TolerationOperator>,
    /// The taint value for `Equal`.
    #[serde(default)]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`; empty matches all.
    #[serde(default)]
    pub effect: Option<TaintEffect>,
    /// For `NoExecute`: how long the pod stays bound after the taint appears.
    #[serde(default)]
    pub toleration_seconds: Option<i64>,
}

/// Toleration operators.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum TolerationOperator {
    /// Key and value must match.
    Equal,
    /// The key must exist.
    Exists,
}

/// Taint effects.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum TaintEffect {
    /// Do not schedule.
    NoSchedule,
    /// Try not to schedule.
    PreferNoSchedule,
    /// Evict.
    NoExecute,
}

/// The clone PVCs created from snapshots for mover pods.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CloneSettings {
    /// Storage class; default: the source PVC's.
    #[serde(default)]
    pub storage_class_name: Option<String>,
    /// Access modes; default: the source PVC's.
    #[serde(default)]
    pub access_modes: Vec<AccessMode>,
    /// Requested size; default: the snapshot's `restoreSize`.
    #[serde(default)]
    pub size: Option<String>,
    /// How long a clone may stay unbound before its copy fails (its provisioner is missing,
    /// or cannot restore from snapshots).
    #[serde(default = "default_bind_timeout")]
    pub bind_timeout: HumanDuration,
}

impl Default for CloneSettings {
    fn default() -> Self {
        CloneSettings {
            storage_class_name: None,
            access_modes: Vec::new(),
            size: None,
            bind_timeout: default_bind_timeout(),
        }
    }
}

fn default_bind_timeout() -> HumanDuration {
    HumanDuration::from_secs(600)
}

/// PVC access modes.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum AccessMode {
    /// One node, read-write.
    ReadWriteOnce,
    /// Many nodes, read-only.
    ReadOnlyMany,
    /// Many nodes, read-write.
    ReadWriteMany,
    /// One pod, read-write.
    ReadWriteOncePod,
}
