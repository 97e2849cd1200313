//! `retention`: the borg-prune-style policy used by snapshots and repositories.

use serde::{Deserialize, Serialize};

use crate::model::units::HumanDuration;

/// A retention policy, with the semantics of `borg prune` (per rule, the newest member of each of
/// the last N periods that have a member; rules combine by union).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Retention {
    /// `all`: never prune this series. Excludes every other rule.
    #[serde(default)]
    pub keep: Option<KeepAll>,
    /// Keep the newest N.
    #[serde(default)]
    pub last: Option<u32>,
    /// Keep the newest of each of the last N hours that have a member.
    #[serde(default)]
    pub hourly: Option<u32>,
    /// Keep the newest of each of the last N days that have a member.
    #[serde(default)]
    pub daily: Option<u32>,
    /// Keep the newest of each of the last N ISO weeks that have a member.
    #[serde(default)]
    pub weekly: Option<u32>,
    /// Keep the newest of each of the last N months that have a member.
    #[serde(default)]
    pub monthly: Option<u32>,
    /// Keep the newest of each of the last N years that have a member.
    #[serde(default)]
    pub yearly: Option<u32>,
    /// Keep everything younger than this.
    #[serde(default)]
    pub within: Option<HumanDuration>,
}

/// The value `all` of `retention.keep`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeepAll {
    /// Keep everything.
    All,
}

impl std::fmt::Display for Retention {
    /// `keep all`, or the rules that are set, e.g. `last 3, daily 7, within 2d`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.keep.is_some() {
            return f.write_str("keep all");
        }
        let mut parts = Vec::new();
        for (name, n) in [
            ("last", self.last),
            ("hourly", self.hourly),
            ("daily", self.daily),
            ("weekly", self.weekly),
            ("monthly", self.monthly),
            ("yearly", self.yearly),
        ] {
            if let Some(n) = n {
                parts.push(format!("{name} {n}"));
            }
        }
        if let Some(w) = self.within {
            parts.push(format!("within {w}"));
        }
        f.write_str(&parts.join(", "))
    }
}
