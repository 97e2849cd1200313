//! The retention engine against the real `borg prune`: the same timestamps, the same policies,
//! the same time zone; every archive's keep/prune decision and deciding rule must agree.

use std::path::Path;
use std::process::Command;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use kentledge::model::units::HumanDuration;
use kentledge::plan::retention::{Clock, Member, Policy, Reason, evaluate};

/// A calendar with the hard cases: DST changes in Berlin, ISO week 53 of 2026, year ends
/// that differ between UTC and Berlin, several members per hour, day, week and month.
const TIMES: &[&str] = &[
    "2024-06-01T10:00:00Z",
    "2025-02-01T10:00:00Z",
    "2025-12-31T23:30:00Z", // 2026-01-01 in Berlin
    "2026-01-15T12:00:00Z",
    "2026-02-15T12:00:00Z",
    "2026-03-29T00:30:00Z", // 01:30 CET, before spring forward
    "2026-03-29T01:30:00Z", // 03:30 CEST, after
    "2026-04-15T12:00:00Z",
    "2026-06-15T12:00:00Z",
    "2026-09-15T12:00:00Z",
    "2026-10-25T00:15:00Z", // 02:15 CEST
    "2026-10-25T00:45:00Z", // 02:45 CEST
    "2026-10-25T01:15:00Z", // 02:15 CET: the same local hour again
    "2026-10-25T01:45:00Z", // 02:45 CET
    "2026-12-20T12:00:00Z",
    "2026-12-24T12:00:00Z",
    "2026-12-28T12:00:00Z", // Monday of 2026-W53
    "2026-12-30T08:00:00Z",
    "2026-12-30T12:00:00Z",
    "2026-12-31T22:30:00Z", // 23:30 in Berlin
    "2026-12-31T23:30:00Z", // 2027-01-01 00:30 in Berlin
    "2027-01-02T12:00:00Z", // still 2026-W53
    "2027-01-03T09:00:00Z",
    "2027-01-03T09:40:00Z",
    "2027-01-03T10:20:00Z",
    "2027-01-04T12:00:00Z", // 2027-W01
];

struct Case {
    tz: &'static str,
    policy: Policy,
}

fn policy(last: u32, hourly: u32, daily: u32, weekly: u32, monthly: u32, yearly: u32) -> Policy {
    Policy {
        keep_all: false,
        last,
        hourly,
        daily,
        weekly,
        monthly,
        yearly,
        within: None,
    }
}

fn borg_args(p: &Policy) -> Vec<String> {
    let mut args = Vec::new();
    for (flag, n) in [
        ("--keep-last", p.last),
        ("--keep-hourly", p.hourly),
        ("--keep-daily", p.daily),
        ("--keep-weekly", p.weekly),
        ("--keep-monthly", p.monthly),
        ("--keep-yearly", p.yearly),
    ] {
        if n > 0 {
            args.push(format!("{flag}={n}"));
        }
    }
    if let Some(w) = p.within {
        args.push(format!("--keep-within={}H", w.as_secs() / 3600));
    }
    args
}

fn borg(base: &Path) -> Command {
    let mut c = Command::new("borg");
    c.env("BORG_BASE_DIR", base)
        .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
        .env("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes")
        .env_remove("BORG_REPO")
        .env_remove("BORG_PASSPHRASE");
    c
}

