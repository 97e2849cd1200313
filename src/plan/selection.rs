//! Which PVCs a snapshot run covers: the config's targets (by name, label selector or workload)
//! matched against the observed PVCs and workloads, narrowed by `--target`. Pure: the caller
//! lists the objects once; unbound and missing PVCs are reported with the reason.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PodSpec};

use crate::config::{LabelSelector, SelectorOperator, Snapshots, WorkloadKind};

/// Whether `labels` satisfy `selector` (matchLabels and matchExpressions, ANDed).
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    selector
        .match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
        && selector.match_expressions.iter().all(|r| {
            let value = labels.get(&r.key);
            match r.operator {
                SelectorOperator::In => value.is_some_and(|v| r.values.contains(v)),
                SelectorOperator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                SelectorOperator::Exists => value.is_some(),
                SelectorOperator::DoesNotExist => value.is_none(),
            }
        })
}

/// A PVC the run will snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    /// The PVC's name.
    pub pvc: String,
    /// The class the target asked for (else the config's default, else the driver's default).
    pub class: Option<String>,
    /// The targets that selected it (indexes into `spec.snapshots.targets`).
    pub targets: Vec<usize>,
}

/// A PVC that a target named or matched but that cannot be snapshotted, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The PVC's name.
    pub pvc: String,
    /// Why.
    pub reason: String,
}

/// The outcome of selection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// PVCs to snapshot, by name.
    pub chosen: Vec<Chosen>,
    /// PVCs reported and skipped.
    pub skipped: Vec<Skipped>,
    /// Targets that matched nothing, as messages.
    pub unmatched: Vec<String>,
}

/// What selection looks at: one list per kind, as observed.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// PVCs of the namespace.
    pub pvcs: &'a [PersistentVolumeClaim],
    /// Deployments of the namespace.
    pub deployments: &'a [Deployment],
    /// StatefulSets of the namespace.
    pub statefulsets: &'a [StatefulSet],
}

fn claim_names(spec: Option<&PodSpec>) -> Vec<String> {
    spec.and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| {
            v.persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.clone())
        })
        .collect()
}

/// The PVC names a workload mounts: template volumes, and for a StatefulSet every existing PVC
/// of its volumeClaimTemplates (`<template>-<statefulset>-<ordinal>`, scaled-down ordinals too).
fn workload_pvcs(kind: WorkloadKind, name: &str, o: &Observed) -> Option<Vec<String>> {
    match kind {
        WorkloadKind::Deployment => {
            let d = o
                .deployments
                .iter()
                .find(|d| d.metadata.name.as_deref() == Some(name))?;
            Some(claim_names(
                d.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
            ))
        }
        WorkloadKind::StatefulSet => {
            let s = o
                .statefulsets
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(name))?;
            let spec = s.spec.as_ref();
            let mut names = claim_names(spec.and_then(|s| s.template.spec.as_ref()));
            for t in spec
                .and_then(|s| s.volume_claim_templates.as_ref())
                .into_iter()
                .flatten()
            {
                let prefix = format!("{}-{name}-", t.metadata.name.as_deref().unwrap_or(""));
                for pvc in o.pvcs {
                    let pvc_name = pvc.metadata.name.as_deref().unwrap_or("");
                    if pvc_name.strip_prefix(&prefix).is_some_and(|ord| {
                        !ord.is_empty() && ord.chars().all(|c| c.is_ascii_digit())
                    }) {
                        names.push(pvc_name.to_owned());
                    }
                }
            }
            Some(names)
        }
    }
}

