//! The retention engine: which members of one series to keep, and every reason why, with the
//! semantics of `borg prune` (1.2 – 1.4). It knows nothing of what it prunes: VolumeSnapshots
//! and repository archives feed it the same plain members.
//!
//! borg's algorithm, reproduced exactly: `within` keeps every member younger than the interval;
//! then each rule in the order last (per-second periods, as borg's `--keep-last` =
//! `--keep-secondly`), hourly, daily, weekly (ISO `%G-%V`), monthly, yearly walks the members
//! newest first and keeps the newest member of each distinct period until it has kept N members
//! that no earlier rule kept; a rule that runs out of periods before N also keeps the oldest
//! member. Periods are computed in the given time zone.
//!
//! kentledge's additions: members that are not ready never count and never take a period (like
//! borg's checkpoint archives); they are kept until a grace period after their time, then
//! deleted. Pinned members and the newest ready member are always kept. `keep: all` keeps every
//! ready member.

use std::fmt;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::config::{KeepAll, Retention};
use crate::model::units::HumanDuration;
use crate::mover::job;

pub use crate::model::policy::{Policy, Rule};

/// One member of a series, as the engine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// A unique id within the series (the tie-breaker for equal times).
    pub id: String,
    /// When the member's data was cut.
    pub time: Timestamp,
    /// Whether the member is usable (a snapshot's `readyToUse`).
    pub ready: bool,
    /// Whether a person pinned it (never deleted).
    pub pinned: bool,
}

impl From<&Retention> for Policy {
    /// The same numbers a prune job's policy gives (one mapping for snapshots and archives).
    fn from(r: &Retention) -> Policy {
        job::Retention::from(r).policy()
    }
}

impl From<&Retention> for job::Retention {
    /// The config's policy as a prune job carries it.
    fn from(r: &Retention) -> job::Retention {
        job::Retention {
            keep: r.keep.map(|KeepAll::All| job::KeepAll::All),
            last: r.last,
            hourly: r.hourly,
            daily: r.daily,
            weekly: r.weekly,
            monthly: r.monthly,
            yearly: r.yearly,
            within: r.within,
        }
    }
}

/// Why a member is kept or deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `keep: all`.
    KeepAll,
    /// Pinned by a person.
    Pinned,
    /// The newest ready member is always kept.
    NewestReady,
    /// Younger than `within`.
    Within(HumanDuration),
    /// Kept by `last`, as the n-th newest.
    Last(u32),
    /// The newest member of a period of a rule. `counted` is false when an earlier rule had
    /// already kept it (borg does not count it again); `oldest` marks borg's fallback that keeps
    /// the oldest member when a rule runs out of periods.
    Period {
        /// The rule.
        rule: Rule,
        /// The period, e.g. `2026-W47`.
        period: String,
        /// Whether this rule counted it toward its N.
        counted: bool,
        /// borg's "[oldest]" fallback.
        oldest: bool,
    },
    /// Not ready yet; kept until the grace period ends.
    NotReady {
        /// When the grace period ends.
        until: Timestamp,
    },
    /// Not ready and the grace period has passed.
    NotReadyExpired {
        /// When the grace period ended.
        since: Timestamp,
    },
    /// No rule keeps it.
    OutsidePolicy,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::KeepAll => f.write_str("keep all"),
            Reason::Pinned => f.write_str("pinned"),
            Reason::NewestReady => f.write_str("newest ready"),
            Reason::Within(d) => write!(f, "within {d}"),
            Reason::Last(n) => write!(f, "last {n}"),
            Reason::Period {
                rule,
                period,
                oldest,
                ..
            } => {
                write!(f, "{} {period}", rule.name())?;
                if *oldest {
                    f.write_str(" (oldest)")?;
                }
                Ok(())
            }
            Reason::NotReady { until } => write!(f, "not ready (kept until {until})"),
            Reason::NotReadyExpired { since } => {
                write!(f, "not ready (grace ended {since})")
            }
            Reason::OutsidePolicy => f.write_str("outside policy"),
        }
    }
}

/// The verdict on one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Keep (true) or delete (false).
    pub keep: bool,
    /// Every reason, the deciding one first.
    pub reasons: Vec<Reason>,
}

