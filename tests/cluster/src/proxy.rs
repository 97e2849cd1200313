//! The kubelet proxy: `log` over HTTP (streamed, `follow` included) and `exec`/`attach`/`portforward` over
//! websockets, relayed frame by frame with the subprotocol the kubelet negotiated.
//!
//! Kubelet-side contract (what the node agent must serve, plain HTTP on the Node's InternalIP and
//! `status.daemonEndpoints.kubeletEndpoint.Port`):
//! - `GET /containerLogs/{ns}/{pod}/{container}?follow=&tailLines=&sinceSeconds=&sinceTime=&timestamps=&limitBytes=&previous=`
//! - websocket `GET /exec/{ns}/{pod}/{container}?command=..(repeated)&input=1&output=1&error=1&tty=1`
//! - websocket `GET /attach/{ns}/{pod}/{container}?input=1&output=1&error=1&tty=1`
//! - websocket `GET /portForward/{ns}/{pod}?port=..`
//!
//! The websocket request carries the client's `Sec-WebSocket-Protocol` list unchanged.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, frame::coding::CloseCode};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::cluster::Cluster;
use crate::http::{Body, Query, channel_body, empty, error};
use crate::kubelet::KubeletEndpoint;
use crate::status::ApiError;

/// Which streaming subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// `exec`.
    Exec,
    /// `attach`.
    Attach,
    /// `portforward`.
    PortForward,
}

impl StreamKind {
    fn path(self) -> &'static str {
        match self {
            StreamKind::Exec => "exec",
            StreamKind::Attach => "attach",
            StreamKind::PortForward => "portForward",
        }
    }
}

/// Go's text for a failed TCP dial.
pub fn dial_error(authority: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            format!("dial tcp {authority}: connect: connection refused")
        }
        _ => format!("dial tcp {authority}: {e}"),
    }
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The kubelet URL path and query for a log request.
pub fn log_target(ns: &str, pod: &str, container: &str, query: &Query) -> String {
    let mut q = Vec::new();
    for k in [
        "follow",
        "tailLines",
        "sinceSeconds",
        "sinceTime",
        "timestamps",
        "limitBytes",
        "previous",
    ] {
        if let Some(v) = query.get(k) {
            q.push(format!("{k}={}", encode(v)));
        }
    }
    let base = format!("/containerLogs/{ns}/{pod}/{container}");
    if q.is_empty() {
        base
    } else {
        format!("{base}?{}", q.join("&"))
    }
}

/// The kubelet URL path and query for exec/attach/portforward.
pub fn stream_target(
    kind: StreamKind,
    ns: &str,
    pod: &str,
    container: &str,
    query: &Query,
) -> String {
    let mut q = Vec::new();
    if kind == StreamKind::PortForward {
        for p in query.all("ports") {
            q.push(format!("port={}", encode(p)));
        }
        return format!("/portForward/{ns}/{pod}?{}", q.join("&"));
    }
    for c in query.all("command") {
        q.push(format!("command={}", encode(c)));
    }
    for (from, to) in [
        ("stdin", "input"),
        ("stdout", "output"),
        ("stderr", "error"),
        ("tty", "tty"),
    ] {
        if query.flag(from) {
            q.push(format!("{to}=1"));
        }
    }
    format!("/{}/{ns}/{pod}/{container}?{}", kind.path(), q.join("&"))
}

/// Proxy a log request to the kubelet, streaming its body.
pub async fn logs(
    cl: &Cluster,
    ep: &KubeletEndpoint,
    target: &str,
    pretty: bool,
) -> Response<Body> {
    let url = format!(
        "http://{}{}",
        ep.authority,
        target.split('?').next().unwrap_or(target)
    );
    let tcp = match TcpStream::connect(&ep.authority).await {
        Ok(t) => t,
        Err(e) => {
            return error(
                &ApiError::proxy_failure(format!("Get {url:?}: {}", dial_error(&ep.authority, &e))),
                pretty,
            );
        }
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake::<
        _,
        http_body_util::Empty<Bytes>,
    >(TokioIo::new(tcp))
    .await
    {
        Ok(x) => x,
        Err(e) => {
            return error(
                &ApiError::proxy_failure(format!("Get {url:?}: {e}")),
                pretty,
            );
        }
    };
    cl.spawn(async move {
        let _ = conn.await;
    });
    let req = match Request::get(target)
        .header(header::HOST, &ep.authority)
        .body(http_body_util::Empty::new())
    {
        Ok(r) => r,
        Err(e) => return error(&ApiError::internal(e.to_string()), pretty),
    };
    let resp = match sender.send_request(req).await {
        Ok(r) => r,
        Err(e) => {
            return error(
                &ApiError::proxy_failure(format!("Get {url:?}: {e}")),
                pretty,
            );
        }
    };
    let (parts, mut body) = resp.into_parts();
    if !parts.status.is_success() {
        // The kubelet answers errors in plain text; clients expect a Status.
        let text =
            match tokio::time::timeout(std::time::Duration::from_secs(5), body.collect()).await {
                Ok(Ok(b)) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                _ => String::new(),
            };
        return error(
            &ApiError::from_kubelet(parts.status.as_u16(), &text),
            pretty,
        );
    }
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    cl.spawn(async move {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Ok(data) = frame.into_data()
                && tx.send(data).await.is_err()
            {
                break;
            }
        }
    });
    let mut out = Response::new(channel_body(rx));
    *out.status_mut() = parts.status;
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        out.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
    }
    out
}

