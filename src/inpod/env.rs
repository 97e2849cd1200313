//! The engine's environment from mounted files (never from arguments): passphrase and key
//! files, a private copy of the ssh key, the ssh command, and the engines' repository settings.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Fail, log};
use crate::engines::{borg, restic};
use crate::model::repository::{Kind, Location};
use crate::mover::job::{Access, Engine, Failure, paths};

/// The engine's environment and the repository's access settings.
pub(super) struct Env {
    pub(super) access: Access,
    /// The job's location, parsed (the one parser the config's validation uses).
    pub(super) location: Location,
    pub(super) vars: Vec<(String, String)>,
    /// A private copy of the ssh key (secret volumes may be group-readable, which ssh refuses).
    pub(super) _key_dir: Option<PrivateDir>,
    /// `ssh` and its options, one word each (joined, quoted, only where an engine takes one
    /// string: `BORG_RSH`, restic's `sftp.command`).
    pub(super) ssh_command: Option<Vec<String>>,
}

impl Env {
    pub(super) fn prepare(access: &Access) -> Result<Env, Fail> {
        let location = Location::parse(access.engine, &access.location).map_err(|e| {
            Fail::new(
                Failure::BadJob,
                format!("the job's repository location: {e}"),
            )
        })?;
        let mut vars: Vec<(String, String)> = Vec::new();
        let cache = PathBuf::from(paths::CACHE);
        let (key_dir, ssh_command) = match &access.ssh {
            Some(ssh) => {
                let mut cmd = vec!["ssh".to_owned(), "-o".into(), "BatchMode=yes".into()];
                let mut dir = None;
                if ssh.key {
                    let d = PrivateDir::new()?;
                    let key = d.0.join("key");
                    copy_private(Path::new(paths::SSH_KEY), &key)?;
                    cmd.extend([
                        "-i".into(),
                        key.display().to_string(),
                        "-o".into(),
                        "IdentitiesOnly=yes".into(),
                    ]);
                    dir = Some(d);
                }
                if ssh.insecure {
                    log(
                        "warn",
                        format!(
                            "ssh host key checking is OFF for repository {} (insecureSkipHostKeyCheck)",
                            access.name
                        ),
                    );
                    cmd.extend([
                        "-o".into(),
                        "StrictHostKeyChecking=no".into(),
                        "-o".into(),
                        "UserKnownHostsFile=/dev/null".into(),
                    ]);
                } else {
                    cmd.extend(["-o".into(), "StrictHostKeyChecking=yes".into()]);
                    if ssh.known_hosts {
                        cmd.extend([
                            "-o".into(),
                            format!("UserKnownHostsFile={}", paths::KNOWN_HOSTS),
                        ]);
                    }
                }
                (dir, Some(cmd))
            }
            None => (None, None),
        };
        for d in ["borg", "restic"] {
            let _ = std::fs::create_dir_all(cache.join(d));
        }
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "kentledge-mover".into());
        match access.engine {
            Engine::Borg => {
                vars.push((
                    "BORG_BASE_DIR".into(),
                    cache.join("borg").display().to_string(),
                ));
                vars.push(("BORG_HOST_ID".into(), host));
                vars.push(("BORG_EXIT_CODES".into(), "modern".into()));
                vars.push((
                    "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK".into(),
                    "yes".into(),
                ));
                vars.push(("BORG_RELOCATED_REPO_ACCESS_IS_OK".into(), "yes".into()));
                vars.push(("BORG_DISPLAY_PASSPHRASE".into(), "no".into()));
                if access.passphrase {
                    vars.push((
                        "BORG_PASSCOMMAND".into(),
                        format!("cat {}", paths::PASSPHRASE),
                    ));
                } else {
                    vars.push(("BORG_PASSPHRASE".into(), String::new()));
                }
                if let Some(c) = &ssh_command {
                    vars.push(("BORG_RSH".into(), shell_words(c)));
                }
            }
            Engine::Restic => {
                vars.push(("RESTIC_REPOSITORY".into(), access.location.clone()));
                vars.push(("RESTIC_PASSWORD_FILE".into(), paths::PASSPHRASE.into()));
                vars.push((
                    "RESTIC_CACHE_DIR".into(),
                    cache.join("restic").display().to_string(),
                ));
            }
        }
        Ok(Env {
            access: access.clone(),
            location,
            vars,
            _key_dir: key_dir,
            ssh_command,
        })
    }

    /// Keeps borg's per-archive chunk indices (`chunks.archive.d`, one per archive: on a
    /// repository with many archives of a large volume they outgrow everything else in the
    /// cache) off in every cache under `BORG_BASE_DIR`, by borg's own switch: a file in the
    /// directory's place. The cache volume's size then follows the data, not the number of
    /// archives; a cache that another writer left behind is brought up to date from the
    /// repository's archives instead (slower, and rare: kentledge's writers share the volume).
    pub(super) fn archive_indices_off(&self) {
        let Some(base) = self.var("BORG_BASE_DIR") else {
            return;
        };
        let caches = Path::new(base).join(".cache").join("borg");
        for cache in std::fs::read_dir(caches).into_iter().flatten().flatten() {
            let dir = cache.path().join("chunks.archive.d");
            if dir.is_dir() && std::fs::remove_dir_all(&dir).is_ok() {
                let _ = std::fs::File::create(&dir);
            }
        }
    }

    /// The value of an engine variable this job sets.
    pub(super) fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Keeps borg's files cache of `series` apart from the other series' (every copy reads its
    /// volume at the same path, so one shared files cache would mix their entries and age each
    /// series' out after 20 copies of others).
    pub(super) fn files_cache_of(&mut self, series: &crate::engines::Series) {
        if self.access.engine == Engine::Borg {
            self.vars.push((
                "BORG_FILES_CACHE_SUFFIX".into(),
                series.borg_prefix().trim_end_matches('_').to_owned(),
            ));
        }
    }

    /// Keeps the engine's cache and config in `dir` instead of [`paths::CACHE`].
    pub(super) fn cache_in(&mut self, dir: &Path) {
        for (name, sub) in [("BORG_BASE_DIR", "borg"), ("RESTIC_CACHE_DIR", "restic")] {
            let _ = std::fs::create_dir_all(dir.join(sub));
            for (k, v) in self.vars.iter_mut() {
                if k == name {
                    *v = dir.join(sub).display().to_string();
                }
            }
        }
    }

    pub(super) fn borg_repo(&self, lock_wait: u64) -> borg::Repo {
        borg::Repo {
            location: self.access.location.clone(),
            lock_wait_secs: lock_wait,
            remote_path: self.access.remote_path.clone(),
        }
    }

    /// restic's global options: `-o sftp.command=…` for sftp repositories.
    pub(super) fn restic_options(&self) -> Vec<String> {
        let command = match self.location.kind() {
            Kind::Sftp(t) => {
                self.ssh_argv(t.destination(), t.port, vec!["-s".into(), "sftp".into()])
            }
            _ => None,
        };
        match command {
            Some(argv) => vec!["-o".into(), format!("sftp.command={}", shell_words(&argv))],
            None => Vec::new(),
        }
    }

    pub(super) fn restic(&self, words: &[&str]) -> Vec<String> {
        self.restic_argv(restic::command(words))
    }

    /// A restic command line with the repository's global options (`-o sftp.command=…`).
    pub(super) fn restic_argv(&self, mut argv: Vec<String>) -> Vec<String> {
        argv.splice(1..1, self.restic_options());
        argv
    }

    /// `ssh [options] [-p port] target command…` with the repository's ssh settings.
    pub(super) fn ssh_argv(
        &self,
        target: String,
        port: Option<u16>,
        command: Vec<String>,
    ) -> Option<Vec<String>> {
        let mut argv = self.ssh_command.clone()?;
        if let Some(p) = port {
            argv.extend(["-p".into(), p.to_string()]);
        }
        argv.push(target);
        argv.extend(command);
        Some(argv)
    }
}

