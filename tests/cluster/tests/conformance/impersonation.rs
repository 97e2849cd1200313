//! Impersonation: `Impersonate-User` / `-Group` / `-Uid` / `-Extra-*` are each authorized as the verb
//! `impersonate` (users, groups, serviceaccounts in core; uids, userextras in authentication.k8s.io),
//! with the real Forbidden bodies; then RBAC and SelfSubjectAccessReview apply to the impersonated
//! user. Through raw HTTP and real kubectl (`--as`, `--as-group`, `--as-uid`, `auth can-i --as`).

use std::path::Path;

use serde_json::{Value, json};

use crate::kubectl::{kubectl, kubectl_env, write_kubeconfig};
use crate::support::*;

const RBAC: &str = "/apis/rbac.authorization.k8s.io/v1";

/// Request headers as name/value pairs.
type Headers<'a> = &'a [(&'a str, &'a str)];

async fn post(s: &kentledge_testcluster::ServerHandle, path: &str, body: Value) {
    let (code, v) = raw(s, "POST", path, Some(body)).await;
    assert_eq!(code, 201, "{path}: {v}");
}

fn forbidden(message: &str, details: Value) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
           "reason": "Forbidden", "details": details, "code": 403})
}

/// GET the pods of `ref` with `token`, impersonating through `headers`.
async fn list_pods_as(
    s: &kentledge_testcluster::ServerHandle,
    token: Option<&str>,
    headers: Headers<'_>,
) -> (u16, Value) {
    raw_headers(s, token, "GET", PODS, headers, None).await
}

/// POST a SelfSubjectReview as the admin, impersonating through `headers`.
async fn review_as(s: &kentledge_testcluster::ServerHandle, headers: Headers<'_>) -> (u16, Value) {
    let review = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
    raw_headers(
        s,
        Some(s.admin_token()),
        "POST",
        review,
        headers,
        Some(json!({})),
    )
    .await
}

