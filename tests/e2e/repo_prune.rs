//! `kentledge prune` of repositories and `kentledge check --repositories`, in mover pods on the
//! local test cluster with real engines: archives of this config seeded with chosen times (and a
//! series of another config that must be left alone), the decisions of a dry run compared with
//! real `borg prune --dry-run --list`, then the real prune leaving exactly the kept archives.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::backup::{PASSPHRASE, borg, empty_pvc, passphrase_secret, pvc_repository, restic};
use crate::cluster::TestCluster;
use crate::support::run;

const NOW: &str = "2026-11-22T12:00:00Z";

/// Every 37 hours for 46 days back from NOW.
fn times() -> Vec<Timestamp> {
    let now: Timestamp = NOW.parse().unwrap();
    (1..=30)
        .map(|i| now - SignedDuration::from_hours(37 * i))
        .collect()
}

fn seed_borg(repo: &Path, base: &Path, src: &Path, config: &str, t: Timestamp) -> String {
    let name = format!(
        "kentledge_{config}_shop_vol_data_{}",
        t.strftime("%Y-%m-%dT%H-%M-%SZ")
    );
    borg(
        &[
            "create",
            "--timestamp",
            &t.strftime("%Y-%m-%dT%H:%M:%S").to_string(),
            &format!("{}::{name}", repo.display()),
            ".",
        ],
        src,
        base,
    );
    name
}

fn seed_restic(repo: &str, src: &Path, config: &str, t: Timestamp) {
    let out = Command::new("restic")
        .args([
            "backup",
            "--host",
            "kentledge",
            "--time",
            &t.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        ])
        .args([
            "--tag",
            &format!("kentledge,config={config},namespace=shop,kind=vol,name=data"),
        ])
        .arg(".")
        .current_dir(src)
        .env("TZ", "UTC")
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", PASSPHRASE)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn borg_names(repo: &Path) -> BTreeSet<String> {
    crate::backup::borg_archive_names(repo)
        .into_iter()
        .collect()
}

