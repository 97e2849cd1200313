//! Real kubectl against the server (skipped with a message when /usr/bin/kubectl is not installed):
//! everyday verbs, and every typed `create` subcommand (protobuf bodies).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use kentledge_testcluster::ServerHandle;

use crate::support::*;

/// Runs kubectl with a kubeconfig: (success, stdout + stderr).
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .output()
        .expect("run kubectl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// kubectl that must succeed: its stdout + stderr.
pub fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let (ok, text) = kubectl(kubeconfig, args);
    assert!(ok, "kubectl {args:?}: {text}");
    text
}

/// Write a kubeconfig `text` as `dir/name`.
pub fn write_kubeconfig(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// What a kubectl test starts from: a server, a temporary directory and the admin kubeconfig in it;
/// `None` (saying so) when /usr/bin/kubectl is not installed.
pub async fn kubectl_env() -> Option<(ServerHandle, tempfile::TempDir, PathBuf)> {
    if !Path::new("/usr/bin/kubectl").exists() {
        println!("skipping: /usr/bin/kubectl is not installed");
        return None;
    }
    let s = server().await;
    let dir = tempfile::tempdir().unwrap();
    let kc = write_kubeconfig(dir.path(), "kubeconfig", &s.admin_kubeconfig());
    Some((s, dir, kc))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everyday_verbs() {
    let Some((_s, dir, kc)) = kubectl_env().await else {
        return;
    };
    let manifest = dir.path().join("m.yaml");
    std::fs::write(&manifest, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm1\n  namespace: ref\n  labels: {app: demo}\ndata: {a: b}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm2\n  namespace: ref\n  labels: {app: other}\n").unwrap();
    let run = |args: &[&str]| kubectl_ok(&kc, args);
    let m = manifest.to_str().unwrap();
    assert!(run(&["apply", "-f", m]).contains("configmap/cm1 created"));
    assert!(run(&["apply", "-f", m]).contains("configmap/cm1 unchanged"));
    assert_eq!(
        run(&["-n", "ref", "get", "cm", "-l", "app=demo", "-o", "name"]).trim(),
        "configmap/cm1"
    );
    assert_eq!(
        run(&[
            "-n",
            "ref",
            "get",
            "cm",
            "-l",
            "app,app notin (demo)",
            "-o",
            "name"
        ])
        .trim(),
        "configmap/cm2"
    );
    run(&[
        "-n",
        "ref",
        "patch",
        "cm",
        "cm1",
        "--type=merge",
        "-p",
        r#"{"data":{"m":"1"}}"#,
    ]);
    run(&[
        "-n",
        "ref",
        "patch",
        "cm",
        "cm1",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/data/j","value":"2"}]"#,
    ]);
    run(&[
        "-n",
        "ref",
        "patch",
        "cm",
        "cm1",
        "-p",
        r#"{"data":{"s":"3"}}"#,
    ]);
    assert_eq!(
        run(&["-n", "ref", "get", "cm", "cm1", "-o", "jsonpath={.data}"]),
        r#"{"a":"b","j":"2","m":"1","s":"3"}"#
    );
    assert!(run(&["apply", "--server-side", "-f", m]).contains("serverside-applied"));
    run(&[
        "-n",
        "ref",
        "wait",
        "--for=jsonpath={.data.a}=b",
        "cm/cm1",
        "--timeout=5s",
    ]);
    assert!(run(&["-n", "ref", "delete", "cm", "cm2"]).contains("deleted"));
    run(&[
        "-n",
        "ref",
        "wait",
        "--for=delete",
        "cm/cm2",
        "--timeout=5s",
    ]);
    let (ok, text) = kubectl(&kc, &["-n", "ref", "get", "cm", "cm2"]);
    assert!(
        !ok && text.contains("configmaps \"cm2\" not found"),
        "{text}"
    );
}

/// kubectl's typed commands send protobuf bodies; `auth can-i` answers for the token's user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_create_commands_auth_can_i_and_create_token() {
    let Some((s, dir, kc)) = kubectl_env().await else {
        return;
    };
    let run = |args: &[&str]| kubectl_ok(&kc, args);
    assert_eq!(
        run(&["create", "namespace", "typed"]).trim(),
        "namespace/typed created"
    );
    run(&[
        "-n",
        "typed",
        "create",
        "configmap",
        "cm",
        "--from-literal=a=b",
    ]);
    run(&[
        "-n",
        "typed",
        "create",
        "secret",
        "generic",
        "s",
        "--from-literal=pw=hunter2",
    ]);
    run(&["-n", "typed", "create", "serviceaccount", "bob"]);
    assert_eq!(
        run(&[
            "-n",
            "typed",
            "get",
            "configmap",
            "cm",
            "-o",
            "jsonpath={.data.a}"
        ]),
        "b"
    );
    assert_eq!(
        run(&[
            "-n",
            "typed",
            "get",
            "secret",
            "s",
            "-o",
            "jsonpath={.data.pw}"
        ]),
        "aHVudGVyMg=="
    );
    assert_eq!(
        run(&["auth", "can-i", "create", "pods", "-n", "typed"]).trim(),
        "yes"
    );
    let token = run(&["-n", "typed", "create", "token", "bob"]);
    assert!(token.trim().starts_with("eyJ"), "{token}");
    // bob has no rights: can-i says no (exit 1) with his token.
    let bob = write_kubeconfig(
        dir.path(),
        "bob",
        &s.kubeconfig_for_token(token.trim(), "typed"),
    );
    let (ok, text) = kubectl(&bob, &["auth", "can-i", "create", "pods", "-n", "typed"]);
    assert!(!ok);
    assert_eq!(text.trim(), "no");
}

fn get_json(kc: &Path, args: &[&str]) -> serde_json::Value {
    let (ok, text) = kubectl(kc, &[args, &["-o", "json"]].concat());
    assert!(ok, "kubectl get {args:?}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Every typed `kubectl create` subcommand for a kind this server serves: the protobuf bodies decode
/// to the objects a real server stores, and the RBAC objects take effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_create_commands_for_every_served_kind() {
    let Some((s, dir, kc)) = kubectl_env().await else {
        return;
    };
    let bob = write_kubeconfig(
        dir.path(),
        "bob",
        &s.kubeconfig_for_token("bob-token", "ref"),
    );
    let run = |args: &[&str]| kubectl_ok(&kc, args);
    let ns = ["-n", "ref"];
    let created = |args: &[&str], what: &str| {
        let out = run(&[&ns[..], &["create"], args].concat());
        assert_eq!(out.trim(), format!("{what} created"), "{args:?}");
    };

    created(
        &["role", "pod-reader", "--verb=get,list", "--resource=pods"],
        "role.rbac.authorization.k8s.io/pod-reader",
    );
    let role = get_json(&kc, &["-n", "ref", "get", "role", "pod-reader"]);
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}])
    );
    created(
        &[
            "rolebinding",
            "rb",
            "--role=pod-reader",
            "--user=bob",
            "--group=devs",
            "--serviceaccount=ref:robot",
        ],
        "rolebinding.rbac.authorization.k8s.io/rb",
    );
    let rb = get_json(&kc, &["-n", "ref", "get", "rolebinding", "rb"]);
    assert_eq!(
        rb["subjects"],
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"},
               {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"},
               {"kind": "ServiceAccount", "name": "robot", "namespace": "ref"}])
    );
    assert_eq!(
        rb["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"})
    );
    created(
        &[
            "clusterrole",
            "node-reader",
            "--verb=get,list",
            "--resource=nodes",
        ],
        "clusterrole.rbac.authorization.k8s.io/node-reader",
    );
    created(
        &[
            "clusterrole",
            "agg",
            "--aggregation-rule=rbac.example.com/aggregate=true",
        ],
        "clusterrole.rbac.authorization.k8s.io/agg",
    );
    assert_eq!(
        get_json(&kc, &["get", "clusterrole", "agg"])["aggregationRule"],
        json!({"clusterRoleSelectors": [{"matchLabels": {"rbac.example.com/aggregate": "true"}}]})
    );
    created(
        &[
            "clusterrolebinding",
            "crb",
            "--clusterrole=node-reader",
            "--user=bob",
        ],
        "clusterrolebinding.rbac.authorization.k8s.io/crb",
    );
    // The bindings work for bob.
    let (ok, text) = kubectl(&bob, &["auth", "can-i", "list", "nodes"]);
    assert!(ok && text.starts_with("yes"), "{text}");
    let (ok, text) = kubectl(&bob, &["-n", "ref", "get", "pods"]);
    assert!(ok, "{text}");

    created(
        &[
            "deployment",
            "web",
            "--image=busybox:1.36",
            "--replicas=2",
            "--port=8080",
        ],
        "deployment.apps/web",
    );
    let d = get_json(&kc, &["-n", "ref", "get", "deployment", "web"]);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"],
        json!([{"name": "busybox", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}], "resources": {},
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}])
    );
    created(
        &["job", "once", "--image=busybox", "--", "true"],
        "job.batch/once",
    );
    let j = get_json(&kc, &["-n", "ref", "get", "job", "once"]);
    assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(
        j["spec"]["template"]["spec"]["containers"][0]["command"],
        json!(["true"])
    );
    assert_eq!(j["spec"]["backoffLimit"], 6);
    created(
        &[
            "cronjob",
            "nightly",
            "--image=busybox",
            "--schedule=*/5 * * * *",
            "--",
            "echo",
            "hi",
        ],
        "cronjob.batch/nightly",
    );
    let c = get_json(&kc, &["-n", "ref", "get", "cronjob", "nightly"]);
    assert_eq!(c["spec"]["schedule"], "*/5 * * * *");
    assert_eq!(
        c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"],
        "OnFailure"
    );
    created(
        &["job", "manual", "--from=cronjob/nightly"],
        "job.batch/manual",
    );
    let m = get_json(&kc, &["-n", "ref", "get", "job", "manual"]);
    assert_eq!(m["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert_eq!(
        m["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    assert_eq!(
        m["spec"]["template"]["spec"]["containers"][0]["command"],
        json!(["echo", "hi"])
    );

    created(
        &[
            "secret",
            "docker-registry",
            "reg",
            "--docker-server=r.example.com",
            "--docker-username=u",
            "--docker-password=p",
        ],
        "secret/reg",
    );
    let reg = get_json(&kc, &["-n", "ref", "get", "secret", "reg"]);
    assert_eq!(reg["type"], "kubernetes.io/dockerconfigjson");
    assert!(reg["data"][".dockerconfigjson"].is_string());
    if Path::new("/usr/bin/openssl").exists() {
        let (key, cert) = (dir.path().join("tls.key"), dir.path().join("tls.crt"));
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=typed",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(out.status.success());
        let (k, c) = (
            format!("--key={}", key.display()),
            format!("--cert={}", cert.display()),
        );
        created(&["secret", "tls", "tls", &k, &c], "secret/tls");
        let tls = get_json(&kc, &["-n", "ref", "get", "secret", "tls"]);
        assert_eq!(tls["type"], "kubernetes.io/tls");
        let mut keys: Vec<&String> = tls["data"].as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["tls.crt", "tls.key"]);
    }
    // The controllers run on the decoded objects as usual: the Deployment gets its pods' template.
    assert!(
        d["spec"]["template"]["spec"]
            .get("serviceAccountName")
            .is_none()
    );
}

