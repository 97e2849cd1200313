//! The plan of a snapshot run, computed purely from the config, the observed objects and the
//! clock: which PVCs, which VolumeSnapshotClass for each, the snapshot names, labels and
//! annotations, and the hooks in order. `--dry-run` prints exactly this plan.

pub mod classes;

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use serde::Serialize;

use crate::config::Config;
use crate::model::labels::{
    self, CONFIG, MANAGED_BY, MANAGER, PVC, PVC_ANNOTATION, RUN, VERSION_ANNOTATION,
};
use crate::plan::hooks::{self, HookAction, PlannedHook};
use crate::plan::selection::{self, Observed, Skipped};

/// What is known about snapshot classes in the cluster.
#[derive(Clone, Debug, Default)]
pub struct Classes {
    /// The CSI driver of each PVC (its StorageClass's provisioner), where known.
    pub pvc_driver: BTreeMap<String, String>,
    /// The default VolumeSnapshotClass of each driver.
    pub default_for_driver: BTreeMap<String, String>,
    /// Whether classes could be read at all (the optional ClusterRole).
    pub readable: bool,
}

/// One snapshot to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlannedSnapshot {
    /// The source PVC.
    pub pvc: String,
    /// The VolumeSnapshot's name.
    pub name: String,
    /// Its VolumeSnapshotClass.
    pub class: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
}

/// A whole run's plan.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The run id.
    pub run_id: String,
    /// The namespace.
    pub namespace: String,
    /// The config's name.
    pub config: String,
    /// Snapshots to create, by PVC name.
    pub snapshots: Vec<PlannedSnapshot>,
    /// PVCs reported and skipped.
    pub skipped: Vec<Skipped>,
    /// Targets that matched nothing (warnings).
    pub warnings: Vec<String>,
    /// Hooks, in pre-hook order.
    pub hooks: Vec<PlannedHook>,
}

/// The objects a plan looks at.
#[derive(Clone, Copy, Debug)]
pub struct Cluster<'a> {
    /// PVCs.
    pub pvcs: &'a [PersistentVolumeClaim],
    /// Deployments.
    pub deployments: &'a [Deployment],
    /// StatefulSets.
    pub statefulsets: &'a [StatefulSet],
    /// Pods.
    pub pods: &'a [Pod],
}

/// The snapshot of `pvc` a run makes: the class asked for (else the driver's default), its
/// name, labels and annotations.
pub fn planned_snapshot(
    config: &Config,
    run_id: &str,
    now: Timestamp,
    pvc: &str,
    class: Option<String>,
    classes: &Classes,
) -> Result<PlannedSnapshot, String> {
    let class = class.or_else(|| {
        classes
            .pvc_driver
            .get(pvc)
            .and_then(|d| classes.default_for_driver.get(d))
            .cloned()
    });
    let Some(class) = class else {
        let driver = classes.pvc_driver.get(pvc);
        return Err(match (classes.readable, driver) {
            (false, _) => format!(
                "PVC {pvc}: no VolumeSnapshotClass configured, and snapshot classes cannot be read (install manifests/cluster-read.yaml or set spec.snapshots.volumeSnapshotClassName)"
            ),
            (true, Some(d)) => format!(
                "PVC {pvc}: no default VolumeSnapshotClass for CSI driver {d} (mark one with snapshot.storage.kubernetes.io/is-default-class: \"true\" or set spec.snapshots.volumeSnapshotClassName)"
            ),
            (true, None) => format!(
                "PVC {pvc}: cannot tell its CSI driver (no StorageClass); set spec.snapshots.volumeSnapshotClassName"
            ),
        });
    };
    let labels = BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGER.to_owned()),
        (CONFIG.to_owned(), config.metadata.name.clone()),
        (RUN.to_owned(), run_id.to_owned()),
        (PVC.to_owned(), labels::pvc_label_value(pvc)),
    ]);
    let annotations = BTreeMap::from([
        (
            VERSION_ANNOTATION.to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
        (PVC_ANNOTATION.to_owned(), pvc.to_owned()),
    ]);
    Ok(PlannedSnapshot {
        pvc: pvc.to_owned(),
        name: labels::snapshot_name(pvc, now, run_id),
        class,
        labels,
        annotations,
    })
}

