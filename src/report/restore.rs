//! What a restore did (a volume or a database): from what, into what, how it was verified, what
//! is left and where, the exit code, and the text rendering (JSON is the serialized form).

use serde::Serialize;

use crate::mover::job::Restored;
use crate::plan::restore::Source;
use crate::plan::restore::inplace::Kind;
use crate::report::{self, Render, Run, Verdict};

/// A volume restore.
#[derive(Clone, Debug, Serialize)]
pub struct VolumeRestore {
    /// The PVC whose data was restored (its series).
    pub pvc: String,
    /// The PVC written: a new one, or the PVC itself in place.
    pub target: String,
    /// Whether it was restored in place.
    pub in_place: bool,
    /// Whether this run resumed a killed run's in-place restore (`result` says what it did).
    pub resumed: bool,
    /// What was restored (for `--resume`: what the killed run recorded).
    pub from: String,
    /// The source, when this run chose it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Whether it worked.
    pub ok: bool,
    /// `ok`, `failed`, or `unknown` (the mover exited 0 but its log could not be read).
    pub outcome: Verdict,
    /// `ok` or what went wrong.
    pub result: String,
    /// What the mover wrote and what the archive lists (archive restores).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored: Option<Restored>,
    /// Whether the new PVC is bound (a snapshot restore into a `WaitForFirstConsumer` class binds
    /// when a pod first uses it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound: Option<bool>,
    /// The safety snapshot of an in-place restore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safety_snapshot: Option<String>,
    /// The workloads an in-place restore stopped, and how they were brought back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<WorkloadRecord>,
    /// What a person should know: the state things are in, what was cleaned up.
    pub notes: Vec<String>,
    /// Seconds the restore took.
    pub seconds: f64,
    /// The signal's exit code, when interrupted.
    #[serde(skip)]
    pub interrupted: Option<u8>,
}

/// A workload an in-place restore stopped.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadRecord {
    /// Its kind.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// The replicas it was brought back to (Deployments, StatefulSets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Brought back as recorded.
    pub back: bool,
    /// Ready again.
    pub ready: bool,
    /// For people.
    pub result: String,
}

impl WorkloadRecord {
    /// A workload left stopped on purpose (the data is not whole).
    pub fn left_stopped(kind: Kind, name: &str) -> WorkloadRecord {
        WorkloadRecord {
            kind,
            name: name.to_owned(),
            replicas: None,
            back: false,
            ready: false,
            result: "LEFT STOPPED".into(),
        }
    }

    /// A bare pod deleted before the restore (it is not recreated).
    pub fn deleted_pod(name: &str) -> WorkloadRecord {
        WorkloadRecord {
            kind: Kind::Pod,
            name: name.to_owned(),
            replicas: None,
            back: false,
            ready: false,
            result: "deleted before the restore: recreate it".into(),
        }
    }
}

impl VolumeRestore {
    /// The record of a restore of `pvc` into `target` (itself when in place) from `from`, with
    /// its verdict and result; the rest is filled as the restore goes.
    pub fn new(
        pvc: &str,
        target: &str,
        source: Option<&Source>,
        from: String,
        outcome: Verdict,
        result: String,
    ) -> VolumeRestore {
        VolumeRestore {
            pvc: pvc.to_owned(),
            target: target.to_owned(),
            in_place: pvc == target,
            resumed: false,
            from,
            source: source.cloned(),
            ok: outcome == Verdict::Ok,
            outcome,
            result,
            restored: None,
            bound: None,
            safety_snapshot: None,
            workloads: Vec::new(),
            notes: Vec::new(),
            seconds: 0.0,
            interrupted: None,
        }
    }

    /// The exit code: 0 when restored (and verified) and every workload is back and ready, 3
    /// when restored but a workload is not, 1 when not restored, an interruption's code.
    pub fn code(&self, lock_lost: bool) -> u8 {
        let workloads = self
            .workloads
            .iter()
            .filter(|w| w.kind != Kind::Pod)
            .map(|w| {
                if w.ready {
                    Verdict::Ok
                } else {
                    Verdict::Failed
                }
            });
        report::exit_code(
            std::iter::once(self.outcome).chain(
                if self.ok { Some(workloads) } else { None }
                    .into_iter()
                    .flatten(),
            ),
            Run {
                lock_lost,
                ..Run::new(self.interrupted)
            },
        )
    }
}

