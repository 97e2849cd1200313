//! Node registration and heartbeat: the Node object (addresses, kubelet port, capacity, node info
//! with the API server's version as `kubeletVersion`, labels), its Ready condition renewed
//! periodically, and the node Lease in `kube-node-lease`, owned by the Node as a real kubelet's is.

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

/// Where the Node says its kubelet is: the InternalIP address and the kubelet port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// `status.addresses[type=InternalIP]`.
    pub ip: std::net::IpAddr,
    /// `status.daemonEndpoints.kubeletEndpoint.Port`.
    pub port: u16,
}

/// The Node's status; `version` is what `nodeInfo.kubeletVersion` reports.
pub fn node_status(name: &str, ep: Endpoint, version: &str, heartbeat: &str, since: &str) -> Value {
    let port = ep.port;
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let capacity = json!({"cpu": cpus.to_string(), "memory": format!("{}Ki", memory_kib()), "pods": "110", "ephemeral-storage": "100Gi"});
    json!({
        "addresses": [{"type": "InternalIP", "address": ep.ip.to_string()}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": conditions(heartbeat, since, true),
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": kernel_release(), "osImage": "kentledge local node",
            "containerRuntimeVersion": "kentledge-local://0.1.0",
            "kubeletVersion": version, "kubeProxyVersion": "",
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

/// The version a kubelet of this API server would report: the server's `GET /version`
/// `gitVersion` (a kubelet matches its control plane), or the API version these agents were
/// built against when the server does not say.
pub async fn server_version(client: &kube::Client) -> String {
    match client.apiserver_version().await {
        Ok(v) => v.git_version,
        Err(e) => {
            tracing::warn!("reading the API server's version: {e}; reporting v1.33.0");
            "v1.33.0".into()
        }
    }
}

/// Create (or adopt) the Node and publish its status; returns the Node's uid (the Lease's owner).
pub async fn register(
    client: &kube::Client,
    opts: &NodeOptions,
    ep: Endpoint,
) -> Result<String, kube::Error> {
    let api: Api<NodeObject> = Api::all(client.clone());
    let t = api_time(now());
    let version = server_version(client).await;
    let mut obj = node_object(opts);
    obj["status"] = node_status(&opts.name, ep, &version, &t, &t);
    let node: NodeObject = serde_json::from_value(obj.clone()).map_err(kube::Error::SerdeError)?;
    let registered = match api.create(&PostParams::default(), &node).await {
        Ok(n) => n,
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = json!({"metadata": {"labels": obj["metadata"]["labels"]}, "spec": {"unschedulable": null}});
            api.patch(&opts.name, &PatchParams::default(), &Patch::Merge(patch))
                .await?
        }
        Err(e) => return Err(e),
    };
    api.patch_status(
        &opts.name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": obj["status"]})),
    )
    .await?;
    Ok(registered.metadata.uid.unwrap_or_default())
}

/// Renew the Ready condition and the node Lease every `opts.heartbeat`, until aborted. The Lease
/// is owned by the Node (`uid`), so deleting the Node removes it.
pub async fn heartbeat(client: kube::Client, opts: NodeOptions, port: u16, uid: String) {
    let nodes: Api<NodeObject> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let since = api_time(now());
    loop {
        let t = now();
        renew_lease(&leases, &opts, &uid, t).await;
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

/// The Lease's owner reference to its Node, as the kubelet's lease controller sets it.
pub fn lease_owner(node: &str, uid: &str) -> Value {
    json!([{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid}])
}

async fn renew_lease(leases: &Api<Lease>, opts: &NodeOptions, uid: &str, t: jiff::Timestamp) {
    let spec = json!({"holderIdentity": opts.name, "leaseDurationSeconds": 40, "renewTime": micro_time(t)});
    let owners = lease_owner(&opts.name, uid);
    let patch = json!({"metadata": {"ownerReferences": owners}, "spec": spec});
    match leases
        .patch(&opts.name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {
            let lease = json!({"metadata": {"name": opts.name, "namespace": "kube-node-lease", "ownerReferences": owners}, "spec": spec});
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
        let ep = Endpoint {
            ip: [127, 0, 0, 1].into(),
            port: 4242,
        };
        let s = node_status(
            "node-1",
            ep,
            "v1.28.7",
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00Z",
        );
        assert_eq!(s["nodeInfo"]["kubeletVersion"], "v1.28.7");
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
