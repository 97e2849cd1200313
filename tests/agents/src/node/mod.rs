//! Scheduler and kubelet: register a Node, bind pending pods to nodes, and run the containers of the
//! pods bound to this node as real local processes (mount namespaces, bind mounts, process groups),
//! serving their logs and exec/attach streams on a kubelet HTTP port.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), kentledge_nodeagents::node::NodeError> {
//! use kentledge_nodeagents::node::{Node, NodeOptions};
//! let node = Node::start(client, NodeOptions::new("node-1", "/tmp/kentledge-node")).await?;
//! println!("kubelet on port {}", node.kubelet_port());
//! drop(node); // kills every container process and removes the pod directories
//! # Ok(()) }
//! ```

mod container;
mod env;
mod events;
mod exec;
mod kubelet;
mod logs;
mod pod;
mod register;
mod runtime;
mod scheduler;
mod server;
mod status;
mod time;
mod volumes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

pub use container::ProcessTable;
pub use scheduler::{Scheduler, SchedulerHandle};

/// Errors starting the node agents.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The kubelet port could not be bound.
    #[error("binding the kubelet port: {0}")]
    Bind(#[source] std::io::Error),
    /// The data directory could not be prepared.
    #[error("preparing {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The Node object could not be registered.
    #[error("registering node {name}: {source}")]
    Register {
        /// The node name.
        name: String,
        /// The cause.
        #[source]
        source: Box<kube::Error>,
    },
}

/// Settings of one node.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeOptions {
    /// The Node's name (also its `kubernetes.io/hostname` label).
    pub name: String,
    /// Where pod directories (emptyDir, secret and configMap volumes) and container logs live.
    pub data_dir: PathBuf,
    /// Extra labels on the Node (for `nodeSelector`).
    pub labels: BTreeMap<String, String>,
    /// Also run a scheduler (default true); with several nodes in one cluster one is enough.
    pub scheduler: bool,
    /// How often the node heartbeat (Lease and Ready condition) is renewed (default 10 s).
    pub heartbeat: Duration,
    /// First crash-loop back-off delay (default 1 s; a real kubelet uses 10 s), doubled per restart.
    pub restart_backoff: Duration,
    /// Longest crash-loop back-off delay (default 5 min, as a real kubelet).
    pub max_restart_backoff: Duration,
    /// Keep pod directories and logs when the handle drops (default false).
    pub keep_data: bool,
    /// What images provide: containers whose `image` starts with a prefix get the directory put
    /// first on their `PATH` (images are never pulled; this is how a container finds the binary
    /// its image would have brought, e.g. `ghcr.io/kentledge/kentledge` → `target/debug`).
    pub images: Vec<(String, PathBuf)>,
}

impl NodeOptions {
    /// Options for node `name` keeping its pod directories under `data_dir`.
    pub fn new(name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        NodeOptions {
            name: name.into(),
            data_dir: data_dir.into(),
            labels: BTreeMap::new(),
            scheduler: true,
            heartbeat: Duration::from_secs(10),
            restart_backoff: Duration::from_secs(1),
            max_restart_backoff: Duration::from_secs(300),
            keep_data: false,
            images: Vec::new(),
        }
    }
    /// Containers whose image starts with `prefix` find the programs in `dir` first on their `PATH`.
    pub fn image(mut self, prefix: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        self.images.push((prefix.into(), dir.into()));
        self
    }
    /// Add a label to the Node.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
    /// Run a scheduler with this node (or not).
    pub fn scheduler(mut self, on: bool) -> Self {
        self.scheduler = on;
        self
    }
    /// Set the first crash-loop back-off delay.
    pub fn restart_backoff(mut self, d: Duration) -> Self {
        self.restart_backoff = d;
        self
    }
    /// Set the heartbeat period.
    pub fn heartbeat(mut self, d: Duration) -> Self {
        self.heartbeat = d;
        self
    }
    /// Keep pod directories and logs after the handle drops.
    pub fn keep_data(mut self, keep: bool) -> Self {
        self.keep_data = keep;
        self
    }
}

