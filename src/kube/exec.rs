//! Running hook commands by pod exec (kube `ws`): one-shot commands with a time limit and the
//! exit code from the exec status channel (never from "the stream closed"), and held sessions
//! whose stdin stays open across the snapshot.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, AttachedProcess};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::sync::Mutex;

/// How much of each output stream is kept for logs and annotations.
pub const OUTPUT_LIMIT: usize = 16 * 1024;

/// How a command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// It could not run or the API refused (e.g. executable not found).
    Failed(String),
    /// The time limit passed first (the process may still run in the container).
    TimedOut,
}

impl Exit {
    /// Whether it succeeded.
    pub fn ok(&self) -> bool {
        *self == Exit::Code(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Failed(m) => f.write_str(m),
            Exit::TimedOut => f.write_str("timed out"),
        }
    }
}

/// A finished command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// How it ended.
    pub exit: Exit,
    /// Its stdout (at most [`OUTPUT_LIMIT`] bytes, marked when cut).
    pub stdout: String,
    /// Its stderr (the same limit).
    pub stderr: String,
}

/// Keeps the first `OUTPUT_LIMIT` bytes of a stream.
#[derive(Default)]
struct Capture {
    bytes: Vec<u8>,
    dropped: usize,
}

impl Capture {
    fn push(&mut self, chunk: &[u8]) {
        let room = OUTPUT_LIMIT.saturating_sub(self.bytes.len());
        self.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
        self.dropped += chunk.len().saturating_sub(room);
    }

    fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.bytes).into_owned();
        if self.dropped > 0 {
            s.push_str(&format!("\n[… {} more bytes not shown]", self.dropped));
        }
        s
    }
}

async fn drain(mut r: impl AsyncRead + Unpin, into: Arc<Mutex<Capture>>) {
    let mut buf = [0u8; 8192];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        into.lock().await.push(&buf[..n]);
    }
}

/// The exit of a process from its status (the exec status channel).
async fn exit_of(p: &mut AttachedProcess) -> Exit {
    let Some(status) = p.take_status() else {
        return Exit::Failed("no status channel".into());
    };
    exit_from(status.await)
}

/// The exit a status (or its absence: the stream ended first) says.
fn exit_from(status: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>) -> Exit {
    match status {
        None => Exit::Failed("the exec stream ended without a status".into()),
        Some(s) if s.status.as_deref() == Some("Success") => Exit::Code(0),
        Some(s) => {
            let code = s
                .details
                .as_ref()
                .and_then(|d| d.causes.as_ref())
                .into_iter()
                .flatten()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .and_then(|c| c.message.as_deref())
                .and_then(|m| m.parse().ok());
            match code {
                Some(c) => Exit::Code(c),
                None => Exit::Failed(s.message.unwrap_or_else(|| "command failed".into())),
            }
        }
    }
}

/// How many bytes of each stream kube's exec task holds for this process to read or send: it
/// passes a frame on only as far as this room allows, so kube's default (1 KiB) cut every
/// 16 KiB frame of a streamed dump into 16 writes, each a task switch and a `write` into the
/// engine's pipe. One whole frame or more fits here; the buffers grow only as far as they are
/// used.
const STREAM_ROOM: usize = 256 * 1024;

fn params(container: &str, stdin: bool) -> AttachParams {
    AttachParams::default()
        .container(container)
        .stdin(stdin)
        .stdout(true)
        .stderr(true)
        .max_stdin_buf_size(STREAM_ROOM)
        .max_stdout_buf_size(STREAM_ROOM)
}

/// Runs `argv` in a container and waits at most `timeout`.
pub async fn run(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    argv: &[String],
    timeout: Duration,
) -> Outcome {
    let out = Arc::new(Mutex::new(Capture::default()));
    let err = Arc::new(Mutex::new(Capture::default()));
    let work = async {
        let mut p = match pods
            .exec(pod, argv.to_vec(), &params(container, false))
            .await
        {
            Ok(p) => p,
            Err(e) => return Exit::Failed(format!("exec failed: {e}")),
        };
        let so = p.stdout().map(|r| tokio::spawn(drain(r, out.clone())));
        let se = p.stderr().map(|r| tokio::spawn(drain(r, err.clone())));
        let exit = exit_of(&mut p).await;
        for t in [so, se].into_iter().flatten() {
            let _ = t.await;
        }
        exit
    };
    let exit = tokio::time::timeout(timeout, work)
        .await
        .unwrap_or(Exit::TimedOut);
    let (stdout, stderr) = (out.lock().await.text(), err.lock().await.text());
    Outcome {
        exit,
        stdout,
        stderr,
    }
}

