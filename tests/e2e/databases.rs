//! Database dumps through `kentledge backup` on the local test cluster, with a real MariaDB
//! 10.11 and PostgreSQL 15 running as pods and real borg and restic repositories: each database
//! its own series, streamed from the database's own client by a mover pod; a failed dump is no
//! restore point; no password anywhere.

use std::path::Path;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::Api;
use serde_json::{Value, json};

use crate::backup::{PASSPHRASE, empty_pvc, leftovers, passphrase_secret};
use crate::cluster::TestCluster;
use crate::mariadb::{running_mariadb, sql};
use crate::support::run;

/// The database user's password: it must appear nowhere kentledge writes or sends.
const DB_PASSWORD: &str = "Dump-Pa55-8c1f0e";

/// The repositories (borg and restic on PVCs) and a MariaDB entry using them.
fn maria_spec(credentials: &str) -> String {
    format!(
        r#"  repositories:
    - name: borg-local
      borg:
        pvc: {{claimName: borg-repo, path: shop}}
        passphrase: {{secret: repo-pass, key: passphrase}}
        init: true
    - name: restic-local
      restic:
        pvc: {{claimName: restic-repo}}
        password: {{secret: repo-pass, key: passphrase}}
        init: true
  offsite:
    databases:
      - name: maria
        engine: mariadb
        pod: {{selector: {{matchLabels: {{app: db-0}}}}}}
        container: mariadb
        credentials: {credentials}
        repositories: [borg-local, restic-local]
"#
    )
}

/// A MariaDB pod `db-0` with a `backup` user (password [`DB_PASSWORD`] in Secret `db-pass`)
/// and databases `shop` (InnoDB tables with unicode text and BLOBs, a view, a trigger, a
/// routine, an event) and `my_app`.
fn shop_server(tc: &TestCluster) {
    passphrase_secret(tc);
    empty_pvc(tc, "borg-repo");
    empty_pvc(tc, "restic-repo");
    let _: Secret = tc.create(json!({
        "metadata": {"name": "db-pass"}, "stringData": {"password": DB_PASSWORD}}));
    running_mariadb(tc, "db-0", "mysql");
    sql(
        tc,
        "db-0",
        &format!(
            "CREATE USER backup@localhost IDENTIFIED BY '{DB_PASSWORD}'; GRANT ALL ON *.* TO backup@localhost; \
        CREATE DATABASE shop; USE shop; \
        CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, note TEXT, photo MEDIUMBLOB, total DECIMAL(10,2)) ENGINE=InnoDB; \
        CREATE TABLE audit (id INT PRIMARY KEY AUTO_INCREMENT, order_id INT) ENGINE=InnoDB; \
        CREATE TRIGGER orders_ai AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit (order_id) VALUES (NEW.id); \
        INSERT INTO orders (note, photo, total) VALUES ('ünïcødé ✓ 東京', UNHEX('00FF10FE'), 9.99), ('two', NULL, 1.50), ('three', REPEAT(UNHEX('AB'), 70000), 70.00); \
        CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 5; \
        CREATE FUNCTION double_it(x INT) RETURNS INT DETERMINISTIC RETURN x * 2; \
        CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DO DELETE FROM audit WHERE id < 0; \
        CREATE DATABASE my_app; CREATE TABLE my_app.kv (k VARCHAR(10) PRIMARY KEY, v INT) ENGINE=InnoDB; INSERT INTO my_app.kv VALUES ('a', 1), ('b', 2);"
        ),
    );
}

/// Each of `rows` (`entry/database`) has an ok row for borg and one for restic.
fn dumped_to_both(stdout: &str, rows: &[&str]) {
    for row in rows {
        let ok = stdout
            .lines()
            .filter(|l| l.contains(row) && l.contains("ok: "))
            .count();
        assert_eq!(ok, 2, "{row} in borg and restic: {stdout}");
    }
}

fn checksum(tc: &TestCluster, table: &str) -> String {
    sql(tc, "db-0", &format!("CHECKSUM TABLE {table}"))
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// The dump in the newest archive whose name starts with `prefix` in the borg repository on
/// PVC borg-repo (read with borg itself, on the host).
fn newest_borg_file(tc: &TestCluster, prefix: &str) -> String {
    let repo = tc.volume_dir("borg-repo").join("shop");
    let base = tempfile::tempdir().unwrap();
    let names = std::process::Command::new("borg")
        .args(["list", "--short"])
        .arg(&repo)
        .env("BORG_PASSPHRASE", PASSPHRASE)
        .env("BORG_BASE_DIR", base.path())
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&names.stdout).into_owned();
    let archive = names
        .lines()
        .rfind(|n| n.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}… in {names}"));
    String::from_utf8(borg_extract(&repo, archive, base.path())).unwrap()
}

