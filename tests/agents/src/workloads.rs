//! Workload controllers, as kube-controller-manager's: a Deployment owns one ReplicaSet per pod
//! template (older ones are scaled to zero), a ReplicaSet keeps `replicas` pods, a StatefulSet
//! keeps pods `<name>-0 … <name>-(n-1)` with a PVC per volumeClaimTemplate and ordinal
//! (`<template>-<name>-<i>`, kept on scale-down), a Job runs one pod at a time until one
//! succeeds and stops its pods while suspended. Enough for stopping and starting around restores.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

/// Why a reconcile did not finish.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// An API call failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// An object could not be rendered.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

struct Ctx {
    client: kube::Client,
}

/// The running workload controllers; dropping it stops them.
pub struct WorkloadsHandle {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for WorkloadsHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts the Deployment, ReplicaSet, Job and StatefulSet controllers.
pub fn start(client: kube::Client) -> WorkloadsHandle {
    let ctx = Arc::new(Ctx { client });
    WorkloadsHandle {
        tasks: vec![
            tokio::spawn(run_deployments(ctx.clone())),
            tokio::spawn(run_replicasets(ctx.clone())),
            tokio::spawn(run_jobs(ctx.clone())),
            tokio::spawn(run_statefulsets(ctx)),
        ],
    }
}

fn owner_ref<K: Resource<DynamicType = ()>>(owner: &K) -> Value {
    json!({
        "apiVersion": K::api_version(&()), "kind": K::kind(&()),
        "name": owner.meta().name, "uid": owner.meta().uid,
        "controller": true, "blockOwnerDeletion": true,
    })
}

fn owned_by(meta: &kube::api::ObjectMeta, uid: Option<&str>) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| Some(o.uid.as_str()) == uid && o.controller == Some(true))
}

/// A short stable hash of a pod template (the `pod-template-hash` label).
fn template_hash(template: &Value) -> String {
    let text = serde_json::to_string(template).unwrap_or_default();
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{:x}", h % 0xff_ffff)
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn is_active(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && !matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded") | Some("Failed")
        )
}

/// A pod from a template, with extra labels, a name, owner and volume rewrites.
fn pod_from_template(
    template: &Value,
    name: Option<&str>,
    generate_name: Option<&str>,
    extra_labels: &BTreeMap<String, String>,
    owner: Value,
) -> Result<Pod, serde_json::Error> {
    let mut pod = json!({
        "metadata": template.get("metadata").cloned().unwrap_or_else(|| json!({})),
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    });
    let meta = pod["metadata"].as_object_mut().expect("object");
    if let Some(n) = name {
        meta.insert("name".into(), json!(n));
    }
    if let Some(g) = generate_name {
        meta.insert("generateName".into(), json!(g));
    }
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    for (k, v) in extra_labels {
        labels[k] = json!(v);
    }
    meta.insert("ownerReferences".into(), json!([owner]));
    serde_json::from_value(pod)
}

async fn reconcile_deployment(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, WorkloadError> {
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = d.namespace().unwrap_or_default();
    let rss: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let spec = d.spec.clone().unwrap_or_default();
    let template = serde_json::to_value(&spec.template)?;
    let hash = template_hash(&template);
    let replicas = spec.replicas.unwrap_or(1);
    let rs_name = format!("{}-{hash}", d.name_any());
    let owned: Vec<ReplicaSet> = rss
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|r| owned_by(&r.metadata, d.metadata.uid.as_deref()))
        .collect();
    for old in owned.iter().filter(|r| r.name_any() != rs_name) {
        if old.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) != 0 {
            rss.patch(
                &old.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 0}})),
            )
            .await?;
        }
    }
    let current = owned.iter().find(|r| r.name_any() == rs_name);
    match current {
        None => {
            let mut tpl = template.clone();
            tpl["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            let mut selector = serde_json::to_value(&spec.selector)?;
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let rs: ReplicaSet = serde_json::from_value(json!({
                "metadata": {"name": rs_name, "labels": tpl["metadata"]["labels"].clone(), "ownerReferences": [owner_ref(d.as_ref())]},
                "spec": {"replicas": replicas, "selector": selector, "template": tpl},
            }))?;
            match rss.create(&PostParams::default(), &rs).await {
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                r => {
                    r?;
                }
            }
        }
        Some(rs) if rs.spec.as_ref().and_then(|s| s.replicas) != Some(replicas) => {
            rss.patch(
                &rs_name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
            )
            .await?;
        }
        Some(_) => {}
    }
    let status = current.and_then(|r| r.status.clone()).unwrap_or_default();
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    deployments
        .patch_status(
            &d.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "observedGeneration": d.metadata.generation,
                "replicas": status.replicas,
                "updatedReplicas": status.replicas,
                "readyReplicas": status.ready_replicas.unwrap_or(0),
                "availableReplicas": status.available_replicas.unwrap_or(0),
            }})),
        )
        .await?;
    Ok(Action::requeue(Duration::from_secs(2)))
}