impl Render for VolumeRestore {
    fn text(&self) -> String {
        let into = if self.in_place {
            format!("PVC {} in place", self.pvc)
        } else {
            format!("PVC {} into the new PVC {}", self.pvc, self.target)
        };
        let mut out = match self.outcome {
            Verdict::Ok if self.resumed => format!(
                "resumed the in-place restore of PVC {}: {}\n  from {}\n",
                self.pvc, self.result, self.from
            ),
            Verdict::Ok => format!("restored {into}\n  from {}\n", self.from),
            Verdict::Unknown => format!(
                "restore of {into} NOT CONFIRMED: {}\n  from {}\n",
                self.result, self.from
            ),
            Verdict::Failed => format!(
                "restore of {into} FAILED: {}\n  from {}\n",
                self.result, self.from
            ),
        };
        if let Some(r) = &self.restored {
            let same = r.entries == r.expected_entries && r.bytes == r.expected_bytes;
            let of = if r.archive.is_empty() {
                "the snapshot has"
            } else {
                "the archive lists"
            };
            out.push_str(&format!(
                "  {}: {} entries and {} of files written; {of} {} and {} ({}, {:.1} s)\n",
                if same { "verified" } else { "MISMATCH" },
                r.entries,
                indicatif::HumanBytes(r.bytes),
                r.expected_entries,
                indicatif::HumanBytes(r.expected_bytes),
                r.engine_version,
                r.seconds
            ));
            if !r.sparse {
                out.push_str(&format!(
                    "  note: {} cannot restore sparse files sparse: they were written in full\n",
                    r.engine_version
                ));
            }
        }
        match self.bound {
            Some(true) => out.push_str(&format!("  {} is bound\n", self.target)),
            Some(false) => out.push_str(&format!(
                "  {} is not bound yet: its storage class binds it when a pod first uses it\n",
                self.target
            )),
            None => {}
        }
        if let Some(s) = &self.safety_snapshot {
            out.push_str(&format!("  safety snapshot: {s}\n"));
        }
        for w in &self.workloads {
            out.push_str(&format!(
                "  {} {}: {}{}\n",
                w.kind.name(),
                w.name,
                w.result,
                w.replicas
                    .map(|r| format!(" ({r} replicas)"))
                    .unwrap_or_default()
            ));
        }
        for n in &self.notes {
            out.push_str(&format!("  {n}\n"));
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// What a database restore did.
#[derive(Clone, Debug, Serialize)]
pub struct DatabaseRestore {
    /// The `spec.offsite.databases` entry.
    pub name: String,
    /// The database the dump is of.
    pub database: String,
    /// The database loaded into.
    pub target: String,
    /// Where: `pod/container`.
    pub server: String,
    /// The repository.
    pub repository: String,
    /// The archive.
    pub archive: String,
    /// Whether it was restored and checked.
    pub ok: bool,
    /// `ok`, `failed` or `unknown`.
    pub outcome: Verdict,
    /// `ok` or what went wrong.
    pub result: String,
    /// What the mover reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loaded: Option<crate::mover::job::Loaded>,
    /// What else to know.
    pub notes: Vec<String>,
    /// The whole restore's duration.
    pub seconds: f64,
    /// The signal's exit code, when interrupted.
    pub interrupted: Option<u8>,
}

impl DatabaseRestore {
    /// 0 restored and checked, 1 not, an interruption's code.
    pub fn code(&self, lock_lost: bool) -> u8 {
        one_code(self.outcome, self.interrupted, lock_lost)
    }
}

/// The exit code of a run with one target.
fn one_code(outcome: Verdict, interrupted: Option<u8>, lock_lost: bool) -> u8 {
    report::exit_code(
        [outcome],
        Run {
            lock_lost,
            ..Run::new(interrupted)
        },
    )
}

impl Render for DatabaseRestore {
    fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn text(&self) -> String {
        let mut out = String::new();
        let head = format!(
            "database {} of {} from archive {} in repository {} into database {} in {}",
            self.database, self.name, self.archive, self.repository, self.target, self.server
        );
        if self.ok {
            out.push_str(&format!("restored {head}\n"));
        } else {
            out.push_str(&format!("NOT restored: {head}\n  {}\n", self.result));
        }
        if let Some(l) = &self.loaded {
            if let Some(a) = &l.safety_archive {
                out.push_str(&format!(
                    "  safety dump of the replaced database {}: {a} (in repository {})\n",
                    l.target, self.repository
                ));
            }
            if self.ok {
                out.push_str(&format!(
                    "  {} loaded in {:.1}s by {}; {} tables there (the dump creates {}){}\n",
                    indicatif::HumanBytes(l.bytes),
                    l.seconds,
                    l.mode,
                    l.tables,
                    l.expected_tables,
                    if l.created {
                        "; a new database"
                    } else {
                        "; it replaced the database"
                    }
                ));
            }
        }
        for n in &self.notes {
            out.push_str(&format!("  note: {n}\n"));
        }
        if let Some(c) = self.interrupted {
            out.push_str(&format!("  interrupted (exit {c})\n"));
        }
        out
    }
}

/// What a bucket restore did (or, on a dry run, would do).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketRestore {
    /// The `spec.offsite.buckets` entry.
    pub name: String,
    /// The bucket written to.
    pub bucket: String,
    /// The prefix the objects got.
    pub prefix: String,
    /// The repository.
    pub repository: String,
    /// The archive.
    pub archive: String,
    /// Only planned.
    pub dry_run: bool,
    /// Whether it was restored (or, on a dry run, planned).
    pub ok: bool,
    /// `ok`, `failed` or `unknown`.
    pub outcome: Verdict,
    /// `ok` or what went wrong.
    pub result: String,
    /// The mover's plan: the archive's objects against the target's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<crate::mover::job::BucketPlan>,
    /// What the mover wrote.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored: Option<crate::mover::job::BucketRestored>,
    /// What else to know.
    pub notes: Vec<String>,
    /// The whole restore's duration.
    pub seconds: f64,
    /// The signal's exit code, when interrupted.
    pub interrupted: Option<u8>,
}

impl BucketRestore {
    /// 0 restored (or planned), 1 not, an interruption's code.
    pub fn code(&self, lock_lost: bool) -> u8 {
        one_code(self.outcome, self.interrupted, lock_lost)
    }
}

impl Render for BucketRestore {
    fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn text(&self) -> String {
        use indicatif::HumanBytes;
        let mut out = String::new();
        let head = format!(
            "bucket {} from archive {} in repository {} into s3 {}/{}",
            self.name, self.archive, self.repository, self.bucket, self.prefix
        );
        if self.dry_run && self.ok {
            out.push_str(&format!(
                "restore of {head} (dry run: nothing was changed)\n"
            ));
        } else if self.ok {
            out.push_str(&format!("restored {head}\n"));
        } else {
            out.push_str(&format!("NOT restored: {head}\n  {}\n", self.result));
        }
        if let Some(p) = &self.plan {
            out.push_str(&format!(
                "  plan: {} objects ({}) in the archive: {} new ({}), {} the same in the target, {} with other bytes ({}); {} in the target only\n",
                p.objects,
                HumanBytes(p.bytes),
                p.new,
                HumanBytes(p.new_bytes),
                p.same,
                p.differ,
                HumanBytes(p.differ_bytes),
                p.extra
            ));
            let list = |keys: &[String], n: u64| {
                let mut t = keys
                    .iter()
                    .map(|k| format!("{k:?}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let more = n.saturating_sub(keys.len() as u64);
                if more > 0 {
                    t.push_str(&format!(" and {more} more"));
                }
                t
            };
            if p.differ > 0 {
                out.push_str(&format!(
                    "  with other bytes: {}\n",
                    list(&p.differ_keys, p.differ)
                ));
            }
            if p.extra > 0 {
                out.push_str(&format!(
                    "  in the target only: {}\n",
                    list(&p.extra_keys, p.extra)
                ));
            }
        }
        if let Some(r) = &self.restored {
            out.push_str(&format!(
                "  {} objects written ({}), {} of them overwritten; {} left as they were; {} deleted; {:.1}s\n",
                r.written,
                HumanBytes(r.bytes),
                r.overwritten,
                r.same,
                r.deleted,
                r.seconds
            ));
        }
        for n in &self.notes {
            out.push_str(&format!("  note: {n}\n"));
        }
        if let Some(c) = self.interrupted {
            out.push_str(&format!("  interrupted (exit {c})\n"));
        }
        out
    }
}
