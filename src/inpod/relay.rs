//! The `relay` job: run a command in another pod by exec, with this pod's in-cluster
//! credentials, and copy its stdout to this process's stdout, for an engine that stores what a
//! command prints (`borg create --content-from-command`, `restic backup --stdin-from-command`).
//! A stream is whole only when the exec status says Success, every byte reached stdout and its
//! tool's own end is there (the marker it writes last, or a pg_dump archive read through);
//! otherwise the exit code is non-zero, so the engine makes no archive of it. What it says goes to
//! stderr, one line each, prefixed [`PREFIX`].

use std::io::Write;

use super::pgdump::PgCustomCheck;
use crate::engines::databases::StreamCheck;
use crate::kube::exec::{Exit, Stdin, stream};

/// What to relay.
pub(super) struct Relay<'a> {
    pub(super) pod: &'a str,
    pub(super) container: &'a str,
    pub(super) command: &'a [String],
    pub(super) stdin_lines: &'a [String],
    pub(super) check: Option<&'a StreamCheck>,
    pub(super) feed: bool,
}

/// The start of every line the relay writes on stderr.
pub(super) const PREFIX: &str = "kentledge relay: ";

/// The relay's exit code when the command ran and its own exit status, which arrived, was not
/// 0 (other failures, such as a stream that ended without a status, exit 1).
pub(super) const COMMAND_FAILED: i32 = 4;

fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{PREFIX}{text}");
}

/// Whether a stream that ended with `tail` has the marker its tool writes last: the start of its
/// last line with words (comment rulers `--` and blank lines may follow it).
pub(super) fn has_marker(tail: &[u8], marker: &str) -> bool {
    let text = String::from_utf8_lossy(tail);
    text.lines()
        .rev()
        .find(|l| !l.trim().trim_start_matches('-').is_empty())
        .is_some_and(|l| l.starts_with(marker))
}

/// The stdin of the command: each file as one line.
fn stdin_of(files: &[String]) -> Result<Option<Vec<u8>>, String> {
    if files.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for f in files {
        let mut b = std::fs::read(f).map_err(|e| format!("reading {f}: {e}"))?;
        if b.last() == Some(&b'\n') {
            b.pop();
        }
        if b.contains(&b'\n') {
            return Err(format!("{f} holds more than one line"));
        }
        out.extend_from_slice(&b);
        out.push(b'\n');
    }
    Ok(Some(out))
}

/// This process's stdout written in place: the relay's runtime has nothing else to do while a
/// write blocks (the engine reading it sets the pace), and tokio's stdout would hand every
/// piece to another thread.
struct BlockingStdout(std::io::Stdout);

impl tokio::io::AsyncWrite for BlockingStdout {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(self.get_mut().0.write(buf))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(self.get_mut().0.flush())
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

pub(super) fn relay(r: &Relay<'_>) -> i32 {
    let stdin = match stdin_of(r.stdin_lines) {
        Ok(s) => s,
        Err(e) => {
            say(&e);
            return 1;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say(&format!("starting: {e}"));
            return 1;
        }
    };
    rt.block_on(async {
        // In-cluster only: never a kubeconfig that happens to be on the node's filesystem.
        let config = match kube::Config::incluster() {
            Ok(c) => c,
            Err(e) => {
                say(&format!(
                    "no in-cluster credentials (is a ServiceAccount token mounted?): {e}"
                ));
                return 1;
            }
        };
        let ns = config.default_namespace.clone();
        let client = match kube::Client::try_from(config) {
            Ok(c) => c,
            Err(e) => {
                say(&format!("connecting to the API server: {e}"));
                return 1;
            }
        };
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client, &ns);
        let mut out = BlockingStdout(std::io::stdout());
        let mut pg = matches!(r.check, Some(StreamCheck::PgCustom)).then(PgCustomCheck::new);
        let mut inspect = |b: &[u8]| {
            if let Some(c) = pg.as_mut() {
                c.feed(b);
            }
        };
        let mut own = tokio::io::stdin();
        let head = stdin.as_deref().unwrap_or_default();
        let input = match (r.feed, &stdin) {
            (true, _) => Stdin::Then(head, &mut own),
            (false, Some(_)) => Stdin::Bytes(head),
            (false, None) => Stdin::None,
        };
        let s = stream(
            &pods,
            r.pod,
            r.container,
            r.command,
            input,
            &mut out,
            &mut inspect,
        )
        .await;
        let read_through = pg.map(PgCustomCheck::finish);
        for line in s.stderr.lines().filter(|l| !l.trim().is_empty()) {
            say(&format!("{}/{}: {line}", r.pod, r.container));
        }
        let problem = if let Some(e) = &s.sink_error {
            Some(format!("the stream could not be passed on: {e}"))
        } else if s.exit != Exit::Code(0) {
            Some(format!(
                "the command in {}/{} ended with {}",
                r.pod, r.container, s.exit
            ))
        } else if let Some(StreamCheck::EndMarker(m)) = r.check
            && !has_marker(&s.tail, m)
        {
            Some(format!(
                "the stream ({} bytes) does not end with {m:?}: it was cut short",
                s.bytes
            ))
        } else if let Some(Err(why)) = &read_through {
            Some(format!(
                "the stream ({} bytes) is not whole: {why}",
                s.bytes
            ))
        } else {
            None
        };
        match problem {
            Some(p) => {
                say(&p);
                if s.sink_error.is_none() && matches!(s.exit, Exit::Code(c) if c != 0) {
                    COMMAND_FAILED
                } else {
                    1
                }
            }
            None => {
                let what = match &read_through {
                    Some(Ok(summary)) => format!(" ({summary})"),
                    _ => String::new(),
                };
                let fed = if r.feed {
                    format!("{} bytes fed, ", s.fed)
                } else {
                    String::new()
                };
                say(&format!("{fed}{} bytes, complete{what}", s.bytes));
                0
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::has_marker;

    #[test]
    fn a_stream_is_whole_only_with_its_end_marker_last() {
        let done = b"INSERT ...;\n-- Dump completed on 2026-12-01 10:00:00\n";
        assert!(has_marker(done, "-- Dump completed"));
        assert!(!has_marker(b"INSERT ...;\nINSERT", "-- Dump completed"));
        assert!(
            !has_marker(b"-- Dump completed\nmore rows\n", "-- Dump completed"),
            "the marker must be last"
        );
        // pg_dumpall ends its marker with a comment ruler.
        let all = b"--\n-- PostgreSQL database cluster dump complete\n--\n\n";
        assert!(has_marker(all, crate::engines::databases::PG_GLOBALS_END));
        assert!(
            !has_marker(b"INSERT '-- Dump completed';\n", "-- Dump completed"),
            "the marker starts its line"
        );
        assert!(!has_marker(b"", "x"));
    }
}
