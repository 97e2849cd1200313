//! Starting and stopping one API server: options, the accept loop, the controllers, and the handle whose
//! drop stops everything.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::auth::{Authenticator, StaticUser, random_string};
use crate::cluster::{Cluster, ListCache};
use crate::kubelet::{NodeKubelet, PodTermination};
use crate::registry::Registry;
use crate::store::Store;
use crate::{bootstrap, controllers, kubeconfig, router};

/// Errors starting a server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// TLS could not be set up.
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The kubeconfig could not be written.
    #[error("writing kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// How to start a server. Later parts (node agents) extend the cluster options around this one.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Listen address (default `127.0.0.1:0`, a random port).
    pub bind: SocketAddr,
    /// Write the admin kubeconfig here.
    pub kubeconfig: Option<PathBuf>,
    /// The admin token (random when `None`); the admin is in `system:masters`.
    pub admin_token: Option<String>,
    /// Extra users with static tokens.
    pub users: Vec<StaticUser>,
    /// How many change events watches can replay (older versions get 410).
    pub watch_history: usize,
    /// Who finishes pod deletion (default: the node's kubelet when it has one).
    pub pod_termination: Arc<dyn PodTermination>,
    /// How kubelets are dialled: the client certificate presented to them (default: the embedded
    /// `kube-apiserver-kubelet-client`, signed by the test CA) and the CA that verifies their serving
    /// certificates (default none: not verified, as kube-apiserver without `--kubelet-certificate-authority`).
    pub kubelet_tls: crate::tls::KubeletClientTls,
    /// Translate websocket `v5.channel.k8s.io` exec/attach requests into SPDY towards the kubelet, as
    /// kube-apiserver 1.30+ does (default true); when false they are relayed to the kubelet as websockets.
    pub stream_translator: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            kubeconfig: None,
            admin_token: None,
            users: Vec::new(),
            watch_history: 10_000,
            pod_termination: Arc::new(NodeKubelet),
            kubelet_tls: crate::tls::KubeletClientTls::default(),
            stream_translator: true,
        }
    }
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("bind", &self.bind)
            .field("kubeconfig", &self.kubeconfig)
            .field("users", &self.users.len())
            .field("watch_history", &self.watch_history)
            .finish_non_exhaustive()
    }
}

impl ServerOptions {
    /// Write the admin kubeconfig to `path`.
    pub fn kubeconfig(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubeconfig = Some(path.into());
        self
    }
    /// Add a user with a static token and groups.
    pub fn user(mut self, token: &str, name: &str, groups: &[&str]) -> Self {
        self.users.push(StaticUser {
            token: token.into(),
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        });
        self
    }
    /// Keep this many watch events.
    pub fn watch_history(mut self, n: usize) -> Self {
        self.watch_history = n;
        self
    }
    /// Listen on this address.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }
    /// Use this admin token.
    pub fn admin_token(mut self, token: &str) -> Self {
        self.admin_token = Some(token.into());
        self
    }
    /// Present this client certificate and key (PEM) to kubelets (`--kubelet-client-certificate`,
    /// `--kubelet-client-key`).
    pub fn kubelet_client_certificate(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.kubelet_tls.cert_pem = cert_pem.into();
        self.kubelet_tls.key_pem = key_pem.into();
        self
    }
    /// Verify kubelet serving certificates against this CA (PEM; `--kubelet-certificate-authority`).
    pub fn kubelet_certificate_authority(mut self, ca_pem: impl Into<Vec<u8>>) -> Self {
        self.kubelet_tls.ca_pem = Some(ca_pem.into());
        self
    }
    /// Translate websocket v5 exec/attach into SPDY towards kubelets (true, the default) or relay them.
    pub fn stream_translator(mut self, on: bool) -> Self {
        self.stream_translator = on;
        self
    }
    /// Decide pod termination with this hook.
    pub fn pod_termination(mut self, hook: Arc<dyn PodTermination>) -> Self {
        self.pod_termination = hook;
        self
    }
}

/// Entry point.
#[derive(Debug)]
pub struct ApiServer;

