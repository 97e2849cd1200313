//! Unit tests of the in-pod side's pure parts: line reading, failure classes, lock listings,
//! ssh targets, archive names.

use super::list::archive_time;
use super::locks::{parse_borg_locks, restic_holders};
use super::process::{classify_borg, classify_restic, each_line};
use crate::model::repository::{Engine, Kind, Location};
use crate::mover::job::Failure;

/// Destination, port and path as the in-pod side reads them from a borg job's location.
fn borg_ssh_target(loc: &str) -> Option<(String, Option<u16>, String)> {
    match Location::parse(Engine::Borg, loc).ok()?.kind() {
        Kind::Ssh(t) => Some((t.destination(), t.port, t.path.clone())),
        _ => None,
    }
}

/// Destination and port as the in-pod side reads them from a restic job's location.
fn sftp_target(loc: &str) -> Option<(String, Option<u16>)> {
    match Location::parse(Engine::Restic, loc).ok()?.kind() {
        Kind::Sftp(t) => Some((t.destination(), t.port)),
        _ => None,
    }
}

#[test]
fn engine_lines_that_are_not_utf8_do_not_end_the_reading() {
    let mut lines = Vec::new();
    let input: &[u8] = b"first\n/data/caf\xe9: permission denied\r\nlast";
    each_line(input, |l| lines.push(l)).unwrap();
    assert_eq!(
        lines,
        ["first", "/data/caf\u{fffd}: permission denied", "last"]
    );
}

#[test]
fn failures_are_classified_from_borg_ids_and_restic_words() {
    let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        classify_borg(&ids(&["LockTimeout"]), 2, ""),
        Failure::Locked
    );
    assert_eq!(
        classify_borg(&ids(&["PassphraseWrong"]), 2, ""),
        Failure::Passphrase
    );
    assert_eq!(classify_borg(&[], 13, ""), Failure::NoRepository);
    assert_eq!(
        classify_borg(&ids(&["Repository.DoesNotExist"]), 2, ""),
        Failure::NoRepository
    );
    assert_eq!(
        classify_borg(
            &ids(&["ConnectionClosed"]),
            2,
            "Remote: Host key verification failed."
        ),
        Failure::Unreachable
    );
    assert_eq!(classify_borg(&[], 2, "something else"), Failure::Failed);

    let locked = "unable to create lock in backend: repository is already locked exclusively by PID 4242 on kentledge-mover-1a2b3c-3f9a-0 by root (UID 0, GID 0)\nlock was created at 2026-11-22 10:00:00 (1m0s ago)";
    assert_eq!(classify_restic(1, locked), Failure::Locked);
    assert_eq!(
        restic_holders(locked),
        vec!["kentledge-mover-1a2b3c-3f9a-0 4242"]
    );
    assert_eq!(
        classify_restic(1, "Fatal: wrong password or no key found"),
        Failure::Passphrase
    );
    assert_eq!(
        classify_restic(
            1,
            "Fatal: unable to open config file: Head \"http://127.0.0.1:1/config\": dial tcp 127.0.0.1:1: connect: connection refused\nIs there a repository at the following location?"
        ),
        Failure::Unreachable
    );
    assert_eq!(
        classify_restic(
            1,
            "Fatal: unable to open config file: stat /repository/config: no such file or directory\nIs there a repository at the following location?"
        ),
        Failure::NoRepository
    );
    assert_eq!(classify_restic(10, ""), Failure::NoRepository);
}

#[test]
fn borg_lock_listings_name_their_holders() {
    let listing = "kentledge-mover-1a2b3c-3f9a-0.17-7f00aa\n{\"shared\": [], \"exclusive\": [[\"kentledge-mover-1a2b3c-3f9a-0\", 17, 0]]}\n";
    assert_eq!(
        parse_borg_locks(listing),
        vec!["kentledge-mover-1a2b3c-3f9a-0 17"]
    );
    assert!(parse_borg_locks("").is_empty());
}

