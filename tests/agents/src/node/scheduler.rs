//! The scheduler: binds pending pods (no `spec.nodeName`, scheduler `default-scheduler`) to a Ready
//! node through `pods/binding`, as kube-scheduler does. Filters: node Ready and schedulable, taints and
//! tolerations (NoSchedule/NoExecute), `nodeSelector`, required node affinity, and volumes (claims must
//! exist and be bound; a `WaitForFirstConsumer` claim gets the `volume.kubernetes.io/selected-node`
//! annotation; a bound PV's node affinity must match). Unschedulable pods get `PodScheduled=False`,
//! reason `Unschedulable`, with the scheduler's message. Among fitting nodes the least loaded wins.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, PersistentVolume, PersistentVolumeClaim, Pod,
    Taint, Toleration,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::events::{self, Source};
use super::time::{api_time, now};

/// The annotation that tells a provisioner which node a `WaitForFirstConsumer` claim is for.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

/// What to do with a pending pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Bind it to this node.
    Bind(String),
    /// Ask for these (`WaitForFirstConsumer`) claims to be provisioned for this node, then wait.
    SelectNode {
        /// The node.
        node: String,
        /// The claims without the annotation yet.
        claims: Vec<String>,
    },
    /// Wait (claims are being provisioned).
    Wait,
    /// It fits nowhere: the message for `PodScheduled=False`.
    Unschedulable(String),
}

/// What the scheduler sees of the cluster.
#[derive(Default)]
pub struct View {
    /// Nodes.
    pub nodes: Vec<Arc<Node>>,
    /// Claims by `namespace/name`.
    pub claims: HashMap<String, Arc<PersistentVolumeClaim>>,
    /// Volumes by name.
    pub volumes: HashMap<String, Arc<PersistentVolume>>,
    /// Storage classes by name.
    pub classes: HashMap<String, Arc<StorageClass>>,
    /// Pods per node.
    pub load: HashMap<String, usize>,
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let num = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => !value.is_some_and(|v| values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => {
            matches!((value.and_then(num), values.first().and_then(|x| num(x))), (Some(a), Some(b)) if a > b)
        }
        "Lt" => {
            matches!((value.and_then(num), values.first().and_then(|x| num(x))), (Some(a), Some(b)) if a < b)
        }
        _ => false,
    }
}

/// Whether a node matches a NodeSelector (terms ORed, requirements ANDed).
pub fn selector_matches(sel: &NodeSelector, node: &Node) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let name = node.metadata.name.clone().unwrap_or_default();
    sel.node_selector_terms.iter().any(|t| {
        let exprs = t.match_expressions.as_deref().unwrap_or_default();
        let fields = t.match_fields.as_deref().unwrap_or_default();
        (!exprs.is_empty() || !fields.is_empty())
            && exprs
                .iter()
                .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
            && fields.iter().all(|r| {
                requirement_matches(r, (r.key == "metadata.name").then_some(name.as_str()))
            })
    })
}

fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect_ok = t
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let op = t.operator.as_deref().unwrap_or("Equal");
    let key = t.key.as_deref().unwrap_or("");
    effect_ok
        && match (key.is_empty(), op) {
            (true, "Exists") => true,
            (false, "Exists") => key == taint.key,
            _ => {
                key == taint.key
                    && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
            }
        }
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Why a node does not fit (the scheduler's words), or `None` when it fits.
fn node_misfit(pod: &Pod, node: &Node) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let tolerations = spec.tolerations.clone().unwrap_or_default();
    if !node_ready(node)
        && !tolerations.iter().any(|t| {
            t.key.as_deref() == Some("node.kubernetes.io/not-ready")
                || (t.key.is_none() && t.operator.as_deref() == Some("Exists"))
        })
    {
        return Some("node(s) had untolerated taint {node.kubernetes.io/not-ready: }".into());
    }
    if node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
    {
        return Some("node(s) were unschedulable".into());
    }
    for taint in node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
    {
        if (taint.effect == "NoSchedule" || taint.effect == "NoExecute")
            && !tolerations.iter().any(|t| tolerates(t, &taint))
        {
            return Some(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.clone().unwrap_or_default()
            ));
        }
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let affinity_ok = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_none_or(|sel| selector_matches(sel, node));
    if !selector_ok || !affinity_ok {
        return Some("node(s) didn't match Pod's node affinity/selector".into());
    }
    None
}

