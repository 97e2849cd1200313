//! The run lock: one coordination.k8s.io/v1 Lease per config and namespace
//! (`kentledge-<config>`), held by one run at a time and renewed while it lasts. This module is
//! the pure part: the Lease's name, the holder identity, and what to do given the Lease as read.
//! The execution layer applies the decision with an optimistic-concurrency update
//! (resourceVersion), so two runs that decide "take" at once cannot both win.

use jiff::{SignedDuration, Timestamp};

/// How long a lease lasts without renewal; a run renews it every third of this.
pub const LEASE_SECONDS: i32 = 60;

/// Which lock of a config: snapshot runs and snapshot prunes share the run lock; backups and
/// repository jobs share the backup lock (so hourly snapshots are not held up by a long copy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    /// `kentledge-<config>`.
    Run,
    /// `kentledge-<config>-backup`.
    Backup,
}

impl Lock {
    /// The Lease's name for a config.
    pub fn lease_name(self, config: &str) -> String {
        match self {
            Lock::Run => format!("kentledge-{config}"),
            Lock::Backup => format!("kentledge-{config}-backup"),
        }
    }

    /// What holds it, for messages.
    pub fn holder_kind(self) -> &'static str {
        match self {
            Lock::Run => "run",
            Lock::Backup => "backup",
        }
    }
}

/// Who holds a lease: the run id and where it runs (pod or host), for messages.
pub fn holder_identity(run_id: &str, host: &str) -> String {
    format!("{run_id}@{host}")
}

/// The fields of a Lease that matter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseView {
    /// `spec.holderIdentity`.
    pub holder: Option<String>,
    /// `spec.renewTime`.
    pub renew_time: Option<Timestamp>,
    /// `spec.leaseDurationSeconds`.
    pub duration_seconds: Option<i32>,
}

/// What to do about the lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockDecision {
    /// No lease: create it.
    Create,
    /// A lease nobody holds (released): take it.
    Take,
    /// Ours already: renew it.
    Renew,
    /// Held by a run that stopped renewing: take it over, and say so.
    TakeOver {
        /// The previous holder.
        previous: String,
        /// When it expired.
        expired_at: Timestamp,
    },
    /// Held by a live run: wait (or fail after `--lock-timeout`).
    Wait {
        /// The holder, for the message.
        holder: String,
        /// When it expires if not renewed.
        expires_at: Timestamp,
    },
}

/// Decides what run `me` does with the lease as read at `now`.
pub fn decide(lease: Option<&LeaseView>, me: &str, now: Timestamp) -> LockDecision {
    let Some(lease) = lease else {
        return LockDecision::Create;
    };
    let holder = match lease.holder.as_deref() {
        None | Some("") => return LockDecision::Take,
        Some(h) if h == me => return LockDecision::Renew,
        Some(h) => h.to_owned(),
    };
    let duration =
        SignedDuration::from_secs(i64::from(lease.duration_seconds.unwrap_or(LEASE_SECONDS)));
    let renewed = lease.renew_time.unwrap_or(Timestamp::UNIX_EPOCH);
    let expires_at = renewed.saturating_add(duration).unwrap_or(renewed);
    if now >= expires_at {
        LockDecision::TakeOver {
            previous: holder,
            expired_at: expires_at,
        }
    } else {
        LockDecision::Wait { holder, expires_at }
    }
}

/// The run lock's annotation in which a snapshot run names the snapshots it saw cut while the
/// application was frozen (written as the application is released).
pub const CUT_WHILE_FROZEN: &str = "kentledge.io/cut-while-frozen";

/// The note [`CUT_WHILE_FROZEN`] holds for `names`.
pub fn frozen_note(names: &[String]) -> String {
    names.join(",")
}

/// A run that stopped renewing its lock, as the run that takes the lock over finds it: its id,
/// and the snapshots it confirmed were cut while the application was frozen (`None`: it was
/// killed before it said).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stale {
    /// The killed run's id.
    pub run: String,
    /// Its [`CUT_WHILE_FROZEN`] note, if it wrote one.
    pub confirmed: Option<std::collections::BTreeSet<String>>,
}

