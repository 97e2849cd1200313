//! The whole local cluster through kube-rs only: a pod writes data to a PVC; another prints it
//! (read via the log); exec with stdin in and exit code out; a snapshot of the PVC; a PVC
//! restored from the snapshot holds the same bytes.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use kentledge_nodeagents::local::{LocalCluster, LocalOptions};
use kentledge_nodeagents::storage::snapshot_resource;
use kube::api::{Api, AttachParams, LogParams, PostParams};
use kube::core::DynamicObject;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::eventually;

fn pod(name: &str, script: &str, claim: &str, restart: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"restartPolicy": restart, "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", script],
                 "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
                 "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]},
    }))
    .unwrap()
}

fn claim(name: &str, from_snapshot: Option<&str>) -> PersistentVolumeClaim {
    let mut spec =
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}});
    if let Some(s) = from_snapshot {
        spec["dataSource"] =
            json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": s});
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

async fn phase(pods: &Api<Pod>, name: &str, want: &str) {
    eventually(20, &format!("pod {name} {want}"), || async {
        let p = pods.get(name).await.ok()?;
        (p.status?.phase.as_deref() == Some(want)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_pods_exec_snapshot_restore_through_kube_rs() {
    let cluster = LocalCluster::start(LocalOptions::default()).await.unwrap();
    let client = cluster.client();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "smoke"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "smoke");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "smoke");
    claims
        .create(&PostParams::default(), &claim("data", None))
        .await
        .unwrap();

    pods.create(
        &PostParams::default(),
        &pod(
            "writer",
            "printf 'kentledge\\n' > /data/file && seq 1 1000 > /data/numbers",
            "data",
            "Never",
        ),
    )
    .await
    .unwrap();
    phase(&pods, "writer", "Succeeded").await;

    pods.create(
        &PostParams::default(),
        &pod("reader", "cat /data/file; exec sleep 600", "data", "Always"),
    )
    .await
    .unwrap();
    phase(&pods, "reader", "Running").await;
    let log = eventually(10, "the reader's log", || async {
        let l = pods.logs("reader", &LogParams::default()).await.ok()?;
        l.contains("kentledge").then_some(l)
    })
    .await;
    assert_eq!(log, "kentledge\n");

    // exec: stdin in, stdout out, exit code from the status channel
    let mut p = pods
        .exec(
            "reader",
            [
                "sh",
                "-c",
                "cat > /data/from-exec; wc -c < /data/from-exec; exit 3",
            ],
            &AttachParams::default()
                .stdin(true)
                .stdout(true)
                .stderr(false),
        )
        .await
        .unwrap();
    let mut stdin = p.stdin().unwrap();
    stdin.write_all(b"hello from stdin").await.unwrap();
    stdin.shutdown().await.unwrap(); // dropping the writer does not close the stream
    let mut out = String::new();
    p.stdout().unwrap().read_to_string(&mut out).await.unwrap();
    let status = p.take_status().unwrap().await.unwrap();
    assert_eq!(out.trim(), "16");
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    assert_eq!(
        status.details.unwrap().causes.unwrap()[0]
            .message
            .as_deref(),
        Some("3")
    );

    // snapshot, restore, and find the same bytes
    let snaps: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "smoke", &snapshot_resource());
    let vs: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": "snap"}, "spec": {"source": {"persistentVolumeClaimName": "data"}}}),
    )
    .unwrap();
    snaps.create(&PostParams::default(), &vs).await.unwrap();
    eventually(20, "the snapshot to be ready", || async {
        (snaps
            .get("snap")
            .await
            .ok()?
            .data
            .pointer("/status/readyToUse")
            == Some(&json!(true)))
        .then_some(())
    })
    .await;
    claims
        .create(&PostParams::default(), &claim("restored", Some("snap")))
        .await
        .unwrap();
    pods.create(
        &PostParams::default(),
        &pod(
            "checker",
            "cat /data/file /data/from-exec; md5sum < /data/numbers",
            "restored",
            "Never",
        ),
    )
    .await
    .unwrap();
    phase(&pods, "checker", "Succeeded").await;
    let restored = pods.logs("checker", &LogParams::default()).await.unwrap();
    let expected_md5 = {
        let numbers: String = (1..=1000).map(|i| format!("{i}\n")).collect();
        let out = std::process::Command::new("md5sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = out;
        use std::io::Write;
        out.stdin
            .take()
            .unwrap()
            .write_all(numbers.as_bytes())
            .unwrap();
        String::from_utf8(out.wait_with_output().unwrap().stdout).unwrap()
    };
    assert_eq!(
        restored,
        format!("kentledge\nhello from stdin{expected_md5}")
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_log_errors_reach_clients_as_a_status() {
    let cluster = LocalCluster::start(LocalOptions::default()).await.unwrap();
    let client = cluster.client();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "logs"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "logs");
    // The Secret does not exist, so the container waits in ContainerCreating.
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": "waiting"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["true"],
                 "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "k"}}}]}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    let status = eventually(20, "a Status from the kubelet", || async {
        match pods.logs("waiting", &LogParams::default()).await {
            Err(kube::Error::Api(s)) if s.code == 400 => Some(s),
            _ => None,
        }
    })
    .await;
    assert_eq!(status.reason, "BadRequest");
    assert!(
        status.message.contains("is waiting to start"),
        "{}",
        status.message
    );
}
