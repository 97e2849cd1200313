//! Reading what the engines print: borg's `--log-json` lines and final `--json` document,
//! restic's `--json` lines, turned into one stream of events (progress, summary, log messages,
//! items not read) that the in-pod mover relays as its own events. Exit status comes from the
//! engine's exit code, never from these texts; they only explain it.

use serde::{Deserialize, Serialize};

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
    /// A file or directory the engine could not read: the copy lacks it.
    Unreadable {
        /// The path, as the engine names it.
        item: String,
        /// Why.
        reason: String,
    },
}

/// What one backup did; also a mover's `summary` event on the wire (camelCase fields).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
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
    #[serde(default)]
    current: Option<u64>,
    #[serde(default)]
    total: Option<u64>,
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
        // extract's progress: bytes of the archive written so far, of the total.
        "progress_percent" if l.current.is_some() => Some(Event::Progress {
            bytes_done: l.current.unwrap_or(0),
            bytes_total: l.total,
            files_done: 0,
        }),
        // borg's per-file warnings (BackupPermissionError, BackupOSError, BackupError, …, and
        // FileChangedWarning): `path: operation: error`.
        "log_message"
            if l.levelname.as_deref() == Some("WARNING")
                && l.msgid
                    .as_deref()
                    .is_some_and(|m| m.starts_with("Backup") || m == "FileChangedWarning") =>
        {
            let message = l.message.unwrap_or_default();
            let (item, reason) = message.split_once(": ").unwrap_or((&message, ""));
            Some(Event::Unreadable {
                item: item.to_owned(),
                reason: reason.to_owned(),
            })
        }
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
    #[serde(default)]
    item: Option<String>,
    #[serde(default)]
    during: Option<String>,
    #[serde(default)]
    error: serde_json::Value,
}

/// Why restic could not read an item: its error object is `{"message": …}` in newer versions,
/// Go's `{"Op", "Path", "Err": errno}` in 0.14, and sometimes empty.
fn restic_reason(error: &serde_json::Value, during: Option<&str>) -> String {
    if let Some(m) = error["message"].as_str() {
        return m.to_owned();
    }
    let errno = match error["Err"].as_i64() {
        Some(1) => "operation not permitted".to_owned(),
        Some(2) => "no such file or directory".to_owned(),
        Some(5) => "input/output error".to_owned(),
        Some(13) => "permission denied".to_owned(),
        Some(n) => format!("errno {n}"),
        None => String::new(),
    };
    match (error["Op"].as_str(), errno.is_empty()) {
        (Some(op), false) => format!("{op}: {errno}"),
        (None, false) => errno,
        _ => format!("could not be read (during {})", during.unwrap_or("backup")),
    }
}

/// One line of restic's `--json` output (errors come on stderr).
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
        "error" if l.item.is_some() => Some(Event::Unreadable {
            reason: restic_reason(&l.error, l.during.as_deref()),
            item: l.item.unwrap_or_default(),
        }),
        "error" => Some(Event::Log {
            level: "ERROR".into(),
            msgid: None,
            message: l.message.unwrap_or_default(),
        }),
        _ => None,
    }
}

/// What an archive lists, counted as a restored tree is counted ([`Tally::of_tree`] in the
/// mover): every entry but the root, and the bytes of regular files with each path counted (a
/// hard link counts its file's size).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Tally {
    /// Entries: files, directories, symlinks, devices, fifos.
    pub entries: u64,
    /// Bytes of regular files.
    pub bytes: u64,
    /// Whether `lost+found` at the top is among them (a new ext4 volume has its own).
    pub lost_found: bool,
}

impl Tally {
    fn add(&mut self, path: &str, file_bytes: Option<u64>) {
        self.entries += 1;
        self.bytes += file_bytes.unwrap_or(0);
        if path == "lost+found" {
            self.lost_found = true;
        }
    }
}

