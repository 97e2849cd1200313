//! Real kubectl against the server (skipped with a message when /usr/bin/kubectl is not installed).

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everyday_verbs() {
    if !Path::new("/usr/bin/kubectl").exists() {
        println!("skipping: /usr/bin/kubectl is not installed");
        return;
    }
    let s = server().await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, s.admin_kubeconfig()).unwrap();
    let manifest = dir.path().join("m.yaml");
    std::fs::write(&manifest, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm1\n  namespace: ref\n  labels: {app: demo}\ndata: {a: b}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm2\n  namespace: ref\n  labels: {app: other}\n").unwrap();
    let run = |args: &[&str]| {
        let (ok, text) = kubectl(&kc, args);
        assert!(ok, "kubectl {args:?}: {text}");
        text
    };
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
            "app notin (demo)",
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
    if !Path::new("/usr/bin/kubectl").exists() {
        println!("skipping: /usr/bin/kubectl is not installed");
        return;
    }
    let s = server().await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, s.admin_kubeconfig()).unwrap();
    let run = |args: &[&str]| {
        let (ok, text) = kubectl(&kc, args);
        assert!(ok, "kubectl {args:?}: {text}");
        text
    };
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
    let bob = dir.path().join("bob");
    std::fs::write(&bob, s.kubeconfig_for_token(token.trim(), "typed")).unwrap();
    let (ok, text) = kubectl(&bob, &["auth", "can-i", "create", "pods", "-n", "typed"]);
    assert!(!ok);
    assert_eq!(text.trim(), "no");
}
