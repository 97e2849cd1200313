//! The mover's `relay` job (the building block of database dumps): in a pod with the
//! `kentledge` ServiceAccount's token, it runs a command in another pod by exec with its
//! in-cluster credentials and copies the command's stdout to its own, byte for byte; it exits
//! non-zero when the command fails or the stream lacks its end marker (so an engine reading it
//! with `--content-from-command` makes no archive).

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::json;

use crate::cluster::TestCluster;

/// Runs a relay pod for `job`; returns (exit code, stdout bytes, stderr text).
fn relay(tc: &TestCluster, name: &str, job: serde_json::Value) -> (i32, Vec<u8>, String) {
    let out = tempfile::tempdir().unwrap();
    let script =
        format!("kentledge mover --job \"$JOB\" > /out/{name}.stdout 2> /out/{name}.stderr");
    let (code, _) = in_mover_pod(tc, name, out.path(), &script, &[("JOB", job.to_string())]);
    let read = |ext: &str| std::fs::read(out.path().join(format!("{name}.{ext}"))).unwrap();
    (
        code,
        read("stdout"),
        String::from_utf8_lossy(&read("stderr")).into_owned(),
    )
}

#[test]
fn a_relay_streams_another_pods_output_and_fails_when_it_is_not_whole() {
    let tc = TestCluster::start("shop");
    tc.sleeper("db", &[], &[], &[]);
    // 2 MB of lines, then the end marker, as mariadb-dump writes it.
    let dump = "seq 1 300000; echo '-- Dump completed on 2026-12-01'";
    let (code, stdout, stderr) = relay(
        &tc,
        "whole",
        json!({"action": "relay", "pod": "db", "container": "main",
        "command": ["sh", "-c", dump], "endMarker": "-- Dump completed"}),
    );
    assert_eq!(code, 0, "{stderr}");
    let expected: String = (1..=300000).map(|i| format!("{i}\n")).collect::<String>()
        + "-- Dump completed on 2026-12-01\n";
    assert_eq!(stdout.len(), expected.len(), "{stderr}");
    assert!(stdout == expected.as_bytes(), "byte for byte");
    assert!(stderr.contains("complete"), "{stderr}");

    // A command that fails half way, and a stream without its end: exit 1, said why.
    let (code, _, stderr) = relay(
        &tc,
        "fails",
        json!({"action": "relay", "pod": "db", "container": "main",
        "command": ["sh", "-c", "seq 1 1000; echo broken >&2; exit 3"], "endMarker": "-- Dump completed"}),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("exit code 3") && stderr.contains("broken"),
        "{stderr}"
    );
    let (code, _, stderr) = relay(
        &tc,
        "cut",
        json!({"action": "relay", "pod": "db", "container": "main",
        "command": ["sh", "-c", "seq 1 1000"], "endMarker": "-- Dump completed"}),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("cut short"), "{stderr}");
    let (code, _, stderr) = relay(
        &tc,
        "nopod",
        json!({"action": "relay", "pod": "gone", "container": "main",
        "command": ["true"]}),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("gone"), "{stderr}");
}

/// Runs `script` (sh) in a pod of the kentledge image with the `kentledge` ServiceAccount and a
/// host directory at /out; returns its exit code and combined output.
fn in_mover_pod(
    tc: &TestCluster,
    name: &str,
    out: &std::path::Path,
    script: &str,
    env: &[(&str, String)],
) -> (i32, String) {
    let env: Vec<serde_json::Value> = env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    let _: Pod = tc.create(json!({
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "serviceAccountName": "kentledge",
            "volumes": [{"name": "out", "hostPath": {"path": out.display().to_string()}}],
            "containers": [{"name": "mover", "image": "ghcr.io/kentledge/kentledge",
                "command": ["sh", "-c", format!("( {script} ) > /out/{name}.log 2>&1; echo $? > /out/{name}.code")],
                "env": env,
                "volumeMounts": [{"name": "out", "mountPath": "/out"}]}]},
    }));
    let pods: Api<Pod> = Api::namespaced(tc.client(), &tc.namespace);
    tc.wait(120, &format!("pod {name} to end"), || {
        let p = tc.block_on(pods.get(name)).ok()?;
        matches!(p.status?.phase.as_deref(), Some("Succeeded" | "Failed")).then_some(())
    });
    let code = std::fs::read_to_string(out.join(format!("{name}.code")))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (
        code,
        std::fs::read_to_string(out.join(format!("{name}.log"))).unwrap_or_default(),
    )
}

