//! `spec.repositories`: borg and restic repositories, their credentials, checks and caches.

use serde::{Deserialize, Serialize};

use super::Retention;
use crate::model::repository::Engine;
use crate::model::units::HumanDuration;

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
    /// A persistent engine cache volume for the mover pods that write to this repository.
    /// borg repositories have one by default ([`CacheVolume::default`]): without its chunks and
    /// files caches every copy rebuilds them from the repository. restic repositories have one
    /// only when it is set. `enabled: false` turns it off.
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
    /// Whether there is one (`false` turns off a default one).
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Size of the cache PVC.
    #[serde(default = "cache_size")]
    pub size: String,
    /// Storage class of the cache PVC; default: the cluster's default.
    #[serde(default)]
    pub storage_class_name: Option<String>,
}

fn enabled() -> bool {
    true
}

fn cache_size() -> String {
    "1Gi".to_owned()
}

impl Default for CacheVolume {
    /// 1Gi in the cluster's default storage class.
    fn default() -> Self {
        CacheVolume {
            enabled: true,
            size: cache_size(),
            storage_class_name: None,
        }
    }
}

impl CacheVolume {
    /// The cache volume a config entry asks for: `cache` when set and enabled; absent, the
    /// entry's default (`default`).
    pub fn wanted(cache: &Option<CacheVolume>, default: bool) -> Option<CacheVolume> {
        match cache {
            Some(c) => c.enabled.then(|| c.clone()),
            None => default.then(CacheVolume::default),
        }
    }
}

/// A repository's engine and its settings: what [`Repository::kind`] returns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RepositoryKind<'a> {
    /// A BorgBackup repository.
    Borg(&'a BorgRepository),
    /// A restic repository.
    Restic(&'a ResticRepository),
}

/// Where a repository is, as the config writes it (validation guarantees exactly one of
/// `repository`, `pvc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place<'a> {
    /// The engine's location string (`ssh://…`, `sftp:…`, `rest:…`, …).
    Remote(&'a str),
    /// A path inside a PVC of the namespace.
    Volume(&'a PvcPath),
}

impl<'a> RepositoryKind<'a> {
    /// Which engine.
    pub fn engine(self) -> Engine {
        match self {
            RepositoryKind::Borg(_) => Engine::Borg,
            RepositoryKind::Restic(_) => Engine::Restic,
        }
    }

    /// Where the repository is (validated configs only).
    pub fn place(self) -> Place<'a> {
        let (repository, pvc) = match self {
            RepositoryKind::Borg(b) => (&b.repository, &b.pvc),
            RepositoryKind::Restic(r) => (&r.repository, &r.pvc),
        };
        match (repository, pvc) {
            (Some(r), None) => Place::Remote(r),
            (None, Some(p)) => Place::Volume(p),
            _ => panic!("validation requires exactly one of repository, pvc"),
        }
    }

    /// The Secrets of the ssh client: the private key and known_hosts.
    pub fn ssh_secrets(self) -> (Option<&'a SecretKeyRef>, Option<&'a SecretKeyRef>) {
        match self {
            RepositoryKind::Borg(b) => (b.ssh_key.as_ref(), b.known_hosts.as_ref()),
            RepositoryKind::Restic(r) => (r.ssh_key.as_ref(), r.known_hosts.as_ref()),
        }
    }
}

impl Repository {
    /// The engine and its settings, when exactly one of `borg`, `restic` is set (validation
    /// reports the others).
    pub fn try_kind(&self) -> Option<RepositoryKind<'_>> {
        match (&self.borg, &self.restic) {
            (Some(b), None) => Some(RepositoryKind::Borg(b)),
            (None, Some(r)) => Some(RepositoryKind::Restic(r)),
            _ => None,
        }
    }

    /// The engine and its settings (validated configs only: exactly one of `borg`, `restic`).
    pub fn kind(&self) -> RepositoryKind<'_> {
        self.try_kind().unwrap_or_else(|| {
            panic!(
                "repository {}: validation requires exactly one of borg, restic",
                self.name
            )
        })
    }

    /// Which engine keeps the repository.
    pub fn engine(&self) -> Engine {
        self.kind().engine()
    }

    /// The persistent cache volume of the movers that write to the repository, if any (by
    /// default for borg, see [`Repository::cache`]).
    pub fn cache_volume(&self) -> Option<CacheVolume> {
        CacheVolume::wanted(&self.cache, self.engine() == Engine::Borg)
    }

    /// Whether a run sends one mover at a time into the repository: borg takes one writer at
    /// a time, and a cache volume (ReadWriteOnce) attaches to one node at a time.
    pub fn one_writer(&self) -> bool {
        self.engine() == Engine::Borg || self.cache_volume().is_some()
    }

    /// Where the repository is, for people (never contains a secret: credentials are references).
    pub fn location(&self) -> String {
        match self.kind().place() {
            Place::Remote(r) => r.to_owned(),
            Place::Volume(p) => format!("pvc {}/{}", p.claim_name, p.path.as_deref().unwrap_or("")),
        }
    }
}
