//! `kentledge completions SHELL`: shell completion scripts generated from the CLI definition;
//! and the man pages (`completions/man/`), generated from it the same way.

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

/// The man pages: `kentledge.1` and one per subcommand (`kentledge-backup.1`,
/// `kentledge-restore-volume.1`, …), the hidden in-pod `mover` left out; file name and roff.
pub fn man_pages() -> Vec<(String, Vec<u8>)> {
    fn walk(cmd: &clap::Command, name: &str, out: &mut Vec<(String, Vec<u8>)>) {
        let page = cmd.clone().name(name.to_owned());
        let mut buf = Vec::new();
        clap_mangen::Man::new(page)
            .render(&mut buf)
            .expect("writing roff into memory");
        out.push((format!("{name}.1"), buf));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, &format!("{name}-{}", sub.get_name()), out);
        }
    }
    let mut cmd = Cli::command();
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, "kentledge", &mut out);
    out
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
        let man = dir.join("man");
        let pages = man_pages();
        if std::env::var_os("UPDATE_COMPLETIONS").is_some() {
            let _ = std::fs::remove_dir_all(&man);
            std::fs::create_dir_all(&man).unwrap();
            for (name, roff) in &pages {
                std::fs::write(man.join(name), roff).unwrap();
            }
        }
        let mut committed: Vec<String> = std::fs::read_dir(&man)
            .unwrap_or_else(|e| panic!("{}: {e} (run `make completions`)", man.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        committed.sort();
        let mut names: Vec<String> = pages.iter().map(|(n, _)| n.clone()).collect();
        names.sort();
        assert_eq!(
            committed, names,
            "man pages added or removed: run `make completions`"
        );
        for (name, roff) in &pages {
            let on_disk = std::fs::read(man.join(name)).unwrap();
            assert!(
                &on_disk == roff,
                "completions/man/{name} is stale: run `make completions` and commit the result"
            );
        }
        let top = String::from_utf8_lossy(&pages[0].1).into_owned();
        assert!(top.contains(".TH kentledge 1"), "{top}");
        assert!(
            pages.iter().any(|(n, _)| n == "kentledge-restore-bucket.1"),
            "nested subcommands have pages"
        );
        assert!(
            !pages.iter().any(|(n, _)| n.contains("mover")),
            "the in-pod command has none"
        );
    }
}
