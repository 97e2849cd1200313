//! The `sync` job: make the mounted volume at `/data` the same tree as the snapshot clone at
//! `/source` (an in-place restore from a snapshot, or putting the safety snapshot back), with
//! rsync keeping owners by number, modes, times, hard links, ACLs, xattrs and holes and deleting
//! what the source lacks; then compare both trees' tallies (entries and file bytes).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::restore::tree_tally;
use super::{Fail, emit, log};
use crate::mover::job::{Failure, MoverEvent, Restored, paths};

/// rsync's command line: the trailing slashes copy the contents, not the directory.
pub(crate) fn rsync_argv() -> Vec<String> {
    [
        "rsync",
        "-aHAXS",
        "--numeric-ids",
        "--delete",
        "--info=stats1",
        &format!("{}/", paths::SOURCE),
        &format!("{}/", paths::DATA),
    ]
    .map(String::from)
    .into()
}

pub(super) fn sync() -> Result<(), Fail> {
    let argv = rsync_argv();
    let version = Command::new("rsync")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let first = text.lines().next()?.to_owned();
            // `rsync  version 3.2.7  protocol version 31`
            let v = first.split_whitespace().nth(2)?.to_owned();
            Some(format!("rsync {v}"))
        })
        .unwrap_or_else(|| "rsync".into());
    log(
        "info",
        format!("copying {} onto {}", paths::SOURCE, paths::DATA),
    );
    emit(&MoverEvent::Writing);
    let started = Instant::now();
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Fail::new(
                Failure::Failed,
                format!("starting rsync: {e} (is it installed in the mover image?)"),
            )
        })?;
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        log("warn", line.to_owned());
    }
    if !out.status.success() {
        return Err(Fail::new(
            Failure::Failed,
            format!(
                "rsync exited {}: {}",
                out.status.code().unwrap_or(-1),
                stderr.lines().last().unwrap_or("no message")
            ),
        ));
    }
    let tally = |p: &str| {
        tree_tally(Path::new(p), false)
            .map_err(|e| Fail::new(Failure::Failed, format!("reading {p}: {e}")))
    };
    let (want, got) = (tally(paths::SOURCE)?, tally(paths::DATA)?);
    let restored = Restored {
        archive: String::new(),
        entries: got.entries,
        bytes: got.bytes,
        expected_entries: want.entries,
        expected_bytes: want.bytes,
        sparse: true,
        engine_version: version,
        seconds,
    };
    emit(&MoverEvent::Restored(restored));
    if (want.entries, want.bytes) != (got.entries, got.bytes) {
        return Err(Fail::new(
            Failure::Incomplete,
            format!(
                "the volume does not match the source after rsync: {} entries and {} bytes of files, the source has {} and {}",
                got.entries, got.bytes, want.entries, want.bytes
            ),
        ));
    }
    Ok(())
}
