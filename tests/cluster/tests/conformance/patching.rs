//! PATCH content types, server-side apply with field managers, and the status subresource.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::support::*;

async fn patch(
    s: &kentledge_testcluster::ServerHandle,
    path: &str,
    ct: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let (code, _, text) = raw_full(
        s,
        "PATCH",
        path,
        Some(s.admin_token()),
        ct,
        body.to_string(),
    )
    .await;
    (
        code,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn the_three_patch_types_on_a_pod() {
    let s = server().await;
    let mut p = pod("pod-a");
    p["metadata"]["labels"] = json!({"x": "1", "y": "1"});
    raw(&s, "POST", PODS, Some(p)).await;
    let path = format!("{PODS}/pod-a");
    let (code, v) = patch(
        &s,
        &path,
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"merge": "yes", "x": null}}}),
    )
    .await;
    assert_eq!(
        (code, v["metadata"]["labels"].clone()),
        (200, json!({"merge": "yes", "y": "1"}))
    );
    let (code, v) = patch(&s, &path, "application/json-patch+json", json!([{"op": "add", "path": "/metadata/labels/jsonpatch", "value": "yes"}, {"op": "remove", "path": "/metadata/labels/y"}])).await;
    assert_eq!(
        (code, v["metadata"]["labels"].clone()),
        (200, json!({"merge": "yes", "jsonpatch": "yes"}))
    );
    let (code, v) = patch(&s, &path, "application/strategic-merge-patch+json", json!({"metadata": {"labels": {"smp": "yes"}}, "spec": {"containers": [{"name": "c", "image": "busybox:2"}]}})).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["metadata"]["labels"]["smp"], "yes");
    assert_eq!(
        v["spec"]["containers"].as_array().unwrap().len(),
        1,
        "containers merge by name"
    );
    assert_eq!(v["spec"]["containers"][0]["image"], "busybox:2");
    let (code, v) = patch(&s, &path, "application/json", json!({})).await;
    assert_eq!(code, 415);
    assert_eq!(
        v,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"415: Unsupported Media Type","reason":"UnsupportedMediaType","details":{},"code":415})
    );
    let (code, v) = patch(
        &s,
        &path,
        "application/json-patch+json",
        json!([{"op": "test", "path": "/metadata/name", "value": "nope"}]),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        v["message"],
        "the server rejected our request due to an error in our request"
    );
    let (code, _, text) = raw_full(
        &s,
        "PATCH",
        &path,
        Some(s.admin_token()),
        "application/merge-patch+json",
        "{".into(),
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        text.contains("error decoding patch: unexpected end of JSON input"),
        "{text}"
    );
    let (code, v) = patch(
        &s,
        &format!("{PODS}/nope"),
        "application/merge-patch+json",
        json!({}),
    )
    .await;
    assert_eq!(
        (code, v["message"].as_str()),
        (404, Some("pods \"nope\" not found"))
    );
    let (code, v) = patch(
        &s,
        &path,
        "application/merge-patch+json",
        json!({"spec": {"nodeName": "n1"}}),
    )
    .await;
    assert_eq!(
        (code, v["details"]["causes"][0]["field"].as_str()),
        (422, Some("spec")),
        "pod spec is immutable"
    );
}

