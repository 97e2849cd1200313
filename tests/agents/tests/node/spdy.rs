//! SPDY/3.1 straight to the kubelet (as an API server passes it through): version negotiation and its
//! refusals, the older versions' plain-text error stream, and the v4 status JSON, driven by the test
//! cluster's SPDY client over the kubelet's TLS port; and the API server's stream translator, which
//! turns a websocket v5 exec into SPDY towards the kubelet.

use hyper_util::rt::TokioIo;
use kentledge_testcluster::spdy::{Connection, Role, Stream};
use serde_json::json;

use crate::kubelet_tls::{api_server, connect};
use crate::{NS, env, env_with, pod_with};

/// Send an SPDY upgrade for `path` offering `versions`: the kubelet's status, its headers, and the
/// upgraded connection when it switched.
async fn upgrade(
    addr: std::net::SocketAddr,
    path: &str,
    versions: &[&str],
) -> (
    u16,
    http::HeaderMap,
    Option<hyper::upgrade::Upgraded>,
    String,
) {
    let tls = connect(addr, api_server()).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake::<
        _,
        http_body_util::Empty<bytes::Bytes>,
    >(TokioIo::new(tls))
    .await
    .unwrap();
    tokio::spawn(conn.with_upgrades());
    let mut req = http::Request::post(path)
        .header("host", addr.to_string())
        .header("connection", "Upgrade")
        .header("upgrade", "SPDY/3.1");
    for v in versions {
        req = req.header("x-stream-protocol-version", *v);
    }
    let mut resp = send
        .send_request(req.body(http_body_util::Empty::new()).unwrap())
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let headers = resp.headers().clone();
    if code == 101 {
        let up = hyper::upgrade::on(&mut resp).await.unwrap();
        return (code, headers, Some(up), String::new());
    }
    use http_body_util::BodyExt;
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        code,
        headers,
        None,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn kind(t: &str) -> Vec<(String, String)> {
    vec![("streamtype".to_string(), t.to_string())]
}

/// Run `sh -c script` with stdout over SPDY `version`: (stdout, error stream text).
async fn run(addr: std::net::SocketAddr, version: &str, script: &str) -> (String, String) {
    let path = format!(
        "/exec/{NS}/shell/c?command=sh&command=-c&command={}&output=1",
        form_urlencoded::byte_serialize(script.as_bytes()).collect::<String>()
    );
    let (code, headers, up, body) = upgrade(addr, &path, &[version]).await;
    assert_eq!(code, 101, "{body}");
    assert_eq!(headers["x-stream-protocol-version"], version);
    assert_eq!(headers["upgrade"], "SPDY/3.1");
    let (conn, _) = Connection::start(TokioIo::new(up.unwrap()), Role::Client).unwrap();
    // client-go's order: error first, then the data streams.
    let mut error: Stream = conn.open(kind("error")).await.unwrap();
    let mut stdout = conn.open(kind("stdout")).await.unwrap();
    let out = stdout.read_to_end().await;
    let err = error.read_to_end().await;
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[tokio::test]
async fn the_kubelet_negotiates_spdy_versions_and_reports_status_per_version() {
    let e = env().await;
    e.create(pod_with("shell", "sleep 1000", json!({}))).await;
    e.wait_phase("shell", "Running", 20).await;
    let addr = e.node.kubelet_addr();
    let path = format!("/exec/{NS}/shell/c?command=true&output=1");

    // No version offered, or none in common: refused before the upgrade (httpstream.Handshake).
    let (code, _, _, body) = upgrade(addr, &path, &[]).await;
    assert_eq!(
        (code, body.as_str()),
        (
            400,
            "unable to upgrade: X-Stream-Protocol-Version is required"
        )
    );
    let (code, headers, _, body) = upgrade(addr, &path, &["v5.channel.k8s.io"]).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body,
        "unable to upgrade: unable to negotiate protocol: client supports [v5.channel.k8s.io], server accepts [v4.channel.k8s.io v3.channel.k8s.io v2.channel.k8s.io channel.k8s.io]"
    );
    let accepted: Vec<&str> = headers
        .get_all("x-accepted-stream-protocol-versions")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        accepted,
        [
            "v4.channel.k8s.io",
            "v3.channel.k8s.io",
            "v2.channel.k8s.io",
            "channel.k8s.io"
        ]
    );

    // v4: the status JSON on the error stream, success included.
    let (out, status) = run(addr, "v4.channel.k8s.io", "echo hi").await;
    assert_eq!(out, "hi\n");
    assert_eq!(status, r#"{"metadata":{},"status":"Success"}"#);
    let (_, status) = run(addr, "v4.channel.k8s.io", "exit 3").await;
    assert_eq!(
        status,
        r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
    );
    // v3 and v2: nothing on success, the plain message otherwise.
    for v in ["v3.channel.k8s.io", "v2.channel.k8s.io"] {
        let (out, status) = run(addr, v, "echo hi").await;
        assert_eq!((out.as_str(), status.as_str()), ("hi\n", ""), "{v}");
        let (_, status) = run(addr, v, "exit 3").await;
        assert_eq!(
            status,
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
            "{v}"
        );
    }
}

/// kube-rs offers websocket v5: the test API server translates it into SPDY towards the kubelet (its
/// status then reads as kube-apiserver 1.30+ rewords it); with the translator off the kubelet's own
/// websocket answer comes through.
#[tokio::test]
async fn websocket_v5_exec_reaches_the_kubelet_as_spdy_through_the_translator() {
    use kentledge_testcluster::ServerOptions;
    use kube::api::AttachParams;
    use tokio::io::AsyncReadExt;
    for (translate, message) in [
        (
            true,
            "command terminated with non-zero exit code: command terminated with exit code 3",
        ),
        (
            false,
            "command terminated with non-zero exit code: error executing command [sh -c echo out; echo err >&2; exit 3], exit code 3",
        ),
    ] {
        let e = env_with(ServerOptions::default().stream_translator(translate)).await;
        e.create(pod_with("shell", "sleep 1000", json!({}))).await;
        e.wait_phase("shell", "Running", 20).await;
        let mut p = e
            .pods
            .exec(
                "shell",
                ["sh", "-c", "echo out; echo err >&2; exit 3"],
                &AttachParams::default().stdout(true).stderr(true),
            )
            .await
            .unwrap();
        let (mut out, mut err) = (String::new(), String::new());
        p.stdout().unwrap().read_to_string(&mut out).await.unwrap();
        p.stderr().unwrap().read_to_string(&mut err).await.unwrap();
        let st = p.take_status().unwrap().await.unwrap();
        assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
        assert_eq!(
            st.message.as_deref(),
            Some(message),
            "translate={translate}"
        );
        assert_eq!(st.reason.as_deref(), Some("NonZeroExitCode"));
    }
}
