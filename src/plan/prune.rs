//! The snapshot prune plan for one series (mark, then delete): from the retention engine's
//! decisions and what is on each snapshot now (labels, protections), the label changes and
//! deletions that `prune` performs, each a single API call so an interrupted prune leaves every
//! snapshot kept, marked or deleted, never half-labelled in a way that changes the next decision.
//!
//! A snapshot that falls out of retention is first marked `kentledge.io/delete-after=<now+grace>`
//! and deleted by a later prune once that time has passed. Removing the mark by hand rescues it
//! for a run (it is marked again if still out of retention); a marked snapshot that comes back
//! into retention loses its mark. Protected snapshots (a clone's source, locked by a running
//! command, content that would be orphaned, not yet copied offsite) are never deleted.

pub mod series;

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use crate::model::labels::{DELETE_AFTER, keep_label, label_time, parse_label_time};
use crate::model::units::HumanDuration;
use crate::plan::retention::{Clock, Decision, Member, Policy, Reason, Rule, evaluate};

/// Why a snapshot that retention would delete must stay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Protection {
    /// It is the `dataSource` of this PVC (a clone in use).
    CloneSource(String),
    /// A running kentledge command (this run id) is using it.
    Locked(String),
    /// Its VolumeSnapshotContent has `deletionPolicy: Retain` and the config says skip.
    RetainedContent(String),
    /// It is newer than the newest snapshot copied offsite (`keepUntilBackedUp`).
    NotBackedUp,
}

impl std::fmt::Display for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Protection::CloneSource(pvc) => write!(f, "source of PVC {pvc}"),
            Protection::Locked(run) => write!(f, "in use by run {run}"),
            Protection::RetainedContent(c) => {
                write!(
                    f,
                    "content {c} has deletionPolicy Retain (would be orphaned)"
                )
            }
            Protection::NotBackedUp => f.write_str("not yet copied offsite"),
        }
    }
}

/// A snapshot of a series as prune weighs it: its retention member, labels and protections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Name, time, readiness, pin.
    pub member: Member,
    /// Its current labels (only kentledge's matter).
    pub labels: BTreeMap<String, String>,
    /// Why it may not be deleted, if anything.
    pub protections: Vec<Protection>,
}

/// What prune does with one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Kept by retention (labels may change).
    Keep,
    /// Kept, and a delete-after mark was removed: it came back into retention or was pinned.
    Rescue,
    /// Out of retention: mark for deletion at this time.
    Mark(Timestamp),
    /// Out of retention and marked; the mark has not expired yet.
    Pending(Timestamp),
    /// Out of retention and the mark has expired (or never ready past its grace): delete.
    Delete,
    /// Would be marked or deleted, but protected.
    Hold(Vec<Protection>),
}

/// The plan for one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The snapshot's name.
    pub name: String,
    /// The retention verdict and its reasons.
    pub decision: Decision,
    /// What happens.
    pub action: Disposition,
    /// Label changes in one merge patch: `Some(v)` sets, `None` removes. Empty: no call.
    pub labels: BTreeMap<String, Option<String>>,
}

/// Plans one series. `grace` is the time between mark and deletion.
pub fn plan_series(
    snapshots: &[Candidate],
    policy: &Policy,
    ctx: &Clock,
    grace: HumanDuration,
) -> Vec<Step> {
    let members: Vec<Member> = snapshots.iter().map(|s| s.member.clone()).collect();
    let decisions = evaluate(&members, policy, ctx);
    snapshots
        .iter()
        .zip(decisions)
        .map(|(s, decision)| plan_one(s, decision, ctx.now, grace))
        .collect()
}