#[test]
fn repository_prune_keeps_exactly_what_the_policy_says_and_check_verifies() {
    let tc = TestCluster::start("shop");
    passphrase_secret(&tc);
    let repos = empty_pvc(&tc, "repos");
    let borg_repo = repos.join("borg");
    let restic_repo = repos.join("restic");
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("base");
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), "data\n").unwrap();
    borg(
        &[
            "init",
            "--encryption",
            "repokey-blake2",
            borg_repo.to_str().unwrap(),
        ],
        work.path(),
        &base,
    );
    restic(restic_repo.to_str().unwrap(), &["init"], &[]);
    let mut ours = Vec::new();
    for t in times() {
        ours.push(seed_borg(&borg_repo, &base, &src, "shop", t));
        seed_restic(restic_repo.to_str().unwrap(), &src, "shop", t);
    }
    // Another config's series in the same repositories: never touched.
    let theirs = seed_borg(&borg_repo, &base, &src, "other", times()[25]);
    seed_restic(restic_repo.to_str().unwrap(), &src, "other", times()[25]);

    let with_retention = |engine: &str| {
        pvc_repository(engine, engine, engine, &[])
            + "      retention: {daily: 4, weekly: 3, monthly: 2}\n"
    };
    let cfg = tc.config(
        "shop",
        &format!(
            "  repositories:\n{}{}",
            with_retention("borg"),
            with_retention("restic")
        ),
    );
    // The dry run of snapshots and repositories: one JSON document, decisions for every
    // archive, nothing deleted.
    let r = run(tc
        .kentledge(&cfg)
        .args(["prune", "--now", NOW, "--dry-run", "-o", "json"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(report["series"].is_array(), "the snapshot part: {report}");
    let repos_json = report["repositories"].as_array().unwrap();
    assert_eq!(repos_json.len(), 2);
    let decided = |i: usize| -> (BTreeSet<String>, usize) {
        let a = repos_json[i]["archives"].as_array().unwrap();
        (
            a.iter()
                .filter(|x| x["keep"] == true)
                .map(|x| x["time"].as_str().unwrap().to_owned())
                .collect(),
            a.len(),
        )
    };
    let (borg_keep_times, borg_n) = decided(0);
    let (restic_keep_times, restic_n) = decided(1);
    assert_eq!((borg_n, restic_n), (30, 30), "only this config's series");
    assert_eq!(
        borg_keep_times, restic_keep_times,
        "the same policy, the same decisions"
    );
    assert_eq!(
        borg_names(&borg_repo).len(),
        31,
        "a dry run deletes nothing"
    );

    // Real borg prune, scoped to the series, says the same.
    let out = Command::new("borg")
        .args([
            "prune",
            "--dry-run",
            "--list",
            "--keep-daily=4",
            "--keep-weekly=3",
            "--keep-monthly=2",
            "--glob-archives",
            "kentledge_shop_shop_vol_data_*",
        ])
        .arg(&borg_repo)
        .env("BORG_PASSPHRASE", PASSPHRASE)
        .env("BORG_BASE_DIR", &base)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let borg_kept: BTreeSet<String> = text
        .lines()
        .filter(|l| l.starts_with("Keeping archive"))
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("kentledge_"))
                .map(String::from)
        })
        .collect();
    assert!(!borg_kept.is_empty(), "{text}");

    // The real run leaves exactly the kept archives, and the other config's.
    let r = run(tc
        .kentledge(&cfg)
        .args(["prune", "--only", "repositories", "--now", NOW]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // The report counts deletions the engine confirmed, archive by archive.
    let borg_line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("repository borg "))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(
        borg_line.contains(&format!(
            "{} kept, {} deleted",
            borg_kept.len(),
            30 - borg_kept.len()
        )) && !borg_line.contains("NOT deleted"),
        "{borg_line}"
    );
    let deleted_rows = r
        .stdout
        .lines()
        .filter(|l| l.split_whitespace().nth(3) == Some("deleted"))
        .count();
    assert_eq!(deleted_rows, 2 * (30 - borg_kept.len()), "{}", r.stdout);
    let mut expect = borg_kept.clone();
    expect.insert(theirs.clone());
    assert_eq!(borg_names(&borg_repo), expect);
    assert_eq!(borg_kept.len(), borg_keep_times.len());
    let snaps: Value = serde_json::from_str(&restic(
        restic_repo.to_str().unwrap(),
        &["snapshots", "--json"],
        &[],
    ))
    .unwrap();
    let left: BTreeSet<String> = snaps
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == "config=shop")
        })
        .map(|s| {
            s["time"]
                .as_str()
                .unwrap()
                .parse::<Timestamp>()
                .unwrap()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        })
        .collect();
    let kept_norm: BTreeSet<String> = restic_keep_times
        .iter()
        .map(|t| {
            t.parse::<Timestamp>()
                .unwrap()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        })
        .collect();
    assert_eq!(left, kept_norm);
    assert_eq!(
        snaps.as_array().unwrap().len(),
        kept_norm.len() + 1,
        "the other config's snapshot stays"
    );
    assert!(ours.len() == 30);

    // check --repositories runs borg check / restic check in movers.
    let r = run(tc.kentledge(&cfg).args(["check", "--repositories"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("repository borg (borg): no problems found"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("repository restic (restic): no problems found"),
        "{}",
        r.stdout
    );
    // A damaged repository is reported.
    let data_dir = borg_repo.join("data/0");
    let seg = std::fs::read_dir(&data_dir)
        .unwrap()
        .flatten()
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();
    let r = run(tc.kentledge(&cfg).args(["check", "--repositories"]));
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("repository borg (borg): FAILED"),
        "{}",
        r.stdout
    );
    assert!(crate::backup::leftovers(&tc).is_empty());
}
