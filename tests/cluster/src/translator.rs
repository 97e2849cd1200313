//! The stream translator of kube-apiserver 1.30+ (feature TranslateStreamCloseWebsocketRequests): a websocket
//! exec/attach request offering `v5.channel.k8s.io` is answered by the API server itself, which runs the
//! command towards the kubelet as client-go's SPDY executor does (versions v5…v1 offered; streams `error`,
//! `stdin`, `stdout`, `stderr` and, for a tty, `resize`, in that order) and relays between the two: channel 0
//! and the v5 close signal to the stdin stream, channel 4 to the resize stream, the stdout/stderr streams to
//! channels 1/2, and once both ended the kubelet's status, rewritten as the translator writes it, on channel 3.

use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, frame::coding::CloseCode};

use crate::cluster::Cluster;
use crate::http::{Body, Query};
use crate::kubelet::KubeletEndpoint;
use crate::proxy::{self, STREAM_PROTOCOL_VERSION};
use crate::spdy::{self, Connection, Headers, Role as SpdyRole, Stream};

/// The versions client-go's SPDY executor offers, preferred first.
const SPDY_VERSIONS: [&str; 5] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
struct Cause {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
struct Details {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    causes: Vec<Cause>,
}

/// `metav1.Status` in Go's field order, without kind/apiVersion (`json.Marshal(status)` on channel 3).
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
struct ChannelStatus {
    #[serde(default)]
    metadata: serde_json::Map<String, Value>,
    #[serde(default)]
    status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    details: Option<Details>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

impl ChannelStatus {
    fn success() -> Self {
        ChannelStatus {
            status: "Success".into(),
            ..ChannelStatus::default()
        }
    }
    /// `apierrors.NewInternalError(err)`.
    fn internal(err: &str) -> Self {
        ChannelStatus {
            status: "Failure".into(),
            message: Some(format!("Internal error occurred: {err}")),
            reason: Some("InternalError".into()),
            details: Some(Details {
                causes: vec![Cause {
                    reason: None,
                    message: Some(err.into()),
                }],
            }),
            code: Some(500),
            ..ChannelStatus::default()
        }
    }
    /// The translator's `codeExitToStatusError`: client-go's exit error text, wrapped.
    fn exit(code: &str) -> Self {
        ChannelStatus {
            status: "Failure".into(),
            message: Some(format!(
                "command terminated with non-zero exit code: command terminated with exit code {code}"
            )),
            reason: Some("NonZeroExitCode".into()),
            details: Some(Details {
                causes: vec![Cause {
                    reason: Some("ExitCode".into()),
                    message: Some(code.into()),
                }],
            }),
            ..ChannelStatus::default()
        }
    }
    /// As Go's `json.Marshal` writes it (`<`, `>`, `&` escaped; they only occur inside strings).
    fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_string(self)
            .unwrap_or_default()
            .replace('&', "\\u0026")
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .into_bytes()
    }
}

/// What the translator reports for the kubelet's error stream (client-go's error decoders, then the
/// translator's mapping): v4/v5 JSON — success, an exit code, or the kubelet's Status as it is; v1–v3 text —
/// nothing is success, anything else an internal error.
fn translate_status(version: &str, error_stream: &[u8]) -> ChannelStatus {
    if matches!(version, "v4.channel.k8s.io" | "v5.channel.k8s.io") {
        let Ok(st) = serde_json::from_slice::<ChannelStatus>(error_stream) else {
            return ChannelStatus::internal(&format!(
                "error stream protocol error: {}",
                String::from_utf8_lossy(error_stream)
            ));
        };
        if st.status == "Success" {
            return ChannelStatus::success();
        }
        if st.reason.as_deref() == Some("NonZeroExitCode")
            && let Some(code) = st
                .details
                .as_ref()
                .and_then(|d| {
                    d.causes
                        .iter()
                        .find(|c| c.reason.as_deref() == Some("ExitCode"))
                })
                .and_then(|c| c.message.clone())
        {
            return ChannelStatus::exit(&code);
        }
        return st;
    }
    if error_stream.is_empty() {
        ChannelStatus::success()
    } else {
        ChannelStatus::internal(&format!(
            "error executing remote command: {}",
            String::from_utf8_lossy(error_stream)
        ))
    }
}

/// The status for how the kubelet's error stream ended: its FIN (or, from a v1 kubelet, which resets
/// the stream after writing, a reset) carries the status; a stream cut by a reset or by the end of the
/// connection carries none, which must not read as success.
fn error_stream_status(
    version: &str,
    read: Result<Vec<u8>, (spdy::SpdyError, Vec<u8>)>,
) -> ChannelStatus {
    match read {
        Ok(bytes) => translate_status(version, &bytes),
        Err((spdy::SpdyError::Reset, bytes)) if version == "channel.k8s.io" => {
            translate_status(version, &bytes)
        }
        Err((e, _)) => ChannelStatus::internal(&format!("error reading from error stream: {e}")),
    }
}

fn first_channel(query: &Query) -> u8 {
    if query.flag("stdout") {
        1
    } else if query.flag("stderr") {
        2
    } else {
        3
    }
}

/// Accept the client's websocket and report `status` in-band at once (the translator's answer when it
/// cannot reach the kubelet).
pub fn fail_in_band(
    cl: &Cluster,
    req: &mut Request<Incoming>,
    key: &str,
    query: &Query,
    err: &str,
) -> Response<Body> {
    let first = first_channel(query);
    let status = ChannelStatus::internal(err);
    let on_upgrade = hyper::upgrade::on(req);
    cl.spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let _ = ws.send(Message::binary(vec![first])).await;
        let mut payload = vec![3u8];
        payload.extend(status.to_bytes());
        let _ = ws.send(Message::binary(payload)).await;
        let _ = ws
            .close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    });
    proxy::switching(key, Some("v5.channel.k8s.io"))
}

