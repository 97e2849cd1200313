//! Namespaced vs cluster-scoped resources; a namespace must exist (and not terminate) before objects in it.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn create_in_a_missing_namespace_is_a_404_about_the_namespace() {
    let s = server().await;
    let (code, body) = raw(&s, "POST", "/api/v1/namespaces/nope/pods", Some(pod("p"))).await;
    assert_eq!(code, 404);
    assert_eq!(
        body,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"namespaces \"nope\" not found","reason":"NotFound","details":{"name":"nope","kind":"namespaces"},"code":404})
    );
    let (code, body) = raw(&s, "GET", "/api/v1/namespaces/nope/pods", None).await;
    assert_eq!((code, body["items"].clone()), (200, json!([])));
    let (code, body) = raw(&s, "GET", "/api/v1/namespaces/nope/pods/x", None).await;
    assert_eq!(
        (code, body["message"].as_str()),
        (404, Some("pods \"x\" not found"))
    );
}

#[tokio::test]
async fn cluster_and_all_namespace_paths() {
    let s = server().await;
    raw(
        &s,
        "POST",
        "/api/v1/namespaces",
        Some(json!({"metadata": {"name": "other"}})),
    )
    .await;
    raw(&s, "POST", PODS, Some(pod("a"))).await;
    raw(&s, "POST", "/api/v1/namespaces/other/pods", Some(pod("b"))).await;
    let (_, all) = raw(&s, "GET", "/api/v1/pods", None).await;
    let names: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["b", "a"], "etcd key order: other/b < ref/a");
    let (code, body) = raw(&s, "POST", "/api/v1/persistentvolumes", Some(json!({"metadata": {"name": "pv1"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp"}}}))).await;
    assert_eq!(code, 201, "{body}");
    assert!(body["metadata"].get("namespace").is_none());
    let (code, _) = raw(
        &s,
        "GET",
        "/api/v1/namespaces/ref/persistentvolumes/pv1",
        None,
    )
    .await;
    assert_eq!(code, 404);
    let (_, ns) = raw(&s, "GET", "/api/v1/namespaces/ref", None).await;
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
}

#[tokio::test]
async fn deleting_a_namespace_terminates_it_deletes_its_contents_then_removes_it() {
    let s = server().await;
    raw(
        &s,
        "POST",
        "/api/v1/namespaces",
        Some(json!({"metadata": {"name": "term"}})),
    )
    .await;
    let mut held = cm("held");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    raw(&s, "POST", "/api/v1/namespaces/term/configmaps", Some(held)).await;
    let (code, ns) = raw(&s, "DELETE", "/api/v1/namespaces/term", None).await;
    assert_eq!(
        (code, ns["status"]["phase"].as_str()),
        (200, Some("Terminating"))
    );
    let (code, body) = raw(
        &s,
        "POST",
        "/api/v1/namespaces/term/configmaps",
        Some(cm("x")),
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "configmaps \"x\" is forbidden: unable to create new content in namespace term because it is being terminated"
    );
    assert_eq!(
        body["details"]["causes"][0]["reason"],
        "NamespaceTerminating"
    );
    // The held ConfigMap keeps the namespace until its finalizer goes.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(raw(&s, "GET", "/api/v1/namespaces/term", None).await.0, 200);
    raw(
        &s,
        "PATCH",
        "/api/v1/namespaces/term/configmaps/held",
        Some(json!({"metadata": {"finalizers": null}})),
    )
    .await;
    eventually("namespace gone", || async {
        raw(&s, "GET", "/api/v1/namespaces/term", None).await.0 == 404
    })
    .await;
}
