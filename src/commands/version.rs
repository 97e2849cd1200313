//! `kentledge version`: this binary's version and, with `--engines`, the engines a mover runs
//! (borg, restic, ssh, rsync) as this machine or image has them, each asked for its own version.

use std::process::Command;

use crate::cli::VersionArgs;
use crate::error::{Error, exit};

/// The programs a mover runs, and how each says its version.
const ENGINES: &[(&str, &[&str])] = &[
    ("borg", &["--version"]),
    ("restic", &["version"]),
    ("ssh", &["-V"]),
    ("rsync", &["--version"]),
];

/// Runs `kentledge version`.
pub fn run(args: &VersionArgs) -> Result<u8, Error> {
    println!("kentledge {}", env!("CARGO_PKG_VERSION"));
    if !args.engines {
        return Ok(exit::SUCCESS);
    }
    let mut missing = 0;
    for (name, flags) in ENGINES {
        match Command::new(name).args(*flags).output() {
            Ok(o) if o.status.success() => {
                // ssh says its version on stderr.
                let text = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                let first = String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                println!("{name:<7} {first}");
            }
            Ok(o) => {
                missing += 1;
                println!(
                    "{name:<7} MISSING: `{name} {}` exited with {}",
                    flags.join(" "),
                    o.status
                );
            }
            Err(e) => {
                missing += 1;
                println!("{name:<7} MISSING: {e}");
            }
        }
    }
    Ok(if missing == 0 {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}
