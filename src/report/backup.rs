//! What a backup run did: every copy's record, what was skipped or already copied, the exit
//! code, and the text rendering (JSON is the serialized form).

use indicatif::HumanBytes;
use serde::Serialize;

use crate::error::exit;
use crate::plan::backup::{AlreadyCopied, SkippedVolume};
use crate::report::Verdict;

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
    /// What the config asks for that this version cannot copy yet (databases, buckets).
    pub unavailable: Vec<String>,
    /// The signal's exit code, when interrupted.
    pub interrupted: Option<u8>,
}

impl Report {
    /// 0 all copied; 3 some; 1 none (or nothing to copy); 130/143 interrupted.
    pub fn code(&self) -> u8 {
        if let Some(c) = self.interrupted {
            return c;
        }
        let ok = self.jobs.iter().filter(|j| j.ok).count();
        let unlabelled = self.jobs.iter().filter(|j| j.label_error.is_some()).count();
        let bad = self.jobs.len() - ok + unlabelled + self.skipped.len() + self.unavailable.len();
        match (ok, bad) {
            (_, 0) if ok > 0 || !self.already.is_empty() => exit::SUCCESS,
            (0, _) => exit::FAILURE,
            _ => exit::PARTIAL,
        }
    }

    /// The summary for people.
    pub fn render(&self) -> String {
        let mut out = format!("backup run {} in namespace {}\n", self.run, self.namespace);
        if !self.jobs.is_empty() {
            out.push_str(&format!(
                "  {:<20} {:<14} {:<7} {:>10} {:>10} {:>10} {:>8}  {}\n",
                "PVC", "REPOSITORY", "ENGINE", "READ", "ADDED", "DEDUP", "TIME", "RESULT"
            ));
        }
        for j in &self.jobs {
            out.push_str(&format!(
                "  {:<20} {:<14} {:<7} {:>10} {:>10} {:>10} {:>7.1}s  {}\n",
                j.pvc,
                j.repository,
                j.engine,
                HumanBytes(j.bytes_read).to_string(),
                HumanBytes(j.bytes_added).to_string(),
                HumanBytes(j.bytes_read.saturating_sub(j.bytes_added)).to_string(),
                j.seconds,
                if let (true, Some(e)) = (j.ok, &j.label_error) {
                    format!("ok: {}, but {e}", j.archive)
                } else if j.ok {
                    format!("ok: {}", j.archive)
                } else {
                    j.result.clone()
                }
            ));
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
        for u in &self.unavailable {
            out.push_str(&format!(
                "  NOT COPIED {u}: not available in this version\n"
            ));
        }
        let ok = self.jobs.iter().filter(|j| j.ok).count();
        out.push_str(&format!(
            "{ok} of {} copies done{}\n",
            self.jobs.len(),
            match self.interrupted {
                Some(c) => format!("; interrupted (exit {c}): clones and mover pods were deleted"),
                None => String::new(),
            }
        ));
        out
    }
}
