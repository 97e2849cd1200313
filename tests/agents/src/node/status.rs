//! The pod status a kubelet reports, rendered from the worker's view of its containers: container
//! states (waiting/running/terminated, last state, restart count, ids), the pod conditions with their
//! transition times, and the phase fields. Pure functions over plain data.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::time::api_time;

/// A terminated container instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    /// Exit code (128 + signal when killed).
    pub exit_code: i32,
    /// `Completed`, `Error`, `StartError`, `DeadlineExceeded`...
    pub reason: String,
    /// Details.
    pub message: Option<String>,
    /// When it started.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Timestamp,
    /// Its id.
    pub container_id: Option<String>,
}

/// A container's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not running yet (or backing off).
    Waiting {
        /// `ContainerCreating`, `PodInitializing`, `CrashLoopBackOff`, `CreateContainerConfigError`...
        reason: String,
        /// Details.
        message: Option<String>,
    },
    /// Running since.
    Running(Timestamp),
    /// Ended.
    Terminated(Terminated),
}

impl State {
    /// `Waiting` with a reason.
    pub fn waiting(reason: &str) -> State {
        State::Waiting {
            reason: reason.into(),
            message: None,
        }
    }
}

/// What the status shows of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    /// Name.
    pub name: String,
    /// The image as given in the spec.
    pub image: String,
    /// Current state.
    pub state: State,
    /// The previous instance's end.
    pub last: Option<Terminated>,
    /// Restarts so far.
    pub restart_count: i32,
    /// The id of the current (or last) instance.
    pub container_id: Option<String>,
}

impl ContainerView {
    /// Running (and so ready: readiness probes are not run here).
    pub fn is_running(&self) -> bool {
        matches!(self.state, State::Running(_))
    }
}

