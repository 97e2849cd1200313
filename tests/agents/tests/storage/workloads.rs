//! The workload controllers against the test API server: Deployments own ReplicaSets own pods;
//! StatefulSets own ordinal pods and get a bound PVC per template; both scale through `scale`.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kentledge_nodeagents::workloads;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::{env, eventually};

async fn pod_names(pods: &Api<Pod>) -> BTreeSet<String> {
    pods.list(&Default::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .map(|p| p.name_any())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_scales_its_pods_through_a_replicaset() {
    let e = env().await;
    let _w = workloads::start(e.client.clone());
    let deployments: Api<Deployment> = Api::namespaced(e.client.clone(), "app");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(e.client.clone(), "app");
    eventually(10, "two pods", || async {
        (pod_names(&pods).await.len() == 2).then_some(())
    })
    .await;
    let rs = Api::<ReplicaSet>::namespaced(e.client.clone(), "app")
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].owner_references()[0].name, "web");
    let pod = pods
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .remove(0);
    assert_eq!(pod.owner_references()[0].name, rs[0].name_any());
    assert!(pod.labels().contains_key("pod-template-hash"));
    assert_eq!(pod.labels().get("app").map(String::as_str), Some("web"));
    // As on a real server: templates carry no service account and no enableServiceLinks (pod
    // defaulting and ServiceAccount admission add those to each pod).
    let d = deployments.get("web").await.unwrap();
    for template in [
        serde_json::to_value(&d.spec.unwrap().template).unwrap(),
        serde_json::to_value(&rs[0].spec.as_ref().unwrap().template).unwrap(),
    ] {
        for absent in [
            "serviceAccountName",
            "serviceAccount",
            "enableServiceLinks",
            "volumes",
        ] {
            assert!(
                template["spec"].get(absent).is_none(),
                "{absent}: {template}"
            );
        }
    }
    let spec = pod.spec.unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));
    assert_eq!(spec.enable_service_links, Some(true));
    assert!(
        spec.volumes
            .unwrap_or_default()
            .iter()
            .any(|v| v.name.starts_with("kube-api-access-"))
    );

    deployments
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    eventually(10, "no pods", || async {
        pod_names(&pods).await.is_empty().then_some(())
    })
    .await;
    deployments
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    eventually(10, "one pod", || async {
        (pod_names(&pods).await.len() == 1).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_gets_ordinal_pods_and_keeps_its_claims_on_scale_down() {
    let e = env().await;
    let _w = workloads::start(e.client.clone());
    let sets: Api<StatefulSet> = Api::namespaced(e.client.clone(), "app");
    let s: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "mariadb",
                     "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"}]}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]},
    }))
    .unwrap();
    sets.create(&PostParams::default(), &s).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(e.client.clone(), "app");
    eventually(10, "db-0 and db-1", || async {
        (pod_names(&pods).await == BTreeSet::from(["db-0".to_owned(), "db-1".to_owned()]))
            .then_some(())
    })
    .await;
    let db1 = pods.get("db-1").await.unwrap();
    let claim = db1
        .spec
        .unwrap()
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "data")
        .unwrap()
        .persistent_volume_claim
        .unwrap();
    assert_eq!(claim.claim_name, "data-db-1");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(e.client.clone(), "app");
    eventually(10, "both claims bound", || async {
        let l = claims.list(&Default::default()).await.ok()?.items;
        (l.len() == 2
            && l.iter()
                .all(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")))
        .then_some(())
    })
    .await;
    sets.patch_scale(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    eventually(10, "only db-0", || async {
        (pod_names(&pods).await == BTreeSet::from(["db-0".to_owned()])).then_some(())
    })
    .await;
    assert_eq!(
        claims.list(&Default::default()).await.unwrap().items.len(),
        2,
        "claims are kept"
    );
}