#[test]
fn ssh_targets_of_locations() {
    assert_eq!(
        borg_ssh_target("ssh://borg@127.0.0.1:2222/./repos/shop"),
        Some(("borg@127.0.0.1".into(), Some(2222), "repos/shop".into()))
    );
    assert_eq!(
        borg_ssh_target("ssh://borg@backup/srv/borg"),
        Some(("borg@backup".into(), None, "/srv/borg".into()))
    );
    assert_eq!(
        sftp_target("sftp:restic@backup:/srv/restic"),
        Some(("restic@backup".into(), None))
    );
    assert_eq!(
        sftp_target("sftp://restic@backup:2222//srv/restic"),
        Some(("restic@backup".into(), Some(2222)))
    );
    assert_eq!(sftp_target("rest:http://x/"), None);
    // IPv6 hosts: ssh takes them bare.
    assert_eq!(
        borg_ssh_target("ssh://u@[::1]/r"),
        Some(("u@::1".into(), None, "/r".into()))
    );
    assert_eq!(
        borg_ssh_target("ssh://u@[::1]:2222/./r"),
        Some(("u@::1".into(), Some(2222), "r".into()))
    );
    assert_eq!(
        sftp_target("sftp://restic@[::1]:2222//srv/restic"),
        Some(("restic@::1".into(), Some(2222)))
    );
    assert_eq!(borg_ssh_target("/repository/shop"), None);
}

#[test]
fn archive_names_carry_their_time() {
    assert_eq!(
        archive_time("2026-11-22T10-00-07Z"),
        Some("2026-11-22T10:00:07Z".parse().unwrap())
    );
    assert_eq!(archive_time("garbage"), None);
}

#[test]
fn the_ssh_command_is_one_list_and_quoted_only_where_an_engine_takes_a_string() {
    use super::env::{Env, shell_words};
    let ssh: Vec<String> = [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-i",
        "/tmp/kentledge-ssh-7/key",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "UserKnownHostsFile=/kentledge/secrets/known_hosts",
    ]
    .map(String::from)
    .into();
    // Words without shell syntax are joined as they are (today's BORG_RSH and sftp.command).
    assert_eq!(shell_words(&ssh), ssh.join(" "));
    assert_eq!(
        shell_words(&["ls".into(), "/a b".into(), "it's".into()]),
        r#"ls '/a b' 'it'\''s'"#
    );
    let env = Env {
        access: access(
            "offsite",
            Engine::Restic,
            "sftp://restic@backup:2222//srv/restic",
            true,
        ),
        location: Location::parse(Engine::Restic, "sftp://restic@backup:2222//srv/restic").unwrap(),
        vars: Vec::new(),
        _key_dir: None,
        ssh_command: Some(ssh.clone()),
    };
    assert_eq!(
        env.restic_options(),
        [
            "-o".to_owned(),
            format!(
                "sftp.command={} -p 2222 restic@backup -s sftp",
                ssh.join(" ")
            )
        ]
    );
    let mut argv = ssh.clone();
    argv.extend(["-p", "2222", "restic@backup", "true"].map(String::from));
    assert_eq!(
        env.ssh_argv("restic@backup".into(), Some(2222), vec!["true".into()]),
        Some(argv)
    );
}

#[test]
fn a_job_whose_location_does_not_parse_is_a_bad_job() {
    use super::env::Env;
    let access = access("offsite", Engine::Borg, "rest:http://backup/", false);
    let Err(f) = Env::prepare(&access) else {
        panic!("a borg job with a restic location")
    };
    assert_eq!(f.failure, Failure::BadJob);
    assert!(
        f.message.contains("not an ssh:// repository URL"),
        "{}",
        f.message
    );
}

