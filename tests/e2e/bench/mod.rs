//! `make bench` measures that need the local cluster (ignored in `make test`): each prints one
//! row — measure, kentledge, reference, ratio, goal — and asserts nothing about speed.
//!
//! P2: a MariaDB dump streamed into borg through kentledge (mover pod, relay by exec, `borg create
//! --content-from-command`) against the same dump piped into `borg create -` directly in the
//! database's pod, as throughput (bytes of the dump per second of dumping; medians of
//! [`ROUNDS`]); P2r, the way back (a restore of that dump into a new database against `borg
//! extract --stdout | mariadb`). P1 and P5 (freeze
//! windows and API requests of snapshot runs) are in [`snapshots`], P3 (volume copies with the
//! default config) in [`copies`], P4 (prune of 10,000 snapshots) in [`prunes`], P7 (a restore of
//! 1 GiB) in [`restores`].

mod copies;
mod prunes;
mod restores;
mod snapshots;

use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::Value;

use crate::backup::{PASSPHRASE, empty_pvc, passphrase_secret};
use crate::cluster::TestCluster;
use crate::mariadb::{running_mariadb, sql};
use crate::support::run;

/// Rows of 1 MiB in the benchmark's database (its dump is twice that: `--hex-blob`).
const MIB: u64 = 100;

/// Rounds of the measures whose runs take turns with their reference's (P2, P3): a drift of the
/// machine's speed touches both, and the medians are printed.
pub(crate) const ROUNDS: usize = 3;

/// The PVC `data` with `files` incompressible files `fNN.bin` of `bytes` each (file `i` from
/// seed `seed + i`), its passphrase Secret and the empty PVC `repos`; returns its directory.
pub(crate) fn incompressible_volume(
    tc: &TestCluster,
    files: usize,
    bytes: usize,
    seed: u64,
) -> std::path::PathBuf {
    passphrase_secret(tc);
    empty_pvc(tc, "repos");
    let data = tc.pvc_with_files("data", &[], &[]);
    for i in 0..files {
        std::fs::write(
            data.join(format!("f{i:02}.bin")),
            crate::support::incompressible(bytes, seed + i as u64),
        )
        .unwrap();
    }
    data
}

/// The median of `v` (not empty; the upper one of an even count).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(crate) fn row(measure: &str, ours: f64, reference: f64, unit: &str, goal: &str) {
    let line = format!(
        "{measure:<48} {ours:>10.1} {unit:<5} {reference:>10.1} {unit:<5} {:>6.2}  {goal}",
        ours / reference
    );
    // On a line of its own: libtest's `test … ... ` has no line end before a test's output.
    println!("\n{line}");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench");
    let _ = std::fs::create_dir_all(&dir);
    let id = measure.split_whitespace().next().unwrap_or("bench");
    let _ = std::fs::write(dir.join(format!("{id}.txt")), format!("{line}\n"));
}

