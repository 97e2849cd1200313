//! Logs and exec: the answers with no node, and the proxy to a (fake, in-test) kubelet over HTTPS, which
//! only serves the API server's kubelet client certificate, with frames, stdin close and exit status
//! passing through.

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
            "Get \"https://127.0.0.1:{port}/containerLogs/ref/pod-n/c\": dial tcp 127.0.0.1:{port}: connect: connection refused"
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
    assert_eq!(
        status.message.unwrap(),
        format!(
            "Internal error occurred: error sending request: Post \"https://127.0.0.1:{port}/exec/ref/pod-n/c?command=ls&output=1\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        )
    );
    // SPDY (and websocket without v5) get the proxy's plain 500.
    let (code, _, body) =
        spdy_upgrade(&s, &format!("{PODS}/pod-n/exec?command=ls&stdout=true")).await;
    assert_eq!(code, 500);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["message"],
        format!("error dialing backend: dial tcp 127.0.0.1:{port}: connect: connection refused")
    );
}

/// POST an SPDY upgrade request (as kubectl's SPDY executor does): (status, headers text, body).
async fn spdy_upgrade(
    s: &kentledge_testcluster::ServerHandle,
    path: &str,
) -> (u16, String, String) {
    let addr = s.http_url().trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nX-Stream-Protocol-Version: v3.channel.k8s.io\r\nContent-Length: 0\r\n\r\n",
        s.admin_token()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Read the head and, unless switching protocols, the body (Content-Length).
    loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_string();
            let code: u16 = head[9..12].parse().unwrap();
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if code == 101 || buf.len() >= end + 4 + len || n == 0 {
                return (code, head, text[end + 4..].to_string());
            }
        }
        if n == 0 {
            panic!("connection closed: {text}");
        }
    }
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

/// The fake kubelet's SPDY exec (what the API server's stream translator reaches): reads stdin to its
/// end, answers `got: <stdin>` on stdout and `warn` on stderr, and exit code 3 on the error stream.
async fn spdy_exec<IO>(io: IO)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    use kentledge_testcluster::spdy::{Connection, Role, header};
    let (conn, mut incoming) = Connection::start(io, Role::Server).unwrap();
    let mut streams = std::collections::HashMap::new();
    for _ in 0..4 {
        let st = incoming.recv().await.unwrap();
        let kind = header(&st.headers, "streamtype").unwrap().to_string();
        streams.insert(kind, st);
    }
    let input = streams.get_mut("stdin").unwrap().read_to_end().await;
    let out = &streams["stdout"].writer;
    out.write(&[b"got: ".as_slice(), &input].concat()).await;
    out.close();
    streams["stderr"].writer.write(b"warn").await;
    streams["stderr"].writer.close();
    let error = &streams["error"].writer;
    error.write(br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c cat; exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#).await;
    error.close();
    conn.close();
    conn.closed().await;
}

/// A kubelet's TLS: the test kubelet serving certificate, client certificates required from the test CA
/// (what a kubelet with `--client-ca-file` and anonymous auth off accepts).
fn kubelet_tls() -> tokio_rustls::TlsAcceptor {
    use kentledge_testcluster::tls::{CA_PEM, KUBELET_SERVING_CERT_PEM, KUBELET_SERVING_KEY_PEM};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(CA_PEM).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(KUBELET_SERVING_CERT_PEM).unwrap()],
            PrivateKeyDer::from_pem_slice(KUBELET_SERVING_KEY_PEM).unwrap(),
        )
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

