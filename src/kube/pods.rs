//! Pure conditions on a mover pod's status: whether its container started (so its log can be
//! followed) and whether, and how, it ended — exited, stopped at its deadline, failed, or unable
//! ever to start (a hopeless waiting reason, or unschedulable for longer than the patience).
//! Tested on pod statuses written as JSON, the way kube-runtime's wait conditions are.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

/// Waiting reasons that will not resolve by themselves.
const HOPELESS: &[&str] = &[
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
    "ErrImageNeverPull",
];

/// How long a pod may stay unschedulable before it is given up (a cluster autoscaler may add a
/// node within minutes; a selector that matches no node never resolves).
pub const UNSCHEDULABLE_PATIENCE: Duration = Duration::from_secs(600);

/// How a mover pod ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// Stopped at `activeDeadlineSeconds`; the container's exit code, if it had one.
    DeadlineExceeded(Option<i32>),
    /// The container exited with this code (and the termination message or reason).
    Exited(i32, String),
    /// The pod failed without a container exit (e.g. evicted), with the pod's reason and message.
    Failed(String),
    /// It can never start: a hopeless waiting reason, or unschedulable past the patience.
    CannotStart(String),
}

/// Whether the mover container has started (its log exists and can be followed).
pub fn started(p: &Pod) -> bool {
    let phase = p
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("");
    matches!(phase, "Running" | "Succeeded" | "Failed")
}

/// How the pod ended at `now`, or `None` while it is still pending or running.
pub fn ended(p: &Pod, now: Timestamp) -> Option<End> {
    let st = p.status.as_ref()?;
    let container = st.container_statuses.as_ref().and_then(|c| c.first());
    let state = container.and_then(|c| c.state.as_ref());
    let exit = state.and_then(|s| s.terminated.as_ref()).map(|t| {
        (
            t.exit_code,
            t.message.clone().or(t.reason.clone()).unwrap_or_default(),
        )
    });
    if st.reason.as_deref() == Some("DeadlineExceeded") {
        return Some(End::DeadlineExceeded(exit.map(|(c, _)| c)));
    }
    if let Some((code, message)) = exit {
        return Some(End::Exited(code, message));
    }
    if st.phase.as_deref() == Some("Failed") {
        let text = format!(
            "the mover pod failed: {} {}",
            st.reason.as_deref().unwrap_or_default(),
            st.message.as_deref().unwrap_or_default()
        );
        return Some(End::Failed(text.trim().to_owned()));
    }
    if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
        let reason = w.reason.as_deref().unwrap_or_default();
        if HOPELESS.contains(&reason) {
            return Some(End::CannotStart(format!(
                "the mover pod cannot start: {reason}: {}",
                w.message.as_deref().unwrap_or_default()
            )));
        }
    }
    let unschedulable = st.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    })?;
    let since = unschedulable.last_transition_time.as_ref()?.0;
    let waited = now.duration_since(since);
    (waited >= jiff::SignedDuration::try_from(UNSCHEDULABLE_PATIENCE).ok()?).then(|| {
        End::CannotStart(format!(
            "the mover pod could not be scheduled for {}: {}",
            crate::model::units::HumanDuration(UNSCHEDULABLE_PATIENCE),
            unschedulable.message.as_deref().unwrap_or("Unschedulable")
        ))
    })
}

