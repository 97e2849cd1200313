//! What a repository-wide job did on each repository (prune decisions, check results), the
//! exit code, and the text rendering (JSON is the serialized form).

use serde::Serialize;
use serde_json::json;

use crate::mover::job::ArchiveDecision;
use crate::report::table::{Column, Table};
use crate::report::{self, Render, Run, Verdict};

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

/// The exit code of a job over every repository (a lost run lock is a failed record): the
/// signal's code when `interrupted`.
pub fn code(records: &[RepoRecord], interrupted: Option<u8>) -> u8 {
    // A lost run lock is a fact of the run (exit 1 like every command's), not a repository.
    let lock_lost = records.iter().any(|r| r.repository == LOCK_LOST);
    let outcomes = records.iter().filter(|r| r.repository != LOCK_LOST);
    report::exit_code(
        outcomes.map(|r| r.outcome),
        Run {
            lock_lost,
            ..Run::new(interrupted)
        },
    )
}

/// The name of the row that says the run lock was lost during the run.
pub const LOCK_LOST: &str = "(run lock)";

/// `prune` of the repositories with retention.
#[derive(Clone, Copy, Debug)]
pub struct Prune<'a> {
    /// One record per repository (and one for a lost run lock).
    pub records: &'a [RepoRecord],
    /// A dry run.
    pub dry_run: bool,
}

impl Render for Prune<'_> {
    /// One line per repository, then one per archive.
    fn text(&self) -> String {
        let dry_run = self.dry_run;
        let mut out = String::new();
        for r in self.records {
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
            let mut table = Table::new(
                "  ",
                vec![
                    Column::left("SERIES").width(20),
                    Column::left("ARCHIVE").width(56),
                    Column::left("TIME").width(22),
                    Column::left("ACTION").width(11),
                    Column::left("REASONS"),
                ],
            )
            .without_headers();
            for a in &r.archives {
                let action = match (a.keep, a.deleted, dry_run) {
                    (true, _, _) => "keep",
                    (false, _, true) => "delete",
                    (false, true, false) => "deleted",
                    (false, false, false) => "not deleted",
                };
                let time = a.time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
                table.row([a.series.as_str(), &a.archive, &time, action, &a.reasons]);
            }
            out.push_str(&table.render());
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        json!({"dryRun": self.dry_run, "repositories": self.records})
    }
}

/// `check --repositories`.
#[derive(Clone, Copy, Debug)]
pub struct Check<'a> {
    /// One record per repository.
    pub records: &'a [RepoRecord],
}

