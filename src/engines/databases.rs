//! Database clients as data: the command lines run in a database's own container (list the
//! databases, dump one, dump the users and roles), how a dump is known to be whole, and the
//! series each database's dumps form. Pure functions, never a secret: a password reaches the
//! client through the container's environment or its stdin, so it is in no exec URL.

use serde::{Deserialize, Serialize};

pub use crate::config::DatabaseEngine;

/// Where a credential comes from, as the command in the database's container sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Credential {
    /// A literal value (only ever a user name).
    Literal(String),
    /// The named environment variable of the container.
    Env(String),
    /// A line written to the command's stdin (from a Secret mounted in the mover).
    Stdin,
}

/// How to reach a database server from inside its container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Client {
    /// The engine.
    pub engine: DatabaseEngine,
    /// The user, unless the client's default applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Credential>,
    /// The password, unless none is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Credential>,
}

/// How a dump is known to have ended where its tool ended it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StreamCheck {
    /// The stream's last comment line contains this text (`-- Dump completed`).
    EndMarker(String),
    /// A `pg_dump --format=custom` archive, read through: every data block its table of contents
    /// announces is there and whole.
    PgCustom,
}

/// The server's own databases, never dumped unless named.
pub fn is_system(engine: DatabaseEngine, db: &str) -> bool {
    match engine {
        DatabaseEngine::Mariadb | DatabaseEngine::Mysql => matches!(
            db,
            "information_schema" | "performance_schema" | "mysql" | "sys"
        ),
        DatabaseEngine::Postgresql => matches!(db, "template0" | "template1"),
    }
}

/// `sh -c SCRIPT kentledge ARGS…`: the script sets up credentials then runs `"$@"`; `tools` are
/// tried in order (the first the container has).
fn shell(client: &Client, tools: &[&str], args: Vec<String>) -> Vec<String> {
    let mysql = client.engine != DatabaseEngine::Postgresql;
    let mut script = String::new();
    // Stdin lines come first: the user, then the password.
    // The variable a credential is in: the container's own, or one read from stdin.
    let mut var = |c: &Option<Credential>, stdin_var: &str| match c {
        Some(Credential::Stdin) => {
            script.push_str(&format!("IFS= read -r {stdin_var} || exit 111; "));
            Some(stdin_var.to_owned())
        }
        Some(Credential::Env(v)) => Some(v.clone()),
        _ => None,
    };
    let user_var = var(&client.user, "KENTLEDGE_USER");
    let pass_var = var(&client.password, "KENTLEDGE_PASSWORD");
    if let Some(v) = &pass_var {
        let name = if mysql { "MYSQL_PWD" } else { "PGPASSWORD" };
        script.push_str(&format!("{name}=\"${v}\"; export {name}; "));
    }
    if let Some(v) = &user_var {
        if mysql {
            script.push_str(&format!("set -- \"--user=${v}\" \"$@\"; "));
        } else {
            script.push_str(&format!("PGUSER=\"${v}\"; export PGUSER; "));
        }
    }
    let mut tool = String::from("T=; for t in");
    for t in tools {
        tool.push(' ');
        tool.push_str(t);
    }
    tool.push_str(
        "; do if command -v \"$t\" >/dev/null 2>&1; then T=$t; break; fi; done; \
         [ -n \"$T\" ] || { echo \"none of the clients ($(echo",
    );
    for t in tools {
        tool.push(' ');
        tool.push_str(t);
    }
    tool.push_str(")) is in this container\" >&2; exit 127; }; exec \"$T\" \"$@\"");
    script.push_str(&tool);
    let mut argv = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        script,
        "kentledge".to_owned(),
    ];
    if let Some(Credential::Literal(u)) = &client.user {
        argv.push(if mysql {
            format!("--user={u}")
        } else {
            format!("--username={u}")
        });
    }
    argv.extend(args);
    argv
}

fn mysql_tools(
    engine: DatabaseEngine,
    mariadb: &'static str,
    mysql: &'static str,
) -> Vec<&'static str> {
    match engine {
        DatabaseEngine::Mysql => vec![mysql, mariadb],
        _ => vec![mariadb, mysql],
    }
}