/// The SPDY side, ready: the connection and its streams.
struct Upstream {
    conn: Connection,
    version: String,
    error: Stream,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    resize: Option<Stream>,
}

/// Upgrade to SPDY at the kubelet and create the streams client-go creates.
async fn connect(
    cl: &Cluster,
    ep: &KubeletEndpoint,
    target: &str,
    query: &Query,
) -> Result<Upstream, String> {
    let url = format!("https://{}{}", ep.authority, target);
    let mut sender = proxy::kubelet_http(cl, ep)
        .await
        .map_err(|e| format!("error sending request: Post {url:?}: {e}"))?;
    let mut b = Request::post(target)
        .header(header::HOST, &ep.authority)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, spdy::UPGRADE);
    for v in SPDY_VERSIONS {
        b = b.header(STREAM_PROTOCOL_VERSION, v);
    }
    let kreq = b
        .body(http_body_util::Empty::new())
        .map_err(|e| e.to_string())?;
    let mut resp = sender.send_request(kreq).await.map_err(|e| {
        format!(
            "error sending request: Post {url:?}: {}",
            proxy::request_error(&e)
        )
    })?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
            .unwrap_or_default();
        return Err(format!("unable to upgrade connection: {body}"));
    }
    let version = resp
        .headers()
        .get(STREAM_PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("channel.k8s.io")
        .to_string();
    let upgraded = hyper::upgrade::on(&mut resp)
        .await
        .map_err(|e| e.to_string())?;
    let (conn, _) =
        Connection::start(TokioIo::new(upgraded), SpdyRole::Client).map_err(|e| e.to_string())?;
    let kind = |t: &str| -> Headers { vec![("streamtype".into(), t.into())] };
    let tty = query.flag("tty");
    let open = |t: &'static str, wanted: bool| {
        let conn = &conn;
        async move {
            if wanted {
                conn.open(kind(t))
                    .await
                    .map(Some)
                    .map_err(|e| e.to_string())
            } else {
                Ok(None)
            }
        }
    };
    let error = conn.open(kind("error")).await.map_err(|e| e.to_string())?;
    let stdin = open("stdin", query.flag("stdin")).await?;
    let stdout = open("stdout", query.flag("stdout")).await?;
    let stderr = open("stderr", query.flag("stderr") && !tty).await?;
    let resize = open(
        "resize",
        tty && !matches!(version.as_str(), "v2.channel.k8s.io" | "channel.k8s.io"),
    )
    .await?;
    Ok(Upstream {
        conn,
        version,
        error,
        stdin,
        stdout,
        stderr,
        resize,
    })
}

/// Run a websocket v5 exec/attach request as the translator: SPDY to the kubelet, websocket to the client.
pub async fn translate(
    cl: &Cluster,
    ep: &KubeletEndpoint,
    target: &str,
    query: &Query,
    mut req: Request<Incoming>,
    key: &str,
) -> Response<Body> {
    let up = match connect(cl, ep, target, query).await {
        Ok(u) => u,
        Err(e) => return fail_in_band(cl, &mut req, key, query, &e),
    };
    let first = first_channel(query);
    let on_upgrade = hyper::upgrade::on(&mut req);
    cl.spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        relay(ws, up, first).await;
    });
    proxy::switching(key, Some("v5.channel.k8s.io"))
}

