//! Scale: one `snapshot` run and one `backup` run of 100 PVCs. The backup keeps to
//! `mover.concurrency` and to one writer at a time per borg repository (while restic's writers
//! run side by side), copies every volume to both repositories, and sends its API requests at
//! a steady rate: no request storm, counted per second in the API server's request log.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher;

use crate::backup::{empty_pvc, leftovers, passphrase_secret, pvc_repository, snapshot_labels};
use crate::cluster::TestCluster;
use crate::support::run;

const PVCS: usize = 100;
const CONCURRENCY: usize = 4;

/// What [`Movers`] saw: the most at once per repository and in all, and how many there were.
type Counted = (BTreeMap<String, usize>, usize, usize);

/// The most mover pods that were at work at once (created and not yet finished), per
/// repository and in all, from a watch of every mover pod's changes.
struct Movers {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<std::thread::JoinHandle<Counted>>,
}

impl Movers {
    fn watch(tc: &TestCluster) -> Movers {
        let pods: Api<Pod> = Api::namespaced(tc.client(), &tc.namespace);
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, started) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let cfg = watcher::Config::default().labels("kentledge.io/role=mover");
                let mut events = watcher(pods, cfg).boxed();
                // name → repository, for the pods at work now.
                let mut working: BTreeMap<String, String> = BTreeMap::new();
                let mut seen = BTreeSet::new();
                let mut most: BTreeMap<String, usize> = BTreeMap::new();
                let mut most_in_all = 0;
                loop {
                    let event = tokio::select! {
                        _ = &mut stopped => break,
                        e = events.next() => e,
                    };
                    let pod = match event {
                        Some(Ok(watcher::Event::InitDone)) => {
                            let _ = ready.send(());
                            continue;
                        }
                        Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => p,
                        Some(Ok(watcher::Event::Delete(p))) => {
                            working.remove(&p.metadata.name.unwrap_or_default());
                            continue;
                        }
                        Some(Ok(watcher::Event::Init)) => continue,
                        Some(Err(e)) => panic!("watching mover pods: {e}"),
                        None => break,
                    };
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
                    let done = matches!(phase.as_deref(), Some("Succeeded" | "Failed"));
                    if done || pod.metadata.deletion_timestamp.is_some() {
                        working.remove(&name);
                        continue;
                    }
                    let repository = pod
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("kentledge.io/repository").cloned())
                        .unwrap_or_default();
                    seen.insert(name.clone());
                    working.insert(name, repository);
                    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
                    for r in working.values() {
                        *per.entry(r).or_default() += 1;
                    }
                    for (r, n) in per {
                        let m = most.entry(r.to_owned()).or_default();
                        *m = (*m).max(n);
                    }
                    most_in_all = most_in_all.max(working.len());
                }
                (most, most_in_all, seen.len())
            })
        });
        started
            .recv_timeout(Duration::from_secs(20))
            .expect("the watch of mover pods started");
        Movers {
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// Per repository, in all, and how many mover pods there were.
    fn finish(mut self) -> Counted {
        let _ = self.stop.take().unwrap().send(());
        self.handle.take().unwrap().join().unwrap()
    }
}

/// The most requests that arrived within any one second, and the first of them.
fn peak_per_second(arrivals: &[Instant]) -> (usize, usize) {
    let (mut most, mut at) = (0, 0);
    let mut first = 0;
    for (i, t) in arrivals.iter().enumerate() {
        while *t - arrivals[first] >= Duration::from_secs(1) {
            first += 1;
        }
        if i + 1 - first > most {
            (most, at) = (i + 1 - first, first);
        }
    }
    (most, at)
}

/// Requests by method and resource (names and queries left out), most first: what a busy second
/// was made of.
fn kinds(requests: &[String]) -> Vec<(usize, String)> {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for r in requests {
        let (method, url) = r.split_once(' ').unwrap_or((r, ""));
        let path = url.split('?').next().unwrap_or(url);
        let parts: Vec<&str> = path.split('/').collect();
        // …/namespaces/NS/RESOURCE[/NAME[/SUB]]: keep the resource and the subresource.
        let at = parts
            .iter()
            .position(|p| *p == "namespaces")
            .map_or(0, |i| i + 2);
        let resource = parts.get(at).copied().unwrap_or(path);
        let sub = parts
            .get(at + 2)
            .map(|s| format!("/{s}"))
            .unwrap_or_default();
        let watch = if url.contains("watch=true") {
            " (watch)"
        } else {
            ""
        };
        *by.entry(format!("{method} {resource}{sub}{watch}"))
            .or_default() += 1;
    }
    let mut v: Vec<(usize, String)> = by.into_iter().map(|(k, n)| (n, k)).collect();
    v.sort_by(|a, b| b.cmp(a));
    v
}

