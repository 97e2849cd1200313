//! The kubelet seam: who finishes a pod's deletion, and where a node's kubelet listens.
//!
//! The real API server marks a scheduled pod as terminating (deletionTimestamp, grace period) and leaves its
//! removal to the kubelet, which stops the containers and then deletes the pod with `gracePeriodSeconds=0`.
//! Here that only happens when the pod's node has a kubelet that will do it ([`NodeKubelet`]); pods with no
//! node, or on a node without a live kubelet, are removed at once.

use serde_json::Value;

use crate::cluster::{Cluster, NODES};
use crate::status::ApiError;

/// Decides whether a pod's deletion is left to a kubelet, and with what grace period.
pub trait PodTermination: Send + Sync {
    /// `Some(grace)` (seconds, > 0) to mark the pod terminating and wait for its kubelet; `None` to delete now.
    fn graceful_period(
        &self,
        cluster: &Cluster,
        pod: &Value,
        requested: Option<i64>,
    ) -> Option<i64>;
}

/// The default: graceful when the pod's Node exists, has a kubelet endpoint port and is Ready.
#[derive(Debug, Default, Clone, Copy)]
pub struct NodeKubelet;

impl PodTermination for NodeKubelet {
    fn graceful_period(
        &self,
        cluster: &Cluster,
        pod: &Value,
        requested: Option<i64>,
    ) -> Option<i64> {
        let node = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())?;
        let node = cluster.store.get(NODES, "", node)?;
        if !node_has_live_kubelet(&node) {
            return None;
        }
        let grace = requested
            .or_else(|| {
                pod.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
            .unwrap_or(30);
        (grace > 0).then_some(grace)
    }
}

/// Never graceful: every pod is removed at once (a cluster without kubelets).
#[derive(Debug, Default, Clone, Copy)]
pub struct Immediate;

impl PodTermination for Immediate {
    fn graceful_period(&self, _: &Cluster, _: &Value, _: Option<i64>) -> Option<i64> {
        None
    }
}

/// Whether a Node reports a kubelet port and a Ready=True condition.
pub fn node_has_live_kubelet(node: &Value) -> bool {
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let ready = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Ready")
                && c.get("status").and_then(Value::as_str) == Some("True")
        });
    port > 0 && ready
}

/// Where to reach a node's kubelet (over HTTPS, as kube-apiserver always does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletEndpoint {
    /// `host:port` (`[v6]:port` for IPv6).
    pub authority: String,
    /// The host: an IP address or a DNS name (the TLS server name).
    pub host: String,
}

/// Look up the kubelet of a node: its InternalIP (else Hostname, else 127.0.0.1) and kubelet port
/// (10250 when the Node reports none).
pub fn kubelet_endpoint(cluster: &Cluster, node_name: &str) -> Result<KubeletEndpoint, ApiError> {
    let Some(node) = cluster.store.get(NODES, "", node_name) else {
        // An upstream quirk, kept: the NotFound names the node but says "pods".
        return Err(ApiError::not_found(
            crate::status::ResourceName {
                plural: "pods",
                group: "",
            },
            node_name,
        ));
    };
    let addrs: Vec<&Value> = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let pick = |t: &str| {
        addrs
            .iter()
            .find(|a| a.get("type").and_then(Value::as_str) == Some(t))
            .and_then(|a| a.get("address").and_then(Value::as_str))
    };
    let host = pick("InternalIP")
        .or_else(|| pick("Hostname"))
        .unwrap_or("127.0.0.1");
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_i64)
        .unwrap_or(10250);
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(KubeletEndpoint {
        authority,
        host: host.to_string(),
    })
}