fn owned(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

/// `--dbname=` of a PostgreSQL client: always a connection string, so that a database name
/// holding `=` or looking like a URI is taken as a name.
fn pg_dbname(db: &str) -> String {
    format!(
        "--dbname=dbname='{}'",
        db.replace('\\', "\\\\").replace('\'', "\\'")
    )
}

/// `psql` running statements (each its own `--command`, so `DROP DATABASE` is not in a
/// transaction block) in database `db`, stopping at an error, tuples only.
fn psql(client: &Client, db: &str, sql: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--no-password".into(),
        "--no-psqlrc".into(),
        pg_dbname(db),
        "--set=ON_ERROR_STOP=1".into(),
        "--tuples-only".into(),
        "--no-align".into(),
    ];
    a.extend(sql.iter().map(|q| format!("--command={q}")));
    shell(client, &["psql"], a)
}

/// `mariadb` (or `mysql`) running one statement, rows without column names.
fn mysql(client: &Client, sql: &str) -> Vec<String> {
    shell(
        client,
        &mysql_tools(client.engine, "mariadb", "mysql"),
        vec![
            "--batch".into(),
            "--skip-column-names".into(),
            format!("--execute={sql}"),
        ],
    )
}

/// The command that prints the server's databases, one per line, each name in hex (a name may
/// hold any character, a newline too): see [`listed_names`].
pub fn list_databases(client: &Client) -> Vec<String> {
    match client.engine {
        DatabaseEngine::Postgresql => psql(
            client,
            "postgres",
            &[
                "SELECT encode(convert_to(datname, 'UTF8'), 'hex') FROM pg_database WHERE datallowconn ORDER BY 1",
            ],
        ),
        _ => mysql(
            client,
            "SELECT HEX(SCHEMA_NAME) FROM information_schema.SCHEMATA ORDER BY 1",
        ),
    }
}

/// The names a [`list_databases`] output stands for; an unreadable line is an error.
pub fn listed_names(out: &str) -> Result<Vec<String>, String> {
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let bytes = (0..l.len())
                .step_by(2)
                .map(|i| l.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
                .collect::<Option<Vec<u8>>>()
                .filter(|_| l.len() % 2 == 0);
            bytes
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    format!("the database listing has a line that is not a name in hex: {l:?}")
                })
        })
        .collect()
}

/// The command that dumps one database to stdout (restorable under any name), and how its end
/// is checked.
pub fn dump(client: &Client, db: &str) -> (Vec<String>, StreamCheck) {
    match client.engine {
        DatabaseEngine::Postgresql => (
            shell(
                client,
                &["pg_dump"],
                vec![
                    "--no-password".into(),
                    "--format=custom".into(),
                    pg_dbname(db),
                ],
            ),
            StreamCheck::PgCustom,
        ),
        e => {
            let mut a = owned(&[
                "--single-transaction",
                "--default-character-set=utf8mb4",
                "--routines",
                "--triggers",
                "--events",
                "--hex-blob",
                "--comments",
                "--dump-date",
                "--",
            ]);
            a.push(db.to_owned());
            (
                shell(client, &mysql_tools(e, "mariadb-dump", "mysqldump"), a),
                StreamCheck::EndMarker(MYSQL_END.into()),
            )
        }
    }
}

/// `name` as an SQL identifier of the engine: backquoted for MariaDB/MySQL, double-quoted for
/// PostgreSQL, the quote doubled inside.
pub fn ident(engine: DatabaseEngine, name: &str) -> String {
    match engine {
        DatabaseEngine::Postgresql => format!("\"{}\"", name.replace('"', "\"\"")),
        _ => format!("`{}`", name.replace('`', "``")),
    }
}

/// `name` as an SQL string literal (single quotes doubled; MariaDB's backslashes doubled too).
fn literal(engine: DatabaseEngine, name: &str) -> String {
    let s = name.replace('\'', "''");
    match engine {
        DatabaseEngine::Postgresql => format!("'{s}'"),
        _ => format!("'{}'", s.replace('\\', "\\\\")),
    }
}

/// `CREATE DATABASE` (PostgreSQL: from `template0`, so that what was added to `template1`
/// cannot clash with what the dump creates).
pub fn create_database(client: &Client, db: &str) -> Vec<String> {
    match client.engine {
        DatabaseEngine::Postgresql => psql(
            client,
            "postgres",
            &[&format!(
                "CREATE DATABASE {} TEMPLATE template0",
                ident(client.engine, db)
            )],
        ),
        e => mysql(client, &format!("CREATE DATABASE {}", ident(e, db))),
    }
}

