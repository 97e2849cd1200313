//! The kubelet HTTP server (plain HTTP on 127.0.0.1), the contract the API server proxies to:
//! `GET /containerLogs/{ns}/{pod}/{container}` (streamed with `follow`), websocket `/exec/...` and
//! `/attach/...`, and `/healthz`. Errors are plain text with the kubelet's status codes and words.

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
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::Ctx;
use super::exec::{self, Protocol, Streams};
use super::logs::{self, LogQuery};
use super::runtime::{PodKey, Running};
use super::time::now;

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn text(code: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(msg.into())).boxed_unsync());
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Accept connections until aborted.
pub async fn serve(listener: TcpListener, ctx: Arc<Ctx>) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        while conns.try_join_next().is_some() {}
        let ctx = ctx.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(route(ctx, req).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
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
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
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

fn stream(
    ctx: &Arc<Ctx>,
    ns: &str,
    pod: &str,
    container: &str,
    mut req: Request<Incoming>,
    is_exec: bool,
) -> Response<Body> {
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let (true, Some(key)) = (upgrade, key) else {
        return text(StatusCode::BAD_REQUEST, "Upgrade request required");
    };
    let offered: Vec<String> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    let proto = match Protocol::negotiate(&offered) {
        Ok(p) => p,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let pairs = query_pairs(&req);
    let streams = Streams {
        stdin: flag(&pairs, &["input", "stdin"]),
        stdout: flag(&pairs, &["output", "stdout"]),
        stderr: flag(&pairs, &["error", "stderr"]),
        tty: flag(&pairs, &["tty"]),
    };
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
    let found = target(ctx, ns, pod, container);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let table = ctx.processes.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        if is_exec {
            exec::exec_session(ws, proto, streams, command, found, table).await;
        } else {
            exec::attach_session(ws, proto, streams, found).await;
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()).boxed_unsync());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
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
    r
}
