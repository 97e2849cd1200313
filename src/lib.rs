//! kentledge: back up and restore everything stateful in one Kubernetes namespace.
//!
//! The crate is a functional core (model, config, plans: pure data and functions) in an
//! imperative shell (flows and commands that talk to the Kubernetes API and mover pods), one
//! folder per layer (see `layers.rs` for the order). `main` is a thin wrapper over [`run`].

pub mod cli;
pub mod commands;
pub mod config;
pub mod engines;
pub mod error;
pub mod flows;
pub mod inpod;
pub mod kube;
pub mod model;
pub mod mover;
pub mod plan;
pub mod push;
pub mod report;
pub mod runtime;
pub mod s3;
pub mod settings;

#[cfg(test)]
mod layers;

pub use error::{Error, exit};

/// Runs a parsed command line; returns the process exit code on success.
pub fn run(cli: cli::Cli) -> Result<u8, Error> {
    commands::run(cli)
}
