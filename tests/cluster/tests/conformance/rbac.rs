//! Authentication and RBAC: tokens, 401, the Forbidden message shapes, Roles/Bindings, SSAR, TokenRequest.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn denials_have_the_real_message_shapes() {
    let s = server().await;
    raw(&s, "POST", PODS, Some(pod("pod-a"))).await;
    let cases = [
        (
            "bob-token",
            "GET",
            PODS.to_string(),
            "pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"ref\"",
            json!({"kind": "pods"}),
        ),
        (
            "alice-token",
            "GET",
            format!("{PODS}/pod-a"),
            "pods \"pod-a\" is forbidden: User \"alice\" cannot get resource \"pods\" in API group \"\" in the namespace \"ref\"",
            json!({"name": "pod-a", "kind": "pods"}),
        ),
        (
            "bob-token",
            "POST",
            format!("{PODS}/pod-a/exec?command=ls&stdout=true"),
            "pods \"pod-a\" is forbidden: User \"bob\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"ref\"",
            json!({"name": "pod-a", "kind": "pods"}),
        ),
        (
            "bob-token",
            "GET",
            "/api/v1/nodes".to_string(),
            "nodes is forbidden: User \"bob\" cannot list resource \"nodes\" in API group \"\" at the cluster scope",
            json!({"kind": "nodes"}),
        ),
        (
            "alice-token",
            "GET",
            "/api/v1/namespaces/ref".to_string(),
            "namespaces \"ref\" is forbidden: User \"alice\" cannot get resource \"namespaces\" in API group \"\" in the namespace \"ref\"",
            json!({"name": "ref", "kind": "namespaces"}),
        ),
        (
            "bob-token",
            "GET",
            SNAPS.to_string(),
            "volumesnapshots.snapshot.storage.k8s.io is forbidden: User \"bob\" cannot list resource \"volumesnapshots\" in API group \"snapshot.storage.k8s.io\" in the namespace \"ref\"",
            json!({"group": "snapshot.storage.k8s.io", "kind": "volumesnapshots"}),
        ),
    ];
    for (token, method, path, msg, details) in cases {
        let (code, v) = raw_as(&s, Some(token), method, &path, None).await;
        assert_eq!(code, 403, "{path}");
        assert_eq!(
            v,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":msg,"reason":"Forbidden","details":details,"code":403})
        );
    }
    let (code, v) = raw_as(&s, None, "GET", PODS, None).await;
    assert_eq!(
        (code, v["message"].as_str()),
        (
            403,
            Some(
                "pods is forbidden: User \"system:anonymous\" cannot list resource \"pods\" in API group \"\" in the namespace \"ref\""
            )
        )
    );
    let (code, v) = raw_as(&s, Some("bad-token"), "GET", PODS, None).await;
    assert_eq!(code, 401);
    assert_eq!(
        v,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401})
    );
    let (code, _) = raw_as(&s, Some("bob-token"), "GET", "/apis", None).await;
    assert_eq!(code, 200, "discovery is granted to system:authenticated");
}

#[tokio::test]
async fn roles_and_bindings_grant_verbs_subresources_and_resource_names() {
    let s = server().await;
    raw(&s, "POST", CMS, Some(cm("allowed"))).await;
    raw(&s, "POST", CMS, Some(cm("other"))).await;
    let role = json!({"metadata": {"name": "cm-reader"}, "rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["allowed"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]}]});
    assert_eq!(
        raw(
            &s,
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/ref/roles",
            Some(role)
        )
        .await
        .0,
        201
    );
    let rb = json!({"metadata": {"name": "bob-read"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
                    "subjects": [{"kind": "User", "name": "bob"}, {"kind": "ServiceAccount", "name": "robot", "namespace": "ref"}]});
    assert_eq!(
        raw(
            &s,
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/ref/rolebindings",
            Some(rb)
        )
        .await
        .0,
        201
    );
    assert_eq!(
        raw_as(
            &s,
            Some("bob-token"),
            "GET",
            &format!("{CMS}/allowed"),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        raw_as(&s, Some("bob-token"), "GET", &format!("{CMS}/other"), None)
            .await
            .0,
        403
    );
    assert_eq!(
        raw_as(&s, Some("bob-token"), "GET", CMS, None).await.0,
        403,
        "resourceNames never grant list"
    );

    let ssar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                      "spec": {"resourceAttributes": {"namespace": "ref", "verb": "create", "resource": "pods", "subresource": "exec", "name": "pod-a"}}});
    let (code, v) = raw_as(
        &s,
        Some("bob-token"),
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        Some(ssar.clone()),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(
        v["status"],
        json!({"allowed": true, "reason": "RBAC: allowed by RoleBinding \"bob-read/ref\" of Role \"cm-reader\" to User \"bob\""})
    );
    assert_eq!(v["metadata"], json!({"creationTimestamp": null}));
    assert_eq!(v["spec"], ssar["spec"]);
    let (_, v) = raw_as(
        &s,
        Some("alice-token"),
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        Some(ssar),
    )
    .await;
    assert_eq!(v["status"], json!({"allowed": false}));

    // A ServiceAccount token minted by TokenRequest authenticates as the SA and gets the SA's rights.
    raw(
        &s,
        "POST",
        "/api/v1/namespaces/ref/serviceaccounts",
        Some(json!({"metadata": {"name": "robot"}})),
    )
    .await;
    let (code, tr) = raw(
        &s,
        "POST",
        "/api/v1/namespaces/ref/serviceaccounts/robot/token",
        Some(json!({})),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(tr["kind"], "TokenRequest");
    assert_eq!(
        tr["spec"],
        json!({"audiences": ["https://kubernetes.default.svc.cluster.local"], "expirationSeconds": 3600, "boundObjectRef": null})
    );
    assert_eq!(tr["metadata"]["name"], "robot");
    assert!(tr["metadata"].get("uid").is_none());
    let token = tr["status"]["token"].as_str().unwrap().to_string();
    let sa = client_for(&s, &token).await;
    let cms: Api<ConfigMap> = Api::namespaced(sa, "ref");
    assert!(cms.get("allowed").await.is_ok());
    let err = cms.get("other").await.unwrap_err();
    assert!(
        err.to_string().contains(
            "User \"system:serviceaccount:ref:robot\" cannot get resource \"configmaps\""
        ),
        "{err}"
    );
    let (_, who) = raw_as(
        &s,
        Some(&token),
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some(json!({})),
    )
    .await;
    assert_eq!(
        who["status"]["userInfo"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:ref",
            "system:authenticated"
        ])
    );

    let (code, v) = raw(
        &s,
        "POST",
        "/api/v1/namespaces/ref/serviceaccounts/robot/token",
        Some(json!({"spec": {"expirationSeconds": 60}})),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        v["message"],
        "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
    );
    let (code, v) = raw(
        &s,
        "POST",
        "/api/v1/namespaces/ref/serviceaccounts/ghost/token",
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (code, v["message"].as_str()),
        (404, Some("serviceaccounts \"ghost\" not found"))
    );
    // Deleting the SA invalidates its tokens.
    raw(
        &s,
        "DELETE",
        "/api/v1/namespaces/ref/serviceaccounts/robot",
        None,
    )
    .await;
    assert_eq!(
        raw_as(&s, Some(&token), "GET", &format!("{CMS}/allowed"), None)
            .await
            .0,
        401
    );
}