/// Plans a run; every problem is reported at once.
pub fn plan(
    config: &Config,
    namespace: &str,
    run_id: &str,
    now: Timestamp,
    cluster: Cluster,
    classes: &Classes,
    only: &[String],
) -> Result<Plan, Vec<String>> {
    let s = &config.spec.snapshots;
    let observed = Observed {
        pvcs: cluster.pvcs,
        deployments: cluster.deployments,
        statefulsets: cluster.statefulsets,
    };
    let selection = selection::select(s, &observed, only);
    let mut problems: Vec<String> = Vec::new();
    let (narrowing, warnings): (Vec<String>, Vec<String>) = selection
        .unmatched
        .iter()
        .cloned()
        .partition(|m| m.starts_with("--target "));
    problems.extend(narrowing);
    if selection.chosen.is_empty() && !s.allow_empty {
        let mut why = "no bound PVC is selected".to_owned();
        if !selection.skipped.is_empty() {
            let list: Vec<String> = selection
                .skipped
                .iter()
                .map(|k| format!("{} ({})", k.pvc, k.reason))
                .collect();
            why.push_str(&format!("; skipped: {}", list.join(", ")));
        }
        if !warnings.is_empty() {
            why.push_str(&format!("; {}", warnings.join("; ")));
        }
        problems.push(format!(
            "{why} (set spec.snapshots.allowEmpty: true to allow an empty run)"
        ));
    }
    let mut snapshots = Vec::new();
    for c in &selection.chosen {
        match planned_snapshot(config, run_id, now, &c.pvc, c.class.clone(), classes) {
            Ok(p) => snapshots.push(p),
            Err(p) => problems.push(p),
        }
    }
    let pvc_names: Vec<String> = selection.chosen.iter().map(|c| c.pvc.clone()).collect();
    let hooks = match hooks::plan(s, cluster.pods, &pvc_names) {
        Ok(h) => h,
        Err(p) => {
            problems.extend(p);
            Vec::new()
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Plan {
        run_id: run_id.to_owned(),
        namespace: namespace.to_owned(),
        config: config.metadata.name.clone(),
        snapshots,
        skipped: selection.skipped,
        warnings,
        hooks,
    })
}

fn describe(h: &PlannedHook, pre: bool) -> Option<String> {
    let cmd = match (&h.action, pre) {
        (HookAction::Exec { pre: Some(c), .. }, true)
        | (HookAction::Exec { post: Some(c), .. }, false) => {
            format!("exec {}", shell_words(c))
        }
        (
            HookAction::Session {
                command,
                pre: input,
                ready_marker,
                ..
            },
            true,
        ) => {
            format!(
                "session {} <<< {input:?}, wait for {ready_marker:?}",
                shell_words(command)
            )
        }
        (HookAction::Session { post, .. }, false) => {
            format!(
                "same session <<< {:?}, close stdin",
                post.as_deref().unwrap_or("")
            )
        }
        _ => return None,
    };
    Some(
        format!(
            "{} in {}/{} (timeout {}, on error {:?}): {cmd}",
            h.name, h.pod, h.container, h.timeout, h.on_error
        )
        .replace("Fail)", "fail)")
        .replace("Continue)", "continue)"),
    )
}

fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:".contains(c))
            {
                a.clone()
            } else {
                format!("{a:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The plan as text, for `--dry-run`.
pub fn render(p: &Plan) -> String {
    let mut out = format!(
        "plan for run {} of config {} in namespace {}:\n",
        p.run_id, p.config, p.namespace
    );
    let mut step = 0;
    let mut line = |out: &mut String, s: String| {
        step += 1;
        out.push_str(&format!("  {step}. {s}\n"));
    };
    line(
        &mut out,
        format!(
            "take the run lock (Lease {})",
            crate::plan::lock::Lock::Run.lease_name(&p.config)
        ),
    );
    for h in &p.hooks {
        if let Some(d) = describe(h, true) {
            line(&mut out, format!("pre-hook {d}"));
        }
    }
    for s in &p.snapshots {
        line(
            &mut out,
            format!(
                "create VolumeSnapshot {} of PVC {} with class {}",
                s.name, s.pvc, s.class
            ),
        );
    }
    line(
        &mut out,
        "wait for every snapshot's cut (status.creationTime)".into(),
    );
    for h in p.hooks.iter().rev() {
        if let Some(d) = describe(h, false) {
            line(&mut out, format!("post-hook {d}"));
        }
    }
    line(&mut out, "wait for every snapshot to be readyToUse".into());
    line(&mut out, "release the run lock".into());
    for k in &p.skipped {
        out.push_str(&format!("  skipped PVC {}: {}\n", k.pvc, k.reason));
    }
    for w in &p.warnings {
        out.push_str(&format!("  warning: {w}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn pvc(name: &str, class: &str) -> PersistentVolumeClaim {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"storageClassName": class}, "status": {"phase": "Bound"}})).unwrap()
    }

    fn db_pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "db-0", "labels": {"app": "db"}},
            "spec": {"containers": [{"name": "mariadb"}], "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]},
            "status": {"phase": "Running"},
        }))
        .unwrap()
    }

    const YAML: &str = "apiVersion: kentledge.io/v1alpha1\nkind: BackupConfig\nmetadata: {name: shop, namespace: shop}\nspec:\n  snapshots:\n    targets: [{pvc: data}, {pvc: logs, volumeSnapshotClassName: fast}]\n    hooks:\n      - name: lock\n        pod: {selector: {matchLabels: {app: db}}}\n        session: {command: [mariadb], pre: \"FLUSH TABLES WITH READ LOCK; SELECT 'ok';\", readyMarker: ok, post: \"UNLOCK TABLES;\"}\n";

    fn classes() -> Classes {
        Classes {
            pvc_driver: [
                ("data".into(), "csi.x".into()),
                ("logs".into(), "csi.x".into()),
            ]
            .into(),
            default_for_driver: [("csi.x".into(), "x-snap".into())].into(),
            readable: true,
        }
    }

    #[test]
    fn a_plan_names_classes_labels_and_hooks() {
        let c = parse("k.yaml", YAML).unwrap();
        let pvcs = [pvc("data", "x"), pvc("logs", "x")];
        let pods = [db_pod()];
        let cluster = Cluster {
            pvcs: &pvcs,
            deployments: &[],
            statefulsets: &[],
            pods: &pods,
        };
        let now: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        let p = plan(&c, "shop", "run1", now, cluster, &classes(), &[]).unwrap();
        assert_eq!(
            p.snapshots
                .iter()
                .map(|s| (s.name.as_str(), s.class.as_str()))
                .collect::<Vec<_>>(),
            [
                ("data-20261122-100000-run1", "x-snap"),
                ("logs-20261122-100000-run1", "fast")
            ]
        );
        assert_eq!(p.snapshots[0].labels[CONFIG], "shop");
        assert_eq!(p.snapshots[0].labels[RUN], "run1");
        assert_eq!(p.snapshots[0].labels[PVC], "data");
        let text = render(&p);
        let expected = "plan for run run1 of config shop in namespace shop:
  1. take the run lock (Lease kentledge-shop)
  2. pre-hook lock in db-0/mariadb (timeout 1m, on error fail): session mariadb <<< \"FLUSH TABLES WITH READ LOCK; SELECT 'ok';\", wait for \"ok\"
  3. create VolumeSnapshot data-20261122-100000-run1 of PVC data with class x-snap
  4. create VolumeSnapshot logs-20261122-100000-run1 of PVC logs with class fast
  5. wait for every snapshot's cut (status.creationTime)
  6. post-hook lock in db-0/mariadb (timeout 1m, on error fail): same session <<< \"UNLOCK TABLES;\", close stdin
  7. wait for every snapshot to be readyToUse
  8. release the run lock
";
        assert_eq!(text, expected);
    }

    #[test]
    fn problems_are_collected() {
        let c = parse("k.yaml", YAML).unwrap();
        let pvcs = [pvc("data", "x")];
        let cluster = Cluster {
            pvcs: &pvcs,
            deployments: &[],
            statefulsets: &[],
            pods: &[],
        };
        let now: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        let no_defaults = Classes {
            readable: true,
            pvc_driver: [("data".into(), "csi.x".into())].into(),
            ..Classes::default()
        };
        let err = plan(&c, "shop", "r", now, cluster, &no_defaults, &[]).unwrap_err();
        assert_eq!(err.len(), 2, "{err:?}");
        assert!(
            err[0].starts_with("PVC data: no default VolumeSnapshotClass for CSI driver csi.x"),
            "{err:?}"
        );
        assert_eq!(err[1], "hook lock: no running pod matches its pod selector");
        let err = plan(
            &c,
            "shop",
            "r",
            now,
            cluster,
            &classes(),
            &["data".into(), "nope".into()],
        )
        .unwrap_err();
        assert_eq!(err[0], "--target nope: no target of the config selects it");
    }

    #[test]
    fn an_empty_selection_is_an_error_unless_allowed() {
        let c = parse("k.yaml", YAML).unwrap();
        let pvcs = [];
        let cluster = Cluster {
            pvcs: &pvcs,
            deployments: &[],
            statefulsets: &[],
            pods: &[],
        };
        let now: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        let err = plan(&c, "shop", "r", now, cluster, &classes(), &[]).unwrap_err();
        assert!(err[0].starts_with("no bound PVC is selected; skipped: data (PVC data does not exist), logs (PVC logs does not exist)"), "{err:?}");
    }
}
