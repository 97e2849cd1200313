//! What a backup run did: every copy's record, what was skipped or already copied, the exit
//! code, and the text rendering (JSON is the serialized form).

use indicatif::HumanBytes;
use serde::Serialize;

use crate::error::exit;
use crate::plan::backup::{AlreadyCopied, SkippedVolume};
use crate::plan::dumps::SkippedDatabase;
use crate::report::table::{Column, Table};
use crate::report::{self, Render, Run, Verdict};

/// What happened to one copy.
#[derive(Clone, Debug, Serialize)]
pub struct JobRecord {
    /// The PVC.
    pub pvc: String,
    /// The repository.
    pub repository: String,
    /// `borg` or `restic`.
    pub engine: &'static str,
    /// The source snapshot.
    pub snapshot: String,
    /// The archive name or snapshot id.
    pub archive: String,
    /// Whether it worked (and what it did was seen).
    pub ok: bool,
    /// `ok`, `failed`, or `unknown` (the mover exited 0 but its log could not be read: no
    /// `backed-up` label was written on a guess).
    pub outcome: Verdict,
    /// `ok` or what went wrong.
    pub result: String,
    /// Why the source snapshot could not be labelled `backed-up.kentledge.io/<repository>`
    /// after a good copy (then the run is partial: the next backup copies it again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_error: Option<String>,
    /// Bytes read from the volume.
    pub bytes_read: u64,
    /// New bytes stored.
    pub bytes_added: u64,
    /// Files read.
    pub files: u64,
    /// How long the copy took.
    pub seconds: f64,
}

/// What a dump record is of.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", tag = "part", content = "database")]
pub enum DumpPart {
    /// One database.
    Database(String),
    /// The server's users and grants, or roles.
    Users,
    /// The whole entry (nothing was dumped, or the mover failed beyond its dumps).
    Server,
}

/// What happened to one bucket's copy into one repository.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketRecord {
    /// The `spec.offsite.buckets` entry.
    pub name: String,
    /// The bucket.
    pub bucket: String,
    /// The repository.
    pub repository: String,
    /// `borg` or `restic`.
    pub engine: &'static str,
    /// The archive name or snapshot id.
    pub archive: String,
    /// Whether it worked (and what it did was seen).
    pub ok: bool,
    /// `ok`, `failed` or `unknown`.
    pub outcome: Verdict,
    /// `ok`, or why not.
    pub result: String,
    /// Objects in the archive.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Objects downloaded (new or changed since the mirror's last run).
    pub fetched: u64,
    /// Their bytes.
    pub fetched_bytes: u64,
    /// New bytes stored in the repository.
    pub bytes_added: u64,
    /// Listed objects gone when read (not in the archive).
    pub gone: u64,
    /// Listed objects another version of which was read.
    pub changed: u64,
    /// The first of them (every one is in the log).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gone_keys: Vec<String>,
    /// The first of them (every one is in the log).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed_keys: Vec<String>,
    /// Seconds.
    pub seconds: f64,
}

/// What happened to one dump (or to a server's dumps as a whole).
#[derive(Clone, Debug, Serialize)]
pub struct DumpRecord {
    /// The `spec.offsite.databases` entry.
    pub name: String,
    /// Which dump.
    #[serde(flatten)]
    pub part: DumpPart,
    /// The database pod.
    pub pod: String,
    /// The repository.
    pub repository: String,
    /// `borg` or `restic`.
    pub engine: &'static str,
    /// The archive name or snapshot id, when one was made.
    pub archive: String,
    /// Whether it worked (and was seen to).
    pub ok: bool,
    /// `ok`, `failed` or `unknown`.
    pub outcome: Verdict,
    /// `ok` or what went wrong.
    pub result: String,
    /// Bytes of the dump.
    pub bytes: u64,
    /// New bytes stored.
    pub bytes_added: u64,
    /// How long the dump took.
    pub seconds: f64,
}

impl DumpRecord {
    /// `entry/database`, `entry (users and roles)` or `entry`.
    pub fn target(&self) -> String {
        match &self.part {
            DumpPart::Database(d) => format!("{}/{d}", self.name),
            DumpPart::Users => format!("{} (users)", self.name),
            DumpPart::Server => self.name.clone(),
        }
    }
}