#[tokio::test]
async fn strategic_merge_is_refused_for_custom_resources() {
    let s = server().await;
    raw(&s, "POST", SNAPS, Some(snapshot("snap"))).await;
    let (code, v) = patch(
        &s,
        &format!("{SNAPS}/snap"),
        "application/strategic-merge-patch+json",
        json!({"metadata": {"labels": {"a": "b"}}}),
    )
    .await;
    assert_eq!(code, 415);
    assert_eq!(
        v["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    );
    assert!(v.get("details").is_none());
}

#[tokio::test]
async fn server_side_apply_creates_conflicts_and_forces() {
    let s = server().await;
    let path = format!("{SNAPS}/snap-apply");
    let body = |owner: &str| {
        format!(
            "{{\"apiVersion\":\"snapshot.storage.k8s.io/v1\",\"kind\":\"VolumeSnapshot\",\"metadata\":{{\"name\":\"snap-apply\",\"labels\":{{\"owner\":\"{owner}\"}}}},\"spec\":{{\"source\":{{\"persistentVolumeClaimName\":\"data\"}}}}}}"
        )
    };
    let (code, _, text) = raw_full(
        &s,
        "PATCH",
        &format!("{path}?fieldManager=tool-a"),
        Some(s.admin_token()),
        "application/apply-patch+yaml",
        body("a"),
    )
    .await;
    assert_eq!(code, 201, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["metadata"]["managedFields"][0]["manager"], "tool-a");
    assert_eq!(v["metadata"]["managedFields"][0]["operation"], "Apply");
    let b = "metadata:\n  name: snap-apply\n  labels:\n    owner: b\n".to_string();
    let b = format!("apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\n{b}");
    let (code, _, text) = raw_full(
        &s,
        "PATCH",
        &format!("{path}?fieldManager=tool-b"),
        Some(s.admin_token()),
        "application/apply-patch+yaml",
        b.clone(),
    )
    .await;
    assert_eq!(code, 409);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
        "message":"Apply failed with 1 conflict: conflict with \"tool-a\": .metadata.labels.owner",
        "reason":"Conflict","details":{"causes":[{"reason":"FieldManagerConflict","message":"conflict with \"tool-a\"","field":".metadata.labels.owner"}]},"code":409})
    );
    let (code, _, text) = raw_full(
        &s,
        "PATCH",
        &format!("{path}?fieldManager=tool-b&force=true"),
        Some(s.admin_token()),
        "application/apply-patch+yaml",
        b,
    )
    .await;
    assert_eq!(code, 200, "{text}");
    let (code, _, text) = raw_full(
        &s,
        "PATCH",
        &path,
        Some(s.admin_token()),
        "application/apply-patch+yaml",
        body("c"),
    )
    .await;
    assert_eq!(code, 422);
    assert!(text.contains("PatchOptions.meta.k8s.io \\\"\\\" is invalid: fieldManager: Required value: is required for apply patch"), "{text}");
    let (code, _, text) = raw_full(
        &s,
        "PATCH",
        &format!("{path}?force=true"),
        Some(s.admin_token()),
        "application/merge-patch+json",
        "{}".into(),
    )
    .await;
    assert_eq!(code, 422);
    assert!(
        text.contains("force: Forbidden: may not be specified for non-apply patch"),
        "{text}"
    );
}

#[tokio::test]
async fn kube_rs_apply_and_status_patch_on_pods() {
    let s = server().await;
    let pods: Api<Pod> = Api::namespaced(admin(&s).await, "ref");
    let p: Pod = serde_json::from_value(pod("applied")).unwrap();
    let created = pods
        .patch(
            "applied",
            &PatchParams::apply("kentledge"),
            &Patch::Apply(&p),
        )
        .await
        .unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));
    let st = json!({"status": {"phase": "Running"}});
    let main = pods
        .patch("applied", &PatchParams::default(), &Patch::Merge(&st))
        .await
        .unwrap();
    assert_eq!(
        main.status.unwrap().phase.as_deref(),
        Some("Pending"),
        "the main resource ignores status"
    );
    let via = pods
        .patch_status("applied", &PatchParams::default(), &Patch::Merge(&st))
        .await
        .unwrap();
    assert_eq!(via.status.unwrap().phase.as_deref(), Some("Running"));
}

#[tokio::test]
async fn status_subresource_of_a_custom_resource() {
    let s = server().await;
    let (_, created) = raw(
        &s,
        "POST",
        SNAPS,
        Some({
            let mut v = snapshot("snap-2");
            v["status"] = json!({"readyToUse": true});
            v
        }),
    )
    .await;
    assert!(created.get("status").is_none(), "create drops status");
    let rv = created["metadata"]["resourceVersion"].clone();
    let (code, v) = raw(
        &s,
        "PATCH",
        &format!("{SNAPS}/snap-2"),
        Some(json!({"status": {"readyToUse": true}})),
    )
    .await;
    assert_eq!(
        (code, v["metadata"]["resourceVersion"].clone()),
        (200, rv.clone()),
        "no-op write keeps the RV"
    );
    assert!(v.get("status").is_none());
    let (code, v) = raw(&s, "PATCH", &format!("{SNAPS}/snap-2/status"), Some(json!({"spec": {"source": {"persistentVolumeClaimName": "other"}}, "metadata": {"labels": {"via": "status"}}, "status": {"readyToUse": true}}))).await;
    assert_eq!(code, 200);
    assert_eq!(v["status"]["readyToUse"], true);
    assert_eq!(
        v["spec"]["source"]["persistentVolumeClaimName"], "data",
        "spec ignored on /status"
    );
    assert!(
        v["metadata"].get("labels").is_none(),
        "labels ignored on a CR's /status"
    );
    let (code, v) = raw(&s, "GET", &format!("{SNAPS}/snap-2/status"), None).await;
    assert_eq!((code, v["kind"].as_str()), (200, Some("VolumeSnapshot")));
}
