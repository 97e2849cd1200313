//! `kentledge status` on the local test cluster with real borg and restic repositories:
//! freshness from the snapshots, their backed-up labels and the repositories' archives (never
//! from a process's memory), the exit code, and the Prometheus exposition format checked by
//! the real `promtool check metrics`.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::backup::{empty_pvc, passphrase_secret};
use crate::cluster::TestCluster;
use crate::support::run;

fn spec(within: &str) -> String {
    format!(
        r#"  snapshots:
    targets: [{{pvc: data}}]
  repositories:
    - name: borg-local
      borg:
        pvc: {{claimName: borg-repo, path: shop}}
        passphrase: {{secret: repo-pass, key: passphrase}}
        init: true
    - name: restic-local
      restic:
        pvc: {{claimName: restic-repo}}
        password: {{secret: repo-pass, key: passphrase}}
        init: true
  offsite:
    volumes:
      repositories: [borg-local, restic-local]
  status:
    snapshotsWithin: {within}
    offsiteWithin: {within}
"#
    )
}

/// A cluster with a PVC `data` holding a tree, the repositories' PVCs, and the config
/// (fresh within 1h).
fn cluster() -> (TestCluster, std::path::PathBuf) {
    let tc = TestCluster::start("shop");
    passphrase_secret(&tc);
    let data = tc.pvc_with_files("data", &[], &[]);
    crate::tree::build(&data);
    empty_pvc(&tc, "borg-repo");
    empty_pvc(&tc, "restic-repo");
    let cfg = tc.config("shop", &spec("1h"));
    (tc, cfg)
}

#[test]
fn status_says_what_is_fresh_from_cluster_and_repository_state_and_prometheus_reads_it() {
    let (tc, cfg) = cluster();
    // Nothing yet: never snapshotted, never copied (the repositories do not exist yet either).
    let r = run(tc.kentledge(&cfg).arg("status"));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let r = run(tc.kentledge(&cfg).arg("snapshot"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = run(tc.kentledge(&cfg).arg("backup"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    let r = run(tc.kentledge(&cfg).args(["status", "-o", "json"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["fresh"], true, "{v}");
    let data = v["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "data")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(data["snapshotFresh"], true, "{data}");
    let copies = data["copies"].as_array().unwrap();
    assert_eq!(copies.len(), 2, "{data}");
    for c in copies {
        assert_eq!(c["fresh"], true, "{c}");
        assert!(c["ageSeconds"].as_i64().unwrap() < 600, "{c}");
    }
    let text = run(tc.kentledge(&cfg).arg("status"));
    assert_eq!(text.code, 0);
    assert!(
        text.stdout.contains("all 1 series fresh"),
        "{}",
        text.stdout
    );

    // The exposition format, as promtool reads it.
    let p = run(tc.kentledge(&cfg).args(["status", "--prometheus"]));
    assert_eq!(p.code, 0, "{}{}", p.stdout, p.stderr);
    assert!(
        p.stdout.contains("kentledge_series_fresh{config=\"shop\",namespace=\"shop\",kind=\"volume\",series=\"data\"} 1"),
        "{}",
        p.stdout
    );
    assert!(
        p.stdout.contains("kentledge_repository_listed{config=\"shop\",namespace=\"shop\",repository=\"restic-local\"} 1"),
        "{}",
        p.stdout
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (install prometheus: make install-test-deps)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(p.stdout.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // From the cluster alone (no mover): the backed-up labels say the same.
    let r = run(tc.kentledge(&cfg).args(["status", "--snapshots-only"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    // With a window the copies have left, they are stale and the exit code says so.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let strict = tc.config("shop", &spec("1s"));
    let r = run(tc.kentledge(&strict).arg("status"));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("STALE") && r.stdout.contains("1 of 1 series not fresh"),
        "{}",
        r.stdout
    );
}

/// The value of the first sample of `metric` whose labels hold every `labels` pair.
fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .find(|l| labels.iter().all(|p| l.contains(p)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn runs_push_their_results_to_a_real_pushgateway_and_a_failed_push_is_said() {
    let pgw = crate::servers::pushgateway();
    let url = format!("http://127.0.0.1:{}", pgw.port);
    let (tc, cfg) = cluster();
    let r = run(tc.kentledge(&cfg).args(["snapshot", "--pushgateway", &url]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = run(tc.kentledge(&cfg).args(["backup", "--pushgateway", &url]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("results pushed"), "{}", r.stderr);
    let m = crate::servers::http_get(pgw.port, "/metrics");
    let group = ["job=\"kentledge\"", "config=\"shop\"", "namespace=\"shop\""];
    let with = |extra: &[&str]| -> Vec<String> {
        group.iter().chain(extra).map(|s| (*s).to_owned()).collect()
    };
    let get = |metric: &str, extra: &[&str]| {
        let labels = with(extra);
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        sample(&m, metric, &labels)
    };
    assert_eq!(
        get("kentledge_run_exit_code", &["command=\"backup\""]),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        get("kentledge_run_exit_code", &["command=\"snapshot\""]),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        get(
            "kentledge_target_success",
            &[
                "command=\"snapshot\"",
                "kind=\"snapshot\"",
                "series=\"data\""
            ]
        ),
        Some(1.0),
        "{m}"
    );
    for repo in ["borg-local", "restic-local"] {
        let r = format!("repository=\"{repo}\"");
        assert_eq!(
            get(
                "kentledge_target_success",
                &[
                    "command=\"backup\"",
                    "kind=\"volume\"",
                    "series=\"data\"",
                    &r
                ]
            ),
            Some(1.0),
            "{m}"
        );
        let bytes = get("kentledge_target_bytes", &["command=\"backup\"", &r]).unwrap();
        assert!(bytes >= 6.0 * 1024.0 * 1024.0, "{bytes}: {m}");
    }
    assert!(get("kentledge_run_duration_seconds", &["command=\"backup\""]).unwrap() > 0.0);

    // A failed backup pushes its failure; an unreachable Pushgateway is said, and the run's
    // exit code stays its own.
    // (restic-local on an empty volume, with init off: "the repository does not exist".)
    empty_pvc(&tc, "restic-empty");
    let mut broken = spec("1h").replace("claimName: restic-repo", "claimName: restic-empty");
    let i = broken.rfind("init: true").unwrap();
    broken.replace_range(i..i + "init: true".len(), "init: false");
    let broken = tc.config("shop", &broken);
    // A new snapshot: the last one is copied already.
    let r = run(tc.kentledge(&cfg).arg("snapshot"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = run(tc
        .kentledge(&broken)
        .args(["backup", "--pushgateway", &url]));
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    let m = crate::servers::http_get(pgw.port, "/metrics");
    assert_eq!(
        sample(&m, "kentledge_run_exit_code", &["command=\"backup\""]),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "kentledge_target_success",
            &["command=\"backup\"", "repository=\"restic-local\""]
        ),
        Some(0.0),
        "{m}"
    );
    let dead = format!("http://127.0.0.1:{}", crate::servers::free_port());
    let r = run(tc
        .kentledge(&cfg)
        .args(["snapshot", "--pushgateway", &dead]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("the results were not pushed to the Pushgateway"),
        "{}",
        r.stderr
    );
}
