//! `spec.snapshots`: targets (PVCs, selectors, workloads), hooks around the cut, and snapshot
//! timeouts and deletion pacing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Retention, default_true};
use crate::model::units::HumanDuration;

/// CSI snapshot settings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Snapshots {
    /// Which PVCs to snapshot: by name, by label selector, or by workload.
    #[serde(default)]
    pub targets: Vec<Target>,
    /// Default VolumeSnapshotClass; without it, the default class of each PVC's CSI driver.
    #[serde(default)]
    pub volume_snapshot_class_name: Option<String>,
    /// Whether a selection that matches no bound PVC is allowed (otherwise it is an error).
    #[serde(default)]
    pub allow_empty: bool,
    /// How long to wait for every snapshot's cut (`status.creationTime`) before giving up.
    #[serde(default = "default_cut_timeout")]
    pub cut_timeout: HumanDuration,
    /// How long to wait for every snapshot to become `readyToUse` after the cut.
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout: HumanDuration,
    /// Whether hooks declared in pod annotations (`kentledge.io/pre-snapshot`, …) are run.
    #[serde(default = "default_true")]
    pub pod_annotation_hooks: bool,
    /// Commands run in application pods around the snapshot, in order.
    #[serde(default)]
    pub hooks: Vec<Hook>,
    /// Which snapshots `prune` keeps; absent means keep all (and `prune` says so).
    #[serde(default)]
    pub retention: Option<Retention>,
    /// How long a snapshot that fell out of retention stays marked before `prune` deletes it.
    #[serde(default = "default_delete_after")]
    pub delete_after: HumanDuration,
    /// How long a snapshot that never became ready is kept before `prune` deletes it.
    #[serde(default = "default_delete_after")]
    pub not_ready_grace: HumanDuration,
    /// Keep every snapshot newer than the newest one already copied offsite (labelled
    /// `backed-up.kentledge.io/<repository>` by `backup`).
    #[serde(default)]
    pub keep_until_backed_up: bool,
    /// What `prune` does with snapshots whose VolumeSnapshotContent has `deletionPolicy: Retain`.
    #[serde(default)]
    pub retained_contents: RetainedContents,
    /// At most this many snapshot deletions per second during `prune`.
    #[serde(default = "default_deletes_per_second")]
    pub max_deletes_per_second: u32,
}

impl Snapshots {
    /// Whether a target names a workload (its PVCs are found from Deployments and
    /// StatefulSets, which are read only then).
    pub fn names_workloads(&self) -> bool {
        self.targets.iter().any(|t| t.workload.is_some())
    }
}

impl Default for Snapshots {
    fn default() -> Self {
        Snapshots {
            targets: Vec::new(),
            volume_snapshot_class_name: None,
            allow_empty: false,
            cut_timeout: default_cut_timeout(),
            ready_timeout: default_ready_timeout(),
            pod_annotation_hooks: true,
            hooks: Vec::new(),
            retention: None,
            delete_after: default_delete_after(),
            not_ready_grace: default_delete_after(),
            keep_until_backed_up: false,
            retained_contents: RetainedContents::default(),
            max_deletes_per_second: default_deletes_per_second(),
        }
    }
}

fn default_cut_timeout() -> HumanDuration {
    HumanDuration::from_secs(5 * 60)
}
fn default_ready_timeout() -> HumanDuration {
    HumanDuration::from_secs(30 * 60)
}
fn default_delete_after() -> HumanDuration {
    HumanDuration::from_secs(24 * 3600)
}
fn default_deletes_per_second() -> u32 {
    5
}

/// What `prune` does with a snapshot whose content would be orphaned (`deletionPolicy: Retain`).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RetainedContents {
    /// Report it and leave it in place.
    #[default]
    Skip,
    /// Report it and delete the VolumeSnapshot anyway (the content and its storage stay).
    Delete,
}

/// One snapshot target: exactly one of `pvc`, `selector`, `workload`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Target {
    /// A PVC by name.
    #[serde(default)]
    pub pvc: Option<String>,
    /// The PVCs whose labels match.
    #[serde(default)]
    pub selector: Option<LabelSelector>,
    /// The PVCs that a Deployment's or StatefulSet's pods mount (including volumeClaimTemplates).
    #[serde(default)]
    pub workload: Option<WorkloadRef>,
    /// VolumeSnapshotClass for this target (overrides `snapshots.volumeSnapshotClassName`).
    #[serde(default)]
    pub volume_snapshot_class_name: Option<String>,
}

/// A Deployment or StatefulSet in the config's namespace.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadRef {
    /// `Deployment` or `StatefulSet`.
    pub kind: WorkloadKind,
    /// The workload's name.
    pub name: String,
}

/// The workload kinds whose PVCs a target can select.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
}

/// A Kubernetes label selector (`matchLabels` and `matchExpressions`, combined by AND).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must be equal.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One set-based selector requirement.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: SelectorOperator,
    /// Values for `In` and `NotIn` (non-empty); must be empty for `Exists` and `DoesNotExist`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// Set-based selector operators.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum SelectorOperator {
    /// The label's value is one of `values`.
    In,
    /// The label is absent or its value is none of `values`.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// Which pod(s) a hook or a database dump runs in: exactly one of `name`, `selector`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodSelector {
    /// A pod by name.
    #[serde(default)]
    pub name: Option<String>,
    /// Every running pod whose labels match.
    #[serde(default)]
    pub selector: Option<LabelSelector>,
}

/// A hook: commands run by pod exec around the snapshot. Exactly one of `exec`, `session`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Hook {
    /// The hook's name (DNS-1123 label), used in logs and annotations.
    pub name: String,
    /// The pod(s) to run in.
    pub pod: PodSelector,
    /// The container; default: the pod's `kubectl.kubernetes.io/default-container`, else its first.
    #[serde(default)]
    pub container: Option<String>,
    /// Two separate execs: `pre` before the snapshot, `post` after the cut.
    #[serde(default)]
    pub exec: Option<ExecHook>,
    /// One exec session held open across the snapshot (for locks that live as long as a session).
    #[serde(default)]
    pub session: Option<SessionHook>,
    /// Time limit for each command (and, for a session, for reaching the ready marker).
    #[serde(default = "default_hook_timeout")]
    pub timeout: HumanDuration,
    /// `fail` stops the run (post-hooks of started pre-hooks still run); `continue` logs and goes on.
    #[serde(default)]
    pub on_error: OnError,
}

fn default_hook_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}

/// Pre and post commands, each its own exec (argv, no shell unless you ask for one).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecHook {
    /// Run before the snapshot.
    #[serde(default)]
    pub pre: Option<Vec<String>>,
    /// Run after the cut, also when something failed or the run was interrupted.
    #[serde(default)]
    pub post: Option<Vec<String>>,
}

/// A held session: `command` starts an interpreter, `pre` is written to its stdin, kentledge waits
/// for `readyMarker` on its stdout, takes the snapshots, writes `post`, closes stdin and waits.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionHook {
    /// The long-lived command (argv), e.g. `["mariadb", "--batch"]`.
    pub command: Vec<String>,
    /// Text written to the session's stdin before the snapshot.
    pub pre: String,
    /// A string whose appearance on stdout means the application is frozen.
    pub ready_marker: String,
    /// Text written to stdin after the cut (stdin is then closed); default: nothing.
    #[serde(default)]
    pub post: Option<String>,
}

/// What a failing hook does to the run.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop: no snapshot, post-hooks of started pre-hooks run, exit non-zero.
    #[default]
    Fail,
    /// Log the failure and go on.
    Continue,
}
