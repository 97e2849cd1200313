//! The `kentledge` binary: parse the command line, run it, print errors with their causes
//! and a hint, and exit with the documented code.

use std::process::ExitCode;

use clap::Parser;
use kentledge::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_logs = kentledge::runtime::logging::init(
        cli.global.log_format.into(),
        cli.global.verbose,
        cli.global.quiet,
    );
    match kentledge::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let code = err.code();
            let hint = err.hint();
            let err = anyhow::Error::new(err);
            let mut text = format!("error: {}", err.to_string().trim_end());
            for cause in err.chain().skip(1) {
                text.push_str(&format!("\n  caused by: {cause}"));
            }
            if json_logs {
                // CronJobs: one JSON event that log pipelines can parse.
                tracing::error!(exit_code = code, hint = hint.as_deref(), "{text}");
            } else {
                if let Some(hint) = hint {
                    text.push_str(&format!("\nhint: {hint}"));
                }
                eprintln!("{text}");
            }
            ExitCode::from(code)
        }
    }
}
