//! Container logs: the CRI log file format the kubelet reads (`<RFC3339Nano> <stream> <F|P> <content>`,
//! one file per container instance), capturing a process's stdout/stderr into it, and serving it with
//! the kubelet's `containerLogs` options (`follow`, `tailLines`, `sinceSeconds`, `sinceTime`,
//! `timestamps`, `limitBytes`).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use jiff::Timestamp;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{broadcast, mpsc, watch};

use super::time::{log_time, now};

/// Longest line kept whole; longer ones are split into partial (`P`) entries, as containerd does.
const MAX_LINE: usize = 16 * 1024;

/// Which output stream a log entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
    /// The exec/attach channel number of this stream.
    pub fn channel(self) -> u8 {
        match self {
            Stream::Stdout => 1,
            Stream::Stderr => 2,
        }
    }
}

/// How far a log file has been written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes written so far.
    pub bytes: u64,
    /// The container instance has exited and its output is drained.
    pub done: bool,
}

/// The log file of one container instance.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
    progress: watch::Sender<Progress>,
}

impl LogFile {
    /// Create (truncate) the file, and its directory.
    pub fn create(path: &Path) -> std::io::Result<Arc<LogFile>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::File::create(path)?;
        Ok(Arc::new(LogFile {
            path: path.to_path_buf(),
            file: Mutex::new(Some(file)),
            progress: watch::Sender::new(Progress::default()),
        }))
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one entry.
    pub fn append(&self, stream: Stream, content: &[u8], partial: bool) {
        let mut line = format!(
            "{} {} {} ",
            log_time(now()),
            stream.as_str(),
            if partial { "P" } else { "F" }
        )
        .into_bytes();
        line.extend_from_slice(content);
        line.push(b'\n');
        let Ok(mut guard) = self.file.lock() else {
            return;
        };
        let Some(f) = guard.as_mut() else { return };
        if let Err(e) = f.write_all(&line) {
            tracing::warn!("writing {}: {e}", self.path.display());
            return;
        }
        self.progress.send_modify(|p| p.bytes += line.len() as u64);
    }

    /// Mark the instance finished: followers stop at the end of the file.
    pub fn finish(&self) {
        if let Ok(mut guard) = self.file.lock() {
            guard.take();
        }
        self.progress.send_modify(|p| p.done = true);
    }

    /// Watch the progress.
    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }
}

/// Output of a container, for attach: (channel, bytes).
pub type Tap = broadcast::Sender<(u8, Bytes)>;

/// Copy a process's output stream into its log file (whole lines; a last unterminated line as a
/// partial entry) and to attached clients.
pub async fn capture<R: AsyncRead + Unpin>(
    mut reader: R,
    stream: Stream,
    log: Arc<LogFile>,
    tap: Tap,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let _ = tap.send((stream.channel(), Bytes::copy_from_slice(&buf[..n])));
        pending.extend_from_slice(&buf[..n]);
        while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
            log.append(stream, &pending[..pos], false);
            pending.drain(..=pos);
        }
        while pending.len() >= MAX_LINE {
            log.append(stream, &pending[..MAX_LINE], true);
            pending.drain(..MAX_LINE);
        }
    }
    if !pending.is_empty() {
        log.append(stream, &pending, true);
    }
}

/// The kubelet's log options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Keep streaming until the container instance exits.
    pub follow: bool,
    /// Only the last N lines.
    pub tail_lines: Option<u64>,
    /// Only entries at or after this time (`sinceSeconds` or `sinceTime`).
    pub since: Option<Timestamp>,
    /// Prefix each line with its RFC 3339 time stamp.
    pub timestamps: bool,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
    /// The previous instance's log.
    pub previous: bool,
}

fn flag(v: &str) -> bool {
    matches!(v, "true" | "1" | "True" | "TRUE")
}