/// Kinds this server does not serve get the real server's answer for an unknown resource (404), not
/// 415: kubectl's own message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_create_commands_for_kinds_not_served_get_the_real_404() {
    let Some((_s, _dir, kc)) = kubectl_env().await else {
        return;
    };
    let cases: [(&[&str], &str); 7] = [
        (
            &["priorityclass", "high", "--value=1000"],
            "error: failed to create priorityclass: the server could not find the requested resource (post priorityclasses.scheduling.k8s.io)",
        ),
        (
            &["quota", "q", "--hard=pods=1"],
            "error: failed to create quota: the server could not find the requested resource",
        ),
        (
            &["service", "clusterip", "svc", "--tcp=80:8080"],
            "error: failed to create ClusterIP service: the server could not find the requested resource",
        ),
        (
            &["service", "nodeport", "np", "--tcp=80:8080"],
            "error: failed to create NodePort service: the server could not find the requested resource",
        ),
        (
            &[
                "service",
                "externalname",
                "ext",
                "--external-name=example.com",
            ],
            "error: failed to create ExternalName service: the server could not find the requested resource",
        ),
        (
            &["ingress", "ing", "--rule=foo.com/bar=svc:80"],
            "error: failed to create ingress: the server could not find the requested resource (post ingresses.networking.k8s.io)",
        ),
        (
            &[
                "poddisruptionbudget",
                "pdb",
                "--selector=app=x",
                "--min-available=1",
            ],
            "error: failed to create poddisruptionbudgets: the server could not find the requested resource (post poddisruptionbudgets.policy)",
        ),
    ];
    for (args, want) in cases {
        let (ok, text) = kubectl(&kc, &[&["-n", "ref", "create"], args].concat());
        assert!(!ok, "{args:?}");
        assert_eq!(text.trim(), want, "{args:?}");
    }
}