#[test]
fn a_killed_writers_cache_lock_is_among_the_holders() {
    use super::env::Env;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let cache = dir.path().join("base/.cache/borg/0123abcd");
    std::fs::create_dir_all(repo.join("lock.exclusive")).unwrap();
    std::fs::create_dir_all(cache.join("lock.exclusive")).unwrap();
    std::fs::write(
        cache.join("lock.exclusive/kentledge-mover-1a2b3c-x-0.7-0"),
        "",
    )
    .unwrap();
    let location = repo.display().to_string();
    let env = Env {
        access: access("vault", Engine::Borg, &location, false),
        location: Location::parse(Engine::Borg, &location).unwrap(),
        vars: vec![(
            "BORG_BASE_DIR".into(),
            dir.path().join("base").display().to_string(),
        )],
        _key_dir: None,
        ssh_command: None,
    };
    // The repository's lock was broken (or released), the cache's was not.
    assert_eq!(
        super::locks::borg_holders(&env),
        ["kentledge-mover-1a2b3c-x-0 7"]
    );
}

#[test]
fn a_full_cache_volume_is_named_with_what_to_do() {
    let said =
        "[Errno 28] No space left on device: '/kentledge/cache/borg/.cache/borg/0123/txn.tmp'";
    assert_eq!(
        super::process::cache_full(said, "vault").as_deref(),
        Some(
            " (the cache volume of repository vault is full: raise spec.repositories[vault].cache.size, or set cache: {enabled: false})"
        )
    );
    assert_eq!(
        super::process::cache_full(
            "[Errno 28] No space left on device: '/repository/shop/data/1'",
            "vault"
        ),
        None,
        "a full repository is not the cache's fault"
    );
    assert_eq!(
        super::process::repository_full("OSError: [Errno 28] No space left on device", "vault")
            .as_deref(),
        Some(
            " (the storage of repository vault is full: give it more room, for a volume by raising its claim's size, or delete archives with `kentledge prune`, then run again)"
        )
    );
    assert_eq!(super::process::repository_full(said, "vault"), None);
    assert!(
        super::process::repository_full(
            "Fatal: unable to save snapshot: write /repository/shop/data/3f/3f1a: no space left on device",
            "vault"
        )
        .is_some(),
        "restic's words too"
    );
}

/// A job's repository access with the defaults these tests share.
fn access(
    name: &str,
    engine: Engine,
    location: &str,
    passphrase: bool,
) -> crate::mover::job::Access {
    crate::mover::job::Access::for_tests(
        name,
        engine,
        location,
        passphrase,
        "kentledge-mover-1a2b3c-",
    )
}

#[test]
fn the_mover_reads_its_own_and_its_engines_peak_memory() {
    // A child that touches some memory, waited for: its peak shows as the engine's.
    let st = std::process::Command::new("sh")
        .args([
            "-c",
            "x=$(head -c 4000000 /dev/zero | tr '\\0' a); echo ${#x} >/dev/null",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let said = super::peak_memory().expect("Linux has /proc/self/status and getrusage");
    let kb: Vec<u64> = said
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(kb.len(), 2, "{said}");
    assert!(
        kb[0] > 1000,
        "this test process holds more than 1 MB: {said}"
    );
    assert!(kb[1] > 0, "{said}");
    assert!(said.starts_with("mover peak memory: kentledge "), "{said}");
}

#[test]
fn a_borg_restore_takes_only_an_archive_whose_name_is_of_its_series() {
    use crate::engines::{Series, SeriesKind};
    let db = Series {
        config: "shop".into(),
        namespace: "prod".into(),
        kind: SeriesKind::Volume,
        name: "db".into(),
    };
    let ours = "kentledge_shop_prod_vol_db_2026-11-22T10-00-07Z";
    assert_eq!(
        super::restore::borg_archive_of(&db, ours, "vault").unwrap(),
        ours
    );
    for other in [
        "kentledge_shop_prod_vol_db-wal_2026-11-22T10-00-07Z",
        "kentledge_other_prod_vol_db_2026-11-22T10-00-07Z",
        "kentledge_shop_prod_db_db_2026-11-22T10-00-07Z",
        "db",
    ] {
        let e = super::restore::borg_archive_of(&db, other, "vault").unwrap_err();
        assert_eq!(
            e.message,
            format!("{other} is not an archive of the series db in repository vault")
        );
    }
}
