//! The backup engines as data: exact series naming (borg archive names and globs, restic tags)
//! and the command lines kentledge's mover runs. Pure functions, never a secret: passphrases,
//! passwords and keys reach the engines through the mover pod's environment and mounted files.

pub mod borg;
pub mod bucket;
pub mod databases;
pub mod output;
pub mod restic;

use jiff::Timestamp;

/// What a series holds.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum SeriesKind {
    /// A PVC's data, from a snapshot clone.
    #[serde(rename = "vol")]
    Volume,
    /// A database dump.
    #[serde(rename = "db")]
    Database,
    /// An S3 bucket.
    #[serde(rename = "s3")]
    Bucket,
}

impl SeriesKind {
    /// The short name used in archive names and tags.
    pub fn short(self) -> &'static str {
        match self {
            SeriesKind::Volume => "vol",
            SeriesKind::Database => "db",
            SeriesKind::Bucket => "s3",
        }
    }

    /// The kind whose [`SeriesKind::short`] name is `s`.
    pub fn from_short(s: &str) -> Option<SeriesKind> {
        [SeriesKind::Volume, SeriesKind::Database, SeriesKind::Bucket]
            .into_iter()
            .find(|k| k.short() == s)
    }
}

/// One series in a repository: one PVC, database or bucket of one config in one namespace.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Series {
    /// The config's name.
    pub config: String,
    /// The namespace.
    pub namespace: String,
    /// What it holds.
    pub kind: SeriesKind,
    /// The PVC, database or bucket series name.
    pub name: String,
}

impl Series {
    /// The borg archive name prefix: `kentledge_<config>_<namespace>_<kind>_<name>_`.
    /// Kubernetes names cannot contain `_`, so the trailing `_` ends the name exactly:
    /// the series `db` never matches the archives of `db-wal`.
    pub fn borg_prefix(&self) -> String {
        format!(
            "{}{}_{}_",
            scope_prefix(&self.config, &self.namespace),
            self.kind.short(),
            self.name
        )
    }

    /// The archive name for data cut at `time` (UTC, no `:`).
    pub fn borg_archive(&self, time: Timestamp) -> String {
        format!(
            "{}{}",
            self.borg_prefix(),
            time.strftime("%Y-%m-%dT%H-%M-%SZ")
        )
    }

    /// The restic tags of this series; `--tag a,b,…` selects snapshots carrying all of them.
    pub fn restic_tags(&self) -> Vec<String> {
        let mut tags = scope_tags(&self.config, &self.namespace);
        tags.push(format!("kind={}", self.kind.short()));
        tags.push(format!("name={}", self.name));
        tags
    }
}

/// The start of every borg archive name of a config in a namespace (all its series).
pub fn scope_prefix(config: &str, namespace: &str) -> String {
    format!("kentledge_{config}_{namespace}_")
}

/// The restic tags every snapshot of a config in a namespace carries (all its series).
pub fn scope_tags(config: &str, namespace: &str) -> Vec<String> {
    vec![
        "kentledge".to_owned(),
        format!("config={config}"),
        format!("namespace={namespace}"),
    ]
}

/// What every backup command line takes, whatever the engine: compression, an upload limit
/// (bytes per second) and exclude patterns.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tuning<'a> {
    /// The engine's compression spec.
    pub compression: Option<&'a str>,
    /// Upload limit in bytes per second.
    pub upload_limit: Option<u64>,
    /// Exclude patterns, relative to the volume root.
    pub exclude: &'a [String],
}

impl Tuning<'_> {
    /// Appends the flags; `limit_flag` is the engine's name for the upload limit (KiB/s).
    fn push(&self, a: &mut Vec<String>, limit_flag: &str) {
        if let Some(c) = self.compression {
            a.push("--compression".into());
            a.push(c.to_owned());
        }
        if let Some(bytes) = self.upload_limit {
            a.push(limit_flag.into());
            a.push(kib_per_second(bytes).to_string());
        }
        for e in self.exclude {
            a.push("--exclude".into());
            a.push(e.clone());
        }
    }
}

/// Bytes per second → KiB per second (the unit both engines take), at least 1.
pub fn kib_per_second(bytes: u64) -> u64 {
    (bytes / 1024).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str) -> Series {
        Series {
            config: "shop".into(),
            namespace: "prod".into(),
            kind: SeriesKind::Volume,
            name: name.into(),
        }
    }

    fn glob_matches(glob: &str, name: &str) -> bool {
        name.starts_with(glob.trim_end_matches('*'))
    }

    /// The `--glob-archives` pattern `borg list` takes for a series.
    fn borg_glob(s: &Series) -> String {
        let argv = borg::list(&borg::Repo::default(), &s.borg_prefix());
        let at = argv.iter().position(|a| a == "--glob-archives").unwrap();
        argv[at + 1].clone()
    }

    #[test]
    fn archive_names_scope_a_series_exactly() {
        let t: Timestamp = "2026-11-22T10:00:07Z".parse().unwrap();
        let db = series("db");
        let wal = series("db-wal");
        assert_eq!(
            db.borg_archive(t),
            "kentledge_shop_prod_vol_db_2026-11-22T10-00-07Z"
        );
        assert!(glob_matches(&borg_glob(&db), &db.borg_archive(t)));
        assert!(
            !glob_matches(&borg_glob(&db), &wal.borg_archive(t)),
            "db must not match db-wal"
        );
        assert!(!glob_matches(&borg_glob(&wal), &db.borg_archive(t)));
        assert_ne!(db.restic_tags(), wal.restic_tags());
        assert_eq!(db.restic_tags()[4], "name=db");
    }

    #[test]
    fn rates() {
        assert_eq!(kib_per_second(10 * 1024 * 1024), 10 * 1024);
        assert_eq!(kib_per_second(100), 1);
    }
}
