//! An in-place restore as data: the workloads that mount the PVC (found from its pods and their
//! owners: ReplicaSet → Deployment, StatefulSet, DaemonSet, Job → CronJob, or none; and CronJobs
//! and scaled workloads whose templates mount it), what is recorded on each and how each is
//! stopped and brought back, what is refused unless a flag accepts it, the safety snapshot, and
//! the steps; and, for a run that was killed, what its marks say is left to do.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use k8s_openapi::api::core::v1::PersistentVolumeClaim;

use super::Source;
use crate::model::labels::{MANAGED_BY, MANAGER, PIN};
use crate::mover::pod::{self, CloneSource};
use crate::plan::backup::clone_shape;
use crate::plan::snapshot::PlannedSnapshot;

pub use crate::model::labels::{IN_PROGRESS_ANNOTATION, SAFETY_LABEL, STOPPED_ANNOTATION};

/// A kind of workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// Scaled to 0 and back.
    Deployment,
    /// Scaled to 0 and back.
    StatefulSet,
    /// Suspended and resumed.
    CronJob,
    /// Suspended (its pods end) and resumed.
    Job,
    /// Cannot be stopped by scaling: refused.
    DaemonSet,
    /// A pod of no workload: deleted, when accepted (not recreated).
    Pod,
    /// A controller kentledge does not know how to stop (an operator's custom resource, a
    /// ReplicationController, a ReplicaSet of no Deployment): refused. The name is `Kind/name`.
    Foreign,
}

impl Kind {
    /// As Kubernetes spells it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::CronJob => "CronJob",
            Kind::Job => "Job",
            Kind::DaemonSet => "DaemonSet",
            Kind::Pod => "Pod",
            Kind::Foreign => "controller",
        }
    }
}

/// A workload that mounts the PVC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Workload {
    /// Its kind.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// Replicas now (Deployments, StatefulSets).
    pub replicas: Option<i32>,
    /// Suspended now (CronJobs, Jobs).
    pub suspended: Option<bool>,
    /// Its pods that mount the PVC.
    pub pods: Vec<String>,
    /// The HorizontalPodAutoscaler that scales it.
    pub autoscaler: Option<String>,
    /// The GitOps controller that manages it (and may undo a scale-down).
    pub gitops: Option<String>,
    /// The PVC of an unfinished in-place restore that stopped it already (its record).
    pub stopped_for: Option<String>,
}

/// What is recorded on a workload before it is stopped, to bring it back as it was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recorded {
    /// The restore's run.
    pub run: String,
    /// The PVC restored.
    pub pvc: String,
    /// Replicas before (Deployments, StatefulSets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// `spec.suspend` before (CronJobs, Jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// How far an in-place restore got (recorded on the PVC as it goes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Stopping the workloads.
    Stopping,
    /// Taking the safety snapshot.
    SafetySnapshot,
    /// Replacing the data: it may be half old, half new.
    Replacing,
    /// The data is the source's.
    Replaced,
    /// Putting the old data back from the safety snapshot.
    RollingBack,
    /// The old data is back.
    RolledBack,
}

impl Phase {
    /// For logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Stopping => "stopping workloads",
            Phase::SafetySnapshot => "taking the safety snapshot",
            Phase::Replacing => "replacing the data",
            Phase::Replaced => "the data replaced",
            Phase::RollingBack => "putting the old data back",
            Phase::RolledBack => "the old data put back",
        }
    }
}

/// The PVC's in-progress mark.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// The config whose restore it is.
    #[serde(default)]
    pub config: String,
    /// The restore's run.
    pub run: String,
    /// How far it got.
    pub phase: Phase,
    /// The safety snapshot, once taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_snapshot: Option<String>,
    /// What it restores from, for people.
    pub from: String,
}

/// What a restore of a killed run must do next, from its marks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resume {
    /// The data may be half restored (or the rollback was cut): put the safety snapshot back,
    /// then bring the workloads back.
    RollBack {
        /// The safety snapshot.
        snapshot: String,
    },
    /// The data is whole (old or new): bring the workloads back.
    Restart,
    /// The data may be half restored and there is no safety snapshot to put back: say so.
    Stuck,
}

