//! The job a mover pod runs, as plain data: which repository (and how to reach it, by file paths
//! and variable names only, never secret values), and what to do there. The controller writes it
//! into the pod's arguments; the in-pod subcommand reads it back. Also the mover's exit codes and
//! the events it prints, one JSON object per line, for the controller to read from the pod's log.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::engines::databases::{Client, StreamCheck};
use crate::engines::output::Summary;
use crate::engines::{Series, SeriesKind};
use crate::model::policy::Policy;
pub use crate::model::repository::Engine;
use crate::model::units::HumanDuration;

/// Where a mover finds things inside its pod.
pub mod paths {
    /// The clone of the snapshot, mounted read-only (the working directory of a backup).
    pub const DATA: &str = "/data";
    /// Secret files (passphrase, ssh key, known_hosts), mode 0400.
    pub const SECRETS: &str = "/kentledge/secrets";
    /// The engine's cache and config (an emptyDir, or the repository's cache PVC).
    pub const CACHE: &str = "/kentledge/cache";
    /// A repository kept on a PVC.
    pub const REPOSITORY: &str = "/repository";
    /// The clone of a snapshot an in-place restore copies from, mounted read-only.
    pub const SOURCE: &str = "/source";
    /// The passphrase or password file.
    pub const PASSPHRASE: &str = "/kentledge/secrets/passphrase";
    /// The ssh private key file.
    pub const SSH_KEY: &str = "/kentledge/secrets/ssh-key";
    /// The ssh known_hosts file.
    pub const KNOWN_HOSTS: &str = "/kentledge/secrets/known_hosts";
    /// A database user from a Secret.
    pub const DB_USER: &str = "/kentledge/secrets/db-user";
    /// A database password from a Secret.
    pub const DB_PASSWORD: &str = "/kentledge/secrets/db-password";
    /// An S3 access key id from a Secret.
    pub const S3_ACCESS_KEY: &str = "/kentledge/secrets/s3-access-key";
    /// An S3 secret access key from a Secret.
    pub const S3_SECRET_KEY: &str = "/kentledge/secrets/s3-secret-key";
    /// A bucket's mirror and state (its cache volume, or an emptyDir).
    pub const BUCKET: &str = "/bucket";
}

/// The mover's exit codes; the controller reads them from the container's state.
pub mod code {
    /// Done.
    pub const OK: i32 = 0;
    /// The engine failed for another reason (the log says which).
    pub const FAILED: i32 = 1;
    /// The job could not be read (a version mismatch between controller and image).
    pub const BAD_JOB: i32 = 2;
    /// The repository does not exist and the config does not allow `init`.
    pub const NO_REPOSITORY: i32 = 66;
    /// The repository could not be reached (network, ssh, host key).
    pub const UNREACHABLE: i32 = 69;
    /// Some files of the volume could not be read; the incomplete archive was removed.
    pub const INCOMPLETE: i32 = 74;
    /// The repository is locked by someone else.
    pub const LOCKED: i32 = 75;
    /// The passphrase or password is wrong.
    pub const PASSPHRASE: i32 = 77;
}

/// How to reach a repository from inside the mover pod.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Access {
    /// The config's name for the repository.
    pub name: String,
    /// Which engine.
    pub engine: Engine,
    /// The location as the engine takes it (`ssh://…`, `rest:…`, or a path under `/repository`).
    pub location: String,
    /// Create the repository when it does not exist, with this borg encryption mode (restic: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
    /// Whether a passphrase file is mounted.
    pub passphrase: bool,
    /// ssh settings for `ssh://` (borg) and `sftp:` (restic) repositories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<Ssh>,
    /// How long to wait for a lock held by something other than a mover of this namespace.
    pub lock_wait_secs: u64,
    /// borg `--remote-path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_path: Option<String>,
    /// Compression (borg spec or restic level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// The name prefix of this namespace's mover pods: a lock held by one of them is reported at
    /// once, so the controller can tell a live holder from a gone one.
    pub mover_prefix: String,
}

#[cfg(test)]
impl Access {
    /// A repository access with the defaults unit tests share.
    pub(crate) fn for_tests(
        name: &str,
        engine: Engine,
        location: &str,
        passphrase: bool,
        mover_prefix: &str,
    ) -> Access {
        Access {
            name: name.into(),
            engine,
            location: location.into(),
            init: None,
            passphrase,
            ssh: None,
            lock_wait_secs: 600,
            remote_path: None,
            compression: None,
            mover_prefix: mover_prefix.into(),
        }
    }
}

