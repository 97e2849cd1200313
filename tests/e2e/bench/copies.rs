//! Volume copies into borg with the default config, as `make bench` rows (nothing asserted
//! about speed): P3, `kentledge backup` of a 336 MB volume (64 files of 5 MiB, incompressible)
//! against a plain `borg create` of the same directory, first and again after 1 % of it changed.
//! kentledge's figure is the whole command as a user times it: the Lease, the clone, the mover
//! pod's start and the copy (the first also creates the repository, so its reference is `borg
//! init` and `borg create`). The clone is copy-on-write on the storage `scripts/bench.sh` sets up
//! where it can, a full copy by the local driver otherwise (a real CSI clone is not a copy).
//! Both read the data from the disk (the mover's clone is new to the page cache; the source's
//! pages are dropped before each reference step). Medians of [`ROUNDS`] rounds. A row with the
//! cache volume turned off shows what the default saves.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{ROUNDS, incompressible_volume, median, row};
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

/// Before a timed step: writes what earlier steps left in the page cache out, so that no
/// measure pays for the writeback of the bench's own setup (the volume's data) or of the step
/// before it, and drops the volume's files from the cache, so that the reference reads them
/// from the disk as the mover reads its clone (a new copy of them: never in the cache).
fn settle(data: &Path) {
    use std::os::fd::AsRawFd;
    assert!(Command::new("sync").status().unwrap().success());
    for e in std::fs::read_dir(data).unwrap() {
        let path = e.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let f = std::fs::File::open(path).unwrap();
        // SAFETY: a valid open descriptor; the advice only drops clean cached pages.
        let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(r, 0, "posix_fadvise");
    }
}

/// Seconds of one `kentledge backup` of a new snapshot of the volume `data`.
fn kentledge_backup(tc: &TestCluster, cfg: &Path, data: &Path) -> f64 {
    // In a second of its own: a snapshot cut in the same second as the last copied one has that
    // one's archive name, and the backup skips it.
    crate::support::next_second();
    assert_eq!(run(tc.kentledge(cfg).arg("snapshot")).code, 0);
    settle(data);
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
    settle(dir);
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
    let work = tempfile::tempdir().unwrap();
    // Each change rewrites 1 % of the volume that no copy has seen (a file and seed of its own).
    let mut changes = (1..).map(|n| (n % FILES, 1000 + n as u64));
    let mut change = || {
        let (i, seed) = changes.next().unwrap();
        change_one_percent(&data, i, seed);
    };
    let (mut first, mut again, mut raw_first, mut raw_again) = (vec![], vec![], vec![], vec![]);
    for round in 0..ROUNDS {
        // A new repository each round: its first copy creates it.
        let cfg = tc.config("shop", &spec(&format!("borg-{round}"), ""));
        first.push(kentledge_backup(&tc, &cfg, &data));
        change();
        again.push(kentledge_backup(&tc, &cfg, &data));

        let (repo, base) = (
            work.path().join(format!("repo-{round}")),
            work.path().join(format!("base-{round}")),
        );
        settle(&data);
        let t = Instant::now();
        crate::backup_failures::borg_init_in(&repo, PASSPHRASE, &base);
        let init = t.elapsed().as_secs_f64();
        raw_first.push(init + borg_create(&repo, &base, &data, "one"));
        change();
        raw_again.push(borg_create(&repo, &base, &data, "two"));
    }
    // The same with the cache volume turned off (what every copy paid before it was the default).
    let off = tc.config(
        "shop",
        &spec("borg-nocache", "      cache: {enabled: false}\n"),
    );
    kentledge_backup(&tc, &off, &data);
    change();
    let again_off = kentledge_backup(&tc, &off, &data);

    // Not a speed check: every copy holds the whole volume.
    let repos = tc.volume_dir("repos");
    for round in 0..ROUNDS {
        assert_whole(&repos.join(format!("borg-{round}")));
    }
    assert_whole(&repos.join("borg-nocache"));
    let mb = (FILES * FILE_BYTES) as f64 / 1e6;
    let raw_again = median(raw_again);
    row(
        &format!("P3 first copy of {mb:.0} MB vs borg init + create"),
        median(first),
        median(raw_first),
        "s",
        "<= 1.2x",
    );
    row(
        "P3 copy after a 1% change vs borg create again",
        median(again),
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