/// A PVC's in-progress mark: `None` when it has none; an error when it has one that cannot be
/// read (never taken for none).
pub fn mark(p: &PersistentVolumeClaim) -> Result<Option<Progress>, String> {
    let Some(v) = p
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(IN_PROGRESS_ANNOTATION))
    else {
        return Ok(None);
    };
    serde_json::from_str(v).map(Some).map_err(|e| {
        format!(
            "PVC {}: its {IN_PROGRESS_ANNOTATION} annotation cannot be read ({e}): {v}",
            p.metadata.name.as_deref().unwrap_or_default()
        )
    })
}

/// A workload's record of an in-place restore that stopped it (`None`: none; an unreadable one
/// is an error).
pub fn record_of(meta: &ObjectMeta) -> Result<Option<Recorded>, String> {
    let Some(v) = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(STOPPED_ANNOTATION))
    else {
        return Ok(None);
    };
    serde_json::from_str(v).map(Some).map_err(|e| {
        format!(
            "{}: its {STOPPED_ANNOTATION} annotation cannot be read ({e}): {v}",
            meta.name.as_deref().unwrap_or_default()
        )
    })
}

/// The PVCs with an in-place restore of `config` that did not finish, with their marks (or why
/// a mark cannot be read).
pub fn unfinished<'a>(
    pvcs: &'a [PersistentVolumeClaim],
    config: &str,
) -> Vec<(&'a str, Result<Progress, String>)> {
    pvcs.iter()
        .filter_map(|p| {
            let name = p.metadata.name.as_deref().unwrap_or_default();
            match mark(p) {
                Ok(Some(m)) if m.config == config => Some((name, Ok(m))),
                Ok(_) => None,
                Err(e) => Some((name, Err(e))),
            }
        })
        .collect()
}

/// What to do about a killed run's restore, given its mark.
pub fn resume(p: &Progress) -> Resume {
    match (p.phase, &p.safety_snapshot) {
        (Phase::Stopping | Phase::SafetySnapshot, _) => Resume::Restart,
        (Phase::Replaced | Phase::RolledBack, _) => Resume::Restart,
        (Phase::Replacing | Phase::RollingBack, Some(s)) => Resume::RollBack {
            snapshot: s.clone(),
        },
        (Phase::Replacing | Phase::RollingBack, None) => Resume::Stuck,
    }
}

/// What flags accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Accept {
    /// Delete pods of no workload that mount the PVC.
    pub bare_pods: bool,
    /// Scale workloads an autoscaler scales (to 0 pauses it; scaling back resumes it).
    pub autoscaled: bool,
    /// Stop workloads a GitOps controller manages (it may scale them back up meanwhile).
    pub gitops: bool,
}

/// The objects workloads are found in.
#[derive(Clone, Copy, Debug, Default)]
pub struct Observed<'a> {
    /// Pods.
    pub pods: &'a [Pod],
    /// ReplicaSets.
    pub replicasets: &'a [ReplicaSet],
    /// Deployments.
    pub deployments: &'a [Deployment],
    /// StatefulSets.
    pub statefulsets: &'a [StatefulSet],
    /// DaemonSets.
    pub daemonsets: &'a [DaemonSet],
    /// Jobs.
    pub jobs: &'a [Job],
    /// CronJobs.
    pub cronjobs: &'a [CronJob],
    /// HorizontalPodAutoscalers.
    pub autoscalers: &'a [HorizontalPodAutoscaler],
}

fn mounts(spec: Option<&PodSpec>, pvc: &str) -> bool {
    spec.and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .any(|v| {
            v.persistent_volume_claim
                .as_ref()
                .is_some_and(|c| c.claim_name == pvc)
        })
}

fn finished(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|ph| ph == "Succeeded" || ph == "Failed")
}

