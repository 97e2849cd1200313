//! The subcommands: each takes validated settings and returns an exit code.

pub mod backup;
pub mod check;
pub mod completions;
pub mod list;
pub mod prune;
pub mod snapshot;

use crate::cli::{Cli, Command};
use crate::error::Error;
use crate::settings;

/// Runs the parsed command line; returns the exit code on success.
pub fn run(cli: Cli) -> Result<u8, Error> {
    match &cli.command {
        Command::Completions(args) => completions::run(args),
        Command::Check(args) => check::run(&cli.global, args),
        Command::Snapshot(args) => snapshot::run(&cli.global, args),
        Command::Prune(args) => prune::run(&cli.global, args),
        Command::Backup(args) => backup::run(&cli.global, args),
        Command::List(args) => list::run(&cli.global, args),
        Command::Mover(args) => Ok(u8::try_from(crate::inpod::main(&args.job)).unwrap_or(1)),
        other => {
            // Load and validate first: a bad config is reported as such (exit 2) even before the
            // command itself exists, and never leads to an API call.
            let settings = settings::load(&cli.global)?;
            tracing::debug!(namespace = %settings.namespace, "config loaded");
            Err(Error::NotImplemented {
                command: other.name().to_owned(),
                version: env!("CARGO_PKG_VERSION"),
                what: match other {
                    Command::Restore(_) => "restores land with the restore work",
                    _ => "not implemented",
                },
            })
        }
    }
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
