//! `kentledge-node`: run the node agents (storage driver, workload controllers, scheduler and
//! kubelet) against any API server, given a kubeconfig, until SIGINT/SIGTERM. The kubelet serves
//! HTTPS and accepts only client certificates signed by `--client-ca-file` (the API server's
//! `--kubelet-client-certificate`). See tests/agents/README.md for a whole command line.
//!
//! ```text
//! kentledge-node --client-ca-file PATH [--kubeconfig PATH] [--name NODE] [--data-dir DIR]
//!                [--address IP] [--port N] [--node-ip IP]
//!                [--tls-cert-file PATH --tls-private-key-file PATH]
//!                [--image PREFIX=DIR]... [--log LEVEL] [--no-scheduler] [--no-storage]
//!                [--no-workloads] [--label K=V]...
//! ```

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use kentledge_nodeagents::node::{Node, NodeOptions};
use kentledge_nodeagents::storage::{self, Storage, StorageOptions};
use kentledge_nodeagents::workloads;
use kube::config::{KubeConfigOptions, Kubeconfig};

const USAGE: &str = "usage: kentledge-node --client-ca-file PATH [options]
  --kubeconfig PATH          the API server and credentials (default $KUBECONFIG, else in-cluster/~/.kube/config)
  --name NODE                the Node's name (default node-1)
  --data-dir DIR             pod directories, logs and volumes (default $TMPDIR/kentledge-node)
  --client-ca-file PATH      CA of the API server's kubelet client certificate (required)
  --tls-cert-file PATH       kubelet serving certificate (PEM; default: self-signed at start)
  --tls-private-key-file PATH  its key
  --address IP               address the kubelet listens on (default 127.0.0.1; 0.0.0.0 for all)
  --port N                   kubelet port (default 0: any free port; a real kubelet uses 10250)
  --node-ip IP               InternalIP on the Node, dialled by the API server (default --address)
  --image PREFIX=DIR         containers whose image starts with PREFIX find DIR first on PATH
                             (default ghcr.io/kentledge/kentledge=<directory of this program>)
  --log LEVEL                log filter, tracing env-filter syntax (default info)
  --label K=V                extra Node label (repeatable)
  --no-scheduler, --no-storage, --no-workloads   leave that agent out";

/// The kentledge image, whose binary is built next to this program.
const KENTLEDGE_IMAGE: &str = "ghcr.io/kentledge/kentledge";

struct Args {
    kubeconfig: Option<PathBuf>,
    opts: NodeOptions,
    data_dir: PathBuf,
    storage: bool,
    workloads: bool,
    log: String,
}

fn read(path: &str, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} {path}: {e}"))
}

fn pair(flag: &str, v: &str) -> Result<(String, String), String> {
    v.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{flag} wants KEY=VALUE, got {v:?}"))
}

fn ip(flag: &str, v: &str) -> Result<IpAddr, String> {
    v.parse()
        .map_err(|_| format!("{flag}: not an IP address: {v:?}"))
}

fn parse(args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut kubeconfig = std::env::var_os("KUBECONFIG").map(PathBuf::from);
    let mut name = "node-1".to_string();
    let mut data_dir = std::env::temp_dir().join("kentledge-node");
    let mut scheduler = true;
    let (mut storage, mut workloads) = (true, true);
    let mut labels = Vec::new();
    let mut images: Vec<(String, PathBuf)> = Vec::new();
    let mut log = "info".to_string();
    let (mut address, mut port, mut node_ip) = (IpAddr::from([127, 0, 0, 1]), 0u16, None);
    let (mut client_ca, mut cert, mut key) = (None, None, None);
    // `--flag value` and `--flag=value` both work.
    let mut args = args.flat_map(|a| match a.split_once('=') {
        Some((f, v)) if f.starts_with("--") => vec![f.to_string(), v.to_string()],
        _ => vec![a],
    });
    while let Some(a) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--kubeconfig" => kubeconfig = Some(PathBuf::from(value("--kubeconfig")?)),
            "--name" => name = value("--name")?,
            "--data-dir" => data_dir = PathBuf::from(value("--data-dir")?),
            "--no-scheduler" => scheduler = false,
            "--no-storage" => storage = false,
            "--no-workloads" => workloads = false,
            "--label" => labels.push(pair("--label", &value("--label")?)?),
            "--image" => {
                let (prefix, dir) = pair("--image", &value("--image")?)?;
                images.push((prefix, PathBuf::from(dir)));
            }
            "--log" => log = value("--log")?,
            "--address" => address = ip("--address", &value("--address")?)?,
            "--node-ip" => node_ip = Some(ip("--node-ip", &value("--node-ip")?)?),
            "--port" => {
                let p = value("--port")?;
                port = p
                    .parse()
                    .map_err(|_| format!("--port: not a port: {p:?}"))?;
            }
            "--client-ca-file" => client_ca = Some(read(&value("--client-ca-file")?, "client CA")?),
            "--tls-cert-file" => cert = Some(read(&value("--tls-cert-file")?, "certificate")?),
            "--tls-private-key-file" => key = Some(read(&value("--tls-private-key-file")?, "key")?),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let Some(client_ca) = client_ca else {
        return Err(format!(
            "--client-ca-file is required: the kubelet accepts only the API server's kubelet client certificate\n{USAGE}"
        ));
    };
    if !images.iter().any(|(p, _)| p == KENTLEDGE_IMAGE) {
        let bin_dir = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from))
            .unwrap_or_default();
        images.push((KENTLEDGE_IMAGE.into(), bin_dir));
    }
    let mut opts = NodeOptions::new(name, data_dir.join("node"))
        .scheduler(scheduler)
        .listen(address, port)
        .client_ca(client_ca);
    if let Some(ip) = node_ip {
        opts = opts.node_ip(ip);
    }
    match (cert, key) {
        (Some(c), Some(k)) => opts = opts.serving_cert(c, k),
        (None, None) => {}
        _ => {
            return Err("--tls-cert-file and --tls-private-key-file go together".to_string());
        }
    }
    for (k, v) in labels {
        opts = opts.label(k, v);
    }
    for (prefix, dir) in images {
        opts = opts.image(prefix, dir);
    }
    Ok(Args {
        kubeconfig,
        opts,
        data_dir,
        storage,
        workloads,
        log,
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = match &args.kubeconfig {
        Some(p) => {
            kube::Config::from_custom_kubeconfig(
                Kubeconfig::read_from(p).with_context(|| format!("reading {}", p.display()))?,
                &KubeConfigOptions::default(),
            )
            .await?
        }
        None => kube::Config::infer().await?,
    };
    let mut args = args;
    if args.opts.api_server.is_none() {
        // Containers reach the API server where this node does.
        args.opts = args
            .opts
            .clone()
            .api_server_url(&config.cluster_url.to_string());
    }
    let client = kube::Client::try_from(config)?;
    let _storage = if args.storage {
        storage::install_defaults(&client, storage::DRIVER).await?;
        Some(
            Storage::start(
                client.clone(),
                StorageOptions::new(args.data_dir.join("storage")),
            )
            .await?,
        )
    } else {
        None
    };
    let _workloads = args.workloads.then(|| workloads::start(client.clone()));
    for (prefix, dir) in &args.opts.images {
        tracing::info!("image {prefix} provides {}", dir.display());
    }
    let node = Node::start(client, args.opts).await?;
    println!(
        "node {} ready, kubelet on https://{}",
        node.name(),
        node.kubelet_addr()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping");
    node.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let filter = match tracing_subscriber::EnvFilter::try_new(&args.log) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("--log {:?}: {e}", args.log);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kentledge-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}
