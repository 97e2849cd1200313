//! The hook plan of a snapshot run: which command runs in which pod and container, in what
//! order. Pre-hooks run in config order (each hook expanded to its running pods, by name), then
//! the hooks declared in annotations of pods that mount a selected PVC; post-hooks run in the
//! reverse order, and only for hooks whose pre-hook started.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;

use crate::config::{OnError, PodSelector, Snapshots};
use crate::model::units::HumanDuration;
use crate::plan::selection::matches;

/// Annotation: a shell command run (with `sh -c`) before the snapshot.
pub const PRE_ANNOTATION: &str = "kentledge.io/pre-snapshot";
/// Annotation: a shell command run (with `sh -c`) after the cut.
pub const POST_ANNOTATION: &str = "kentledge.io/post-snapshot";
/// Annotation: the container the annotation hooks run in.
pub const CONTAINER_ANNOTATION: &str = "kentledge.io/hook-container";
/// kubectl's default-container annotation.
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";
/// The timeout of annotation hooks.
pub const ANNOTATION_HOOK_TIMEOUT: HumanDuration = HumanDuration::from_secs(60);

/// What a hook does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookAction {
    /// Separate execs before and after.
    Exec {
        /// Before the snapshot.
        pre: Option<Vec<String>>,
        /// After the cut.
        post: Option<Vec<String>>,
    },
    /// One session held across the snapshot.
    Session {
        /// The long-lived command.
        command: Vec<String>,
        /// Written to stdin before.
        pre: String,
        /// Awaited on stdout.
        ready_marker: String,
        /// Written to stdin after.
        post: Option<String>,
    },
}

/// Where a hook was declared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookSource {
    /// `spec.snapshots.hooks[i]`.
    Config(usize),
    /// Annotations of the pod.
    Annotation,
}

/// One hook in one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedHook {
    /// The hook's name (`annotations` for annotation hooks).
    pub name: String,
    /// The pod.
    pub pod: String,
    /// The container.
    pub container: String,
    /// The commands.
    pub action: HookAction,
    /// Per-command time limit.
    pub timeout: HumanDuration,
    /// What a failure does.
    pub on_error: OnError,
    /// Where it was declared.
    pub source: HookSource,
}

fn is_running(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

fn pod_name(p: &Pod) -> &str {
    p.metadata.name.as_deref().unwrap_or("")
}

/// The container a hook runs in: the named one (which must exist), else the pod's
/// default-container annotation, else its first container.
pub fn resolve_container(pod: &Pod, wanted: Option<&str>) -> Result<String, String> {
    let names: Vec<&str> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let annotations = pod.metadata.annotations.as_ref();
    let chosen = wanted
        .map(str::to_owned)
        .or_else(|| annotations.and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION).cloned()))
        .or_else(|| names.first().map(|s| (*s).to_owned()));
    match chosen {
        Some(c) if names.contains(&c.as_str()) => Ok(c),
        Some(c) => Err(format!(
            "pod {} has no container {c:?} (it has {})",
            pod_name(pod),
            names.join(", ")
        )),
        None => Err(format!("pod {} has no containers", pod_name(pod))),
    }
}

/// The running pods a selector picks, by name.
pub(crate) fn pick<'a>(selector: &PodSelector, pods: &'a [Pod]) -> Vec<&'a Pod> {
    let mut out: Vec<&Pod> = pods
        .iter()
        .filter(|p| is_running(p))
        .filter(|p| match (&selector.name, &selector.selector) {
            (Some(n), _) => pod_name(p) == n,
            (None, Some(s)) => matches(s, p.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())),
            (None, None) => false,
        })
        .collect();
    out.sort_by_key(|p| pod_name(p).to_owned());
    out
}