/// A task that is aborted when its handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn relay<S>(ws: WebSocketStream<S>, up: Upstream, first: u8)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Upstream {
        conn,
        version,
        mut error,
        stdin,
        stdout,
        stderr,
        resize,
    } = up;
    let (mut sink, mut source) = ws.split();
    let _ = sink.send(Message::binary(vec![first])).await;
    let stdin_w = stdin.map(|s| s.writer);
    let resize_w = resize.map(|s| s.writer);
    // Client → kubelet: stdin data, the close signal, resizes; a closed websocket ends stdin.
    // It holds the websocket's read half: it ends with the relay (a restart drops the relay,
    // and the client's connection must close with it).
    let upstream = AbortOnDrop(tokio::spawn(async move {
        while let Some(Ok(m)) = source.next().await {
            match m {
                Message::Binary(b) => match (b.first(), &stdin_w) {
                    (Some(0), Some(w)) => {
                        w.write(&b[1..]).await;
                    }
                    (Some(255), Some(w)) if b.len() == 2 && b[1] == 0 => w.close(),
                    (Some(4), _) => {
                        if let Some(r) = &resize_w {
                            r.write(&b[1..]).await;
                        }
                    }
                    (Some(255), _) if b.len() != 2 => break,
                    _ => {}
                },
                Message::Close(_) => break,
                _ => {}
            }
        }
        if let Some(w) = &stdin_w {
            w.close();
        }
    }));
    // Kubelet → client: output until both streams end, then the status.
    let (mut out, mut err) = (stdout, stderr);
    loop {
        let next = tokio::select! {
            d = async { out.as_mut()?.data.recv().await.map(|d| (1u8, d)) }, if out.is_some() => d.ok_or(1u8),
            d = async { err.as_mut()?.data.recv().await.map(|d| (2u8, d)) }, if err.is_some() => d.ok_or(2u8),
            else => break,
        };
        match next {
            Ok((ch, data)) => {
                let mut m = Vec::with_capacity(data.len() + 1);
                m.push(ch);
                m.extend_from_slice(&data);
                if sink.send(Message::binary(m)).await.is_err() {
                    upstream.0.abort();
                    conn.close();
                    return;
                }
            }
            Err(1) => out = None,
            Err(_) => err = None,
        }
    }
    let status = error_stream_status(&version, error.read_to_fin().await);
    let mut payload = vec![3u8];
    payload.extend(status.to_bytes());
    let _ = sink.send(Message::binary(payload)).await;
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    let _ = sink.flush().await;
    upstream.0.abort();
    conn.close();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn.closed()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_stream_cut_before_its_fin_is_an_internal_error_not_success() {
        let msg = |st: ChannelStatus| st.message.unwrap_or_default();
        assert_eq!(
            error_stream_status("v2.channel.k8s.io", Ok(Vec::new())).status,
            "Success"
        );
        for v in ["v4.channel.k8s.io", "v2.channel.k8s.io"] {
            let st = error_stream_status(v, Err((spdy::SpdyError::Closed, Vec::new())));
            assert_eq!((st.status.as_str(), st.code), ("Failure", Some(500)), "{v}");
            assert_eq!(
                msg(st),
                "Internal error occurred: error reading from error stream: spdy connection closed"
            );
        }
        assert_eq!(
            error_stream_status(
                "v3.channel.k8s.io",
                Err((spdy::SpdyError::Reset, Vec::new()))
            )
            .status,
            "Failure"
        );
        // A v1 kubelet resets the error stream after writing its (text) status.
        assert_eq!(
            error_stream_status("channel.k8s.io", Err((spdy::SpdyError::Reset, Vec::new()))).status,
            "Success"
        );
        assert_eq!(
            msg(error_stream_status(
                "channel.k8s.io",
                Err((spdy::SpdyError::Reset, b"boom".to_vec()))
            )),
            "Internal error occurred: error executing remote command: boom"
        );
    }

    #[test]
    fn kubelet_statuses_become_the_translators() {
        let s = |v: &str, b: &str| {
            String::from_utf8(translate_status(v, b.as_bytes()).to_bytes()).unwrap()
        };
        assert_eq!(
            s("v4.channel.k8s.io", r#"{"metadata":{},"status":"Success"}"#),
            r#"{"metadata":{},"status":"Success"}"#
        );
        assert_eq!(
            s(
                "v4.channel.k8s.io",
                r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
            ),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: command terminated with exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        let internal = r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: boom","reason":"InternalError","details":{"causes":[{"message":"boom"}]},"code":500}"#;
        assert_eq!(s("v4.channel.k8s.io", internal), internal);
        assert_eq!(
            s("v2.channel.k8s.io", ""),
            r#"{"metadata":{},"status":"Success"}"#
        );
        assert_eq!(
            s("v2.channel.k8s.io", "oops"),
            r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: error executing remote command: oops","reason":"InternalError","details":{"causes":[{"message":"error executing remote command: oops"}]},"code":500}"#
        );
    }
}