impl ApiServer {
    /// Start a server on the current Tokio runtime.
    pub async fn start(opts: ServerOptions) -> Result<ServerHandle, StartError> {
        let listener = TcpListener::bind(opts.bind)
            .await
            .map_err(|source| StartError::Bind {
                addr: opts.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: opts.bind,
            source,
        })?;
        let url = format!("https://{addr}");
        let tls = tokio_rustls::TlsAcceptor::from(crate::tls::server_config()?);
        let kubelet_tls =
            tokio_rustls::TlsConnector::from(crate::tls::kubelet_client_config(&opts.kubelet_tls)?);
        let admin_token = opts
            .admin_token
            .clone()
            .unwrap_or_else(|| random_string(40));
        let auth = Authenticator::default();
        auth.add_user(
            &admin_token,
            "kubernetes-admin",
            &["system:masters".to_string()],
        );
        for u in &opts.users {
            auth.add_user(&u.token, &u.name, &u.groups);
        }
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let (restarts, _) = tokio::sync::watch::channel(0);
        let cluster = Arc::new(Cluster {
            store: Store::new(opts.watch_history),
            registry: Registry::new(),
            auth,
            lists: ListCache::default(),
            issuer: "https://kubernetes.default.svc.cluster.local".into(),
            pod_termination: opts.pod_termination.clone(),
            address: addr.to_string(),
            kubelet_tls,
            stream_translator: opts.stream_translator,
            shutdown,
            restarts,
            requests: std::sync::Mutex::new(Vec::new()),
            rbac_cache: std::sync::Mutex::new(None),
        });
        bootstrap::bootstrap(&cluster);
        controllers::reconcile(&cluster);
        let kubeconfig_path = match &opts.kubeconfig {
            Some(p) => {
                let text = kubeconfig::render(&url, &admin_token, "kubernetes-admin", "default");
                kubeconfig::write(p, &text).map_err(|source| StartError::Kubeconfig {
                    path: p.clone(),
                    source,
                })?;
                Some(p.clone())
            }
            None => None,
        };
        let controller = tokio::spawn(controllers::run(cluster.clone()));
        let (outages, outage_rx) = tokio::sync::mpsc::unbounded_channel();
        let accept = tokio::spawn(accept_loop(listener, tls, cluster.clone(), outage_rx));
        Ok(ServerHandle {
            url,
            outages,
            admin_token,
            kubeconfig_path,
            cluster,
            tasks: vec![accept, controller],
        })
    }
}

async fn serve<I>(io: I, cl: Arc<Cluster>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let cl = cl.clone();
        if let Ok(mut log) = cl.requests.lock() {
            let token = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default()
                .to_owned();
            log.push((
                format!("{} {}", req.method(), req.uri()),
                token,
                std::time::Instant::now(),
            ));
        }
        async move { Ok::<_, std::convert::Infallible>(router::handle(cl, req).await) }
    });
    if let Err(e) = http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await
    {
        tracing::debug!("connection: {e}");
    }
}

/// A restart asked for: how long nothing listens, and who waits for the server to be back.
type Outage = (std::time::Duration, tokio::sync::oneshot::Sender<()>);

/// One listener serves both TLS (first byte 0x16, a handshake) and plain HTTP.
async fn accept_loop(
    mut listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    cluster: Arc<Cluster>,
    mut outages: tokio::sync::mpsc::UnboundedReceiver<Outage>,
) {
    let mut conns = JoinSet::new();
    let mut asking = true;
    loop {
        let next = tokio::select! {
            o = outages.recv(), if asking => Err(o),
            a = listener.accept() => Ok(a),
        };
        let accepted = match next {
            Ok(a) => a,
            Err(None) => {
                asking = false;
                continue;
            }
            Err(Some((down, back))) => {
                // As the process exits: the listener closes and every connection and the
                // streams they started are cut; then nothing listens for `down`.
                let addr = listener.local_addr();
                drop(listener);
                conns.abort_all();
                cluster.restarts.send_modify(|g| *g += 1);
                tokio::time::sleep(down).await;
                listener = match addr {
                    Ok(a) => rebind(a).await,
                    Err(e) => panic!("the listener's address: {e}"),
                };
                let _ = back.send(());
                continue;
            }
        };
        let (stream, _) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        // As Go's net package does for every TCP connection of the real server: each write
        // goes out at once. Without it, a small watch event written while the last one waits for
        // its ACK sits until the client's delayed ACK (40 ms here), for every watcher.
        let _ = stream.set_nodelay(true);
        while conns.try_join_next().is_some() {}
        let cl = cluster.clone();
        let tls = tls.clone();
        conns.spawn(async move {
            let mut first = [0u8; 1];
            match stream.peek(&mut first).await {
                Ok(1) if first[0] == 0x16 => match tls.accept(stream).await {
                    Ok(s) => serve(s, cl).await,
                    Err(e) => tracing::debug!("tls: {e}"),
                },
                Ok(_) => serve(stream, cl).await,
                Err(e) => tracing::debug!("peek: {e}"),
            }
        });
    }
}