#[test]
fn a_hundred_pvcs_are_snapshotted_and_copied_within_the_movers_concurrency_one_borg_writer_at_a_time_and_no_request_storm()
 {
    let tc = TestCluster::start("scale");
    passphrase_secret(&tc);
    let names: Vec<String> = (0..PVCS).map(|i| format!("data-{i:03}")).collect();
    for n in &names {
        tc.pvc_with_files(n, &[("app", "scale")], &[("file", &format!("{n}\n"))]);
    }
    empty_pvc(&tc, "repos");
    let cfg = tc.config(
        "scale",
        &format!(
            "  snapshots:\n    targets: [{{selector: {{matchLabels: {{app: scale}}}}}}]\n  repositories:\n{}{}  offsite:\n    volumes:\n      repositories: [borg, restic]\n  mover:\n    concurrency: {CONCURRENCY}\n",
            pvc_repository("borg", "borg", "borg", &["init: true"]),
            pvc_repository("restic", "restic", "restic", &["init: true"]),
        ),
    );

    let before = tc.kentledge_requests().len();
    let r = run(tc.kentledge(&cfg).arg("snapshot"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let snapshot_requests = tc.kentledge_requests().len() - before;
    let (snapshot_peak, _) = peak_per_second(&tc.kentledge_arrivals()[before..]);

    let movers = Movers::watch(&tc);
    let before = tc.kentledge_requests().len();
    let started = Instant::now();
    let r = run(tc.kentledge(&cfg).args(["backup", "-o", "json"]));
    let took = started.elapsed();
    let (most, most_in_all, pods) = movers.finish();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let made = tc.kentledge_requests().split_off(before);
    let backup_requests = made.len();
    let (backup_peak, from) = peak_per_second(&tc.kentledge_arrivals()[before..]);
    let busiest = kinds(&made[from..from + backup_peak]);
    eprintln!(
        "snapshot: {snapshot_requests} requests, at most {snapshot_peak}/s; backup: {pods} movers in {took:?}, {backup_requests} requests, at most {backup_peak}/s; movers at once {most:?}, {most_in_all} in all; the busiest second: {busiest:?}"
    );

    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let jobs = report["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2 * PVCS, "a job per volume and repository");
    assert!(jobs.iter().all(|j| j["ok"] == true), "{report}");
    assert_eq!(pods, 2 * PVCS, "a mover per job");
    assert_eq!(most.get("borg"), Some(&1), "one borg writer at a time");
    assert!(most_in_all <= CONCURRENCY, "{most_in_all} movers at once");
    assert!(
        most.get("restic").is_some_and(|&n| n > 1),
        "restic's movers run side by side: {most:?}"
    );
    let api: Api<kentledge::model::snapshots::VolumeSnapshot> =
        Api::namespaced(tc.client(), &tc.namespace);
    let snapshots = tc.block_on(api.list(&Default::default())).unwrap().items;
    assert_eq!(snapshots.len(), PVCS);
    for s in &snapshots {
        let labels = snapshot_labels(&tc, s.metadata.name.as_deref().unwrap());
        for repo in ["borg", "restic"] {
            assert!(
                labels.contains_key(&format!("backed-up.kentledge.io/{repo}")),
                "{:?} is copied to {repo}",
                s.metadata.name
            );
        }
    }
    assert!(
        leftovers(&tc).is_empty(),
        "left behind: {:?}",
        leftovers(&tc)
    );
    // No storm: P5's budget for the snapshot run; for the backup a bounded number of requests
    // per copy (16: its writes, its clone's and pod's reads, the look when its log ends and the
    // reads until the pod's state shows it) plus the reads of each running mover pod (every 500 ms, and its clone every 2 s
    // until it starts: at most 2.5 a second of its run, so slow copies on a slow machine make
    // more), and in no second more than one write per snapshot (the in-use marks it sets one
    // after another at its start) and 50 more: what it writes as copies end is spread over
    // the run, and nothing polls faster.
    assert!(
        snapshot_requests <= 3 * PVCS + 10,
        "{snapshot_requests} requests"
    );
    let mover_seconds: f64 = jobs
        .iter()
        .map(|j| j["seconds"].as_f64().expect("each job's seconds"))
        .sum();
    let budget = 16 * 2 * PVCS + (2.5 * mover_seconds) as usize;
    assert!(
        backup_requests <= budget,
        "{backup_requests} requests for {} copies that ran {mover_seconds:.0} s in all (budget {budget})",
        2 * PVCS
    );
    assert!(
        backup_peak <= PVCS + 50,
        "{backup_peak} requests in one second: {busiest:?}; in all: {:?}",
        kinds(&made)
    );
}
