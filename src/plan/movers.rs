//! What to do when a mover found its repository locked: only locks held by mover pods of this
//! namespace are ours to judge; a lock whose holders are all gone is broken (once); a lock held by
//! a live mover is waited for up to the repository's lock wait; any other holder is never broken.

use std::time::Duration;

use crate::mover::job::Holder;

/// The mover pods among a lock's holders, or `None` when any holder is not one of ours (then the
/// lock is never broken: the mover already waited for it).
pub fn mover_holders(holders: &[Holder]) -> Option<Vec<String>> {
    let movers: Vec<String> = holders
        .iter()
        .filter_map(|h| match h {
            Holder::Mover(p) => Some(p.clone()),
            Holder::Other(_) => None,
        })
        .collect();
    (!movers.is_empty() && movers.len() == holders.len()).then_some(movers)
}

/// The next step, given which holder pods still exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockStep {
    /// Report the lock as it is.
    GiveUp,
    /// Every holder is gone: break the lock, then retry the job.
    Break,
    /// A holder is a running mover: wait, then retry.
    Wait,
    /// A running mover held it for the whole lock wait.
    TimedOut,
}

/// Decides after the holders' liveness was looked up: `live` are holder pods that still exist,
/// `broke` whether this job already broke the lock once, `waited` how long it has waited.
pub fn on_locked(live: &[String], broke: bool, waited: Duration, wait: Duration) -> LockStep {
    match (live.is_empty(), broke) {
        (true, true) => LockStep::GiveUp,
        (true, false) => LockStep::Break,
        (false, _) if waited >= wait => LockStep::TimedOut,
        (false, _) => LockStep::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_locks_held_by_our_movers_alone_are_judged() {
        let m = |p: &str| Holder::Mover(p.into());
        let o = |p: &str| Holder::Other(p.into());
        assert_eq!(
            mover_holders(&[m("kentledge-mover-a-1"), m("kentledge-mover-a-2")]),
            Some(vec![
                "kentledge-mover-a-1".into(),
                "kentledge-mover-a-2".into()
            ])
        );
        assert_eq!(
            mover_holders(&[m("kentledge-mover-a-1"), o("admin-laptop")]),
            None
        );
        assert_eq!(mover_holders(&[o("admin-laptop")]), None);
        assert_eq!(
            mover_holders(&[]),
            None,
            "a lock without a known holder is never broken"
        );
    }

    #[test]
    fn gone_holders_are_broken_once_live_ones_are_waited_for() {
        let min = Duration::from_secs(60);
        let live = ["kentledge-mover-a-1".to_owned()];
        assert_eq!(on_locked(&[], false, Duration::ZERO, min), LockStep::Break);
        assert_eq!(on_locked(&[], true, Duration::ZERO, min), LockStep::GiveUp);
        assert_eq!(
            on_locked(&live, false, Duration::from_secs(5), min),
            LockStep::Wait
        );
        assert_eq!(
            on_locked(&live, true, Duration::from_secs(5), min),
            LockStep::Wait
        );
        assert_eq!(on_locked(&live, false, min, min), LockStep::TimedOut);
    }
}
