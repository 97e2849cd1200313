//! The labels and annotations kentledge writes (prefix `kentledge.io/`), and the pure naming
//! rules for what it creates: run ids, snapshot names, label-safe values. Every object kentledge
//! creates carries managed-by, config and run, so selection, retention and the sweep of
//! leftovers are each one labelled list.

use std::fmt::Write as _;

use jiff::Timestamp;

use crate::model::names::{DNS1123_SUBDOMAIN_MAX, LABEL_VALUE_MAX};
use crate::model::policy::Rule;

/// `app.kubernetes.io/managed-by`.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY`].
pub const MANAGER: &str = "kentledge";
/// The config's `metadata.name`.
pub const CONFIG: &str = "kentledge.io/config";
/// The run that created the object.
pub const RUN: &str = "kentledge.io/run";
/// The source PVC of a snapshot (label-safe form of its name).
pub const PVC: &str = "kentledge.io/pvc";
/// Set to `true` by a person: never delete.
pub const PIN: &str = "kentledge.io/pin";
/// When prune may delete the snapshot (see [`label_time`]); remove it to rescue the snapshot.
pub const DELETE_AFTER: &str = "kentledge.io/delete-after";
/// Annotation: the kentledge version that created the object.
pub const VERSION_ANNOTATION: &str = "kentledge.io/version";
/// Annotation: the full source PVC name (the label may be shortened).
pub const PVC_ANNOTATION: &str = "kentledge.io/pvc-name";
/// Annotation: the hooks run around the snapshot and their results (JSON).
pub const HOOKS_ANNOTATION: &str = "kentledge.io/hooks";

/// Annotation a running kentledge command sets on a snapshot it reads (e.g. a backup's source).
pub const IN_USE_ANNOTATION: &str = "kentledge.io/in-use-by";

/// Label of a safety snapshot an in-place restore took (value: its run): pinned, never copied
/// offsite by `backup`.
pub const SAFETY_LABEL: &str = "kentledge.io/safety-snapshot";

/// Annotation on a workload an in-place restore stopped: what it was (JSON).
pub const STOPPED_ANNOTATION: &str = "kentledge.io/restore-stopped";

/// Annotation on a PVC an in-place restore is working on: its run and phase (JSON).
pub const IN_PROGRESS_ANNOTATION: &str = "kentledge.io/restore-in-progress";

/// The prefix of the per-repository label a backup writes on its source snapshot:
/// `backed-up.kentledge.io/<repository>=<time>`.
pub const BACKED_UP_PREFIX: &str = "backed-up.kentledge.io/";

/// The label a backup to `repository` writes on its source snapshot.
pub fn backed_up_label(repository: &str) -> String {
    format!("{BACKED_UP_PREFIX}{repository}")
}

/// The label that says which period of `rule` keeps a snapshot, e.g. `kentledge.io/keep-daily`.
pub fn keep_label(rule: Rule) -> String {
    format!("kentledge.io/keep-{}", rule.name())
}

/// A time as a label value: `20261122T100000Z` (basic ISO 8601, UTC; label values allow no `:`).
pub fn label_time(t: Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// Parses [`label_time`]'s format back.
pub fn parse_label_time(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    );
    iso.parse().ok()
}

/// A short, stable hash of a string (FNV-1a, 32 bits) as 8 lowercase hex digits.
pub fn short_hash(s: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// A run id: the UTC start time and a random suffix, label-safe and sortable,
/// e.g. `20261122t100000z-3f9a`.
pub fn run_id(start: Timestamp, random: u16) -> String {
    format!("{}-{random:04x}", label_time(start).to_lowercase())
}

/// A fresh run id, starting now.
pub fn new_run_id() -> String {
    run_id(Timestamp::now(), random_u16())
}

/// The selector of everything kentledge made for one config.
pub fn config_selector(config: &str) -> String {
    format!("{MANAGED_BY}={MANAGER},{CONFIG}={config}")
}

/// A little randomness for run ids (the clock's nanoseconds and the process id).
pub fn random_u16() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos ^ std::process::id().rotate_left(16)) as u16
}

