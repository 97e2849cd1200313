//! The mover's `relay` job (the building block of database dumps): in a pod with the
//! `kentledge` ServiceAccount's token, it runs a command in another pod by exec with its
//! in-cluster credentials and copies the command's stdout to its own, byte for byte; it exits
//! non-zero when the command fails or the stream lacks its end marker (so an engine reading it
//! with `--content-from-command` makes no archive).

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::json;

use crate::cluster::TestCluster;

/// Runs a relay pod for `job`; returns (exit code, stdout bytes, stderr text).
fn relay(tc: &TestCluster, name: &str, job: serde_json::Value) -> (i32, Vec<u8>, String) {
    let out = tempfile::tempdir().unwrap();
    let script =
        format!("kentledge mover --job \"$JOB\" > /out/{name}.stdout 2> /out/{name}.stderr");
    let (code, _) = in_mover_pod(tc, name, out.path(), &script, &[("JOB", job.to_string())]);
    let read = |ext: &str| std::fs::read(out.path().join(format!("{name}.{ext}"))).unwrap();
    (
        code,
        read("stdout"),
        String::from_utf8_lossy(&read("stderr")).into_owned(),
    )
}

#[test]
fn a_relay_streams_another_pods_output_and_fails_when_it_is_not_whole() {
    let tc = TestCluster::start("shop");
    tc.sleeper("db", &[], &[], &[]);
    // 2 MB of lines, then the end marker, as mariadb-dump writes it.
    let dump = "seq 1 300000; echo '-- Dump completed on 2026-12-01'";
    let (code, stdout, stderr) = relay(
        &tc,
        "whole",
        json!({"action": "relay", "pod": "db", "container": "main",
        "command": ["sh", "-c", dump], "check": {"endMarker": "-- Dump completed"}}),
    );
    assert_eq!(code, 0, "{stderr}");
    let expected: String = (1..=300000).map(|i| format!("{i}\n")).collect::<String>()
        + "-- Dump completed on 2026-12-01\n";
    assert_eq!(stdout.len(), expected.len(), "{stderr}");
    assert!(stdout == expected.as_bytes(), "byte for byte");
    assert!(stderr.contains("complete"), "{stderr}");

    // A command that fails half way, and a stream without its end: exit 1, said why.
    let (code, _, stderr) = relay(
        &tc,
        "fails",
        json!({"action": "relay", "pod": "db", "container": "main",
        "command": ["sh", "-c", "seq 1 1000; echo broken >&2; exit 3"], "check": {"endMarker": "-- Dump completed"}}),
    );
    assert_eq!(code, 4, "the command's own failure: {stderr}");
    assert!(
        stderr.contains("exit code 3") && stderr.contains("broken"),
        "{stderr}"
    );
    let (code, _, stderr) = relay(
        &tc,
        "cut",
        json!({"action": "relay", "pod": "db", "container": "main",
        "command": ["sh", "-c", "seq 1 1000"], "check": {"endMarker": "-- Dump completed"}}),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("cut short"), "{stderr}");
    let (code, _, stderr) = relay(
        &tc,
        "nopod",
        json!({"action": "relay", "pod": "gone", "container": "main",
        "command": ["true"]}),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("gone"), "{stderr}");
}

/// Runs `script` (sh) in a pod of the kentledge image with the `kentledge` ServiceAccount and a
/// host directory at /out; returns its exit code and combined output.
fn in_mover_pod(
    tc: &TestCluster,
    name: &str,
    out: &std::path::Path,
    script: &str,
    env: &[(&str, String)],
) -> (i32, String) {
    let env: Vec<serde_json::Value> = env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    let _: Pod = tc.create(json!({
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "serviceAccountName": "kentledge",
            "volumes": [{"name": "out", "hostPath": {"path": out.display().to_string()}}],
            "containers": [{"name": "mover", "image": "ghcr.io/kentledge/kentledge",
                "command": ["sh", "-c", format!("( {script} ) > /out/{name}.log 2>&1; echo $? > /out/{name}.code")],
                "env": env,
                "volumeMounts": [{"name": "out", "mountPath": "/out"}]}]},
    }));
    let pods: Api<Pod> = Api::namespaced(tc.client(), &tc.namespace);
    tc.wait(120, &format!("pod {name} to end"), || {
        let p = tc.block_on(pods.get(name)).ok()?;
        matches!(p.status?.phase.as_deref(), Some("Succeeded" | "Failed")).then_some(())
    });
    let code = std::fs::read_to_string(out.join(format!("{name}.code")))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (
        code,
        std::fs::read_to_string(out.join(format!("{name}.log"))).unwrap_or_default(),
    )
}