/// The run's result.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The run id.
    pub run: String,
    /// The namespace.
    pub namespace: String,
    /// The copies.
    pub jobs: Vec<JobRecord>,
    /// PVCs left out.
    pub skipped: Vec<SkippedVolume>,
    /// Copies an earlier run made.
    pub already: Vec<AlreadyCopied>,
    /// The database dumps.
    pub dumps: Vec<DumpRecord>,
    /// Database entries left out.
    pub skipped_databases: Vec<SkippedDatabase>,
    /// The bucket copies.
    pub buckets: Vec<BucketRecord>,
    /// The signal's exit code, when interrupted.
    pub interrupted: Option<u8>,
}

impl Report {
    /// Every target's verdict: each copy's, a failed one for each copy that could not be
    /// labelled, and for each PVC skipped and each thing the config asks for that this version
    /// cannot copy.
    pub fn outcomes(&self) -> impl Iterator<Item = Verdict> + '_ {
        let not_done = self.skipped.len() + self.skipped_databases.len();
        self.jobs
            .iter()
            .map(|j| j.outcome)
            .chain(self.dumps.iter().map(|d| d.outcome))
            .chain(self.buckets.iter().map(|b| b.outcome))
            .chain(
                self.jobs
                    .iter()
                    .filter(|j| j.label_error.is_some())
                    .map(|_| Verdict::Failed),
            )
            .chain(std::iter::repeat_n(Verdict::Failed, not_done))
    }

    /// 0 all copied; 3 some; 1 none (or nothing to copy and nothing copied before), or the run
    /// lock was lost; 130/143 interrupted.
    pub fn code(&self, lock_lost: bool) -> u8 {
        let run = Run {
            lock_lost,
            empty: if self.already.is_empty() {
                exit::FAILURE
            } else {
                exit::SUCCESS
            },
            ..Run::new(self.interrupted)
        };
        report::exit_code(self.outcomes(), run)
    }
}

impl Render for Report {
    fn targets(&self) -> Vec<crate::report::metrics::Target> {
        use crate::report::metrics::Target;
        let jobs = self.jobs.iter().map(|j| Target {
            kind: "volume",
            series: j.pvc.clone(),
            repository: Some(j.repository.clone()),
            ok: j.ok && j.label_error.is_none(),
            bytes: Some(j.bytes_read),
            seconds: Some(j.seconds),
        });
        let dumps = self.dumps.iter().map(|d| Target {
            kind: "database",
            series: d.target(),
            repository: Some(d.repository.clone()),
            ok: d.ok,
            bytes: Some(d.bytes),
            seconds: Some(d.seconds),
        });
        let buckets = self.buckets.iter().map(|b| Target {
            kind: "bucket",
            series: b.name.clone(),
            repository: Some(b.repository.clone()),
            ok: b.ok,
            bytes: Some(b.fetched_bytes),
            seconds: Some(b.seconds),
        });
        let skipped = self
            .skipped
            .iter()
            .map(|s| (s.pvc.clone(), "volume"))
            .chain(
                self.skipped_databases
                    .iter()
                    .map(|s| (s.name.clone(), "database")),
            )
            .map(|(series, kind)| Target {
                kind,
                series,
                repository: None,
                ok: false,
                bytes: None,
                seconds: None,
            });
        jobs.chain(dumps).chain(buckets).chain(skipped).collect()
    }