/// A fake kubelet: logs answer two lines; exec echoes stdin (after the v5 close signal) and exits 3;
/// an SPDY upgrade is answered 101 and then echoes the raw bytes it gets, upper-cased.
async fn fake_kubelet(seen: Seen) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = kubelet_tls();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok(tcp) = tls.accept(tcp).await else {
                    seen.lock().unwrap().push("tls handshake failed".into());
                    return;
                };
                let svc = service_fn(move |mut req: Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        seen.lock().unwrap().push(req.uri().to_string());
                        let spdy = req
                            .headers()
                            .get("upgrade")
                            .is_some_and(|u| u == "SPDY/3.1");
                        if spdy {
                            let versions: Vec<String> = req
                                .headers()
                                .get_all("x-stream-protocol-version")
                                .iter()
                                .map(|v| v.to_str().unwrap().to_string())
                                .collect();
                            seen.lock().unwrap().push(format!(
                                "{} {}",
                                req.method(),
                                versions.join(",")
                            ));
                            let raw = req.uri().query().unwrap_or("").contains("command=raw");
                            let up = hyper::upgrade::on(&mut req);
                            tokio::spawn(async move {
                                let mut io = TokioIo::new(up.await.unwrap());
                                if !raw {
                                    return spdy_exec(io).await;
                                }
                                let mut buf = [0u8; 64];
                                loop {
                                    let n = io.read(&mut buf).await.unwrap_or(0);
                                    if n == 0 {
                                        break;
                                    }
                                    io.write_all(&buf[..n].to_ascii_uppercase()).await.unwrap();
                                }
                            });
                            return Ok(Response::builder()
                                .status(101)
                                .header("connection", "Upgrade")
                                .header("upgrade", "SPDY/3.1")
                                .header("x-stream-protocol-version", "v4.channel.k8s.io")
                                .body(Full::new(Bytes::new()))
                                .unwrap());
                        }
                        if req.headers().contains_key("upgrade") {
                            let key = req.headers()["sec-websocket-key"]
                                .to_str()
                                .unwrap()
                                .to_string();
                            let offered = req.headers()["sec-websocket-protocol"]
                                .to_str()
                                .unwrap()
                                .to_string();
                            let chosen = offered.split(',').next().unwrap().trim().to_string();
                            seen.lock().unwrap().push(format!("websocket {offered}"));
                            let v5 = chosen == "v5.channel.k8s.io";
                            let up = hyper::upgrade::on(&mut req);
                            tokio::spawn(async move {
                                let io = TokioIo::new(up.await.unwrap());
                                let mut ws =
                                    WebSocketStream::from_raw_socket(io, Role::Server, None).await;
                                ws.send(Message::binary(vec![1u8])).await.unwrap();
                                let mut input = Vec::new();
                                while v5 && let Some(Ok(m)) = ws.next().await {
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
                                .header("sec-websocket-protocol", chosen)
                                .body(Full::new(Bytes::new()))
                                .unwrap();
                            Ok(resp)
                        } else {
                            Ok::<_, std::convert::Infallible>(
                                Response::builder()
                                    .header("content-type", "text/plain")
                                    .body(Full::new(Bytes::from("line1\nline2\n")))
                                    .unwrap(),
                            )
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

/// Logs are proxied; a websocket v5 exec (kube-rs) is run by the API server's stream translator as SPDY
/// towards the kubelet, with the status reworded as kube-apiserver 1.30+ does.
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
        status.message.as_deref(),
        Some("command terminated with non-zero exit code: command terminated with exit code 3")
    );
    assert_eq!(
        status.details.unwrap().causes.unwrap()[0]
            .message
            .as_deref(),
        Some("3")
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0], "/containerLogs/ref/pod-n/c?tailLines=5");
    // Go's url.Values order: keys sorted, repeated values in order.
    assert_eq!(
        seen[1],
        "/exec/ref/pod-n/c?command=sh&command=-c&command=cat%3B+exit+3&error=1&input=1&output=1"
    );
    // client-go's SPDY executor offers v5 … v1.
    assert_eq!(
        seen[2],
        "POST v5.channel.k8s.io,v4.channel.k8s.io,v3.channel.k8s.io,v2.channel.k8s.io,channel.k8s.io"
    );
}

/// Websocket requests without v5 (and v5 with the translator off) go to the kubelet as websockets, frame
/// by frame, with the client's protocol list.
#[tokio::test]
async fn websocket_exec_without_v5_is_relayed_to_the_kubelet() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    for (opts, protocols) in [
        (
            kentledge_testcluster::ServerOptions::default(),
            "v4.channel.k8s.io",
        ),
        (
            kentledge_testcluster::ServerOptions::default().stream_translator(false),
            "v5.channel.k8s.io, v4.channel.k8s.io",
        ),
    ] {
        let s = server_with(opts).await;
        let seen: Seen = Arc::default();
        let port = fake_kubelet(seen.clone()).await;
        node_and_pod(&s, port).await;
        let url = format!(
            "{}{PODS}/pod-n/exec?command=cat&stdout=true&stderr=true",
            s.http_url().replacen("http://", "ws://", 1)
        );
        let mut req = url.into_client_request().unwrap();
        let h = req.headers_mut();
        h.insert("sec-websocket-protocol", protocols.parse().unwrap());
        h.insert(
            "authorization",
            format!("Bearer {}", s.admin_token()).parse().unwrap(),
        );
        let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        let chosen = protocols.split(',').next().unwrap();
        assert_eq!(resp.headers()["sec-websocket-protocol"], chosen);
        if chosen == "v5.channel.k8s.io" {
            ws.send(Message::binary(vec![255u8, 0])).await.unwrap();
        }
        let mut frames = Vec::new();
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Binary(b) = m {
                frames.push(b.to_vec());
            }
        }
        assert_eq!(frames[0], [1u8]);
        assert_eq!(frames[1], b"\x01got: ");
        assert_eq!(frames[2], b"\x02warn");
        assert_eq!(frames[3][0], 3);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen[1], format!("websocket {protocols}"));
    }
}