/// ssh client settings (files under [`paths::SECRETS`]).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Ssh {
    /// Whether a private key is mounted.
    pub key: bool,
    /// Whether known_hosts is mounted.
    pub known_hosts: bool,
    /// Host key checking off (the config opted out; logged on every run).
    pub insecure: bool,
}

/// A repository's retention policy as a prune job carries it: the job's own type, so a change
/// to the config's schema never changes the controller↔pod format (same fields and spelling as
/// the config's `retention`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Retention {
    /// `all`: keep every archive.
    #[serde(default)]
    pub keep: Option<KeepAll>,
    /// Keep the newest N.
    #[serde(default)]
    pub last: Option<u32>,
    /// Hourly periods.
    #[serde(default)]
    pub hourly: Option<u32>,
    /// Daily periods.
    #[serde(default)]
    pub daily: Option<u32>,
    /// ISO-week periods.
    #[serde(default)]
    pub weekly: Option<u32>,
    /// Monthly periods.
    #[serde(default)]
    pub monthly: Option<u32>,
    /// Yearly periods.
    #[serde(default)]
    pub yearly: Option<u32>,
    /// Keep everything younger than this.
    #[serde(default)]
    pub within: Option<HumanDuration>,
}

/// The value `all` of [`Retention::keep`].
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeepAll {
    /// Keep everything.
    All,
}

impl Retention {
    /// The policy as numbers, for the retention engine.
    pub fn policy(&self) -> Policy {
        Policy {
            keep_all: self.keep.is_some(),
            last: self.last.unwrap_or(0),
            hourly: self.hourly.unwrap_or(0),
            daily: self.daily.unwrap_or(0),
            weekly: self.weekly.unwrap_or(0),
            monthly: self.monthly.unwrap_or(0),
            yearly: self.yearly.unwrap_or(0),
            within: self.within,
        }
    }
}

/// Which archives' sizes and file counts a listing asks the engine for, where its listing lacks
/// them (borg info, restic stats: slower than the listing itself).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Sizes {
    /// Names and times only.
    #[default]
    None,
    /// Every listed archive's (`kentledge list --sizes`).
    All,
    /// Only this series' archives: a restore sizes its new volume from its archive, in the same
    /// pod as the listing that finds the archive.
    Of(Series),
}

impl Sizes {
    /// Whether the sizes of `series`' archives are asked for.
    pub fn wanted(&self, kind: SeriesKind, series: &str) -> bool {
        match self {
            Sizes::None => false,
            Sizes::All => true,
            Sizes::Of(s) => s.kind == kind && s.name == series,
        }
    }
}

/// What a mover does.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum Action {
    /// Copy [`paths::DATA`] into a new archive of a series.
    Backup {
        /// The series.
        series: Series,
        /// The snapshot's cut: the archive's time.
        cut: Timestamp,
        /// The VolumeSnapshot copied: named in the borg archive's comment, which tells a copy
        /// an earlier run made of it from another snapshot's cut in the same second.
        snapshot: String,
        /// Upload limit in bytes per second.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upload_limit: Option<u64>,
        /// Exclude patterns relative to the volume root.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        exclude: Vec<String>,
    },
    /// Apply retention to every series of a config and namespace in the repository (also the
    /// series of PVCs, databases and buckets that no longer exist).
    Prune {
        /// The config's name.
        config: String,
        /// The namespace.
        namespace: String,
        /// The repository's policy.
        retention: Retention,
        /// The zone of periods.
        timezone: String,
        /// The evaluation time.
        now: Timestamp,
        /// Only report decisions.
        dry_run: bool,
    },
    /// Verify the repository.
    Check {
        /// Also read this share of the data (`5%`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read_data_subset: Option<String>,
    },
    /// Remove the repository's locks (only sent when every holder is a mover pod that is gone).
    BreakLock,
    /// Dump the databases of one server (each its own series) and its users and roles into the
    /// repository, each whole or not at all, by relays that exec the server's own client.
    Databases(DatabasesJob),
    /// Load a database dump from the repository into a database of its server, by a relay
    /// that feeds it to the server's own client; checked afterwards (the tables are there).
    RestoreDatabase(RestoreDatabaseJob),
    /// Bring the bucket's mirror up to date with the bucket (only changed objects are read)
    /// and copy it into a new archive of its series.
    Bucket(BucketJob),
    /// Write an archive's objects into a bucket with their metadata (or only say what would
    /// change).
    RestoreBucket(RestoreBucketJob),
    /// List the archives of a config and namespace (or of one series), with sizes where the
    /// engine knows them, as `listed` events.
    List {
        /// The config's name.
        config: String,
        /// The namespace.
        namespace: String,
        /// Only this series.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        series: Option<Series>,
        /// Which archives' sizes to ask the engine for where its listing lacks them.
        #[serde(default)]
        sizes: Sizes,
    },
    /// Restore an archive into [`paths::DATA`] (mounted read-write), then verify it against
    /// the archive's own listing.
    Restore {
        /// The series the archive must belong to.
        series: Series,
        /// borg archive name or restic snapshot id.
        archive: String,
        /// Remove what is in the volume first (an in-place restore); otherwise the volume must
        /// be empty.
        #[serde(default)]
        replace: bool,
    },
}

