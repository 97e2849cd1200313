//! What a repository-wide job did on each repository (prune decisions, check results), the
//! exit code, and the text rendering (JSON is the serialized form).

use serde::Serialize;
use serde_json::json;

use crate::error::exit;
use crate::mover::job::ArchiveDecision;
use crate::report::Verdict;

/// What a job did on one repository.
#[derive(Clone, Debug, Serialize)]
pub struct RepoRecord {
    /// The repository.
    pub repository: String,
    /// `borg` or `restic`.
    pub engine: &'static str,
    /// Whether it worked (and, for prune, its decisions were seen).
    pub ok: bool,
    /// `ok`, `failed`, or `unknown` (the mover exited 0 but its log, with the decisions, could
    /// not be read).
    pub outcome: Verdict,
    /// `ok` or what went wrong.
    pub result: String,
    /// Prune decisions.
    pub archives: Vec<ArchiveDecision>,
}

impl RepoRecord {
    /// The record of `repository` (an `engine` one).
    pub fn new(
        repository: &str,
        engine: &'static str,
        outcome: Verdict,
        result: String,
        archives: Vec<ArchiveDecision>,
    ) -> Self {
        RepoRecord {
            repository: repository.to_owned(),
            engine,
            ok: outcome == Verdict::Ok,
            outcome,
            result,
            archives,
        }
    }
}

/// The exit code of a job over every repository: the signal's code when `interrupted`.
pub fn code(records: &[RepoRecord], interrupted: Option<u8>) -> u8 {
    if let Some(c) = interrupted {
        return c;
    }
    if records.iter().all(|r| r.ok) {
        exit::SUCCESS
    } else if records.iter().any(|r| r.ok) {
        exit::PARTIAL
    } else {
        exit::FAILURE
    }
}

/// `prune`'s lines for people: one per repository, then one per archive.
pub fn render_prune(records: &[RepoRecord], dry_run: bool) -> String {
    let mut out = String::new();
    for r in records {
        if r.outcome == Verdict::Unknown {
            out.push_str(&format!(
                "repository {} ({}): {}: which archives were {} is not known\n",
                r.repository,
                r.engine,
                r.result,
                if dry_run {
                    "kept and which would be deleted"
                } else {
                    "kept and which were deleted"
                }
            ));
            continue;
        }
        let kept = r.archives.iter().filter(|a| a.keep).count();
        let doomed = r.archives.len() - kept;
        let deleted = r.archives.iter().filter(|a| a.deleted).count();
        let done = if dry_run {
            format!("{doomed} would be deleted")
        } else if deleted == doomed {
            format!("{deleted} deleted")
        } else {
            format!(
                "{deleted} deleted, {} to delete NOT deleted",
                doomed - deleted
            )
        };
        out.push_str(&format!(
            "repository {} ({}): {} archive(s), {kept} kept, {done}{}\n",
            r.repository,
            r.engine,
            r.archives.len(),
            if r.ok {
                String::new()
            } else {
                format!(" — FAILED: {}", r.result)
            }
        ));
        for a in &r.archives {
            out.push_str(&format!(
                "  {:<20} {:<56} {:<22} {:<11} {}\n",
                a.series,
                a.archive,
                a.time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                match (a.keep, a.deleted, dry_run) {
                    (true, _, _) => "keep",
                    (false, _, true) => "delete",
                    (false, true, false) => "deleted",
                    (false, false, false) => "not deleted",
                },
                a.reasons
            ));
        }
    }
    out
}

/// `prune`'s JSON document.
pub fn prune_json(records: &[RepoRecord], dry_run: bool) -> serde_json::Value {
    json!({"dryRun": dry_run, "repositories": records})
}

/// `check --repositories`' lines for people: one per repository.
pub fn render_check(records: &[RepoRecord]) -> String {
    let mut out = String::new();
    for r in records {
        out.push_str(&format!(
            "repository {} ({}): {}\n",
            r.repository,
            r.engine,
            if r.ok {
                "no problems found".to_owned()
            } else {
                format!("FAILED: {}", r.result)
            }
        ));
    }
    out
}

/// `check --repositories`' JSON document.
pub fn check_json(records: &[RepoRecord]) -> serde_json::Value {
    json!({"repositories": records})
}

/// What `prune --only repositories` says when no repository has retention.
pub fn no_retention_text() -> String {
    "no repository has retention (spec.repositories[].retention): every archive is kept\n".into()
}

/// Its JSON document.
pub fn no_retention_json(dry_run: bool) -> serde_json::Value {
    json!({"dryRun": dry_run, "repositories": []})
}
