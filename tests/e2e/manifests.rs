//! `manifests/`: every document is a valid Kubernetes object of its kind, the Role grants what
//! kentledge needs and nothing cluster-wide, and the CronJobs run real subcommands.

use clap::Parser;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};

use crate::support::root;

/// The YAML documents of a manifest file.
fn documents(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join("manifests").join(file)).unwrap();
    text.split("\n---\n").map(str::to_owned).collect()
}

fn kind(doc: &str) -> String {
    let v: serde_json::Value = serde_saphyr::from_str(doc).unwrap();
    v["kind"].as_str().unwrap().to_owned()
}

#[test]
fn every_document_parses_as_its_kind() {
    let mut kinds = Vec::new();
    for file in ["rbac.yaml", "cluster-read.yaml", "cronjobs.yaml"] {
        for doc in documents(file) {
            let k = kind(&doc);
            let ok = match k.as_str() {
                "ServiceAccount" => serde_saphyr::from_str::<ServiceAccount>(&doc).is_ok(),
                "Role" => serde_saphyr::from_str::<Role>(&doc).is_ok(),
                "RoleBinding" => serde_saphyr::from_str::<RoleBinding>(&doc).is_ok(),
                "ClusterRole" => serde_saphyr::from_str::<ClusterRole>(&doc).is_ok(),
                "ClusterRoleBinding" => serde_saphyr::from_str::<ClusterRoleBinding>(&doc).is_ok(),
                "CronJob" => serde_saphyr::from_str::<CronJob>(&doc).is_ok(),
                other => panic!("{file}: unexpected kind {other}"),
            };
            assert!(ok, "{file}: {k} does not parse");
            kinds.push(k);
        }
    }
    assert_eq!(kinds.iter().filter(|k| *k == "CronJob").count(), 3);
}

#[test]
fn the_role_is_namespaced_and_covers_what_kentledge_does() {
    let role: Role = serde_saphyr::from_str(&documents("rbac.yaml")[1]).unwrap();
    let grants = |group: &str, resource: &str, verb: &str| {
        role.rules.as_ref().unwrap().iter().any(|r| {
            r.api_groups
                .as_ref()
                .is_some_and(|g| g.iter().any(|x| x == group))
                && r.resources
                    .as_ref()
                    .is_some_and(|rs| rs.iter().any(|x| x == resource))
                && r.verbs.iter().any(|v| v == verb)
        })
    };
    for (group, resource, verb) in [
        ("snapshot.storage.k8s.io", "volumesnapshots", "create"),
        ("snapshot.storage.k8s.io", "volumesnapshots", "patch"),
        ("snapshot.storage.k8s.io", "volumesnapshots", "delete"),
        ("snapshot.storage.k8s.io", "volumesnapshots", "watch"),
        ("", "pods/exec", "create"),
        ("", "pods/log", "get"),
        ("", "pods", "create"),
        ("", "persistentvolumeclaims", "create"),
        ("", "events", "create"),
        ("", "events", "get"),
        ("", "events", "patch"),
        ("coordination.k8s.io", "leases", "update"),
        ("apps", "statefulsets/scale", "patch"),
        ("apps", "deployments", "patch"),
        ("apps", "replicasets", "list"),
        ("apps", "daemonsets", "list"),
        ("batch", "cronjobs", "patch"),
        ("batch", "jobs", "patch"),
        ("autoscaling", "horizontalpodautoscalers", "list"),
    ] {
        assert!(
            grants(group, resource, verb),
            "Role lacks {verb} {group}/{resource}"
        );
    }
    assert!(
        !grants("", "secrets", "get"),
        "kentledge never reads Secrets; mover pods mount them"
    );
    let no_wildcards = role
        .rules
        .unwrap()
        .iter()
        .all(|r| !r.verbs.iter().any(|v| v == "*"));
    assert!(no_wildcards);
}

#[test]
fn cronjobs_run_real_subcommands_with_the_config_from_a_configmap() {
    for doc in documents("cronjobs.yaml") {
        let cj: CronJob = serde_saphyr::from_str(&doc).unwrap();
        let pod = cj
            .spec
            .unwrap()
            .job_template
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("kentledge"));
        let c = &pod.containers[0];
        let args = c.args.clone().unwrap();
        let argv = std::iter::once("kentledge".to_owned()).chain(args.clone());
        kentledge::cli::Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let env = c.env.as_ref().unwrap();
        assert!(env.iter().any(|e| e.name == "KENTLEDGE_CONFIG"));
    }
}