impl Action {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Backup { .. } => "backup",
            Action::Prune { .. } => "prune",
            Action::Check { .. } => "check",
            Action::BreakLock => "break-lock",
            Action::List { .. } => "list",
            Action::Databases(_) => "databases",
            Action::RestoreDatabase(_) => "restore-database",
            Action::Bucket(_) => "bucket",
            Action::RestoreBucket(_) => "restore-bucket",
            Action::Restore { .. } => "restore",
        }
    }

    /// Whether the job mounts the repository's cache volume (when it has one): the jobs that
    /// write to the repository (a database restore writes a safety dump first), one at a time,
    /// and break-lock (a killed writer leaves the cache's lock too). Jobs that only read never
    /// wait for the volume: they get an empty cache (borg extract, list and check do not use
    /// the chunks cache; `list` with sizes runs `borg info`, which builds one there: slower).
    pub fn uses_cache(&self) -> bool {
        match self {
            Action::Backup { .. }
            | Action::BreakLock
            | Action::Databases(_)
            | Action::RestoreDatabase(_)
            | Action::Bucket(_) => true,
            Action::Prune { dry_run, .. } => !dry_run,
            Action::Check { .. }
            | Action::List { .. }
            | Action::RestoreBucket(_)
            | Action::Restore { .. } => false,
        }
    }
}

/// The dumps of one database server into one repository.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatabasesJob {
    /// The config's name.
    pub config: String,
    /// The namespace.
    pub namespace: String,
    /// The `spec.offsite.databases` entry.
    pub name: String,
    /// The database pod.
    pub pod: String,
    /// Its container with the client.
    pub container: String,
    /// How the client authenticates.
    pub client: Client,
    /// Mounted Secret files written to the client's stdin, one line each (user, password).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stdin_lines: Vec<String>,
    /// Only these databases; empty: every database but the server's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<String>,
    /// Upload limit in bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_limit: Option<u64>,
}

/// A database restore: which dump, into which database of the server.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreDatabaseJob {
    /// The server (its `databases` and `upload_limit` unused).
    pub server: DatabasesJob,
    /// The database the dump is of.
    pub source: String,
    /// borg archive name or restic snapshot id.
    pub archive: String,
    /// The dump's file in the archive.
    pub file_name: String,
    /// The database to load it into.
    pub target: String,
    /// Replace `target` if it exists (after a safety dump of it into the repository);
    /// otherwise an existing `target` is refused and nothing is changed.
    pub replace: bool,
}

/// What a database restore did.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Loaded {
    /// The database loaded into.
    pub target: String,
    /// Whether it was made by this restore (it did not exist).
    pub created: bool,
    /// The archive of the safety dump of the replaced database, when one was replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_archive: Option<String>,
    /// Bytes of the dump fed to the client.
    pub bytes: u64,
    /// Tables the dump creates.
    pub expected_tables: u64,
    /// Tables found in the database afterwards.
    pub tables: u64,
    /// The client's stop-at-first-error mode, in its own words.
    pub mode: String,
    /// Seconds the load took.
    pub seconds: f64,
}

/// Where a bucket is, as a mover reaches it; the keys are the mounted files
/// [`paths::S3_ACCESS_KEY`] and [`paths::S3_SECRET_KEY`], never part of a job.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BucketPlace {
    /// The endpoint URL.
    pub endpoint: String,
    /// The region.
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// The prefix ("" for the whole bucket).
    pub prefix: String,
    /// Path-style addressing.
    pub path_style: bool,
}