async fn reconcile_replicaset(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action, WorkloadError> {
    if rs.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = rs.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let spec = rs.spec.clone().unwrap_or_default();
    let want = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
    let mut mine: Vec<Pod> = pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| owned_by(&p.metadata, rs.metadata.uid.as_deref()) && is_active(p))
        .collect();
    let template = serde_json::to_value(&spec.template)?;
    for _ in mine.len()..want {
        let pod = pod_from_template(
            &template,
            None,
            Some(&format!("{}-", rs.name_any())),
            &BTreeMap::new(),
            owner_ref(rs.as_ref()),
        )?;
        pods.create(&PostParams::default(), &pod).await?;
    }
    if mine.len() > want {
        // Delete not-ready pods first, then the newest.
        mine.sort_by_key(|p| {
            (
                is_ready(p),
                std::cmp::Reverse(p.metadata.creation_timestamp.clone()),
            )
        });
        for p in mine.iter().take(mine.len() - want) {
            pods.delete(&p.name_any(), &DeleteParams::default()).await?;
        }
    }
    let count = mine.len().min(want) as i32;
    let ready = mine.iter().filter(|p| is_ready(p)).count().min(want) as i32;
    let rss: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    rss.patch_status(
        &rs.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "observedGeneration": rs.metadata.generation, "replicas": count,
            "readyReplicas": ready, "availableReplicas": ready, "fullyLabeledReplicas": count,
        }})),
    )
    .await?;
    Ok(Action::requeue(Duration::from_secs(1)))
}

/// A Job: one pod at a time (parallelism and completions 1) until one succeeds; `suspend: true`
/// deletes its active pods and starts none (as the real Job controller does), resuming starts one.
async fn reconcile_job(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, WorkloadError> {
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = job.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let spec = job.spec.clone().unwrap_or_default();
    let mine: Vec<Pod> = pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| owned_by(&p.metadata, job.metadata.uid.as_deref()))
        .collect();
    let phase = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default()
    };
    let succeeded = mine.iter().filter(|p| phase(p) == "Succeeded").count() as i32;
    let failed = mine.iter().filter(|p| phase(p) == "Failed").count() as i32;
    let active: Vec<&Pod> = mine.iter().filter(|p| is_active(p)).collect();
    let suspended = spec.suspend.unwrap_or(false);
    if suspended {
        for p in &active {
            pods.delete(&p.name_any(), &DeleteParams::default()).await?;
        }
    } else if succeeded == 0 && active.is_empty() && failed <= spec.backoff_limit.unwrap_or(6) {
        let template = serde_json::to_value(&spec.template)?;
        let labels = BTreeMap::from([("job-name".to_owned(), job.name_any())]);
        let pod = pod_from_template(
            &template,
            None,
            Some(&format!("{}-", job.name_any())),
            &labels,
            owner_ref(job.as_ref()),
        )?;
        pods.create(&PostParams::default(), &pod).await?;
    }
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let active_now = if suspended { 0 } else { active.len() as i32 };
    jobs.patch_status(
        &job.name_any(),
        &PatchParams::default(),
        &Patch::Merge(
            json!({"status": {"active": active_now, "succeeded": succeeded, "failed": failed}}),
        ),
    )
    .await?;
    Ok(Action::requeue(Duration::from_secs(1)))
}

