//! The subcommands: each takes validated settings and returns an exit code.

pub mod backup;
pub mod check;
pub mod completions;
pub mod list;
pub mod prune;
pub mod restore;
pub mod snapshot;
pub mod status;
pub mod version;

use crate::cli::{Cli, Command};
use crate::error::Error;
use crate::settings;

/// Runs the parsed command line; returns the exit code on success.
pub fn run(cli: Cli) -> Result<u8, Error> {
    match &cli.command {
        Command::Completions(args) => completions::run(args),
        Command::Version(args) => version::run(args),
        Command::Check(args) => check::run(&cli.global, args),
        Command::Snapshot(args) => snapshot::run(&cli.global, args),
        Command::Prune(args) => prune::run(&cli.global, args),
        Command::Backup(args) => backup::run(&cli.global, args),
        Command::List(args) => list::run(&cli.global, args),
        Command::Status(args) => status::run(&cli.global, args),
        Command::Restore(args) => restore::run(&cli.global, args),
        Command::Mover(args) => Ok(u8::try_from(crate::inpod::main(&args.job)).unwrap_or(1)),
    }
}

/// Checks that `--repository NAME` names one of the config's repositories (before any API call).
pub(crate) fn check_repository(settings: &settings::Settings, name: &str) -> Result<(), Error> {
    let repos = &settings.config.spec.repositories;
    if repos.iter().any(|r| r.name == name) {
        return Ok(());
    }
    Err(Error::BadArgument {
        flag: "--repository",
        value: name.to_owned(),
        reason: format!(
            "no such repository in spec.repositories (there are: {})",
            repos
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// What a command that talks to the cluster holds for its whole run: one client, and one
/// interruption state (the signal handlers are installed once, so no signal is lost between the
/// parts of a command such as `backup --snapshot-now`).
pub(crate) async fn connect(
    global: &crate::cli::GlobalArgs,
) -> Result<(kube::Client, crate::runtime::signals::Interrupt), Error> {
    let interrupt = crate::runtime::signals::Interrupt::from_signals().map_err(Error::Signals)?;
    let client = crate::kube::client::connect(&settings::cluster_access(global))
        .await
        .map_err(|e| Error::Connect(Box::new(e)))?;
    Ok((client, interrupt))
}

/// The async runtime for commands that talk to the cluster (two workers: a CLI, not a server).
pub fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Error::Signals)
}

/// Pushes a run's results to the Pushgateway `url` (when one is given and the run changed
/// something): a failed push is said as an error, and the run's exit code stays its own.
pub(crate) fn push_metrics(
    url: Option<&str>,
    settings: &settings::Settings,
    command: &str,
    code: u8,
    started: std::time::Instant,
    targets: &[crate::report::metrics::Target],
) {
    let Some(url) = url else { return };
    if settings.dry_run {
        return;
    }
    let body = crate::report::metrics::exposition(&crate::report::metrics::RunMetrics {
        command,
        code,
        seconds: started.elapsed().as_secs_f64(),
        targets,
    });
    let pushed = crate::push::group_url(
        url,
        &settings.config.metadata.name,
        &settings.namespace,
        command,
    )
    .map_err(|e| e.to_string())
    .and_then(|group| {
        let rt = runtime().map_err(|e| e.to_string())?;
        rt.block_on(crate::push::push(&group, body))
            .map_err(|e| e.to_string())
    });
    match pushed {
        Ok(()) => tracing::info!(
            pushgateway = url,
            targets = targets.len(),
            code,
            "results pushed"
        ),
        Err(e) => tracing::error!("the results were not pushed to the Pushgateway: {e}"),
    }
}