/// What the node's components share.
pub(crate) struct Ctx {
    pub client: kube::Client,
    pub opts: NodeOptions,
    pub processes: ProcessTable,
    pub runtime: runtime::Runtime,
}

impl Ctx {
    fn pods_dir(&self) -> PathBuf {
        self.opts.data_dir.join("pods")
    }
}

/// Entry point of the node agents.
#[derive(Debug)]
pub struct Node;

impl Node {
    /// Start the kubelet HTTP server, register the Node, and run the kubelet (and, unless
    /// [`NodeOptions::scheduler`] is off, a scheduler) on the current Tokio runtime.
    pub async fn start(client: kube::Client, opts: NodeOptions) -> Result<NodeHandle, NodeError> {
        let pods_dir = opts.data_dir.join("pods");
        std::fs::create_dir_all(&pods_dir).map_err(|source| NodeError::DataDir {
            path: pods_dir.clone(),
            source,
        })?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(NodeError::Bind)?;
        let addr = listener.local_addr().map_err(NodeError::Bind)?;
        let ctx = Arc::new(Ctx {
            client: client.clone(),
            opts: opts.clone(),
            processes: ProcessTable::default(),
            runtime: runtime::Runtime::default(),
        });
        let mut tasks = vec![tokio::spawn(server::serve(listener, ctx.clone()))];
        let handle_guard = |tasks: &mut Vec<JoinHandle<()>>| {
            for t in tasks.iter() {
                t.abort();
            }
        };
        if let Err(source) = register::register(&client, &opts, addr.port()).await {
            handle_guard(&mut tasks);
            return Err(NodeError::Register {
                name: opts.name.clone(),
                source: Box::new(source),
            });
        }
        tasks.push(tokio::spawn(register::heartbeat(
            client.clone(),
            opts.clone(),
            addr.port(),
        )));
        tasks.push(tokio::spawn(kubelet::run(ctx.clone())));
        let scheduler = opts.scheduler.then(|| Scheduler::start(client.clone()));
        Ok(NodeHandle {
            ctx,
            addr,
            tasks,
            scheduler,
            pods_dir,
        })
    }
}

/// A running node; dropping it stops the agents, kills every container process group and removes the
/// pod directories (unless [`NodeOptions::keep_data`]). Mounts live only in the containers' own mount
/// namespaces, so they vanish with the processes.
pub struct NodeHandle {
    ctx: Arc<Ctx>,
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
    scheduler: Option<SchedulerHandle>,
    pods_dir: PathBuf,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("name", &self.ctx.opts.name)
            .field("kubelet", &self.addr)
            .finish_non_exhaustive()
    }
}

impl NodeHandle {
    /// The Node's name.
    pub fn name(&self) -> &str {
        &self.ctx.opts.name
    }
    /// The kubelet's HTTP address (`127.0.0.1:PORT`).
    pub fn kubelet_addr(&self) -> SocketAddr {
        self.addr
    }
    /// The kubelet's port (the Node's `status.daemonEndpoints.kubeletEndpoint.Port`).
    pub fn kubelet_port(&self) -> u16 {
        self.addr.port()
    }
    /// Where pod directories and logs live.
    pub fn pods_dir(&self) -> &Path {
        &self.pods_dir
    }
    /// The process groups of the containers and exec sessions now running.
    pub fn processes(&self) -> &ProcessTable {
        &self.ctx.processes
    }
    /// Stop like a kubelet that goes away: mark the Node NotReady (so that the API server deletes its
    /// pods at once from now on), then stop everything as [`Drop`] does.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Err(e) = register::mark_not_ready(&self.ctx.client, &self.ctx.opts.name).await {
            tracing::debug!("marking node {} not ready: {e}", self.ctx.opts.name);
        }
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.scheduler.take();
        self.ctx.processes.kill_all();
        if !self.ctx.opts.keep_data {
            let _ = std::fs::remove_dir_all(&self.pods_dir);
        }
    }
}