/// Why the claim `name` a mover needs will not bind, once it has waited `waited` of `patience`
/// and is still not Bound (or is gone).
pub fn unbound(
    name: &str,
    pvc: Option<&k8s_openapi::api::core::v1::PersistentVolumeClaim>,
    waited: Duration,
    patience: Duration,
) -> Option<String> {
    let Some(pvc) = pvc else {
        return Some(format!(
            "the clone {name} was deleted before the mover started"
        ));
    };
    let phase = pvc.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase == Some("Bound") || waited < patience {
        return None;
    }
    let class = pvc
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or("(the default)");
    Some(format!(
        "the clone {name} did not bind within spec.mover.clone.bindTimeout {} ({}, storage class {class}): is its provisioner running, and can it make volumes from VolumeSnapshots?",
        crate::model::units::HumanDuration(patience),
        phase.unwrap_or("no phase"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_that_does_not_bind_in_time_is_said_with_its_class() {
        let claim = |phase: &str| -> k8s_openapi::api::core::v1::PersistentVolumeClaim {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "c"},
                "spec": {"storageClassName": "nowhere"},
                "status": {"phase": phase}}))
            .unwrap()
        };
        let (s, m) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(
            unbound("c", Some(&claim("Pending")), s, m),
            None,
            "still time"
        );
        assert_eq!(unbound("c", Some(&claim("Bound")), m * 2, m), None, "bound");
        let late = unbound("c", Some(&claim("Pending")), m, m).unwrap();
        assert_eq!(
            late,
            "the clone c did not bind within spec.mover.clone.bindTimeout 1m (Pending, storage class nowhere): is its provisioner running, and can it make volumes from VolumeSnapshots?"
        );
        assert!(unbound("c", None, s, m).unwrap().contains("was deleted"));
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "m"}, "status": status}))
            .unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const NOW: &str = "2026-12-01T12:00:00Z";

    #[test]
    fn a_running_pod_has_started_and_not_ended() {
        let p = pod(serde_json::json!({"phase": "Running",
            "containerStatuses": [{"name": "mover", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                "state": {"running": {"startedAt": "2026-12-01T11:59:00Z"}}}]}));
        assert!(started(&p));
        assert_eq!(ended(&p, at(NOW)), None);
    }

    #[test]
    fn an_exit_is_the_containers_code_and_message() {
        let p = pod(serde_json::json!({"phase": "Failed",
            "containerStatuses": [{"name": "mover", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 75, "reason": "Error"}}}]}));
        assert!(started(&p));
        assert_eq!(ended(&p, at(NOW)), Some(End::Exited(75, "Error".into())));
    }

    #[test]
    fn the_deadline_wins_over_the_exit() {
        let p = pod(
            serde_json::json!({"phase": "Failed", "reason": "DeadlineExceeded",
            "message": "Pod was active on the node longer than the specified deadline",
            "containerStatuses": [{"name": "mover", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 137, "reason": "Error"}}}]}),
        );
        assert_eq!(ended(&p, at(NOW)), Some(End::DeadlineExceeded(Some(137))));
    }

    #[test]
    fn a_failed_pod_without_an_exit_says_why() {
        let p = pod(
            serde_json::json!({"phase": "Failed", "reason": "Evicted", "message": "low on disk"}),
        );
        assert_eq!(
            ended(&p, at(NOW)),
            Some(End::Failed(
                "the mover pod failed: Evicted low on disk".into()
            ))
        );
    }

    #[test]
    fn hopeless_waiting_reasons_end_the_wait_others_do_not() {
        let waiting = |reason: &str| {
            pod(serde_json::json!({"phase": "Pending",
                "containerStatuses": [{"name": "mover", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": reason, "message": "secret \"s\" not found"}}}]}))
        };
        assert_eq!(
            ended(&waiting("CreateContainerConfigError"), at(NOW)),
            Some(End::CannotStart(
                "the mover pod cannot start: CreateContainerConfigError: secret \"s\" not found"
                    .into()
            ))
        );
        assert_eq!(ended(&waiting("ContainerCreating"), at(NOW)), None);
        assert!(!started(&waiting("ContainerCreating")));
    }

    #[test]
    fn an_unschedulable_pod_is_given_up_only_after_the_patience() {
        let p = pod(
            serde_json::json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable", "lastTransitionTime": "2026-12-01T11:55:00Z",
            "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."}]}),
        );
        assert_eq!(ended(&p, at(NOW)), None, "5 minutes is within the patience");
        assert_eq!(
            ended(&p, at("2026-12-01T12:05:00Z")),
            Some(End::CannotStart(
                "the mover pod could not be scheduled for 10m: 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.".into()
            ))
        );
    }
}