fn plan_one(s: &Candidate, decision: Decision, now: Timestamp, grace: HumanDuration) -> Step {
    // Wanted keep-* labels: exactly the periods that keep it.
    let mut wanted: BTreeMap<String, String> = BTreeMap::new();
    if decision.keep {
        for (rule, period) in decision.periods() {
            wanted.insert(keep_label(rule), period.to_owned());
        }
    }
    let mut labels: BTreeMap<String, Option<String>> = BTreeMap::new();
    for rule in Rule::ALL {
        let key = keep_label(rule);
        match (s.labels.get(&key), wanted.get(&key)) {
            (Some(have), Some(want)) if have == want => {}
            (_, Some(want)) => {
                labels.insert(key, Some(want.clone()));
            }
            (Some(_), None) => {
                labels.insert(key, None);
            }
            (None, None) => {}
        }
    }
    let mark = s.labels.get(DELETE_AFTER);
    let never_ready = decision
        .reasons
        .iter()
        .any(|r| matches!(r, Reason::NotReadyExpired { .. }));
    let action = if decision.keep {
        if mark.is_some() {
            labels.insert(DELETE_AFTER.to_owned(), None);
            Disposition::Rescue
        } else {
            Disposition::Keep
        }
    } else if !s.protections.is_empty() {
        Disposition::Hold(s.protections.clone())
    } else if never_ready {
        // Its grace period already ran (not-ready grace); nothing to restore from.
        Disposition::Delete
    } else {
        match mark.and_then(|m| parse_label_time(m)) {
            Some(at) if at <= now => Disposition::Delete,
            Some(at) => Disposition::Pending(at),
            None => {
                // No mark (or an unreadable one): mark now.
                let at = now
                    .saturating_add(SignedDuration::from_secs(
                        i64::try_from(grace.as_secs()).unwrap_or(i64::MAX),
                    ))
                    .unwrap_or(now);
                labels.insert(DELETE_AFTER.to_owned(), Some(label_time(at)));
                Disposition::Mark(at)
            }
        }
    };
    if action == Disposition::Delete {
        labels.clear();
    }
    Step {
        name: s.member.id.clone(),
        decision,
        action,
        labels,
    }
}

/// Counts of a plan, for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Kept (including rescued and held).
    pub kept: usize,
    /// Newly marked.
    pub marked: usize,
    /// Marked earlier, not yet due.
    pub pending: usize,
    /// Deleted.
    pub deleted: usize,
    /// Rescued (mark removed).
    pub rescued: usize,
    /// Protected from deletion.
    pub held: usize,
    /// Changes that failed or were not made (interrupted): counted nowhere else.
    pub failed: usize,
}

