//! P7 as a `make bench` row (nothing asserted about speed): `kentledge restore volume` of a
//! 1 GiB volume (16 files of 64 MiB, incompressible) from its borg archive into a new PVC,
//! against `borg extract` of the same archive straight from the repository's directory.
//! kentledge's figure is the whole command as a user times it: the Lease, the new PVC, the
//! restore pod's start, the extract and its check of what was written. The backup before it
//! gives P6's mover row: the peak memory the copy's mover reports.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{incompressible_volume, row};
use crate::backup::{PASSPHRASE, data_to_borg};
use crate::cluster::TestCluster;
use crate::support::run;

const FILES: usize = 16;
const FILE_BYTES: usize = 64 << 20;

/// The kB figures of the mover's "mover peak memory: kentledge N kB, largest engine process
/// M kB" log line.
fn mover_peak_kb(log: &str) -> (u64, u64) {
    let line = log
        .lines()
        .find(|l| l.contains("mover peak memory"))
        .unwrap_or_else(|| panic!("no peak memory line in the backup's log: {log}"));
    let kb: Vec<u64> = line
        .split_whitespace()
        .zip(line.split_whitespace().skip(1))
        .filter(|(_, unit)| unit.starts_with("kB"))
        .filter_map(|(n, _)| n.parse().ok())
        .collect();
    match kb[..] {
        [own, engine] => (own, engine),
        _ => panic!("unreadable peak memory line: {line}"),
    }
}

/// Every file of `source` has the same bytes in `restored`.
fn assert_same_files(source: &Path, restored: &Path) {
    for i in 0..FILES {
        let name = format!("f{i:02}.bin");
        let (a, b) = (
            std::fs::read(source.join(&name)).unwrap(),
            std::fs::read(restored.join(&name)).unwrap_or_default(),
        );
        assert!(a == b, "{name} is restored whole");
    }
}

#[test]
#[ignore = "a benchmark: make bench"]
fn p7_restore_of_a_gigabyte_vs_borg_extract() {
    let tc = TestCluster::start("shop");
    let data = incompressible_volume(&tc, FILES, FILE_BYTES, 7);
    let cfg = tc.config("shop", &data_to_borg(&["init: true"]));
    assert_eq!(run(tc.kentledge(&cfg).arg("snapshot")).code, 0);
    let r = run(tc
        .kentledge(&cfg)
        .arg("backup")
        .env("KENTLEDGE_LOG", "kentledge=debug"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // P6: the copy's mover says its peak memory (its own, and borg's).
    let (own, engine) = mover_peak_kb(&r.stderr);
    row(
        "P6 peak RSS of the mover copying 1 GiB (kentledge in the pod; reference: borg) vs 50 MB",
        own as f64 / 1e3,
        engine as f64 / 1e3,
        "MB",
        "bounded (not growing with the data)",
    );

    let t = Instant::now();
    let r = run(tc.kentledge(&cfg).args(crate::signals::RESTORE_TO_COPY));
    let ours = t.elapsed().as_secs_f64();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_same_files(&data, &tc.volume_dir("copy"));

    // The same archive extracted by borg directly, as an admin would on the repository's host.
    let repo = tc.volume_dir("repos").join("borg");
    let archive = crate::backup::borg_archive_names(&repo).remove(0);
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("base");
    let into = work.path().join("into");
    std::fs::create_dir_all(&into).unwrap();
    let t = Instant::now();
    let st = Command::new("borg")
        .arg("extract")
        .arg(format!("{}::{archive}", repo.display()))
        .current_dir(&into)
        .env("BORG_PASSPHRASE", PASSPHRASE)
        .env("BORG_BASE_DIR", &base)
        .env("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    let reference = t.elapsed().as_secs_f64();
    assert!(st.success());
    assert_same_files(&data, &into);
    let gib = (FILES * FILE_BYTES) as f64 / f64::from(1 << 30);
    row(
        &format!("P7 restore of {gib:.0} GiB from borg vs borg extract"),
        ours,
        reference,
        "s",
        "<= 1.2x",
    );
}