/// The tally of `borg list --json-lines` output. A hard link after the first (`source` set) has
/// size 0 there: it counts the size of the file it links to. A line that cannot be read is an
/// error, never a smaller count.
pub fn borg_items_tally(stdout: &str) -> Result<Tally, String> {
    let mut t = Tally::default();
    let mut sizes: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("borg list line {line:?}: {e}"))?;
        let path = v["path"]
            .as_str()
            .ok_or_else(|| format!("borg list line without a path: {line}"))?;
        let path = path.strip_prefix("./").unwrap_or(path);
        if path == "." || path.is_empty() {
            continue;
        }
        let bytes = match v["type"].as_str() {
            Some("-") => {
                let source = v["source"].as_str().unwrap_or_default();
                let size = if source.is_empty() {
                    v["size"].as_u64().unwrap_or(0)
                } else {
                    sizes.get(source).copied().unwrap_or(0)
                };
                sizes.insert(path.to_owned(), size);
                Some(size)
            }
            _ => None,
        };
        t.add(path, bytes);
    }
    Ok(t)
}

/// The tally of `restic ls --json` output (its first line is the snapshot itself).
pub fn restic_ls_tally(stdout: &str) -> Result<Tally, String> {
    let mut t = Tally::default();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("restic ls line {line:?}: {e}"))?;
        // 0.14 names nodes by `struct_type`, newer versions by `message_type`.
        let node = v["struct_type"] == "node" || v["message_type"] == "node";
        if !node {
            continue;
        }
        let path = v["path"]
            .as_str()
            .ok_or_else(|| format!("restic ls node without a path: {line}"))?;
        let path = path.trim_start_matches('/');
        if path.is_empty() {
            continue;
        }
        let bytes = (v["type"] == "file").then(|| v["size"].as_u64().unwrap_or(0));
        t.add(path, bytes);
    }
    Ok(t)
}

