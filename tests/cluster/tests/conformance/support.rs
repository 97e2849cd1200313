//! Helpers: start a server, kube-rs clients for any token, raw HTTP for exact wire shapes.

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kentledge_testcluster::{ApiServer, ServerHandle, ServerOptions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

/// A started server with users `alice` and `bob` (group `testers`) and namespace `ref`.
pub async fn server() -> ServerHandle {
    server_with(ServerOptions::default()).await
}

pub async fn server_with(opts: ServerOptions) -> ServerHandle {
    let s = ApiServer::start(opts.user("alice-token", "alice", &["testers"]).user(
        "bob-token",
        "bob",
        &["testers"],
    ))
    .await
    .expect("server starts");
    let (code, body) = raw(
        &s,
        "POST",
        "/api/v1/namespaces",
        Some(json!({"metadata": {"name": "ref"}})),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    // Let the ServiceAccount controller's write land before tests count resourceVersions.
    for _ in 0..200 {
        if raw(
            &s,
            "GET",
            "/api/v1/namespaces/ref/serviceaccounts/default",
            None,
        )
        .await
        .0 == 200
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    s
}

/// A kube-rs client for the admin (through TLS and the kubeconfig, like kentledge).
pub async fn admin(s: &ServerHandle) -> kube::Client {
    client_for(s, s.admin_token()).await
}

pub async fn client_for(s: &ServerHandle, token: &str) -> kube::Client {
    let kc = Kubeconfig::from_yaml(&s.kubeconfig_for_token(token, "ref")).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    kube::Client::try_from(cfg).expect("client")
}

/// Raw request as the admin over plain HTTP: (status, JSON body or Null).
pub async fn raw(s: &ServerHandle, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let ct = if method == "PATCH" {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let (code, _, text) = raw_full(
        s,
        method,
        path,
        Some(s.admin_token()),
        ct,
        body.map(|b| b.to_string()).unwrap_or_default(),
    )
    .await;
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Raw request with everything chosen: (status, content-type, body text).
pub async fn raw_full(
    s: &ServerHandle,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: String,
) -> (u16, String, String) {
    raw_with_headers(s, method, path, token, content_type, &[], body).await
}

/// Raw JSON request with extra headers (repeat a name to send it several times): (status, JSON body).
pub async fn raw_headers(
    s: &ServerHandle,
    token: Option<&str>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let (code, _, text) = raw_with_headers(
        s,
        method,
        path,
        token,
        "application/json",
        headers,
        body.map(|b| b.to_string()).unwrap_or_default(),
    )
    .await;
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn raw_with_headers(
    s: &ServerHandle,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    headers: &[(&str, &str)],
    body: String,
) -> (u16, String, String) {
    let addr = s.http_url().trim_start_matches("http://").to_string();
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", &addr)
        .header("content-type", content_type);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send
        .send_request(req.body(Full::new(Bytes::from(body))).expect("request"))
        .await
        .expect("response");
    let code = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (code, ct, String::from_utf8_lossy(&bytes).into_owned())
}

pub async fn raw_as(
    s: &ServerHandle,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    raw_headers(s, token, method, path, &[], body).await
}

pub fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

pub fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

pub fn snapshot(name: &str) -> Value {
    json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "metadata": {"name": name},
           "spec": {"source": {"persistentVolumeClaimName": "data"}}})
}

pub const PODS: &str = "/api/v1/namespaces/ref/pods";
pub const CMS: &str = "/api/v1/namespaces/ref/configmaps";
pub const SNAPS: &str = "/apis/snapshot.storage.k8s.io/v1/namespaces/ref/volumesnapshots";

/// Poll until `f` is true (bounded).
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}