/// `name` if it fits in `max`, else its first characters, a `-` and a hash of the whole, so
/// two long names never collide and the result still ends alphanumerically.
pub fn shorten(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let hash = short_hash(name);
    let keep = max - hash.len() - 1;
    let mut head: String = name.chars().take(keep).collect();
    while head.ends_with(['-', '.', '_']) {
        head.pop();
    }
    let mut out = head;
    let _ = write!(out, "-{hash}");
    out
}

/// A PVC name as a label value (at most 63 characters).
pub fn pvc_label_value(pvc: &str) -> String {
    shorten(pvc, LABEL_VALUE_MAX)
}

/// The name of a snapshot of `pvc` taken by run `run_id` at `time`:
/// `<pvc>-<yyyymmdd-hhmmss>-<run suffix>` in UTC, a valid DNS-1123 subdomain that sorts by time
/// within a PVC and never collides between two runs in the same second; shortened with a hash
/// when too long.
pub fn snapshot_name(pvc: &str, time: Timestamp, run_id: &str) -> String {
    let suffix: String = run_id
        .rsplit('-')
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect::<String>()
        .to_lowercase();
    let stamp = format!(
        "{}-{}",
        time.strftime("%Y%m%d-%H%M%S"),
        if suffix.is_empty() { "0" } else { &suffix }
    );
    let room = DNS1123_SUBDOMAIN_MAX - stamp.len() - 1;
    format!("{}-{stamp}", shorten(pvc, room))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::names::{check_dns1123_subdomain, check_label_value};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn label_times_round_trip_and_are_label_values() {
        let t = ts("2026-11-22T10:00:07Z");
        assert_eq!(label_time(t), "20261122T100007Z");
        assert_eq!(parse_label_time(&label_time(t)), Some(t));
        check_label_value(&label_time(t)).unwrap();
        assert_eq!(parse_label_time("2026-11-22"), None);
        assert_eq!(parse_label_time("20261122X100007Z"), None);
    }

    #[test]
    fn run_ids_are_label_values_and_sort_by_time() {
        let a = run_id(ts("2026-11-22T10:00:00Z"), 0xffff);
        let b = run_id(ts("2026-11-22T10:00:01Z"), 0);
        assert_eq!(a, "20261122t100000z-ffff");
        assert!(a < b);
        check_label_value(&a).unwrap();
    }

    #[test]
    fn snapshot_names_are_dns_names_sorted_by_time() {
        let t1 = ts("2026-11-22T09:59:59Z");
        let t2 = ts("2026-11-22T10:00:00Z");
        let run = run_id(t2, 0x3f9a);
        assert_eq!(
            snapshot_name("data-mariadb-0", t2, &run),
            "data-mariadb-0-20261122-100000-3f9a"
        );
        assert!(snapshot_name("data", t1, "x-ffff") < snapshot_name("data", t2, "x-0000"));
        assert_ne!(
            snapshot_name("data", t2, "x-0001"),
            snapshot_name("data", t2, "x-0002"),
            "two runs in one second"
        );
        check_dns1123_subdomain(&snapshot_name("data", t1, &run)).unwrap();
    }

    #[test]
    fn long_names_are_shortened_with_a_hash_and_stay_distinct() {
        let long_a = format!("{}-a", "x".repeat(260));
        let long_b = format!("{}-b", "x".repeat(260));
        let t = ts("2026-11-22T10:00:00Z");
        let (na, nb) = (
            snapshot_name(&long_a, t, "r-1"),
            snapshot_name(&long_b, t, "r-1"),
        );
        assert_eq!(na.len(), DNS1123_SUBDOMAIN_MAX);
        assert_ne!(na, nb);
        check_dns1123_subdomain(&na).unwrap();
        let label = pvc_label_value(&format!("{}-data", "p".repeat(70)));
        assert_eq!(label.len(), 63);
        check_label_value(&label).unwrap();
        // Shortening never leaves a separator before the hash.
        assert!(!shorten(&format!("{}-{}", "a".repeat(53), "b".repeat(20)), 63).contains("--"));
    }

    #[test]
    fn series_that_share_a_prefix_never_share_a_label() {
        // `db` and `db-wal` are different series: their labels are exact values, not prefixes.
        assert_ne!(pvc_label_value("db"), pvc_label_value("db-wal"));
        assert_eq!(keep_label(Rule::Weekly), "kentledge.io/keep-weekly");
    }
}
