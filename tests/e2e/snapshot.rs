//! `kentledge snapshot` on the local test cluster, run as the ServiceAccount of manifests/:
//! selection, labels, hooks (order, output, failures, timeouts), errors, signals, the run lock
//! and dry runs.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use kentledge::k8s::snapshots::VolumeSnapshot;
use kube::api::{Api, ListParams};
use serde_json::json;

use crate::cluster::TestCluster;
use crate::support::run;

fn snapshots(tc: &TestCluster) -> Vec<VolumeSnapshot> {
    let api: Api<VolumeSnapshot> = Api::namespaced(tc.client(), &tc.namespace);
    let mut l = tc.block_on(api.list(&ListParams::default())).unwrap().items;
    l.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    l
}

fn label<'a>(s: &'a VolumeSnapshot, key: &str) -> &'a str {
    s.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
        .unwrap_or("")
}

fn by_pvc(list: &[VolumeSnapshot]) -> BTreeMap<String, &VolumeSnapshot> {
    list.iter()
        .map(|s| {
            (
                s.spec
                    .source
                    .persistent_volume_claim_name
                    .clone()
                    .unwrap_or_default(),
                s,
            )
        })
        .collect()
}

#[test]
fn several_pvcs_by_name_label_and_workload_in_one_run() {
    let tc = TestCluster::start("shop");
    tc.pvc_with_files("data", &[], &[("a.txt", "a")]);
    tc.pvc_with_files("media-1", &[("app", "media")], &[("m.txt", "m")]);
    tc.pvc_with_files("media-2", &[("app", "media")], &[]);
    tc.pvc_with_files("other", &[], &[]);
    let _: StatefulSet = tc.create(json!({
        "metadata": {"name": "db"},
        "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "mariadb", "command": ["sleep", "3600"],
                     "volumeMounts": [{"name": "mysql", "mountPath": "/var/lib/mysql"}]}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "mysql"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]},
    }));
    tc.volume_dir("mysql-db-0");
    let cfg = tc.config("shop", "  snapshots:\n    targets:\n      - pvc: data\n      - selector: {matchLabels: {app: media}}\n      - workload: {kind: StatefulSet, name: db}\n");
    let r = run(&mut tc.kentledge(&cfg).arg("snapshot"));
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    let list = snapshots(&tc);
    let by = by_pvc(&list);
    assert_eq!(
        by.keys().map(String::as_str).collect::<Vec<_>>(),
        ["data", "media-1", "media-2", "mysql-db-0"]
    );
    let run_id = label(&list[0], "kentledge.io/run").to_owned();
    assert!(!run_id.is_empty());
    for s in &list {
        assert_eq!(label(s, "app.kubernetes.io/managed-by"), "kentledge");
        assert_eq!(label(s, "kentledge.io/config"), "shop");
        assert_eq!(
            label(s, "kentledge.io/run"),
            run_id,
            "one run id for the whole run"
        );
        assert_eq!(
            label(s, "kentledge.io/pvc"),
            s.spec
                .source
                .persistent_volume_claim_name
                .as_deref()
                .unwrap()
        );
        assert_eq!(
            s.spec.volume_snapshot_class_name.as_deref(),
            Some("hostpath-snapclass"),
            "the driver's default class"
        );
        assert_eq!(s.status.as_ref().and_then(|st| st.ready_to_use), Some(true));
        assert!(
            s.metadata.name.as_deref().unwrap().starts_with(
                s.spec
                    .source
                    .persistent_volume_claim_name
                    .as_deref()
                    .unwrap()
            )
        );
    }
    assert!(r.stdout.contains("snapshot run"), "{}", r.stdout);
    assert!(r.stdout.contains("mysql-db-0"), "{}", r.stdout);
    // --target narrows exactly
    let r = run(&mut tc
        .kentledge(&cfg)
        .args(["snapshot", "--target", "media-1", "-o", "json"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["snapshots"].as_array().unwrap().len(), 1);
    assert_eq!(v["snapshots"][0]["pvc"], "media-1");
    assert_eq!(v["snapshots"][0]["ready"], true);
}