impl LogQuery {
    /// Parse the query pairs of a `containerLogs` request; the error is the kubelet's 400 text.
    pub fn parse(pairs: &[(String, String)], now: Timestamp) -> Result<LogQuery, String> {
        let mut q = LogQuery::default();
        for (k, v) in pairs {
            match k.as_str() {
                "follow" => q.follow = flag(v),
                "timestamps" => q.timestamps = flag(v),
                "previous" => q.previous = flag(v),
                "tailLines" => {
                    q.tail_lines = Some(
                        v.parse::<i64>()
                            .map_err(|e| format!("tailLines: {e}"))?
                            .max(0) as u64,
                    )
                }
                "limitBytes" => {
                    let n = v.parse::<i64>().map_err(|e| format!("limitBytes: {e}"))?;
                    if n < 1 {
                        return Err("limitBytes: must be greater than 0".into());
                    }
                    q.limit_bytes = Some(n as u64);
                }
                "sinceSeconds" => {
                    let n = v.parse::<i64>().map_err(|e| format!("sinceSeconds: {e}"))?;
                    if n < 1 {
                        return Err("sinceSeconds: must be greater than 0".into());
                    }
                    q.since = now.checked_sub(jiff::SignedDuration::from_secs(n)).ok();
                }
                "sinceTime" => {
                    q.since = Some(
                        v.parse::<Timestamp>()
                            .map_err(|e| format!("sinceTime: {e}"))?,
                    )
                }
                _ => {}
            }
        }
        Ok(q)
    }
}

/// One parsed CRI log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The time stamp as written.
    pub time_text: String,
    /// The time stamp.
    pub time: Timestamp,
    /// Partial (`P`): no newline follows the content.
    pub partial: bool,
    /// The bytes.
    pub content: Vec<u8>,
}

/// Parse one line of a CRI log file (without its newline).
pub fn parse_line(line: &[u8]) -> Option<Entry> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time_text = std::str::from_utf8(parts.next()?).ok()?.to_string();
    let _stream = parts.next()?;
    let tag = parts.next()?;
    let content = parts.next().unwrap_or_default().to_vec();
    let time = time_text.parse().ok()?;
    Some(Entry {
        time_text,
        time,
        partial: tag == b"P",
        content,
    })
}

