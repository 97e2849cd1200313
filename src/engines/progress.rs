//! Reading what the engines say: borg's `--log-json` lines and final `--json` document, restic's
//! `--json` lines, turned into one stream of events (progress, summary, log messages) that the
//! controller shows as a progress bar or periodic log lines. Exit status comes from the pod's
//! container state, never from these texts; they only explain it.

use serde::Deserialize;

/// One thing an engine reported.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Work in progress.
    Progress {
        /// Bytes read so far.
        bytes_done: u64,
        /// Total bytes, when the engine knows it (restic).
        bytes_total: Option<u64>,
        /// Files read so far.
        files_done: u64,
    },
    /// The final numbers of a backup.
    Summary(Summary),
    /// A log message, with borg's msgid when there is one (e.g. `LockTimeout`).
    Log {
        /// `ERROR`, `WARNING`, `INFO`, …
        level: String,
        /// borg's message id.
        msgid: Option<String>,
        /// The text.
        message: String,
    },
}

/// What one backup did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Bytes read from the volume.
    pub bytes_read: u64,
    /// New bytes stored in the repository (after deduplication and compression).
    pub bytes_added: u64,
    /// Files read.
    pub files: u64,
    /// The archive name or snapshot id.
    pub archive: String,
}

#[derive(Deserialize)]
struct BorgLine {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    original_size: u64,
    #[serde(default)]
    nfiles: u64,
    #[serde(default)]
    levelname: Option<String>,
    #[serde(default)]
    msgid: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// One line of borg's `--log-json` stderr.
pub fn borg_line(line: &str) -> Option<Event> {
    let l: BorgLine = serde_json::from_str(line).ok()?;
    match l.kind.as_str() {
        "archive_progress" => Some(Event::Progress {
            bytes_done: l.original_size,
            bytes_total: None,
            files_done: l.nfiles,
        }),
        "log_message" => Some(Event::Log {
            level: l.levelname.unwrap_or_default(),
            msgid: l.msgid,
            message: l.message.unwrap_or_default(),
        }),
        _ => None,
    }
}

#[derive(Deserialize)]
struct BorgResult {
    archive: BorgArchive,
}
#[derive(Deserialize)]
struct BorgArchive {
    name: String,
    stats: BorgStats,
}
#[derive(Deserialize)]
struct BorgStats {
    original_size: u64,
    deduplicated_size: u64,
    nfiles: u64,
}

/// borg create's final `--json` document (stdout).
pub fn borg_result(stdout: &str) -> Option<Summary> {
    let r: BorgResult = serde_json::from_str(stdout).ok()?;
    Some(Summary {
        bytes_read: r.archive.stats.original_size,
        bytes_added: r.archive.stats.deduplicated_size,
        files: r.archive.stats.nfiles,
        archive: r.archive.name,
    })
}

#[derive(Deserialize)]
struct ResticLine {
    message_type: String,
    #[serde(default)]
    bytes_done: u64,
    #[serde(default)]
    total_bytes: Option<u64>,
    #[serde(default)]
    files_done: u64,
    #[serde(default)]
    total_bytes_processed: u64,
    #[serde(default)]
    data_added: u64,
    #[serde(default)]
    total_files_processed: u64,
    #[serde(default)]
    snapshot_id: String,
    #[serde(default)]
    message: Option<String>,
}

/// One line of restic's `--json` stdout.
pub fn restic_line(line: &str) -> Option<Event> {
    let l: ResticLine = serde_json::from_str(line).ok()?;
    match l.message_type.as_str() {
        "status" => Some(Event::Progress {
            bytes_done: l.bytes_done,
            bytes_total: l.total_bytes,
            files_done: l.files_done,
        }),
        "summary" => Some(Event::Summary(Summary {
            bytes_read: l.total_bytes_processed,
            bytes_added: l.data_added,
            files: l.total_files_processed,
            archive: l.snapshot_id,
        })),
        "error" => Some(Event::Log {
            level: "ERROR".into(),
            msgid: None,
            message: l.message.unwrap_or_default(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from borg 1.4.0 and restic 0.14.0 on this project's test machines.
    const BORG_STDERR: &str = include_str!("../../tests/fixtures/borg-create.stderr.jsonl");
    const BORG_STDOUT: &str = include_str!("../../tests/fixtures/borg-create.stdout.json");
    const BORG_LOCK: &str = include_str!("../../tests/fixtures/borg-lock-timeout.stderr.jsonl");
    const RESTIC_STDOUT: &str = include_str!("../../tests/fixtures/restic-backup.stdout.jsonl");

    #[test]
    fn borg_progress_and_result() {
        let events: Vec<Event> = BORG_STDERR.lines().filter_map(borg_line).collect();
        assert!(
            events.iter().any(|e| matches!(e, Event::Progress { .. })),
            "{events:?}"
        );
        assert_eq!(
            borg_result(BORG_STDOUT).unwrap(),
            Summary {
                bytes_read: 3_000_574,
                bytes_added: 3_000_527,
                files: 2,
                archive: "a".into()
            }
        );
    }

    #[test]
    fn borg_lock_timeouts_are_recognised_by_msgid() {
        let events: Vec<Event> = BORG_LOCK.lines().filter_map(borg_line).collect();
        assert!(
            matches!(&events[0], Event::Log { level, msgid: Some(m), message } if level == "ERROR" && m == "LockTimeout" && message.contains("lock.exclusive")),
            "{events:?}"
        );
    }

    #[test]
    fn restic_progress_and_summary() {
        let events: Vec<Event> = RESTIC_STDOUT.lines().filter_map(restic_line).collect();
        assert_eq!(
            events[1],
            Event::Progress {
                bytes_done: 3_000_006,
                bytes_total: Some(3_000_006),
                files_done: 2
            }
        );
        assert_eq!(
            events.last().unwrap(),
            &Event::Summary(Summary {
                bytes_read: 3_000_006,
                bytes_added: 3_000_775,
                files: 2,
                archive: "7214c4c5".into()
            })
        );
    }

    #[test]
    fn garbage_is_ignored() {
        assert_eq!(borg_line("not json"), None);
        assert_eq!(restic_line("{\"message_type\":\"verbose_status\"}"), None);
        assert_eq!(borg_result("{}"), None);
    }
}