/// Whether `p` is one of kentledge's own pods (a mover) that mounts `pvc` and has not finished.
pub fn is_mover_mounting(p: &Pod, pvc: &str) -> bool {
    let ours = p
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY))
        .is_some_and(|v| v == MANAGER);
    ours && !finished(p) && mounts(p.spec.as_ref(), pvc)
}

fn controller(meta: &ObjectMeta) -> Option<(String, String)> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| (o.kind.clone(), o.name.clone()))
}

fn by_name<'a, K: k8s_openapi::Metadata<Ty = ObjectMeta>>(
    items: &'a [K],
    name: &str,
) -> Option<&'a K> {
    items
        .iter()
        .find(|i| i.metadata().name.as_deref() == Some(name))
}

/// The GitOps controller that manages an object, from the labels and annotations Flux and
/// Argo CD put on what they apply.
pub fn gitops(meta: &ObjectMeta) -> Option<String> {
    let labels = meta.labels.clone().unwrap_or_default();
    let annotations = meta.annotations.clone().unwrap_or_default();
    for (key, what) in [
        ("kustomize.toolkit.fluxcd.io/name", "Flux Kustomization"),
        ("helm.toolkit.fluxcd.io/name", "Flux HelmRelease"),
        ("argocd.argoproj.io/instance", "Argo CD Application"),
    ] {
        if let Some(v) = labels.get(key) {
            return Some(format!("{what} {v}"));
        }
    }
    annotations
        .get("argocd.argoproj.io/tracking-id")
        .map(|v| format!("Argo CD Application {}", v.split(':').next().unwrap_or(v)))
}

