//! A whole local cluster in one handle: the test API server plus every node agent (storage,
//! workloads, one node with scheduler and kubelet), the default StorageClass and
//! VolumeSnapshotClass, and an admin kubeconfig on disk. Dropping it stops everything: agents,
//! container processes, mounts, the server, and the data directory.

use std::path::{Path, PathBuf};

use kentledge_testcluster::{ApiServer, ServerHandle, ServerOptions};

use crate::node::{Node, NodeHandle, NodeOptions};
use crate::storage::{self, Storage, StorageHandle, StorageOptions};
use crate::workloads::{self, WorkloadsHandle};

/// Why a local cluster did not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The API server failed to start.
    #[error("starting the API server: {0}")]
    Server(String),
    /// The client could not be configured.
    #[error("configuring the client: {0}")]
    Client(String),
    /// An agent failed to start.
    #[error("starting the node agents: {0}")]
    Agents(String),
    /// Disk set-up failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Settings of a local cluster.
#[derive(Clone, Debug, Default)]
pub struct LocalOptions {
    /// Where data lives (a fresh temporary directory when `None`; removed on drop).
    pub data_dir: Option<PathBuf>,
    /// Where to write the admin kubeconfig (default `<data>/kubeconfig`).
    pub kubeconfig: Option<PathBuf>,
    /// What images provide (see [`NodeOptions::images`]).
    pub images: Vec<(String, PathBuf)>,
}

/// A running local cluster. Field order is drop order: agents before the server.
pub struct LocalCluster {
    node: Option<NodeHandle>,
    _workloads: WorkloadsHandle,
    _storage: StorageHandle,
    server: ServerHandle,
    client: kube::Client,
    kubeconfig: PathBuf,
    data: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl LocalCluster {
    /// Starts a cluster and waits until its node is registered.
    pub async fn start(opts: LocalOptions) -> Result<LocalCluster, LocalError> {
        let (tmp, data) = match opts.data_dir {
            Some(d) => {
                std::fs::create_dir_all(&d)?;
                (None, d)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("kentledge-cluster-")
                    .tempdir()?;
                let p = t.path().to_owned();
                (Some(t), p)
            }
        };
        let kubeconfig = opts.kubeconfig.unwrap_or_else(|| data.join("kubeconfig"));
        if let Some(parent) = kubeconfig.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let server = ApiServer::start(ServerOptions::default().kubeconfig(&kubeconfig))
            .await
            .map_err(|e| LocalError::Server(e.to_string()))?;
        let client = crate::testing::admin_client(&server)
            .await
            .map_err(LocalError::Client)?;
        storage::install_defaults(&client, storage::DRIVER)
            .await
            .map_err(|e| LocalError::Agents(e.to_string()))?;
        let storage =
            Storage::start(client.clone(), StorageOptions::new(data.join("storage"))).await?;
        let workloads = workloads::start(client.clone());
        // The server dials kubelets with a client certificate signed by its test CA.
        let mut node_opts = NodeOptions::new("node-1", data.join("node"))
            .client_ca(kentledge_testcluster::tls::CA_PEM)
            .api_server_url(server.url());
        node_opts.images = opts.images;
        let node = Node::start(client.clone(), node_opts)
            .await
            .map_err(|e| LocalError::Agents(e.to_string()))?;
        Ok(LocalCluster {
            node: Some(node),
            _workloads: workloads,
            _storage: storage,
            server,
            client,
            kubeconfig,
            data,
            _tmp: tmp,
        })
    }

    /// An admin client.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The admin kubeconfig file.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server (URL, tokens, users).
    pub fn server(&self) -> &ServerHandle {
        &self.server
    }

    /// The node's fault switches (e.g. a kubelet that refuses log requests).
    pub fn faults(&self) -> crate::node::Faults {
        self.node
            .as_ref()
            .expect("the node runs until the cluster is dropped")
            .faults()
            .clone()
    }

    /// Where volume, snapshot and pod data live.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // The node first: it kills container processes and unmounts before the data goes.
        drop(self.node.take());
    }
}