/// Listens on `addr` again (the port was just closed: a few tries).
async fn rebind(addr: SocketAddr) -> TcpListener {
    for _ in 0..100 {
        if let Ok(l) = TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("could not listen on {addr} again after a restart");
}

/// A running server; dropping it stops the server and every task it started.
pub struct ServerHandle {
    url: String,
    outages: tokio::sync::mpsc::UnboundedSender<Outage>,
    admin_token: String,
    kubeconfig_path: Option<PathBuf>,
    cluster: Arc<Cluster>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// `https://127.0.0.1:PORT` (the CA is [`crate::tls::CA_PEM`]; the kubeconfigs carry it).
    pub fn url(&self) -> &str {
        &self.url
    }
    /// Every request so far (`METHOD /path?query`), as an audit log records them.
    pub fn requests(&self) -> Vec<String> {
        self.cluster
            .requests
            .lock()
            .map(|l| l.iter().map(|(r, _, _)| r.clone()).collect())
            .unwrap_or_default()
    }
    /// The requests so far made with bearer token `token` (one client's, as an audit log's
    /// user field tells them apart).
    pub fn requests_with_token(&self, token: &str) -> Vec<String> {
        self.of_token(token, |(r, _, _)| r.clone())
    }
    /// When each request made with bearer token `token` arrived (in arrival order): for
    /// requests per second.
    pub fn arrivals_with_token(&self, token: &str) -> Vec<std::time::Instant> {
        self.of_token(token, |(_, _, at)| *at)
    }
    fn of_token<T>(
        &self,
        token: &str,
        f: impl Fn(&(String, String, std::time::Instant)) -> T,
    ) -> Vec<T> {
        self.cluster
            .requests
            .lock()
            .map(|l| l.iter().filter(|(_, t, _)| t == token).map(f).collect())
            .unwrap_or_default()
    }
    /// `http://127.0.0.1:PORT`: the same listener without TLS.
    pub fn http_url(&self) -> String {
        self.url.replacen("https://", "http://", 1)
    }
    /// The admin's bearer token (`system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }
    /// Where the admin kubeconfig was written, if asked for.
    pub fn kubeconfig_path(&self) -> Option<&Path> {
        self.kubeconfig_path.as_deref()
    }
    /// The admin kubeconfig as YAML.
    pub fn admin_kubeconfig(&self) -> String {
        kubeconfig::render(&self.url, &self.admin_token, "kubernetes-admin", "default")
    }
    /// A kubeconfig for any bearer token.
    pub fn kubeconfig_for_token(&self, token: &str, namespace: &str) -> String {
        kubeconfig::render(&self.url, token, "user", namespace)
    }
    /// Register another user token at run time.
    pub fn add_user(&self, token: &str, name: &str, groups: &[&str]) {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        self.cluster.auth.add_user(token, name, &groups);
    }
    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.cluster.store.current_rv()
    }
    /// Restarts the server as a kube-apiserver process restarts while etcd keeps the data:
    /// the listener closes and every connection, watch, log and exec stream is cut at once;
    /// for `down` nothing listens (connections are refused); then it listens on the same
    /// address again with the same objects, resource versions and users. Returns once it
    /// listens again.
    pub async fn restart(&self, down: std::time::Duration) {
        let (back, listening) = tokio::sync::oneshot::channel();
        if self.outages.send((down, back)).is_ok() {
            let _ = listening.await;
        }
    }
    /// Stop now (the same as dropping the handle).
    pub fn shutdown(self) {}
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.cluster.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}