#[test]
#[ignore = "a benchmark: make bench"]
fn p2_dump_into_borg_through_kentledge_vs_directly() {
    let tc = TestCluster::start("shop");
    passphrase_secret(&tc);
    empty_pvc(&tc, "borg-repo");
    running_mariadb(&tc, "db-0", "mysql");
    sql(
        &tc,
        "db-0",
        &format!(
            "CREATE DATABASE tiny; CREATE DATABASE bench; USE bench; CREATE TABLE bench.blobs (id INT PRIMARY KEY AUTO_INCREMENT, pad LONGBLOB) ENGINE=InnoDB; \
             INSERT INTO bench.blobs (pad) SELECT REPEAT(RANDOM_BYTES(1024), 1024) FROM seq_1_to_{MIB};"
        ),
    );
    // A config that dumps `database` (bench, or the empty tiny: a run's fixed cost).
    let config = |name: &str, database: &str| {
        tc.config(
            name,
            &format!("  repositories:\n    - name: borg-local\n      borg:\n        pvc: {{claimName: borg-repo, path: shop}}\n        passphrase: {{secret: repo-pass, key: passphrase}}\n        init: true\n  offsite:\n    databases:\n      - name: maria\n        engine: mariadb\n        pod: {{name: db-0}}\n        container: mariadb\n        credentials: {{user: root}}\n        databases: [{database}]\n        repositories: [borg-local]\n"),
        )
    };
    let (cfg, tiny) = (config("shop", "bench"), config("fixed", "tiny"));
    // Once to create the repository and warm the server's buffers, then measured.
    let warm = run(tc.kentledge(&cfg).arg("backup"));
    assert_eq!(warm.code, 0, "{}{}", warm.stdout, warm.stderr);
    // The same dump piped into borg create directly, in the database's pod (same CPU, no relay),
    // into a repository made (and warmed by one archive) first.
    let repo = tempfile::tempdir().unwrap();
    let env = format!(
        "set -e; export BORG_PASSPHRASE='{PASSPHRASE}' BORG_BASE_DIR={base}; ",
        base = repo.path().join("base").display(),
    );
    let piped = |database: &str, archive: &str| {
        format!(
            "mariadb-dump -uroot --single-transaction --routines --triggers --events --hex-blob --comments --dump-date -- {database} \
             | borg create --stdin-name {database}.sql {repo}/r::{archive} - ; ",
            repo = repo.path().display()
        )
    };
    let pods: Api<Pod> = Api::namespaced(tc.client(), &tc.namespace);
    let in_db = |script: String| {
        let o = tc.block_on(kentledge::kube::exec::run(
            &pods,
            "db-0",
            "mariadb",
            &["sh".to_owned(), "-c".to_owned(), script],
            std::time::Duration::from_secs(600),
        ));
        assert!(o.exit.ok(), "{}", o.stderr);
        o.stdout
    };
    in_db(format!(
        "{env}borg init -e repokey {}/r >/dev/null 2>&1; {}",
        repo.path().display(),
        piped("bench", "warm")
    ));
    // Kentledge's dump, then the direct one, each round.
    let (mut ours, mut direct, mut bytes) = (vec![], vec![], 0.0);
    let (mut ours_cpu, mut direct_cpu) = (vec![], vec![]);
    // The CPU seconds `f` takes, less those of `fixed` (the same with the empty database).
    let marginal = |f: &mut dyn FnMut(), fixed: &mut dyn FnMut()| {
        let cpu = cpu_seconds();
        fixed();
        let base = cpu_seconds() - cpu;
        let cpu = cpu_seconds();
        f();
        (cpu_seconds() - cpu) - base
    };
    for round in 0..ROUNDS {
        let mut r = None;
        let cpu = marginal(
            &mut || r = Some(run(tc.kentledge(&cfg).args(["backup", "-o", "json"]))),
            &mut || assert_eq!(run(tc.kentledge(&tiny).arg("backup")).code, 0),
        );
        ours_cpu.push(cpu);
        let r = r.unwrap();
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        let dump = v["dumps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["database"] == "bench")
            .unwrap()
            .clone();
        bytes = dump["bytes"].as_u64().unwrap() as f64;
        ours.push(bytes / dump["seconds"].as_f64().unwrap());
        let mut out = String::new();
        let cpu = marginal(
            &mut || {
                out = in_db(format!(
                    "{env}start=$(date +%s.%N); {} end=$(date +%s.%N); echo \"$start $end\"",
                    piped("bench", &format!("measured-{round}"))
                ))
            },
            &mut || {
                in_db(format!("{env}{}", piped("tiny", &format!("tiny-{round}"))));
            },
        );
        direct_cpu.push(cpu);
        let times: Vec<f64> = out
            .split_whitespace()
            .filter_map(|t| t.parse().ok())
            .collect();
        let [a, b] = times[..] else {
            panic!("no start and end times: {out}")
        };
        direct.push(bytes / (b - a));
    }
    row(
        &format!("P2 dump into borg ({:.0} MB), throughput", bytes / 1e6),
        median(ours) / 1e6,
        median(direct) / 1e6,
        "MB/s",
        "≥ 0.9×",
    );
    // Where the time goes: the CPU the dump's bytes take each way (every process; a run of the
    // empty database subtracted, so the runs' fixed costs are not in it). The local cluster's
    // API server and kubelet (this process) carry kentledge's exec stream on the cores the dump
    // and borg run on (a real cluster's run elsewhere), and the relay reads it in the mover.
    row(
        &format!(
            "P2a CPU seconds of the dump's {:.0} MB, every process",
            bytes / 1e6
        ),
        median(ours_cpu),
        median(direct_cpu),
        "s",
        "(where the time goes: on shared cores)",
    );
    // The way back: the newest dump loaded into a new database by `kentledge restore` (its
    // mover pod reads the archive and feeds the relay, which feeds the client in the database's
    // pod by exec), against `borg extract --stdout | mariadb` in the database's pod; each into
    // a database of its own made empty first, whole runs timed (kentledge's with its pod start).
    let (mut ours, mut direct) = (vec![], vec![]);
    for round in 0..ROUNDS {
        let copy = format!("restored_{round}");
        let t = Instant::now();
        let r = run(tc.kentledge(&cfg).args([
            "restore",
            "database",
            "maria",
            "--repository",
            "borg-local",
            "--database",
            "bench",
            "--to-database",
            &copy,
        ]));
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        ours.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        in_db(format!(
            "{env}mariadb -uroot -e 'CREATE DATABASE direct_{round}'; borg extract --stdout {}/r::measured-{round} | mariadb -uroot --batch --one-database -- direct_{round}",
            repo.path().display()
        ));
        direct.push(t.elapsed().as_secs_f64());
        for db in [copy, format!("direct_{round}")] {
            let rows = sql(&tc, "db-0", &format!("SELECT COUNT(*) FROM {db}.blobs"));
            assert_eq!(rows, MIB.to_string(), "{db} holds the whole dump");
            sql(&tc, "db-0", &format!("DROP DATABASE {db}"));
        }
    }
    row(
        &format!(
            "P2r restore of the dump ({:.0} MB) into a new database vs borg extract | mariadb",
            bytes / 1e6
        ),
        median(ours),
        median(direct),
        "s",
        "(the way back; kentledge's with its pod start)",
    );
}

/// CPU seconds (user and system) this process and its ended children have used: the local
/// cluster's API server and node agents run in it, and every container process and exec (the
/// mover and its engines, `kentledge`, the dump) is a child of it.
fn cpu_seconds() -> f64 {
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN]
        .into_iter()
        .map(|who| {
            // SAFETY: getrusage fills the struct it is given.
            let mut u: libc::rusage = unsafe { std::mem::zeroed() };
            assert_eq!(unsafe { libc::getrusage(who, &mut u) }, 0);
            secs(u.ru_utime) + secs(u.ru_stime)
        })
        .sum()
}