/// Every workload that mounts `pvc`, by kind and name.
pub fn workloads(pvc: &str, o: &Observed<'_>) -> Vec<Workload> {
    let mut found: BTreeMap<(Kind, String), Workload> = BTreeMap::new();
    let mut add = |kind: Kind, name: &str, pod: Option<&str>| {
        let w = found.entry((kind, name.to_owned())).or_insert(Workload {
            kind,
            name: name.to_owned(),
            replicas: None,
            suspended: None,
            pods: Vec::new(),
            autoscaler: None,
            gitops: None,
            stopped_for: None,
        });
        if let Some(p) = pod {
            w.pods.push(p.to_owned());
        }
    };
    for p in o.pods {
        let labels = p.metadata.labels.clone().unwrap_or_default();
        if finished(p)
            || labels.get(MANAGED_BY).map(String::as_str) == Some(MANAGER)
            || !mounts(p.spec.as_ref(), pvc)
        {
            continue;
        }
        let name = p.metadata.name.as_deref().unwrap_or_default();
        match controller(&p.metadata) {
            Some((k, rs)) if k == "ReplicaSet" => {
                let owner = by_name(o.replicasets, &rs).and_then(|r| controller(&r.metadata));
                match owner {
                    Some((k, d)) if k == "Deployment" => add(Kind::Deployment, &d, Some(name)),
                    _ => add(Kind::Foreign, &format!("ReplicaSet/{rs}"), Some(name)),
                }
            }
            Some((k, s)) if k == "StatefulSet" => add(Kind::StatefulSet, &s, Some(name)),
            Some((k, d)) if k == "DaemonSet" => add(Kind::DaemonSet, &d, Some(name)),
            Some((k, j)) if k == "Job" => {
                let owner = by_name(o.jobs, &j).and_then(|j| controller(&j.metadata));
                match owner {
                    Some((k, c)) if k == "CronJob" => {
                        add(Kind::CronJob, &c, None);
                        add(Kind::Job, &j, Some(name));
                    }
                    _ => add(Kind::Job, &j, Some(name)),
                }
            }
            Some((k, o)) => add(Kind::Foreign, &format!("{k}/{o}"), Some(name)),
            None => add(Kind::Pod, name, Some(name)),
        }
    }
    // Workloads that would start pods mounting it during the restore.
    for d in o.deployments {
        let spec = d.spec.as_ref();
        if spec.and_then(|s| s.replicas).unwrap_or(1) > 0
            && mounts(spec.and_then(|s| s.template.spec.as_ref()), pvc)
        {
            add(
                Kind::Deployment,
                d.metadata.name.as_deref().unwrap_or_default(),
                None,
            );
        }
    }
    for s in o.statefulsets {
        let spec = s.spec.as_ref();
        if spec.and_then(|s| s.replicas).unwrap_or(1) > 0
            && mounts(spec.and_then(|s| s.template.spec.as_ref()), pvc)
        {
            add(
                Kind::StatefulSet,
                s.metadata.name.as_deref().unwrap_or_default(),
                None,
            );
        }
    }
    for c in o.cronjobs {
        let template = c
            .spec
            .as_ref()
            .and_then(|s| s.job_template.spec.as_ref())
            .and_then(|j| j.template.spec.as_ref());
        if mounts(template, pvc) {
            add(
                Kind::CronJob,
                c.metadata.name.as_deref().unwrap_or_default(),
                None,
            );
        }
    }
    let mut out: Vec<Workload> = found.into_values().collect();
    for w in &mut out {
        let meta = match w.kind {
            Kind::Deployment => by_name(o.deployments, &w.name).map(|d| {
                w.replicas = Some(d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1));
                &d.metadata
            }),
            Kind::StatefulSet => by_name(o.statefulsets, &w.name).map(|s| {
                w.replicas = Some(s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1));
                &s.metadata
            }),
            Kind::CronJob => by_name(o.cronjobs, &w.name).map(|c| {
                w.suspended = Some(c.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false));
                &c.metadata
            }),
            Kind::Job => by_name(o.jobs, &w.name).map(|j| {
                w.suspended = Some(j.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false));
                &j.metadata
            }),
            Kind::DaemonSet => by_name(o.daemonsets, &w.name).map(|d| &d.metadata),
            Kind::Pod => by_name(o.pods, &w.name).map(|p| &p.metadata),
            Kind::Foreign => None,
        };
        w.gitops = meta.and_then(gitops);
        // An unreadable record is taken as stopped by someone (refused, never overwritten).
        w.stopped_for = meta.and_then(|m| match record_of(m) {
            Ok(r) => r.map(|r| r.pvc),
            Err(e) => Some(e),
        });
        w.autoscaler = o
            .autoscalers
            .iter()
            .find(|h| {
                h.spec.as_ref().is_some_and(|s| {
                    s.scale_target_ref.kind == w.kind.name() && s.scale_target_ref.name == w.name
                })
            })
            .and_then(|h| h.metadata.name.clone());
    }
    out
}

/// What the flags do not accept, each with how it is handled when accepted; and what no flag
/// accepts.
pub fn refusals(workloads: &[Workload], accept: Accept) -> Vec<String> {
    let mut out = Vec::new();
    for w in workloads {
        let what = format!("{} {}", w.kind.name(), w.name);
        if let Some(p) = &w.stopped_for {
            out.push(format!(
                "{what} was stopped by an in-place restore that did not finish ({STOPPED_ANNOTATION}: {p}): finish that one with --resume first"
            ));
        }
        match w.kind {
            Kind::DaemonSet => out.push(format!(
                "{what} mounts the PVC: a DaemonSet cannot be scaled to zero; stop it yourself (delete it and apply it again afterwards), then restore"
            )),
            Kind::Foreign => out.push(format!(
                "{} controls pods that mount the PVC ({}): kentledge cannot stop it; stop it yourself (scale it to zero), then restore",
                w.name,
                w.pods.join(", ")
            )),
            Kind::Pod if !accept.bare_pods => out.push(format!(
                "{what} mounts the PVC and belongs to no workload: with --accept bare-pods it is deleted before the restore and NOT recreated (recreate it afterwards)"
            )),
            _ => {}
        }
        if let Some(h) = &w.autoscaler
            && !accept.autoscaled
        {
            out.push(format!(
                "{what} is scaled by HorizontalPodAutoscaler {h}: with --accept autoscaled it is scaled to 0 (which pauses the autoscaler) and back to {} afterwards",
                w.replicas.unwrap_or(1)
            ));
        }
        if let Some(g) = &w.gitops
            && !accept.gitops
        {
            out.push(format!(
                "{what} is managed by {g}, which may scale it back up during the restore: suspend its sync first, then pass --accept gitops"
            ));
        }
    }
    out
}