/// A bucket backup into one repository.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BucketJob {
    /// The series.
    pub series: Series,
    /// The bucket.
    pub place: BucketPlace,
    /// The archive's time (the run's start).
    pub time: Timestamp,
    /// Upload limit (to the repository) and download limit (from the bucket), bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Whether [`paths::BUCKET`] is kept between runs (the bucket's cache volume): then the
    /// engine's cache lives there too, so unchanged objects are not read again.
    pub kept: bool,
}

/// A bucket restore from one archive.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreBucketJob {
    /// The series the archive must belong to.
    pub series: Series,
    /// borg archive name or restic snapshot id.
    pub archive: String,
    /// The bucket written to, and the prefix its objects get (their keys' archive prefix
    /// replaced by it).
    pub target: BucketPlace,
    /// Rewrite target objects whose bytes differ.
    pub overwrite: bool,
    /// Delete target objects under the prefix the archive does not have.
    pub delete_extra: bool,
    /// Only say what would change.
    pub dry_run: bool,
}

/// What a bucket backup read: the listing, what was downloaded, and what changed under it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Synced {
    /// Objects in the archive.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Objects downloaded (new or changed since the mirror's last run).
    pub fetched: u64,
    /// Their bytes.
    pub fetched_bytes: u64,
    /// Objects removed from the mirror (gone from the bucket).
    pub removed: u64,
    /// Listed objects gone when read.
    pub gone: u64,
    /// Listed objects another version of which was read.
    pub changed: u64,
    /// Keys the client cannot address (`.`/`..` segments, `//`, a leading `/`): not copied.
    pub unaddressable: u64,
    /// The first keys of each kind, for the report (all are in the mover's log).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gone_keys: Vec<String>,
    /// See [`Synced::gone_keys`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_keys: Vec<String>,
    /// See [`Synced::gone_keys`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unaddressable_keys: Vec<String>,
    /// Seconds the listing and downloads took.
    pub seconds: f64,
}

/// What a bucket restore will do, or would do: the archive's objects against the target's.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BucketPlan {
    /// Objects in the archive.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Objects the target lacks (written).
    pub new: u64,
    /// Their bytes.
    pub new_bytes: u64,
    /// Objects the target has with the same bytes (left).
    pub same: u64,
    /// Objects the target has with other bytes.
    pub differ: u64,
    /// Their bytes.
    pub differ_bytes: u64,
    /// Target objects under the prefix the archive lacks.
    pub extra: u64,
    /// Whether the restore goes ahead (false: a conflict without its flag, or a dry run).
    pub proceed: bool,
    /// The first differing keys (target keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differ_keys: Vec<String>,
    /// The first extra keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_keys: Vec<String>,
}

/// What a bucket restore wrote.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BucketRestored {
    /// Objects written (new and overwritten).
    pub written: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Of them, overwritten.
    pub overwritten: u64,
    /// Objects left as they were (same bytes).
    pub same: u64,
    /// Extra objects deleted.
    pub deleted: u64,
    /// Seconds.
    pub seconds: f64,
}

/// A whole job.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// The repository.
    pub repository: Access,
    /// What to do.
    #[serde(flatten)]
    pub action: Action,
}

