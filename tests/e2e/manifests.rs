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

/// A CronJob's pod spec, which runs as the `kentledge` ServiceAccount.
fn pod_of(cj: CronJob) -> k8s_openapi::api::core::v1::PodSpec {
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
    pod
}

#[test]
fn cronjobs_run_real_subcommands_with_the_config_from_a_configmap() {
    for doc in documents("cronjobs.yaml") {
        let pod = pod_of(serde_saphyr::from_str(&doc).unwrap());
        let c = &pod.containers[0];
        let args = c.args.clone().unwrap();
        let argv = std::iter::once("kentledge".to_owned()).chain(args.clone());
        kentledge::cli::Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let env = c.env.as_ref().unwrap();
        assert!(env.iter().any(|e| e.name == "KENTLEDGE_CONFIG"));
    }
}

#[test]
fn the_kustomize_install_applies_to_a_cluster_and_its_cronjob_command_runs_there() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, DynamicObject, Patch, PatchParams};
    let tc = crate::cluster::TestCluster::start("install");
    tc.pvc_with_files("data", &[], &[("a.txt", "hello")]);
    // The shipped overlay, with the base as a checkout has it, the namespace set once, and a
    // config of this namespace.
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("manifests");
    std::fs::create_dir(&base).unwrap();
    for f in ["kustomization.yaml", "rbac.yaml", "cronjobs.yaml"] {
        std::fs::copy(root().join("manifests").join(f), base.join(f)).unwrap();
    }
    let overlay = dir.path().join("examples/install");
    std::fs::create_dir_all(&overlay).unwrap();
    let k = std::fs::read_to_string(root().join("examples/install/kustomization.yaml")).unwrap();
    assert!(k.contains("namespace: demo"), "{k}");
    std::fs::write(
        overlay.join("kustomization.yaml"),
        k.replace("namespace: demo", "namespace: install"),
    )
    .unwrap();
    std::fs::write(
        overlay.join("kentledge.yaml"),
        "apiVersion: kentledge.io/v1alpha1\nkind: BackupConfig\nmetadata:\n  name: app\nspec:\n  snapshots:\n    targets: [{pvc: data}]\n    retention: {daily: 7}\n",
    )
    .unwrap();
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(&overlay)
        .output()
        .expect("kubectl (make install-test-deps)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8(out.stdout).unwrap();
    // Applied as an admin would (`kubectl apply -k`: server-side apply of every object).
    let client = tc.client();
    for doc in rendered.split("\n---\n") {
        let obj: DynamicObject = serde_saphyr::from_str(doc).unwrap();
        let types = obj.types.clone().unwrap();
        let (group, version) = match types.api_version.split_once('/') {
            Some((g, v)) => (g.to_owned(), v.to_owned()),
            None => (String::new(), types.api_version.clone()),
        };
        assert_eq!(
            obj.metadata.namespace.as_deref(),
            Some("install"),
            "the namespace is set once for everything: {doc}"
        );
        let gvk = kube::api::GroupVersionKind::gvk(&group, &version, &types.kind);
        let (ar, _) = tc
            .block_on(kube::discovery::pinned_kind(&client, &gvk))
            .unwrap_or_else(|e| panic!("{gvk:?}: {e}"));
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "install", &ar);
        let name = obj.metadata.name.clone().unwrap();
        tc.block_on(api.patch(
            &name,
            &PatchParams::apply("kubectl").force(),
            &Patch::Apply(&obj),
        ))
        .unwrap_or_else(|e| panic!("applying {} {name}: {e}", types.kind));
    }
    // The hourly snapshot's CronJob: its command, with the config from the generated
    // ConfigMap it mounts, run as its ServiceAccount.
    let cjs: Api<CronJob> = Api::namespaced(client.clone(), "install");
    let pod = pod_of(tc.block_on(cjs.get("kentledge-snapshot")).unwrap());
    let cm_name = pod.volumes.unwrap()[0]
        .config_map
        .as_ref()
        .unwrap()
        .name
        .clone();
    assert!(
        cm_name.starts_with("kentledge-"),
        "a generated name: {cm_name}"
    );
    let cms: Api<ConfigMap> = Api::namespaced(client, "install");
    let cm = tc.block_on(cms.get(&cm_name)).unwrap();
    let config = dir.path().join("kentledge.yaml");
    std::fs::write(&config, &cm.data.unwrap()["kentledge.yaml"]).unwrap();
    let args = pod.containers[0].args.clone().unwrap();
    // (`-n`: what a pod of the namespace gets from its ServiceAccount's namespace file.)
    let r = crate::support::run(tc.kentledge(&config).args(["-n", "install"]).args(&args));
    assert_eq!(r.code, 0, "{args:?}: {}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("data-"),
        "a snapshot of data: {}",
        r.stdout
    );
}