/// A stable fake image digest for an image name (the image is never pulled).
pub fn image_id(image: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    let mut hex = String::new();
    for round in 0..4u64 {
        for b in image.bytes().chain(round.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        hex.push_str(&format!("{h:016x}"));
    }
    let repo = image.split('@').next().unwrap_or(image);
    let repo = match repo.rfind(':') {
        Some(i) if !repo[i..].contains('/') => &repo[..i],
        _ => repo,
    };
    format!("{repo}@sha256:{hex}")
}

fn terminated_json(t: &Terminated) -> Value {
    let mut v =
        json!({"exitCode": t.exit_code, "reason": t.reason, "finishedAt": api_time(t.finished_at)});
    if let Some(s) = t.started_at {
        v["startedAt"] = json!(api_time(s));
    }
    if let Some(m) = &t.message {
        v["message"] = json!(m);
    }
    if let Some(id) = &t.container_id {
        v["containerID"] = json!(id);
    }
    v
}

fn state_json(s: &State) -> Value {
    match s {
        State::Waiting { reason, message } => {
            let mut w = json!({"reason": reason});
            if let Some(m) = message {
                w["message"] = json!(m);
            }
            json!({"waiting": w})
        }
        State::Running(t) => json!({"running": {"startedAt": api_time(*t)}}),
        State::Terminated(t) => json!({"terminated": terminated_json(t)}),
    }
}

/// One `containerStatuses` entry.
pub fn container_status(c: &ContainerView) -> Value {
    let running = c.is_running();
    let mut v = json!({
        "name": c.name,
        "state": state_json(&c.state),
        "lastState": c.last.as_ref().map(|t| json!({"terminated": terminated_json(t)})).unwrap_or_else(|| json!({})),
        "ready": running,
        "restartCount": c.restart_count,
        "image": c.image,
        "imageID": if c.container_id.is_some() { image_id(&c.image) } else { String::new() },
        "started": running,
    });
    if let Some(id) = &c.container_id {
        v["containerID"] = json!(id);
    }
    v
}

/// A condition before time stamps: (type, status, reason, message).
pub type Cond = (&'static str, bool, Option<String>, Option<String>);

/// The pod conditions for a view.
pub fn conditions(
    sandbox_ready: bool,
    init: &[ContainerView],
    main: &[ContainerView],
    phase: &str,
) -> Vec<Cond> {
    let init_done =
        |c: &ContainerView| matches!(&c.state, State::Terminated(t) if t.exit_code == 0);
    let pending_init: Vec<&str> = init
        .iter()
        .filter(|c| !init_done(c))
        .map(|c| c.name.as_str())
        .collect();
    let unready: Vec<&str> = main
        .iter()
        .filter(|c| !c.is_running())
        .map(|c| c.name.as_str())
        .collect();
    let completed = phase == "Succeeded" || phase == "Failed";
    let initialized = pending_init.is_empty() || completed;
    let ready = unready.is_empty() && !completed;
    let (ready_reason, ready_msg) = if ready {
        (None, None)
    } else if completed {
        (Some("PodCompleted".to_string()), None)
    } else {
        (
            Some("ContainersNotReady".to_string()),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    vec![
        (
            "PodReadyToStartContainers",
            sandbox_ready && !completed,
            None,
            None,
        ),
        (
            "Initialized",
            initialized,
            (!initialized).then(|| "ContainersNotInitialized".to_string()),
            (!initialized).then(|| {
                format!(
                    "containers with incomplete status: [{}]",
                    pending_init.join(" ")
                )
            }),
        ),
        ("Ready", ready, ready_reason.clone(), ready_msg.clone()),
        ("ContainersReady", ready, ready_reason, ready_msg),
        ("PodScheduled", true, None, None),
    ]
}

/// Stamp conditions with transition times: kept from `previous` while the status is unchanged.
pub fn stamp(
    conds: &[Cond],
    previous: &mut BTreeMap<String, (bool, Timestamp)>,
    now: Timestamp,
) -> Value {
    let list: Vec<Value> = conds
        .iter()
        .map(|(t, status, reason, message)| {
            let since = match previous.get(*t) {
                Some((s, at)) if s == status => *at,
                _ => now,
            };
            previous.insert(t.to_string(), (*status, since));
            let mut c = json!({"type": t, "status": if *status { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": api_time(since)});
            if let Some(r) = reason {
                c["reason"] = json!(r);
            }
            if let Some(m) = message {
                c["message"] = json!(m);
            }
            c
        })
        .collect();
    Value::Array(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, state: State) -> ContainerView {
        ContainerView {
            name: name.into(),
            image: "busybox:1.36".into(),
            state,
            last: None,
            restart_count: 0,
            container_id: Some("containerd://abc".into()),
        }
    }

    #[test]
    fn running_container_status() {
        let t: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let v = container_status(&view("c", State::Running(t)));
        assert_eq!(
            v["state"],
            json!({"running": {"startedAt": "2024-01-01T00:00:00Z"}})
        );
        assert_eq!(v["ready"], true);
        assert_eq!(v["lastState"], json!({}));
        assert!(
            v["imageID"]
                .as_str()
                .unwrap()
                .starts_with("busybox@sha256:")
        );
    }

    #[test]
    fn conditions_follow_the_kubelet() {
        let t: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let init = [view("init", State::Running(t))];
        let main = [view("c", State::waiting("PodInitializing"))];
        let cs = conditions(true, &init, &main, "Pending");
        assert_eq!(
            cs[1],
            (
                "Initialized",
                false,
                Some("ContainersNotInitialized".into()),
                Some("containers with incomplete status: [init]".into())
            )
        );
        assert_eq!(cs[2].2.as_deref(), Some("ContainersNotReady"));
        let done = [view(
            "c",
            State::Terminated(Terminated {
                exit_code: 0,
                reason: "Completed".into(),
                message: None,
                started_at: Some(t),
                finished_at: t,
                container_id: None,
            }),
        )];
        let cs = conditions(true, &[], &done, "Succeeded");
        assert_eq!(cs[2], ("Ready", false, Some("PodCompleted".into()), None));
    }

    #[test]
    fn transition_times_are_kept() {
        let t1: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let t2: Timestamp = "2024-01-01T00:00:05Z".parse().unwrap();
        let mut prev = BTreeMap::new();
        stamp(&[("Ready", false, None, None)], &mut prev, t1);
        let v = stamp(&[("Ready", false, None, None)], &mut prev, t2);
        assert_eq!(v[0]["lastTransitionTime"], "2024-01-01T00:00:00Z");
        let v = stamp(&[("Ready", true, None, None)], &mut prev, t2);
        assert_eq!(v[0]["lastTransitionTime"], "2024-01-01T00:00:05Z");
    }
}