fn unschedulable(n: usize, reasons: &str) -> Decision {
    Decision::Unschedulable(format!(
        "0/{n} nodes are available: {reasons}. preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling."
    ))
}

/// Decide about one pending pod (pure).
pub fn decide(pod: &Pod, view: &View) -> Decision {
    let ns = pod.namespace().unwrap_or_default();
    let n = view.nodes.len();
    if n == 0 {
        return Decision::Unschedulable("no nodes available to schedule pods".into());
    }
    let mut delayed: Vec<Arc<PersistentVolumeClaim>> = Vec::new();
    let mut bound_pvs: Vec<Arc<PersistentVolume>> = Vec::new();
    for v in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
    {
        let claim = match (&v.persistent_volume_claim, &v.ephemeral) {
            (Some(c), _) => c.claim_name.clone(),
            (None, Some(_)) => format!("{}-{}", pod.name_any(), v.name),
            _ => continue,
        };
        let Some(pvc) = view.claims.get(&format!("{ns}/{claim}")) else {
            return unschedulable(n, &format!("persistentvolumeclaim {claim:?} not found"));
        };
        if pvc.metadata.deletion_timestamp.is_some() {
            return unschedulable(
                n,
                &format!("persistentvolumeclaim {claim:?} is being deleted"),
            );
        }
        let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        let pv_name = pvc
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .unwrap_or_default();
        if bound && !pv_name.is_empty() {
            if let Some(pv) = view.volumes.get(&pv_name) {
                bound_pvs.push(pv.clone());
            }
            continue;
        }
        let class = pvc
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.clone())
            .or_else(|| {
                view.classes
                    .values()
                    .find(|c| {
                        c.annotations()
                            .get("storageclass.kubernetes.io/is-default-class")
                            .map(String::as_str)
                            == Some("true")
                    })
                    .and_then(|c| c.metadata.name.clone())
            });
        let wffc = class
            .and_then(|c| view.classes.get(&c))
            .and_then(|c| c.volume_binding_mode.clone())
            .as_deref()
            == Some("WaitForFirstConsumer");
        if !wffc {
            return unschedulable(n, "pod has unbound immediate PersistentVolumeClaims");
        }
        delayed.push(pvc.clone());
    }
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut fits: Vec<&Arc<Node>> = Vec::new();
    for node in &view.nodes {
        let misfit = node_misfit(pod, node).or_else(|| {
            bound_pvs
                .iter()
                .filter_map(|pv| {
                    pv.spec
                        .as_ref()
                        .and_then(|s| s.node_affinity.as_ref())
                        .and_then(|a| a.required.as_ref())
                })
                .any(|sel| !selector_matches(sel, node))
                .then(|| "node(s) had volume node affinity conflict".to_string())
        });
        match misfit {
            Some(r) => *reasons.entry(r).or_default() += 1,
            None => fits.push(node),
        }
    }
    let Some(best) = fits.into_iter().min_by_key(|node| {
        let name = node.name_any();
        (view.load.get(&name).copied().unwrap_or(0), name)
    }) else {
        let text: Vec<String> = reasons.iter().map(|(r, c)| format!("{c} {r}")).collect();
        return unschedulable(n, &text.join(", "));
    };
    let node = best.name_any();
    if delayed.is_empty() {
        return Decision::Bind(node);
    }
    let missing: Vec<String> = delayed
        .iter()
        .filter(|c| !c.annotations().contains_key(SELECTED_NODE))
        .map(|c| c.name_any())
        .collect();
    if missing.is_empty() {
        Decision::Wait
    } else {
        Decision::SelectNode {
            node,
            claims: missing,
        }
    }
}

/// Starts schedulers.
#[derive(Debug)]
pub struct Scheduler;