/// An engine's error text without the Python tracebacks borg prints for unexpected errors
/// ("Local Exception"): each traceback is left as its exception's line (once), and the platform
/// lines that follow one are dropped. The lines around them are kept as they are.
pub fn without_tracebacks(text: &str) -> String {
    const PLATFORM: [&str; 6] = [
        "Platform:",
        "Linux:",
        "Borg:",
        "PID:",
        "sys.argv:",
        "SSH_ORIGINAL_COMMAND:",
    ];
    let mut kept: Vec<&str> = Vec::new();
    let (mut inside, mut seen) = (false, false);
    for line in text.lines() {
        if line.starts_with("Traceback (most recent call last):") {
            (inside, seen) = (true, true);
            continue;
        }
        if inside {
            // Frames and their carets are indented; the exception's own line ends the traceback.
            if line.starts_with(' ') || line.trim().is_empty() {
                continue;
            }
            inside = false;
            if !kept.contains(&line) {
                kept.push(line);
            }
            continue;
        }
        let noise = line == "Local Exception"
            || line.starts_with("During handling of the above exception")
            || (seen && (line.trim().is_empty() || PLATFORM.iter().any(|p| line.starts_with(p))));
        if !noise {
            kept.push(line);
        }
    }
    kept.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracebacks_are_left_as_their_exception() {
        let said = "No space left on device, cleaning up partial transaction to free space.
Local Exception
Traceback (most recent call last):
  File \"/usr/lib/python3/dist-packages/borg/platform/base.py\", line 194, in close
    self.sync()
OSError: [Errno 28] No space left on device

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File \"/usr/lib/python3/dist-packages/borg/archiver.py\", line 5391, in main
    exit_code = archiver.run(args)
                ^^^^^^^^^^^^^^^^^^
OSError: [Errno 28] No space left on device

Platform: Linux vm 6.18.44 #1 SMP PREEMPT_DYNAMIC x86_64
Linux: Unknown Linux
Borg: 1.4.0  Python: CPython 3.11.2 msgpack: 1.0.3 fuse: None [pyfuse3,llfuse]
PID: 28110  CWD: /tmp
sys.argv: ['/usr/bin/borg', 'create', 'r::two', '.']
SSH_ORIGINAL_COMMAND: None
";
        assert_eq!(
            without_tracebacks(said),
            "No space left on device, cleaning up partial transaction to free space.\nOSError: [Errno 28] No space left on device"
        );
        let plain = "Repository /r does not exist.\nBorg: a line of its own";
        assert_eq!(without_tracebacks(plain), plain, "no traceback: as it was");
    }

    // Captured from borg 1.4.0 and restic 0.14.0 on this project's test machines.
    const BORG_STDERR: &str = include_str!("../../tests/fixtures/borg-create.stderr.jsonl");
    const BORG_STDOUT: &str = include_str!("../../tests/fixtures/borg-create.stdout.json");
    const BORG_LOCK: &str = include_str!("../../tests/fixtures/borg-lock-timeout.stderr.jsonl");
    const RESTIC_STDOUT: &str = include_str!("../../tests/fixtures/restic-backup.stdout.jsonl");
    // A file (0600) and a directory (000) of another user, read as `nobody`.
    const BORG_UNREADABLE: &str =
        include_str!("../../tests/fixtures/borg-create-unreadable.stderr.jsonl");
    const RESTIC_UNREADABLE: &str =
        include_str!("../../tests/fixtures/restic-backup-unreadable.stderr.jsonl");

    fn unreadable(text: &str, parse: fn(&str) -> Option<Event>) -> Vec<(String, String)> {
        text.lines()
            .filter_map(parse)
            .filter_map(|e| match e {
                Event::Unreadable { item, reason } => Some((item, reason)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn files_the_engines_could_not_read_are_named() {
        let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            unreadable(BORG_UNREADABLE, borg_line),
            vec![
                s("sub", "dir_open: [Errno 13] Permission denied: 'sub'"),
                s("locked", "open: [Errno 13] Permission denied: 'locked'"),
            ]
        );
        assert_eq!(
            unreadable(RESTIC_UNREADABLE, restic_line),
            vec![
                s("/data/locked", "open: permission denied"),
                s("/data/sub", "could not be read (during scan)"),
                s("sub", "could not be read (during archival)"),
            ]
        );
        // Newer restic versions say it in words.
        assert_eq!(
            unreadable(
                r#"{"message_type":"error","error":{"message":"open /data/x: permission denied"},"during":"archival","item":"/data/x"}"#,
                restic_line
            ),
            vec![s("/data/x", "open /data/x: permission denied")]
        );
        // Other borg warnings are log messages.
        assert!(matches!(
            borg_line(
                r#"{"type": "log_message", "message": "m", "levelname": "WARNING", "msgid": "Other"}"#
            ),
            Some(Event::Log { .. })
        ));
    }

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

    #[test]
    fn archive_listings_are_tallied_as_a_restored_tree_is() {
        // The same tree (a file, a hard link to it, a symlink, a directory, a 10 MiB sparse
        // file) as borg 1.4 and restic 0.14 list it.
        let want = Tally {
            entries: 5,
            bytes: 3 + 3 + 10 * 1024 * 1024,
            lost_found: false,
        };
        let borg = include_str!("../../tests/fixtures/borg-list-items.jsonl");
        assert_eq!(borg_items_tally(borg), Ok(want));
        let restic = include_str!("../../tests/fixtures/restic-0.14-ls.jsonl");
        assert_eq!(restic_ls_tally(restic), Ok(want));
        assert!(
            borg_items_tally("{not json").is_err(),
            "never a smaller count"
        );
        let lf = r#"{"type": "d", "path": "lost+found", "size": 0, "source": ""}"#;
        assert!(borg_items_tally(lf).unwrap().lost_found);
    }

    #[test]
    fn extract_progress_is_read() {
        let line = r#"{"message": " 80.0% Extracting: sparse", "current": 10485763, "total": 10485764, "info": ["sparse"], "operation": 1, "msgid": "extract", "type": "progress_percent", "finished": false, "time": 1796169453.6}"#;
        assert_eq!(
            borg_line(line),
            Some(Event::Progress {
                bytes_done: 10485763,
                bytes_total: Some(10485764),
                files_done: 0
            })
        );
        let done = r#"{"operation": 1, "msgid": "extract", "type": "progress_percent", "finished": true, "time": 1796169453.6}"#;
        assert_eq!(borg_line(done), None);
    }
}