fn borg_extract(repo: &Path, archive: &str, base: &Path) -> Vec<u8> {
    let o = std::process::Command::new("borg")
        .args(["extract", "--stdout"])
        .arg(format!("{}::{archive}", repo.display()))
        .env("BORG_PASSPHRASE", PASSPHRASE)
        .env("BORG_BASE_DIR", base)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

#[test]
fn mariadb_databases_are_dumped_each_into_its_own_series_and_load_back_equal() {
    let tc = TestCluster::start("shop");
    shop_server(&tc);
    let since = tc.requests().len();
    let cfg = tc.config(
        "shop",
        &maria_spec("{user: backup, passwordSecret: {secret: db-pass, key: password}}"),
    );
    let dry0 = run(tc.kentledge(&cfg).args(["backup", "--dry-run"]));
    assert_eq!(dry0.code, 0, "{}{}", dry0.stdout, dry0.stderr);
    assert!(
        dry0.stdout
            .contains("database maria (mariadb) → borg-local")
            && dry0.stdout.contains("dumped in  db-0/mariadb"),
        "{}",
        dry0.stdout
    );

    let r = run(tc.kentledge(&cfg).arg("backup"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    dumped_to_both(&r.stdout, &["maria/shop", "maria/my_app", "maria (users)"]);
    assert!(r.stdout.contains("\n6 of 6 dumps done"), "{}", r.stdout);
    assert!(leftovers(&tc).is_empty(), "{:?}", leftovers(&tc));

    // Each database is its own series in both repositories, and list shows them.
    let l = run(tc.kentledge(&cfg).args(["list", "archives", "-o", "json"]));
    assert_eq!(l.code, 0, "{}{}", l.stdout, l.stderr);
    let v: Value = serde_json::from_str(&l.stdout).unwrap();
    let mut series: Vec<String> = v["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["kind"].as_str().unwrap(),
                s["name"].as_str().unwrap()
            )
        })
        .collect();
    series.sort();
    assert_eq!(
        series,
        [
            "database maria",
            "database maria.my.5fapp",
            "database maria.shop"
        ],
        "{}",
        l.stdout
    );

    // kentledge restores shop from borg under another name: equal tables, and the view,
    // trigger, routine and event are there.
    let dry = run(tc.kentledge(&cfg).args([
        "restore",
        "database",
        "maria",
        "--repository",
        "borg-local",
        "--database",
        "shop",
        "--to-database",
        "shop_restored",
        "--dry-run",
    ]));
    assert_eq!(dry.code, 0, "{}{}", dry.stdout, dry.stderr);
    assert!(
        dry.stdout
            .contains("into       database shop_restored in db-0/mariadb"),
        "{}",
        dry.stdout
    );
    let restore = |args: &[&str]| {
        let mut a = vec!["restore", "database", "maria"];
        a.extend_from_slice(args);
        run(tc.kentledge(&cfg).args(&a))
    };
    let r1 = restore(&[
        "--repository",
        "borg-local",
        "--database",
        "shop",
        "--to-database",
        "shop_restored",
    ]);
    assert_eq!(r1.code, 0, "{}{}", r1.stdout, r1.stderr);
    assert!(
        r1.stdout.contains("restored database shop of maria"),
        "{}",
        r1.stdout
    );
    assert!(
        r1.stdout
            .contains("2 tables there (the dump creates 2); a new database"),
        "{}",
        r1.stdout
    );
    for t in ["orders", "audit"] {
        assert_eq!(
            checksum(&tc, &format!("shop_restored.{t}")),
            checksum(&tc, &format!("shop.{t}")),
            "{t}"
        );
    }
    assert_eq!(
        sql(
            &tc,
            "db-0",
            "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA='shop_restored'"
        ),
        "1"
    );
    assert_eq!(sql(&tc, "db-0", "SELECT shop_restored.double_it(21)"), "42");
    assert_eq!(
        sql(
            &tc,
            "db-0",
            "SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA='shop_restored'"
        ),
        "1"
    );
    assert_eq!(
        sql(&tc, "db-0", "SELECT COUNT(*) FROM shop_restored.big_orders"),
        "2"
    );
    // From restic: my_app (a name with `_`) under another name.
    let r2 = restore(&[
        "--repository",
        "restic-local",
        "--database",
        "my_app",
        "--to-database",
        "my_app_copy",
    ]);
    assert_eq!(r2.code, 0, "{}{}", r2.stdout, r2.stderr);
    assert_eq!(checksum(&tc, "my_app_copy.kv"), checksum(&tc, "my_app.kv"));
    let said = crate::support::events_of(&tc, "Pod", "db-0");
    assert!(
        said.iter().any(|(t, r, m, _)| t == "Normal"
            && r == "Restored"
            && m.contains("database my_app of maria restored into my_app_copy")),
        "a Normal Restored Event on the database pod: {said:?}"
    );
    assert!(
        said.iter()
            .any(|(t, r, _, _)| t == "Normal" && r == "Dumped"),
        "Normal Dumped Events: {said:?}"
    );
    // Several databases and no --database: refused, naming them.
    let r3 = restore(&["--repository", "borg-local"]);
    assert_eq!(r3.code, 1, "{}{}", r3.stdout, r3.stderr);
    assert!(
        r3.stderr
            .contains("say which with --database (my_app, shop)"),
        "{}",
        r3.stderr
    );
    // Into an existing database: refused without --replace, nothing changed.
    sql(
        &tc,
        "db-0",
        "INSERT INTO shop.orders (note, total) VALUES ('after the dump', 3.00)",
    );
    let changed = checksum(&tc, "shop.orders");
    let r4 = restore(&["--repository", "borg-local", "--database", "shop"]);
    assert_eq!(r4.code, 1, "{}{}", r4.stdout, r4.stderr);
    assert!(
        r4.stdout.contains("already exists") && r4.stdout.contains("--replace"),
        "{}",
        r4.stdout
    );
    assert_eq!(checksum(&tc, "shop.orders"), changed, "nothing was changed");
    // With --replace: a safety dump first (named), then the dump's state.
    let r5 = restore(&[
        "--repository",
        "borg-local",
        "--database",
        "shop",
        "--replace",
    ]);
    assert_eq!(r5.code, 0, "{}{}", r5.stdout, r5.stderr);
    assert!(
        r5.stdout.contains(
            "safety dump of the replaced database shop: kentledge_shop_shop_db_maria.shop..safety_"
        ),
        "{}",
        r5.stdout
    );
    assert_eq!(
        checksum(&tc, "shop.orders"),
        checksum(&tc, "shop_restored.orders")
    );
    let safety = r5
        .stdout
        .split("safety dump of the replaced database shop: ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap()
        .to_owned();
    // The safety dump is a restore point of what was replaced.
    let r6 = restore(&[
        "--repository",
        "borg-local",
        "--archive",
        &safety,
        "--to-database",
        "shop_before",
    ]);
    assert_eq!(r6.code, 0, "{}{}", r6.stdout, r6.stderr);
    assert_eq!(checksum(&tc, "shop_before.orders"), changed);
    assert!(leftovers(&tc).is_empty(), "{:?}", leftovers(&tc));
    // The users dump holds the backup user.
    let users = newest_borg_file(&tc, "kentledge_shop_shop_db_maria_");
    assert!(users.contains("`backup`@`localhost`"), "{users}");
    let said: Vec<&str> = [&r, &l, &dry0, &dry, &r1, &r2, &r3, &r4, &r5, &r6]
        .iter()
        .flat_map(|x| [x.stdout.as_str(), x.stderr.as_str()])
        .collect();
    crate::support::secret_nowhere(&tc, since, &said, DB_PASSWORD, "/exec?");
}

#[test]
fn a_failed_dump_is_no_restore_point_and_says_which_database_and_why() {
    let tc = TestCluster::start("shop");
    shop_server(&tc);
    let since = tc.requests().len();
    // A wrong password: every dump fails, no archive in either repository.
    let _: Secret = tc.create(json!({
        "metadata": {"name": "wrong"}, "stringData": {"password": "not-it"}}));
    let cfg = tc.config(
        "shop",
        &maria_spec("{user: backup, passwordSecret: {secret: wrong, key: password}}"),
    );
    let r = run(tc.kentledge(&cfg).arg("backup"));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Access denied"), "{}", r.stdout);
    assert!(leftovers(&tc).is_empty(), "{:?}", leftovers(&tc));
    let l = run(tc.kentledge(&cfg).args(["list", "archives", "-o", "json"]));
    let v: Value = serde_json::from_str(&l.stdout).unwrap();
    assert_eq!(v["series"], json!([]), "{}", l.stdout);

    // A missing database: that one fails and is named; the users dump is still made.
    let cfg = tc.config(
        "shop",
        &maria_spec("{user: backup, passwordSecret: {secret: db-pass, key: password}}").replace(
            "        container: mariadb\n",
            "        container: mariadb\n        databases: [shop, nope]\n",
        ),
    );
    let r = run(tc
        .kentledge(&cfg)
        .args(["backup", "--repository", "borg-local"]));
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    let nope = r
        .stdout
        .lines()
        .find(|l| l.contains("maria/nope"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(
        nope.contains("Unknown database") && nope.contains("no archive"),
        "{nope}"
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.contains("maria/shop") && l.contains("ok: ")),
        "{}",
        r.stdout
    );
    let l = run(tc.kentledge(&cfg).args(["list", "archives", "-o", "json"]));
    let v: Value = serde_json::from_str(&l.stdout).unwrap();
    let names: Vec<&str> = v["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.contains("nope")), "{names:?}");

    // The pod does not exist: skipped, named, exit 1, nothing made.
    let cfg = tc.config(
        "shop",
        &maria_spec("{user: backup}")
            .replace("{selector: {matchLabels: {app: db-0}}}", "{name: db-9}"),
    );
    let r = run(tc.kentledge(&cfg).arg("backup"));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("skipped database maria: pod db-9 is not running"),
        "{}",
        r.stdout
    );
    assert!(leftovers(&tc).is_empty(), "{:?}", leftovers(&tc));
    crate::support::secret_nowhere(&tc, since, &[&r.stdout, &r.stderr], DB_PASSWORD, "/exec?");
}

/// The ordered md5 of every row of a table, and the sequence's and large objects' state.
fn pg_state(tc: &TestCluster, db: &str) -> Vec<String> {
    [
        "SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM sales.orders t",
        "SELECT md5(string_agg(t::text, '|' ORDER BY sku)) FROM inventory.items t",
        "SELECT last_value FROM inventory.ticket",
        "SELECT tableowner FROM pg_tables WHERE schemaname = 'sales' AND tablename = 'orders'",
        "SELECT string_agg(encode(lo_get(oid), 'escape'), ',' ORDER BY oid) FROM pg_largeobject_metadata",
    ]
    .iter()
    .map(|q| crate::postgres::psql(tc, "pg-0", db, q))
    .collect()
}

#[test]
fn postgresql_databases_are_dumped_in_custom_format_and_restored_under_another_name() {
    use crate::postgres::{PG_PASSWORD, psql, running_postgres};
    let tc = TestCluster::start("shop");
    passphrase_secret(&tc);
    empty_pvc(&tc, "borg-repo");
    empty_pvc(&tc, "restic-repo");
    running_postgres(&tc, "pg-0", "pgdata");
    psql(&tc, "pg-0", "postgres", "CREATE ROLE app LOGIN");
    psql(&tc, "pg-0", "postgres", "CREATE DATABASE shop OWNER app");
    for q in [
        "CREATE SCHEMA sales AUTHORIZATION app",
        "CREATE SCHEMA inventory AUTHORIZATION app",
        "CREATE TABLE sales.orders (id serial PRIMARY KEY, note text, photo bytea, total numeric(10,2))",
        "ALTER TABLE sales.orders OWNER TO app",
        "INSERT INTO sales.orders (note, photo, total) VALUES ('ünïcødé ✓ 東京', '\\x00ff10fe', 9.99), ('two', NULL, 1.5), ('three', decode(repeat('ab', 70000), 'hex'), 70)",
        "CREATE TABLE inventory.items (sku text PRIMARY KEY, qty int)",
        "INSERT INTO inventory.items VALUES ('a-1', 3), ('b-2', 0)",
        "CREATE SEQUENCE inventory.ticket START 100",
        "SELECT nextval('inventory.ticket'), nextval('inventory.ticket'), nextval('inventory.ticket')",
        "SELECT lo_from_bytea(0, 'large object bytes')",
    ] {
        psql(&tc, "pg-0", "shop", q);
    }
    let want = pg_state(&tc, "shop");
    assert_eq!(want[2], "102");
    assert_eq!(want[3], "app");
    let since = tc.requests().len();
    let spec = maria_spec("{user: postgres, passwordFromEnv: POSTGRES_PASSWORD}")
        .replace(
            "name: maria\n        engine: mariadb",
            "name: pg\n        engine: postgresql",
        )
        .replace("app: db-0", "app: pg-0")
        .replace("container: mariadb", "container: postgres")
        .replace(
            "        init: true\n    - name: restic-local",
            "        init: true\n      retention: {last: 1}\n    - name: restic-local",
        );
    let cfg = tc.config("shop", &spec);
    let r = run(tc.kentledge(&cfg).arg("backup"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    dumped_to_both(&r.stdout, &["pg/shop", "pg/postgres", "pg (users)"]);
    assert!(
        r.stderr.contains("pg_dump custom archive"),
        "the relay read it through: {}",
        r.stderr
    );
    let mut said = vec![r.stdout.clone(), r.stderr.clone()];
    for (repo, to) in [("borg-local", "shop_borg"), ("restic-local", "shop_restic")] {
        let x = run(tc.kentledge(&cfg).args([
            "restore",
            "database",
            "pg",
            "--repository",
            repo,
            "--database",
            "shop",
            "--to-database",
            to,
        ]));
        assert_eq!(x.code, 0, "{}{}", x.stdout, x.stderr);
        assert!(
            x.stdout.contains("2 tables there (the dump creates 2)"),
            "{}",
            x.stdout
        );
        assert!(
            x.stdout
                .contains("pg_restore --single-transaction --exit-on-error"),
            "{}",
            x.stdout
        );
        // Large objects are per database in PostgreSQL: the copy has its own.
        assert_eq!(pg_state(&tc, to), want, "{to}");
        said.extend([x.stdout, x.stderr]);
    }
    // --replace of an existing database: one transaction (pg_restore --clean), after a safety dump.
    psql(&tc, "pg-0", "shop", "DELETE FROM inventory.items");
    let x = run(tc.kentledge(&cfg).args([
        "restore",
        "database",
        "pg",
        "--repository",
        "borg-local",
        "--database",
        "shop",
        "--replace",
    ]));
    assert_eq!(x.code, 0, "{}{}", x.stdout, x.stderr);
    assert!(
        x.stdout.contains(
            "safety dump of the replaced database shop: kentledge_shop_shop_db_pg.shop..safety_"
        ),
        "{}",
        x.stdout
    );
    assert_eq!(pg_state(&tc, "shop")[..4], want[..4]);
    said.extend([x.stdout, x.stderr]);
    // Database series are pruned like volume series: borg keeps the newest dump of each.
    let borg_archives = |tc: &TestCluster| -> Vec<String> {
        let l = run(tc.kentledge(&cfg).args([
            "list",
            "archives",
            "--repository",
            "borg-local",
            "-o",
            "json",
        ]));
        assert_eq!(l.code, 0, "{}{}", l.stdout, l.stderr);
        let v: Value = serde_json::from_str(&l.stdout).unwrap();
        let mut names: Vec<String> = v["series"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| {
                s["archives"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["archive"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        names.sort();
        names
    };
    // A second backup: two dumps of each database, one safety dump of shop in its own series.
    let b = run(tc
        .kentledge(&cfg)
        .args(["backup", "--repository", "borg-local"]));
    assert_eq!(b.code, 0, "{}{}", b.stdout, b.stderr);
    let before = borg_archives(&tc);
    let shop: Vec<&String> = before
        .iter()
        .filter(|a| a.contains("_db_pg.shop_"))
        .collect();
    assert_eq!(shop.len(), 2, "two dumps: {before:?}");
    assert_eq!(
        before
            .iter()
            .filter(|a| a.contains("_db_pg.shop..safety_"))
            .count(),
        1,
        "the safety dump: {before:?}"
    );
    let p = run(tc.kentledge(&cfg).args(["prune", "--only", "repositories"]));
    assert_eq!(p.code, 0, "{}{}", p.stdout, p.stderr);
    let after = borg_archives(&tc);
    // One dump of shop, one of postgres and one of the roles went; the safety dump stays.
    assert_eq!(after.len(), before.len() - 3, "{before:?} → {after:?}");
    assert!(
        !after.contains(shop[0]) && after.contains(shop[1]),
        "the older dump went: {after:?}"
    );
    said.extend([p.stdout, p.stderr]);
    // The roles dump holds the role that owns the tables.
    let globals = newest_borg_file(&tc, "kentledge_shop_shop_db_pg_");
    assert!(globals.contains("CREATE ROLE app"), "{globals}");
    assert!(leftovers(&tc).is_empty(), "{:?}", leftovers(&tc));
    let said: Vec<&str> = said.iter().map(String::as_str).collect();
    crate::support::secret_nowhere(&tc, since, &said, PG_PASSWORD, "/exec?");
}

/// Database `name` on db-0: 55 rows of 1 MiB of bytes (a dump of over 100 MB in hex), and a
/// counter with its log.
fn big_database(tc: &TestCluster, name: &str) {
    sql(
        tc,
        "db-0",
        &format!(
            "CREATE DATABASE {name}; USE {name}; \
         CREATE TABLE blobs (id INT PRIMARY KEY AUTO_INCREMENT, pad LONGBLOB) ENGINE=InnoDB; \
         INSERT INTO blobs (pad) SELECT REPEAT(RANDOM_BYTES(1024), 1024) FROM seq_1_to_55; \
         CREATE TABLE counter (id INT PRIMARY KEY, v INT) ENGINE=InnoDB; INSERT INTO counter VALUES (1, 0); \
         CREATE TABLE log (id INT PRIMARY KEY AUTO_INCREMENT) ENGINE=InnoDB;"
        ),
    );
}

fn big_spec(name: &str) -> String {
    maria_spec("{user: backup, passwordSecret: {secret: db-pass, key: password}}").replace(
        "        container: mariadb\n",
        &format!("        container: mariadb\n        databases: [{name}]\n"),
    )
}

#[test]
fn a_dump_of_over_100_mb_streams_whole_and_writes_during_it_do_not_break_its_consistency() {
    let tc = TestCluster::start("shop");
    shop_server(&tc);
    big_database(&tc, "big");
    let cfg = tc.config("shop", &big_spec("big"));
    // A writer moves the counter and its log together, one transaction a step, until told to stop.
    let stop = tempfile::tempdir().unwrap();
    let flag = stop.path().join("stop");
    let script = format!(
        "while [ ! -e {} ]; do echo 'START TRANSACTION; UPDATE big.counter SET v = v + 1; INSERT INTO big.log VALUES (); COMMIT;'; done | mariadb -uroot",
        flag.display()
    );
    let r = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let pods: Api<Pod> = Api::namespaced(tc.client(), &tc.namespace);
            tc.block_on(kentledge::kube::exec::run(
                &pods,
                "db-0",
                "mariadb",
                &["sh".to_owned(), "-c".to_owned(), script.clone()],
                std::time::Duration::from_secs(300),
            ))
        });
        tc.wait(30, "the writer to start", || {
            (sql(&tc, "db-0", "SELECT v FROM big.counter") != "0").then_some(())
        });
        let r = run(tc
            .kentledge(&cfg)
            .args(["backup", "--repository", "borg-local"]));
        std::fs::write(&flag, "").unwrap();
        let w = writer.join().unwrap();
        assert!(w.exit.ok(), "the writer: {}", w.stderr);
        r
    });
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let row = r
        .stdout
        .lines()
        .find(|l| l.contains("maria/big"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    let dumped: f64 = row.split_whitespace().nth(3).unwrap().parse().unwrap();
    let unit = row.split_whitespace().nth(4).unwrap();
    assert!(
        unit == "MiB" && dumped > 100.0,
        "a dump of over 100 MB: {row}"
    );
    let x = run(tc.kentledge(&cfg).args([
        "restore",
        "database",
        "maria",
        "--repository",
        "borg-local",
        "--to-database",
        "big_copy",
    ]));
    assert_eq!(x.code, 0, "{}{}", x.stdout, x.stderr);
    assert_eq!(
        sql(&tc, "db-0", "SELECT COUNT(*) FROM big_copy.blobs"),
        "55"
    );
    assert_eq!(checksum(&tc, "big_copy.blobs"), checksum(&tc, "big.blobs"));
    // One consistent point: the counter equals its log, and writes went on after it.
    let v: u64 = sql(&tc, "db-0", "SELECT v FROM big_copy.counter")
        .parse()
        .unwrap();
    let n: u64 = sql(&tc, "db-0", "SELECT COUNT(*) FROM big_copy.log")
        .parse()
        .unwrap();
    assert_eq!(v, n, "the dump is of one transaction's view");
    assert!(v > 0);
    let later: u64 = sql(&tc, "db-0", "SELECT v FROM big.counter")
        .parse()
        .unwrap();
    assert!(
        later > v,
        "the writer wrote during the dump ({later} > {v})"
    );
}

/// The host pids of running mariadb-dump processes of database `halfway` (the test cluster's
/// containers are processes of this machine; no other test has a database of that name).
fn dumps_of_halfway() -> Vec<String> {
    let o = std::process::Command::new("pgrep")
        .args(["-f", "^mariadb-dump .*-- halfway$"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn a_dump_killed_or_a_database_pod_deleted_half_way_is_no_restore_point() {
    let tc = TestCluster::start("shop");
    shop_server(&tc);
    big_database(&tc, "halfway");
    let cfg = tc.config("shop", &big_spec("halfway"));
    let archives = |tc: &TestCluster| -> Vec<String> {
        let l = run(tc.kentledge(&cfg).args(["list", "archives", "-o", "json"]));
        let v: Value =
            serde_json::from_str(&l.stdout).unwrap_or_else(|_| panic!("{}{}", l.stdout, l.stderr));
        v["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    };
    // Half way through, each dump is killed (SIGKILL), or the database pod is deleted.
    for how in ["kill", "delete"] {
        let mut child = tc
            .kentledge(&cfg)
            .arg("backup")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        match how {
            "kill" => {
                // Every dump of the database is killed as soon as it runs, until the run ends.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
                let mut seen = std::collections::BTreeSet::new();
                while child.try_wait().unwrap().is_none() {
                    let pids = dumps_of_halfway();
                    if !pids.is_empty() {
                        let _ = std::process::Command::new("kill")
                            .arg("-9")
                            .args(&pids)
                            .status();
                        seen.extend(pids);
                    }
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the backup did not end"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                assert_eq!(
                    seen.len(),
                    2,
                    "one dump per repository was killed: {seen:?}"
                );
            }
            _ => {
                tc.wait(60, "a dump to start", || {
                    (!dumps_of_halfway().is_empty()).then_some(())
                });
                let pods: Api<Pod> = Api::namespaced(tc.client(), &tc.namespace);
                tc.block_on(
                    pods.delete("db-0", &kube::api::DeleteParams::default().grace_period(0)),
                )
                .unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        // Killed dumps: the users dumps after them are still made (partial); a deleted pod: none.
        assert_eq!(
            out.status.code(),
            Some(if how == "kill" { 3 } else { 1 }),
            "{how}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Every row of the database (or of its whole server, when a mover stopped before it
        // could say what it was about to dump) is a failure.
        let rows: Vec<&str> = stdout
            .lines()
            .filter(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.first() == Some(&"maria/halfway")
                    || (w.first() == Some(&"maria") && w.get(1) != Some(&"(users)"))
            })
            .collect();
        assert!(!rows.is_empty(), "{how}: {stdout}");
        for row in rows {
            assert!(!row.contains("ok: "), "{how}: {row}");
        }
        assert!(
            !archives(&tc).iter().any(|s| s.contains("halfway")),
            "{how}: no restore point of a cut dump"
        );
        assert!(leftovers(&tc).is_empty(), "{how}: {:?}", leftovers(&tc));
        if how == "delete" {
            break;
        }
    }
}

#[test]
fn a_mover_killed_half_way_through_a_restic_dump_leaves_no_snapshot() {
    let tc = TestCluster::start("shop");
    shop_server(&tc);
    big_database(&tc, "moverkill");
    let cfg = tc.config("shop", &big_spec("moverkill"));
    let child = tc
        .kentledge(&cfg)
        .args(["backup", "--repository", "restic-local"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The mover pod's own process (its job names this test's database), while it dumps.
    let mover = tc.wait(60, "the dump to start", || {
        let dumping = std::process::Command::new("pgrep")
            .args(["-f", "^mariadb-dump .*-- moverkill$"])
            .output()
            .ok()?;
        if dumping.stdout.is_empty() {
            return None;
        }
        let o = std::process::Command::new("pgrep")
            .args([
                "-f",
                "kentledge mover --job .*\"databases\":\\[\"moverkill\"\\]",
            ])
            .output()
            .ok()?;
        let pids = String::from_utf8_lossy(&o.stdout).trim().to_owned();
        (!pids.is_empty() && !pids.contains('\n')).then_some(pids)
    });
    let st = std::process::Command::new("kill")
        .args(["-9", &mover])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = stdout
        .lines()
        .find(|l| l.contains("maria/moverkill"))
        .unwrap_or_else(|| panic!("a row for the dump in flight: {stdout}"));
    assert!(!row.contains("ok: "), "{row}");
    let l = run(tc.kentledge(&cfg).args([
        "list",
        "archives",
        "--repository",
        "restic-local",
        "-o",
        "json",
    ]));
    assert_eq!(l.code, 0, "{}{}", l.stdout, l.stderr);
    assert!(
        !l.stdout.contains("moverkill"),
        "no snapshot of a cut dump: {}",
        l.stdout
    );
    assert!(leftovers(&tc).is_empty(), "{:?}", leftovers(&tc));
}

/// A cluster whose server has the big database `name`, dumped into borg-local by its config.
fn big_database_backed_up(name: &str) -> (TestCluster, std::path::PathBuf) {
    let tc = TestCluster::start("shop");
    shop_server(&tc);
    big_database(&tc, name);
    let cfg = tc.config("shop", &big_spec(name));
    let b = run(tc
        .kentledge(&cfg)
        .args(["backup", "--repository", "borg-local"]));
    assert_eq!(b.code, 0, "{}{}", b.stdout, b.stderr);
    (tc, cfg)
}

/// Whether the server of db-0 has the database `db`.
fn database_exists(tc: &TestCluster, db: &str) -> bool {
    sql(
        tc,
        "db-0",
        &format!("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{db}'"),
    ) == "1"
}

#[test]
fn a_restore_stopped_by_sigterm_half_way_drops_the_database_it_created() {
    let (tc, cfg) = big_database_backed_up("stopme");
    let exists = |db: &str| database_exists(&tc, db);
    let child = tc
        .kentledge(&cfg)
        .args([
            "restore",
            "database",
            "maria",
            "--repository",
            "borg-local",
            "--to-database",
            "stopme_copy",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tc.wait(60, "the restore to create its database", || {
        exists("stopme_copy").then_some(())
    });
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(143),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("NOT restored"), "{stdout}");
    tc.wait(30, "the half-restored database to be dropped", || {
        (!exists("stopme_copy")).then_some(())
    });
    assert!(leftovers(&tc).is_empty(), "{:?}", leftovers(&tc));
    // The next restore works.
    let r = run(tc.kentledge(&cfg).args([
        "restore",
        "database",
        "maria",
        "--repository",
        "borg-local",
        "--to-database",
        "stopme_copy",
    ]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        checksum(&tc, "stopme_copy.blobs"),
        checksum(&tc, "stopme.blobs")
    );
}

#[test]
fn a_restore_killed_half_way_leaves_no_half_restored_database_once_the_next_run_sweeps_its_mover() {
    let (tc, cfg) = big_database_backed_up("killme");
    let exists = |db: &str| database_exists(&tc, db);
    let restore = [
        "restore",
        "database",
        "maria",
        "--repository",
        "borg-local",
        "--to-database",
        "killme_copy",
    ];
    let r = crate::support::signal_when(
        tc.kentledge(&cfg).args(restore),
        "into database killme_copy in",
        || exists("killme_copy"),
        libc::SIGKILL,
        60,
    );
    assert_eq!(r.code, 137, "{}{}", r.stdout, r.stderr);
    // Nothing could clean up: the mover loads on. The next run of the config takes the lock
    // over and deletes it; stopped, it drops the database it made (unless it had finished).
    crate::signals::age_killed_restore_leases(&tc, "shop");
    let again = crate::signals::after_takeover(
        &tc,
        "kentledge-shop-backup",
        tc.kentledge(&cfg)
            .args(["backup", "--repository", "borg-local"]),
        "the run after the kill",
    );
    crate::signals::swept_a_mover(&again);
    assert!(leftovers(&tc).is_empty(), "{:?}", leftovers(&tc));
    assert!(
        !exists("killme_copy")
            || checksum(&tc, "killme_copy.blobs") == checksum(&tc, "killme.blobs"),
        "a half-restored database was left"
    );
    if exists("killme_copy") {
        sql(&tc, "db-0", "DROP DATABASE killme_copy");
    }
    let r = run(tc.kentledge(&cfg).args(restore));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        checksum(&tc, "killme_copy.blobs"),
        checksum(&tc, "killme.blobs")
    );
}