/// Words as one POSIX-shell-style command line, for an engine that splits one string (borg's
/// `BORG_RSH` with shlex, restic's `sftp.command`): a word of only safe characters stays as it
/// is, any other is single-quoted.
pub(super) fn shell_words(words: &[String]) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c);
    words
        .iter()
        .map(|w| {
            if !w.is_empty() && w.chars().all(safe) {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A directory only the mover can read, removed when dropped.
pub(super) struct PrivateDir(PathBuf);

impl PrivateDir {
    pub(super) fn new() -> Result<PrivateDir, Fail> {
        use std::os::unix::fs::DirBuilderExt;
        let p = std::env::temp_dir().join(format!("kentledge-ssh-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&p)
            .map_err(|e| Fail::new(Failure::Failed, format!("creating {}: {e}", p.display())))?;
        Ok(PrivateDir(p))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn copy_private(from: &Path, to: &Path) -> Result<(), Fail> {
    use std::os::unix::fs::OpenOptionsExt;
    let data = std::fs::read(from)
        .map_err(|e| Fail::new(Failure::Failed, format!("reading {}: {e}", from.display())))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(|e| Fail::new(Failure::Failed, format!("writing {}: {e}", to.display())))?;
    f.write_all(&data)
        .map_err(|e| Fail::new(Failure::Failed, format!("writing {}: {e}", to.display())))
}
