//! Discovery documents, unknown resources and groups, method and media-type errors.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn discovery_envelopes() {
    let s = server().await;
    let (_, api) = raw(&s, "GET", "/api", None).await;
    assert_eq!(api["kind"], "APIVersions");
    assert!(api.get("apiVersion").is_none());
    let (_, v1) = raw(&s, "GET", "/api/v1", None).await;
    assert_eq!(
        (v1["kind"].as_str(), v1["groupVersion"].as_str()),
        (Some("APIResourceList"), Some("v1"))
    );
    let pvc = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "persistentvolumeclaims")
        .unwrap();
    assert_eq!(pvc["shortNames"], json!(["pvc"]));
    assert_eq!(
        pvc["verbs"],
        json!([
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch"
        ])
    );
    let (_, groups) = raw(&s, "GET", "/apis", None).await;
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "coordination.k8s.io")
    );
    let (_, g) = raw(&s, "GET", "/apis/snapshot.storage.k8s.io", None).await;
    assert_eq!(g["kind"], "APIGroup");
    let (_, l) = raw(&s, "GET", "/apis/coordination.k8s.io/v1", None).await;
    assert_eq!(l["resources"][0]["name"], "leases");
    let (code, v) = raw(&s, "GET", "/api/v1/namespaces/ref/foos", None).await;
    assert_eq!(
        (code, v["message"].as_str(), v["details"].clone()),
        (
            404,
            Some("the server could not find the requested resource"),
            json!({})
        )
    );
    let (code, ct, text) = raw_full(
        &s,
        "GET",
        "/apis/nope.example.com/v1/foos",
        Some(s.admin_token()),
        "",
        String::new(),
    )
    .await;
    assert_eq!(
        (code, ct.as_str(), text.trim()),
        (404, "text/plain; charset=utf-8", "404 page not found")
    );
    let (code, v) = raw(&s, "PUT", CMS, Some(json!({}))).await;
    assert_eq!(
        (code, v["reason"].as_str()),
        (405, Some("MethodNotAllowed"))
    );
    let (code, v) = raw(&s, "POST", CMS, None).await;
    assert_eq!(code, 400);
    assert!(v["message"].as_str().unwrap().starts_with("the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse error: "));
}