impl Stale {
    /// From the Lease's run label and its note.
    pub fn new(run: &str, note: Option<&str>) -> Stale {
        Stale {
            run: run.to_owned(),
            confirmed: note.map(|n| {
                n.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
        }
    }

    /// Whether the killed run's snapshot `name` can be trusted: only one it confirmed. Any other
    /// may have been cut after the run died, when its held session and the freeze had gone.
    pub fn trusts(&self, name: &str) -> bool {
        self.confirmed.as_ref().is_some_and(|c| c.contains(name))
    }

    /// Whether `vs` is a snapshot of the killed run that froze an application (it carries the
    /// pre-hooks) and that the run never confirmed: not consistent, not to be copied or kept.
    pub fn distrusts(&self, vs: &crate::model::snapshots::VolumeSnapshot) -> bool {
        let m = &vs.metadata;
        let ours = m
            .labels
            .as_ref()
            .and_then(|l| l.get(crate::model::labels::RUN))
            .is_some_and(|r| !self.run.is_empty() && *r == self.run);
        let frozen = m.annotations.as_ref().is_some_and(|a| {
            a.get(crate::model::labels::HOOKS_ANNOTATION)
                .is_some_and(|h| !h.is_empty())
        });
        ours && frozen && !self.trusts(m.name.as_deref().unwrap_or_default())
    }
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run held it for the whole wait.
    #[error(
        "another {kind} of config {config} holds the lock (Lease {lease}, holder {holder}); gave up after {waited}"
    )]
    Held {
        /// `run` or `backup`.
        kind: &'static str,
        /// The config.
        config: String,
        /// The Lease's name.
        lease: String,
        /// Who holds it.
        holder: String,
        /// How long we waited.
        waited: String,
    },
    /// The API failed.
    #[error("cannot read or write the run lock")]
    Api(#[source] kube::Error),
    /// Interrupted while waiting.
    #[error("interrupted while waiting for the run lock")]
    Interrupted,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_runs_snapshots_are_trusted_only_when_it_confirmed_their_cut() {
        let said = Stale::new("r1", Some(&frozen_note(&["a".into(), "b".into()])));
        assert!(said.trusts("a") && said.trusts("b"));
        assert!(!said.trusts("c"), "not cut while frozen, or not seen cut");
        let silent = Stale::new("r1", None);
        assert!(
            !silent.trusts("a"),
            "killed before it said: nothing is trusted"
        );
        let none_cut = Stale::new("r1", Some(""));
        assert_eq!(none_cut.confirmed, Some(Default::default()));
        assert!(!none_cut.trusts(""));

        let vs = |name: &str, run: &str, hooks: Option<&str>| {
            let mut v = serde_json::json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                "metadata": {"name": name, "labels": {"kentledge.io/run": run}},
                "spec": {"source": {"persistentVolumeClaimName": "data"}}});
            if let Some(h) = hooks {
                v["metadata"]["annotations"] = serde_json::json!({"kentledge.io/hooks": h});
            }
            serde_json::from_value::<crate::model::snapshots::VolumeSnapshot>(v).unwrap()
        };
        assert!(said.distrusts(&vs("c", "r1", Some("[...]"))));
        assert!(!said.distrusts(&vs("a", "r1", Some("[...]"))), "confirmed");
        assert!(
            !said.distrusts(&vs("c", "r2", Some("[...]"))),
            "another run's"
        );
        assert!(
            !said.distrusts(&vs("c", "r1", None)),
            "never frozen: crash-consistent as any"
        );
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn held(by: &str, renewed: &str) -> LeaseView {
        LeaseView {
            holder: Some(by.into()),
            renew_time: Some(ts(renewed)),
            duration_seconds: Some(60),
        }
    }

    #[test]
    fn decisions() {
        let now = ts("2026-11-22T10:00:00Z");
        assert_eq!(decide(None, "me", now), LockDecision::Create);
        assert_eq!(
            decide(Some(&LeaseView::default()), "me", now),
            LockDecision::Take
        );
        assert_eq!(
            decide(Some(&held("me", "2026-11-22T09:00:00Z")), "me", now),
            LockDecision::Renew
        );
        assert_eq!(
            decide(
                Some(&held("run-a@pod-1", "2026-11-22T09:59:30Z")),
                "me",
                now
            ),
            LockDecision::Wait {
                holder: "run-a@pod-1".into(),
                expires_at: ts("2026-11-22T10:00:30Z")
            }
        );
        assert_eq!(
            decide(
                Some(&held("run-a@pod-1", "2026-11-22T09:59:00Z")),
                "me",
                now
            ),
            LockDecision::TakeOver {
                previous: "run-a@pod-1".into(),
                expired_at: ts("2026-11-22T10:00:00Z")
            }
        );
    }

    #[test]
    fn names() {
        assert_eq!(Lock::Run.lease_name("shop"), "kentledge-shop");
        assert_eq!(Lock::Backup.lease_name("shop"), "kentledge-shop-backup");
        assert_eq!(
            holder_identity("20261122t100000z-3f9a", "kentledge-snapshot-29xz"),
            "20261122t100000z-3f9a@kentledge-snapshot-29xz"
        );
    }
}
