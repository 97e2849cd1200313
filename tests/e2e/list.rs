//! `kentledge list` on the local test cluster with real engines: every snapshot and archive of
//! the config's series, with retention and backed-up labels, in text and JSON; a repository
//! that cannot be listed is reported, the others are still listed, and the exit code is partial.

use std::path::Path;

use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};

use crate::backup::{empty_pvc, only_snapshot, passphrase_secret};
use crate::cluster::TestCluster;
use crate::support::run;

/// A namespace with PVC `data` (filled by `fill`), snapshotted once and copied to a borg and a
/// restic repository on PVCs: the cluster, the config's spec, and the snapshot's name.
pub fn backed_up(namespace: &str, fill: impl FnOnce(&Path)) -> (TestCluster, String, String) {
    let tc = TestCluster::start(namespace);
    passphrase_secret(&tc);
    fill(&tc.pvc_with_files("data", &[], &[]));
    empty_pvc(&tc, "borg-repo");
    empty_pvc(&tc, "restic-repo");
    let spec = r#"  timezone: Europe/Berlin
  snapshots:
    targets: [{pvc: data}]
    retention: {daily: 7}
  repositories:
    - name: borg-local
      borg:
        pvc: {claimName: borg-repo, path: shop}
        passphrase: {secret: repo-pass, key: passphrase}
        init: true
    - name: restic-local
      restic:
        pvc: {claimName: restic-repo}
        password: {secret: repo-pass, key: passphrase}
        init: true
  offsite:
    volumes:
      repositories: [borg-local, restic-local]
"#
    .to_owned();
    let cfg = tc.config("shop", &spec);
    let r = run(tc.kentledge(&cfg).arg("snapshot"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = run(tc.kentledge(&cfg).arg("prune"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = run(tc.kentledge(&cfg).arg("backup"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let snap = only_snapshot(&tc);
    (tc, spec, snap)
}

#[test]
fn list_shows_every_snapshot_and_archive_and_says_when_a_repository_could_not_be_listed() {
    let (tc, spec, snap) = backed_up("shop", |d| {
        std::fs::write(d.join("a.txt"), "hello\n").unwrap()
    });
    let cfg = tc.config("shop", &spec);

    let r = run(tc.kentledge(&cfg).arg("list"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("volume data"), "{}", r.stdout);
    assert!(r.stdout.contains(&snap), "{}", r.stdout);
    assert!(
        r.stdout.contains("kentledge_shop_shop_vol_data_"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("borg-local, restic-local"),
        "copied to: {}",
        r.stdout
    );
    assert!(r.stdout.contains("daily "), "retention: {}", r.stdout);

    let r = run(tc.kentledge(&cfg).args(["list", "-o", "json"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["partial"], false, "{v}");
    let series = &v["series"][0];
    assert_eq!(series["name"], "data");
    assert_eq!(series["kind"], "volume");
    let s = &series["snapshots"][0];
    assert_eq!(s["name"], snap.as_str());
    assert_eq!(s["ready"], true);
    assert!(s["keep"]["daily"].is_string(), "{s}");
    assert!(s["backed_up"]["borg-local"].is_string(), "{s}");
    assert!(s["backed_up"]["restic-local"].is_string(), "{s}");
    let archives = series["archives"].as_array().unwrap();
    let repos: Vec<&str> = archives
        .iter()
        .map(|a| a["repository"].as_str().unwrap())
        .collect();
    assert!(
        repos.contains(&"borg-local") && repos.contains(&"restic-local"),
        "{archives:?}"
    );
    // The archives carry the snapshot's cut as their time.
    for a in archives {
        assert_eq!(a["time"], s["time"], "{a}");
    }

    // One repository with the wrong password: listed as failed, the others still listed.
    let _: Secret = tc.create(
        json!({"metadata": {"name": "wrong-pass"}, "stringData": {"passphrase": "not it"}}),
    );
    let broken = spec.replace(
        "  offsite:",
        "    - name: restic-wrong\n      restic:\n        pvc: {claimName: restic-repo}\n        password: {secret: wrong-pass, key: passphrase}\n  offsite:",
    );
    let cfg = tc.config("shop", &broken);
    let r = run(tc.kentledge(&cfg).args(["list", "-o", "json"]));
    assert_eq!(r.code, 3, "partial: {}{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["partial"], true);
    let wrong = v["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["repository"] == "restic-wrong")
        .unwrap()
        .clone();
    assert_eq!(wrong["ok"], false, "{wrong}");
    assert!(
        wrong["result"].as_str().unwrap().contains("password"),
        "{wrong}"
    );
    assert_eq!(
        v["series"][0]["archives"].as_array().unwrap().len(),
        2,
        "{v}"
    );
    let r = run(tc.kentledge(&cfg).arg("list"));
    assert_eq!(r.code, 3);
    assert!(
        r.stdout.contains("PARTIAL") && r.stdout.contains("restic-wrong"),
        "{}",
        r.stdout
    );

    // Sizes from the engines (borg info, restic stats), when asked.
    let r = run(tc.kentledge(&cfg).args([
        "list",
        "archives",
        "--sizes",
        "--repository",
        "borg-local",
        "--repository",
        "restic-local",
        "-o",
        "json",
    ]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    for a in v["series"][0]["archives"].as_array().unwrap() {
        assert_eq!(a["size"], 6, "a.txt's bytes: {a}");
        assert_eq!(a["files"], 1, "{a}");
    }

    // Filters: a repository, a series, a time.
    let r = run(tc.kentledge(&cfg).args([
        "list",
        "archives",
        "--repository",
        "borg-local",
        "-o",
        "json",
    ]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["series"][0]["archives"].as_array().unwrap().len(), 1);
    assert!(v["series"][0]["snapshots"].as_array().unwrap().is_empty());
    let r = run(tc
        .kentledge(&cfg)
        .args(["list", "snapshots", "--series", "other", "-o", "json"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["series"].as_array().unwrap().is_empty(), "{v}");
    let r = run(tc
        .kentledge(&cfg)
        .args(["list", "snapshots", "--until", "2000-01-01T00:00:00Z"]));
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("none found"), "{}", r.stdout);
    let r = run(tc.kentledge(&cfg).args(["list", "--repository", "nope"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
    assert!(
        crate::backup::leftovers(&tc).is_empty(),
        "{:?}",
        crate::backup::leftovers(&tc)
    );
}
