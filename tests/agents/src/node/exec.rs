//! Remote command sessions as the kubelet runs them: the subprotocol versions (`v5.channel.k8s.io` …
//! `channel.k8s.io`), the status a session ends with (a JSON `metav1.Status` from v4 on, plain text
//! before), and the exec and attach sessions, written once over a [`Transport`]: websocket channels
//! ([`super::ws`]) or SPDY streams ([`super::spdy`]).

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::ChildStdin;
use tokio::sync::mpsc;

use super::container::{self, ProcessSpec, ProcessTable, SpawnError, signal_group};
use super::runtime::Running;

/// A channel subprotocol the kubelet speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `channel.k8s.io` (v1).
    V1,
    /// `v2.channel.k8s.io`.
    V2,
    /// `v3.channel.k8s.io`.
    V3,
    /// `v4.channel.k8s.io`: JSON status on channel 3.
    V4,
    /// `v5.channel.k8s.io`: v4 plus the close signal (255).
    V5,
}

impl Protocol {
    /// The subprotocol name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V1 => "channel.k8s.io",
            Protocol::V2 => "v2.channel.k8s.io",
            Protocol::V3 => "v3.channel.k8s.io",
            Protocol::V4 => "v4.channel.k8s.io",
            Protocol::V5 => "v5.channel.k8s.io",
        }
    }
    fn from_name(n: &str) -> Option<Protocol> {
        [
            Protocol::V5,
            Protocol::V4,
            Protocol::V3,
            Protocol::V2,
            Protocol::V1,
        ]
        .into_iter()
        .find(|p| p.name() == n)
    }
    /// The protocols this kubelet speaks over SPDY, preferred first (v5 is websocket-only: SPDY
    /// half-closes streams by itself).
    pub const SPDY: [Protocol; 4] = [Protocol::V4, Protocol::V3, Protocol::V2, Protocol::V1];

    /// The first protocol in the client's list that this kubelet speaks over websockets; `V1` when
    /// none was offered.
    pub fn negotiate(offered: &[String]) -> Result<Protocol, String> {
        if offered.is_empty() {
            return Ok(Protocol::V1);
        }
        offered.iter().find_map(|p| Protocol::from_name(p)).ok_or_else(|| {
            format!(
                "requested protocol(s) are not supported: {offered:?}; supports [\"v5.channel.k8s.io\" \"v4.channel.k8s.io\" \"v3.channel.k8s.io\" \"v2.channel.k8s.io\" \"channel.k8s.io\"]"
            )
        })
    }
}

/// Which streams a client asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streams {
    /// stdin (`input=1`).
    pub stdin: bool,
    /// stdout (`output=1`).
    pub stdout: bool,
    /// stderr (`error=1`).
    pub stderr: bool,
    /// A terminal (`tty=1`); no pty is allocated here, output stays on stdout/stderr.
    pub tty: bool,
}

#[derive(Serialize)]
struct Cause {
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    message: String,
}

#[derive(Serialize)]
struct Details {
    causes: Vec<Cause>,
}

#[derive(Serialize, Default)]
struct Metadata {}

/// `metav1.Status` as Go marshals it (no kind/apiVersion; field order kept).
#[derive(Serialize)]
struct Status {
    metadata: Metadata,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

/// How an exec/attach ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit code 0.
    Success,
    /// A non-zero exit code, with the command that ran.
    Exit {
        /// The argv.
        command: Vec<String>,
        /// The code.
        code: i32,
    },
    /// Anything else (the error text).
    Internal(String),
}

/// The status message (JSON for v4/v5; for v1–v3 the Status's message as plain text, nothing on
/// success), as the kubelet's `v4WriteStatusFunc`/`v1WriteStatusFunc` write it.
pub fn status_payload(proto: Protocol, outcome: &Outcome) -> Option<Vec<u8>> {
    let go_argv = |c: &[String]| format!("[{}]", c.join(" "));
    if matches!(proto, Protocol::V4 | Protocol::V5) {
        let st = match outcome {
            Outcome::Success => Status {
                metadata: Metadata {},
                status: "Success",
                message: None,
                reason: None,
                details: None,
                code: None,
            },
            Outcome::Exit { command, code } => Status {
                metadata: Metadata {},
                status: "Failure",
                message: Some(format!(
                    "command terminated with non-zero exit code: error executing command {}, exit code {code}",
                    go_argv(command)
                )),
                reason: Some("NonZeroExitCode"),
                details: Some(Details {
                    causes: vec![Cause {
                        reason: Some("ExitCode"),
                        message: code.to_string(),
                    }],
                }),
                code: None,
            },
            Outcome::Internal(e) => Status {
                metadata: Metadata {},
                status: "Failure",
                message: Some(format!("Internal error occurred: {e}")),
                reason: Some("InternalError"),
                details: Some(Details {
                    causes: vec![Cause {
                        reason: None,
                        message: e.clone(),
                    }],
                }),
                code: Some(500),
            },
        };
        return go_json(&st);
    }
    match outcome {
        Outcome::Success => None,
        Outcome::Exit { command, code } => {
            Some(format!("command terminated with non-zero exit code: error executing command {}, exit code {code}", go_argv(command)).into_bytes())
        }
        Outcome::Internal(e) => Some(format!("Internal error occurred: {e}").into_bytes()),
    }
}

