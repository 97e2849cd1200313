//! List with label and field selectors, bad selectors, pagination with continue tokens, resourceVersion.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::json;

use crate::support::*;

async fn seed(s: &kentledge_testcluster::ServerHandle) {
    for (name, labels) in [
        ("pod-a", json!({"app": "demo", "tier": "db"})),
        ("pod-b", json!({"app": "demo"})),
        ("pod-c", json!({"app": "other"})),
    ] {
        let mut p = pod(name);
        p["metadata"]["labels"] = labels;
        assert_eq!(raw(s, "POST", PODS, Some(p)).await.0, 201);
    }
}

fn names(v: &serde_json::Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn label_selectors_through_kube_rs() {
    let s = server().await;
    seed(&s).await;
    let pods: Api<Pod> = Api::namespaced(admin(&s).await, "ref");
    let sel = |q: &'static str| {
        let pods = pods.clone();
        async move {
            pods.list(&ListParams::default().labels(q))
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|p| p.metadata.name.unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(sel("app=demo").await, ["pod-a", "pod-b"]);
    assert_eq!(sel("app==demo").await, ["pod-a", "pod-b"]);
    assert_eq!(sel("app!=demo").await, ["pod-c"]);
    assert_eq!(sel("app in (other,x)").await, ["pod-c"]);
    assert_eq!(sel("app notin (demo)").await, ["pod-c"]);
    assert_eq!(sel("tier").await, ["pod-a"]);
    assert_eq!(sel("!tier").await, ["pod-b", "pod-c"]);
    assert_eq!(sel("app=demo,!tier").await, ["pod-b"]);
}

#[tokio::test]
async fn field_selectors_and_bad_selectors() {
    let s = server().await;
    seed(&s).await;
    let (_, v) = raw(
        &s,
        "GET",
        &format!("{PODS}?fieldSelector=metadata.name%3Dpod-b"),
        None,
    )
    .await;
    assert_eq!(names(&v), ["pod-b"]);
    let (_, v) = raw(
        &s,
        "GET",
        &format!("{PODS}?fieldSelector=spec.nodeName%3D,status.phase%3DPending"),
        None,
    )
    .await;
    assert_eq!(names(&v).len(), 3);
    let (_, v) = raw(
        &s,
        "GET",
        "/api/v1/pods?fieldSelector=metadata.namespace%3Dref,status.phase!%3DPending",
        None,
    )
    .await;
    assert_eq!(names(&v).len(), 0);
    for (q, msg) in [
        (
            "labelSelector=a%20in%20(",
            "unable to parse requirement: found '', expected: ',', ')' or identifier",
        ),
        (
            "labelSelector=Bad%20Key%3Dv",
            "unable to parse requirement: found 'Key', expected: in, notin, =, ==, !=, gt, lt",
        ),
        (
            "fieldSelector=spec.foo%3Dbar",
            "field label not supported: spec.foo",
        ),
        (
            "fieldSelector=metadata.name",
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'",
        ),
        (
            "watch=1&fieldSelector=spec.foo%3Dbar",
            "field label not supported: spec.foo",
        ),
    ] {
        let (code, body) = raw(&s, "GET", &format!("{PODS}?{q}"), None).await;
        assert_eq!(code, 400, "{q}");
        assert_eq!(
            body,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":msg,"reason":"BadRequest","code":400})
        );
    }
    let (code, body) = raw(
        &s,
        "GET",
        &format!("{SNAPS}?fieldSelector=spec.foo%3Dbar"),
        None,
    )
    .await;
    assert_eq!(
        (code, body["message"].as_str()),
        (400, Some("field label not supported: spec.foo"))
    );
}

#[tokio::test]
async fn pagination_keeps_one_snapshot_and_counts_the_rest() {
    let s = server().await;
    seed(&s).await;
    let (_, p1) = raw(&s, "GET", &format!("{PODS}?limit=1"), None).await;
    let rv = p1["metadata"]["resourceVersion"].clone();
    assert_eq!(names(&p1), ["pod-a"]);
    assert_eq!(p1["metadata"]["remainingItemCount"], 2);
    let token = p1["metadata"]["continue"].as_str().unwrap().to_string();
    // A write between pages must not show up: the continue reads the first page's snapshot.
    raw(&s, "POST", PODS, Some(pod("pod-0"))).await;
    raw(&s, "DELETE", &format!("{PODS}/pod-c"), None).await;
    let (_, p2) = raw(&s, "GET", &format!("{PODS}?limit=1&continue={token}"), None).await;
    assert_eq!(names(&p2), ["pod-b"]);
    assert_eq!(p2["metadata"]["resourceVersion"], rv);
    assert_eq!(p2["metadata"]["remainingItemCount"], 1);
    let token = p2["metadata"]["continue"].as_str().unwrap().to_string();
    let (_, p3) = raw(&s, "GET", &format!("{PODS}?limit=1&continue={token}"), None).await;
    assert_eq!(names(&p3), ["pod-c"]);
    assert_eq!(
        p3["metadata"],
        json!({"resourceVersion": rv}),
        "last page: no continue, no count"
    );
    let (_, all) = raw(
        &s,
        "GET",
        &format!("{PODS}?limit=1&resourceVersion=0"),
        None,
    )
    .await;
    assert_eq!(names(&all).len(), 3, "resourceVersion=0 ignores limit");
    let (_, crs) = raw(&s, "GET", SNAPS, None).await;
    assert_eq!(
        crs["metadata"]["continue"], "",
        "CR lists always carry continue"
    );
    let (code, body) = raw(&s, "GET", &format!("{PODS}?continue=garbage"), None).await;
    assert_eq!(code, 400);
    assert_eq!(
        body["message"],
        "invalid continue token: continue key is not valid: invalid character '\\u0081' looking for beginning of value"
    );
}

#[tokio::test]
async fn an_expired_continue_token_is_410_with_a_fresh_token() {
    let s = server().await;
    seed(&s).await;
    // A token for a snapshot the server never had (rv 1, long before these pods).
    let token = "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MSwic3RhcnQiOiJwb2QtYVx1MDAwMCJ9";
    let (code, body) = raw(&s, "GET", &format!("{PODS}?limit=1&continue={token}"), None).await;
    assert_eq!(code, 410);
    assert_eq!(body["reason"], "Expired");
    assert_eq!(
        body["metadata"]["continue"],
        "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6LTEsInN0YXJ0IjoicG9kLWFcdTAwMDAifQ"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("The provided continue parameter is too old")
    );
    let (code, body) = raw(
        &s,
        "GET",
        &format!("{PODS}?resourceVersion=2&resourceVersionMatch=Exact"),
        None,
    )
    .await;
    assert_eq!(
        (code, body["message"].as_str()),
        (
            410,
            Some("The resourceVersion for the provided list is too old.")
        )
    );
}