impl Decision {
    /// The periods that keep this member, per rule (for `kentledge.io/keep-<rule>` labels).
    pub fn periods(&self) -> impl Iterator<Item = (Rule, &str)> {
        self.reasons.iter().filter_map(|r| match r {
            Reason::Period { rule, period, .. } if *rule != Rule::Last => {
                Some((*rule, period.as_str()))
            }
            _ => None,
        })
    }

    /// The reasons joined for people: `daily 2026-11-21, weekly 2026-W47`.
    pub fn explain(&self) -> String {
        self.reasons
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The clock and zone of an evaluation.
#[derive(Clone, Debug)]
pub struct Clock {
    /// The time zone of periods.
    pub tz: TimeZone,
    /// The evaluation time (for `within` and grace periods).
    pub now: Timestamp,
    /// How long a member that is not ready is kept after its time.
    pub not_ready_grace: HumanDuration,
}

fn since(d: HumanDuration) -> SignedDuration {
    SignedDuration::from_secs(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Decides keep or delete for every member; the result is aligned with `members`.
pub fn evaluate(members: &[Member], policy: &Policy, ctx: &Clock) -> Vec<Decision> {
    let mut reasons: Vec<Vec<Reason>> = vec![Vec::new(); members.len()];
    let mut kept = vec![false; members.len()];

    // Ready members, newest first; equal times ordered by id so input order never matters.
    let mut ready: Vec<usize> = (0..members.len()).filter(|&i| members[i].ready).collect();
    ready.sort_by(|&a, &b| {
        (members[b].time, &members[b].id).cmp(&(members[a].time, &members[a].id))
    });

    if policy.keep_all {
        for &i in &ready {
            kept[i] = true;
            reasons[i].push(Reason::KeepAll);
        }
    }
    if let Some(w) = policy.within {
        let cutoff = ctx.now.saturating_sub(since(w)).unwrap_or(ctx.now);
        for &i in &ready {
            if members[i].time > cutoff {
                kept[i] = true;
                reasons[i].push(Reason::Within(w));
            }
        }
    }
    for rule in Rule::ALL {
        let n = rule.count(policy);
        if n == 0 {
            continue;
        }
        let mut counted = 0u32;
        let mut last_period: Option<String> = None;
        for &i in &ready {
            let period = rule.period(members[i].time, &ctx.tz);
            if last_period.as_deref() == Some(period.as_str()) {
                continue;
            }
            last_period = Some(period.clone());
            let newly = !kept[i];
            if newly {
                counted += 1;
                kept[i] = true;
            }
            match rule {
                Rule::Last if newly => reasons[i].push(Reason::Last(counted)),
                // A per-second "period" already kept by another rule says nothing to a reader.
                Rule::Last => {}
                _ => reasons[i].push(Reason::Period {
                    rule,
                    period,
                    counted: newly,
                    oldest: false,
                }),
            }
            if counted == n {
                break;
            }
        }
        // borg: a rule that ran out of periods also keeps the oldest member.
        if let Some(&oldest) = ready.last()
            && counted < n
            && !kept[oldest]
        {
            kept[oldest] = true;
            reasons[oldest].push(Reason::Period {
                rule,
                period: rule.period(members[oldest].time, &ctx.tz),
                counted: true,
                oldest: true,
            });
        }
    }
    if let Some(&newest) = ready.first() {
        kept[newest] = true;
        reasons[newest].push(Reason::NewestReady);
    }
    for (i, m) in members.iter().enumerate() {
        if m.pinned {
            kept[i] = true;
            reasons[i].insert(0, Reason::Pinned);
        }
        if !m.ready {
            let until = m
                .time
                .saturating_add(since(ctx.not_ready_grace))
                .unwrap_or(m.time);
            if until > ctx.now {
                kept[i] = true;
                reasons[i].push(Reason::NotReady { until });
            } else {
                reasons[i].push(Reason::NotReadyExpired { since: until });
            }
        }
        if !kept[i] && reasons[i].is_empty() {
            reasons[i].push(Reason::OutsidePolicy);
        }
    }
    kept.into_iter()
        .zip(reasons)
        .map(|(keep, reasons)| Decision { keep, reasons })
        .collect()
}

#[cfg(test)]
mod tests;
