//! The engine command lines kentledge builds, run by the real borg and restic against local
//! repositories: every flag is accepted, archives land in their series, and listing or pruning
//! one series never touches another whose name shares its prefix.

use std::path::Path;
use std::process::Command;

use kentledge::engines::{Series, SeriesKind, Tuning, borg, restic};

fn series(name: &str) -> Series {
    Series {
        config: "shop".into(),
        namespace: "prod".into(),
        kind: SeriesKind::Volume,
        name: name.into(),
    }
}

fn run_in(dir: &Path, argv: &[String], env: &[(&str, &str)]) -> String {
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .envs(env.iter().cloned())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (make install-test-deps)", argv[0]));
    assert!(
        out.status.success(),
        "{argv:?}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::create_dir_all(dir.join("lost+found")).unwrap();
    std::fs::write(dir.join("sub/file"), "data").unwrap();
    std::fs::write(dir.join("lost+found/junk"), "junk").unwrap();
}

#[test]
fn borg_accepts_the_command_lines_and_series_stay_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo_dir, src, base) = (
        tmp.path().join("repo"),
        tmp.path().join("src"),
        tmp.path().join("base"),
    );
    tree(&src);
    let base_s = base.display().to_string();
    let env = [
        ("BORG_BASE_DIR", base_s.as_str()),
        ("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes"),
        ("BORG_PASSPHRASE", ""),
    ];
    run_in(
        tmp.path(),
        &[
            "borg".into(),
            "init".into(),
            "--encryption=none".into(),
            repo_dir.display().to_string(),
        ],
        &env,
    );
    let repo = borg::Repo {
        location: repo_dir.display().to_string(),
        lock_wait_secs: 5,
        remote_path: None,
    };
    for (name, t) in [
        ("db", "2026-11-20T10:00:00Z"),
        ("db", "2026-11-21T10:00:00Z"),
        ("db-wal", "2026-11-21T11:00:00Z"),
    ] {
        let out = run_in(
            &src,
            &borg::create(
                &repo,
                &series(name),
                t.parse().unwrap(),
                &format!("{name}-snapshot"),
                Tuning {
                    compression: Some("lz4"),
                    upload_limit: Some(50 * 1024 * 1024),
                    exclude: &["lost+found".into()],
                },
            ),
            &env,
        );
        assert!(out.contains("\"archive\""), "--json stats: {out}");
    }
    let list = run_in(
        tmp.path(),
        &[
            "borg".into(),
            "list".into(),
            "--short".into(),
            repo.location.clone(),
        ],
        &env,
    );
    assert!(
        list.contains("kentledge_shop_prod_vol_db_2026-11-20T10-00-00Z"),
        "{list}"
    );
    let files = run_in(
        tmp.path(),
        &[
            "borg".into(),
            "list".into(),
            "--short".into(),
            format!(
                "{}::kentledge_shop_prod_vol_db_2026-11-21T10-00-00Z",
                repo.location
            ),
        ],
        &env,
    );
    assert!(
        files.contains("sub/file") && !files.contains("junk"),
        "exclude applied: {files}"
    );
    // Pruning db to its last archive never touches db-wal: as the mover prunes, list the
    // series' archives, delete those retention does not keep (here all but the newest), compact.
    let listed: serde_json::Value = serde_json::from_str(&run_in(
        tmp.path(),
        &borg::list(&repo, &series("db").borg_prefix()),
        &env,
    ))
    .unwrap();
    let mut doomed: Vec<String> = listed["archives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    doomed.sort();
    doomed.pop();
    run_in(tmp.path(), &borg::delete(&repo, &doomed), &env);
    run_in(tmp.path(), &borg::compact(&repo), &env);
    let list = run_in(
        tmp.path(),
        &[
            "borg".into(),
            "list".into(),
            "--short".into(),
            repo.location.clone(),
        ],
        &env,
    );
    assert!(!list.contains("vol_db_2026-11-20"), "{list}");
    assert!(
        list.contains("vol_db_2026-11-21") && list.contains("vol_db-wal_2026-11-21"),
        "{list}"
    );
}

#[test]
fn restic_accepts_the_command_lines_and_series_stay_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo_dir, src, cache) = (
        tmp.path().join("repo"),
        tmp.path().join("src"),
        tmp.path().join("cache"),
    );
    tree(&src);
    let (repo_s, cache_s) = (repo_dir.display().to_string(), cache.display().to_string());
    let env = [
        ("RESTIC_REPOSITORY", repo_s.as_str()),
        ("RESTIC_PASSWORD", "not-a-real-secret"),
        ("RESTIC_CACHE_DIR", cache_s.as_str()),
        ("TZ", "UTC"),
    ];
    run_in(tmp.path(), &["restic".into(), "init".into()], &env);
    for (name, t) in [
        ("db", "2026-11-20T10:00:00Z"),
        ("db", "2026-11-21T10:00:00Z"),
        ("db-wal", "2026-11-21T11:00:00Z"),
    ] {
        let out = run_in(
            &src,
            &restic::backup(
                &series(name),
                t.parse().unwrap(),
                Tuning {
                    compression: Some("auto"),
                    upload_limit: Some(50 * 1024 * 1024),
                    exclude: &["lost+found".into()],
                },
            ),
            &env,
        );
        assert!(out.contains("\"message_type\":\"summary\""), "{out}");
    }
    let listed: serde_json::Value = serde_json::from_str(
        run_in(
            tmp.path(),
            &restic::snapshots(&series("db").restic_tags()),
            &env,
        )
        .lines()
        .last()
        .unwrap(),
    )
    .unwrap();
    let snaps = listed.as_array().unwrap();
    assert_eq!(snaps.len(), 2, "only db, never db-wal");
    let times: Vec<&str> = snaps.iter().map(|s| s["time"].as_str().unwrap()).collect();
    assert!(
        times.iter().any(|t| t.starts_with("2026-11-20T10:00:00")),
        "--time is the cut: {times:?}"
    );
    let oldest = snaps
        .iter()
        .find(|s| s["time"].as_str().unwrap().starts_with("2026-11-20"))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // As the mover prunes: forget what retention does not keep, then `restic prune`.
    run_in(tmp.path(), &restic::forget(&[oldest]), &env);
    run_in(tmp.path(), &restic::command(&["prune"]), &env);
    let left: serde_json::Value = serde_json::from_str(
        run_in(
            tmp.path(),
            &restic::snapshots(&series("db").restic_tags()),
            &env,
        )
        .lines()
        .last()
        .unwrap(),
    )
    .unwrap();
    assert_eq!(left.as_array().unwrap().len(), 1);
    let wal: serde_json::Value = serde_json::from_str(
        run_in(
            tmp.path(),
            &restic::snapshots(&series("db-wal").restic_tags()),
            &env,
        )
        .lines()
        .last()
        .unwrap(),
    )
    .unwrap();
    assert_eq!(wal.as_array().unwrap().len(), 1, "db-wal untouched");
}
