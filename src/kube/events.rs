//! Events on the objects a run was about (PVCs, database pods, a bucket's cache volume), so that
//! `kubectl describe` and `kubectl get events` tell the story: a Warning for every target that
//! failed, a Normal one for every target done. As the kubelet does, the same event on the same
//! object again is one Event whose `count` and `lastTimestamp` go up, not a new one.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// An Event's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// Work done.
    Normal,
    /// Something failed.
    Warning,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Normal => "Normal",
            Type::Warning => "Warning",
        }
    }
}

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
    emit(client, ns, kind, name, Type::Warning, reason, message).await
}

/// Records a Normal Event (work done) on the core (`v1`) object `kind`/`name`.
pub async fn note_on(
    client: &kube::Client,
    ns: &str,
    kind: &str,
    name: &str,
    reason: &str,
    message: &str,
) {
    emit(client, ns, kind, name, Type::Normal, reason, message).await
}

/// The name of the Event of `reason`/`message` on `kind`/`name`: the same event always has the
/// same name (which is what makes a repeat a count, not another Event).
pub fn event_name(kind: &str, name: &str, t: Type, reason: &str, message: &str) -> String {
    let id = crate::model::labels::short_hash(&format!(
        "{kind}\0{name}\0{}\0{reason}\0{message}",
        t.as_str()
    ));
    // Object names are at most 253 characters; the Event's must be too.
    let head: String = name
        .chars()
        .take(253 - ".kentledge-".len() - id.len())
        .collect();
    format!("{head}.kentledge-{id}")
}

async fn emit(
    client: &kube::Client,
    ns: &str,
    kind: &str,
    name: &str,
    t: Type,
    reason: &str,
    message: &str,
) {
    let now = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let ev_name = event_name(kind, name, t, reason, message);
    let api = Api::<Event>::namespaced(client.clone(), ns);
    let ev: Result<Event, _> = serde_json::from_value(json!({
        "metadata": {"name": ev_name},
        "involvedObject": {"kind": kind, "apiVersion": "v1", "namespace": ns, "name": name},
        "reason": reason, "message": message, "type": t.as_str(),
        "source": {"component": "kentledge"}, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }));
    let Ok(ev) = ev else { return };
    let err = match api.create(&PostParams::default(), &ev).await {
        Ok(_) => return,
        Err(kube::Error::Api(s)) if s.code == 409 => match api.get(&ev_name).await {
            Ok(old) => {
                let count = old.count.unwrap_or(1) + 1;
                let patch = json!({"count": count, "lastTimestamp": now});
                match api
                    .patch(&ev_name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => return,
                    Err(e) => e,
                }
            }
            Err(e) => e,
        },
        Err(e) => e,
    };
    tracing::warn!(error = %err, "could not record an Event");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_event_has_the_same_name_and_names_stay_short() {
        let a = event_name(
            "PersistentVolumeClaim",
            "data",
            Type::Warning,
            "BackupFailed",
            "x",
        );
        assert_eq!(
            a,
            event_name(
                "PersistentVolumeClaim",
                "data",
                Type::Warning,
                "BackupFailed",
                "x"
            )
        );
        assert!(a.starts_with("data.kentledge-"), "{a}");
        for other in [
            event_name(
                "PersistentVolumeClaim",
                "data",
                Type::Warning,
                "BackupFailed",
                "y",
            ),
            event_name(
                "PersistentVolumeClaim",
                "data",
                Type::Normal,
                "BackupFailed",
                "x",
            ),
            event_name("Pod", "data", Type::Warning, "BackupFailed", "x"),
            event_name(
                "PersistentVolumeClaim",
                "logs",
                Type::Warning,
                "BackupFailed",
                "x",
            ),
        ] {
            assert_ne!(a, other);
        }
        let long = "p".repeat(253);
        assert_eq!(
            event_name("PersistentVolumeClaim", &long, Type::Normal, "R", "m").len(),
            253
        );
    }
}
