//! The config file's schema (`apiVersion: kentledge.io/v1alpha1`, `kind: BackupConfig`):
//! plain data types with serde defaults, strict about unknown fields. Semantic rules live in
//! `validate`; this module only says what can be written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::units::HumanDuration;

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
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            timezone: default_timezone(),
            snapshots: Snapshots::default(),
            repositories: Vec::new(),
            offsite: Offsite::default(),
            mover: Mover::default(),
        }
    }
}

fn default_timezone() -> String {
    "UTC".into()
}

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
fn default_true() -> bool {
    true
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

/// A retention policy, with the semantics of `borg prune` (per rule, the newest member of each of
/// the last N periods that have a member; rules combine by union).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Retention {
    /// `all`: never prune this series. Excludes every other rule.
    #[serde(default)]
    pub keep: Option<KeepAll>,
    /// Keep the newest N.
    #[serde(default)]
    pub last: Option<u32>,
    /// Keep the newest of each of the last N hours that have a member.
    #[serde(default)]
    pub hourly: Option<u32>,
    /// Keep the newest of each of the last N days that have a member.
    #[serde(default)]
    pub daily: Option<u32>,
    /// Keep the newest of each of the last N ISO weeks that have a member.
    #[serde(default)]
    pub weekly: Option<u32>,
    /// Keep the newest of each of the last N months that have a member.
    #[serde(default)]
    pub monthly: Option<u32>,
    /// Keep the newest of each of the last N years that have a member.
    #[serde(default)]
    pub yearly: Option<u32>,
    /// Keep everything younger than this.
    #[serde(default)]
    pub within: Option<HumanDuration>,
}

/// The value `all` of `retention.keep`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeepAll {
    /// Keep everything.
    All,
}

/// A reference to one key of a Secret in the config's namespace.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    pub secret: String,
    /// The key in the Secret's data.
    pub key: String,
}

/// A path inside a PVC of the config's namespace (for repositories kept on a volume).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PvcPath {
    /// The PVC's name.
    pub claim_name: String,
    /// A relative path inside the volume; default: its root.
    #[serde(default)]
    pub path: Option<String>,
}

/// An offsite repository: exactly one of `borg`, `restic`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Repository {
    /// The repository's name (DNS-1123 label), referenced by `offsite.*.repositories`.
    pub name: String,
    /// A BorgBackup repository.
    #[serde(default)]
    pub borg: Option<BorgRepository>,
    /// A restic repository.
    #[serde(default)]
    pub restic: Option<ResticRepository>,
    /// Which archives `prune` keeps, per series; absent means keep all.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// How `kentledge check --repositories` verifies this repository.
    #[serde(default)]
    pub check: RepositoryCheck,
    /// A persistent engine cache volume for the mover pods of this repository.
    #[serde(default)]
    pub cache: Option<CacheVolume>,
}

/// A BorgBackup repository (borg 1.2 – 1.4): exactly one of `repository`, `pvc`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BorgRepository {
    /// `ssh://user@host[:port]/path` of a borg server.
    #[serde(default)]
    pub repository: Option<String>,
    /// A repository kept on a PVC of the namespace.
    #[serde(default)]
    pub pvc: Option<PvcPath>,
    /// The repository passphrase (required unless `encryption: none` or `authenticated*`).
    #[serde(default)]
    pub passphrase: Option<SecretKeyRef>,
    /// The ssh private key for `ssh://` repositories.
    #[serde(default)]
    pub ssh_key: Option<SecretKeyRef>,
    /// The known_hosts for `ssh://` repositories (host keys are always checked unless opted out).
    #[serde(default)]
    pub known_hosts: Option<SecretKeyRef>,
    /// Turn off ssh host key checking (logged loudly on every run).
    #[serde(default)]
    pub insecure_skip_host_key_check: bool,
    /// Encryption mode for `init`.
    #[serde(default)]
    pub encryption: BorgEncryption,
    /// Create the repository if it does not exist (otherwise a missing repository is an error).
    #[serde(default)]
    pub init: bool,
    /// Compression spec passed to `borg create --compression` (e.g. `lz4`, `zstd,3`, `auto,zstd,6`).
    #[serde(default)]
    pub compression: Option<String>,
    /// How long to wait for the repository lock (`--lock-wait`).
    #[serde(default = "default_lock_wait")]
    pub lock_wait: HumanDuration,
    /// Path of borg on the server (`--remote-path`), e.g. `borg-1.4`.
    #[serde(default)]
    pub remote_path: Option<String>,
}

