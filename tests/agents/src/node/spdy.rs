//! The SPDY/3.1 transport of remote command sessions, as the kubelet's streaming server serves it
//! (kubelet `cri/streaming/remotecommand/httpstream.go`): the version negotiated through
//! `X-Stream-Protocol-Version` (v4 … v1), then the streams the client creates, one per `streamType`
//! (`error`, `stdin`, `stdout`, `stderr`, and `resize` for a tty from v3 on), all waited for (30 s)
//! before the command starts. Output goes to the stdout/stderr streams, the status to the error
//! stream (JSON from v4 on); then every stream gets FIN and the connection GOAWAY.

use std::time::Duration;

use kentledge_testcluster::spdy::{Connection, Role, Stream, StreamWriter, header};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::exec::{Input, Outcome, Protocol, Streams, TerminalSize, Transport, status_payload};

/// How long the client has to create its streams (apimachinery's `DefaultStreamCreationTimeout`).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a finished session waits for the client to hang up before closing the connection.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Why an SPDY upgrade is refused: the HTTP status and the text, in httpstream's `Handshake` words
/// (a 403 also lists [`Protocol::SPDY`] in `X-Accepted-Stream-Protocol-Versions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400 (no version offered) or 403 (none in common).
    pub code: u16,
    /// The error text.
    pub message: String,
}

/// The first version in the client's list (comma-separated values allowed) that this kubelet
/// speaks over SPDY.
pub fn negotiate(offered: &[String]) -> Result<Protocol, Refusal> {
    let offered: Vec<&str> = offered
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        return Err(Refusal {
            code: 400,
            message: "unable to upgrade: X-Stream-Protocol-Version is required".into(),
        });
    }
    offered
        .iter()
        .find_map(|o| Protocol::SPDY.into_iter().find(|p| p.name() == *o))
        .ok_or_else(|| Refusal {
            code: 403,
            message: format!(
                "unable to upgrade: unable to negotiate protocol: client supports [{}], server accepts [{}]",
                offered.join(" "),
                Protocol::SPDY.map(Protocol::name).join(" ")
            ),
        })
}

/// A session's SPDY streams.
pub struct SpdyTransport {
    conn: Connection,
    proto: Protocol,
    error: Option<StreamWriter>,
    stdout: Option<StreamWriter>,
    stderr: Option<StreamWriter>,
    readers: Vec<JoinHandle<()>>,
}

impl Drop for SpdyTransport {
    fn drop(&mut self) {
        for r in &self.readers {
            r.abort();
        }
    }
}

/// Feed the stdin stream's data to the session; its end (FIN, reset, hang-up) closes stdin.
fn read_stdin(mut s: Stream, tx: mpsc::Sender<Input>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(b) = s.data.recv().await {
            if tx.send(Input::Stdin(b.to_vec())).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Input::CloseStdin).await;
    })
}

/// Decode the resize stream: a sequence of JSON `{"Width":…,"Height":…}` objects.
fn read_resizes(mut s: Stream, tx: mpsc::Sender<Input>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = Vec::new();
        while let Some(b) = s.data.recv().await {
            buf.extend_from_slice(&b);
            for t in take_resizes(&mut buf) {
                let _ = tx
                    .send(Input::Resize {
                        width: t.width,
                        height: t.height,
                    })
                    .await;
            }
        }
    })
}

/// The largest partial resize message kept while waiting for the rest (a size is ~30 bytes).
const MAX_PARTIAL_RESIZE: usize = 4096;

/// The whole sizes at the front of `buf`, taken off it. What cannot be a size (bad JSON, or a
/// partial message longer than any size) is dropped, so the buffer never grows without bound.
fn take_resizes(buf: &mut Vec<u8>) -> Vec<TerminalSize> {
    let mut sizes = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(buf).into_iter::<TerminalSize>();
    let mut used = 0;
    let mut bad = false;
    while let Some(t) = de.next() {
        match t {
            Ok(t) => {
                sizes.push(t);
                used = de.byte_offset();
            }
            Err(e) => {
                bad = !e.is_eof();
                break;
            }
        }
    }
    if bad || buf.len() - used > MAX_PARTIAL_RESIZE {
        tracing::debug!(
            "kubelet spdy: dropping {} bytes of resize stream",
            buf.len()
        );
        buf.clear();
    } else {
        buf.drain(..used);
    }
    sizes
}