/// An SPDY upgrade goes through to the kubelet as kube-apiserver's UpgradeAwareHandler passes it: same
/// method, the client's protocol versions, the kubelet's 101 and headers back, then raw bytes both ways.
#[tokio::test]
async fn spdy_upgrades_pass_through_as_raw_bytes() {
    let s = server().await;
    let seen: Seen = Arc::default();
    let port = fake_kubelet(seen.clone()).await;
    node_and_pod(&s, port).await;
    let addr = s.http_url().trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!(
        "POST {PODS}/pod-n/exec?command=raw&stdin=true&stdout=true HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nX-Stream-Protocol-Version: v2.channel.k8s.io\r\nContent-Length: 0\r\n\r\n",
        s.admin_token()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(tcp.read(&mut b).await.unwrap(), 1);
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: spdy/3.1"), "{head}");
    assert!(
        head.contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{head}"
    );
    tcp.write_all(b"\x80\x03\x00\x01raw").await.unwrap();
    let mut back = [0u8; 7];
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_exact(&mut back),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(&back, b"\x80\x03\x00\x01RAW");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            "/exec/ref/pod-n/c?command=raw&input=1&output=1",
            "POST v4.channel.k8s.io,v2.channel.k8s.io"
        ]
    );
}

/// A kubelet that does not know the API server's client certificate fails the dial; the server says
/// why in Go's words.
#[tokio::test]
async fn kubelets_that_refuse_the_client_certificate_fail_the_dial() {
    let s = server_with(
        kentledge_testcluster::ServerOptions::default().kubelet_client_certificate(
            include_bytes!("../../certs/stranger.crt").as_slice(),
            include_bytes!("../../certs/stranger.key").as_slice(),
        ),
    )
    .await;
    let seen: Seen = Arc::default();
    let port = fake_kubelet(seen.clone()).await;
    node_and_pod(&s, port).await;
    let (code, v) = raw(&s, "GET", &format!("{PODS}/pod-n/log"), None).await;
    assert_eq!(code, 500);
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "Get \"https://127.0.0.1:{port}/containerLogs/ref/pod-n/c\": remote error: tls: "
        )),
        "{msg}"
    );
    eventually("the kubelet saw the handshake fail", || {
        let seen = seen.clone();
        async move {
            seen.lock()
                .unwrap()
                .iter()
                .any(|l| l == "tls handshake failed")
        }
    })
    .await;
}
