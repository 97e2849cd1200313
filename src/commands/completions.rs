//! `kentledge completions SHELL`: shell completion scripts generated from the CLI definition.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::{Error, exit};
use crate::runtime::output;

/// The completion script for `shell`.
pub fn render(shell: Shell) -> String {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "kentledge", &mut buf);
    String::from_utf8(buf).expect("clap_complete writes UTF-8")
}

/// The file under `completions/` that holds the script for `shell`.
pub fn file_name(shell: Shell) -> Option<&'static str> {
    match shell {
        Shell::Bash => Some("kentledge.bash"),
        Shell::Zsh => Some("_kentledge"),
        Shell::Fish => Some("kentledge.fish"),
        Shell::PowerShell => Some("_kentledge.ps1"),
        _ => None,
    }
}

/// Prints the completion script.
pub fn run(args: &CompletionsArgs) -> Result<u8, Error> {
    output::print(&render(args.shell))?;
    Ok(exit::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed completions match the CLI; regenerate with `make completions`.
    #[test]
    fn committed_completions_are_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::PowerShell] {
            let file = dir.join(file_name(shell).unwrap());
            let expected = render(shell);
            if std::env::var_os("UPDATE_COMPLETIONS").is_some() {
                std::fs::write(&file, &expected).unwrap();
            }
            let committed = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e} (run `make completions`)", file.display()));
            assert!(
                committed == expected,
                "{} is stale: run `make completions` and commit the result",
                file.display()
            );
        }
    }
}