/// A held session: the command runs, frozen, until [`Session::finish`].
pub struct Session {
    process: AttachedProcess,
    stdin: Option<WriteHalf<tokio::io::SimplexStream>>,
    out: Arc<Mutex<Capture>>,
    err: Arc<Mutex<Capture>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    /// When it ended by itself (see [`Session::ended_at`]).
    ended: Arc<std::sync::OnceLock<std::time::Instant>>,
    /// Its exit, from the status channel: the task notes in `ended` when the stream ends,
    /// with or without a status (kube's output streams do not end when the connection breaks).
    status: Option<tokio::task::JoinHandle<Exit>>,
}

/// [`drain`], then notes when the stream ended.
async fn drain_noting_end(
    r: impl AsyncRead + Unpin,
    into: Arc<Mutex<Capture>>,
    ended: Arc<std::sync::OnceLock<std::time::Instant>>,
) {
    drain(r, into).await;
    let _ = ended.set(std::time::Instant::now());
}

/// Starts `command`, writes `pre` to its stdin and waits for `ready_marker` on its stdout.
/// On failure the session is closed and the outcome says why.
pub async fn start_session(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    command: &[String],
    pre: &str,
    ready_marker: &str,
    timeout: Duration,
) -> Result<Session, Outcome> {
    let failed = |exit: Exit| Outcome {
        exit,
        stdout: String::new(),
        stderr: String::new(),
    };
    let mut process = pods
        .exec(pod, command.to_vec(), &params(container, true))
        .await
        .map_err(|e| failed(Exit::Failed(format!("exec failed: {e}"))))?;
    let out = Arc::new(Mutex::new(Capture::default()));
    let err = Arc::new(Mutex::new(Capture::default()));
    let ended = Arc::new(std::sync::OnceLock::new());
    let mut readers = Vec::new();
    if let Some(r) = process.stdout() {
        readers.push(tokio::spawn(drain_noting_end(
            r,
            out.clone(),
            ended.clone(),
        )));
    }
    if let Some(r) = process.stderr() {
        readers.push(tokio::spawn(drain_noting_end(
            r,
            err.clone(),
            ended.clone(),
        )));
    }
    let status = process.take_status().map(|f| {
        let ended = ended.clone();
        tokio::spawn(async move {
            let exit = exit_from(f.await);
            let _ = ended.set(std::time::Instant::now());
            exit
        })
    });
    let mut stdin = process.stdin();
    let mut session = Session {
        process,
        stdin: None,
        out,
        err,
        readers,
        ended,
        status,
    };
    let mut input = pre.to_owned();
    if !input.ends_with('\n') {
        input.push('\n');
    }
    if let Some(w) = stdin.as_mut()
        && let Err(e) = w.write_all(input.as_bytes()).await
    {
        return Err(session
            .abort(Exit::Failed(format!("cannot write to the session: {e}")))
            .await);
    }
    session.stdin = stdin;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if String::from_utf8_lossy(&session.out.lock().await.bytes).contains(ready_marker) {
            return Ok(session);
        }
        let output_read = session.readers.iter().all(|r| r.is_finished())
            || session
                .ended_at()
                .is_some_and(|t| t.elapsed() > Duration::from_millis(200));
        if output_read {
            // The command ended before it was ready.
            let exit = match session.exit(Duration::from_secs(5)).await {
                Exit::TimedOut => Exit::Failed("ended before the ready marker".into()),
                other => other,
            };
            let exit = match exit {
                Exit::Code(0) => Exit::Failed(format!(
                    "ended before printing the ready marker {ready_marker:?}"
                )),
                other => other,
            };
            return Err(session.abort(exit).await);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(session.abort(Exit::TimedOut).await);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Session {
    async fn outcome(&self, exit: Exit) -> Outcome {
        Outcome {
            exit,
            stdout: self.out.lock().await.text(),
            stderr: self.err.lock().await.text(),
        }
    }

    /// When the session ended by itself, if it did: its exec stream was cut (the API server or
    /// the kubelet went away) or its command exited. From then on the application is not held.
    pub fn ended_at(&self) -> Option<std::time::Instant> {
        self.ended.get().copied()
    }

    /// Its exit, waited for at most `timeout` ([`Exit::TimedOut`] then).
    async fn exit(&mut self, timeout: Duration) -> Exit {
        let Some(task) = self.status.as_mut() else {
            return Exit::Failed("no status channel".into());
        };
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(exit)) => {
                self.status = None;
                exit
            }
            Ok(Err(e)) => {
                self.status = None;
                Exit::Failed(format!("reading the exit: {e}"))
            }
            Err(_) => Exit::TimedOut,
        }
    }

    /// Closes the session without a post command (after a failure).
    pub async fn abort(mut self, exit: Exit) -> Outcome {
        drop(self.stdin.take());
        self.process.abort();
        if let Some(t) = self.status.take() {
            t.abort();
        }
        self.outcome(exit).await
    }

    /// Writes `post`, closes stdin (which ends the session and releases the application) and
    /// waits at most `timeout` for the command to exit.
    pub async fn finish(mut self, post: Option<&str>, timeout: Duration) -> Outcome {
        if let Some(at) = self.ended_at() {
            let why = format!(
                "the session had ended {} before, by itself (its exec stream was cut, as when the API server or the kubelet restarts, or its command exited): the application was released then, and no post command was sent",
                crate::model::units::HumanDuration(at.elapsed())
            );
            return self.abort(Exit::Failed(why)).await;
        }
        // A post command that could not be written did not run, whatever the session's exit.
        let mut unsent = None;
        if let (Some(w), Some(post)) = (self.stdin.as_mut(), post) {
            let mut input = post.to_owned();
            if !input.ends_with('\n') {
                input.push('\n');
            }
            if let Err(e) = async {
                w.write_all(input.as_bytes()).await?;
                w.flush().await
            }
            .await
            {
                unsent = Some(format!(
                    "the post command could not be sent to the session: {e}"
                ));
            }
        }
        if let Some(mut w) = self.stdin.take() {
            let _ = w.shutdown().await;
        }
        let exit = self.exit(timeout).await;
        let exit = match unsent {
            Some(e) if exit.ok() => Exit::Failed(e),
            _ => exit,
        };
        if exit == Exit::TimedOut {
            self.process.abort();
        }
        for r in std::mem::take(&mut self.readers) {
            let _ = tokio::time::timeout(Duration::from_secs(1), r).await;
        }
        self.outcome(exit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_capped_and_says_so() {
        let mut c = Capture::default();
        c.push(&vec![b'a'; OUTPUT_LIMIT - 1]);
        c.push(b"bcd");
        let t = c.text();
        assert!(t.starts_with("aaa"));
        assert!(
            t.ends_with("[… 2 more bytes not shown]"),
            "{}",
            &t[t.len() - 40..]
        );
    }

    #[test]
    fn exits_read_plainly() {
        assert_eq!(Exit::Code(3).to_string(), "exit code 3");
        assert!(Exit::Code(0).ok());
        assert!(!Exit::TimedOut.ok());
    }
}

/// What a streamed command did: how it ended, the bytes it wrote to stdout, the end of its
/// stdout (for an end marker), and its stderr (at most [`OUTPUT_LIMIT`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Streamed {
    /// How it ended (from the exec status channel: a stream that closed without one failed).
    pub exit: Exit,
    /// Bytes copied from its stdout.
    pub bytes: u64,
    /// Bytes written to its stdin.
    pub fed: u64,
    /// The last bytes of its stdout (up to 4 KiB).
    pub tail: Vec<u8>,
    /// Its stderr.
    pub stderr: String,
    /// Why copying to the sink failed, if it did.
    pub sink_error: Option<String>,
}

/// What a streamed command reads on stdin.
pub enum Stdin<'a> {
    /// Nothing: stdin is not attached.
    None,
    /// These bytes, then the end of input.
    Bytes(&'a [u8]),
    /// These bytes, then everything `rest` gives until its end, then the end of input.
    Then(&'a [u8], &'a mut (dyn tokio::io::AsyncRead + Unpin + Send)),
}

/// Runs `argv` in a container, writes `stdin` to it and closes it (the v5 protocol closes stdin
/// without losing the status), and copies its stdout into `sink` as it comes (no time limit: the
/// stream is as long as the command runs); `inspect` sees every piece of stdout as it passes.
pub async fn stream(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    argv: &[String],
    stdin: Stdin<'_>,
    sink: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
    inspect: &mut (dyn FnMut(&[u8]) + Send),
) -> Streamed {
    let mut out = Streamed {
        exit: Exit::Failed("not started".into()),
        bytes: 0,
        fed: 0,
        tail: Vec::new(),
        stderr: String::new(),
        sink_error: None,
    };
    let attach = !matches!(stdin, Stdin::None);
    let mut p = match pods
        .exec(pod, argv.to_vec(), &params(container, attach))
        .await
    {
        Ok(p) => p,
        Err(e) => {
            out.exit = Exit::Failed(format!("exec failed: {e}"));
            return out;
        }
    };
    let writer = if attach { p.stdin() } else { None };
    let feed = async move {
        let Some(mut w) = writer else {
            return Ok(0);
        };
        let (head, rest) = match stdin {
            Stdin::None => return Ok(0),
            Stdin::Bytes(b) => (b, None),
            Stdin::Then(b, r) => (b, Some(r)),
        };
        w.write_all(head)
            .await
            .map_err(|e| format!("writing the command's stdin: {e}"))?;
        let mut fed = head.len() as u64;
        if let Some(r) = rest {
            fed += tokio::io::copy(r, &mut w)
                .await
                .map_err(|e| format!("writing the command's stdin: {e}"))?;
        }
        // The command may wait for the end of its input: a stdin that cannot be closed fails.
        w.shutdown()
            .await
            .map_err(|e| format!("closing the command's stdin: {e}"))?;
        Ok::<u64, String>(fed)
    };
    let err = Arc::new(Mutex::new(Capture::default()));
    let se = p.stderr().map(|r| tokio::spawn(drain(r, err.clone())));
    let stdout = p.stdout();
    let read = async {
        let Some(mut r) = stdout else { return };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    inspect(&buf[..n]);
                    out.bytes += n as u64;
                    out.tail.extend_from_slice(&buf[..n]);
                    if out.tail.len() > 4096 {
                        out.tail.drain(..out.tail.len() - 4096);
                    }
                    if out.sink_error.is_none()
                        && let Err(e) = sink.write_all(&buf[..n]).await
                    {
                        out.sink_error = Some(e.to_string());
                    }
                }
                Err(e) => {
                    out.sink_error
                        .get_or_insert(format!("reading the command's stdout: {e}"));
                    break;
                }
            }
        }
    };
    let (fed, ()) = futures::join!(feed, read);
    if let Err(e) = sink.flush().await {
        out.sink_error.get_or_insert(e.to_string());
    }
    out.exit = exit_of(&mut p).await;
    match fed {
        Ok(n) => out.fed = n,
        // The command's own failure, when it has one, says more than a broken stdin.
        Err(e) if out.exit.ok() => out.exit = Exit::Failed(e),
        Err(e) => out.stderr.push_str(&format!("[{e}]\n")),
    }
    let stderr_read = match se {
        Some(t) => t.await.map_err(|e| e.to_string()),
        None => Ok(()),
    };
    out.stderr = format!("{}{}", err.lock().await.text(), out.stderr);
    if let Err(e) = stderr_read {
        out.stderr
            .push_str(&format!("\n[the rest of stderr could not be read: {e}]"));
    }
    out
}