/// JSON as Go's `json.Marshal` writes it: `<`, `>` and `&` escaped as `\u003c`, `\u003e`, `\u0026`
/// (they only occur inside strings, so the replacement is safe).
pub fn go_json(v: &impl Serialize) -> Option<Vec<u8>> {
    let text = serde_json::to_string(v).ok()?;
    Some(
        text.replace('&', "\\u0026")
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .into_bytes(),
    )
}

/// The error text of a failed exec start, as containerd words it.
pub fn exec_start_error(e: &SpawnError, exec_id: &str) -> String {
    format!(
        "error executing command in container: failed to exec in container: failed to start exec {exec_id:?}: OCI runtime exec failed: exec failed: unable to start container process: {e}: unknown"
    )
}

/// What the client sent, decoded by the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Bytes for the process's stdin.
    Stdin(Vec<u8>),
    /// The client closed stdin (v5 close signal, SPDY FIN, or the connection went away).
    CloseStdin,
    /// A terminal size (no pty is allocated here, so it changes nothing).
    Resize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
}

/// A terminal size as client-go sends it on the resize channel or stream (Go field names).
#[derive(Debug, serde::Deserialize)]
pub struct TerminalSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// The carrier of a session: where output goes and how the end is reported. What the client sends
/// arrives separately, as [`Input`] on a channel the transport feeds.
pub trait Transport: Send {
    /// Send output of stream 1 (stdout) or 2 (stderr); false once the client is gone.
    fn send(&mut self, stream: u8, data: &[u8]) -> impl Future<Output = bool> + Send;
    /// Report the outcome the protocol's way (status channel or error stream), then close.
    fn finish(self, outcome: &Outcome) -> impl Future<Output = ()> + Send;
}

async fn pump<R: AsyncRead + Unpin>(mut r: R, channel: u8, tx: mpsc::Sender<(u8, Vec<u8>)>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send((channel, buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Run `command` in a running container, wired to the client through `t` and `input`, then report
/// its status.
pub async fn exec_session<T: Transport>(
    mut t: T,
    mut in_rx: mpsc::Receiver<Input>,
    streams: Streams,
    command: Vec<String>,
    target: Result<Running, String>,
    table: ProcessTable,
) {
    let running = match target {
        Ok(r) => r,
        Err(e) => return t.finish(&Outcome::Internal(e)).await,
    };
    let spec = ProcessSpec {
        argv: command.clone(),
        env: running.env.clone(),
        working_dir: running.working_dir.clone(),
        creds: running.creds.clone(),
        mounts: Vec::new(),
        hostname: None,
        enter_mount_ns_of: Some(running.pid),
        stdin: streams.stdin,
    };
    let mut child = match container::spawn(&spec, &table) {
        Ok(c) => c,
        Err(e) => {
            let id = format!("{:x}", super::time::now().as_nanosecond());
            return t
                .finish(&Outcome::Internal(exec_start_error(&e, &id)))
                .await;
        }
    };
    let pgid = child.id().map(|p| p as i32);
    let (out_tx, mut out_rx) = mpsc::channel::<(u8, Vec<u8>)>(16);
    let mut pumps = Vec::new();
    if let Some(o) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(
            o,
            if streams.stdout { 1 } else { 0 },
            out_tx.clone(),
        )));
    }
    if let Some(o) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(
            o,
            if streams.stderr { 2 } else { 0 },
            out_tx.clone(),
        )));
    }
    drop(out_tx);
    let mut stdin = child.stdin.take();
    let mut input_open = true;
    let mut output_open = true;
    let mut exit = None;
    while output_open || exit.is_none() {
        tokio::select! {
            o = out_rx.recv(), if output_open => match o {
                Some((0, _)) => {}
                Some((ch, data)) => {
                    if !t.send(ch, &data).await {
                        break;
                    }
                }
                None => output_open = false,
            },
            i = in_rx.recv(), if input_open => match i {
                Some(Input::Stdin(d)) => {
                    if let Some(s) = stdin.as_mut()
                        && s.write_all(&d).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Some(Input::Resize { .. }) => {}
                Some(Input::CloseStdin) | None => {
                    stdin = None;
                    input_open = false;
                }
            },
            s = child.wait(), if exit.is_none() => {
                exit = Some(s.map(container::exit_code));
            }
        }
    }
    drop(stdin);
    if let Some(g) = pgid {
        table.remove(g);
    }
    let outcome = match exit {
        Some(Ok(0)) => Outcome::Success,
        Some(Ok(code)) => Outcome::Exit { command, code },
        Some(Err(e)) => Outcome::Internal(e.to_string()),
        None => {
            // The client went away: end the process like a runtime ending a broken exec stream.
            if let Some(g) = pgid {
                signal_group(g, libc::SIGKILL);
            }
            let _ = child.wait().await;
            return;
        }
    };
    for p in pumps {
        p.abort();
    }
    t.finish(&outcome).await;
}