fn default_lock_wait() -> HumanDuration {
    HumanDuration::from_secs(10 * 60)
}

/// Borg encryption modes accepted by `borg init --encryption`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BorgEncryption {
    /// No encryption, no authentication.
    None,
    /// Authenticated (HMAC-SHA256), not encrypted.
    Authenticated,
    /// Authenticated (BLAKE2b), not encrypted.
    AuthenticatedBlake2,
    /// Encrypted, key in the repository, HMAC-SHA256.
    Repokey,
    /// Encrypted, key in the repository, BLAKE2b (the default).
    #[default]
    RepokeyBlake2,
}

/// A restic repository (restic 0.14 and newer): exactly one of `repository`, `pvc`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResticRepository {
    /// A restic repository string: `sftp:user@host:/path`, `rest:http://host:8000/`,
    /// `s3:https://host/bucket/path`, `b2:`, `azure:`, `gs:`, `swift:`, `rclone:`.
    #[serde(default)]
    pub repository: Option<String>,
    /// A repository kept on a PVC of the namespace.
    #[serde(default)]
    pub pvc: Option<PvcPath>,
    /// The repository password.
    pub password: SecretKeyRef,
    /// The ssh private key for `sftp:` repositories.
    #[serde(default)]
    pub ssh_key: Option<SecretKeyRef>,
    /// The known_hosts for `sftp:` repositories.
    #[serde(default)]
    pub known_hosts: Option<SecretKeyRef>,
    /// Turn off ssh host key checking for `sftp:` (logged loudly on every run).
    #[serde(default)]
    pub insecure_skip_host_key_check: bool,
    /// S3 credentials for `s3:` repositories.
    #[serde(default)]
    pub s3: Option<S3Credentials>,
    /// Further environment for other backends (e.g. `B2_ACCOUNT_ID`), each a value or a Secret key.
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// Create the repository if it does not exist (otherwise a missing repository is an error).
    #[serde(default)]
    pub init: bool,
    /// `auto`, `off` or `max` (repository format 2).
    #[serde(default)]
    pub compression: Option<ResticCompression>,
    /// How long to wait for an exclusive lock (`--retry-lock` where the restic version has it).
    #[serde(default = "default_lock_wait")]
    pub lock_wait: HumanDuration,
}

/// restic compression levels.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ResticCompression {
    /// restic's default.
    Auto,
    /// No compression.
    Off,
    /// Best compression.
    Max,
}

/// S3 credentials, from a Secret.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct S3Credentials {
    /// The access key id.
    pub access_key_id: SecretKeyRef,
    /// The secret access key.
    pub secret_access_key: SecretKeyRef,
}

/// An environment variable for the engine: exactly one of `value`, `valueFrom`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvVar {
    /// The variable's name.
    pub name: String,
    /// A literal value (for non-secret settings such as a region).
    #[serde(default)]
    pub value: Option<String>,
    /// A value from a Secret.
    #[serde(default)]
    pub value_from: Option<SecretKeyRef>,
}

/// Verification settings for a repository.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RepositoryCheck {
    /// Also read this share of the data, e.g. `5%` (restic `--read-data-subset`; borg `--verify-data` when set).
    #[serde(default)]
    pub read_data_subset: Option<String>,
}

/// A persistent cache volume for an engine (kept between runs).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CacheVolume {
    /// Size of the cache PVC.
    pub size: String,
    /// Storage class of the cache PVC; default: the cluster's default.
    #[serde(default)]
    pub storage_class_name: Option<String>,
}

/// What is copied offsite.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Offsite {
    /// Snapshot targets copied to repositories.
    #[serde(default)]
    pub volumes: Option<VolumeBackups>,
    /// Database dumps streamed to repositories.
    #[serde(default)]
    pub databases: Vec<DatabaseBackup>,
    /// S3 buckets copied to repositories.
    #[serde(default)]
    pub buckets: Vec<BucketBackup>,
}

