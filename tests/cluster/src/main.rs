//! `kentledge-testcluster serve`: start an API server, write the admin kubeconfig, print `ready`, run until
//! SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use kentledge_testcluster::{ApiServer, ServerOptions};

const USAGE: &str = "usage: kentledge-testcluster serve [--port PORT] [--kubeconfig PATH]\n\
  [--kubelet-client-certificate PATH --kubelet-client-key PATH] [--kubelet-certificate-authority PATH]\n\
  Starts a local Kubernetes API server on 127.0.0.1 and writes its admin kubeconfig to PATH\n\
  (default: $KUBECONFIG_OUT, else target/cluster/kubeconfig). Kubelets are dialled over HTTPS with the\n\
  kubelet client certificate (default: the embedded test one, signed by the test CA) and verified only\n\
  against --kubelet-certificate-authority.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut port = 0u16;
    let mut kubelet_cert: Option<Vec<u8>> = None;
    let mut kubelet_key: Option<Vec<u8>> = None;
    let mut kubelet_ca: Option<Vec<u8>> = None;
    let read = |p: &str| match std::fs::read(p) {
        Ok(b) => Ok(b),
        Err(e) => {
            eprintln!("error: reading {p}: {e}");
            Err(ExitCode::from(2))
        }
    };
    let mut kubeconfig: PathBuf = std::env::var_os("KUBECONFIG_OUT")
        .map_or_else(|| PathBuf::from("target/cluster/kubeconfig"), PathBuf::from);
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("serve") => {}
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--port", Some(p)) => match p.parse() {
                Ok(p) => port = p,
                Err(_) => {
                    eprintln!("error: --port: not a port: {p}");
                    return ExitCode::from(2);
                }
            },
            ("--kubeconfig", Some(p)) => kubeconfig = PathBuf::from(p),
            ("--kubelet-client-certificate", Some(p)) => match read(p) {
                Ok(b) => kubelet_cert = Some(b),
                Err(c) => return c,
            },
            ("--kubelet-client-key", Some(p)) => match read(p) {
                Ok(b) => kubelet_key = Some(b),
                Err(c) => return c,
            },
            ("--kubelet-certificate-authority", Some(p)) => match read(p) {
                Ok(b) => kubelet_ca = Some(b),
                Err(c) => return c,
            },
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let mut opts = ServerOptions::default()
            .bind(([127, 0, 0, 1], port).into())
            .kubeconfig(&kubeconfig);
        match (kubelet_cert, kubelet_key) {
            (Some(c), Some(k)) => opts = opts.kubelet_client_certificate(c, k),
            (None, None) => {}
            _ => {
                eprintln!(
                    "error: --kubelet-client-certificate and --kubelet-client-key go together"
                );
                return ExitCode::from(2);
            }
        }
        if let Some(ca) = kubelet_ca {
            opts = opts.kubelet_certificate_authority(ca);
        }
        let server = match ApiServer::start(opts).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!(
            "kentledge-testcluster ready: server {} kubeconfig {}",
            server.url(),
            kubeconfig.display()
        );
        if let Err(e) = wait_for_signal().await {
            eprintln!("error: waiting for signals: {e}");
        }
        drop(server);
        eprintln!("kentledge-testcluster stopped");
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}
