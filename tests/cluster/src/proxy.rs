//! The kubelet proxy: `log` (streamed, `follow` included) and `exec`/`attach`/`portforward` over
//! websockets, relayed frame by frame with the subprotocol the kubelet negotiated (websocket v5
//! exec/attach go to [`crate::translator`] instead, as in kube-apiserver 1.30+), or over SPDY/3.1,
//! passed through as raw bytes once both sides switched protocols (kube-apiserver's
//! UpgradeAwareHandler).
//!
//! Kubelet-side contract (what the node agent must serve, HTTPS on the Node's InternalIP and
//! `status.daemonEndpoints.kubeletEndpoint.Port`; the API server presents its kubelet client
//! certificate, see [`crate::tls::KubeletClientTls`]). Query keys are sorted, as Go's `url.Values`
//! encodes them:
//! - `GET /containerLogs/{ns}/{pod}/{container}?follow=&limitBytes=&previous=&sinceSeconds=&sinceTime=&tailLines=&timestamps=`
//! - `/exec/{ns}/{pod}/{container}?command=..(repeated)&error=1&input=1&output=1&tty=1`
//! - `/attach/{ns}/{pod}/{container}?error=1&input=1&output=1&tty=1`
//! - `/portForward/{ns}/{pod}?port=..`
//!
//! A websocket request carries the client's `Sec-WebSocket-Protocol` list unchanged; an SPDY request
//! (`Upgrade: SPDY/3.1`) its `X-Stream-Protocol-Version` values.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
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

/// `path?query` with the pairs sorted by key (stable for repeated keys), as Go's `url.Values.Encode`.
fn with_query(path: String, mut pairs: Vec<(&str, String)>) -> String {
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let q: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if q.is_empty() {
        path
    } else {
        format!("{path}?{}", q.join("&"))
    }
}

/// A TLS connection to a kubelet.
pub type KubeletStream = TlsStream<TcpStream>;

/// Go's text for a failed TLS handshake with a kubelet.
pub fn tls_error(e: &std::io::Error) -> String {
    let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return e.to_string();
    };
    match inner {
        rustls::Error::AlertReceived(a) => {
            use rustls::AlertDescription as A;
            let words = match a {
                A::UnknownCA => "unknown certificate authority".to_string(),
                A::BadCertificate => "bad certificate".into(),
                A::CertificateRequired => "certificate required".into(),
                A::HandshakeFailure => "handshake failure".into(),
                other => format!("{other:?}").to_ascii_lowercase(),
            };
            format!("remote error: tls: {words}")
        }
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            "tls: failed to verify certificate: x509: certificate signed by unknown authority"
                .into()
        }
        rustls::Error::InvalidCertificate(c) => {
            format!("tls: failed to verify certificate: x509: {c:?}")
        }
        other => format!("tls: {other}"),
    }
}

/// Go's text for a failed request to a kubelet: a TLS alert that arrived after the handshake (TLS 1.3
/// reports a refused client certificate only then) reads as the handshake error would.
pub fn request_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.get_ref().is_some_and(|i| i.is::<rustls::Error>())
        {
            return tls_error(io);
        }
        cur = err.source();
    }
    e.to_string()
}

/// Dial a kubelet: TCP, then TLS with the kubelet client certificate. Errors read as Go's
/// (`dial tcp 127.0.0.1:10250: connect: connection refused`, `remote error: tls: …`).
/// Both steps are bounded as kube-apiserver's kubelet transport bounds them (30 s to connect, 10 s for
/// the TLS handshake), so a kubelet that accepts and then says nothing cannot hold a request forever.
pub async fn dial(cl: &Cluster, ep: &KubeletEndpoint) -> Result<KubeletStream, String> {
    let tcp = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(&ep.authority))
        .await
        .map_err(|_| format!("dial tcp {}: i/o timeout", ep.authority))?
        .map_err(|e| dial_error(&ep.authority, &e))?;
    let name = rustls::pki_types::ServerName::try_from(ep.host.clone())
        .map_err(|e| format!("tls: invalid server name {:?}: {e}", ep.host))?;
    tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, cl.kubelet_tls.connect(name, tcp))
        .await
        .map_err(|_| "net/http: TLS handshake timeout".to_string())?
        .map_err(|e| tls_error(&e))
}

/// How long dialling a kubelet may take (Go's dialer in kube-apiserver's kubelet client).
const DIAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long the TLS handshake with a kubelet may take (`TLSHandshakeTimeout`).
pub const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// An HTTP/1.1 client connection to the kubelet (dialled with [`dial`]; its driver runs on the
/// cluster, upgrades allowed). The error is Go's text, for the caller to prefix.
pub async fn kubelet_http(
    cl: &Cluster,
    ep: &KubeletEndpoint,
) -> Result<SendRequest<http_body_util::Empty<Bytes>>, String> {
    let tls = dial(cl, ep).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| request_error(&e))?;
    cl.spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
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
            q.push((k, v.to_string()));
        }
    }
    with_query(format!("/containerLogs/{ns}/{pod}/{container}"), q)
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
            q.push(("port", p.clone()));
        }
        return with_query(format!("/portForward/{ns}/{pod}"), q);
    }
    for c in query.all("command") {
        q.push(("command", c.clone()));
    }
    for (from, to) in [
        ("stdin", "input"),
        ("stdout", "output"),
        ("stderr", "error"),
        ("tty", "tty"),
    ] {
        if query.flag(from) {
            q.push((to, "1".to_string()));
        }
    }
    with_query(format!("/{}/{ns}/{pod}/{container}", kind.path()), q)
}

