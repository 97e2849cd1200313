//! Warning Events on the objects a run failed for (PVCs, database pods), so `kubectl describe`
//! tells the story.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, PostParams};
use serde_json::json;

/// Records a Warning Event `reason` with `message` on PVC `pvc`; failures are only logged.
pub async fn record(client: &kube::Client, ns: &str, pvc: &str, reason: &str, message: &str) {
    record_on(client, ns, "PersistentVolumeClaim", pvc, reason, message).await
}

/// Records a Warning Event on the core (`v1`) object `kind`/`name`; failures are only logged.
pub async fn record_on(
    client: &kube::Client,
    ns: &str,
    kind: &str,
    name: &str,
    reason: &str,
    message: &str,
) {
    let now = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let ev: Result<Event, _> = serde_json::from_value(json!({
        "metadata": {"generateName": format!("{name}.kentledge-")},
        "involvedObject": {"kind": kind, "apiVersion": "v1", "namespace": ns, "name": name},
        "reason": reason, "message": message, "type": "Warning",
        "source": {"component": "kentledge"}, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }));
    if let Ok(ev) = ev
        && let Err(e) = Api::<Event>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &ev)
            .await
    {
        tracing::warn!(error = %e, "could not record an Event");
    }
}
