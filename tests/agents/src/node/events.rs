//! Best-effort core/v1 Events about pods, as the kubelet and the scheduler record them (`Scheduled`,
//! `Started`, `Killing`, `FailedMount`, `BackOff`...).

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use super::time::{api_time, now};

/// Who reports.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// The kubelet of a node.
    Kubelet(&'a str),
    /// The scheduler.
    Scheduler,
}

/// Record an event about `pod` (failures are only logged).
pub async fn record(
    client: &kube::Client,
    pod: &Pod,
    source: Source<'_>,
    warning: bool,
    reason: &str,
    message: &str,
) {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let t = now();
    let (component, host) = match source {
        Source::Kubelet(node) => ("kubelet", Some(node)),
        Source::Scheduler => ("default-scheduler", None),
    };
    let event = json!({
        "metadata": {"name": format!("{name}.{:x}", t.as_nanosecond()), "namespace": ns},
        "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": ns, "name": name,
                           "uid": pod.metadata.uid, "resourceVersion": pod.metadata.resource_version},
        "reason": reason, "message": message, "type": if warning { "Warning" } else { "Normal" },
        "source": {"component": component, "host": host},
        "firstTimestamp": api_time(t), "lastTimestamp": api_time(t), "count": 1,
        "reportingComponent": component, "reportingInstance": host.unwrap_or(""),
    });
    let Ok(event) = serde_json::from_value::<Event>(event) else {
        return;
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        tracing::debug!("event {reason} for {ns}/{name}: {e}");
    }
}
