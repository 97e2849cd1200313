//! `make bench`: planning retention for 100,000 snapshots over 1,000 PVCs (issue goal: well
//! under a second). Prints the best of several runs; no assertions (speed is measured, not tested).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use kentledge::model::units::HumanDuration;
use kentledge::plan::prune::{Candidate, plan_series, tally};
use kentledge::plan::retention::{Clock, Member, Policy};

fn main() {
    let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let series: Vec<Vec<Candidate>> = (0..1_000)
        .map(|p| {
            (0..100)
                .map(|i| Candidate {
                    member: Member {
                        id: format!("pvc-{p}-{i:03}"),
                        time: start
                            .checked_add(SignedDuration::from_hours(i * 7 + p % 5))
                            .unwrap(),
                        ready: i % 50 != 7,
                        pinned: i == 3,
                    },
                    labels: BTreeMap::new(),
                    protections: Vec::new(),
                })
                .collect()
        })
        .collect();
    let policy = Policy {
        last: 3,
        hourly: 24,
        daily: 7,
        weekly: 4,
        monthly: 12,
        yearly: 2,
        ..Policy::default()
    };
    let ctx = Clock {
        tz: TimeZone::get("Europe/Berlin").unwrap(),
        now: "2026-02-01T00:00:00Z".parse().unwrap(),
        not_ready_grace: HumanDuration::from_secs(86_400),
    };
    let mut best = Duration::MAX;
    let mut deleted_or_marked = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let mut total = 0;
        for s in &series {
            let plan = plan_series(s, &policy, &ctx, HumanDuration::from_secs(86_400));
            let t = tally(&plan);
            total += t.marked + t.deleted;
        }
        best = best.min(t.elapsed());
        deleted_or_marked = total;
    }
    println!(
        "retention plan: 100000 snapshots over 1000 PVCs in {:.1} ms (best of 5); {deleted_or_marked} to mark or delete",
        best.as_secs_f64() * 1000.0
    );
}