/// How each workload is stopped, for the plan.
pub fn stop_step(w: &Workload) -> String {
    match w.kind {
        Kind::Deployment | Kind::StatefulSet => format!(
            "scale {} {} from {} to 0 (recorded in {STOPPED_ANNOTATION})",
            w.kind.name(),
            w.name,
            w.replicas.unwrap_or(1)
        ),
        Kind::CronJob | Kind::Job => format!(
            "suspend {} {} (was {}; recorded in {STOPPED_ANNOTATION})",
            w.kind.name(),
            w.name,
            if w.suspended == Some(true) {
                "suspended"
            } else {
                "not suspended"
            }
        ),
        Kind::Pod => format!("delete Pod {} (it is not recreated)", w.name),
        Kind::DaemonSet => format!("DaemonSet {} cannot be stopped", w.name),
        Kind::Foreign => format!("{} cannot be stopped", w.name),
    }
}

/// How the PVC's data is replaced.
#[derive(Clone, Debug, Serialize)]
pub struct Replace {
    /// The clone of a snapshot the data is copied from (a snapshot source).
    pub clone: Option<PersistentVolumeClaim>,
    /// The pod that writes the PVC: a sync pod (from the clone) or a restore mover (archive).
    pub pod: Pod,
}

/// An in-place restore.
#[derive(Clone, Debug, Serialize)]
pub struct InPlace {
    /// The PVC restored.
    pub pvc: String,
    /// What it is restored from.
    pub source: Source,
    /// The workloads stopped around it.
    pub workloads: Vec<Workload>,
    /// The safety snapshot of the PVC as it is before the restore (pinned).
    pub safety: PlannedSnapshot,
    /// How the data is replaced.
    pub replace: Replace,
    /// The restore job of an archive source.
    pub job: Option<crate::mover::job::Job>,
}

/// Pod and clone `index` of a restore run: 1 replaces the data, 3 puts the safety snapshot back.
pub const REPLACE_INDEX: usize = 1;
/// See [`REPLACE_INDEX`].
pub const ROLLBACK_INDEX: usize = 3;

/// The clone of `snapshot` and the sync pod that copies it onto `pvc` (the data step of a
/// snapshot source, or the rollback from the safety snapshot).
pub fn sync_from_snapshot(
    c: &super::Context<'_>,
    index: usize,
    snapshot: &str,
    pvc: &str,
    source_pvc: Option<&PersistentVolumeClaim>,
    restore_size: Option<&str>,
) -> Replace {
    let ctx = pod::Context {
        namespace: c.namespace,
        config: &c.config.metadata.name,
        run_id: c.run_id,
        owner: None,
    };
    let (pod_name, clone_name) = pod::names(c.namespace, c.run_id, index);
    let (storage_class, access_modes, size) =
        clone_shape(&c.config.spec.mover.clone, source_pvc, restore_size);
    let clone = pod::clone_pvc(
        &ctx,
        &clone_name,
        &CloneSource {
            snapshot,
            pvc,
            storage_class: storage_class.as_deref(),
            access_modes,
            size: &size,
        },
    );
    let label = crate::model::labels::pvc_label_value(pvc);
    let pod = pod::sync_pod(
        &ctx,
        &pod_name,
        &c.config.spec.mover,
        &clone_name,
        pvc,
        &label,
    );
    Replace {
        clone: Some(clone),
        pod,
    }
}

