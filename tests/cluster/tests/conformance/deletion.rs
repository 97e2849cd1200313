//! Delete: Status vs object answers, finalizers, preconditions, propagation policies and the garbage collector.

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn plain_delete_answers_a_status_and_pods_answer_the_object() {
    let s = server().await;
    let (_, snap) = raw(&s, "POST", SNAPS, Some(snapshot("snap-3"))).await;
    let (code, v) = raw(&s, "DELETE", &format!("{SNAPS}/snap-3"), None).await;
    assert_eq!(code, 200);
    assert_eq!(
        v,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success",
        "details":{"name":"snap-3","group":"snapshot.storage.k8s.io","kind":"volumesnapshots","uid":snap["metadata"]["uid"]}})
    );
    raw(&s, "POST", PODS, Some(pod("p"))).await;
    let (code, v) = raw(&s, "DELETE", &format!("{PODS}/p"), None).await;
    assert_eq!((code, v["kind"].as_str()), (200, Some("Pod")));
    assert_eq!(v["metadata"]["deletionGracePeriodSeconds"], 0);
    assert!(v["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(
        raw(&s, "GET", &format!("{PODS}/p"), None).await.0,
        404,
        "no node: gone at once"
    );
}

#[tokio::test]
async fn finalizers_hold_the_object_until_removed() {
    let s = server().await;
    let mut fin = cm("fin");
    fin["metadata"]["finalizers"] = json!(["example.com/hold"]);
    raw(&s, "POST", CMS, Some(fin)).await;
    let (code, v) = raw(&s, "DELETE", &format!("{CMS}/fin"), None).await;
    assert_eq!(code, 200);
    assert!(v["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(v["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(v["metadata"]["finalizers"], json!(["example.com/hold"]));
    let rv = v["metadata"]["resourceVersion"].clone();
    let (code, again) = raw(&s, "DELETE", &format!("{CMS}/fin"), None).await;
    assert_eq!(
        (code, again["metadata"]["resourceVersion"].clone()),
        (200, rv.clone())
    );
    let (code, v) = raw(
        &s,
        "PATCH",
        &format!("{CMS}/fin"),
        Some(json!({"metadata": {"finalizers": ["example.com/hold", "example.com/other"]}})),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        v["message"],
        "ConfigMap \"fin\" is invalid: [metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/other\"}, metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/other\"}]"
    );
    let (code, _, text) = raw_full(
        &s,
        "PATCH",
        &format!("{CMS}/fin"),
        Some(s.admin_token()),
        "application/json-patch+json",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#.into(),
    )
    .await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v["metadata"].get("finalizers").is_none());
    assert_eq!(
        v["metadata"]["resourceVersion"], rv,
        "answered with the old resourceVersion"
    );
    assert_eq!(raw(&s, "GET", &format!("{CMS}/fin"), None).await.0, 404);
}

#[tokio::test]
async fn a_uid_precondition_mismatch_is_a_conflict_naming_the_kind() {
    let s = server().await;
    raw(&s, "POST", PODS, Some(pod("pod-b"))).await;
    let (code, v) = raw(
        &s,
        "DELETE",
        &format!("{PODS}/pod-b"),
        Some(json!({"preconditions": {"uid": "00000000"}})),
    )
    .await;
    assert_eq!(code, 409);
    assert_eq!(v["details"]["kind"], "Pod");
    assert!(v["message"].as_str().unwrap().starts_with("Operation cannot be fulfilled on Pod \"pod-b\": the UID in the precondition (00000000) does not match the UID in record ("));
}

async fn owner_and_dependent(s: &kentledge_testcluster::ServerHandle) -> String {
    let (_, owner) = raw(s, "POST", CMS, Some(cm("owner"))).await;
    let uid = owner["metadata"]["uid"].as_str().unwrap().to_string();
    let mut dep = cm("dep");
    dep["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid, "blockOwnerDeletion": true}]);
    assert_eq!(raw(s, "POST", CMS, Some(dep)).await.0, 201);
    uid
}

#[tokio::test]
async fn background_propagation_collects_dependents() {
    let s = server().await;
    owner_and_dependent(&s).await;
    let (code, v) = raw(
        &s,
        "DELETE",
        &format!("{CMS}/owner?propagationPolicy=Background"),
        None,
    )
    .await;
    assert_eq!((code, v["status"].as_str()), (200, Some("Success")));
    eventually("dependent collected", || async {
        raw(&s, "GET", &format!("{CMS}/dep"), None).await.0 == 404
    })
    .await;
}

#[tokio::test]
async fn foreground_propagation_waits_for_blocking_dependents() {
    let s = server().await;
    owner_and_dependent(&s).await;
    let (code, v) = raw(
        &s,
        "DELETE",
        &format!("{CMS}/owner?propagationPolicy=Foreground"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(v["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    assert!(v["metadata"]["deletionTimestamp"].is_string());
    eventually("owner gone after dependent", || async {
        raw(&s, "GET", &format!("{CMS}/dep"), None).await.0 == 404
            && raw(&s, "GET", &format!("{CMS}/owner"), None).await.0 == 404
    })
    .await;
}

#[tokio::test]
async fn orphan_propagation_strips_owner_references() {
    let s = server().await;
    owner_and_dependent(&s).await;
    let (code, v) = raw(
        &s,
        "DELETE",
        &format!("{CMS}/owner"),
        Some(json!({"propagationPolicy": "Orphan"})),
    )
    .await;
    assert_eq!(
        (code, v["metadata"]["finalizers"].clone()),
        (200, json!(["orphan"]))
    );
    eventually("owner gone", || async {
        raw(&s, "GET", &format!("{CMS}/owner"), None).await.0 == 404
    })
    .await;
    let (code, dep) = raw(&s, "GET", &format!("{CMS}/dep"), None).await;
    assert_eq!(code, 200, "the dependent survives");
    assert!(dep["metadata"].get("ownerReferences").is_none());
}

#[tokio::test]
async fn deletecollection_with_a_label_selector() {
    let s = server().await;
    for (n, l) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let mut c = cm(n);
        c["metadata"]["labels"] = json!({"l": l});
        raw(&s, "POST", CMS, Some(c)).await;
    }
    let (code, v) = raw(&s, "DELETE", &format!("{CMS}?labelSelector=l%3Dx"), None).await;
    assert_eq!(
        (
            code,
            v["kind"].as_str(),
            v["items"].as_array().map(Vec::len)
        ),
        (200, Some("ConfigMapList"), Some(2))
    );
    let (_, left) = raw(&s, "GET", &format!("{CMS}?labelSelector=l"), None).await;
    assert_eq!(left["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn scheduled_pods_wait_for_their_kubelet() {
    let s = server().await;
    let node = json!({"metadata": {"name": "node-a"}, "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 1}}, "conditions": [{"type": "Ready", "status": "True"}]}});
    assert_eq!(raw(&s, "POST", "/api/v1/nodes", Some(node)).await.0, 201);
    let mut p = pod("on-node");
    p["spec"]["nodeName"] = json!("node-a");
    raw(&s, "POST", PODS, Some(p)).await;
    let (code, v) = raw(&s, "DELETE", &format!("{PODS}/on-node"), None).await;
    assert_eq!(
        (code, v["metadata"]["deletionGracePeriodSeconds"].as_i64()),
        (200, Some(30))
    );
    assert_eq!(
        raw(&s, "GET", &format!("{PODS}/on-node"), None).await.0,
        200,
        "kept for the kubelet"
    );
    let (code, _) = raw(
        &s,
        "DELETE",
        &format!("{PODS}/on-node?gracePeriodSeconds=0"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        raw(&s, "GET", &format!("{PODS}/on-node"), None).await.0,
        404,
        "the kubelet's grace-0 delete removes it"
    );
}