/// Small objects in the bucket benchmark, and their size.
const OBJECTS: usize = 3000;
const OBJECT_BYTES: usize = 4096;

#[test]
#[ignore = "a benchmark: make bench"]
fn b1_bucket_of_small_objects_through_kentledge_vs_rclone_copy() {
    use crate::servers::{S3_KEY, S3_SECRET};
    let server = crate::servers::s3();
    // rclone serve s3 serves a directory: the bucket's objects are its files.
    let bucket = server.dir.path().join("media");
    for i in 0..OBJECTS {
        let dir = bucket.join(format!("d{:02}", i % 50));
        std::fs::create_dir_all(&dir).unwrap();
        let body: Vec<u8> = (0..OBJECT_BYTES)
            .map(|j| ((i * 31 + j * 7) % 251) as u8)
            .collect();
        std::fs::write(dir.join(format!("o{i:05}.bin")), body).unwrap();
    }
    let tc = TestCluster::start("shop");
    passphrase_secret(&tc);
    empty_pvc(&tc, "borg-repo");
    let _: k8s_openapi::api::core::v1::Secret = tc.create(serde_json::json!({
        "metadata": {"name": "s3-keys"},
        "stringData": {"access": S3_KEY, "secret": S3_SECRET},
    }));
    let cfg = tc.config(
        "shop",
        &format!(
            "  repositories:\n    - name: borg-local\n      borg:\n        pvc: {{claimName: borg-repo, path: shop}}\n        passphrase: {{secret: repo-pass, key: passphrase}}\n        init: true\n  offsite:\n    buckets:\n      - name: media\n        endpoint: http://127.0.0.1:{}\n        bucket: media\n        credentials:\n          accessKeyId: {{secret: s3-keys, key: access}}\n          secretAccessKey: {{secret: s3-keys, key: secret}}\n        repositories: [borg-local]\n        cache: {{size: 1Gi}}\n",
            server.port
        ),
    );
    let timed = |args: &[&str]| {
        let t = Instant::now();
        let r = run(tc.kentledge(&cfg).args(args));
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        t.elapsed().as_secs_f64()
    };
    let first = timed(&["backup"]);
    let again = timed(&["backup"]);
    let target = tempfile::tempdir().unwrap();
    let rclone = || {
        let t = Instant::now();
        let s = std::process::Command::new("rclone")
            .args(["copy", ":s3:media"])
            .arg(target.path())
            .args(["--config", "/dev/null"])
            .env("RCLONE_S3_PROVIDER", "Other")
            .env("RCLONE_S3_ACCESS_KEY_ID", S3_KEY)
            .env("RCLONE_S3_SECRET_ACCESS_KEY", S3_SECRET)
            .env(
                "RCLONE_S3_ENDPOINT",
                format!("http://127.0.0.1:{}", server.port),
            )
            .status()
            .unwrap();
        assert!(s.success());
        t.elapsed().as_secs_f64()
    };
    let copy = rclone();
    let copy_again = rclone();
    let copied = walk_count(target.path());
    assert_eq!(copied, OBJECTS, "rclone copied every object");
    row(
        &format!("B1 bucket of {OBJECTS} × 4 KiB objects, first backup vs rclone copy"),
        first,
        copy,
        "s",
        "(a ratio: kentledge also archives)",
    );
    row(
        "B2 the same bucket unchanged: second backup vs rclone copy again",
        again,
        copy_again,
        "s",
        "(listing only)",
    );
}

fn walk_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() { walk_count(&p) } else { 1 }
        })
        .sum()
}