impl Job {
    /// The job as one argument.
    pub fn to_arg(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A job that needs no repository: it works on the pod's volumes alone.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", tag = "action", deny_unknown_fields)]
pub enum LocalJob {
    /// Make [`paths::DATA`] (read-write) the same tree as [`paths::SOURCE`] (a snapshot's
    /// clone, read-only): rsync with owners by number, modes, times, hard links, ACLs, xattrs and
    /// holes, deleting what the source does not have; then compare the two trees' tallies.
    Sync,
    /// Run `command` in another pod's container by exec (with the pod's in-cluster credentials)
    /// and copy its stdout to this process's stdout: the content of a database dump, for an
    /// engine that reads it from a command (`borg create --content-from-command`). Exits non-zero
    /// unless the exec status says Success and the stream ends with `end_marker` (when given).
    #[serde(rename_all = "camelCase")]
    Relay {
        /// The pod.
        pod: String,
        /// Its container.
        container: String,
        /// The command (never a secret: secrets come from `stdin_lines` or the container's env).
        command: Vec<String>,
        /// Mounted files written to the command's stdin, one line each (a trailing newline of
        /// the file dropped); then stdin is closed.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        stdin_lines: Vec<String>,
        /// How the stream is known to be whole (an end marker, or a pg_dump archive read through).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        check: Option<StreamCheck>,
        /// After `stdin_lines`, pass this process's own stdin on to the command's until it
        /// ends (a dump loaded into a database).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        feed: bool,
    },
}

impl LocalJob {
    /// The job as one argument.
    pub fn to_arg(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What `kentledge mover --job` takes: a repository job, or a local one.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum AnyJob {
    /// A job on a repository.
    Engine(Box<Job>),
    /// A job on the pod's volumes.
    Local(LocalJob),
}

/// Why a mover failed, as it tells the controller.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Failure {
    /// See [`code::NO_REPOSITORY`].
    NoRepository,
    /// See [`code::UNREACHABLE`].
    Unreachable,
    /// See [`code::LOCKED`].
    Locked,
    /// See [`code::PASSPHRASE`].
    Passphrase,
    /// See [`code::INCOMPLETE`].
    Incomplete,
    /// Anything else.
    Failed,
    /// See [`code::BAD_JOB`].
    BadJob,
}

impl Failure {
    /// The exit code for this failure.
    pub fn code(self) -> i32 {
        match self {
            Failure::NoRepository => code::NO_REPOSITORY,
            Failure::Unreachable => code::UNREACHABLE,
            Failure::Locked => code::LOCKED,
            Failure::Passphrase => code::PASSPHRASE,
            Failure::Incomplete => code::INCOMPLETE,
            Failure::Failed => code::FAILED,
            Failure::BadJob => code::BAD_JOB,
        }
    }

    /// The failure an exit code stands for (`None` for success).
    pub fn from_code(c: i32) -> Option<Failure> {
        Some(match c {
            code::OK => return None,
            code::NO_REPOSITORY => Failure::NoRepository,
            code::UNREACHABLE => Failure::Unreachable,
            code::LOCKED => Failure::Locked,
            code::PASSPHRASE => Failure::Passphrase,
            code::INCOMPLETE => Failure::Incomplete,
            code::BAD_JOB => Failure::BadJob,
            _ => Failure::Failed,
        })
    }

    /// For people.
    pub fn describe(self) -> &'static str {
        match self {
            Failure::NoRepository => "the repository does not exist (set init: true to create it)",
            Failure::Unreachable => "the repository cannot be reached",
            Failure::Locked => "the repository is locked",
            Failure::Passphrase => "wrong passphrase or password",
            Failure::Incomplete => "some files could not be read: the copy was incomplete",
            Failure::Failed => "the engine failed",
            Failure::BadJob => {
                "the mover could not read its job (image and controller versions differ?)"
            }
        }
    }
}

/// An archive of a series and what prune decides about it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct ArchiveDecision {
    /// The series' name.
    pub series: String,
    /// borg archive name or restic snapshot id.
    pub archive: String,
    /// The archive's time.
    pub time: Timestamp,
    /// Kept or deleted.
    pub keep: bool,
    /// Why.
    pub reasons: String,
    /// Whether the engine confirmed its deletion (set by the controller from `deleted` events;
    /// an archive to delete whose deletion was not confirmed is reported as not deleted).
    #[serde(default)]
    pub deleted: bool,
}

/// An archive as a listing gives it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveEntry {
    /// What the series holds.
    pub kind: SeriesKind,
    /// The series' name (PVC, database or bucket).
    pub series: String,
    /// borg archive name or restic snapshot id.
    pub archive: String,
    /// The archive's time (the snapshot's cut, the dump's start).
    pub time: Timestamp,
    /// Bytes of data in the archive (apparent size), when the engine said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Bytes it added to the repository when it was made, when the engine said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added: Option<u64>,
    /// Files in it, when the engine said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
}

/// The entries whose archive is `id`; when none is and `by_prefix` (restic ids may be given
/// short), those whose archive starts with it.
pub fn matching_archives<'a>(
    entries: &'a [ArchiveEntry],
    id: &str,
    by_prefix: bool,
) -> Vec<&'a ArchiveEntry> {
    let exact: Vec<&ArchiveEntry> = entries.iter().filter(|e| e.archive == id).collect();
    if exact.is_empty() && by_prefix {
        entries
            .iter()
            .filter(|e| e.archive.starts_with(id))
            .collect()
    } else {
        exact
    }
}

