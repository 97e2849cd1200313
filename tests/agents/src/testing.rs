//! Helpers shared by [`crate::local`] and the agents' tests: an admin client for a test API
//! server, a started server with a namespace, and polling until a condition holds.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kentledge_testcluster::{ApiServer, ServerHandle, ServerOptions};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// A kube client authenticated as the server's admin (`system:masters`).
pub async fn admin_client(server: &ServerHandle) -> Result<kube::Client, String> {
    let kc = Kubeconfig::from_yaml(&server.admin_kubeconfig()).map_err(|e| e.to_string())?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    kube::Client::try_from(cfg).map_err(|e| e.to_string())
}

/// A test API server started with `opts`, an admin client for it, and the namespace `ns` created;
/// panics if any of it fails (for tests).
pub async fn server_with_namespace(opts: ServerOptions, ns: &str) -> (ServerHandle, kube::Client) {
    let server = ApiServer::start(opts).await.expect("server");
    let client = admin_client(&server).await.expect("admin client");
    let namespace = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(ns.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace created");
    (server, client)
}

/// Polls `f` until it returns `Some`, for at most `secs` seconds; panics naming `what`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
