//! The in-place plan on fixed objects: which workloads mount the PVC and how each is found,
//! what is refused unless accepted, what a killed run's mark says to do, and the printed plan.

use super::*;
use serde_json::json;

fn obj<K: serde::de::DeserializeOwned>(v: serde_json::Value) -> K {
    serde_json::from_value(v).unwrap()
}

fn owner(kind: &str, name: &str) -> serde_json::Value {
    json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": "u", "controller": true}])
}

fn pod(name: &str, claim: &str, owners: serde_json::Value) -> Pod {
    obj(
        json!({"metadata": {"name": name, "ownerReferences": owners},
        "spec": {"containers": [{"name": "c"}], "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]}}),
    )
}

fn template(claim: &str) -> serde_json::Value {
    json!({"spec": {"containers": [{"name": "c"}], "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]}})
}

#[test]
fn workloads_are_found_through_their_pods_owners_and_templates() {
    let pods = vec![
        pod("web-abc-1", "data", owner("ReplicaSet", "web-abc")),
        pod("web-abc-2", "data", owner("ReplicaSet", "web-abc")),
        pod("db-0", "data", owner("StatefulSet", "db")),
        pod("agent-x", "data", owner("DaemonSet", "agent")),
        pod("nightly-1-x", "data", owner("Job", "nightly-1")),
        pod("once-x", "data", owner("Job", "once")),
        pod("debug", "data", json!([])),
        pod("other", "logs", owner("ReplicaSet", "web-abc")),
        {
            let mut p = pod("kentledge-mover-1", "data", json!([]));
            p.metadata.labels = Some([(MANAGED_BY.to_owned(), MANAGER.to_owned())].into());
            p
        },
    ];
    let replicasets: Vec<ReplicaSet> = vec![obj(
        json!({"metadata": {"name": "web-abc", "ownerReferences": owner("Deployment", "web")}}),
    )];
    let deployments: Vec<Deployment> = vec![
        obj(
            json!({"metadata": {"name": "web", "labels": {"kustomize.toolkit.fluxcd.io/name": "apps"}}, "spec": {"replicas": 2, "selector": {}, "template": template("data")}}),
        ),
        obj(
            json!({"metadata": {"name": "idle"}, "spec": {"replicas": 0, "selector": {}, "template": template("data")}}),
        ),
        obj(
            json!({"metadata": {"name": "starting"}, "spec": {"replicas": 1, "selector": {}, "template": template("data")}}),
        ),
    ];
    let statefulsets: Vec<StatefulSet> = vec![obj(
        json!({"metadata": {"name": "db"}, "spec": {"replicas": 1, "selector": {}, "serviceName": "db", "template": template("data")}}),
    )];
    let jobs: Vec<Job> = vec![
        obj(
            json!({"metadata": {"name": "nightly-1", "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "uid": "u", "controller": true}]}, "spec": {"template": template("data")}}),
        ),
        obj(
            json!({"metadata": {"name": "once"}, "spec": {"suspend": false, "template": template("data")}}),
        ),
    ];
    let cronjobs: Vec<CronJob> = vec![
        obj(
            json!({"metadata": {"name": "nightly"}, "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": template("data")}}}}),
        ),
        obj(
            json!({"metadata": {"name": "weekly"}, "spec": {"schedule": "@weekly", "suspend": true, "jobTemplate": {"spec": {"template": template("data")}}}}),
        ),
    ];
    let autoscalers: Vec<HorizontalPodAutoscaler> =
        vec![obj(json!({"metadata": {"name": "db-hpa"},
        "spec": {"scaleTargetRef": {"kind": "StatefulSet", "name": "db"}, "maxReplicas": 3}}))];
    let o = Observed {
        pods: &pods,
        replicasets: &replicasets,
        deployments: &deployments,
        statefulsets: &statefulsets,
        daemonsets: &[],
        jobs: &jobs,
        cronjobs: &cronjobs,
        autoscalers: &autoscalers,
    };
    let found = workloads("data", &o);
    let names: Vec<String> = found
        .iter()
        .map(|w| format!("{} {}", w.kind.name(), w.name))
        .collect();
    assert_eq!(
        names,
        [
            "Deployment starting",
            "Deployment web",
            "StatefulSet db",
            "CronJob nightly",
            "CronJob weekly",
            "Job nightly-1",
            "Job once",
            "DaemonSet agent",
            "Pod debug",
        ],
        "idle (0 replicas) needs nothing; kentledge's own pods are not workloads"
    );
    let web = &found[1];
    assert_eq!(web.replicas, Some(2));
    assert_eq!(web.pods, ["web-abc-1", "web-abc-2"]);
    assert_eq!(web.gitops.as_deref(), Some("Flux Kustomization apps"));
    assert_eq!(found[2].autoscaler.as_deref(), Some("db-hpa"));
    assert_eq!(
        found[4].suspended,
        Some(true),
        "weekly was suspended already"
    );
    assert_eq!(found[6].suspended, Some(false));

    let refused = refusals(
        &found,
        Accept {
            bare_pods: false,
            autoscaled: false,
            gitops: false,
        },
    );
    assert_eq!(refused.len(), 4, "{refused:#?}");
    assert!(
        refused
            .iter()
            .any(|r| r.contains("DaemonSet agent") && r.contains("cannot be scaled"))
    );
    assert!(
        refused
            .iter()
            .any(|r| r.contains("Pod debug") && r.contains("--accept bare-pods"))
    );
    assert!(
        refused
            .iter()
            .any(|r| r.contains("db-hpa") && r.contains("--accept autoscaled"))
    );
    assert!(
        refused
            .iter()
            .any(|r| r.contains("Flux Kustomization apps") && r.contains("--accept gitops"))
    );
    let all = Accept {
        bare_pods: true,
        autoscaled: true,
        gitops: true,
    };
    let refused = refusals(&found, all);
    assert_eq!(refused.len(), 1, "no flag accepts a DaemonSet: {refused:?}");
    assert_eq!(
        stop_step(web),
        format!("scale Deployment web from 2 to 0 (recorded in {STOPPED_ANNOTATION})")
    );
    assert!(stop_step(&found[4]).contains("was suspended"));
    assert_eq!(
        stop_step(&found[8]),
        "delete Pod debug (it is not recreated)"
    );
}

#[test]
fn finished_pods_foreign_controllers_and_stopped_workloads() {
    let mut done = pod("report-1", "data", json!([]));
    done.status = Some(obj(json!({"phase": "Succeeded"})));
    let pods = vec![
        done,
        pod(
            "pg-1",
            "data",
            json!([{"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "name": "pg", "uid": "u", "controller": true}]),
        ),
        pod("lone-x", "data", owner("ReplicaSet", "lone")),
    ];
    let deployments: Vec<Deployment> = vec![obj(json!({"metadata": {"name": "web",
        "annotations": {STOPPED_ANNOTATION: r#"{"run":"r0","pvc":"logs","replicas":3}"#}},
        "spec": {"replicas": 1, "selector": {}, "template": template("data")}}))];
    let o = Observed {
        pods: &pods,
        deployments: &deployments,
        ..Observed::default()
    };
    let found = workloads("data", &o);
    let names: Vec<String> = found
        .iter()
        .map(|w| format!("{} {}", w.kind.name(), w.name))
        .collect();
    assert_eq!(
        names,
        [
            "Deployment web",
            "controller Cluster/pg",
            "controller ReplicaSet/lone"
        ],
        "a finished pod mounts nothing"
    );
    assert_eq!(found[0].stopped_for.as_deref(), Some("logs"));
    let all = Accept {
        bare_pods: true,
        autoscaled: true,
        gitops: true,
    };
    let refused = refusals(&found, all);
    assert_eq!(refused.len(), 3, "{refused:#?}");
    assert!(refused[0].contains("--resume"), "{}", refused[0]);
    assert!(
        refused[1].contains("Cluster/pg") && refused[1].contains("cannot stop it"),
        "{}",
        refused[1]
    );
    // An unreadable record is refused too, never overwritten.
    let mut bad = deployments[0].clone();
    bad.metadata.annotations = Some([(STOPPED_ANNOTATION.to_owned(), "{oops".to_owned())].into());
    let found = workloads(
        "data",
        &Observed {
            deployments: std::slice::from_ref(&bad),
            ..Observed::default()
        },
    );
    assert!(
        found[0]
            .stopped_for
            .as_deref()
            .is_some_and(|e| e.contains("cannot be read"))
    );
}

#[test]
fn argo_cd_is_told_by_its_label_or_tracking_annotation() {
    let by_label: ObjectMeta = obj(json!({"labels": {"argocd.argoproj.io/instance": "shop"}}));
    assert_eq!(
        gitops(&by_label).as_deref(),
        Some("Argo CD Application shop")
    );
    let by_annotation: ObjectMeta = obj(
        json!({"annotations": {"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:ns/web"}}),
    );
    assert_eq!(
        gitops(&by_annotation).as_deref(),
        Some("Argo CD Application shop")
    );
    assert_eq!(gitops(&ObjectMeta::default()), None);
}

#[test]
fn a_killed_runs_mark_says_whether_to_roll_back() {
    let mark = |phase, safety: Option<&str>| Progress {
        config: "shop".into(),
        run: "r1".into(),
        phase,
        safety_snapshot: safety.map(String::from),
        from: "snapshot s".into(),
    };
    assert_eq!(resume(&mark(Phase::Stopping, None)), Resume::Restart);
    assert_eq!(resume(&mark(Phase::SafetySnapshot, None)), Resume::Restart);
    assert_eq!(
        resume(&mark(Phase::Replacing, Some("s-safety"))),
        Resume::RollBack {
            snapshot: "s-safety".into()
        },
        "the data may be half written"
    );
    assert_eq!(
        resume(&mark(Phase::RollingBack, Some("s-safety"))),
        Resume::RollBack {
            snapshot: "s-safety".into()
        },
        "a cut rollback is done again"
    );
    assert_eq!(resume(&mark(Phase::Replacing, None)), Resume::Stuck);
    assert_eq!(
        resume(&mark(Phase::Replaced, Some("s"))),
        Resume::Restart,
        "the restored data is kept"
    );
    assert_eq!(resume(&mark(Phase::RolledBack, Some("s"))), Resume::Restart);
    // The mark round-trips, and only this config's marks count.
    let json = serde_json::to_string(&mark(Phase::Replacing, Some("s"))).unwrap();
    assert!(json.contains("\"phase\":\"replacing\""), "{json}");
    let pvcs: Vec<PersistentVolumeClaim> = vec![
        obj(json!({"metadata": {"name": "data", "annotations": {IN_PROGRESS_ANNOTATION: json}}})),
        obj(json!({"metadata": {"name": "logs"}})),
    ];
    assert_eq!(unfinished(&pvcs, "shop").len(), 1);
    assert!(unfinished(&pvcs, "blog").is_empty());
    let broken: Vec<PersistentVolumeClaim> = vec![obj(
        json!({"metadata": {"name": "data", "annotations": {IN_PROGRESS_ANNOTATION: "{"}}}),
    )];
    assert!(
        unfinished(&broken, "blog")[0].1.is_err(),
        "an unreadable mark is never taken for none"
    );
}

#[test]
fn the_printed_plan_names_every_step() {
    let yaml = "apiVersion: kentledge.io/v1alpha1\nkind: BackupConfig\nmetadata: {name: shop, namespace: shop}\nspec:\n  snapshots:\n    targets: [{pvc: data}]\n";
    let config = crate::config::parse("t.yaml", yaml).unwrap();
    let ctx = crate::plan::restore::Context {
        config: &config,
        namespace: "shop",
        run_id: "20261122t100000z-3f9a",
    };
    let pvc: PersistentVolumeClaim = obj(json!({"metadata": {"name": "data"},
        "spec": {"storageClassName": "hostpath", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}));
    let source = Source::Snapshot {
        name: "data-20261121-100000-aaaa".into(),
        time: "2026-11-21T10:00:00Z".parse().unwrap(),
        restore_size: Some("1Gi".into()),
    };
    let w = |kind, name: &str, replicas, suspended| Workload {
        kind,
        name: name.into(),
        replicas,
        suspended,
        pods: Vec::new(),
        autoscaler: None,
        gitops: None,
        stopped_for: None,
    };
    let workloads = vec![
        w(Kind::Deployment, "web", Some(2), None),
        w(Kind::CronJob, "nightly", None, Some(false)),
    ];
    let classes = crate::plan::snapshot::Classes::default();
    let snap = crate::plan::snapshot::planned_snapshot(
        &config,
        ctx.run_id,
        "2026-11-22T10:00:00Z".parse().unwrap(),
        "data",
        Some("csi".into()),
        &classes,
    )
    .unwrap();
    let p = plan(&ctx, &pvc, source, workloads, safety(snap, ctx.run_id));
    assert_eq!(p.safety.labels[PIN], "true");
    assert_eq!(p.safety.labels[SAFETY_LABEL], ctx.run_id);
    let sync = serde_json::to_value(&p.replace.pod).unwrap();
    assert_eq!(
        sync["spec"]["containers"][0]["args"][2],
        r#"{"action":"sync"}"#
    );
    insta::assert_snapshot!(render(&p));
}