/// `DROP DATABASE IF EXISTS` (PostgreSQL: its other sessions are ended first, which works
/// before version 13's `WITH (FORCE)` too).
pub fn drop_database(client: &Client, db: &str) -> Vec<String> {
    match client.engine {
        DatabaseEngine::Postgresql => psql(
            client,
            "postgres",
            &[
                &format!(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid()",
                    literal(client.engine, db)
                ),
                &format!("DROP DATABASE IF EXISTS {}", ident(client.engine, db)),
            ],
        ),
        e => mysql(client, &format!("DROP DATABASE IF EXISTS {}", ident(e, db))),
    }
}

/// The command that prints how many tables database `db` has (base tables, no views).
pub fn count_tables(client: &Client, db: &str) -> Vec<String> {
    match client.engine {
        DatabaseEngine::Postgresql => psql(
            client,
            db,
            &[
                "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
            ],
        ),
        e => mysql(
            client,
            &format!(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')",
                literal(e, db)
            ),
        ),
    }
}

/// The command that loads a dump read on stdin into database `db`, stopping at the first
/// error: MariaDB/MySQL `mariadb --one-database` (statements run as they come: DDL cannot be
/// one transaction); PostgreSQL `pg_restore --single-transaction --exit-on-error` (all or
/// nothing), with `--clean --if-exists` to replace what the dump holds.
pub fn load(client: &Client, db: &str, replace: bool) -> Vec<String> {
    match client.engine {
        DatabaseEngine::Postgresql => {
            let mut a: Vec<String> = ["--no-password", "--exit-on-error", "--single-transaction"]
                .map(String::from)
                .into();
            if replace {
                a.push("--clean".into());
                a.push("--if-exists".into());
            }
            a.push(pg_dbname(db));
            shell(client, &["pg_restore"], a)
        }
        e => shell(
            client,
            &mysql_tools(e, "mariadb", "mysql"),
            // --one-database keeps to the database named as the argument (not --database=).
            vec![
                "--batch".into(),
                "--one-database".into(),
                "--".into(),
                db.to_owned(),
            ],
        ),
    }
}

/// How mariadb-dump's and mysqldump's last line starts.
pub const MYSQL_END: &str = "-- Dump completed";
/// How pg_dumpall's last comment line starts.
pub const PG_GLOBALS_END: &str = "-- PostgreSQL database cluster dump complete";

/// The command that dumps the server's users and grants (MariaDB) or roles and tablespaces
/// (PostgreSQL); `None` for MySQL, whose dump tool has no such mode.
pub fn dump_globals(client: &Client) -> Option<(Vec<String>, StreamCheck)> {
    match client.engine {
        DatabaseEngine::Postgresql => Some((
            shell(
                client,
                &["pg_dumpall"],
                owned(&["--no-password", "--globals-only"]),
            ),
            StreamCheck::EndMarker(PG_GLOBALS_END.into()),
        )),
        DatabaseEngine::Mariadb => Some((
            shell(
                client,
                &["mariadb-dump", "mysqldump"],
                owned(&["--system=users", "--comments", "--dump-date"]),
            ),
            StreamCheck::EndMarker(MYSQL_END.into()),
        )),
        DatabaseEngine::Mysql => None,
    }
}

/// The file a dump has in its archive.
pub fn file_name(engine: DatabaseEngine, db: Option<&str>) -> String {
    let ext = match engine {
        DatabaseEngine::Postgresql if db.is_some() => "pgdump",
        _ => "sql",
    };
    match db {
        Some(d) => format!("{}.{ext}", encode(d)),
        None if engine == DatabaseEngine::Postgresql => format!("globals.{ext}"),
        None => format!("users.{ext}"),
    }
}

/// The series of one database of a `spec.offsite.databases` entry (`name.db`), or of its users
/// and roles (`name`). Database names may hold any character, and archive names must not hold
/// `_`: everything but lowercase letters, digits and `-` is written `.` and two hex digits per
/// byte, so the name comes back exactly ([`decode_series`]).
pub fn series_name(backup: &str, db: Option<&str>) -> String {
    match db {
        Some(d) => format!("{backup}.{}", encode(d)),
        None => backup.to_owned(),
    }
}

fn encode(db: &str) -> String {
    let mut out = String::new();
    for b in db.bytes() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' => out.push(b as char),
            _ => out.push_str(&format!(".{b:02x}")),
        }
    }
    out
}