#[test]
fn a_real_mariadb_dump_relayed_into_borg_comes_back_and_a_failed_one_leaves_no_archive() {
    use crate::mariadb::{SOCKET, running_mariadb, sql};
    let tc = TestCluster::start("shop");
    running_mariadb(&tc, "db-0", "mysql");
    sql(
        &tc,
        "db-0",
        "CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, note TEXT, blob_col BLOB) ENGINE=InnoDB; \
        INSERT INTO shop.orders VALUES (1, 'ünïcødé ✓', UNHEX('00FF10')), (2, 'two', NULL);",
    );
    let want = sql(&tc, "db-0", "CHECKSUM TABLE shop.orders");
    let out = tempfile::tempdir().unwrap();
    let dump = |db: &str| {
        json!({"action": "relay", "pod": "db-0", "container": "mariadb",
        "command": ["mariadb-dump", "--socket", SOCKET, "-uroot", "--single-transaction", "--routines", "--triggers", "--events", "--hex-blob", "--databases", db],
        "endMarker": "-- Dump completed"}).to_string()
    };
    let env = |db: &str| {
        vec![
            ("BORG_PASSPHRASE", "p".to_owned()),
            ("BORG_BASE_DIR", "/out/base".to_owned()),
            ("RELAY", dump(db)),
        ]
    };
    let script = "borg init -e repokey /out/repo 2>/dev/null; borg create --content-from-command --stdin-name db.sql /out/repo::$ARCHIVE -- kentledge mover --job \"$RELAY\"";
    let mut e = env("shop");
    e.push(("ARCHIVE", "shop-1".to_owned()));
    let (code, log) = in_mover_pod(&tc, "dump-ok", out.path(), script, &e);
    assert_eq!(code, 0, "{log}");
    // A missing database: mariadb-dump fails, the relay exits 1, borg makes no archive.
    let mut e = env("nope");
    e.push(("ARCHIVE", "nope-1".to_owned()));
    let (code, log) = in_mover_pod(&tc, "dump-missing", out.path(), script, &e);
    assert_ne!(code, 0, "{log}");
    assert!(log.contains("nope"), "the reason is named: {log}");
    let listed = std::process::Command::new("borg")
        .args(["list", "--short"])
        .arg(out.path().join("repo"))
        .env("BORG_PASSPHRASE", "p")
        .env("BORG_BASE_DIR", out.path().join("base-host"))
        .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert_eq!(
        names.trim(),
        "shop-1",
        "only the whole dump is an archive: {names}"
    );
    // Restore the dump under another name and compare the table's checksum.
    let extracted = std::process::Command::new("borg")
        .args(["extract", "--stdout"])
        .arg(format!("{}::shop-1", out.path().join("repo").display()))
        .env("BORG_PASSPHRASE", "p")
        .env("BORG_BASE_DIR", out.path().join("base-host"))
        .output()
        .unwrap();
    assert!(
        extracted.status.success(),
        "{}",
        String::from_utf8_lossy(&extracted.stderr)
    );
    let text = String::from_utf8(extracted.stdout)
        .unwrap()
        .replace("`shop`", "`shop_restored`");
    assert!(text.contains("-- Dump completed"));
    let pods: Api<Pod> = Api::namespaced(tc.client(), &tc.namespace);
    let load = tc.block_on(async {
        let mut p = pods
            .exec(
                "db-0",
                crate::mariadb::argv(&["mariadb", "--socket", SOCKET, "-uroot"]),
                &kube::api::AttachParams::default()
                    .container("mariadb")
                    .stdin(true)
                    .stdout(true)
                    .stderr(true),
            )
            .await
            .unwrap();
        let mut w = p.stdin().unwrap();
        use tokio::io::AsyncWriteExt;
        w.write_all(text.as_bytes()).await.unwrap();
        w.shutdown().await.unwrap();
        drop(w);
        p.take_status().unwrap().await
    });
    assert_eq!(load.and_then(|s| s.status).as_deref(), Some("Success"));
    let got = sql(&tc, "db-0", "CHECKSUM TABLE shop_restored.orders");
    assert_eq!(
        got.split_whitespace().last(),
        want.split_whitespace().last(),
        "{got} vs {want}"
    );
}