/// Plans the hooks of a run. `pvcs` are the PVCs being snapshotted (for annotation hooks).
/// Returns the pre-hook order; every problem is reported at once.
pub fn plan(
    config: &Snapshots,
    pods: &[Pod],
    pvcs: &[String],
) -> Result<Vec<PlannedHook>, Vec<String>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, h) in config.hooks.iter().enumerate() {
        let chosen = pick(&h.pod, pods);
        if chosen.is_empty() {
            problems.push(format!(
                "hook {}: no running pod matches its pod selector",
                h.name
            ));
        }
        let action = match (&h.exec, &h.session) {
            (Some(e), _) => HookAction::Exec {
                pre: e.pre.clone(),
                post: e.post.clone(),
            },
            (None, Some(s)) => HookAction::Session {
                command: s.command.clone(),
                pre: s.pre.clone(),
                ready_marker: s.ready_marker.clone(),
                post: s.post.clone(),
            },
            (None, None) => continue,
        };
        for pod in chosen {
            match resolve_container(pod, h.container.as_deref()) {
                Ok(container) => out.push(PlannedHook {
                    name: h.name.clone(),
                    pod: pod_name(pod).to_owned(),
                    container,
                    action: action.clone(),
                    timeout: h.timeout,
                    on_error: h.on_error,
                    source: HookSource::Config(i),
                }),
                Err(e) => problems.push(format!("hook {}: {e}", h.name)),
            }
        }
    }
    if config.pod_annotation_hooks {
        let wanted: BTreeSet<&str> = pvcs.iter().map(String::as_str).collect();
        let mut annotated: Vec<&Pod> = pods
            .iter()
            .filter(|p| is_running(p))
            .filter(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.volumes.as_ref())
                    .into_iter()
                    .flatten()
                    .any(|v| {
                        v.persistent_volume_claim
                            .as_ref()
                            .is_some_and(|c| wanted.contains(c.claim_name.as_str()))
                    })
            })
            .filter(|p| {
                let a = p.metadata.annotations.as_ref();
                a.is_some_and(|a| a.contains_key(PRE_ANNOTATION) || a.contains_key(POST_ANNOTATION))
            })
            .collect();
        annotated.sort_by_key(|p| pod_name(p).to_owned());
        for pod in annotated {
            let a = pod.metadata.annotations.clone().unwrap_or_default();
            let sh = |cmd: &String| vec!["sh".to_owned(), "-c".to_owned(), cmd.clone()];
            match resolve_container(pod, a.get(CONTAINER_ANNOTATION).map(String::as_str)) {
                Ok(container) => out.push(PlannedHook {
                    name: "annotations".into(),
                    pod: pod_name(pod).to_owned(),
                    container,
                    action: HookAction::Exec {
                        pre: a.get(PRE_ANNOTATION).map(sh),
                        post: a.get(POST_ANNOTATION).map(sh),
                    },
                    timeout: ANNOTATION_HOOK_TIMEOUT,
                    on_error: OnError::Fail,
                    source: HookSource::Annotation,
                }),
                Err(e) => problems.push(format!("annotation hooks: {e}")),
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ExecHook, Hook, LabelSelector, SessionHook};
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn pod(
        name: &str,
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
        claims: &[&str],
        phase: &str,
    ) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name,
                         "labels": labels.iter().cloned().collect::<BTreeMap<_, _>>(),
                         "annotations": annotations.iter().cloned().collect::<BTreeMap<_, _>>()},
            "spec": {"containers": [{"name": "app"}, {"name": "sidecar"}],
                     "volumes": claims.iter().map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}})).collect::<Vec<_>>()},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    fn exec_hook(name: &str, selector: PodSelector, container: Option<&str>) -> Hook {
        Hook {
            name: name.into(),
            pod: selector,
            container: container.map(str::to_owned),
            exec: Some(ExecHook {
                pre: Some(vec!["sync".into()]),
                post: None,
            }),
            session: None,
            timeout: HumanDuration::from_secs(5),
            on_error: OnError::Fail,
        }
    }

    fn by_label(k: &str, v: &str) -> PodSelector {
        PodSelector {
            name: None,
            selector: Some(LabelSelector {
                match_labels: [(k.into(), v.into())].into(),
                ..LabelSelector::default()
            }),
        }
    }

    #[test]
    fn config_hooks_then_annotation_hooks_in_order_and_posts_reversed() {
        let pods = [
            pod("db-1", &[("app", "db")], &[], &[], "Running"),
            pod("db-0", &[("app", "db")], &[], &[], "Running"),
            pod("db-2", &[("app", "db")], &[], &[], "Pending"),
            pod(
                "web",
                &[],
                &[
                    (PRE_ANNOTATION, "echo pre"),
                    (CONTAINER_ANNOTATION, "sidecar"),
                ],
                &["uploads"],
                "Running",
            ),
            pod(
                "other",
                &[],
                &[(PRE_ANNOTATION, "echo no")],
                &["unrelated"],
                "Running",
            ),
        ];
        let mut lock = exec_hook("lock", by_label("app", "db"), None);
        lock.exec = None;
        lock.session = Some(SessionHook {
            command: vec!["mariadb".into()],
            pre: "FLUSH".into(),
            ready_marker: "ok".into(),
            post: Some("UNLOCK".into()),
        });
        let config = Snapshots {
            hooks: vec![
                exec_hook(
                    "flush",
                    PodSelector {
                        name: Some("web".into()),
                        selector: None,
                    },
                    Some("app"),
                ),
                lock,
            ],
            ..Snapshots::default()
        };
        let plan = plan(&config, &pods, &["uploads".into()]).unwrap();
        let order: Vec<(&str, &str, &str)> = plan
            .iter()
            .map(|h| (h.name.as_str(), h.pod.as_str(), h.container.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                ("flush", "web", "app"),
                ("lock", "db-0", "app"),
                ("lock", "db-1", "app"),
                ("annotations", "web", "sidecar")
            ]
        );
        assert_eq!(
            plan[3].action,
            HookAction::Exec {
                pre: Some(vec!["sh".into(), "-c".into(), "echo pre".into()]),
                post: None
            }
        );
        // Post-hooks run in reverse, only for started pre-hooks: flows::snapshot::execute
        // pops its stack of started hooks (tests/e2e/snapshot.rs checks the order).
    }

    #[test]
    fn problems_are_reported_together() {
        let pods = [pod("db-0", &[("app", "db")], &[], &[], "Running")];
        let config = Snapshots {
            hooks: vec![
                exec_hook("a", by_label("app", "nope"), None),
                exec_hook("b", by_label("app", "db"), Some("missing")),
            ],
            ..Snapshots::default()
        };
        assert_eq!(
            plan(&config, &pods, &[]).unwrap_err(),
            [
                "hook a: no running pod matches its pod selector",
                "hook b: pod db-0 has no container \"missing\" (it has app, sidecar)"
            ]
        );
    }

    #[test]
    fn default_container_annotation_is_honoured() {
        let p = pod(
            "x",
            &[],
            &[(DEFAULT_CONTAINER_ANNOTATION, "sidecar")],
            &[],
            "Running",
        );
        assert_eq!(resolve_container(&p, None).unwrap(), "sidecar");
        assert_eq!(resolve_container(&p, Some("app")).unwrap(), "app");
    }

    #[test]
    fn annotation_hooks_can_be_turned_off() {
        let pods = [pod(
            "web",
            &[],
            &[(PRE_ANNOTATION, "echo pre")],
            &["uploads"],
            "Running",
        )];
        let config = Snapshots {
            pod_annotation_hooks: false,
            ..Snapshots::default()
        };
        assert_eq!(plan(&config, &pods, &["uploads".into()]).unwrap(), []);
    }
}