async fn reconcile_statefulset(
    s: Arc<StatefulSet>,
    ctx: Arc<Ctx>,
) -> Result<Action, WorkloadError> {
    if s.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = s.namespace().unwrap_or_default();
    let name = s.name_any();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let spec = s.spec.clone().unwrap_or_default();
    let want = spec.replicas.unwrap_or(1).max(0);
    let existing: BTreeMap<String, Pod> = pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| owned_by(&p.metadata, s.metadata.uid.as_deref()))
        .map(|p| (p.name_any(), p))
        .collect();
    let template = serde_json::to_value(&spec.template)?;
    let mut ready = 0;
    for i in 0..want {
        let pod_name = format!("{name}-{i}");
        if let Some(p) = existing.get(&pod_name) {
            if is_ready(p) {
                ready += 1;
            }
            continue;
        }
        let mut tpl = template.clone();
        for t in spec.volume_claim_templates.iter().flatten() {
            let tname = t.metadata.name.clone().unwrap_or_default();
            let claim_name = format!("{tname}-{name}-{i}");
            if claims.get_opt(&claim_name).await?.is_none() {
                let mut pvc = serde_json::to_value(t)?;
                pvc["metadata"] =
                    json!({"name": claim_name, "labels": template["metadata"]["labels"].clone()});
                pvc.as_object_mut().map(|o| o.remove("status"));
                claims
                    .create(&PostParams::default(), &serde_json::from_value(pvc)?)
                    .await?;
            }
            let vols = tpl["spec"]["volumes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut vols: Vec<Value> = vols
                .into_iter()
                .filter(|v| v["name"] != json!(tname))
                .collect();
            vols.push(json!({"name": tname, "persistentVolumeClaim": {"claimName": claim_name}}));
            tpl["spec"]["volumes"] = json!(vols);
        }
        let labels = BTreeMap::from([
            (
                "statefulset.kubernetes.io/pod-name".to_owned(),
                pod_name.clone(),
            ),
            ("apps.kubernetes.io/pod-index".to_owned(), i.to_string()),
        ]);
        let mut pod =
            pod_from_template(&tpl, Some(&pod_name), None, &labels, owner_ref(s.as_ref()))?;
        if let Some(spec) = pod.spec.as_mut() {
            spec.hostname = Some(pod_name.clone());
        }
        match pods.create(&PostParams::default(), &pod).await {
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            r => {
                r?;
            }
        }
        if spec.pod_management_policy.as_deref() != Some("Parallel") {
            // OrderedReady: one pod at a time.
            break;
        }
    }
    // Scale down from the highest ordinal; PVCs stay.
    for (pod_name, p) in existing.iter().rev() {
        let ordinal: i32 = pod_name
            .rsplit('-')
            .next()
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        if ordinal >= want && p.metadata.deletion_timestamp.is_none() {
            pods.delete(pod_name, &DeleteParams::default()).await?;
        }
    }
    let current = existing
        .keys()
        .filter(|n| {
            n.rsplit('-')
                .next()
                .and_then(|o| o.parse::<i32>().ok())
                .is_some_and(|o| o < want)
        })
        .count();
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    sets.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": {
        "observedGeneration": s.metadata.generation, "replicas": current,
        "readyReplicas": ready, "currentReplicas": current, "updatedReplicas": current, "availableReplicas": ready,
    }})))
    .await?;
    Ok(Action::requeue(Duration::from_secs(1)))
}

fn retry<K>(_: Arc<K>, e: &WorkloadError, _: Arc<Ctx>) -> Action {
    tracing::debug!(error = %e, "workload reconcile failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

async fn run_deployments(ctx: Arc<Ctx>) {
    let c = ctx.client.clone();
    Controller::new(
        Api::<Deployment>::all(c.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<ReplicaSet>::all(c), watcher::Config::default())
    .run(reconcile_deployment, retry, ctx)
    .for_each(|_| async {})
    .await;
}

async fn run_replicasets(ctx: Arc<Ctx>) {
    let c = ctx.client.clone();
    Controller::new(
        Api::<ReplicaSet>::all(c.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Pod>::all(c), watcher::Config::default())
    .run(reconcile_replicaset, retry, ctx)
    .for_each(|_| async {})
    .await;
}

async fn run_jobs(ctx: Arc<Ctx>) {
    let c = ctx.client.clone();
    Controller::new(Api::<Job>::all(c.clone()), watcher::Config::default())
        .owns(Api::<Pod>::all(c), watcher::Config::default())
        .run(reconcile_job, retry, ctx)
        .for_each(|_| async {})
        .await;
}

async fn run_statefulsets(ctx: Arc<Ctx>) {
    let c = ctx.client.clone();
    Controller::new(
        Api::<StatefulSet>::all(c.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Pod>::all(c), watcher::Config::default())
    .run(reconcile_statefulset, retry, ctx)
    .for_each(|_| async {})
    .await;
}