/// The series of the safety dumps of database `db` of an entry: what a restore with
/// `--replace` dumped before it replaced the database. Its own series (never the newest dump
/// of the database, and retention counts it apart); `..` cannot come out of [`series_name`].
pub fn safety_series(backup: &str, db: &str) -> String {
    format!("{}{SAFETY}", series_name(backup, Some(db)))
}

const SAFETY: &str = "..safety";

/// What a database series name stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The `spec.offsite.databases` entry.
    pub entry: String,
    /// The database; `None`: the users and roles.
    pub database: Option<String>,
    /// A safety dump's series.
    pub safety: bool,
}

/// What a database series name stands for ([`series_name`], [`safety_series`]).
pub fn decode(series: &str) -> Option<Decoded> {
    let (name, safety) = match series.strip_suffix(SAFETY) {
        Some(n) => (n, true),
        None => (series, false),
    };
    let (entry, database) = decode_series(name)?;
    if safety && database.is_none() {
        return None;
    }
    Some(Decoded {
        entry,
        database,
        safety,
    })
}

/// The entry and database (`None`: users and roles) a database series name stands for.
fn decode_series(series: &str) -> Option<(String, Option<String>)> {
    let Some((backup, rest)) = series.split_once('.') else {
        return Some((series.to_owned(), None));
    };
    let mut bytes = Vec::new();
    let raw = rest.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'.' {
            let hex = rest.get(i + 1..i + 3)?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            bytes.push(raw[i]);
            i += 1;
        }
    }
    Some((backup.to_owned(), Some(String::from_utf8(bytes).ok()?)))
}

