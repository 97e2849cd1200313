//! A local test cluster for end-to-end tests of the real binary: the cluster runs on its own
//! tokio runtime; kentledge runs as a subprocess with a kubeconfig for the `kentledge`
//! ServiceAccount, bound by the Role of `manifests/` (and the optional read-only ClusterRole),
//! so the tests prove those manifests are enough.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{
    Namespace, PersistentVolume, PersistentVolumeClaim, Pod, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kentledge_nodeagents::local::{LocalCluster, LocalOptions};
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::support::{kentledge, root};

/// A running cluster with one namespace prepared for kentledge.
pub struct TestCluster {
    cluster: Option<LocalCluster>,
    rt: Option<tokio::runtime::Runtime>,
    /// The namespace the tests work in.
    pub namespace: String,
    /// A kubeconfig for the `kentledge` ServiceAccount.
    pub kubeconfig: PathBuf,
    /// That ServiceAccount's token (what tells kentledge's requests from the agents').
    token: String,
    dir: tempfile::TempDir,
}

fn manifest_docs(file: &str, namespace: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join("manifests").join(file)).unwrap();
    text.replace("namespace: shop", &format!("namespace: {namespace}"))
        .replace(
            "kentledge-read-shop",
            &format!("kentledge-read-{namespace}"),
        )
        .split("\n---\n")
        .map(str::to_owned)
        .collect()
}

impl TestCluster {
    /// Starts a cluster, creates `namespace`, installs manifests/rbac.yaml and
    /// manifests/cluster-read.yaml for it, and mints a ServiceAccount token.
    pub fn start(namespace: &str) -> TestCluster {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cluster = rt
            .block_on(LocalCluster::start(LocalOptions {
                // Mover pods run the kentledge binary under test, as the image would provide it.
                images: vec![(
                    "ghcr.io/kentledge/kentledge".into(),
                    Path::new(env!("CARGO_BIN_EXE_kentledge"))
                        .parent()
                        .unwrap()
                        .to_owned(),
                )],
                ..LocalOptions::default()
            }))
            .expect("local cluster");
        let client = cluster.client();
        let kubeconfig = dir.path().join("kubeconfig");
        let ns = namespace.to_owned();
        let (server_kubeconfig, token) = rt.block_on(async {
            let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
            Api::<Namespace>::all(client.clone())
                .create(&PostParams::default(), &n)
                .await
                .unwrap();
            let pp = PostParams::default();
            for doc in manifest_docs("rbac.yaml", &ns)
                .into_iter()
                .chain(manifest_docs("cluster-read.yaml", &ns))
            {
                let v: serde_json::Value = serde_saphyr::from_str(&doc).unwrap();
                match v["kind"].as_str().unwrap() {
                    "ServiceAccount" => {
                        Api::<ServiceAccount>::namespaced(client.clone(), &ns)
                            .create(&pp, &serde_json::from_value(v).unwrap())
                            .await
                            .unwrap();
                    }
                    "Role" => {
                        Api::<Role>::namespaced(client.clone(), &ns)
                            .create(&pp, &serde_json::from_value(v).unwrap())
                            .await
                            .unwrap();
                    }
                    "RoleBinding" => {
                        Api::<RoleBinding>::namespaced(client.clone(), &ns)
                            .create(&pp, &serde_json::from_value(v).unwrap())
                            .await
                            .unwrap();
                    }
                    "ClusterRole" => {
                        let _ = Api::<ClusterRole>::all(client.clone())
                            .create(&pp, &serde_json::from_value(v).unwrap())
                            .await;
                    }
                    "ClusterRoleBinding" => {
                        Api::<ClusterRoleBinding>::all(client.clone())
                            .create(&pp, &serde_json::from_value(v).unwrap())
                            .await
                            .unwrap();
                    }
                    other => panic!("unexpected kind {other}"),
                }
            }
            let tr: TokenRequest = serde_json::from_value(
                json!({"spec": {"audiences": [], "expirationSeconds": 3600}}),
            )
            .unwrap();
            let token = Api::<ServiceAccount>::namespaced(client.clone(), &ns)
                .create_token_request("kentledge", &pp, &tr)
                .await
                .unwrap()
                .status
                .unwrap()
                .token;
            (cluster.server().kubeconfig_for_token(&token, &ns), token)
        });
        std::fs::write(&kubeconfig, server_kubeconfig).unwrap();
        TestCluster {
            cluster: Some(cluster),
            rt: Some(rt),
            namespace: namespace.to_owned(),
            kubeconfig,
            token,
            dir,
        }
    }

    fn cluster(&self) -> &LocalCluster {
        self.cluster.as_ref().expect("running")
    }

