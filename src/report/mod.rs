//! What a run did, as plain data: the report of every command (snapshot, backup, snapshot
//! prune, repository prune and check), its exit code, and its text rendering (JSON is the
//! serialized form). Flows fill the reports; `runtime::output` prints them.

pub mod backup;
pub mod prune;
pub mod repositories;
pub mod snapshot;

/// A job's result as reports give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// It did what it was asked, and what it did was seen.
    Ok,
    /// It failed.
    Failed,
    /// The mover exited 0, but its log could not be read: what it did was not seen.
    Unknown,
}
