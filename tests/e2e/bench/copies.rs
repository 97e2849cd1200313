//! Volume copies into borg with the default config, as `make bench` rows (nothing asserted
//! about speed): P3, `kentledge backup` of a 336 MB volume (64 files of 5 MiB, incompressible)
//! against a plain `borg create` of the same directory, first and again after 1 % of it changed.
//! kentledge's figure is the whole command as a user times it: the Lease, the clone, the mover
//! pod's start and the copy (the first also creates the repository, so its reference is `borg
//! init` and `borg create`). The clone is copy-on-write on the storage `scripts/bench.sh` sets up
//! where it can, a full copy by the local driver otherwise (a real CSI clone is not a copy).
//! A row with the cache volume turned off shows what the default saves.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{incompressible_volume, row};
use crate::backup::{PASSPHRASE, pvc_repository};
use crate::cluster::TestCluster;
use crate::support::{incompressible, run};

const FILES: usize = 64;
const FILE_BYTES: usize = 5 << 20;

/// Rewrites 1 % of the volume (the first 3.4 MB of file `i`: same size, new mtime).
fn change_one_percent(dir: &Path, i: usize, seed: u64) {
    let path = dir.join(format!("f{i:02}.bin"));
    let mut body = std::fs::read(&path).unwrap();
    let n = FILES * FILE_BYTES / 100;
    body[..n].copy_from_slice(&incompressible(n, seed));
    std::fs::write(&path, body).unwrap();
}

/// Writes what earlier steps left in the page cache out before a timed step, so that no
/// measure pays for the writeback of the bench's own setup (the volume's data) or of the
/// step before it.
fn settle() {
    assert!(Command::new("sync").status().unwrap().success());
}

/// Seconds of one `kentledge backup` of a new snapshot.
fn kentledge_backup(tc: &TestCluster, cfg: &Path) -> f64 {
    // In a second of its own: a snapshot cut in the same second as the last copied one has that
    // one's archive name, and the backup skips it.
    crate::support::next_second();
    assert_eq!(run(tc.kentledge(cfg).arg("snapshot")).code, 0);
    settle();
    let t = Instant::now();
    let r = run(tc.kentledge(cfg).arg("backup").env(
        "KENTLEDGE_LOG",
        std::env::var("SHOW_LOG").unwrap_or_else(|_| "kentledge=info".into()),
    ));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    if std::env::var("SHOW_LOG").is_ok() {
        eprintln!("{}", r.stderr);
    }
    t.elapsed().as_secs_f64()
}

/// Seconds of one plain `borg create` of `dir` into `repo` (as a user would run it: default
/// files cache, the same encryption and compression as kentledge's default).
fn borg_create(repo: &Path, base: &Path, dir: &Path, archive: &str) -> f64 {
    settle();
    let t = Instant::now();
    let st = Command::new("borg")
        .args(["create", "--exclude", "lost+found"])
        .arg(format!("{}::{archive}", repo.display()))
        .arg(".")
        .current_dir(dir)
        .env("BORG_PASSPHRASE", PASSPHRASE)
        .env("BORG_BASE_DIR", base)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    t.elapsed().as_secs_f64()
}

/// Every archive of the borg repository at `repo` holds the FILES files, whole.
fn assert_whole(repo: &Path) {
    let w = tempfile::tempdir().unwrap();
    let base = w.path().join("base");
    let borg = |args: &[&str]| crate::backup::borg(args, w.path(), &base);
    let list: serde_json::Value =
        serde_json::from_str(&borg(&["list", "--json", repo.to_str().unwrap()])).unwrap();
    for a in list["archives"].as_array().unwrap() {
        let archive = format!("{}::{}", repo.display(), a["name"].as_str().unwrap());
        let sizes: Vec<u64> = borg(&["list", "--format", "{type} {size}{NL}", &archive])
            .lines()
            .filter_map(|l| l.strip_prefix("- ")?.parse().ok())
            .collect();
        assert_eq!(sizes.len(), FILES, "{archive}: {sizes:?}");
        assert!(sizes.iter().all(|&s| s == FILE_BYTES as u64), "{archive}");
    }
}

#[test]
#[ignore = "a benchmark: make bench"]
fn p3_copies_with_the_default_config_vs_borg_create() {
    let tc = TestCluster::start("shop");
    let data = incompressible_volume(&tc, FILES, FILE_BYTES, 1);
    let spec = |path: &str, extra: &str| {
        format!(
            "  snapshots:\n    targets: [{{pvc: data}}]\n  repositories:\n{}{extra}  offsite:\n    volumes:\n      repositories: [borg]\n",
            pvc_repository("borg", "borg", path, &["init: true"]),
        )
    };
    let cfg = tc.config("shop", &spec("borg", ""));
    let first = kentledge_backup(&tc, &cfg);
    change_one_percent(&data, 1, 1001);
    let again = kentledge_backup(&tc, &cfg);
    // The same with the cache volume turned off (what every copy paid before it was the default).
    let off = tc.config(
        "shop",
        &spec("borg-nocache", "      cache: {enabled: false}\n"),
    );
    kentledge_backup(&tc, &off);
    change_one_percent(&data, 2, 1002);
    let again_off = kentledge_backup(&tc, &off);

    // Not a speed check: every copy holds the whole volume.
    for path in ["borg", "borg-nocache"] {
        assert_whole(&tc.volume_dir("repos").join(path));
    }
    let work = tempfile::tempdir().unwrap();
    let (repo, base) = (work.path().join("repo"), work.path().join("base"));
    settle();
    let t = Instant::now();
    let st = Command::new("borg")
        .args(["init", "--encryption", "repokey-blake2"])
        .arg(&repo)
        .env("BORG_PASSPHRASE", PASSPHRASE)
        .env("BORG_BASE_DIR", &base)
        .status()
        .unwrap();
    assert!(st.success());
    let raw_init = t.elapsed().as_secs_f64();
    let raw_first = raw_init + borg_create(&repo, &base, &data, "one");
    change_one_percent(&data, 3, 1003);
    let raw_again = borg_create(&repo, &base, &data, "two");
    let mb = (FILES * FILE_BYTES) as f64 / 1e6;
    row(
        &format!("P3 first copy of {mb:.0} MB vs borg init + create"),
        first,
        raw_first,
        "s",
        "<= 1.2x",
    );
    row(
        "P3 copy after a 1% change vs borg create again",
        again,
        raw_again,
        "s",
        "<= 1.5x",
    );
    row(
        "P3 the same, cache volume off (enabled: false)",
        again_off,
        raw_again,
        "s",
        "(what the default saves)",
    );
}