/// The Role `pod-reader` in `ref` (pods, `verbs`) and the RoleBinding `viewers` granting it to
/// `subjects`.
async fn pod_reader(s: &kentledge_testcluster::ServerHandle, verbs: &[&str], subjects: Value) {
    post(
        s,
        &format!("{RBAC}/namespaces/ref/roles"),
        json!({"metadata": {"name": "pod-reader"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": verbs}]}),
    )
    .await;
    post(
        s,
        &format!("{RBAC}/namespaces/ref/rolebindings"),
        json!({"metadata": {"name": "viewers"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
               "subjects": subjects}),
    )
    .await;
}

#[tokio::test]
async fn each_impersonated_attribute_needs_the_impersonate_verb() {
    let s = server().await;
    let bob = Some("bob-token");
    let cases: [(Headers, &str, Value); 5] = [
        (
            &[("Impersonate-User", "nobody")],
            "users \"nobody\" is forbidden: User \"bob\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
            json!({"name": "nobody", "kind": "users"}),
        ),
        (
            &[("Impersonate-User", "system:serviceaccount:ref:robot")],
            "serviceaccounts \"robot\" is forbidden: User \"bob\" cannot impersonate resource \"serviceaccounts\" in API group \"\" in the namespace \"ref\"",
            json!({"name": "robot", "kind": "serviceaccounts"}),
        ),
        (
            &[
                ("Impersonate-User", "nobody"),
                ("Impersonate-Group", "admins"),
            ],
            "users \"nobody\" is forbidden: User \"bob\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
            json!({"name": "nobody", "kind": "users"}),
        ),
        (
            &[
                ("Impersonate-User", "allowed"),
                ("Impersonate-Group", "admins"),
            ],
            "groups \"admins\" is forbidden: User \"bob\" cannot impersonate resource \"groups\" in API group \"\" at the cluster scope",
            json!({"name": "admins", "kind": "groups"}),
        ),
        (
            &[
                ("Impersonate-User", "allowed"),
                ("Impersonate-Extra-Scopes", "read"),
            ],
            "userextras.authentication.k8s.io \"read\" is forbidden: User \"bob\" cannot impersonate resource \"userextras/scopes\" in API group \"authentication.k8s.io\" at the cluster scope",
            json!({"name": "read", "group": "authentication.k8s.io", "kind": "userextras"}),
        ),
    ];
    // bob may impersonate the user "allowed" and nothing else.
    post(
        &s,
        &format!("{RBAC}/clusterroles"),
        json!({"metadata": {"name": "imp-allowed"}, "rules": [
            {"apiGroups": [""], "resources": ["users"], "resourceNames": ["allowed"], "verbs": ["impersonate"]}]}),
    )
    .await;
    post(
        &s,
        &format!("{RBAC}/clusterrolebindings"),
        json!({"metadata": {"name": "bob-imp"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "imp-allowed"},
               "subjects": [{"kind": "User", "name": "bob"}]}),
    )
    .await;
    for (headers, message, details) in cases {
        let (code, v) = raw_headers(&s, bob, "GET", PODS, headers, None).await;
        assert_eq!(code, 403, "{headers:?}");
        assert_eq!(v, forbidden(message, details), "{headers:?}");
    }
    let (code, v) = list_pods_as(&s, Some("alice-token"), &[("Impersonate-Uid", "u1")]).await;
    assert_eq!(
        (code, v["message"].as_str()),
        (
            500,
            Some(
                "Internal error occurred: requested [{UID  u1  authentication.k8s.io/v1  }] without impersonating a user"
            )
        ),
        "a uid needs a user"
    );
    let (code, v) = list_pods_as(
        &s,
        Some("alice-token"),
        &[("Impersonate-User", "allowed"), ("Impersonate-Uid", "u1")],
    )
    .await;
    assert_eq!(
        (code, v["message"].as_str()),
        (
            403,
            Some(
                "users \"allowed\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
            )
        )
    );
    // Allowed: the request runs as "allowed", who has no rights of its own.
    let (code, v) = list_pods_as(&s, bob, &[("Impersonate-User", "allowed")]).await;
    assert_eq!(
        (code, v["message"].as_str()),
        (
            403,
            Some(
                "pods is forbidden: User \"allowed\" cannot list resource \"pods\" in API group \"\" in the namespace \"ref\""
            )
        )
    );
    // Groups or extras without a user are a 500, as the filter's error.
    let (code, v) = list_pods_as(&s, bob, &[("Impersonate-Group", "admins")]).await;
    assert_eq!(
        (code, v["reason"].as_str(), v["message"].as_str()),
        (
            500,
            Some("InternalError"),
            Some(
                "Internal error occurred: requested [{Group  admins    }] without impersonating a user"
            )
        )
    );
}

/// The impersonated identity: groups replace the user's (plus `system:authenticated`), service
/// accounts get their fixed groups, and SelfSubjectReview/SelfSubjectAccessReview answer for it.
#[tokio::test]
async fn requests_run_as_the_impersonated_user() {
    let s = server().await;
    let admin = Some(s.admin_token());
    let (code, v) = review_as(
        &s,
        &[
            ("Impersonate-User", "jane"),
            ("Impersonate-Group", "devs"),
            ("Impersonate-Group", "ops"),
            ("Impersonate-Uid", "uid-jane"),
            ("Impersonate-Extra-Scopes", "read"),
            ("Impersonate-Extra-Scopes", "write"),
        ],
    )
    .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(
        v["status"]["userInfo"],
        json!({"username": "jane", "uid": "uid-jane", "groups": ["devs", "ops", "system:authenticated"],
               "extra": {"scopes": ["read", "write"]}})
    );
    let (_, v) = review_as(
        &s,
        &[("Impersonate-User", "system:serviceaccount:ref:robot")],
    )
    .await;
    assert_eq!(
        v["status"]["userInfo"],
        json!({"username": "system:serviceaccount:ref:robot",
               "groups": ["system:serviceaccounts", "system:serviceaccounts:ref", "system:authenticated"]})
    );
    // Anonymous gets system:unauthenticated (and may review itself only once that group is allowed to).
    let (code, _) = review_as(&s, &[("Impersonate-User", "system:anonymous")]).await;
    assert_eq!(code, 403);
    post(
        &s,
        &format!("{RBAC}/clusterrolebindings"),
        json!({"metadata": {"name": "anon-basic"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:basic-user"},
               "subjects": [{"kind": "Group", "name": "system:unauthenticated"}]}),
    )
    .await;
    let (_, v) = review_as(&s, &[("Impersonate-User", "system:anonymous")]).await;
    assert_eq!(
        v["status"]["userInfo"],
        json!({"username": "system:anonymous", "groups": ["system:unauthenticated"]})
    );
    // The admin impersonating jane loses system:masters.
    let ssar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                      "spec": {"resourceAttributes": {"verb": "delete", "resource": "nodes"}}});
    let (code, v) = raw_headers(
        &s,
        admin,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        &[("Impersonate-User", "jane")],
        Some(ssar),
    )
    .await;
    assert_eq!((code, &v["status"]), (201, &json!({"allowed": false})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_as_as_group_and_auth_can_i_as() {
    let Some((s, dir, admin)) = kubectl_env().await else {
        return;
    };
    let bob = write_kubeconfig(
        dir.path(),
        "bob",
        &s.kubeconfig_for_token("bob-token", "ref"),
    );
    let run = |kc: &Path, args: &[&str]| kubectl(kc, args);
    // (kubectl also warns that nodes are not namespaced: the kubeconfig names a namespace.)
    let (ok, text) = run(&admin, &["auth", "can-i", "delete", "nodes"]);
    assert!(ok && text.starts_with("yes\n"), "{text}");
    let (ok, text) = run(&admin, &["auth", "can-i", "delete", "nodes", "--as=nobody"]);
    assert!(!ok && text.starts_with("no\n"), "{text}");
    let (ok, text) = run(&admin, &["-n", "ref", "get", "pods", "--as=nobody"]);
    assert!(!ok);
    assert!(
        text.contains("Error from server (Forbidden): pods is forbidden: User \"nobody\" cannot list resource \"pods\" in API group \"\" in the namespace \"ref\""),
        "{text}"
    );
    // A Role for the group "viewers" and one for a ServiceAccount.
    pod_reader(
        &s,
        &["get", "list"],
        json!([{"kind": "Group", "name": "viewers"}, {"kind": "ServiceAccount", "name": "robot", "namespace": "ref"}]),
    )
    .await;
    let (ok, text) = run(
        &admin,
        &[
            "-n",
            "ref",
            "get",
            "pods",
            "--as=nobody",
            "--as-group=viewers",
        ],
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("No resources found in ref namespace."),
        "{text}"
    );
    let can_i: [(&str, &[&str], bool); 3] = [
        ("list", &["--as=nobody", "--as-group=viewers"], true),
        ("delete", &["--as=nobody", "--as-group=viewers"], false),
        ("list", &["--as=system:serviceaccount:ref:robot"], true),
    ];
    for (verb, who, allowed) in can_i {
        let (ok, text) = run(
            &admin,
            &[&["auth", "can-i", verb, "pods", "-n", "ref"], who].concat(),
        );
        let answer = if allowed { "yes" } else { "no" };
        assert_eq!((ok, text.trim()), (allowed, answer), "{verb} {who:?}");
    }
    let (ok, text) = run(
        &admin,
        &[
            "auth",
            "whoami",
            "--as=nobody",
            "--as-group=viewers",
            "--as-uid=u-1",
            "-o",
            "json",
        ],
    );
    assert!(ok, "{text}");
    let who: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        who["status"]["userInfo"],
        json!({"username": "nobody", "uid": "u-1", "groups": ["viewers", "system:authenticated"]})
    );
    // bob has no impersonate rights.
    let (ok, text) = run(&bob, &["-n", "ref", "get", "pods", "--as=nobody"]);
    assert!(!ok);
    assert!(
        text.contains("users \"nobody\" is forbidden: User \"bob\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"),
        "{text}"
    );
}

async fn impersonating_client(
    s: &kentledge_testcluster::ServerHandle,
    token: &str,
    user: &str,
    groups: &[&str],
) -> kube::Client {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kc = Kubeconfig::from_yaml(&s.kubeconfig_for_token(token, "ref")).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    cfg.auth_info.impersonate = Some(user.into());
    if !groups.is_empty() {
        cfg.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
    }
    kube::Client::try_from(cfg).unwrap()
}

/// kube-rs sends the same headers from `auth_info.impersonate{,_groups}`.
#[tokio::test]
async fn kube_rs_clients_impersonate_through_their_config() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::Api;
    let s = server().await;
    pod_reader(&s, &["list"], json!([{"kind": "Group", "name": "viewers"}])).await;
    let api = |c: kube::Client| Api::<Pod>::namespaced(c, "ref");
    let viewer = impersonating_client(&s, s.admin_token(), "nobody", &["viewers"]).await;
    assert!(api(viewer).list(&Default::default()).await.is_ok());
    let nobody = impersonating_client(&s, s.admin_token(), "nobody", &[]).await;
    match api(nobody).list(&Default::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(
            (e.code, e.message.as_str()),
            (
                403,
                "pods is forbidden: User \"nobody\" cannot list resource \"pods\" in API group \"\" in the namespace \"ref\""
            )
        ),
        other => panic!("{other:?}"),
    }
    let bob = impersonating_client(&s, "bob-token", "nobody", &["viewers"]).await;
    match api(bob).list(&Default::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(
            (e.code, e.message.as_str()),
            (
                403,
                "users \"nobody\" is forbidden: User \"bob\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
            )
        ),
        other => panic!("{other:?}"),
    }
}
