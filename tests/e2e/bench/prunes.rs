//! P4 as `make bench` rows (nothing asserted about speed): `kentledge prune` of 10,000
//! snapshots over 100 PVCs on the local cluster, first the run that marks (a label patch on
//! every snapshot: a keep reason or a deletion mark), then the run that sweeps the marked. Each
//! run's wall time, its API requests as the API server's log of the `kentledge` ServiceAccount
//! counts them (against the writes it made plus the pages of one paginated list), and its peak
//! resident memory (`wait4` of the process) against 100 MB.

use std::time::Instant;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use kentledge::model::snapshots::VolumeSnapshot;
use kube::api::Api;

use super::row;
use crate::prune::{NOW, labels, seed_with, setup};
use crate::support::run_measured;

const PVCS: usize = 100;
const PER_PVC: usize = 100;
/// Objects per page of kentledge's lists.
const PAGE: usize = 500;

#[test]
#[ignore = "a benchmark: make bench"]
fn p4_prune_of_ten_thousand_snapshots_over_a_hundred_pvcs() {
    let names: Vec<String> = (0..PVCS).map(|i| format!("data-{i:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let tc = setup("p4", &refs);
    let now: Timestamp = NOW.parse().unwrap();
    let api: Api<VolumeSnapshot> = Api::namespaced(tc.client(), &tc.namespace);
    let seeds: Vec<(String, Timestamp)> = names
        .iter()
        .flat_map(|p| {
            (1..=PER_PVC).map(move |h| (p.clone(), now - SignedDuration::from_hours(h as i64)))
        })
        .collect();
    tc.block_on(
        futures::stream::iter(seeds).for_each_concurrent(32, |(pvc, time)| {
            let api = api.clone();
            async move {
                seed_with(&api, "p4", &pvc, time, true).await;
            }
        }),
    );
    assert_eq!(labels(&tc).len(), PVCS * PER_PVC);
    let cfg = tc.config(
        "p4",
        &format!(
            "  snapshots:\n    targets: [{}]\n    retention: {{hourly: 24, daily: 7}}\n    deleteAfter: 1h\n    maxDeletesPerSecond: 1000\n",
            names.iter().map(|n| format!("{{pvc: {n}}}")).collect::<Vec<_>>().join(", ")
        ),
    );
    let total = PVCS * PER_PVC;
    let pages = total.div_ceil(PAGE);
    let prune = |at: &str, what: &str| {
        let before = tc.kentledge_requests().len();
        let t = Instant::now();
        let (r, rss) = run_measured(tc.kentledge(&cfg).args(["prune", "--now", at]));
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let made = tc.kentledge_requests().split_off(before);
        let count = |verb: &str| made.iter().filter(|m| m.starts_with(verb)).count();
        let (patches, deletes) = (count("PATCH "), count("DELETE "));
        let lists = made
            .iter()
            .filter(|m| m.starts_with("GET ") && m.contains("volumesnapshots?"))
            .count();
        row(
            &format!("P4 prune of {total} snapshots, {what}: requests"),
            made.len() as f64,
            (patches + deletes + pages) as f64,
            "req",
            "≈ its writes + one paginated list",
        );
        row(
            &format!("P4 … {what}: snapshot list pages vs {total}/{PAGE}"),
            lists as f64,
            pages as f64,
            "req",
            "one paginated list",
        );
        row(
            &format!("P4 … {what}: peak RSS vs 100 MB"),
            rss as f64 / 1e6,
            100.0,
            "MB",
            "<= 1.0x",
        );
        row(
            &format!("P4 … {what}: wall time ({patches} patches, {deletes} deletions)"),
            secs,
            secs,
            "s",
            "(the time)",
        );
        (patches, deletes)
    };
    let (marked_patches, _) = prune(NOW, "marking");
    assert!(marked_patches > 0, "the first prune marks");
    let later = (now + SignedDuration::from_hours(2)).to_string();
    let (_, deleted) = prune(&later, "sweeping");
    assert!(deleted > 0, "the second prune deletes the marked");
    assert_eq!(
        labels(&tc).len(),
        total - deleted,
        "only the deleted are gone"
    );
}