fn ok(c: &mut Command) -> String {
    let out = c
        .output()
        .expect("borg is installed (make install-test-deps)");
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // borg --list writes to stderr
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

/// Parses `borg prune --list` into (archive, Some(rule)) for kept and (archive, None) for pruned.
fn parse_prune_list(text: &str) -> Vec<(String, Option<String>)> {
    text.lines()
        .filter_map(|l| {
            if let Some(rest) = l.strip_prefix("Keeping archive (rule: ") {
                let (rule, after) = rest.split_once(" #")?;
                let name = after.split_once("):")?.1.split_whitespace().next()?;
                Some((name.to_owned(), Some(rule.to_owned())))
            } else if let Some(rest) = l.strip_prefix("Would prune:") {
                Some((rest.split_whitespace().next()?.to_owned(), None))
            } else {
                None
            }
        })
        .collect()
}

/// borg's name for the rule that decided a kept member.
fn borg_rule(reasons: &[Reason]) -> Option<String> {
    reasons.iter().find_map(|r| match r {
        Reason::Within(_) => Some("within".to_owned()),
        Reason::Last(_) => Some("secondly".to_owned()),
        Reason::Period {
            rule,
            counted: true,
            oldest,
            ..
        } => Some(format!(
            "{}{}",
            rule.name(),
            if *oldest { "[oldest]" } else { "" }
        )),
        _ => None,
    })
}

#[test]
fn decisions_match_borg_prune_archive_by_archive() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let base = dir.path().join("base");
    ok(borg(&base).args(["init", "--encryption=none"]).arg(&repo));
    let members: Vec<Member> = TIMES
        .iter()
        .enumerate()
        .map(|(i, t)| Member {
            id: format!("a{i:02}"),
            time: t.parse().unwrap(),
            ready: true,
            pinned: false,
        })
        .collect();
    for m in &members {
        let stamp = m.time.strftime("%Y-%m-%dT%H:%M:%S").to_string();
        ok(borg(&base)
            .args(["create", "--timestamp", &stamp])
            .arg(format!("{}::{}", repo.display(), m.id))
            .arg(&empty));
    }
    let cases = [
        Case {
            tz: "Europe/Berlin",
            policy: policy(0, 0, 7, 4, 6, 3),
        },
        Case {
            tz: "UTC",
            policy: policy(0, 0, 7, 4, 6, 3),
        },
        Case {
            tz: "Europe/Berlin",
            policy: policy(3, 5, 3, 0, 0, 0),
        },
        Case {
            tz: "Europe/Berlin",
            policy: policy(0, 0, 0, 30, 0, 0),
        },
        Case {
            tz: "Europe/Berlin",
            policy: policy(0, 48, 0, 0, 0, 0),
        },
        Case {
            tz: "UTC",
            policy: policy(0, 48, 0, 0, 0, 0),
        },
        Case {
            tz: "Europe/Berlin",
            policy: policy(0, 0, 0, 0, 3, 10),
        },
        Case {
            tz: "UTC",
            policy: policy(0, 0, 0, 0, 0, 2),
        },
        Case {
            tz: "America/New_York",
            policy: policy(2, 0, 2, 2, 2, 0),
        },
        Case {
            tz: "Europe/Berlin",
            policy: policy(50, 0, 0, 0, 0, 0),
        },
    ];
    for case in cases {
        let text = ok(borg(&base)
            .env("TZ", case.tz)
            .args(["prune", "--dry-run", "--list"])
            .args(borg_args(&case.policy))
            .arg(&repo));
        let borg_says = parse_prune_list(&text);
        assert_eq!(
            borg_says.len(),
            members.len(),
            "could not read borg's list:\n{text}"
        );
        let ctx = Clock {
            tz: TimeZone::get(case.tz).unwrap(),
            now: Timestamp::now(),
            not_ready_grace: HumanDuration::from_secs(3600),
        };
        let ours = evaluate(&members, &case.policy, &ctx);
        for (name, borg_rule_name) in borg_says {
            let i = members.iter().position(|m| m.id == name).unwrap();
            let d = &ours[i];
            let ours_rule = if d.keep { borg_rule(&d.reasons) } else { None };
            assert_eq!(
                ours_rule,
                borg_rule_name,
                "{} in {} with {:?}: borg and kentledge disagree on {} ({}); kentledge says: {}",
                name,
                case.tz,
                case.policy,
                name,
                members[i].time,
                d.explain()
            );
        }
    }
}
