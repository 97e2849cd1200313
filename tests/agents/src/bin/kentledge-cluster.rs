//! `kentledge-cluster` (`make cluster`): starts a local cluster in the foreground, writes its
//! admin kubeconfig to `$KUBECONFIG_OUT` (default `target/cluster/kubeconfig`), prints a line
//! with `ready`, and shuts everything down cleanly on SIGINT or SIGTERM. Containers of the
//! kentledge image (mover pods) run the `kentledge` binary built next to this one.

use std::path::PathBuf;

use kentledge_nodeagents::local::{LocalCluster, LocalOptions};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KENTLEDGE_CLUSTER_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let kubeconfig = std::env::var_os("KUBECONFIG_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/cluster/kubeconfig"));
    let data_dir = std::env::var_os("CLUSTER_DATA").map(PathBuf::from);
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_default();
    let cluster = match LocalCluster::start(LocalOptions {
        data_dir,
        kubeconfig: Some(kubeconfig.clone()),
        images: vec![("ghcr.io/kentledge/kentledge".into(), bin_dir)],
    })
    .await
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kentledge-cluster: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "kentledge-cluster ready: {} (kubeconfig {})",
        cluster.server().url(),
        kubeconfig.display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    println!("kentledge-cluster: stopping");
    drop(cluster);
    std::process::ExitCode::SUCCESS
}
