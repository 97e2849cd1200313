//! The config file's schema (`apiVersion: kentledge.io/v1alpha1`, `kind: BackupConfig`):
//! plain data types with serde defaults, strict about unknown fields, one file per section.
//! Semantic rules live in `validate`; this module only says what can be written.

mod mover;
mod offsite;
mod repositories;
mod retention;
mod snapshots;

pub use mover::*;
pub use offsite::*;
pub use repositories::*;
pub use retention::*;
pub use snapshots::*;

use serde::{Deserialize, Serialize};

/// The only `apiVersion` this version understands.
pub const API_VERSION: &str = "kentledge.io/v1alpha1";
/// The only `kind` this version understands.
pub const KIND: &str = "BackupConfig";

/// A whole config file: what to protect in one namespace, where to copy it, and how long to keep it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Must be `kentledge.io/v1alpha1`.
    pub api_version: String,
    /// Must be `BackupConfig`.
    pub kind: String,
    /// The config's name and namespace.
    pub metadata: Metadata,
    /// What to protect and how.
    #[serde(default)]
    pub spec: Spec,
}

/// Name and namespace of a config.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// The config's name (DNS-1123 label): used in labels, the run lock's Lease name and archive names.
    pub name: String,
    /// The namespace to protect. `--namespace` overrides it; in a pod it defaults to the pod's namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// Everything a config says, apart from its name.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    /// IANA time zone in which retention periods (days, ISO weeks, months, years) are computed.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// CSI snapshots: targets, hooks, timeouts, retention.
    #[serde(default)]
    pub snapshots: Snapshots,
    /// Offsite repositories (borg or restic), each with its own retention.
    #[serde(default)]
    pub repositories: Vec<Repository>,
    /// What is copied offsite: volumes, databases, S3 buckets.
    #[serde(default)]
    pub offsite: Offsite,
    /// The short-lived pods that move data next to the data.
    #[serde(default)]
    pub mover: Mover,
    /// What `kentledge status` holds as fresh.
    #[serde(default)]
    pub status: StatusExpectations,
}

/// How old the newest restore points may be for `kentledge status` to call them fresh (unset:
/// any age, as long as there is one).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StatusExpectations {
    /// The newest ready snapshot of each PVC.
    #[serde(default)]
    pub snapshots_within: Option<crate::model::units::HumanDuration>,
    /// The newest copy of each series in each of its repositories.
    #[serde(default)]
    pub offsite_within: Option<crate::model::units::HumanDuration>,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            timezone: default_timezone(),
            snapshots: Snapshots::default(),
            repositories: Vec::new(),
            offsite: Offsite::default(),
            mover: Mover::default(),
            status: StatusExpectations::default(),
        }
    }
}

fn default_timezone() -> String {
    "UTC".into()
}

fn default_true() -> bool {
    true
}