#[test]
fn the_dump_action_stores_a_whole_dump_in_borg_and_restic_and_no_archive_of_a_failed_one() {
    use crate::mariadb::{SOCKET, running_mariadb, sql};
    let tc = TestCluster::start("shop");
    running_mariadb(&tc, "db-0", "mysql");
    sql(
        &tc,
        "db-0",
        "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB; INSERT INTO shop.t VALUES (1, 'a'), (2, 'b');",
    );
    let _: k8s_openapi::api::core::v1::Secret =
        tc.create(json!({"metadata": {"name": "pass"}, "stringData": {"passphrase": "p4ss"}}));
    let repos = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let relay = |db: &str| {
        json!({"action": "relay", "pod": "db-0", "container": "mariadb",
        "command": ["mariadb-dump", "--socket", SOCKET, "-uroot", "--single-transaction", "--databases", db],
        "endMarker": "-- Dump completed"})
    };
    let job = |engine: &str, db: &str| {
        json!({
        "repository": {"name": engine, "engine": engine, "location": format!("/repository/{engine}"),
            "init": if engine == "borg" { "repokey" } else { "" }, "passphrase": true, "lockWaitSecs": 30, "moverPrefix": "kentledge-mover-x-"},
        "action": "dump",
        "series": {"config": "shop", "namespace": "shop", "kind": "db", "name": db},
        "time": "2026-12-01T10:00:00Z", "fileName": format!("{db}.sql"), "relay": relay(db),
    }).to_string()
    };
    let pods: Api<Pod> = Api::namespaced(tc.client(), &tc.namespace);
    let run_dump = |name: &str, engine: &str, db: &str| -> (i32, String) {
        let _: Pod = tc.create(json!({
            "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "serviceAccountName": "kentledge",
                "volumes": [
                    {"name": "out", "hostPath": {"path": out.path().display().to_string()}},
                    {"name": "repo", "hostPath": {"path": repos.path().display().to_string()}},
                    {"name": "secrets", "secret": {"secretName": "pass", "defaultMode": 0o400}},
                    {"name": "cache", "emptyDir": {}}],
                "containers": [{"name": "mover", "image": "ghcr.io/kentledge/kentledge",
                    "command": ["sh", "-c", format!("kentledge mover --job \"$JOB\" > /out/{name}.log 2>&1; echo $? > /out/{name}.code")],
                    "env": [{"name": "JOB", "value": job(engine, db)}],
                    "volumeMounts": [{"name": "out", "mountPath": "/out"}, {"name": "repo", "mountPath": "/repository"},
                        {"name": "secrets", "mountPath": "/kentledge/secrets"}, {"name": "cache", "mountPath": "/kentledge/cache"}]}]},
        }));
        tc.wait(120, &format!("pod {name} to end"), || {
            let p = tc.block_on(pods.get(name)).ok()?;
            matches!(p.status?.phase.as_deref(), Some("Succeeded" | "Failed")).then_some(())
        });
        let code = std::fs::read_to_string(out.path().join(format!("{name}.code")))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        (
            code,
            std::fs::read_to_string(out.path().join(format!("{name}.log"))).unwrap_or_default(),
        )
    };
    for engine in ["borg", "restic"] {
        let (code, log) = run_dump(&format!("{engine}-ok"), engine, "shop");
        assert_eq!(code, 0, "{engine}: {log}");
        assert!(log.contains("\"event\":\"summary\""), "{engine}: {log}");
        let (code, log) = run_dump(&format!("{engine}-missing"), engine, "nope");
        assert_ne!(code, 0, "{engine}: {log}");
        assert!(log.contains("nope"), "{engine}: the reason is named: {log}");
    }
    // Exactly one archive in each, and it is the whole dump.
    let borg = std::process::Command::new("borg")
        .args(["list", "--short"])
        .arg(repos.path().join("borg"))
        .env("BORG_PASSPHRASE", "p4ss")
        .env("BORG_BASE_DIR", out.path().join("b"))
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&borg.stdout).into_owned();
    assert_eq!(
        names.trim(),
        "kentledge_shop_shop_db_shop_2026-12-01T10-00-00Z",
        "{names}{}",
        String::from_utf8_lossy(&borg.stderr)
    );
    let pw = out.path().join("pw");
    std::fs::write(&pw, "p4ss").unwrap();
    let restic = |args: &[&str]| {
        let o = std::process::Command::new("restic")
            .args(args)
            .env("RESTIC_REPOSITORY", repos.path().join("restic"))
            .env("RESTIC_PASSWORD_FILE", &pw)
            .env("RESTIC_CACHE_DIR", out.path().join("rc"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let snaps: serde_json::Value = serde_json::from_str(&restic(&["snapshots", "--json"])).unwrap();
    assert_eq!(
        snaps.as_array().unwrap().len(),
        1,
        "the failed stream's snapshot was forgotten: {snaps}"
    );
    let dumped = restic(&["dump", "latest", "/shop.sql"]);
    assert!(
        dumped.contains("INSERT INTO `t`") && dumped.trim_end().ends_with(|c: char| c.is_ascii()),
        "{}",
        &dumped[..dumped.len().min(400)]
    );
    assert!(dumped.lines().last().unwrap().contains("-- Dump completed"));
}
