//! The kubelet HTTPS server, the contract the API server proxies to:
//! `GET /containerLogs/{ns}/{pod}/{container}` (streamed with `follow`), `/exec/...` and
//! `/attach/...` over websockets or SPDY/3.1, and `/healthz`. Every request needs a client
//! certificate from the client CA (else `401 Unauthorized`, as with anonymous auth off). Errors are
//! plain text with the kubelet's status codes and words.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::Ctx;
use super::exec::{self, Protocol, Streams, Transport};
use super::logs::{self, LogQuery};
use super::runtime::{PodKey, Running};
use super::time::now;
use super::{spdy, ws};

type Body = UnsyncBoxBody<Bytes, Infallible>;

use kentledge_testcluster::proxy::STREAM_PROTOCOL_VERSION;
/// The `Upgrade` value of SPDY requests and responses.
const UPGRADE: &str = kentledge_testcluster::spdy::UPGRADE;

fn text(code: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(msg.into())).boxed_unsync());
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// How long a client has for the TLS handshake (Go's `http.Server` in the kubelet has no limit of
/// its own here, but its connections are closed when idle; 10 s is what the API server allows).
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Accept TLS connections until aborted.
pub async fn serve(listener: TcpListener, tls: TlsAcceptor, ctx: Arc<Ctx>) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        // As the real kubelet's (Go) connections: each write goes out at once (no Nagle delay on
        // the small frames of exec streams).
        let _ = tcp.set_nodelay(true);
        while conns.try_join_next().is_some() {}
        let ctx = ctx.clone();
        let tls = tls.clone();
        conns.spawn(async move {
            // Bounded, so a client that connects and says nothing does not hold a task forever.
            let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!("kubelet TLS handshake: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!("kubelet TLS handshake: timed out");
                    return;
                }
            };
            // The verifier has checked any certificate against the client CA; no certificate
            // means an anonymous client.
            let authenticated = stream
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty());
            let svc = service_fn(move |req| {
                let ctx = ctx.clone();
                async move {
                    if !authenticated {
                        return Ok::<_, Infallible>(text(StatusCode::UNAUTHORIZED, "Unauthorized"));
                    }
                    Ok::<_, Infallible>(route(ctx, req).await)
                }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await
            {
                tracing::debug!("kubelet connection: {e}");
            }
        });
    }
}

fn query_pairs(req: &Request<Incoming>) -> Vec<(String, String)> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

async fn route(ctx: Arc<Ctx>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["healthz"] => text(StatusCode::OK, "ok"),
        ["containerLogs", ns, pod, container] => {
            container_logs(&ctx, ns, pod, container, &query_pairs(&req)).await
        }
        ["exec", ns, pod, container] => stream(&ctx, ns, pod, container, req, true),
        ["attach", ns, pod, container] => stream(&ctx, ns, pod, container, req, false),
        ["portForward", ..] => text(
            StatusCode::NOT_IMPLEMENTED,
            "port forwarding is not supported by this kubelet",
        ),
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

async fn container_logs(
    ctx: &Ctx,
    ns: &str,
    pod: &str,
    container: &str,
    pairs: &[(String, String)],
) -> Response<Body> {
    let fault = ctx.opts.faults.logs();
    if fault == super::LogFault::Refuse {
        return text(
            // Not 503: clients retry that (kube-rs for minutes), which is not the fault.
            StatusCode::INTERNAL_SERVER_ERROR,
            "this kubelet refuses log requests (a fault switched on by a test)",
        );
    }
    let q = match LogQuery::parse(pairs, now()) {
        Ok(q) => q,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let key = PodKey {
        namespace: ns.into(),
        name: pod.into(),
    };
    let Some(rec) = ctx.runtime.get(&key) else {
        return text(StatusCode::NOT_FOUND, format!("pod {pod:?} does not exist"));
    };
    let Some(c) = rec.containers.get(container) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("container {container:?} not found in pod {pod:?}"),
        );
    };
    let log = if q.previous {
        match c.logs.len() {
            n if n >= 2 => c.logs[n - 2].clone(),
            _ => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("previous terminated container {container:?} in pod {pod:?} not found"),
                );
            }
        }
    } else {
        match c.logs.last() {
            Some(l) => l.clone(),
            None => {
                let reason = c
                    .waiting
                    .clone()
                    .unwrap_or_else(|| "ContainerCreating".into());
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("container {container:?} in pod {pod:?} is waiting to start: {reason}"),
                );
            }
        }
    };
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(logs::stream(log, q, tx));
    let cut = fault == super::LogFault::Cut;
    let body = futures::stream::unfold((rx, false), move |(mut rx, done)| async move {
        if done {
            return None;
        }
        let mut b = rx.recv().await?;
        // A cut stream ends after its first line, as if the log were complete.
        let newline = cut.then(|| b.iter().position(|&c| c == b'\n')).flatten();
        if let Some(i) = newline {
            b = b.slice(..=i);
        }
        Some((Ok::<_, Infallible>(Frame::data(b)), (rx, newline.is_some())))
    });
    let mut r = Response::new(BodyExt::boxed_unsync(StreamBody::new(body)));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

fn flag(pairs: &[(String, String)], names: &[&str]) -> bool {
    pairs
        .iter()
        .any(|(k, v)| names.contains(&k.as_str()) && matches!(v.as_str(), "1" | "true" | "True"))
}