/// The safety snapshot: the run's snapshot of the PVC, pinned and labelled as a safety snapshot
/// (backups do not copy it; prune keeps it until the pin is removed).
pub fn safety(mut s: PlannedSnapshot, run_id: &str) -> PlannedSnapshot {
    s.labels.insert(PIN.to_owned(), "true".to_owned());
    s.labels.insert(SAFETY_LABEL.to_owned(), run_id.to_owned());
    s.name = format!("{}-safety", s.name);
    s
}

/// The plan of an in-place restore.
pub fn plan(
    c: &super::Context<'_>,
    pvc: &PersistentVolumeClaim,
    source: Source,
    workloads: Vec<Workload>,
    safety: PlannedSnapshot,
) -> InPlace {
    let name = pvc.metadata.name.clone().unwrap_or_default();
    let (replace, job) = match &source {
        Source::Snapshot {
            name: snap,
            restore_size,
            ..
        } => (
            sync_from_snapshot(
                c,
                REPLACE_INDEX,
                snap,
                &name,
                Some(pvc),
                restore_size.as_deref(),
            ),
            None,
        ),
        Source::Archive {
            repository, entry, ..
        } => {
            let (p, job) = super::restore_mover(c, &name, repository, &entry.archive, &name, true);
            (
                Replace {
                    clone: None,
                    pod: p,
                },
                Some(job),
            )
        }
    };
    InPlace {
        pvc: name,
        source,
        workloads,
        safety,
        replace,
        job,
    }
}

/// The plan for people (`--dry-run`).
pub fn render(p: &InPlace) -> String {
    let mut out = format!(
        "restore PVC {} in place\n  from {}\n",
        p.pvc,
        p.source.describe()
    );
    let mut n = 0;
    let mut step = |out: &mut String, text: String| {
        n += 1;
        out.push_str(&format!("  {n}. {text}\n"));
    };
    if p.workloads.is_empty() {
        step(
            &mut out,
            "no workload mounts the PVC: nothing to stop".into(),
        );
    }
    for w in &p.workloads {
        step(&mut out, stop_step(w));
    }
    step(&mut out, format!("wait until no pod mounts {}", p.pvc));
    step(
        &mut out,
        format!(
            "take the safety snapshot {} (class {}, pinned, labelled {SAFETY_LABEL})",
            p.safety.name, p.safety.class
        ),
    );
    let data = match (&p.source, &p.replace.clone) {
        (Source::Snapshot { name, .. }, Some(c)) => format!(
            "clone {name} as {} and copy it onto {} in pod {} (rsync: files not in the snapshot are removed)",
            c.metadata.name.as_deref().unwrap_or_default(),
            p.pvc,
            p.replace.pod.metadata.name.as_deref().unwrap_or_default()
        ),
        (Source::Archive { entry, .. }, _) => format!(
            "empty {} and extract {} into it in mover pod {}",
            p.pvc,
            entry.archive,
            p.replace.pod.metadata.name.as_deref().unwrap_or_default()
        ),
        _ => String::new(),
    };
    step(&mut out, data);
    step(
        &mut out,
        "verify entries and bytes against the source".into(),
    );
    for w in &p.workloads {
        let back = match w.kind {
            Kind::Deployment | Kind::StatefulSet => format!(
                "scale {} {} back to {} and wait until ready",
                w.kind.name(),
                w.name,
                w.replicas.unwrap_or(1)
            ),
            Kind::CronJob | Kind::Job if w.suspended == Some(true) => {
                format!("leave {} {} suspended, as it was", w.kind.name(), w.name)
            }
            Kind::CronJob | Kind::Job => format!("resume {} {}", w.kind.name(), w.name),
            Kind::Pod => format!("(Pod {} is not recreated: recreate it)", w.name),
            Kind::DaemonSet | Kind::Foreign => String::new(),
        };
        step(&mut out, back);
    }
    out.push_str(&format!(
        "  on failure, timeout or SIGTERM/SIGINT: the old data is put back from {} (if the data step began) and the workloads are brought back; after SIGKILL, `kentledge restore volume {} --in-place --resume` does it\n",
        p.safety.name, p.pvc
    ));
    out
}

#[cfg(test)]
mod tests;
