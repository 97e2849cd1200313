//! What a run did, as plain data: the report of every command (snapshot, backup, snapshot
//! prune, repository prune and check, list), its exit code, and its text rendering (JSON is the
//! serialized form). Flows fill the reports; `runtime::output` prints them.

pub mod backup;
pub mod list;
pub mod metrics;
pub mod prune;
pub mod repositories;
pub mod restore;
pub mod snapshot;
pub mod status;
pub mod table;

use crate::error::exit;

/// A report as `runtime::output` prints it: text for people as the run goes, and its part of
/// the command's one JSON document for programs.
pub trait Render {
    /// The text for people.
    fn text(&self) -> String;
    /// The JSON object (merged into the command's document).
    fn json(&self) -> serde_json::Value;
    /// The run's targets as metrics see them (none for reports that are not a scheduled run's).
    fn targets(&self) -> Vec<metrics::Target> {
        Vec::new()
    }
}

/// A job's result as reports give it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// It did what it was asked, and what it did was seen.
    Ok,
    /// It failed (also what a record says until it is known).
    #[default]
    Failed,
    /// The mover exited 0, but its log could not be read: what it did was not seen.
    Unknown,
}

/// How a run ended apart from its targets' verdicts: the rest of what [`exit_code`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// The signal's exit code, when interrupted: then it is the run's code.
    pub interrupted: Option<u8>,
    /// The run as a whole failed (a hook, the lock), whatever its targets did: never partial.
    pub failed: bool,
    /// The run lock was lost during the run: a run that was not alone is not a success.
    pub lock_lost: bool,
    /// Whether some targets done and others not is partial (3); otherwise it is a failure (1).
    pub partial: bool,
    /// The code when there was no target at all.
    pub empty: u8,
}

impl Run {
    /// An uninterrupted run (unless `interrupted`) that did not fail as a whole and kept its
    /// lock; some targets done is partial, none at all a success.
    pub fn new(interrupted: Option<u8>) -> Run {
        Run {
            interrupted,
            failed: false,
            lock_lost: false,
            partial: true,
            empty: exit::SUCCESS,
        }
    }
}

/// The one exit-code rule of every command: an interruption's code; 1 when the run failed as a
/// whole; otherwise 0 when every target is ok (`run.empty` when there is none), 3 when some are
/// and others failed or are unknown (1 when partial results are not allowed), 1 when none is
/// ok; and a success whose run lock was lost is 1.
pub fn exit_code(outcomes: impl IntoIterator<Item = Verdict>, run: Run) -> u8 {
    if let Some(c) = run.interrupted {
        return c;
    }
    let (mut ok, mut bad) = (0usize, 0usize);
    for v in outcomes {
        match v {
            Verdict::Ok => ok += 1,
            Verdict::Failed | Verdict::Unknown => bad += 1,
        }
    }
    let code = match (ok, bad) {
        _ if run.failed => exit::FAILURE,
        (0, 0) => run.empty,
        (_, 0) => exit::SUCCESS,
        (0, _) => exit::FAILURE,
        _ if run.partial => exit::PARTIAL,
        _ => exit::FAILURE,
    };
    if run.lock_lost && code == exit::SUCCESS {
        exit::FAILURE
    } else {
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::{Failed, Ok, Unknown};

    #[test]
    fn the_exit_code_rule() {
        let run = Run::new(None);
        assert_eq!(exit_code([], run), exit::SUCCESS);
        assert_eq!(exit_code([Ok, Ok], run), exit::SUCCESS);
        assert_eq!(exit_code([Ok, Failed], run), exit::PARTIAL);
        assert_eq!(exit_code([Unknown, Ok], run), exit::PARTIAL);
        assert_eq!(exit_code([Failed, Unknown], run), exit::FAILURE);
        let empty = Run {
            empty: exit::FAILURE,
            ..run
        };
        assert_eq!(exit_code([], empty), exit::FAILURE);
        assert_eq!(exit_code([Ok], empty), exit::SUCCESS);
        let failed = Run {
            failed: true,
            ..run
        };
        assert_eq!(exit_code([Ok], failed), exit::FAILURE);
        assert_eq!(exit_code([], failed), exit::FAILURE);
        let whole = Run {
            partial: false,
            ..run
        };
        assert_eq!(exit_code([Ok, Failed], whole), exit::FAILURE);
        assert_eq!(exit_code([Ok], whole), exit::SUCCESS);
        let lost = Run {
            lock_lost: true,
            ..run
        };
        assert_eq!(exit_code([Ok], lost), exit::FAILURE);
        assert_eq!(exit_code([], lost), exit::FAILURE);
        assert_eq!(exit_code([Ok, Failed], lost), exit::PARTIAL);
        let interrupted = Run {
            interrupted: Some(exit::INTERRUPTED_SIGINT),
            failed: true,
            lock_lost: true,
            ..run
        };
        assert_eq!(exit_code([Ok], interrupted), exit::INTERRUPTED_SIGINT);
    }
}
