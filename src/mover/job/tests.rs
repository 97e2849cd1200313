//! The mover job's wire format, failure codes and lock holders.
use super::*;
use crate::engines::SeriesKind;

fn access() -> Access {
    Access {
        name: "offsite".into(),
        engine: Engine::Borg,
        location: "ssh://borg@backup:2222/./shop".into(),
        init: Some("repokey-blake2".into()),
        passphrase: true,
        ssh: Some(Ssh {
            key: true,
            known_hosts: true,
            insecure: false,
        }),
        lock_wait_secs: 600,
        remote_path: None,
        compression: Some("zstd,3".into()),
        mover_prefix: "kentledge-mover-1a2b3c-".into(),
    }
}

#[test]
fn a_job_round_trips_through_its_argument() {
    let job = Job {
        repository: access(),
        action: Action::Backup {
            series: Series {
                config: "shop".into(),
                namespace: "prod".into(),
                kind: SeriesKind::Volume,
                name: "data".into(),
            },
            cut: "2026-11-22T10:00:07Z".parse().unwrap(),
            snapshot: "data-20261122-100007-k3x9".into(),
            upload_limit: None,
            exclude: vec!["lost+found".into()],
        },
    };
    let arg = job.to_arg();
    insta::assert_snapshot!(arg, @r#"{"repository":{"name":"offsite","engine":"borg","location":"ssh://borg@backup:2222/./shop","init":"repokey-blake2","passphrase":true,"ssh":{"key":true,"knownHosts":true,"insecure":false},"lockWaitSecs":600,"compression":"zstd,3","moverPrefix":"kentledge-mover-1a2b3c-"},"action":"backup","series":{"config":"shop","namespace":"prod","kind":"vol","name":"data"},"cut":"2026-11-22T10:00:07Z","snapshot":"data-20261122-100007-k3x9","exclude":["lost+found"]}"#);
    let back: Job = serde_json::from_str(&arg).unwrap();
    assert_eq!(back, job);
}

#[test]
fn events_round_trip_and_other_lines_are_ignored() {
    let e = MoverEvent::Failed {
        failure: Failure::Locked,
        message: "locked".into(),
        holders: vec!["kentledge-mover-1a2b3c-3f9a-0 17".into()],
    };
    assert_eq!(MoverEvent::parse(&e.to_line()), Some(e));
    assert_eq!(MoverEvent::parse("borg: plain text"), None);
    assert_eq!(MoverEvent::parse(r#"{"type":"log_message"}"#), None);
}

#[test]
fn a_summary_event_keeps_its_wire_names() {
    let e = MoverEvent::Summary {
        summary: Summary {
            bytes_read: 10,
            bytes_added: 4,
            files: 2,
            archive: "a1b2".into(),
        },
    };
    assert_eq!(
        e.to_line(),
        r#"{"event":"summary","bytesRead":10,"bytesAdded":4,"files":2,"archive":"a1b2"}"#
    );
    assert_eq!(MoverEvent::parse(&e.to_line()), Some(e));
}

#[test]
fn exit_codes_and_failures_correspond() {
    for f in [
        Failure::NoRepository,
        Failure::Unreachable,
        Failure::Locked,
        Failure::Passphrase,
        Failure::Failed,
        Failure::BadJob,
    ] {
        assert_eq!(Failure::from_code(f.code()), Some(f));
    }
    assert_eq!(Failure::from_code(0), None);
    assert_eq!(Failure::from_code(137), Some(Failure::Failed));
}

#[test]
fn holders_are_movers_of_this_namespace_or_others() {
    let p = "kentledge-mover-1a2b3c-";
    let got = classify_holders(
        &[
            "kentledge-mover-1a2b3c-3f9a-0 17".into(),
            "kentledge-mover-1a2b3c-3f9a-1@12345-0".into(),
            "kentledge-mover-ffffff-3f9a-0 9".into(),
            "laptop 4242".into(),
        ],
        p,
    );
    assert_eq!(
        got,
        vec![
            Holder::Mover("kentledge-mover-1a2b3c-3f9a-0".into()),
            Holder::Mover("kentledge-mover-1a2b3c-3f9a-1".into()),
            Holder::Other("kentledge-mover-ffffff-3f9a-0 9".into()),
            Holder::Other("laptop 4242".into()),
        ]
    );
}
