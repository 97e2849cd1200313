//! The `check` action: `borg check` / `restic check`, optionally reading part of the data.

use super::LOCK_POLL_SECS;
use super::env::Env;
use super::locks::with_lock_wait;
use super::process::run;
use super::{Fail, log};
use crate::engines::borg;
use crate::mover::job::Engine;

pub(super) fn check(env: &Env, read_data_subset: Option<&str>) -> Result<(), Fail> {
    let argv = match env.access.engine {
        Engine::Borg => {
            let mut words = vec!["check"];
            if read_data_subset.is_some() {
                words.push("--verify-data");
            }
            borg::repo_command(&env.borg_repo(LOCK_POLL_SECS), &words, &[])
        }
        Engine::Restic => {
            let mut a = env.restic(&["check"]);
            if let Some(s) = read_data_subset {
                a.push(format!("--read-data-subset={s}"));
            }
            a
        }
    };
    let _ = with_lock_wait(env, |_| {
        let out = run(&argv, env, None, false)?;
        for l in out.stdout.lines().filter(|l| !l.trim().is_empty()) {
            log("info", l);
        }
        Ok(out)
    })?;
    log(
        "info",
        format!("repository {} checked: no errors", env.access.name),
    );
    Ok(())
}