/// Proxy a log request to the kubelet, streaming its body.
pub async fn logs(
    cl: &Cluster,
    ep: &KubeletEndpoint,
    target: &str,
    pretty: bool,
) -> Response<Body> {
    let url = format!(
        "https://{}{}",
        ep.authority,
        target.split('?').next().unwrap_or(target)
    );
    let mut sender = match kubelet_http(cl, ep).await {
        Ok(s) => s,
        Err(e) => {
            return error(
                &ApiError::proxy_failure(format!("Get {url:?}: {e}")),
                pretty,
            );
        }
    };
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
                &ApiError::proxy_failure(format!("Get {url:?}: {}", request_error(&e))),
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

/// The 101 answer to a websocket upgrade with `key`, naming the chosen subprotocol.
pub fn switching(key: &str, protocol: Option<&str>) -> Response<Body> {
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
    if is_spdy(&req) {
        return spdy_passthrough(cl, ep, target, req, pretty).await;
    }
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
    let v5 = protocols.iter().any(|p| p == "v5.channel.k8s.io");
    if v5 && cl.stream_translator && !target.starts_with("/portForward/") {
        return crate::translator::translate(cl, ep, target, query, req, &key).await;
    }
    let tcp = match dial(cl, ep).await {
        Ok(t) => t,
        Err(dial) if v5 => {
            // The apiserver's stream translator accepts first and reports in-band.
            let err = format!(
                "error sending request: Post \"https://{}{}\": {dial}",
                ep.authority, target
            );
            return crate::translator::fail_in_band(cl, &mut req, &key, query, &err);
        }
        Err(dial) => {
            return error(
                &ApiError::proxy_failure(format!("error dialing backend: {dial}")),
                pretty,
            );
        }
    };
    let mut builder = Request::get(format!("wss://{}{}", ep.authority, target))
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
                &ApiError::proxy_failure(format!("error dialing backend: {}", request_error(&e))),
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

/// Whether the request asks for an SPDY/3.1 upgrade (`Connection: Upgrade`, `Upgrade: SPDY/3.1`).
pub fn is_spdy(req: &Request<Incoming>) -> bool {
    let has = |name: header::HeaderName, want: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains(want))
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "spdy/3.1")
}

/// The SPDY header that lists (client) or names (server) the remote-command protocol version.
pub const STREAM_PROTOCOL_VERSION: &str = "x-stream-protocol-version";

/// Pass an SPDY upgrade through to the kubelet, as kube-apiserver's UpgradeAwareHandler does: send the
/// request (same method, the upgrade headers and the client's `X-Stream-Protocol-Version` values) over TLS,
/// answer the client with the kubelet's response, and once both sides switched, relay the raw bytes both
/// ways until either side closes.
async fn spdy_passthrough(
    cl: &Cluster,
    ep: &KubeletEndpoint,
    target: &str,
    mut req: Request<Incoming>,
    pretty: bool,
) -> Response<Body> {
    let mut sender = match kubelet_http(cl, ep).await {
        Ok(s) => s,
        Err(e) => {
            return error(
                &ApiError::proxy_failure(format!("error dialing backend: {e}")),
                pretty,
            );
        }
    };
    let mut builder = Request::builder()
        .method(req.method().clone())
        .uri(target)
        .header(header::HOST, &ep.authority)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1");
    for name in [STREAM_PROTOCOL_VERSION, "user-agent"] {
        for v in req.headers().get_all(name) {
            builder = builder.header(name, v.clone());
        }
    }
    let Ok(kreq) = builder.body(http_body_util::Empty::new()) else {
        return error(&ApiError::internal("bad kubelet request"), pretty);
    };
    let mut kresp = match sender.send_request(kreq).await {
        Ok(r) => r,
        Err(e) => {
            return error(
                &ApiError::proxy_failure(format!("error dialing backend: {}", request_error(&e))),
                pretty,
            );
        }
    };
    let status = kresp.status();
    let headers = kresp.headers().clone();
    let body = if status == StatusCode::SWITCHING_PROTOCOLS {
        let kubelet_side = hyper::upgrade::on(&mut kresp);
        let client_side = hyper::upgrade::on(&mut req);
        cl.spawn(async move {
            let (Ok(k), Ok(c)) = (kubelet_side.await, client_side.await) else {
                return;
            };
            let (mut k, mut c) = (TokioIo::new(k), TokioIo::new(c));
            let _ = tokio::io::copy_bidirectional(&mut c, &mut k).await;
        });
        empty()
    } else {
        // Not upgraded: the kubelet's answer goes back as it is (status, type, text).
        match tokio::time::timeout(std::time::Duration::from_secs(5), kresp.collect()).await {
            Ok(Ok(b)) => crate::http::full(b.to_bytes()),
            _ => empty(),
        }
    };
    let mut out = Response::new(body);
    *out.status_mut() = status;
    for (name, v) in &headers {
        let hop = [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::DATE,
        ];
        if !hop.contains(name) {
            out.headers_mut().append(name.clone(), v.clone());
        }
    }
    out
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