fn offered_protocols(req: &Request<Incoming>) -> Vec<String> {
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Whether the request asks for a websocket upgrade.
pub fn is_websocket(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn switching(key: &str, protocol: Option<&str>) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = protocol.and_then(|p| HeaderValue::from_str(p).ok()) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    r
}

/// Proxy exec/attach/portforward: dial the kubelet, handshake with the client's protocols, then relay.
pub async fn stream(
    cl: &Cluster,
    ep: &KubeletEndpoint,
    target: &str,
    query: &Query,
    mut req: Request<Incoming>,
    pretty: bool,
) -> Response<Body> {
    if !is_websocket(&req) {
        return error(&ApiError::bad_request("Upgrade request required"), pretty);
    }
    let Some(key) = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
    else {
        return error(&ApiError::bad_request("Upgrade request required"), pretty);
    };
    let protocols = offered_protocols(&req);
    let tcp = match TcpStream::connect(&ep.authority).await {
        Ok(t) => t,
        Err(e) => {
            let dial = dial_error(&ep.authority, &e);
            if protocols.iter().any(|p| p == "v5.channel.k8s.io") {
                // The apiserver's stream translator accepts first and reports in-band.
                let first = if query.flag("stdout") {
                    1u8
                } else if query.flag("stderr") {
                    2
                } else {
                    3
                };
                let status = ApiError::internal(format!(
                    "error sending request: Post \"http://{}{}\": {dial}",
                    ep.authority, target
                ));
                let on_upgrade = hyper::upgrade::on(&mut req);
                cl.spawn(async move {
                    let Ok(upgraded) = on_upgrade.await else {
                        return;
                    };
                    let mut ws = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        None,
                    )
                    .await;
                    let _ = ws.send(Message::binary(vec![first])).await;
                    let mut payload = vec![3u8];
                    payload.extend(
                        serde_json::to_vec(&status.to_channel_status()).unwrap_or_default(),
                    );
                    let _ = ws.send(Message::binary(payload)).await;
                    let _ = ws
                        .close(Some(CloseFrame {
                            code: CloseCode::Normal,
                            reason: "".into(),
                        }))
                        .await;
                });
                return switching(&key, Some("v5.channel.k8s.io"));
            }
            return error(
                &ApiError::proxy_failure(format!("error dialing backend: {dial}")),
                pretty,
            );
        }
    };
    let mut builder = Request::get(format!("ws://{}{}", ep.authority, target))
        .header(header::HOST, &ep.authority)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_VERSION, "13")
        .header(
            header::SEC_WEBSOCKET_KEY,
            tungstenite::handshake::client::generate_key(),
        );
    if !protocols.is_empty() {
        builder = builder.header(header::SEC_WEBSOCKET_PROTOCOL, protocols.join(", "));
    }
    let Ok(kreq) = builder.body(()) else {
        return error(&ApiError::internal("bad kubelet request"), pretty);
    };
    let (kubelet_ws, kresp) = match tokio_tungstenite::client_async(kreq, tcp).await {
        Ok(x) => x,
        Err(tungstenite::Error::Http(resp)) => {
            let (parts, body) = resp.into_parts();
            let mut r = Response::new(crate::http::full(body.unwrap_or_default()));
            *r.status_mut() = parts.status;
            if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
                r.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
            }
            return r;
        }
        Err(e) => {
            return error(
                &ApiError::proxy_failure(format!("error dialing backend: {e}")),
                pretty,
            );
        }
    };
    let negotiated = kresp
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let on_upgrade = hyper::upgrade::on(&mut req);
    cl.spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let client_ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        relay(client_ws, kubelet_ws).await;
    });
    switching(&key, negotiated.as_deref())
}

async fn relay<A, B>(a: WebSocketStream<A>, b: WebSocketStream<B>)
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut a_tx, mut a_rx) = a.split();
    let (mut b_tx, mut b_rx) = b.split();
    let up = async {
        while let Some(Ok(m)) = a_rx.next().await {
            let close = m.is_close();
            if matches!(m, Message::Ping(_) | Message::Pong(_)) {
                continue;
            }
            if b_tx.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = b_tx.close().await;
    };
    let down = async {
        while let Some(Ok(m)) = b_rx.next().await {
            let close = m.is_close();
            if matches!(m, Message::Ping(_) | Message::Pong(_)) {
                continue;
            }
            if a_tx.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = a_tx.close().await;
    };
    tokio::join!(up, down);
}

/// The container a log/exec request targets: the `container` parameter or the pod's only container.
pub fn pick_container(pod: &Value, requested: Option<&str>) -> Result<String, ApiError> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let names: Vec<&str> = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|l| {
            pod.pointer(&format!("/spec/{l}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    match requested.filter(|c| !c.is_empty()) {
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None => {
            let main: Vec<&str> = pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .collect();
            match main.as_slice() {
                [one] => Ok((*one).to_string()),
                _ => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    main.join(" ")
                ))),
            }
        }
    }
}
