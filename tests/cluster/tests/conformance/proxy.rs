//! Logs and exec: the answers with no node, and the proxy to a (fake, in-test) kubelet with frames, stdin
//! close and exit status passing through.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, LogParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::support::*;

#[tokio::test]
async fn log_and_exec_without_a_node() {
    let s = server().await;
    raw(&s, "POST", PODS, Some(pod("pod-a"))).await;
    let (code, ct, body) = raw_full(
        &s,
        "GET",
        &format!("{PODS}/pod-a/log?follow=true"),
        Some(s.admin_token()),
        "",
        String::new(),
    )
    .await;
    assert_eq!((code, ct.as_str(), body.as_str()), (204, "", ""));
    let (code, v) = raw(
        &s,
        "POST",
        &format!("{PODS}/pod-a/exec?command=ls&stdout=true"),
        None,
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        v,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pod pod-a does not have a host assigned","reason":"BadRequest","code":400})
    );
    let (_, v) = raw(&s, "GET", &format!("{PODS}/pod-a/log?container=nope"), None).await;
    assert_eq!(v["message"], "container nope is not valid for pod pod-a");
    let mut ghost = pod("pod-g");
    ghost["spec"]["nodeName"] = json!("ghost-node");
    raw(&s, "POST", PODS, Some(ghost)).await;
    let (code, v) = raw(&s, "GET", &format!("{PODS}/pod-g/log"), None).await;
    assert_eq!(
        (code, v["message"].as_str()),
        (404, Some("pods \"ghost-node\" not found"))
    );
}

#[tokio::test]
async fn closed_kubelet_port_fails_like_the_real_proxy() {
    let s = server().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    node_and_pod(&s, port).await;
    let (code, v) = raw(&s, "GET", &format!("{PODS}/pod-n/log"), None).await;
    assert_eq!(code, 500);
    assert_eq!(
        v["message"],
        format!(
            "Get \"http://127.0.0.1:{port}/containerLogs/ref/pod-n/c\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        )
    );
    assert!(v.get("reason").is_none());
    let (code, v) = raw(
        &s,
        "POST",
        &format!("{PODS}/pod-n/exec?command=ls&stdout=true"),
        None,
    )
    .await;
    assert_eq!(
        (code, v["message"].as_str()),
        (400, Some("Upgrade request required"))
    );
    // kube-rs offers v5: the upgrade is accepted and the failure comes on channel 3.
    let pods: Api<Pod> = Api::namespaced(admin(&s).await, "ref");
    let mut proc = pods
        .exec(
            "pod-n",
            ["ls"],
            &AttachParams::default().stdout(true).stderr(false),
        )
        .await
        .unwrap();
    let status = proc.take_status().unwrap().await.unwrap();
    assert_eq!(status.reason.as_deref(), Some("InternalError"));
    assert!(
        status
            .message
            .unwrap()
            .contains("connect: connection refused")
    );
}

async fn node_and_pod(s: &kentledge_testcluster::ServerHandle, port: u16) {
    let node = json!({"metadata": {"name": "node-a"}, "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}, "conditions": [{"type": "Ready", "status": "True"}]}});
    assert_eq!(raw(s, "POST", "/api/v1/nodes", Some(node)).await.0, 201);
    let mut p = pod("pod-n");
    p["spec"]["nodeName"] = json!("node-a");
    assert_eq!(raw(s, "POST", PODS, Some(p)).await.0, 201);
}

type Seen = Arc<Mutex<Vec<String>>>;

/// A fake kubelet: logs answer two lines; exec echoes stdin (after the v5 close signal) and exits 3.
async fn fake_kubelet(seen: Seen) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |mut req: Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        seen.lock().unwrap().push(req.uri().to_string());
                        if req.headers().contains_key("upgrade") {
                            let key = req.headers()["sec-websocket-key"]
                                .to_str()
                                .unwrap()
                                .to_string();
                            let offered = req.headers()["sec-websocket-protocol"]
                                .to_str()
                                .unwrap()
                                .to_string();
                            assert!(offered.contains("v5.channel.k8s.io"), "{offered}");
                            let up = hyper::upgrade::on(&mut req);
                            tokio::spawn(async move {
                                let io = TokioIo::new(up.await.unwrap());
                                let mut ws =
                                    WebSocketStream::from_raw_socket(io, Role::Server, None).await;
                                ws.send(Message::binary(vec![1u8])).await.unwrap();
                                let mut input = Vec::new();
                                while let Some(Ok(m)) = ws.next().await {
                                    let d = m.into_data();
                                    match d.first() {
                                        Some(0) => input.extend_from_slice(&d[1..]),
                                        Some(255) if d.len() == 2 && d[1] == 0 => break,
                                        _ => {}
                                    }
                                }
                                let mut out = vec![1u8];
                                out.extend_from_slice(b"got: ");
                                out.extend_from_slice(&input);
                                ws.send(Message::binary(out)).await.unwrap();
                                ws.send(Message::binary(b"\x02warn".to_vec()))
                                    .await
                                    .unwrap();
                                let st = json!({"metadata": {}, "status": "Failure", "message": "command terminated with non-zero exit code: command terminated with exit code 3",
                                                "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}});
                                let mut frame = vec![3u8];
                                frame.extend(serde_json::to_vec(&st).unwrap());
                                ws.send(Message::binary(frame)).await.unwrap();
                                let _ = ws.close(None).await;
                            });
                            let resp = Response::builder()
                                .status(101)
                                .header("connection", "Upgrade")
                                .header("upgrade", "websocket")
                                .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
                                .header("sec-websocket-protocol", "v5.channel.k8s.io")
                                .body(Full::new(Bytes::new()))
                                .unwrap();
                            Ok::<_, std::convert::Infallible>(resp)
                        } else {
                            Ok(Response::builder()
                                .header("content-type", "text/plain")
                                .body(Full::new(Bytes::from("line1\nline2\n")))
                                .unwrap())
                        }
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    port
}

#[tokio::test]
async fn logs_and_exec_are_proxied_to_the_kubelet() {
    let s = server().await;
    let seen: Seen = Arc::default();
    let port = fake_kubelet(seen.clone()).await;
    node_and_pod(&s, port).await;
    let pods: Api<Pod> = Api::namespaced(admin(&s).await, "ref");
    let logs = pods
        .logs(
            "pod-n",
            &LogParams {
                tail_lines: Some(5),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(logs, "line1\nline2\n");
    let mut proc = pods
        .exec(
            "pod-n",
            ["sh", "-c", "cat; exit 3"],
            &AttachParams::default()
                .stdin(true)
                .stdout(true)
                .stderr(true),
        )
        .await
        .unwrap();
    let mut stdin = proc.stdin().unwrap();
    stdin.write_all(b"hello").await.unwrap();
    stdin.shutdown().await.unwrap();
    drop(stdin);
    let mut out = String::new();
    proc.stdout()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    let mut err = String::new();
    proc.stderr()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    let status = proc.take_status().unwrap().await.unwrap();
    proc.join().await.unwrap();
    assert_eq!(out, "got: hello");
    assert_eq!(err, "warn");
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    assert_eq!(
        status.details.unwrap().causes.unwrap()[0]
            .message
            .as_deref(),
        Some("3")
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0], "/containerLogs/ref/pod-n/c?tailLines=5");
    assert_eq!(
        seen[1],
        "/exec/ref/pod-n/c?command=sh&command=-c&command=cat%3B+exit+3&input=1&output=1&error=1"
    );
}
