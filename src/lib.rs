//! kentledge: back up and restore everything stateful in one Kubernetes namespace.
//!
//! The crate is a functional core (config, plans, retention: pure data and functions) in an
//! imperative shell (commands that talk to the Kubernetes API and the engines). `main` is a
//! thin wrapper over [`run`].

pub mod backupplan;
pub mod cli;
pub mod commands;
pub mod config;
pub mod engines;
pub mod error;
pub mod hookplan;
pub mod k8s;
pub mod labels;
pub mod logging;
pub mod mover;
pub mod names;
pub mod output;
pub mod progress;
pub mod retention;
pub mod runlock;
pub mod selection;
pub mod settings;
pub mod signals;
pub mod snapshotplan;
pub mod sweep;
pub mod units;

pub use error::{Error, exit};

/// Runs a parsed command line; returns the process exit code on success.
pub fn run(cli: cli::Cli) -> Result<u8, Error> {
    commands::run(cli)
}
