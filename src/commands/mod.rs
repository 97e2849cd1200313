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