/// A running scheduler; dropping it stops it.
#[derive(Debug)]
pub struct SchedulerHandle {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for SchedulerHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn mirror<K>(api: Api<K>, notify: Arc<Notify>) -> (Store<K>, JoinHandle<()>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()))
        .default_backoff();
    let task = tokio::spawn(async move {
        let mut stream = stream.boxed();
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                tracing::debug!("scheduler watch: {e}");
            }
            notify.notify_one();
        }
    });
    (reader, task)
}

impl Scheduler {
    /// Start a scheduler on the current Tokio runtime.
    pub fn start(client: kube::Client) -> SchedulerHandle {
        let notify = Arc::new(Notify::new());
        let (pods, t1) = mirror(Api::<Pod>::all(client.clone()), notify.clone());
        let (nodes, t2) = mirror(Api::<Node>::all(client.clone()), notify.clone());
        let (claims, t3) = mirror(
            Api::<PersistentVolumeClaim>::all(client.clone()),
            notify.clone(),
        );
        let (volumes, t4) = mirror(Api::<PersistentVolume>::all(client.clone()), notify.clone());
        let (classes, t5) = mirror(Api::<StorageClass>::all(client.clone()), notify.clone());
        let main = tokio::spawn(async move {
            for s in [
                pods.wait_until_ready().await,
                nodes.wait_until_ready().await,
            ] {
                if s.is_err() {
                    return;
                }
            }
            let _ = claims.wait_until_ready().await;
            let mut reported: HashMap<String, String> = HashMap::new();
            loop {
                let view = View {
                    nodes: nodes.state(),
                    claims: claims
                        .state()
                        .into_iter()
                        .map(|c| {
                            (
                                format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()),
                                c,
                            )
                        })
                        .collect(),
                    volumes: volumes
                        .state()
                        .into_iter()
                        .map(|v| (v.name_any(), v))
                        .collect(),
                    classes: classes
                        .state()
                        .into_iter()
                        .map(|c| (c.name_any(), c))
                        .collect(),
                    load: pods
                        .state()
                        .iter()
                        .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
                        .fold(HashMap::new(), |mut m, n| {
                            *m.entry(n).or_default() += 1;
                            m
                        }),
                };
                let mut pending: Vec<Arc<Pod>> =
                    pods.state().into_iter().filter(|p| is_pending(p)).collect();
                pending.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
                for pod in pending {
                    act(&client, &pod, decide(&pod, &view), &mut reported).await;
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), notify.notified()).await;
            }
        });
        SchedulerHandle {
            tasks: vec![main, t1, t2, t3, t4, t5],
        }
    }
}