/// The words for a database series in reports: `maria/shop`, `maria/shop (safety dumps)` or
/// `maria (users and roles)`.
pub fn describe_series(series: &str) -> String {
    match decode(series) {
        Some(Decoded {
            entry,
            database: Some(db),
            safety,
        }) => format!(
            "{entry}/{db}{}",
            if safety { " (safety dumps)" } else { "" }
        ),
        Some(d) => format!("{} (users and roles)", d.entry),
        None => series.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_sh(argv: &[String], env: &[(&str, &str)], stdin: &str) -> (i32, String, String) {
        use std::io::Write;
        let mut c = std::process::Command::new(&argv[0]);
        c.args(&argv[1..])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// The script with the tool replaced by one that prints what it got.
    fn probe(argv: &[String], tool: &str) -> Vec<String> {
        let mut a = argv.to_vec();
        a[2] = a[2].replace(
            "exec \"$T\" \"$@\"",
            "echo \"$T|MYSQL_PWD=$MYSQL_PWD|PGPASSWORD=$PGPASSWORD|PGUSER=$PGUSER\"; for x in \"$@\"; do echo \"[$x]\"; done",
        );
        a[2] = a[2].replace(&format!("for t in {tool}"), "for t in sh");
        a
    }

    #[test]
    fn secrets_reach_the_client_by_env_or_stdin_never_as_arguments() {
        let from_env = Client {
            engine: DatabaseEngine::Mariadb,
            user: Some(Credential::Env("DB_USER".into())),
            password: Some(Credential::Env("DB_PASS".into())),
        };
        let (argv, check) = dump(&from_env, "shop");
        assert_eq!(check, StreamCheck::EndMarker("-- Dump completed".into()));
        assert!(!argv.iter().any(|a| a.contains("s3cr3t")));
        let (code, out, err) = run_sh(
            &probe(&argv, "mariadb-dump"),
            &[("DB_USER", "backup"), ("DB_PASS", "s3cr3t")],
            "",
        );
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("MYSQL_PWD=s3cr3t|"), "{out}");
        assert!(out.contains("[--user=backup]"), "{out}");
        assert!(
            out.contains("[--single-transaction]") && out.ends_with("[--]\n[shop]\n"),
            "{out}"
        );

        let from_stdin = Client {
            engine: DatabaseEngine::Postgresql,
            user: Some(Credential::Stdin),
            password: Some(Credential::Stdin),
        };
        let (argv, check) = dump(&from_stdin, "it's");
        assert_eq!(check, StreamCheck::PgCustom);
        let (code, out, err) = run_sh(&probe(&argv, "pg_dump"), &[], "app\npa ss'word\n");
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("PGPASSWORD=pa ss'word|PGUSER=app"), "{out}");
        assert!(out.contains("[--dbname=dbname='it\\'s']"), "{out}");
        // No stdin line: the script stops instead of running without credentials.
        let (code, _, _) = run_sh(&probe(&argv, "pg_dump"), &[], "");
        assert_eq!(code, 111);

        let literal = Client {
            engine: DatabaseEngine::Postgresql,
            user: Some(Credential::Literal("postgres".into())),
            password: None,
        };
        let argv = list_databases(&literal);
        assert!(argv.contains(&"--username=postgres".to_owned()));
    }

    #[test]
    fn a_missing_client_is_named() {
        let c = Client {
            engine: DatabaseEngine::Mysql,
            user: None,
            password: None,
        };
        let (mut argv, _) = dump(&c, "shop");
        argv[2] = argv[2].replace("mysqldump mariadb-dump", "no-such-dump-a no-such-dump-b");
        let (code, _, err) = run_sh(&argv, &[], "");
        assert_eq!(code, 127);
        assert!(
            err.contains("none of the clients (no-such-dump-a no-such-dump-b)"),
            "{err}"
        );
    }

    #[test]
    fn series_names_are_archive_safe_and_come_back_exactly() {
        for db in ["shop", "my_app", "Ünï code", "a.b", "x-1", "..", "ABC"] {
            let s = series_name("maria", Some(db));
            assert!(!s.contains('_') && !s.contains('/'), "{s}");
            assert!(
                s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'),
                "{s}"
            );
            assert_eq!(
                decode_series(&s),
                Some(("maria".to_owned(), Some(db.to_owned())))
            );
        }
        assert_eq!(series_name("maria", Some("my_app")), "maria.my.5fapp");
        assert_eq!(decode_series("maria"), Some(("maria".into(), None)));
        assert_ne!(series_name("m", Some("a")), series_name("m", None));
        assert_eq!(decode_series("maria.x.zz"), None);
        assert_eq!(describe_series("maria.shop"), "maria/shop");
        let safety = safety_series("maria", "my_app");
        assert_eq!(safety, "maria.my.5fapp..safety");
        assert_eq!(
            decode(&safety),
            Some(Decoded {
                entry: "maria".into(),
                database: Some("my_app".into()),
                safety: true
            })
        );
        assert_eq!(describe_series(&safety), "maria/my_app (safety dumps)");
        assert_eq!(decode("maria..safety"), None);
        assert_eq!(decode("maria.shop").map(|d| d.safety), Some(false));
        assert_eq!(
            listed_names("73686f70\n6d795f617070\n0a20\n"),
            Ok(vec!["shop".into(), "my_app".into(), "\n ".into()])
        );
        assert!(listed_names("zz\n").is_err());
        assert!(listed_names("abc\n").is_err());
        assert_eq!(pg_dbname("a'b=c"), "--dbname=dbname='a\\'b=c'");
        assert_eq!(
            file_name(DatabaseEngine::Postgresql, Some("app")),
            "app.pgdump"
        );
        assert_eq!(file_name(DatabaseEngine::Postgresql, None), "globals.sql");
        assert_eq!(
            file_name(DatabaseEngine::Mariadb, Some("my_app")),
            "my.5fapp.sql"
        );
    }

    #[test]
    fn identifiers_and_literals_are_quoted_for_their_engine() {
        assert_eq!(ident(DatabaseEngine::Mariadb, "a`b"), "`a``b`");
        assert_eq!(ident(DatabaseEngine::Postgresql, "a\"b"), "\"a\"\"b\"");
        assert_eq!(literal(DatabaseEngine::Mariadb, "it's\\"), "'it''s\\\\'");
        assert_eq!(literal(DatabaseEngine::Postgresql, "it's\\"), "'it''s\\'");
        let c = Client {
            engine: DatabaseEngine::Postgresql,
            user: None,
            password: None,
        };
        assert!(
            drop_database(&c, "x")
                .last()
                .unwrap()
                .ends_with("DROP DATABASE IF EXISTS \"x\"")
        );
        assert!(load(&c, "x", true).contains(&"--clean".to_owned()));
        assert!(!load(&c, "x", false).contains(&"--clean".to_owned()));
    }

    #[test]
    fn system_databases() {
        assert!(is_system(DatabaseEngine::Mariadb, "performance_schema"));
        assert!(!is_system(DatabaseEngine::Mariadb, "shop"));
        assert!(is_system(DatabaseEngine::Postgresql, "template1"));
        assert!(!is_system(DatabaseEngine::Postgresql, "postgres"));
    }
}
