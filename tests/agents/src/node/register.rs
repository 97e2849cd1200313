//! Node registration and heartbeat: the Node object (addresses, kubelet port, capacity, node info,
//! labels), its Ready condition renewed periodically, and the node Lease in `kube-node-lease`.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node as NodeObject;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::NodeOptions;
use super::time::{api_time, micro_time, now};

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn memory_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(4 * 1024 * 1024)
}

/// The node's conditions, all healthy, stamped `at`.
pub fn conditions(heartbeat: &str, since: &str, ready: bool) -> Value {
    let c = |t: &str, status: &str, reason: &str, message: &str| json!({"type": t, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": heartbeat, "lastTransitionTime": since});
    json!([
        c(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        c(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        c(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        if ready {
            c(
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
            )
        } else {
            c(
                "Ready",
                "Unknown",
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.",
            )
        },
    ])
}

/// The Node's status.
pub fn node_status(name: &str, port: u16, heartbeat: &str, since: &str) -> Value {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let capacity = json!({"cpu": cpus.to_string(), "memory": format!("{}Ki", memory_kib()), "pods": "110", "ephemeral-storage": "100Gi"});
    json!({
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": conditions(heartbeat, since, true),
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": kernel_release(), "osImage": "kentledge local node",
            "containerRuntimeVersion": "kentledge-local://0.1.0",
            "kubeletVersion": "v1.33.0", "kubeProxyVersion": "",
            "operatingSystem": "linux", "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        },
    })
}

/// The Node object (metadata and spec).
pub fn node_object(opts: &NodeOptions) -> Value {
    let mut labels = json!({
        "kubernetes.io/hostname": opts.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "beta.kubernetes.io/os": "linux",
    });
    for (k, v) in &opts.labels {
        labels[k] = json!(v);
    }
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": opts.name, "labels": labels}, "spec": {}})
}

/// Create (or adopt) the Node and publish its status.
pub async fn register(
    client: &kube::Client,
    opts: &NodeOptions,
    port: u16,
) -> Result<(), kube::Error> {
    let api: Api<NodeObject> = Api::all(client.clone());
    let t = api_time(now());
    let mut obj = node_object(opts);
    obj["status"] = node_status(&opts.name, port, &t, &t);
    let node: NodeObject = serde_json::from_value(obj.clone()).map_err(kube::Error::SerdeError)?;
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = json!({"metadata": {"labels": obj["metadata"]["labels"]}, "spec": {"unschedulable": null}});
            api.patch(&opts.name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
        }
        Err(e) => return Err(e),
    }
    api.patch_status(
        &opts.name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": obj["status"]})),
    )
    .await?;
    Ok(())
}

/// Renew the Ready condition and the node Lease every `opts.heartbeat`, until aborted.
pub async fn heartbeat(client: kube::Client, opts: NodeOptions, port: u16) {
    let nodes: Api<NodeObject> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let since = api_time(now());
    loop {
        let t = now();
        renew_lease(&leases, &opts, t).await;
        let st = json!({"status": {"conditions": conditions(&api_time(t), &since, true), "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}});
        if let Err(e) = nodes
            .patch_status(&opts.name, &PatchParams::default(), &Patch::Merge(st))
            .await
        {
            tracing::warn!("node {} heartbeat: {e}", opts.name);
        }
        tokio::time::sleep(opts.heartbeat.max(Duration::from_millis(100))).await;
    }
}

async fn renew_lease(leases: &Api<Lease>, opts: &NodeOptions, t: jiff::Timestamp) {
    let spec = json!({"holderIdentity": opts.name, "leaseDurationSeconds": 40, "renewTime": micro_time(t)});
    let patch = json!({"spec": spec});
    match leases
        .patch(&opts.name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {
            let lease = json!({"metadata": {"name": opts.name, "namespace": "kube-node-lease"}, "spec": spec});
            if let Ok(lease) = serde_json::from_value::<Lease>(lease)
                && let Err(e) = leases.create(&PostParams::default(), &lease).await
            {
                tracing::debug!("node lease {}: {e}", opts.name);
            }
        }
        Err(e) => tracing::debug!("node lease {}: {e}", opts.name),
    }
}

/// Mark the node's Ready condition Unknown (a kubelet that stopped).
pub async fn mark_not_ready(client: &kube::Client, name: &str) -> Result<(), kube::Error> {
    let api: Api<NodeObject> = Api::all(client.clone());
    let t = api_time(now());
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": conditions(&t, &t, false)}})),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_shape() {
        let opts = NodeOptions::new("node-1", "/tmp/x").label("disk", "ssd");
        let o = node_object(&opts);
        assert_eq!(o["metadata"]["labels"]["kubernetes.io/hostname"], "node-1");
        assert_eq!(o["metadata"]["labels"]["disk"], "ssd");
        let s = node_status(
            "node-1",
            4242,
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00Z",
        );
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 4242);
        assert_eq!(
            s["addresses"][0],
            json!({"type": "InternalIP", "address": "127.0.0.1"})
        );
        assert_eq!(s["conditions"][3]["type"], "Ready");
        assert_eq!(s["conditions"][3]["status"], "True");
        let _: NodeObject =
            serde_json::from_value(json!({"metadata": {"name": "n"}, "status": s})).unwrap();
    }
}