/// Start a session on an upgraded connection: accept the client's streams until all that `streams`
/// and `proto` call for are there.
pub async fn accept<IO>(
    io: IO,
    proto: Protocol,
    streams: Streams,
) -> Result<(SpdyTransport, mpsc::Receiver<Input>), String>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (conn, mut incoming) = Connection::start(io, Role::Server).map_err(|e| e.to_string())?;
    let resize = streams.tty && matches!(proto, Protocol::V3 | Protocol::V4);
    let expected = 1
        + usize::from(streams.stdin)
        + usize::from(streams.stdout)
        + usize::from(streams.stderr)
        + usize::from(resize);
    let (tx, in_rx) = mpsc::channel(16);
    let mut t = SpdyTransport {
        conn,
        proto,
        error: None,
        stdout: None,
        stderr: None,
        readers: Vec::new(),
    };
    let mut received = 0;
    let deadline = tokio::time::Instant::now() + STREAM_CREATION_TIMEOUT;
    let mut stdin_seen = false;
    while received < expected {
        let s = match tokio::time::timeout_at(deadline, incoming.recv()).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err("connection closed while waiting for streams".into()),
            Err(_) => return Err("timed out waiting for client to create streams".into()),
        };
        match header(&s.headers, "streamtype").unwrap_or("") {
            "error" => t.error = Some(s.writer.clone()),
            "stdin" => {
                stdin_seen = true;
                t.readers.push(read_stdin(s, tx.clone()));
            }
            "stdout" => t.stdout = Some(s.writer.clone()),
            "stderr" => t.stderr = Some(s.writer.clone()),
            "resize" => t.readers.push(read_resizes(s, tx.clone())),
            other => {
                tracing::debug!("kubelet spdy: unexpected stream type {other:?}");
                continue;
            }
        }
        received += 1;
    }
    if !stdin_seen {
        let _ = tx.send(Input::CloseStdin).await;
    }
    Ok((t, in_rx))
}

impl Transport for SpdyTransport {
    async fn send(&mut self, stream: u8, data: &[u8]) -> bool {
        match if stream == 2 {
            &self.stderr
        } else {
            &self.stdout
        } {
            Some(w) => w.write(data).await,
            None => true,
        }
    }

    async fn finish(self, outcome: &Outcome) {
        if let Some(e) = &self.error {
            if let Some(p) = status_payload(self.proto, outcome) {
                e.write(&p).await;
            }
            // 1.0 kubelets reset the error stream (kept by the kubelet for v1); later ones end it.
            if self.proto == Protocol::V1 {
                e.reset();
            } else {
                e.close();
            }
        }
        for w in [&self.stdout, &self.stderr].into_iter().flatten() {
            w.close();
        }
        self.conn.close();
        let _ = tokio::time::timeout(CLOSE_GRACE, self.conn.closed()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn resize_messages_are_taken_whole_and_garbage_is_dropped() {
        let mut buf = br#"{"Width":80,"Height":24}{"Width":100,"#.to_vec();
        let got = take_resizes(&mut buf);
        assert_eq!(
            got.iter().map(|t| (t.width, t.height)).collect::<Vec<_>>(),
            [(80, 24)]
        );
        assert_eq!(buf, br#"{"Width":100,"#);
        buf.extend_from_slice(br#""Height":50}"#);
        assert_eq!(take_resizes(&mut buf)[0].width, 100);
        assert!(buf.is_empty());
        // Not JSON: dropped, not kept growing.
        buf.extend_from_slice(b"not json at all");
        assert!(take_resizes(&mut buf).is_empty());
        assert!(buf.is_empty());
        // A message that never ends is dropped once longer than any size.
        buf.extend_from_slice(b"[");
        buf.extend(std::iter::repeat_n(b' ', 2 * MAX_PARTIAL_RESIZE));
        assert!(take_resizes(&mut buf).is_empty());
        assert!(buf.is_empty());
    }

    #[test]
    fn negotiation_takes_the_clients_first_version_the_kubelet_speaks() {
        // kubectl offers v5 first; over SPDY the kubelet answers v4.
        assert_eq!(
            negotiate(&offered(&[
                "v5.channel.k8s.io",
                "v4.channel.k8s.io",
                "v3.channel.k8s.io",
                "v2.channel.k8s.io",
                "channel.k8s.io"
            ])),
            Ok(Protocol::V4)
        );
        assert_eq!(
            negotiate(&offered(&["v2.channel.k8s.io, v3.channel.k8s.io"])),
            Ok(Protocol::V2)
        );
        assert_eq!(negotiate(&[]).unwrap_err().code, 400);
        let r = negotiate(&offered(&["v9.channel.k8s.io"])).unwrap_err();
        assert_eq!(r.code, 403);
        assert_eq!(
            r.message,
            "unable to upgrade: unable to negotiate protocol: client supports [v9.channel.k8s.io], server accepts [v4.channel.k8s.io v3.channel.k8s.io v2.channel.k8s.io channel.k8s.io]"
        );
    }
}