/// Attach to a running container: its live output, and its stdin when the spec has `stdin: true`.
/// Ends when the container's process exits (status Success) or the client leaves.
pub async fn attach_session<T: Transport>(
    mut t: T,
    mut in_rx: mpsc::Receiver<Input>,
    streams: Streams,
    target: Result<Running, String>,
) {
    let running = match target {
        Ok(r) => r,
        Err(e) => return t.finish(&Outcome::Internal(e)).await,
    };
    let mut output = running.tap.subscribe();
    drop(running.tap);
    let stdin: Option<Arc<tokio::sync::Mutex<Option<ChildStdin>>>> = if streams.stdin {
        running.stdin.clone()
    } else {
        None
    };
    let mut input_open = true;
    loop {
        tokio::select! {
            o = output.recv() => match o {
                Ok((ch, data)) => {
                    let wanted = (ch == 1 && streams.stdout) || (ch == 2 && streams.stderr);
                    if wanted && !t.send(ch, &data).await {
                        break;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            i = in_rx.recv(), if input_open => match i {
                Some(Input::Stdin(d)) => {
                    if let Some(s) = &stdin
                        && let Some(w) = s.lock().await.as_mut()
                    {
                        let _ = w.write_all(&d).await;
                    }
                }
                Some(Input::Resize { .. }) => {}
                Some(Input::CloseStdin) | None => {
                    input_open = false;
                    if running.stdin_once
                        && let Some(s) = &stdin
                    {
                        s.lock().await.take();
                    }
                }
            },
        }
    }
    t.finish(&Outcome::Success).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_takes_the_clients_first_known_protocol() {
        let offered = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Protocol::negotiate(&offered(&["v5.channel.k8s.io", "v4.channel.k8s.io"])),
            Ok(Protocol::V5)
        );
        assert_eq!(
            Protocol::negotiate(&offered(&["v4.channel.k8s.io"])),
            Ok(Protocol::V4)
        );
        assert_eq!(Protocol::negotiate(&[]), Ok(Protocol::V1));
        assert!(Protocol::negotiate(&offered(&["v4.base64.channel.k8s.io"])).is_err());
    }

    #[test]
    fn statuses_match_the_kubelet_bytes() {
        let s = |o: &Outcome| String::from_utf8(status_payload(Protocol::V5, o).unwrap()).unwrap();
        assert_eq!(
            s(&Outcome::Success),
            r#"{"metadata":{},"status":"Success"}"#
        );
        assert_eq!(
            s(&Outcome::Exit {
                command: vec!["sh".into(), "-c".into(), "exit 3".into()],
                code: 3
            }),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        assert_eq!(
            s(&Outcome::Internal("boom".into())),
            r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: boom","reason":"InternalError","details":{"causes":[{"message":"boom"}]},"code":500}"#
        );
        assert_eq!(status_payload(Protocol::V1, &Outcome::Success), None);
        assert_eq!(
            s(&Outcome::Exit {
                command: vec!["sh".into(), "-c".into(), "echo x >&2; exit 1".into()],
                code: 1
            }),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c echo x \u003e\u00262; exit 1], exit code 1","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"1"}]}}"#
        );
        assert_eq!(
            status_payload(Protocol::V2, &Outcome::Internal("boom".into())).unwrap(),
            b"Internal error occurred: boom"
        );
    }

    #[test]
    fn exec_not_found_reads_like_containerd() {
        let e = SpawnError::NotFound {
            program: "nope".into(),
            detail: "executable file not found in $PATH".into(),
        };
        assert_eq!(
            exec_start_error(&e, "abc"),
            "error executing command in container: failed to exec in container: failed to start exec \"abc\": OCI runtime exec failed: exec failed: unable to start container process: exec: \"nope\": executable file not found in $PATH: unknown"
        );
    }
}
