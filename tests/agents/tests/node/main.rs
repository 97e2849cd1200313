//! The scheduler and kubelet against the test API server, driven only through kube-rs: scheduling
//! (nodeSelector, missing claims), pods as real processes with volumes, env, read-only mounts, logs
//! through `pods/log`, exec through `pods/exec` (stdin, stdout, exit codes), phases and exit codes,
//! restarts, `activeDeadlineSeconds`, and graceful deletion with SIGTERM.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Node as NodeObject, PersistentVolume, PersistentVolumeClaim, Pod, Secret,
};
use kentledge_nodeagents::node::{Node, NodeHandle, NodeOptions};
use kentledge_testcluster::tls::CA_PEM;
use kentledge_testcluster::{ServerHandle, ServerOptions};
use kube::api::{Api, AttachParams, DeleteParams, LogParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod binary;
mod kubectl;
mod kubelet_tls;
mod spdy;

const NS: &str = "app";

struct Env {
    client: kube::Client,
    pods: Api<Pod>,
    dir: tempfile::TempDir,
    node: NodeHandle,
    _server: ServerHandle,
}

async fn env() -> Env {
    env_with(ServerOptions::default()).await
}

async fn env_with(opts: ServerOptions) -> Env {
    let (server, client) = kentledge_nodeagents::testing::server_with_namespace(opts, NS).await;
    let dir = tempfile::tempdir().unwrap();
    let image_bin = dir.path().join("image-bin");
    std::fs::create_dir_all(&image_bin).unwrap();
    let tool = image_bin.join("image-tool");
    std::fs::write(&tool, "#!/bin/sh\necho \"from the image: $(hostname)\"\n").unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let opts = NodeOptions::new("node-1", dir.path().join("node"))
        .client_ca(CA_PEM)
        .image("example.com/tools", image_bin)
        .label("disk", "ssd")
        .restart_backoff(Duration::from_millis(200));
    let node = Node::start(client.clone(), opts)
        .await
        .expect("node starts");
    Env {
        pods: Api::namespaced(client.clone(), NS),
        client,
        dir,
        node,
        _server: server,
    }
}

use kentledge_nodeagents::testing::eventually;

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

impl Env {
    async fn create(&self, pod: Value) -> Pod {
        let pod: Pod = serde_json::from_value(pod).unwrap();
        self.pods
            .create(&PostParams::default(), &pod)
            .await
            .unwrap()
    }

    async fn wait_phase(&self, name: &str, want: &str, secs: u64) -> Pod {
        eventually(secs, &format!("pod {name} {want}"), || async {
            let p = self.pods.get(name).await.ok()?;
            (phase(&p) == want).then_some(p)
        })
        .await
    }

    async fn logs(&self, name: &str) -> String {
        self.pods.logs(name, &LogParams::default()).await.unwrap()
    }

    /// A PV whose `spec.hostPath.path` is `dir`, and a PVC bound to it by hand.
    async fn bound_claim(&self, name: &str, dir: &Path) {
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": format!("pv-{name}")},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": dir.display().to_string()},
                     "claimRef": {"namespace": NS, "name": name}},
        }))
        .unwrap();
        Api::<PersistentVolume>::all(self.client.clone())
            .create(&PostParams::default(), &pv)
            .await
            .unwrap();
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "volumeName": format!("pv-{name}"), "storageClassName": ""},
        }))
        .unwrap();
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), NS);
        claims.create(&PostParams::default(), &pvc).await.unwrap();
        claims
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": "Bound"}})),
            )
            .await
            .unwrap();
    }

    fn data_dir(&self, name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
        let d = self.dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        for (f, content) in files {
            std::fs::write(d.join(f), content).unwrap();
        }
        d
    }
}

fn pod_with(name: &str, script: &str, extra: Value) -> Value {
    let mut p = json!({
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36", "command": ["sh", "-c", script]}]},
    });
    if let Some(obj) = extra.as_object() {
        for (k, v) in obj {
            if k == "container" {
                for (ck, cv) in v.as_object().unwrap() {
                    p["spec"]["containers"][0][ck] = cv.clone();
                }
            } else {
                p["spec"][k] = v.clone();
            }
        }
    }
    p
}

