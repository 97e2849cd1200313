//! `spec.offsite`: what is copied into repositories (volumes, databases, buckets).

use serde::{Deserialize, Serialize};

use super::{PodSelector, S3Credentials, SecretKeyRef, default_true};

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
    /// A volume kept between runs for the bucket's mirror (as large as the objects under the
    /// prefix, plus the engines' caches): with it, a backup downloads only what changed since
    /// the last; without it every backup downloads every object into an emptyDir.
    #[serde(default)]
    pub cache: Option<super::CacheVolume>,
}

impl BucketBackup {
    /// The bucket's cache volume, when it is set and enabled (none by default).
    pub fn cache_volume(&self) -> Option<super::CacheVolume> {
        super::CacheVolume::wanted(&self.cache, false)
    }
}
