//! The ServiceAccount token volume end to end: the API server's admission adds the projected
//! `kube-api-access-xxxxx` volume, the node's kubelet fills it (TokenRequest bound to the pod, the
//! `kube-root-ca.crt` CA, the namespace), and the token authenticates as the pod's account; a pod
//! with `automountServiceAccountToken: false` (kentledge's movers) gets no volume and still runs.

use k8s_openapi::api::core::v1::Pod;
use kentledge_nodeagents::node::{Node, NodeOptions};
use kentledge_testcluster::ServerOptions;
use kentledge_testcluster::tls::CA_PEM;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

use crate::eventually;

const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn phase(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

async fn finished(pods: &Api<Pod>, name: &str) -> Pod {
    eventually(30, &format!("pod {name} to finish"), || async {
        let p = pods.get(name).await.ok()?;
        matches!(phase(&p).as_str(), "Succeeded" | "Failed").then_some(p)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubelet_serves_the_projected_token_and_pods_without_one_still_run() {
    let (server, client) =
        kentledge_nodeagents::testing::server_with_namespace(ServerOptions::default(), "app").await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let _node = Node::start(
        client.clone(),
        NodeOptions::new("node-1", dir.path().join("node"))
            .client_ca(CA_PEM)
            .api_server_url(server.url()),
    )
    .await
    .expect("node starts");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "app");
    let reader: Pod = serde_json::from_value(json!({
        "metadata": {"name": "reader"},
        "spec": {"restartPolicy": "Never",
                 "volumes": [{"name": "out", "hostPath": {"path": out.display().to_string()}}],
                 "containers": [{"name": "c", "image": "busybox",
                     "command": ["sh", "-c", format!("cp {MOUNT}/token {MOUNT}/ca.crt {MOUNT}/namespace /out/; \
                         echo \"$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT\" > /out/addr; \
                         env -u HOME KUBECONFIG=/nonexistent kubectl auth can-i list pods > /out/can-i 2>&1; true")],
                     "volumeMounts": [{"name": "out", "mountPath": "/out"}]}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &reader).await.unwrap();
    let mut quiet: Value = json!({
        "metadata": {"name": "quiet"},
        "spec": {"restartPolicy": "Never", "automountServiceAccountToken": false,
                 "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]},
    });
    let created = pods
        .create(
            &PostParams::default(),
            &serde_json::from_value(quiet.take()).unwrap(),
        )
        .await
        .unwrap();
    assert!(
        created.spec.as_ref().unwrap().volumes.is_none(),
        "no token volume"
    );

    let p = finished(&pods, "reader").await;
    assert_eq!(phase(&p), "Succeeded", "{:?}", p.status);
    // The kubelet tells containers where the API server is, so in-cluster clients work.
    let addr = std::fs::read_to_string(out.join("addr")).unwrap();
    assert!(
        server.url().ends_with(addr.trim()),
        "{addr} vs {}",
        server.url()
    );
    // kubectl (installed by scripts/install-test-deps.sh) in the pod, with its in-cluster config.
    let can_i = std::fs::read_to_string(out.join("can-i")).unwrap();
    assert_eq!(
        can_i.trim(),
        "no",
        "kubectl in the pod, in-cluster config: {can_i}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("namespace")).unwrap(),
        "app"
    );
    assert_eq!(std::fs::read(out.join("ca.crt")).unwrap(), CA_PEM);
    let token = std::fs::read_to_string(out.join("token")).unwrap();
    let claims: Value = {
        // base64url without padding → standard base64, decoded by ByteString's serde.
        let payload = token.split('.').nth(1).expect("a JWT");
        let mut std_b64 = payload.replace('-', "+").replace('_', "/");
        while !std_b64.len().is_multiple_of(4) {
            std_b64.push('=');
        }
        let bytes: k8s_openapi::ByteString = serde_json::from_value(json!(std_b64)).unwrap();
        serde_json::from_slice(&bytes.0).unwrap()
    };
    assert_eq!(claims["sub"], "system:serviceaccount:app:default");
    assert_eq!(claims["kubernetes.io"]["pod"]["name"], "reader");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3607
    );
    // The token authenticates as the pod's account (which has no rights).
    let kc = Kubeconfig::from_yaml(&server.kubeconfig_for_token(&token, "app")).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    let as_pod: Api<Pod> = Api::namespaced(kube::Client::try_from(cfg).unwrap(), "app");
    let err = as_pod.list(&Default::default()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("User \"system:serviceaccount:app:default\" cannot list resource \"pods\""),
        "{err}"
    );
    let p = finished(&pods, "quiet").await;
    assert_eq!(phase(&p), "Succeeded", "{:?}", p.status);
}