impl Render for Check<'_> {
    /// One line per repository.
    fn text(&self) -> String {
        let mut out = String::new();
        for r in self.records {
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

    fn json(&self) -> serde_json::Value {
        json!({"repositories": self.records})
    }
}

/// What `prune --only repositories` says when no repository has retention.
#[derive(Clone, Copy, Debug)]
pub struct NoRetention {
    /// A dry run.
    pub dry_run: bool,
}

impl Render for NoRetention {
    fn text(&self) -> String {
        "no repository has retention (spec.repositories[].retention): every archive is kept\n"
            .into()
    }

    fn json(&self) -> serde_json::Value {
        json!({"dryRun": self.dry_run, "repositories": []})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit;

    fn archive(series: &str, day: u8, keep: bool, deleted: bool) -> ArchiveDecision {
        ArchiveDecision {
            series: series.into(),
            archive: format!("kentledge_shop_month_{series}_2026-11-{day:02}T12-00-00Z"),
            time: format!("2026-11-{day:02}T12:00:00Z").parse().unwrap(),
            keep,
            reasons: if keep {
                format!("daily 2026-11-{day:02}")
            } else {
                "out of retention".into()
            },
            deleted,
        }
    }

    /// borg pruned everything it was asked to; restic left one archive; one repository's
    /// decisions were not seen; one failed; the run lock was lost.
    fn prune_records() -> Vec<RepoRecord> {
        let ok = |name: &str, engine, archives| {
            RepoRecord::new(name, engine, Verdict::Ok, "ok".into(), archives)
        };
        vec![
            ok(
                "borg",
                "borg",
                vec![
                    archive("vol_data", 22, true, false),
                    archive("vol_data", 21, false, true),
                    archive("vol_data", 20, false, true),
                ],
            ),
            RepoRecord::new(
                "restic",
                "restic",
                Verdict::Failed,
                "restic forget failed: exit code 1".into(),
                vec![
                    archive("vol_data", 22, true, false),
                    archive("vol_data", 21, false, true),
                    archive("vol_data", 20, false, false),
                ],
            ),
            RepoRecord::new(
                "offsite",
                "borg",
                Verdict::Unknown,
                "result unknown: could not read the mover's log (refused)".into(),
                Vec::new(),
            ),
            RepoRecord::new(
                "(run lock)",
                "-",
                Verdict::Failed,
                "the run lock (Lease kentledge-month) was deleted".into(),
                Vec::new(),
            ),
        ]
    }

    fn check_records() -> Vec<RepoRecord> {
        vec![
            RepoRecord::new("borg", "borg", Verdict::Ok, "ok".into(), Vec::new()),
            RepoRecord::new(
                "restic",
                "restic",
                Verdict::Ok,
                "ok (the mover exited 0; its log could not be read: refused)".into(),
                Vec::new(),
            ),
            RepoRecord::new(
                "broken",
                "borg",
                Verdict::Failed,
                "borg check failed: exit code 1".into(),
                Vec::new(),
            ),
        ]
    }

    #[test]
    fn text() {
        insta::assert_snapshot!(
            "prune_text",
            Prune {
                records: &prune_records(),
                dry_run: false
            }
            .text()
        );
        let dry: Vec<RepoRecord> = prune_records()
            .into_iter()
            .take(1)
            .map(|mut r| {
                r.archives.iter_mut().for_each(|a| a.deleted = false);
                r
            })
            .collect();
        insta::assert_snapshot!(
            "prune_text_dry_run",
            Prune {
                records: &dry,
                dry_run: true
            }
            .text()
        );
        insta::assert_snapshot!(
            "check_text",
            Check {
                records: &check_records()
            }
            .text()
        );
        insta::assert_snapshot!("no_retention_text", NoRetention { dry_run: false }.text());
    }

    #[test]
    fn json() {
        let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap();
        insta::assert_snapshot!(
            "prune_json",
            pretty(
                &Prune {
                    records: &prune_records(),
                    dry_run: false
                }
                .json()
            )
        );
        insta::assert_snapshot!(
            "check_json",
            pretty(
                &Check {
                    records: &check_records()
                }
                .json()
            )
        );
        insta::assert_snapshot!(
            "no_retention_json",
            pretty(&NoRetention { dry_run: false }.json())
        );
    }

    #[test]
    fn exit_codes() {
        let ok = || RepoRecord::new("a", "borg", Verdict::Ok, "ok".into(), Vec::new());
        let failed = || RepoRecord::new("b", "borg", Verdict::Failed, "no".into(), Vec::new());
        let unknown = || RepoRecord::new("c", "borg", Verdict::Unknown, "?".into(), Vec::new());
        assert_eq!(code(&[], None), exit::SUCCESS);
        assert_eq!(code(&[ok(), ok()], None), exit::SUCCESS);
        assert_eq!(code(&[ok(), failed()], None), exit::PARTIAL);
        assert_eq!(code(&[ok(), unknown()], None), exit::PARTIAL);
        assert_eq!(code(&[failed(), unknown()], None), exit::FAILURE);
        // A lost run lock is a failed record.
        assert_eq!(code(&prune_records(), None), exit::PARTIAL);
        assert_eq!(
            code(&[ok()], Some(exit::INTERRUPTED_SIGINT)),
            exit::INTERRUPTED_SIGINT
        );
    }

    #[test]
    fn every_repository_done_but_the_lock_lost_is_a_failure_as_for_every_command() {
        let ok = RepoRecord::new("a", "borg", Verdict::Ok, "ok".into(), Vec::new());
        let lost = RepoRecord::new(LOCK_LOST, "-", Verdict::Failed, "lost".into(), Vec::new());
        assert_eq!(code(std::slice::from_ref(&ok), None), exit::SUCCESS);
        assert_eq!(code(&[ok, lost], None), exit::FAILURE);
    }
}