fn is_pending(p: &Pod) -> bool {
    let spec = p.spec.as_ref();
    spec.and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
        .is_empty()
        && p.metadata.deletion_timestamp.is_none()
        && spec
            .and_then(|s| s.scheduler_name.as_deref())
            .is_none_or(|s| s.is_empty() || s == "default-scheduler")
        && !matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

async fn act(
    client: &kube::Client,
    pod: &Pod,
    decision: Decision,
    reported: &mut HashMap<String, String>,
) {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    match decision {
        Decision::Bind(node) => {
            let body = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns},
                              "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
            match pods
                .create_subresource::<Value, Value>("binding", &name, &PostParams::default(), &body)
                .await
            {
                Ok(_) => {
                    reported.remove(&pod.uid().unwrap_or_default());
                    events::record(
                        client,
                        pod,
                        Source::Scheduler,
                        false,
                        "Scheduled",
                        &format!("Successfully assigned {ns}/{name} to {node}"),
                    )
                    .await;
                }
                Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
                Err(e) => tracing::warn!("binding {ns}/{name} to {node}: {e}"),
            }
        }
        Decision::SelectNode { node, claims } => {
            let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
            for c in claims {
                let patch = json!({"metadata": {"annotations": {SELECTED_NODE: node}}});
                if let Err(e) = api
                    .patch(&c, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                {
                    tracing::warn!("selecting node for claim {ns}/{c}: {e}");
                }
            }
        }
        Decision::Wait => {}
        Decision::Unschedulable(message) => {
            let current = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .find(|c| c.type_ == "PodScheduled")
                .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()));
            if current
                == Some((
                    "False".into(),
                    Some("Unschedulable".into()),
                    Some(message.clone()),
                ))
            {
                return;
            }
            let uid = pod.uid().unwrap_or_default();
            if reported.get(&uid) == Some(&message) {
                return;
            }
            let cond = json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                              "lastProbeTime": null, "lastTransitionTime": api_time(now())});
            let mut conds: Vec<Value> = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .filter(|c| c.type_ != "PodScheduled")
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect();
            conds.push(cond);
            match pods
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"conditions": conds}})),
                )
                .await
            {
                Ok(_) => {
                    reported.insert(uid, message.clone());
                    events::record(
                        client,
                        pod,
                        Source::Scheduler,
                        true,
                        "FailedScheduling",
                        &message,
                    )
                    .await;
                }
                Err(e) => tracing::debug!("status of unschedulable pod {ns}/{name}: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: Value) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
            .unwrap(),
        )
    }

    fn pod(spec: Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}))
            .unwrap()
    }

    #[test]
    fn node_selector_and_load() {
        let view = View {
            nodes: vec![
                node("a", json!({"disk": "hdd"})),
                node("b", json!({"disk": "ssd"})),
            ],
            ..View::default()
        };
        assert_eq!(
            decide(
                &pod(json!({"containers": [], "nodeSelector": {"disk": "ssd"}})),
                &view
            ),
            Decision::Bind("b".into())
        );
        assert_eq!(
            decide(&pod(json!({"containers": [], "nodeSelector": {"disk": "nvme"}})), &view),
            Decision::Unschedulable("0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.".into())
        );
        let mut view = view;
        view.load.insert("a".into(), 3);
        assert_eq!(
            decide(&pod(json!({"containers": []})), &view),
            Decision::Bind("b".into())
        );
    }

    #[test]
    fn affinity_and_taints() {
        let tainted: Node =
            serde_json::from_value(json!({"metadata": {"name": "t", "labels": {"zone": "z1"}},
            "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
            .unwrap();
        let view = View {
            nodes: vec![Arc::new(tainted)],
            ..View::default()
        };
        assert!(
            matches!(decide(&pod(json!({"containers": []})), &view), Decision::Unschedulable(m) if m.contains("untolerated taint {dedicated: db}"))
        );
        let p = pod(
            json!({"containers": [], "tolerations": [{"key": "dedicated", "operator": "Exists"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1", "z2"]}]}]}}}}),
        );
        assert_eq!(decide(&p, &view), Decision::Bind("t".into()));
    }

    #[test]
    fn claims_gate_scheduling() {
        let mut view = View {
            nodes: vec![node("a", json!({}))],
            ..View::default()
        };
        let p = pod(
            json!({"containers": [], "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}),
        );
        assert!(
            matches!(decide(&p, &view), Decision::Unschedulable(m) if m.contains("persistentvolumeclaim \"data\" not found"))
        );
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({"metadata": {"name": "data", "namespace": "ns"}, "spec": {"storageClassName": "late"}})).unwrap();
        view.claims.insert("ns/data".into(), Arc::new(pvc));
        assert!(
            matches!(decide(&p, &view), Decision::Unschedulable(m) if m.contains("unbound immediate"))
        );
        let sc: StorageClass = serde_json::from_value(json!({"metadata": {"name": "late"}, "provisioner": "x", "volumeBindingMode": "WaitForFirstConsumer"})).unwrap();
        view.classes.insert("late".into(), Arc::new(sc));
        assert_eq!(
            decide(&p, &view),
            Decision::SelectNode {
                node: "a".into(),
                claims: vec!["data".into()]
            }
        );
        let pvc: PersistentVolumeClaim =
            serde_json::from_value(json!({"metadata": {"name": "data", "namespace": "ns"},
            "spec": {"volumeName": "pv1"}, "status": {"phase": "Bound"}}))
            .unwrap();
        view.claims.insert("ns/data".into(), Arc::new(pvc));
        assert_eq!(decide(&p, &view), Decision::Bind("a".into()));
    }
}
