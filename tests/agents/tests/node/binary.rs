//! The `kentledge-node` program against the test API server, as a person would run it against any
//! API server: it needs the client CA, maps images to directories (`--image`, and the kentledge
//! image to its own directory by default), logs at `--log`, and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use k8s_openapi::api::core::v1::Pod;
use kentledge_testcluster::ServerOptions;
use kube::api::{Api, LogParams, PostParams};
use serde_json::json;

use crate::{NS, phase, pod_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kentledge_node_runs_against_an_api_server_with_its_options() {
    let (server, client) =
        kentledge_nodeagents::testing::server_with_namespace(ServerOptions::default(), NS).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.admin_kubeconfig()).unwrap();
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, kentledge_testcluster::tls::CA_PEM).unwrap();
    let tools = dir.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let tool = tools.join("image-tool");
    std::fs::write(&tool, "#!/bin/sh\necho from the tools image\n").unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bin = env!("CARGO_BIN_EXE_kentledge-node");

    // Without the client CA it refuses to start.
    let out = Command::new(bin)
        .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--client-ca-file is required"),
        "{out:?}"
    );

    let mut child = Command::new(bin)
        .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
        .args(["--client-ca-file", ca.to_str().unwrap()])
        .args(["--data-dir", dir.path().join("data").to_str().unwrap()])
        .arg(format!("--image=example.com/tools={}", tools.display()))
        .args(["--no-storage", "--no-workloads", "--log", "info"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert!(
        ready.starts_with("node node-1 ready, kubelet on https://127.0.0.1:"),
        "{ready}"
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let mut p = pod_with("tool", "", json!({}));
    p["spec"]["containers"][0]["image"] = json!("example.com/tools:1");
    p["spec"]["containers"][0]["command"] = json!(["image-tool"]);
    pods.create(&PostParams::default(), &serde_json::from_value(p).unwrap())
        .await
        .unwrap();
    kentledge_nodeagents::testing::eventually(20, "tool pod done", || async {
        let p = pods.get("tool").await.ok()?;
        (phase(&p) == "Succeeded").then_some(())
    })
    .await;
    assert_eq!(
        pods.logs("tool", &LogParams::default()).await.unwrap(),
        "from the tools image\n"
    );

    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut logs).unwrap();
    let own_dir = std::path::Path::new(bin)
        .parent()
        .unwrap()
        .display()
        .to_string();
    assert!(
        logs.contains(&format!(
            "image ghcr.io/kentledge/kentledge provides {own_dir}"
        )),
        "{logs}"
    );
    assert!(
        logs.contains(&format!(
            "image example.com/tools provides {}",
            tools.display()
        )),
        "{logs}"
    );
    assert!(logs.contains("node node-1 registered"), "{logs}");
    assert!(
        !logs.contains("\u{1b}["),
        "no colours when stderr is not a terminal"
    );
}