/// What one dump did.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Dumped {
    /// The database; none for the users and roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The series' name.
    pub series: String,
    /// Whether it is in the repository, whole.
    pub ok: bool,
    /// `ok`, or why not.
    pub message: String,
    /// The archive name or snapshot id (when made).
    pub archive: String,
    /// Bytes of the dump.
    pub bytes: u64,
    /// New bytes stored.
    pub bytes_added: u64,
    /// How long the dump took.
    pub seconds: f64,
}

/// What a restore wrote, against what the archive lists.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Restored {
    /// borg archive name or restic snapshot id.
    pub archive: String,
    /// Entries (files, directories, links, others) found in the volume afterwards.
    pub entries: u64,
    /// Bytes of regular files found (each path counted).
    pub bytes: u64,
    /// Entries the archive lists.
    pub expected_entries: u64,
    /// Bytes of regular files the archive lists (each path counted).
    pub expected_bytes: u64,
    /// Whether sparse files were written sparse (restic before 0.15 cannot).
    pub sparse: bool,
    /// The engine and its version, as it printed it.
    pub engine_version: String,
    /// Seconds the extraction took.
    pub seconds: f64,
}

/// One line of a mover's stdout.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", tag = "event")]
pub enum MoverEvent {
    /// Work in progress.
    Progress {
        /// Bytes read so far.
        bytes: u64,
        /// Total bytes, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
        /// Files read so far.
        files: u64,
    },
    /// A message for the log.
    Log {
        /// `info`, `warn` or `error`.
        level: String,
        /// The text.
        message: String,
    },
    /// The result of a backup.
    Summary {
        /// The numbers.
        #[serde(flatten)]
        summary: Summary,
    },
    /// A prune decision.
    Archive(ArchiveDecision),
    /// The job failed.
    Failed {
        /// Why.
        failure: Failure,
        /// The engine's words.
        message: String,
        /// Lock holders (`host` or `host pid`), when locked.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        holders: Vec<String>,
    },
    /// Archives of a series the engine deleted.
    Deleted {
        /// The series' name.
        series: String,
        /// borg archive names or restic snapshot ids.
        archives: Vec<String>,
    },
    /// An archive found by a `list` job.
    Listed(ArchiveEntry),
    /// The dumps a `databases` job is about to make, in order (`None`: the users and roles).
    DumpPlan {
        /// The databases.
        databases: Vec<Option<String>>,
    },
    /// A dump is starting (`database` none: the users and roles).
    Dumping {
        /// The database.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        database: Option<String>,
    },
    /// One dump of a `databases` job (or a restore's safety dump), done or not.
    Dumped(Dumped),
    /// The result of a database restore.
    Loaded(Loaded),
    /// What a bucket backup read (before its archive is made).
    BucketSynced(Synced),
    /// What a bucket restore will do (or, on a dry run or a conflict, would do).
    BucketPlan(BucketPlan),
    /// What a bucket restore wrote.
    BucketRestored(BucketRestored),
    /// A restore or sync is about to write its volume (before it, the volume is untouched).
    Writing,
    /// The result of a restore or a sync.
    Restored(Restored),
    /// The mover's last line, with its exit code: a log without it was not read to the end.
    End {
        /// The exit code the mover is about to exit with.
        code: i32,
    },
}

impl MoverEvent {
    /// One line of JSON.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a line of a mover's log; other lines are `None`.
    pub fn parse(line: &str) -> Option<MoverEvent> {
        serde_json::from_str(line.trim()).ok()
    }
}

/// The holder of a lock as the controller sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// A mover pod of this namespace, by pod name.
    Mover(String),
    /// Anything else (another host, another namespace's mover, a person).
    Other(String),
}

/// Sorts lock holders (`host`, `host@…` or `host pid`) into this namespace's movers and others.
pub fn classify_holders(holders: &[String], mover_prefix: &str) -> Vec<Holder> {
    holders
        .iter()
        .map(|h| {
            let host = h
                .split(['@', ' ', '.'])
                .next()
                .unwrap_or_default()
                .to_owned();
            if !mover_prefix.is_empty() && host.starts_with(mover_prefix) {
                Holder::Mover(host)
            } else {
                Holder::Other(h.clone())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
