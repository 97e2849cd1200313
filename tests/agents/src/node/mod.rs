//! Scheduler and kubelet: register a Node, bind pending pods to nodes, and run the containers of the
//! pods bound to this node as real local processes (mount namespaces, bind mounts, process groups),
//! serving their logs and exec/attach streams on a kubelet HTTPS port (client certificates
//! verified against [`NodeOptions::client_ca`]).
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), kentledge_nodeagents::node::NodeError> {
//! use kentledge_nodeagents::node::{Node, NodeOptions};
//! let opts = NodeOptions::new("node-1", "/tmp/kentledge-node")
//!     .client_ca(kentledge_testcluster::tls::CA_PEM);
//! let node = Node::start(client, opts).await?;
//! println!("kubelet on port {}", node.kubelet_port());
//! drop(node); // kills every container process and removes the pod directories
//! # Ok(()) }
//! ```

mod container;
mod env;
mod events;
mod exec;
mod faults;
mod kubelet;
mod logs;
mod pod;
mod register;
mod runtime;
mod scheduler;
mod server;
mod spdy;
mod status;
mod time;
pub mod tls;
mod volumes;
mod ws;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

pub use container::ProcessTable;
pub use faults::{Faults, LogFault};
pub use scheduler::{Scheduler, SchedulerHandle};

/// Errors starting the node agents.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The kubelet port could not be bound.
    #[error("binding the kubelet port: {0}")]
    Bind(#[source] std::io::Error),
    /// The kubelet's TLS could not be set up.
    #[error("kubelet TLS: {0}")]
    Tls(#[from] tls::TlsError),
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
    /// The address the kubelet listens on (default 127.0.0.1; `0.0.0.0` for every interface).
    pub address: IpAddr,
    /// The kubelet port (default 0: a random free port; a real kubelet uses 10250).
    pub port: u16,
    /// The Node's InternalIP, where the API server dials the kubelet (default: `address`, or
    /// 127.0.0.1 when that is unspecified).
    pub node_ip: Option<IpAddr>,
    /// The CA (PEM) whose client certificates the kubelet accepts: the one that signed the API
    /// server's `--kubelet-client-certificate`. Required (like `--client-ca-file` with anonymous
    /// authentication off).
    pub client_ca: Option<Vec<u8>>,
    /// The kubelet's serving certificate (`--tls-cert-file`/`--tls-private-key-file`); a
    /// self-signed one for the node's name and addresses when `None`.
    pub serving_cert: Option<tls::ServingCert>,
    /// Faults a test can switch on while the node runs (none by default).
    pub faults: Faults,
    /// The API server's host and port, given to every container as a real kubelet does for the
    /// `kubernetes` Service (`KUBERNETES_SERVICE_HOST`, `KUBERNETES_SERVICE_PORT`, …), so that
    /// in-cluster clients (kube-rs `Config::incluster()`, kubectl) work in pods; none by default.
    pub api_server: Option<(String, u16)>,
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
            address: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            api_server: None,
            node_ip: None,
            client_ca: None,
            serving_cert: None,
            faults: Faults::default(),
        }
    }
    /// Containers whose image starts with `prefix` find the programs in `dir` first on their `PATH`.
    pub fn image(mut self, prefix: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        self.images.push((prefix.into(), dir.into()));
        self
    }
    /// Accept API server client certificates signed by this CA (PEM).
    pub fn client_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.client_ca = Some(pem.into());
        self
    }
    /// Tell containers where the API server is (see [`NodeOptions::api_server`]), from its URL
    /// (`https://HOST:PORT`); an URL without a port means 443.
    pub fn api_server_url(mut self, url: &str) -> Self {
        let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
        let authority = rest.split('/').next().unwrap_or(rest);
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => (h, p.parse().unwrap_or(443)),
            _ => (authority, 443),
        };
        let host = host.trim_matches(['[', ']']).to_owned();
        self.api_server = Some((host, port));
        self
    }
    /// Serve with this certificate chain and key (PEM) instead of a self-signed certificate.
    pub fn serving_cert(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.serving_cert = Some(tls::ServingCert {
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
        });
        self
    }
    /// Listen on `address:port` (port 0: any free port).
    pub fn listen(mut self, address: IpAddr, port: u16) -> Self {
        self.address = address;
        self.port = port;
        self
    }
    /// Report this InternalIP on the Node.
    pub fn node_ip(mut self, ip: IpAddr) -> Self {
        self.node_ip = Some(ip);
        self
    }
    /// The InternalIP the Node reports.
    pub fn internal_ip(&self) -> IpAddr {
        self.node_ip.unwrap_or(if self.address.is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            self.address
        })
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
        let tls = tls::server_config(
            &opts.name,
            opts.internal_ip(),
            opts.serving_cert.as_ref(),
            opts.client_ca.as_deref(),
        )?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(opts.address, opts.port))
            .await
            .map_err(NodeError::Bind)?;
        let addr = listener.local_addr().map_err(NodeError::Bind)?;
        let endpoint = register::Endpoint {
            ip: opts.internal_ip(),
            port: addr.port(),
        };
        let ctx = Arc::new(Ctx {
            client: client.clone(),
            opts: opts.clone(),
            processes: ProcessTable::default(),
            runtime: runtime::Runtime::default(),
        });
        let mut tasks = vec![tokio::spawn(server::serve(
            listener,
            tokio_rustls::TlsAcceptor::from(tls),
            ctx.clone(),
        ))];
        let handle_guard = |tasks: &mut Vec<JoinHandle<()>>| {
            for t in tasks.iter() {
                t.abort();
            }
        };
        let uid = match register::register(&client, &opts, endpoint).await {
            Ok(uid) => uid,
            Err(source) => {
                handle_guard(&mut tasks);
                return Err(NodeError::Register {
                    name: opts.name.clone(),
                    source: Box::new(source),
                });
            }
        };
        tracing::info!(
            "node {} registered; kubelet serving https://{addr} (InternalIP {})",
            opts.name,
            endpoint.ip
        );
        tasks.push(tokio::spawn(register::heartbeat(
            client.clone(),
            opts.clone(),
            addr.port(),
            uid,
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
    /// The address the kubelet's HTTPS server listens on (`127.0.0.1:PORT` by default).
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
    /// The node's fault switches.
    pub fn faults(&self) -> &Faults {
        &self.ctx.opts.faults
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