    /// Runs a future on the cluster's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.as_ref().expect("running").block_on(f)
    }

    /// Restarts the API server (cut at once, `down` of refused connections, then back with the
    /// same objects), returning once it listens again.
    pub fn restart_api(&self, down: std::time::Duration) {
        self.block_on(self.cluster().server().restart(down));
    }

    /// The node's fault switches (a kubelet that refuses or cuts log requests).
    pub fn faults(&self) -> kentledge_nodeagents::node::Faults {
        self.cluster().faults()
    }

    /// Every request the API server received so far (`METHOD /path?query`), as an audit log
    /// records them.
    pub fn requests(&self) -> Vec<String> {
        self.cluster().server().requests()
    }

    /// The requests so far made as the `kentledge` ServiceAccount (what `kentledge` runs as
    /// sent; the agents' and the tests' own requests are left out).
    pub fn kentledge_requests(&self) -> Vec<String> {
        self.cluster().server().requests_with_token(&self.token)
    }

    /// When each of [`TestCluster::kentledge_requests`] arrived: for requests per second.
    pub fn kentledge_arrivals(&self) -> Vec<std::time::Instant> {
        self.cluster().server().arrivals_with_token(&self.token)
    }

    /// An admin client.
    pub fn client(&self) -> kube::Client {
        self.cluster().client()
    }

    /// Asserts that kentledge made only reads since its request `since` (of
    /// [`TestCluster::kentledge_requests`]): what a dry run must do. (The store's resource
    /// version cannot say it: the nodes' heartbeats and the controllers write all the time.)
    pub fn assert_only_reads_since(&self, since: usize, what: &str) {
        let writes: Vec<String> = self
            .kentledge_requests()
            .split_off(since)
            .into_iter()
            .filter(|r| !r.starts_with("GET "))
            .collect();
        assert!(writes.is_empty(), "{what}: {writes:?}");
    }

    /// `kentledge` with this cluster's ServiceAccount kubeconfig and a config file.
    pub fn kentledge(&self, config: &Path) -> Command {
        let mut c = kentledge();
        c.arg("--log-format")
            .arg("text")
            .arg("-c")
            .arg(config)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig);
        c
    }

    /// Writes a config for this namespace: `spec` is the YAML under `spec:` (indented by 2).
    /// Makes the Lease `name` look as if its holder stopped renewing it long ago (a killed
    /// run's Lease would expire in a minute; tests age it instead of waiting).
    pub fn age_lease(&self, name: &str) {
        let api: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(self.client(), &self.namespace);
        self.block_on(api.patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"renewTime": "2026-01-01T00:00:00.000000Z"}})),
        ))
        .unwrap();
    }

    pub fn config(&self, name: &str, spec: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.yaml"));
        let text = format!(
            "apiVersion: kentledge.io/v1alpha1\nkind: BackupConfig\nmetadata:\n  name: {name}\n  namespace: {}\nspec:\n{spec}",
            self.namespace
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Creates an object from JSON in the namespace (admin).
    pub fn create<K>(&self, value: serde_json::Value) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client(), &self.namespace);
        let obj: K = serde_json::from_value(value).unwrap();
        self.block_on(api.create(&PostParams::default(), &obj))
            .unwrap()
    }

    /// Creates a bound PVC holding `files` (path → contents) and returns its data directory.
    pub fn pvc_with_files(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        files: &[(&str, &str)],
    ) -> PathBuf {
        let labels: BTreeMap<&str, &str> = labels.iter().cloned().collect();
        let _: PersistentVolumeClaim = self.create(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }));
        let dir = self.volume_dir(name);
        for (path, contents) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, contents).unwrap();
        }
        dir
    }

    /// The data directory of a bound PVC (waits for binding).
    pub fn volume_dir(&self, pvc: &str) -> PathBuf {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client(), &self.namespace);
        let pv = self.wait(10, &format!("PVC {pvc} to bind"), || {
            let c = self.block_on(claims.get(pvc)).ok()?;
            (c.status.as_ref()?.phase.as_deref() == Some("Bound"))
                .then(|| c.spec?.volume_name)
                .flatten()
        });
        let pv = self
            .block_on(Api::<PersistentVolume>::all(self.client()).get(&pv))
            .unwrap();
        PathBuf::from(pv.spec.unwrap().host_path.unwrap().path)
    }

    /// A running pod with a shell that mounts `claims` at `/<claim>` and sleeps.
    pub fn sleeper(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
        claims: &[&str],
    ) {
        let labels: BTreeMap<&str, &str> = labels.iter().cloned().collect();
        let annotations: BTreeMap<&str, &str> = annotations.iter().cloned().collect();
        let _: Pod = self.create(json!({
            "metadata": {"name": name, "labels": labels, "annotations": annotations},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"],
                "volumeMounts": claims.iter().map(|c| json!({"name": c, "mountPath": format!("/{c}")})).collect::<Vec<_>>()}],
                "volumes": claims.iter().map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}})).collect::<Vec<_>>()},
        }));
        let pods: Api<Pod> = Api::namespaced(self.client(), &self.namespace);
        self.wait(20, &format!("pod {name} to run"), || {
            let p = self.block_on(pods.get(name)).ok()?;
            (p.status?.phase.as_deref() == Some("Running")).then_some(())
        });
    }

    /// Polls `f` until it returns `Some`.
    pub fn wait<T>(&self, secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            {
                let _guard = rt.enter();
                drop(self.cluster.take());
            }
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}