/// Counts the actions of a plan.
pub fn tally<'a>(steps: impl IntoIterator<Item = &'a Step>) -> Tally {
    let mut t = Tally::default();
    for s in steps {
        match s.action {
            Disposition::Keep => t.kept += 1,
            Disposition::Rescue => {
                t.kept += 1;
                t.rescued += 1;
            }
            Disposition::Mark(_) => t.marked += 1,
            Disposition::Pending(_) => t.pending += 1,
            Disposition::Delete => t.deleted += 1,
            Disposition::Hold(_) => {
                t.kept += 1;
                t.held += 1;
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZone;
    use pretty_assertions::assert_eq;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn snap(name: &str, time: &str) -> Candidate {
        Candidate {
            member: Member {
                id: name.into(),
                time: ts(time),
                ready: true,
                pinned: false,
            },
            labels: BTreeMap::new(),
            protections: Vec::new(),
        }
    }

    fn ctx(now: &str) -> Clock {
        Clock {
            tz: TimeZone::UTC,
            now: ts(now),
            not_ready_grace: HumanDuration::from_secs(3600),
        }
    }

    const DAY: HumanDuration = HumanDuration::from_secs(86_400);

    fn daily(n: u32) -> Policy {
        Policy {
            daily: n,
            ..Policy::default()
        }
    }

    #[test]
    fn kept_snapshots_get_period_labels_and_lose_stale_ones() {
        let mut old = snap("a", "2026-11-20T10:00:00Z");
        old.labels
            .insert("kentledge.io/keep-weekly".into(), "2026-W46".into());
        let plan = plan_series(
            &[old, snap("b", "2026-11-21T10:00:00Z")],
            &daily(2),
            &ctx("2026-11-21T12:00:00Z"),
            DAY,
        );
        assert_eq!(plan[0].action, Disposition::Keep);
        assert_eq!(
            plan[0].labels,
            BTreeMap::from([
                (
                    "kentledge.io/keep-daily".to_owned(),
                    Some("2026-11-20".to_owned())
                ),
                ("kentledge.io/keep-weekly".to_owned(), None),
            ])
        );
    }

    #[test]
    fn mark_then_sweep_across_two_runs() {
        let snaps = [
            snap("a", "2026-11-19T10:00:00Z"),
            snap("b", "2026-11-21T10:00:00Z"),
        ];
        let first = plan_series(&snaps, &daily(1), &ctx("2026-11-21T12:00:00Z"), DAY);
        assert_eq!(
            first[0].action,
            Disposition::Mark(ts("2026-11-22T12:00:00Z"))
        );
        assert_eq!(
            first[0].labels[DELETE_AFTER],
            Some("20261122T120000Z".to_owned())
        );
        // Apply the labels, run again before and after the mark.
        let mut marked = snaps.clone();
        marked[0]
            .labels
            .insert(DELETE_AFTER.into(), "20261122T120000Z".into());
        let early = plan_series(&marked, &daily(1), &ctx("2026-11-22T11:59:59Z"), DAY);
        assert_eq!(
            early[0].action,
            Disposition::Pending(ts("2026-11-22T12:00:00Z"))
        );
        assert!(
            early[0].labels.is_empty(),
            "a pending snapshot needs no API call"
        );
        let due = plan_series(&marked, &daily(1), &ctx("2026-11-22T12:00:00Z"), DAY);
        assert_eq!(due[0].action, Disposition::Delete);
        assert_eq!(
            tally(&due),
            Tally {
                kept: 1,
                deleted: 1,
                ..Tally::default()
            }
        );
    }

    #[test]
    fn a_removed_mark_is_set_again_and_a_pin_rescues() {
        let snaps = [
            snap("a", "2026-11-19T10:00:00Z"),
            snap("b", "2026-11-21T10:00:00Z"),
        ];
        // Mark removed by hand: marked again from now, not deleted.
        let plan = plan_series(&snaps, &daily(1), &ctx("2026-11-25T00:00:00Z"), DAY);
        assert_eq!(
            plan[0].action,
            Disposition::Mark(ts("2026-11-26T00:00:00Z"))
        );
        // Pinned while marked: the mark goes.
        let mut pinned = snaps.clone();
        pinned[0].member.pinned = true;
        pinned[0]
            .labels
            .insert(DELETE_AFTER.into(), "20261120T000000Z".into());
        let plan = plan_series(&pinned, &daily(1), &ctx("2026-11-25T00:00:00Z"), DAY);
        assert_eq!(plan[0].action, Disposition::Rescue);
        assert_eq!(plan[0].labels[DELETE_AFTER], None);
    }

    #[test]
    fn a_marked_snapshot_back_in_retention_loses_its_mark() {
        let mut a = snap("a", "2026-11-19T10:00:00Z");
        a.labels
            .insert(DELETE_AFTER.into(), "20261122T120000Z".into());
        let plan = plan_series(
            &[a, snap("b", "2026-11-21T10:00:00Z")],
            &daily(7),
            &ctx("2026-11-21T12:00:00Z"),
            DAY,
        );
        assert_eq!(plan[0].action, Disposition::Rescue);
        assert_eq!(tally(&plan).rescued, 1);
    }

    #[test]
    fn protected_snapshots_are_held_not_deleted() {
        let mut a = snap("a", "2026-11-19T10:00:00Z");
        a.labels
            .insert(DELETE_AFTER.into(), "20261120T000000Z".into());
        a.protections
            .push(Protection::CloneSource("restore-a".into()));
        let plan = plan_series(
            &[a, snap("b", "2026-11-21T10:00:00Z")],
            &daily(1),
            &ctx("2026-11-25T00:00:00Z"),
            DAY,
        );
        assert_eq!(
            plan[0].action,
            Disposition::Hold(vec![Protection::CloneSource("restore-a".into())])
        );
        assert_eq!(plan[0].decision.explain(), "outside policy");
        assert_eq!(tally(&plan).held, 1);
    }

    #[test]
    fn never_ready_snapshots_are_deleted_after_their_grace_without_a_mark() {
        let mut broken = snap("broken", "2026-11-21T08:00:00Z");
        broken.member.ready = false;
        let snaps = [snap("ok", "2026-11-21T07:00:00Z"), broken];
        let plan = plan_series(&snaps, &daily(3), &ctx("2026-11-21T08:30:00Z"), DAY);
        assert_eq!(plan[1].action, Disposition::Keep, "within its grace");
        let plan = plan_series(&snaps, &daily(3), &ctx("2026-11-21T09:00:00Z"), DAY);
        assert_eq!(plan[1].action, Disposition::Delete);
        assert_eq!(
            plan[0].action,
            Disposition::Keep,
            "the ready one never depended on it"
        );
    }

    #[test]
    fn an_unreadable_mark_is_replaced() {
        let mut a = snap("a", "2026-11-19T10:00:00Z");
        a.labels.insert(DELETE_AFTER.into(), "soon".into());
        let plan = plan_series(
            &[a, snap("b", "2026-11-21T10:00:00Z")],
            &daily(1),
            &ctx("2026-11-21T12:00:00Z"),
            DAY,
        );
        assert_eq!(
            plan[0].action,
            Disposition::Mark(ts("2026-11-22T12:00:00Z"))
        );
    }
}