#[tokio::test]
async fn containers_find_their_images_programs_and_see_the_pod_name_as_hostname() {
    let e = env().await;
    let mut p = pod_with(
        "toolbox",
        "image-tool; echo exec-$(hostname) >/dev/null",
        json!({}),
    );
    p["spec"]["containers"][0]["image"] = json!("example.com/tools:1.0");
    p["spec"]["containers"][0]["command"] = json!(["image-tool"]);
    e.create(p).await;
    e.wait_phase("toolbox", "Succeeded", 20).await;
    assert_eq!(e.logs("toolbox").await, "from the image: toolbox\n");
    // Another image does not have the program.
    let mut other = pod_with("plain", "", json!({}));
    other["spec"]["containers"][0]["command"] = json!(["image-tool"]);
    e.create(other).await;
    let pending = eventually(20, "plain waits with an error", || async {
        let p = e.pods.get("plain").await.ok()?;
        let w = serde_json::to_value(p.status?.container_statuses?.first()?.state.clone()?).ok()?;
        w["waiting"]["message"]
            .as_str()
            .map(String::from)
            .or_else(|| w["terminated"]["message"].as_str().map(String::from))
    })
    .await;
    assert!(pending.contains("image-tool"), "{pending}");
}

#[tokio::test]
async fn node_registers_ready_with_its_kubelet_port() {
    let e = env().await;
    let node = Api::<NodeObject>::all(e.client.clone())
        .get("node-1")
        .await
        .unwrap();
    let v = serde_json::to_value(&node).unwrap();
    assert_eq!(
        v["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"],
        json!(e.node.kubelet_port())
    );
    assert_eq!(
        v["status"]["addresses"][0],
        json!({"type": "InternalIP", "address": "127.0.0.1"})
    );
    let ready = v["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True");
    assert_eq!(v["metadata"]["labels"]["disk"], "ssd");
    // A kubelet reports its control plane's version, not a built-in one.
    let server_version = e.client.apiserver_version().await.unwrap().git_version;
    assert_eq!(
        v["status"]["nodeInfo"]["kubeletVersion"],
        json!(server_version)
    );
    // The node Lease is owned by the Node, so deleting the Node removes it.
    let leases: Api<Lease> = Api::namespaced(e.client.clone(), "kube-node-lease");
    let lease = eventually(10, "node lease", || async {
        leases.get("node-1").await.ok()
    })
    .await;
    let owner = serde_json::to_value(&lease.metadata.owner_references).unwrap();
    assert_eq!(
        owner,
        json!([{"apiVersion": "v1", "kind": "Node", "name": "node-1", "uid": v["metadata"]["uid"]}])
    );
    let Env { node, client, .. } = e;
    node.shutdown().await;
    Api::<NodeObject>::all(client)
        .delete("node-1", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, "the lease goes with its node", || async {
        matches!(leases.get("node-1").await, Err(kube::Error::Api(e)) if e.code == 404)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn pod_runs_with_a_volume_and_its_log_shows_the_output() {
    let e = env().await;
    let data = e.data_dir("vol", &[("file", "from the volume\n")]);
    e.bound_claim("data", &data).await;
    e.create(pod_with(
        "reader",
        "echo hello; cat /data/file; echo written > /data/out",
        json!({"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
               "container": {"volumeMounts": [{"name": "d", "mountPath": "/data"}]}}),
    ))
    .await;
    let p = e.wait_phase("reader", "Succeeded", 20).await;
    assert_eq!(
        p.spec.as_ref().unwrap().node_name.as_deref(),
        Some("node-1")
    );
    assert_eq!(e.logs("reader").await, "hello\nfrom the volume\n");
    assert_eq!(
        std::fs::read_to_string(data.join("out")).unwrap(),
        "written\n"
    );
    let st = serde_json::to_value(p.status.unwrap()).unwrap();
    assert_eq!(st["podIP"], "127.0.0.1");
    let term = &st["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (term["exitCode"].as_i64(), term["reason"].as_str()),
        (Some(0), Some("Completed"))
    );
    assert!(
        st["containerStatuses"][0]["containerID"]
            .as_str()
            .unwrap()
            .starts_with("containerd://")
    );
    let ready = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("PodCompleted"))
    );
}

#[tokio::test]
async fn env_comes_from_secrets_config_maps_and_the_downward_api() {
    let e = env().await;
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}}),
    )
    .unwrap();
    Api::<Secret>::namespaced(e.client.clone(), NS)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "settings"}, "data": {"mode": "fast", "level": "3"}}),
    )
    .unwrap();
    Api::<ConfigMap>::namespaced(e.client.clone(), NS)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    e.create(pod_with(
        "envs",
        "echo $PASSWORD $MODE $POD $NODE $IP $GREETING $cfg_level; cat /etc/creds/password; echo; pwd",
        json!({"volumes": [{"name": "s", "secret": {"secretName": "creds"}}],
               "container": {
                   "workingDir": "/tmp",
                   "volumeMounts": [{"name": "s", "mountPath": "/etc/creds"}],
                   "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "cfg_"}],
                   "env": [
                       {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                       {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
                       {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                       {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                       {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                       {"name": "GREETING", "value": "hi-$(POD)"}]}}),
    ))
    .await;
    e.wait_phase("envs", "Succeeded", 20).await;
    assert_eq!(
        e.logs("envs").await,
        "s3cret fast envs node-1 127.0.0.1 hi-envs 3\ns3cret\n/tmp\n"
    );
}

#[tokio::test]
async fn read_only_mounts_refuse_writes_and_empty_dirs_are_shared() {
    let e = env().await;
    let data = e.data_dir("ro", &[("f", "keep")]);
    e.bound_claim("ro", &data).await;
    let mut p = pod_with(
        "ro",
        "cat /shared/from-init; echo x > /ro/f && echo wrote || echo refused; cat /ro/f",
        json!({"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "ro"}}, {"name": "w", "emptyDir": {}}],
               "container": {"volumeMounts": [{"name": "d", "mountPath": "/ro", "readOnly": true}, {"name": "w", "mountPath": "/shared"}]}}),
    );
    p["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox", "command": ["sh", "-c", "echo init-ran > /shared/from-init"],
                                          "volumeMounts": [{"name": "w", "mountPath": "/shared"}]}]);
    e.create(p).await;
    let done = e.wait_phase("ro", "Succeeded", 20).await;
    let log = e.logs("ro").await;
    assert!(log.contains("init-ran\n"), "{log}");
    assert!(log.contains("Read-only file system"), "{log}");
    assert!(log.contains("refused\n") && log.contains("keep"), "{log}");
    assert_eq!(std::fs::read_to_string(data.join("f")).unwrap(), "keep");
    let st = serde_json::to_value(done.status.unwrap()).unwrap();
    assert_eq!(
        st["initContainerStatuses"][0]["state"]["terminated"]["reason"],
        "Completed"
    );
}

#[tokio::test]
async fn exec_streams_stdin_and_stdout_and_reports_exit_codes() {
    let e = env().await;
    let data = e.data_dir("ex", &[("file", "inside\n")]);
    e.bound_claim("ex", &data).await;
    e.create(pod_with(
        "shell",
        "sleep 1000",
        json!({"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "ex"}}],
               "container": {"env": [{"name": "WHO", "value": "container"}], "workingDir": "/data",
                             "volumeMounts": [{"name": "d", "mountPath": "/data"}]}}),
    ))
    .await;
    e.wait_phase("shell", "Running", 20).await;

    // stdin in, stdout out; closing stdin ends `cat`.
    let mut proc = e
        .pods
        .exec(
            "shell",
            ["cat"],
            &AttachParams::default()
                .stdin(true)
                .stdout(true)
                .stderr(false),
        )
        .await
        .unwrap();
    let mut stdin = proc.stdin().unwrap();
    let mut stdout = proc.stdout().unwrap();
    let status = proc.take_status().unwrap();
    stdin.write_all(b"ping\npong\n").await.unwrap();
    stdin.shutdown().await.unwrap();
    drop(stdin);
    let mut out = String::new();
    stdout.read_to_string(&mut out).await.unwrap();
    assert_eq!(out, "ping\npong\n");
    let st = status.await.unwrap();
    assert_eq!(st.status.as_deref(), Some("Success"));

    // The container's mount namespace, env and working directory.
    let mut proc = e
        .pods
        .exec(
            "shell",
            ["sh", "-c", "pwd; cat file; echo $WHO"],
            &AttachParams::default().stderr(false),
        )
        .await
        .unwrap();
    let mut out = String::new();
    proc.stdout()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    assert_eq!(out, "/data\ninside\ncontainer\n");

    // A non-zero exit code.
    let mut proc = e
        .pods
        .exec(
            "shell",
            ["sh", "-c", "echo oops >&2; exit 3"],
            &AttachParams::default(),
        )
        .await
        .unwrap();
    let mut err = String::new();
    proc.stderr()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    assert_eq!(err, "oops\n");
    let st = proc.take_status().unwrap().await.unwrap();
    assert_eq!(st.status.as_deref(), Some("Failure"));
    assert_eq!(st.reason.as_deref(), Some("NonZeroExitCode"));
    assert_eq!(
        st.message.as_deref(),
        // The API server's stream translator (websocket v5 → SPDY) rewords the kubelet's status as
        // kube-apiserver 1.30+ does; the kubelet's own text is checked in the v4 and SPDY tests.
        Some("command terminated with non-zero exit code: command terminated with exit code 3")
    );
    let cause = &st.details.unwrap().causes.unwrap()[0];
    assert_eq!(
        (cause.reason.as_deref(), cause.message.as_deref()),
        (Some("ExitCode"), Some("3"))
    );

    // A command that does not exist.
    let mut proc = e
        .pods
        .exec("shell", ["nope"], &AttachParams::default())
        .await
        .unwrap();
    let st = proc.take_status().unwrap().await.unwrap();
    assert_eq!(st.reason.as_deref(), Some("InternalError"));
    assert!(
        st.message
            .unwrap()
            .contains("exec: \"nope\": executable file not found in $PATH")
    );
}

#[tokio::test]
async fn a_failing_container_fails_the_pod_with_its_exit_code() {
    let e = env().await;
    e.create(pod_with("bad", "echo broken >&2; exit 7", json!({})))
        .await;
    let p = e.wait_phase("bad", "Failed", 20).await;
    let st = serde_json::to_value(p.status.unwrap()).unwrap();
    let term = &st["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (term["exitCode"].as_i64(), term["reason"].as_str()),
        (Some(7), Some("Error"))
    );
    assert_eq!(e.logs("bad").await, "broken\n");
    // A command that is not on PATH: the runtime's StartError.
    e.create(pod_with(
        "missing",
        "",
        json!({"container": {"command": ["no-such-binary"]}}),
    ))
    .await;
    let p = e.wait_phase("missing", "Failed", 20).await;
    let st = serde_json::to_value(p.status.unwrap()).unwrap();
    let term = &st["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (term["exitCode"].as_i64(), term["reason"].as_str()),
        (Some(128), Some("StartError"))
    );
    assert!(
        term["message"]
            .as_str()
            .unwrap()
            .contains("exec: \"no-such-binary\": executable file not found in $PATH")
    );
}

#[tokio::test]
async fn on_failure_restarts_until_success() {
    let e = env().await;
    e.create(pod_with(
        "retry",
        "if [ -f /w/once ]; then echo second; else touch /w/once; echo first; exit 1; fi",
        json!({"restartPolicy": "OnFailure", "volumes": [{"name": "w", "emptyDir": {}}],
               "container": {"volumeMounts": [{"name": "w", "mountPath": "/w"}]}}),
    ))
    .await;
    let p = e.wait_phase("retry", "Succeeded", 20).await;
    let st = serde_json::to_value(p.status.unwrap()).unwrap();
    assert_eq!(st["containerStatuses"][0]["restartCount"], 1);
    assert_eq!(
        st["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        1
    );
    assert_eq!(e.logs("retry").await, "second\n");
    let prev = e
        .pods
        .logs(
            "retry",
            &LogParams {
                previous: true,
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(prev, "first\n");
}

#[tokio::test]
async fn logs_follow_until_the_container_exits() {
    use futures::{AsyncBufReadExt, TryStreamExt};
    let e = env().await;
    e.create(pod_with("ticker", "echo one; sleep 1; echo two", json!({})))
        .await;
    e.wait_phase("ticker", "Running", 20).await;
    let stream = e
        .pods
        .log_stream(
            "ticker",
            &LogParams {
                follow: true,
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    let lines: Vec<String> = stream.lines().try_collect().await.unwrap();
    assert_eq!(lines, ["one", "two"]);
}

#[tokio::test]
async fn active_deadline_fails_the_pod() {
    let e = env().await;
    e.create(pod_with(
        "slow",
        "sleep 1000",
        json!({"activeDeadlineSeconds": 1}),
    ))
    .await;
    let p = e.wait_phase("slow", "Failed", 20).await;
    let st = p.status.unwrap();
    assert_eq!(st.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(
        st.message.as_deref(),
        Some("Pod was active on the node longer than the specified deadline")
    );
    eventually(10, "processes gone", || async {
        e.node.processes().is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn deleting_a_pod_sends_sigterm_then_removes_it() {
    let e = env().await;
    let out = e.data_dir("term", &[]);
    e.create(pod_with(
        "sleeper",
        "trap 'echo got-term > /out/term; exit 0' TERM; echo started > /out/started; sleep 1000",
        json!({"volumes": [{"name": "o", "hostPath": {"path": out.display().to_string(), "type": "Directory"}}],
               "container": {"volumeMounts": [{"name": "o", "mountPath": "/out"}]}}),
    ))
    .await;
    e.wait_phase("sleeper", "Running", 20).await;
    eventually(10, "the trap to be set", || async {
        out.join("started").exists().then_some(())
    })
    .await;
    e.pods
        .delete("sleeper", &DeleteParams::default())
        .await
        .unwrap();
    eventually(20, "the pod object to disappear", || async {
        e.pods
            .get_opt("sleeper")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(out.join("term")).unwrap(),
        "got-term\n"
    );
    assert!(e.node.processes().is_empty());
}

#[tokio::test]
async fn unsatisfiable_pods_stay_pending() {
    let e = env().await;
    e.create(pod_with(
        "no-claim",
        "true",
        json!({"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "nope"}}], "container": {"volumeMounts": [{"name": "d", "mountPath": "/d"}]}}),
    ))
    .await;
    e.create(pod_with(
        "elsewhere",
        "true",
        json!({"nodeSelector": {"disk": "tape"}}),
    ))
    .await;
    e.create(pod_with(
        "no-secret",
        "true",
        json!({"volumes": [{"name": "s", "secret": {"secretName": "absent"}}], "container": {"volumeMounts": [{"name": "s", "mountPath": "/s"}]}}),
    ))
    .await;
    let scheduled_cond = |p: &Pod| {
        let c = p
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "PodScheduled")?
            .clone();
        (c.status == "False")
            .then_some((c.reason.unwrap_or_default(), c.message.unwrap_or_default()))
    };
    let (reason, msg) = eventually(10, "no-claim unschedulable", || async {
        scheduled_cond(&e.pods.get("no-claim").await.ok()?)
    })
    .await;
    assert_eq!(reason, "Unschedulable");
    assert!(
        msg.contains("persistentvolumeclaim \"nope\" not found"),
        "{msg}"
    );
    let (_, msg) = eventually(10, "elsewhere unschedulable", || async {
        scheduled_cond(&e.pods.get("elsewhere").await.ok()?)
    })
    .await;
    assert!(
        msg.contains("1 node(s) didn't match Pod's node affinity/selector"),
        "{msg}"
    );
    let waiting = eventually(10, "no-secret waiting", || async {
        let p = e.pods.get("no-secret").await.ok()?;
        let st = serde_json::to_value(p.status?).ok()?;
        st["containerStatuses"][0]["state"]["waiting"]["reason"]
            .as_str()
            .map(String::from)
    })
    .await;
    assert_eq!(waiting, "ContainerCreating");
    tokio::time::sleep(Duration::from_secs(1)).await;
    for name in ["no-claim", "elsewhere", "no-secret"] {
        assert_eq!(phase(&e.pods.get(name).await.unwrap()), "Pending", "{name}");
    }
    // Creating the Secret lets the pod start.
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "absent"}, "stringData": {"k": "v"}}))
            .unwrap();
    Api::<Secret>::namespaced(e.client.clone(), NS)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    e.wait_phase("no-secret", "Succeeded", 20).await;
}

#[tokio::test]
async fn dropping_the_node_kills_its_processes() {
    let e = env().await;
    e.create(pod_with("lingering", "sleep 1000", json!({})))
        .await;
    let p = e.wait_phase("lingering", "Running", 20).await;
    assert_eq!(e.node.processes().len(), 1);
    let pods_dir = e.node.pods_dir().to_path_buf();
    let uid = p.metadata.uid.unwrap();
    assert!(pods_dir.join(&uid).exists());
    let Env { node, _server, .. } = e;
    drop(node);
    assert!(!pods_dir.exists());
    // No process of that pod is left (zombies have an empty environ).
    eventually(5, "processes to die", || async {
        let left = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|d| std::fs::read_to_string(d.ok()?.path().join("environ")).ok())
            .filter(|env| env.split('\0').any(|v| v == "HOSTNAME=lingering"))
            .count();
        (left == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn deletion_kills_after_the_grace_period_and_finishes_completed_pods() {
    let e = env().await;
    // sh ignores SIGTERM, and so does its `sleep` (ignored signals are inherited across exec).
    e.create(pod_with(
        "stubborn",
        "trap '' TERM; sleep 1000",
        json!({"terminationGracePeriodSeconds": 1}),
    ))
    .await;
    e.create(pod_with("done", "true", json!({}))).await;
    e.wait_phase("stubborn", "Running", 20).await;
    e.wait_phase("done", "Succeeded", 20).await;
    let started = std::time::Instant::now();
    e.pods
        .delete("stubborn", &DeleteParams::default())
        .await
        .unwrap();
    e.pods
        .delete("done", &DeleteParams::default())
        .await
        .unwrap();
    for name in ["stubborn", "done"] {
        eventually(20, &format!("{name} to disappear"), || async {
            e.pods.get_opt(name).await.unwrap().is_none().then_some(())
        })
        .await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "SIGKILL only after the grace period"
    );
    assert!(e.node.processes().is_empty());
}

#[tokio::test]
async fn attach_reaches_the_containers_stdin_and_stdout() {
    let e = env().await;
    e.create(pod_with(
        "echoer",
        "",
        json!({"container": {"command": ["cat"], "stdin": true}}),
    ))
    .await;
    e.wait_phase("echoer", "Running", 20).await;
    let ap = AttachParams::default()
        .stdin(true)
        .stdout(true)
        .stderr(false);
    let mut proc = e.pods.attach("echoer", &ap).await.unwrap();
    let mut stdin = proc.stdin().unwrap();
    let mut stdout = proc.stdout().unwrap();
    stdin.write_all(b"over attach\n").await.unwrap();
    let mut buf = vec![0u8; 12];
    tokio::time::timeout(Duration::from_secs(10), stdout.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(buf, b"over attach\n");
    assert_eq!(e.logs("echoer").await, "over attach\n");
}

#[tokio::test]
async fn the_kubelet_speaks_v4_with_a_json_status() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let e = env().await;
    e.create(pod_with("v4", "sleep 1000", json!({}))).await;
    e.wait_phase("v4", "Running", 20).await;
    let url = format!(
        "wss://{}/exec/{NS}/v4/c?command=sh&command=-c&command=echo%20hi%3B%20exit%202&output=1&error=1",
        e.node.kubelet_addr()
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "v4.channel.k8s.io".parse().unwrap(),
    );
    let tls = kubelet_tls::connect(e.node.kubelet_addr(), kubelet_tls::api_server())
        .await
        .unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        "v4.channel.k8s.io"
    );
    let mut frames = Vec::new();
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Binary(b) = m {
            frames.push(b.to_vec());
        }
    }
    assert_eq!(frames[0], [1u8]);
    assert_eq!(frames[1], b"\x01hi\n");
    let status = String::from_utf8(frames[2][1..].to_vec()).unwrap();
    assert_eq!(frames[2][0], 3);
    assert_eq!(
        status,
        r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c echo hi; exit 2], exit code 2","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"2"}]}}"#
    );
}

#[tokio::test]
async fn containers_run_as_their_user_with_the_fs_group() {
    let e = env().await;
    e.create(pod_with(
        "user",
        "id -u; id -g; id -G; touch /w/f && stat -c %g /w/f; echo $HOME",
        json!({"securityContext": {"runAsUser": 4242, "runAsGroup": 1001, "fsGroup": 2000},
               "volumes": [{"name": "w", "emptyDir": {}}],
               "container": {"volumeMounts": [{"name": "w", "mountPath": "/w"}]}}),
    ))
    .await;
    e.wait_phase("user", "Succeeded", 20).await;
    assert_eq!(e.logs("user").await, "4242\n1001\n1001 2000\n2000\n/\n");
}

#[tokio::test]
async fn a_second_node_gets_the_pods_that_select_it() {
    let e = env().await;
    let dir = e.dir.path().join("node-2");
    let opts = NodeOptions::new("node-2", dir)
        .client_ca(CA_PEM)
        .label("disk", "hdd")
        .scheduler(false);
    let second = Node::start(e.client.clone(), opts)
        .await
        .expect("second node");
    e.create(pod_with(
        "on-hdd",
        "echo where",
        json!({"nodeSelector": {"disk": "hdd"}}),
    ))
    .await;
    let p = e.wait_phase("on-hdd", "Succeeded", 20).await;
    assert_eq!(p.spec.unwrap().node_name.as_deref(), Some("node-2"));
    assert_eq!(e.logs("on-hdd").await, "where\n");
    assert_ne!(second.kubelet_port(), e.node.kubelet_port());
}
