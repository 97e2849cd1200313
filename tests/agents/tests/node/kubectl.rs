//! Real kubectl (v1.32 on PATH) execs and attaches through the test API server to the kubelet, over
//! SPDY/3.1 (`KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`, what kubectl before 1.30 and a 1.30+ API
//! server's translator send a kubelet) and over websockets: stdin in, stdout and stderr out, exit
//! codes, start failures, a tty. Skipped with a message when kubectl is not installed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;

use crate::{Env, env, pod_with};

/// kubectl's (exit code, stdout, stderr), `stdin` piped in.
fn kubectl(kubeconfig: &Path, spdy: bool, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut cmd = Command::new("kubectl");
    cmd.env("KUBECONFIG", kubeconfig)
        .env(
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS",
            if spdy { "false" } else { "true" },
        )
        .args(["-n", crate::NS])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run kubectl");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A node's test environment and its admin kubeconfig; `None` (saying so) without kubectl.
async fn kubectl_env() -> Option<(Env, PathBuf)> {
    let found = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!("skipping: kubectl is not installed");
        return None;
    }
    let e = env().await;
    let kc = e.dir.path().join("kubeconfig");
    std::fs::write(&kc, e._server.admin_kubeconfig()).unwrap();
    Some((e, kc))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_over_spdy_and_websockets() {
    let Some((e, kc)) = kubectl_env().await else {
        return;
    };
    e.create(pod_with("shell", "sleep 1000", json!({}))).await;
    e.wait_phase("shell", "Running", 20).await;
    let kc2 = kc.clone();
    let run = move |spdy: bool, args: Vec<&'static str>, stdin: &'static [u8]| {
        let kc = kc2.clone();
        tokio::task::spawn_blocking(move || kubectl(&kc, spdy, &args, stdin))
    };
    // `sh -c script` in the pod, nothing on stdin.
    let sh = |spdy: bool, script: &'static str| {
        run(spdy, vec!["exec", "shell", "--", "sh", "-c", script], b"")
    };

    // SPDY, as the kubelet sees it: kubectl offers v5…v1, the kubelet answers v4.
    let (code, out, err) = run(
        true,
        vec!["-v=8", "exec", "-i", "shell", "--", "cat"],
        b"hi\n",
    )
    .await
    .unwrap();
    assert_eq!((code, out.as_str()), (0, "hi\n"), "{err}");
    assert!(err.contains("Upgrade: SPDY/3.1"), "{err}");
    assert!(
        err.contains("X-Stream-Protocol-Version: v4.channel.k8s.io"),
        "{err}"
    );

    for spdy in [true, false] {
        let (code, out, err) = run(
            spdy,
            vec!["exec", "-i", "shell", "--", "cat"],
            b"ping\npong\n",
        )
        .await
        .unwrap();
        assert_eq!(
            (code, out.as_str()),
            (0, "ping\npong\n"),
            "spdy={spdy}: {err}"
        );

        // Exit codes and stderr.
        let (code, out, err) = sh(spdy, "echo out; echo err >&2; exit 3").await.unwrap();
        assert_eq!((code, out.as_str()), (3, "out\n"), "spdy={spdy}: {err}");
        assert_eq!(
            err, "err\ncommand terminated with exit code 3\n",
            "spdy={spdy}"
        );

        // A program that is not there: the runtime's start error, exit 1.
        let (code, _, err) = run(spdy, vec!["exec", "shell", "--", "nope"], b"")
            .await
            .unwrap();
        assert_eq!(code, 1, "spdy={spdy}: {err}");
        assert!(
            err.contains("error: Internal error occurred: error executing command in container: failed to exec in container")
                && err.contains("exec: \"nope\": executable file not found in $PATH"),
            "spdy={spdy}: {err}"
        );

        // Megabytes of output arrive whole (backpressure, no loss).
        let (code, out, err) = sh(spdy, "head -c 5000000 /dev/zero | tr '\\0' x")
            .await
            .unwrap();
        assert_eq!(code, 0, "spdy={spdy}: {err}");
        assert!(
            out.len() == 5_000_000 && out.bytes().all(|b| b == b'x'),
            "spdy={spdy}: {} bytes",
            out.len()
        );

        // A tty (kubectl adds the resize stream); output comes on stdout.
        let (code, out, err) = run(
            spdy,
            vec!["exec", "-t", "shell", "--", "sh", "-c", "echo tty; exit 4"],
            b"",
        )
        .await
        .unwrap();
        assert_eq!((code, out.as_str()), (4, "tty\n"), "spdy={spdy}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_attach_over_spdy() {
    let Some((e, kc)) = kubectl_env().await else {
        return;
    };
    e.create(pod_with(
        "once",
        "",
        json!({"container": {"command": ["cat"], "stdin": true, "stdinOnce": true}}),
    ))
    .await;
    e.wait_phase("once", "Running", 20).await;
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        kubectl(&kc, true, &["attach", "-i", "once"], b"over spdy\n")
    })
    .await
    .unwrap();
    assert_eq!((code, out.as_str()), (0, "over spdy\n"), "{err}");
    e.wait_phase("once", "Succeeded", 20).await;
}