fn target(ctx: &Ctx, ns: &str, pod: &str, container: &str) -> Result<Running, String> {
    let key = PodKey {
        namespace: ns.into(),
        name: pod.into(),
    };
    let rec = ctx
        .runtime
        .get(&key)
        .ok_or_else(|| format!("pod {pod:?} does not exist"))?;
    rec.containers
        .get(container)
        .and_then(|c| c.running.clone())
        .ok_or_else(|| format!("container not found ({container:?})"))
}

/// How a client asked to upgrade an exec/attach request.
enum Upgrade {
    /// A websocket with its key and the offered subprotocols.
    Websocket { key: String, offered: Vec<String> },
    /// SPDY/3.1 (the version comes from `X-Stream-Protocol-Version`).
    Spdy,
}

fn upgrade_kind(req: &Request<Incoming>) -> Option<Upgrade> {
    let values = |name: header::HeaderName| -> Vec<String> {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
            .collect()
    };
    if kentledge_testcluster::proxy::is_spdy(req) {
        return Some(Upgrade::Spdy);
    }
    let upgrade = values(header::UPGRADE);
    if !upgrade.iter().any(|u| u == "websocket") {
        return None;
    }
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())?
        .to_string();
    let offered = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    Some(Upgrade::Websocket { key, offered })
}

/// What runs once the connection is upgraded.
enum Job {
    Exec {
        command: Vec<String>,
        table: super::ProcessTable,
    },
    Attach,
}

/// Run the session over whichever transport the client chose.
async fn run<T: Transport>(
    t: T,
    input: mpsc::Receiver<exec::Input>,
    streams: Streams,
    job: Job,
    found: Result<Running, String>,
) {
    match job {
        Job::Exec { command, table } => {
            exec::exec_session(t, input, streams, command, found, table).await
        }
        Job::Attach => exec::attach_session(t, input, streams, found).await,
    }
}

fn stream(
    ctx: &Arc<Ctx>,
    ns: &str,
    pod: &str,
    container: &str,
    mut req: Request<Incoming>,
    is_exec: bool,
) -> Response<Body> {
    let Some(upgrade) = upgrade_kind(&req) else {
        return text(StatusCode::BAD_REQUEST, "Upgrade request required");
    };
    let pairs = query_pairs(&req);
    let tty = flag(&pairs, &["tty"]);
    let streams = Streams {
        stdin: flag(&pairs, &["input", "stdin"]),
        stdout: flag(&pairs, &["output", "stdout"]),
        // A terminal has no separate stderr (the kubelet drops it with tty).
        stderr: flag(&pairs, &["error", "stderr"]) && !tty,
        tty,
    };
    if !streams.stdin && !streams.stdout && !streams.stderr {
        return text(
            StatusCode::BAD_REQUEST,
            "you must specify at least 1 of stdin, stdout, stderr",
        );
    }
    let command: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if is_exec && command.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "you must specify at least 1 command",
        );
    }
    let mut r = Response::new(Full::new(Bytes::new()).boxed_unsync());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    let proto = match &upgrade {
        Upgrade::Websocket { key, offered } => {
            let proto = match Protocol::negotiate(offered) {
                Ok(p) => p,
                Err(e) => return text(StatusCode::BAD_REQUEST, e),
            };
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
                h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
            }
            if !offered.is_empty() {
                h.insert(
                    header::SEC_WEBSOCKET_PROTOCOL,
                    HeaderValue::from_static(proto.name()),
                );
            }
            proto
        }
        Upgrade::Spdy => {
            let offered: Vec<String> = req
                .headers()
                .get_all(STREAM_PROTOCOL_VERSION)
                .iter()
                .filter_map(|v| v.to_str().ok().map(String::from))
                .collect();
            let proto = match spdy::negotiate(&offered) {
                Ok(p) => p,
                Err(refusal) => {
                    let code =
                        StatusCode::from_u16(refusal.code).unwrap_or(StatusCode::BAD_REQUEST);
                    let mut e = text(code, refusal.message);
                    if refusal.code == 403 {
                        for p in Protocol::SPDY {
                            e.headers_mut().append(
                                "x-accepted-stream-protocol-versions",
                                HeaderValue::from_static(p.name()),
                            );
                        }
                    }
                    return e;
                }
            };
            h.insert(header::UPGRADE, HeaderValue::from_static(UPGRADE));
            h.insert(
                STREAM_PROTOCOL_VERSION,
                HeaderValue::from_static(proto.name()),
            );
            proto
        }
    };
    let found = target(ctx, ns, pod, container);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let job = if is_exec {
        Job::Exec {
            command,
            table: ctx.processes.clone(),
        }
    } else {
        Job::Attach
    };
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let io = TokioIo::new(upgraded);
        match upgrade {
            Upgrade::Websocket { .. } => {
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
                let (t, input) = ws::accept(ws, proto, streams).await;
                run(t, input, streams, job, found).await;
            }
            Upgrade::Spdy => match spdy::accept(io, proto, streams).await {
                Ok((t, input)) => run(t, input, streams, job, found).await,
                Err(e) => tracing::debug!("kubelet spdy session: {e}"),
            },
        }
    });
    r
}