/// Selects the PVCs of a run. `only` narrows to these PVC names (`--target`); a name that no
/// target selects is reported as unmatched.
pub fn select(config: &Snapshots, observed: &Observed, only: &[String]) -> Selection {
    let by_name: BTreeMap<&str, &PersistentVolumeClaim> = observed
        .pvcs
        .iter()
        .filter_map(|p| p.metadata.name.as_deref().map(|n| (n, p)))
        .collect();
    let mut chosen: BTreeMap<String, Chosen> = BTreeMap::new();
    let mut skipped: BTreeMap<String, String> = BTreeMap::new();
    let mut unmatched = Vec::new();
    for (i, t) in config.targets.iter().enumerate() {
        let (what, names): (String, Vec<String>) = if let Some(pvc) = &t.pvc {
            (format!("PVC {pvc}"), vec![pvc.clone()])
        } else if let Some(sel) = &t.selector {
            let names = observed
                .pvcs
                .iter()
                .filter(|p| matches(sel, p.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())))
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            (format!("selector of targets[{i}]"), names)
        } else if let Some(w) = &t.workload {
            let what = format!("{:?} {}", w.kind, w.name);
            match workload_pvcs(w.kind, &w.name, observed) {
                Some(names) => (what, names),
                None => {
                    unmatched.push(format!("{what} does not exist"));
                    continue;
                }
            }
        } else {
            continue;
        };
        if names.is_empty() {
            unmatched.push(format!("{what} selects no PVC"));
        }
        for name in names {
            let Some(pvc) = by_name.get(name.as_str()) else {
                skipped.insert(name.clone(), format!("PVC {name} does not exist"));
                continue;
            };
            if pvc.metadata.deletion_timestamp.is_some() {
                skipped.insert(name.clone(), "being deleted".into());
                continue;
            }
            let phase = pvc.status.as_ref().and_then(|s| s.phase.as_deref());
            if phase != Some("Bound") {
                skipped.insert(
                    name.clone(),
                    format!("not bound (phase {})", phase.unwrap_or("unknown")),
                );
                continue;
            }
            let entry = chosen.entry(name.clone()).or_insert_with(|| Chosen {
                pvc: name.clone(),
                class: None,
                targets: Vec::new(),
            });
            entry.targets.push(i);
            if entry.class.is_none() {
                entry.class = t.volume_snapshot_class_name.clone();
            }
        }
    }
    if !only.is_empty() {
        let wanted: BTreeSet<&str> = only.iter().map(String::as_str).collect();
        chosen.retain(|name, _| wanted.contains(name.as_str()));
        skipped.retain(|name, _| wanted.contains(name.as_str()));
        for name in &wanted {
            if !chosen.contains_key(*name) && !skipped.contains_key(*name) {
                unmatched.push(format!(
                    "--target {name}: no target of the config selects it"
                ));
            }
        }
    }
    for c in chosen.values_mut() {
        if c.class.is_none() {
            c.class = config.volume_snapshot_class_name.clone();
        }
    }
    Selection {
        chosen: chosen.into_values().collect(),
        skipped: skipped
            .into_iter()
            .map(|(pvc, reason)| Skipped { pvc, reason })
            .collect(),
        unmatched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LabelSelectorRequirement, Target, WorkloadRef};
    use pretty_assertions::assert_eq;

    fn pvc(name: &str, labels: &[(&str, &str)], phase: &str) -> PersistentVolumeClaim {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": labels.iter().cloned().collect::<BTreeMap<_, _>>()},
            "spec": {},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    fn sts(name: &str, templates: &[&str], volumes: &[&str]) -> StatefulSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {
                "selector": {},
                "serviceName": name,
                "template": {"spec": {"containers": [], "volumes": volumes.iter().map(|v| serde_json::json!({"name": v, "persistentVolumeClaim": {"claimName": v}})).collect::<Vec<_>>()}},
                "volumeClaimTemplates": templates.iter().map(|t| serde_json::json!({"metadata": {"name": t}})).collect::<Vec<_>>(),
            },
        }))
        .unwrap()
    }

    fn deploy(name: &str, claims: &[&str]) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"selector": {}, "template": {"spec": {"containers": [], "volumes": claims.iter().map(|c| serde_json::json!({"name": "v", "persistentVolumeClaim": {"claimName": c}})).collect::<Vec<_>>()}}},
        }))
        .unwrap()
    }

    fn targets(t: Vec<Target>) -> Snapshots {
        Snapshots {
            targets: t,
            ..Snapshots::default()
        }
    }

    fn names(s: &Selection) -> Vec<&str> {
        s.chosen.iter().map(|c| c.pvc.as_str()).collect()
    }

    #[test]
    fn selectors_follow_kubernetes_semantics() {
        let labels: BTreeMap<String, String> =
            [("app".into(), "db".into()), ("tier".into(), "x".into())].into();
        let req = |key: &str, operator, values: &[&str]| LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![LabelSelectorRequirement {
                key: key.into(),
                operator,
                values: values.iter().map(|s| s.to_string()).collect(),
            }],
        };
        assert!(matches(
            &req("app", SelectorOperator::In, &["db", "web"]),
            &labels
        ));
        assert!(!matches(
            &req("app", SelectorOperator::NotIn, &["db"]),
            &labels
        ));
        assert!(
            matches(&req("zone", SelectorOperator::NotIn, &["a"]), &labels),
            "NotIn matches an absent key"
        );
        assert!(matches(
            &req("tier", SelectorOperator::Exists, &[]),
            &labels
        ));
        assert!(matches(
            &req("zone", SelectorOperator::DoesNotExist, &[]),
            &labels
        ));
        let both = LabelSelector {
            match_labels: [("app".into(), "web".into())].into(),
            ..req("tier", SelectorOperator::Exists, &[])
        };
        assert!(!matches(&both, &labels), "requirements are ANDed");
    }

    #[test]
    fn by_name_label_and_workload_with_class_overrides() {
        let pvcs = [
            pvc("data", &[], "Bound"),
            pvc("media-a", &[("app", "media")], "Bound"),
            pvc("media-b", &[("app", "media")], "Pending"),
            pvc("mysql-data-mariadb-0", &[], "Bound"),
            pvc("mysql-data-mariadb-1", &[], "Bound"),
            pvc("mysql-data-mariadb-extra", &[], "Bound"),
            pvc("web-uploads", &[], "Bound"),
        ];
        let statefulsets = [sts("mariadb", &["mysql-data"], &[])];
        let deployments = [deploy("web", &["web-uploads"])];
        let o = Observed {
            pvcs: &pvcs,
            deployments: &deployments,
            statefulsets: &statefulsets,
        };
        let config = Snapshots {
            volume_snapshot_class_name: Some("default-class".into()),
            ..targets(vec![
                Target {
                    pvc: Some("data".into()),
                    volume_snapshot_class_name: Some("fast".into()),
                    ..Target::default()
                },
                Target {
                    selector: Some(LabelSelector {
                        match_labels: [("app".into(), "media".into())].into(),
                        ..LabelSelector::default()
                    }),
                    ..Target::default()
                },
                Target {
                    workload: Some(WorkloadRef {
                        kind: WorkloadKind::StatefulSet,
                        name: "mariadb".into(),
                    }),
                    ..Target::default()
                },
                Target {
                    workload: Some(WorkloadRef {
                        kind: WorkloadKind::Deployment,
                        name: "web".into(),
                    }),
                    ..Target::default()
                },
            ])
        };
        let s = select(&config, &o, &[]);
        assert_eq!(
            names(&s),
            [
                "data",
                "media-a",
                "mysql-data-mariadb-0",
                "mysql-data-mariadb-1",
                "web-uploads"
            ]
        );
        assert_eq!(s.chosen[0].class.as_deref(), Some("fast"));
        assert_eq!(s.chosen[1].class.as_deref(), Some("default-class"));
        assert_eq!(
            s.skipped,
            [Skipped {
                pvc: "media-b".into(),
                reason: "not bound (phase Pending)".into()
            }]
        );
        assert!(s.unmatched.is_empty());
    }

    #[test]
    fn missing_things_are_reported() {
        let pvcs = [pvc("data", &[], "Bound")];
        let o = Observed {
            pvcs: &pvcs,
            deployments: &[],
            statefulsets: &[],
        };
        let config = targets(vec![
            Target {
                pvc: Some("gone".into()),
                ..Target::default()
            },
            Target {
                workload: Some(WorkloadRef {
                    kind: WorkloadKind::Deployment,
                    name: "web".into(),
                }),
                ..Target::default()
            },
            Target {
                selector: Some(LabelSelector {
                    match_labels: [("app".into(), "none".into())].into(),
                    ..LabelSelector::default()
                }),
                ..Target::default()
            },
        ]);
        let s = select(&config, &o, &[]);
        assert!(s.chosen.is_empty());
        assert_eq!(
            s.skipped,
            [Skipped {
                pvc: "gone".into(),
                reason: "PVC gone does not exist".into()
            }]
        );
        assert_eq!(
            s.unmatched,
            [
                "Deployment web does not exist",
                "selector of targets[2] selects no PVC"
            ]
        );
    }

    #[test]
    fn a_pvc_selected_twice_is_snapshotted_once_and_target_narrows() {
        let pvcs = [
            pvc("db", &[("app", "x")], "Bound"),
            pvc("db-wal", &[("app", "x")], "Bound"),
        ];
        let o = Observed {
            pvcs: &pvcs,
            deployments: &[],
            statefulsets: &[],
        };
        let config = targets(vec![
            Target {
                pvc: Some("db".into()),
                ..Target::default()
            },
            Target {
                selector: Some(LabelSelector {
                    match_labels: [("app".into(), "x".into())].into(),
                    ..LabelSelector::default()
                }),
                ..Target::default()
            },
        ]);
        let s = select(&config, &o, &[]);
        assert_eq!(names(&s), ["db", "db-wal"]);
        assert_eq!(s.chosen[0].targets, [0, 1]);
        let s = select(&config, &o, &["db".into(), "other".into()]);
        assert_eq!(names(&s), ["db"], "--target db never pulls in db-wal");
        assert_eq!(
            s.unmatched,
            ["--target other: no target of the config selects it"]
        );
    }
}
