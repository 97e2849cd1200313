//! The objects a fresh cluster starts with: the four system namespaces and the bootstrap RBAC policy
//! (cluster-admin for system:masters, discovery, basic-user and public-info for everyone).

use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::rest::write::{self, WriteOpts};

fn cluster_role(name: &str, rules: Value) -> Value {
    json!({"metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
           "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}}, "rules": rules})
}

fn binding(name: &str, role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
        .collect();
    json!({"metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
           "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}, "subjects": subjects})
}

/// Create the bootstrap objects.
pub fn bootstrap(cl: &Cluster) {
    let opts = WriteOpts {
        dry_run: false,
        manager: "kube-apiserver".into(),
    };
    let reg = &cl.registry;
    let create = |group: &str, plural: &str, obj: Value| {
        if let Some(rt) = reg.find(group, "v1", plural)
            && let Err(e) = write::create(cl, rt, "", obj, &opts, false)
        {
            tracing::warn!("bootstrap {plural}: {e}");
        }
    };
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        create(
            "",
            "namespaces",
            json!({"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}}),
        );
    }
    let rbac = "rbac.authorization.k8s.io";
    create(
        rbac,
        "clusterroles",
        cluster_role(
            "cluster-admin",
            json!([
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        ),
    );
    create(
        rbac,
        "clusterroles",
        cluster_role(
            "system:discovery",
            json!([
        {"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"],
         "verbs": ["get"]}]),
        ),
    );
    create(
        rbac,
        "clusterroles",
        cluster_role(
            "system:basic-user",
            json!([
        {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
        {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]}]),
        ),
    );
    create(
        rbac,
        "clusterroles",
        cluster_role(
            "system:public-info-viewer",
            json!([
        {"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
        ),
    );
    create(
        rbac,
        "clusterrolebindings",
        binding("cluster-admin", "cluster-admin", &["system:masters"]),
    );
    create(
        rbac,
        "clusterrolebindings",
        binding(
            "system:discovery",
            "system:discovery",
            &["system:authenticated"],
        ),
    );
    create(
        rbac,
        "clusterrolebindings",
        binding(
            "system:basic-user",
            "system:basic-user",
            &["system:authenticated"],
        ),
    );
    create(
        rbac,
        "clusterrolebindings",
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
    );
}