    /// The serialized form.
    fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The summary for people.
    fn text(&self) -> String {
        let mut out = format!("backup run {} in namespace {}\n", self.run, self.namespace);
        let mut table = Table::new(
            "  ",
            vec![
                Column::left("PVC").width(20),
                Column::left("REPOSITORY").width(14),
                Column::left("ENGINE").width(7),
                Column::right("READ").width(10),
                Column::right("ADDED").width(10),
                Column::right("DEDUP").width(10),
                Column::right("TIME").width(8),
                Column::left("RESULT").gap(2),
            ],
        );
        for j in &self.jobs {
            table.row([
                j.pvc.clone(),
                j.repository.clone(),
                j.engine.to_owned(),
                HumanBytes(j.bytes_read).to_string(),
                HumanBytes(j.bytes_added).to_string(),
                HumanBytes(j.bytes_read.saturating_sub(j.bytes_added)).to_string(),
                format!("{:.1}s", j.seconds),
                if let (true, Some(e)) = (j.ok, &j.label_error) {
                    format!("ok: {}, but {e}", j.archive)
                } else if j.ok {
                    format!("ok: {}", j.archive)
                } else {
                    j.result.clone()
                },
            ]);
        }
        if !self.jobs.is_empty() || (self.dumps.is_empty() && self.buckets.is_empty()) {
            out.push_str(&table.render());
        }
        if !self.dumps.is_empty() {
            let mut t = Table::new(
                "  ",
                vec![
                    Column::left("DATABASE").width(20),
                    Column::left("REPOSITORY").width(14),
                    Column::left("ENGINE").width(7),
                    Column::right("DUMPED").width(10),
                    Column::right("ADDED").width(10),
                    Column::right("TIME").width(8),
                    Column::left("RESULT").gap(2),
                ],
            );
            for d in &self.dumps {
                t.row([
                    d.target(),
                    d.repository.clone(),
                    d.engine.to_owned(),
                    HumanBytes(d.bytes).to_string(),
                    HumanBytes(d.bytes_added).to_string(),
                    format!("{:.1}s", d.seconds),
                    if d.ok {
                        format!("ok: {}", d.archive)
                    } else {
                        d.result.clone()
                    },
                ]);
            }
            out.push_str(&t.render());
        }
        if !self.buckets.is_empty() {
            let mut t = Table::new(
                "  ",
                vec![
                    Column::left("BUCKET").width(20),
                    Column::left("REPOSITORY").width(14),
                    Column::left("ENGINE").width(7),
                    Column::right("OBJECTS").width(8),
                    Column::right("SIZE").width(10),
                    Column::right("DOWNLOADED").width(10),
                    Column::right("ADDED").width(10),
                    Column::right("TIME").width(8),
                    Column::left("RESULT").gap(2),
                ],
            );
            for b in &self.buckets {
                t.row([
                    b.name.clone(),
                    b.repository.clone(),
                    b.engine.to_owned(),
                    b.objects.to_string(),
                    HumanBytes(b.bytes).to_string(),
                    HumanBytes(b.fetched_bytes).to_string(),
                    HumanBytes(b.bytes_added).to_string(),
                    format!("{:.1}s", b.seconds),
                    if b.ok {
                        format!("ok: {}", b.archive)
                    } else {
                        b.result.clone()
                    },
                ]);
            }
            out.push_str(&t.render());
        }
        for s in &self.skipped_databases {
            out.push_str(&format!("  skipped database {}: {}\n", s.name, s.reason));
        }
        for a in &self.already {
            out.push_str(&format!(
                "  {} → {}: already copied from {} ({})\n",
                a.pvc, a.repository, a.snapshot, a.at
            ));
        }
        for s in &self.skipped {
            out.push_str(&format!("  skipped {}: {}\n", s.pvc, s.reason));
        }
        for b in &self.buckets {
            let shown = |keys: &[String], n: u64| {
                let more = n.saturating_sub(keys.len() as u64);
                let mut t = keys
                    .iter()
                    .map(|k| format!("{k:?}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                if more > 0 {
                    t.push_str(&format!(" and {more} more (in the log)"));
                }
                t
            };
            if b.gone > 0 {
                out.push_str(&format!(
                    "  bucket {} → {}: {} object(s) listed but gone when read, not in the archive: {}\n",
                    b.name, b.repository, b.gone, shown(&b.gone_keys, b.gone)
                ));
            }
            if b.changed > 0 {
                out.push_str(&format!(
                    "  bucket {} → {}: {} object(s) changed while the backup ran, the archive has the version read: {}\n",
                    b.name, b.repository, b.changed, shown(&b.changed_keys, b.changed)
                ));
            }
        }
        let ok = self.jobs.iter().filter(|j| j.ok).count();
        let dumps = if self.dumps.is_empty() {
            String::new()
        } else {
            format!(
                ", {} of {} dumps",
                self.dumps.iter().filter(|d| d.ok).count(),
                self.dumps.len()
            )
        };
        let buckets = if self.buckets.is_empty() {
            String::new()
        } else {
            format!(
                ", {} of {} bucket copies",
                self.buckets.iter().filter(|b| b.ok).count(),
                self.buckets.len()
            )
        };
        // Without volume copies the line starts with what there was.
        let copies = if self.jobs.is_empty() && !(dumps.is_empty() && buckets.is_empty()) {
            String::new()
        } else {
            format!("{ok} of {} copies", self.jobs.len())
        };
        let line = format!("{copies}{dumps}{buckets}");
        out.push_str(&format!(
            "{} done{}\n",
            line.trim_start_matches(", "),
            match self.interrupted {
                Some(c) => format!("; interrupted (exit {c}): clones and mover pods were deleted"),
                None => String::new(),
            }
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(pvc: &str, repository: &str, outcome: Verdict, result: &str) -> JobRecord {
        JobRecord {
            pvc: pvc.into(),
            repository: repository.into(),
            engine: "borg",
            snapshot: format!("kentledge-shop-{pvc}-20261122-120000-ab12"),
            archive: format!("kentledge_shop_shop_vol_{pvc}_2026-11-22T12-00-00Z"),
            ok: outcome == Verdict::Ok,
            outcome,
            result: result.into(),
            label_error: None,
            bytes_read: 5 * 1024 * 1024 * 1024 + 300 * 1024 * 1024,
            bytes_added: 12 * 1024 * 1024,
            files: 1234,
            seconds: 83.25,
        }
    }

    /// A run with every kind of row: copied, copied but not labelled, failed, result unknown,
    /// already copied, skipped, buckets.
    fn every_row() -> Report {
        let mut unlabelled = job("logs", "offsite", Verdict::Ok, "ok");
        unlabelled.engine = "restic";
        unlabelled.label_error = Some(
            "the snapshot could not be labelled backed-up.kentledge.io/offsite: forbidden".into(),
        );
        let mut failed = job(
            "cache",
            "local",
            Verdict::Failed,
            "borg create failed: exit code 2",
        );
        failed.bytes_read = 0;
        failed.bytes_added = 0;
        failed.seconds = 1.0;
        Report {
            run: "20261122-120500-cd34".into(),
            namespace: "shop".into(),
            jobs: vec![
                job("data", "offsite", Verdict::Ok, "ok"),
                unlabelled,
                failed,
                job(
                    "media",
                    "offsite",
                    Verdict::Unknown,
                    "result unknown: could not read the mover's log (refused)",
                ),
            ],
            skipped: vec![SkippedVolume {
                pvc: "scratch".into(),
                reason: "no ready snapshot".into(),
            }],
            already: vec![AlreadyCopied {
                pvc: "db".into(),
                snapshot: "kentledge-shop-db-20261122-120000-ab12".into(),
                repository: "offsite".into(),
                at: "2026-11-22T12-03-00Z".into(),
            }],
            dumps: vec![
                DumpRecord {
                    name: "maria".into(),
                    part: DumpPart::Database("shop".into()),
                    pod: "db-0".into(),
                    repository: "offsite".into(),
                    engine: "borg",
                    archive: "kentledge_shop_shop_db_maria.shop_2026-11-22T12-00-03Z".into(),
                    ok: true,
                    outcome: Verdict::Ok,
                    result: "ok".into(),
                    bytes: 120 * 1024 * 1024,
                    bytes_added: 3 * 1024 * 1024,
                    seconds: 9.5,
                },
                DumpRecord {
                    name: "maria".into(),
                    part: DumpPart::Users,
                    pod: "db-0".into(),
                    repository: "offsite".into(),
                    engine: "borg",
                    archive: String::new(),
                    ok: false,
                    outcome: Verdict::Failed,
                    result: "the dump was not whole, no archive was made: Access denied".into(),
                    bytes: 0,
                    bytes_added: 0,
                    seconds: 0.4,
                },
            ],
            skipped_databases: vec![SkippedDatabase {
                name: "pg".into(),
                reason: "no running pod matches its pod selector".into(),
            }],
            buckets: vec![
                BucketRecord {
                    name: "media".into(),
                    bucket: "prod-media".into(),
                    repository: "offsite".into(),
                    engine: "borg",
                    archive: "kentledge_shop_shop_s3_media_2026-11-22T12-00-00Z".into(),
                    ok: true,
                    outcome: Verdict::Ok,
                    result: "ok".into(),
                    objects: 10_000,
                    bytes: 3 << 30,
                    fetched: 12,
                    fetched_bytes: 40 << 20,
                    bytes_added: 39 << 20,
                    gone: 1,
                    changed: 23,
                    gone_keys: vec!["img/old.png".into()],
                    changed_keys: vec!["img/a.png".into(), "img/b.png".into()],
                    seconds: 12.5,
                },
                BucketRecord {
                    name: "media".into(),
                    bucket: "prod-media".into(),
                    repository: "restic-s3".into(),
                    engine: "restic",
                    outcome: Verdict::Failed,
                    result: "bucket prod-media: listing bucket prod-media under \"\": HTTP 403 InvalidAccessKeyId: The access key does not exist".into(),
                    ..BucketRecord::default()
                },
            ],
            interrupted: None,
        }
    }

    #[test]
    fn text() {
        insta::assert_snapshot!("text", every_row().text());
    }

    #[test]
    fn json() {
        let json = serde_json::to_string_pretty(&every_row().json()).unwrap();
        insta::assert_snapshot!("json", json);
    }

    #[test]
    fn text_interrupted() {
        let mut r = every_row();
        r.jobs.truncate(1);
        r.skipped.clear();
        r.already.clear();
        r.buckets.clear();
        r.dumps.clear();
        r.skipped_databases.clear();
        r.interrupted = Some(exit::INTERRUPTED_SIGTERM);
        insta::assert_snapshot!("text_interrupted", r.text());
    }

    #[test]
    fn exit_codes() {
        let ok = || job("data", "offsite", Verdict::Ok, "ok");
        let failed = || job("data", "offsite", Verdict::Failed, "failed");
        let unknown = || job("data", "offsite", Verdict::Unknown, "result unknown");
        let base = || Report {
            jobs: Vec::new(),
            skipped: Vec::new(),
            already: Vec::new(),
            buckets: Vec::new(),
            dumps: Vec::new(),
            skipped_databases: Vec::new(),
            ..every_row()
        };
        let with = |f: &dyn Fn(&mut Report)| {
            let mut r = base();
            f(&mut r);
            r.code(false)
        };
        // Nothing to copy, nothing copied before: a failure.
        assert_eq!(with(&|_| {}), exit::FAILURE);
        // Everything was copied before.
        assert_eq!(with(&|r| r.already = every_row().already), exit::SUCCESS);
        assert_eq!(with(&|r| r.jobs = vec![ok(), ok()]), exit::SUCCESS);
        assert_eq!(with(&|r| r.jobs = vec![ok(), failed()]), exit::PARTIAL);
        assert_eq!(with(&|r| r.jobs = vec![ok(), unknown()]), exit::PARTIAL);
        assert_eq!(with(&|r| r.jobs = vec![failed(), unknown()]), exit::FAILURE);
        assert_eq!(with(&|r| r.jobs = vec![unknown()]), exit::FAILURE);
        // A copy that could not be labelled makes the run partial, even alone.
        let unlabelled = || {
            let mut j = ok();
            j.label_error = Some("forbidden".into());
            j
        };
        assert_eq!(with(&|r| r.jobs = vec![unlabelled()]), exit::PARTIAL);
        // Skipped targets and failed bucket copies are not done.
        let skipped = every_row().skipped;
        assert_eq!(
            with(&|r| {
                r.jobs = vec![ok()];
                r.skipped = skipped.clone();
            }),
            exit::PARTIAL
        );
        assert_eq!(
            with(&|r| {
                r.jobs = vec![ok()];
                r.buckets = vec![every_row().buckets[1].clone()];
            }),
            exit::PARTIAL
        );
        assert_eq!(
            with(&|r| r.buckets = vec![every_row().buckets[0].clone()]),
            exit::SUCCESS
        );
        // Copies made before do not make a run with nothing copied partial.
        assert_eq!(
            with(&|r| {
                r.already = every_row().already;
                r.skipped = skipped.clone();
            }),
            exit::FAILURE
        );
        assert_eq!(
            with(&|r| {
                r.jobs = vec![ok()];
                r.interrupted = Some(exit::INTERRUPTED_SIGINT);
            }),
            exit::INTERRUPTED_SIGINT
        );
        // A run that lost its lock is not a success.
        let mut all = base();
        all.jobs = vec![ok()];
        assert_eq!(all.code(true), exit::FAILURE);
        all.jobs.push(failed());
        assert_eq!(all.code(true), exit::PARTIAL);
    }
}