/// Offsite copies of snapshot targets.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VolumeBackups {
    /// Names of the repositories each volume is copied to.
    pub repositories: Vec<String>,
    /// Only these PVCs (default: every PVC the snapshot targets select).
    #[serde(default)]
    pub pvcs: Option<Vec<String>>,
    /// Paths inside the volumes to leave out (engine exclude patterns, relative to the volume root).
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// A database dumped by its own client, inside its own pod, streamed into repositories.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DatabaseBackup {
    /// The series name (DNS-1123 label), used in archive names.
    pub name: String,
    /// `mariadb`, `mysql` or `postgresql`.
    pub engine: DatabaseEngine,
    /// The database pod.
    pub pod: PodSelector,
    /// The container with the database client; default as for hooks.
    #[serde(default)]
    pub container: Option<String>,
    /// Databases to dump; empty means all.
    #[serde(default)]
    pub databases: Vec<String>,
    /// How the client authenticates.
    #[serde(default)]
    pub credentials: DatabaseCredentials,
    /// Names of the repositories the dumps go to.
    pub repositories: Vec<String>,
}

/// Database engines kentledge can dump.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseEngine {
    /// MariaDB (`mariadb-dump`).
    Mariadb,
    /// MySQL (`mysqldump`).
    Mysql,
    /// PostgreSQL (`pg_dump --format=custom`).
    Postgresql,
}

impl DatabaseEngine {
    /// The engine's name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            DatabaseEngine::Mariadb => "mariadb",
            DatabaseEngine::Mysql => "mysql",
            DatabaseEngine::Postgresql => "postgresql",
        }
    }
}

/// Database credentials: a user (literal, from the container's env, or a Secret) and a password
/// (from the container's env or a Secret). Without any, the client's defaults apply (e.g. peer auth).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DatabaseCredentials {
    /// A literal user name.
    #[serde(default)]
    pub user: Option<String>,
    /// The name of an environment variable of the container that holds the user.
    #[serde(default)]
    pub user_from_env: Option<String>,
    /// The user from a Secret.
    #[serde(default)]
    pub user_secret: Option<SecretKeyRef>,
    /// The name of an environment variable of the container that holds the password.
    #[serde(default)]
    pub password_from_env: Option<String>,
    /// The password from a Secret.
    #[serde(default)]
    pub password_secret: Option<SecretKeyRef>,
}

/// An S3 bucket (or a prefix of one) copied into repositories.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BucketBackup {
    /// The series name (DNS-1123 label), used in archive names.
    pub name: String,
    /// The S3 endpoint URL (`https://…`).
    pub endpoint: String,
    /// The region; default `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// The bucket's name.
    pub bucket: String,
    /// Only objects under this prefix.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual-hosted style.
    #[serde(default = "default_true")]
    pub path_style: bool,
    /// The access keys.
    pub credentials: S3Credentials,
    /// Names of the repositories the bucket goes to.
    pub repositories: Vec<String>,
}

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
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
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

impl std::fmt::Display for Retention {
    /// `keep all`, or the rules that are set, e.g. `last 3, daily 7, within 2d`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.keep.is_some() {
            return f.write_str("keep all");
        }
        let mut parts = Vec::new();
        for (name, n) in [
            ("last", self.last),
            ("hourly", self.hourly),
            ("daily", self.daily),
            ("weekly", self.weekly),
            ("monthly", self.monthly),
            ("yearly", self.yearly),
        ] {
            if let Some(n) = n {
                parts.push(format!("{name} {n}"));
            }
        }
        if let Some(w) = self.within {
            parts.push(format!("within {w}"));
        }
        f.write_str(&parts.join(", "))
    }
}

impl Repository {
    /// `borg` or `restic`.
    pub fn engine(&self) -> &'static str {
        if self.borg.is_some() {
            "borg"
        } else {
            "restic"
        }
    }

    /// Where the repository is, for people (never contains a secret: credentials are references).
    pub fn location(&self) -> String {
        let (repo, pvc) = match (&self.borg, &self.restic) {
            (Some(b), _) => (&b.repository, &b.pvc),
            (_, Some(r)) => (&r.repository, &r.pvc),
            _ => return String::new(),
        };
        match (repo, pvc) {
            (Some(r), _) => r.clone(),
            (_, Some(p)) => format!("pvc {}/{}", p.claim_name, p.path.as_deref().unwrap_or("")),
            _ => String::new(),
        }
    }
}
