//! `kentledge-node`: run the node agents (storage driver, workload controllers, scheduler and
//! kubelet) against any API server, given a kubeconfig, until SIGINT/SIGTERM.
//!
//! ```text
//! kentledge-node [--kubeconfig PATH] [--name NODE] [--data-dir DIR] [--no-scheduler]
//!                [--no-storage] [--no-workloads] [--label K=V]...
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use kentledge_nodeagents::node::{Node, NodeOptions};
use kentledge_nodeagents::storage::{self, Storage, StorageOptions};
use kentledge_nodeagents::workloads;
use kube::config::{KubeConfigOptions, Kubeconfig};

const USAGE: &str = "usage: kentledge-node [--kubeconfig PATH] [--name NODE] [--data-dir DIR] [--no-scheduler] [--no-storage] [--no-workloads] [--label K=V]...";

struct Args {
    kubeconfig: Option<PathBuf>,
    opts: NodeOptions,
    data_dir: PathBuf,
    storage: bool,
    workloads: bool,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut kubeconfig = std::env::var_os("KUBECONFIG").map(PathBuf::from);
    let mut name = "node-1".to_string();
    let mut data_dir = std::env::temp_dir().join("kentledge-node");
    let mut scheduler = true;
    let (mut storage, mut workloads) = (true, true);
    let mut labels = Vec::new();
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
            "--label" => {
                let l = value("--label")?;
                let (k, v) = l
                    .split_once('=')
                    .ok_or_else(|| format!("--label wants KEY=VALUE, got {l:?}"))?;
                labels.push((k.to_string(), v.to_string()));
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let mut opts = NodeOptions::new(name, data_dir.join("node")).scheduler(scheduler);
    for (k, v) in labels {
        opts = opts.label(k, v);
    }
    Ok(Args {
        kubeconfig,
        opts,
        data_dir,
        storage,
        workloads,
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = match &args.kubeconfig {
        Some(p) => {
            kube::Config::from_custom_kubeconfig(
                Kubeconfig::read_from(p)?,
                &KubeConfigOptions::default(),
            )
            .await?
        }
        None => kube::Config::infer().await?,
    };
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
    let node = Node::start(client, args.opts).await?;
    println!(
        "node {} ready, kubelet on {}",
        node.name(),
        node.kubelet_addr()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
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
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kentledge-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}