/// The bytes a client sees for one entry.
pub fn render(e: &Entry, timestamps: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(e.content.len() + 40);
    if timestamps {
        out.extend_from_slice(e.time_text.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(&e.content);
    if !e.partial {
        out.push(b'\n');
    }
    out
}

/// Select and render complete entries from a batch, applying `since` and (for the first batch) `tail`.
pub fn select(entries: Vec<Entry>, q: &LogQuery, apply_tail: bool) -> Vec<u8> {
    let kept: Vec<Entry> = entries
        .into_iter()
        .filter(|e| q.since.is_none_or(|s| e.time >= s))
        .collect();
    let skip = match (apply_tail, q.tail_lines) {
        (true, Some(n)) => kept.len().saturating_sub(n as usize),
        _ => 0,
    };
    kept[skip..]
        .iter()
        .flat_map(|e| render(e, q.timestamps))
        .collect()
}

/// Read whole lines from `offset`; returns the entries and the new offset (a trailing half-written
/// line is left for the next read).
fn read_from(path: &Path, offset: u64) -> std::io::Result<(Vec<Entry>, u64)> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let Some(last_nl) = buf.iter().rposition(|b| *b == b'\n') else {
        return Ok((Vec::new(), offset));
    };
    let entries = buf[..last_nl]
        .split(|b| *b == b'\n')
        .filter_map(parse_line)
        .collect();
    Ok((entries, offset + last_nl as u64 + 1))
}

/// Stream a log to `tx` per the query; returns when done (or, with `follow`, when the instance has
/// exited and everything is sent, or the receiver is gone).
pub async fn stream(log: Arc<LogFile>, q: LogQuery, tx: mpsc::Sender<Bytes>) {
    let mut progress = log.subscribe();
    let mut offset = 0u64;
    let mut first = true;
    let mut budget = q.limit_bytes;
    loop {
        let done = progress.borrow_and_update().done;
        let (entries, next) = match read_from(log.path(), offset) {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("reading {}: {e}", log.path().display());
                return;
            }
        };
        offset = next;
        let mut out = select(entries, &q, first);
        first = false;
        if let Some(b) = budget.as_mut() {
            out.truncate(*b as usize);
            *b -= out.len() as u64;
        }
        if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
            return;
        }
        if budget == Some(0) || !q.follow || done {
            return;
        }
        tokio::select! {
            r = progress.changed() => if r.is_err() { return },
            _ = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(lines: &[&str]) -> Vec<Entry> {
        lines
            .iter()
            .filter_map(|l| parse_line(l.as_bytes()))
            .collect()
    }

    #[test]
    fn parses_and_renders_cri_lines() {
        let e = parse_line(b"2024-01-02T03:04:05.000000001Z stdout F hello world").unwrap();
        assert_eq!(e.content, b"hello world");
        assert!(!e.partial);
        assert_eq!(render(&e, false), b"hello world\n");
        assert_eq!(
            render(&e, true),
            b"2024-01-02T03:04:05.000000001Z hello world\n"
        );
        let p = parse_line(b"2024-01-02T03:04:05Z stderr P abc").unwrap();
        assert_eq!(render(&p, false), b"abc");
        assert_eq!(
            parse_line(b"2024-01-02T03:04:05Z stdout F ")
                .unwrap()
                .content,
            b""
        );
        assert!(parse_line(b"garbage").is_none());
    }

    #[test]
    fn tail_and_since() {
        let es = entries(&[
            "2024-01-01T00:00:01Z stdout F a",
            "2024-01-01T00:00:02Z stdout F b",
            "2024-01-01T00:00:03Z stderr F c",
        ]);
        let q = LogQuery {
            tail_lines: Some(2),
            ..LogQuery::default()
        };
        assert_eq!(select(es.clone(), &q, true), b"b\nc\n");
        assert_eq!(select(es.clone(), &q, false), b"a\nb\nc\n");
        let q = LogQuery {
            since: Some("2024-01-01T00:00:02Z".parse().unwrap()),
            ..LogQuery::default()
        };
        assert_eq!(select(es, &q, true), b"b\nc\n");
    }

    #[test]
    fn query_parsing() {
        let now: Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        let q = LogQuery::parse(
            &pairs(&[
                ("follow", "true"),
                ("tailLines", "5"),
                ("sinceSeconds", "60"),
                ("limitBytes", "10"),
            ]),
            now,
        )
        .unwrap();
        assert!(q.follow);
        assert_eq!(q.tail_lines, Some(5));
        assert_eq!(q.since, Some("2024-01-01T00:00:00Z".parse().unwrap()));
        assert_eq!(q.limit_bytes, Some(10));
        assert!(LogQuery::parse(&pairs(&[("limitBytes", "0")]), now).is_err());
    }

    #[tokio::test]
    async fn capture_then_follow() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::create(&dir.path().join("c/0.log")).unwrap();
        let (tap, _) = broadcast::channel(4);
        capture(&b"one\ntwo\nthree"[..], Stream::Stdout, log.clone(), tap).await;
        let (tx, mut rx) = mpsc::channel(8);
        let follower = tokio::spawn(stream(
            log.clone(),
            LogQuery {
                follow: true,
                ..LogQuery::default()
            },
            tx,
        ));
        let mut got = Vec::new();
        got.extend_from_slice(&rx.recv().await.unwrap());
        assert_eq!(got, b"one\ntwo\nthree");
        log.append(Stream::Stderr, b"four", false);
        log.finish();
        while let Some(b) = rx.recv().await {
            got.extend_from_slice(&b);
        }
        follower.await.unwrap();
        assert_eq!(got, b"one\ntwo\nthreefour\n");
    }
}
