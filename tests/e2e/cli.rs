//! The CLI surface: check, exit codes, error messages, JSON output and logs, completions, and
//! commands whose cluster work is not there yet refusing honestly without touching the cluster.

use crate::support::{Tripwire, example, kentledge, run, write_temp};

const BROKEN: &str = "apiVersion: kentledge.io/v1alpha1
kind: BackupConfig
metadata:
  name: shop
spec:
  snapshots:
    targets:
      - pvc: data
    retention:
      dialy: 7
";

const INVALID: &str = "apiVersion: kentledge.io/v1alpha1
kind: BackupConfig
metadata:
  name: Shop
spec:
  timezone: Europe/Berln
  snapshots:
    retention:
      daily: 0
";

#[test]
fn check_accepts_every_example_and_summarises_it() {
    for name in [
        "minimal.yaml",
        "full.yaml",
        "mariadb-borg.yaml",
        "postgres-restic-s3.yaml",
    ] {
        let r = run(kentledge().args(["check", "-c"]).arg(example(name)));
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        assert!(r.stdout.contains(": valid"), "{name}: {}", r.stdout);
    }
    let r = run(kentledge()
        .args(["check", "-c"])
        .arg(example("mariadb-borg.yaml")));
    assert!(
        r.stdout
            .contains("repository    offsite (borg ssh://borg@backup.example.com:22/./shop)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("database      shopdb (mariadb) -> offsite"),
        "{}",
        r.stdout
    );
}

#[test]
fn check_reports_an_unknown_field_with_file_line_column_and_path() {
    let (_d, path) = write_temp("kentledge.yaml", BROKEN);
    let r = run(kentledge()
        .args(["check", "--log-format", "text", "-c"])
        .arg(&path));
    assert_eq!(r.code, 2, "{}", r.stderr);
    let expected = format!(
        "{}:10:7: spec.snapshots.retention.dialy: unknown field, expected one of keep, last, hourly, daily, weekly, monthly, yearly, within (did you mean daily?)",
        path.display()
    );
    assert!(r.stderr.contains(&expected), "{}", r.stderr);
    assert!(r.stderr.contains("hint: "), "{}", r.stderr);
    assert_eq!(r.stdout, "");
}

#[test]
fn check_reports_all_semantic_problems_at_once() {
    let (_d, path) = write_temp("k.yaml", INVALID);
    let r = run(kentledge()
        .args(["check", "--log-format", "text", "-c"])
        .arg(&path));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("has 3 problems"), "{}", r.stderr);
    assert!(
        r.stderr.contains("k.yaml:4:3: metadata.name:"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("k.yaml:6:3: spec.timezone: unknown time zone \"Europe/Berln\""),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("k.yaml:8:5: spec.snapshots.retention: this policy keeps nothing"),
        "{}",
        r.stderr
    );
}

#[test]
fn check_json_output_lists_problems_for_machines() {
    let (_d, path) = write_temp("k.yaml", INVALID);
    let r = run(kentledge()
        .args(["check", "-o", "json", "--log-format", "text", "-c"])
        .arg(&path));
    assert_eq!(r.code, 2);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("stdout is JSON");
    assert_eq!(v["valid"], false);
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 3);
    assert_eq!(problems[1]["path"], "spec.timezone");
    assert_eq!(problems[1]["line"], 6);
    assert_eq!(problems[1]["column"], 3);

    let r = run(kentledge()
        .args(["check", "-o", "json", "-c"])
        .arg(example("minimal.yaml")));
    assert_eq!(r.code, 0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(
        v["config"]["spec"]["snapshots"]["targets"][0]["pvc"],
        "data"
    );
    assert_eq!(v["config"]["spec"]["timezone"], "UTC");
}

#[test]
fn a_missing_config_file_is_a_usage_error_with_a_hint() {
    let r = run(kentledge().args([
        "snapshot",
        "--log-format",
        "text",
        "-c",
        "/nonexistent/kentledge.yaml",
    ]));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("error: cannot read config file /nonexistent/kentledge.yaml"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("caused by: No such file or directory"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("hint: pass the config with -c FILE or KENTLEDGE_CONFIG"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_config_comes_from_kentledge_config_env() {
    let r = run(kentledge()
        .arg("check")
        .env("KENTLEDGE_CONFIG", example("minimal.yaml")));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("minimal.yaml: valid"));
}

#[test]
fn a_bad_config_never_leads_to_an_api_call() {
    let wire = Tripwire::new();
    let (_d, path) = write_temp("k.yaml", BROKEN);
    for args in [
        vec!["snapshot"],
        vec!["backup"],
        vec!["prune"],
        vec!["list"],
        vec!["restore", "volume", "data", "--snapshot", "s", "--to", "x"],
    ] {
        let r = run(kentledge()
            .args(&args)
            .arg("-c")
            .arg(&path)
            .arg("--kubeconfig")
            .arg(&wire.kubeconfig)
            .env("KUBECONFIG", &wire.kubeconfig));
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        wire.connections(),
        0,
        "a command with a bad config connected to the API server"
    );
}

#[test]
fn restore_bucket_refuses_bad_arguments_before_any_api_call() {
    let wire = Tripwire::new();
    let (_d, path) = write_temp("k.yaml", BUCKETS_ONLY);
    for (args, says) in [
        (
            vec!["restore", "bucket", "photos"],
            "not one of spec.offsite.buckets (media)",
        ),
        (
            vec!["restore", "bucket", "media", "--repository", "other"],
            "--repository",
        ),
        (
            vec!["restore", "bucket", "media", "--to-bucket", "Bad_Bucket"],
            "is not an S3 bucket name",
        ),
        (
            vec!["restore", "bucket", "media", "--to-prefix", "/abs"],
            "S3 keys do not start with '/'",
        ),
        (
            vec!["restore", "bucket", "media", "--to-prefix", "restored"],
            "end this one with '/' too (\"restored/\")",
        ),
    ] {
        let r = run(kentledge()
            .args(&args)
            .args(["--log-format", "text", "-c"])
            .arg(&path)
            .arg("--kubeconfig")
            .arg(&wire.kubeconfig));
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    }
    let r = run(kentledge()
        .args(["restore", "bucket", "media", "--log-format", "text", "-c"])
        .arg(example("minimal.yaml"))
        .arg("--kubeconfig")
        .arg(&wire.kubeconfig));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("spec.offsite.buckets is empty"),
        "{}",
        r.stderr
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        wire.connections(),
        0,
        "a refused restore connected to the API server"
    );
}

/// A config that copies one bucket and nothing else.
const BUCKETS_ONLY: &str = "apiVersion: kentledge.io/v1alpha1\nkind: BackupConfig\nmetadata:\n  name: a\n  namespace: shop\nspec:\n  repositories:\n    - name: r\n      restic:\n        repository: rest:http://127.0.0.1:1/\n        password: {secret: s, key: k}\n    - name: other\n      restic:\n        repository: rest:http://127.0.0.1:2/\n        password: {secret: s, key: k}\n  offsite:\n    buckets:\n      - name: media\n        endpoint: http://127.0.0.1:1\n        bucket: media\n        prefix: photos/\n        credentials: {accessKeyId: {secret: s3, key: id}, secretAccessKey: {secret: s3, key: secret}}\n        repositories: [r]\n";

#[test]
fn usage_errors_exit_2() {
    let r = run(kentledge().args(["snapshot", "--no-such-flag"]));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("unexpected argument '--no-such-flag'"),
        "{}",
        r.stderr
    );
    let r = run(kentledge().args(["prune", "--now", "yesterday"]));
    assert_eq!(r.code, 2);
    let r = run(kentledge()
        .args(["check", "-n", "Bad_NS", "-c"])
        .arg(example("minimal.yaml")));
    assert_eq!(
        r.code, 0,
        "check is offline; the namespace flag only matters for cluster commands"
    );
    let r = run(kentledge()
        .args(["snapshot", "--log-format", "text", "-n", "Bad_NS", "-c"])
        .arg(example("minimal.yaml")));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--namespace \"Bad_NS\""), "{}", r.stderr);
}

#[test]
fn a_config_without_namespace_needs_one() {
    let (_d, path) = write_temp(
        "k.yaml",
        "apiVersion: kentledge.io/v1alpha1\nkind: BackupConfig\nmetadata:\n  name: a\n",
    );
    let r = run(kentledge()
        .args(["snapshot", "--log-format", "text", "-c"])
        .arg(&path));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("error: no namespace to work in"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("hint: set metadata.namespace in the config or pass --namespace NAME")
    );
    let r = run(kentledge()
        .args([
            "restore",
            "bucket",
            "media",
            "--log-format",
            "text",
            "-n",
            "other",
            "-c",
        ])
        .arg(&path));
    assert!(
        r.stderr.contains("spec.offsite.buckets is empty"),
        "with --namespace it gets as far as the command: {}",
        r.stderr
    );
}

#[test]
fn logs_are_json_lines_when_asked_or_not_on_a_terminal() {
    // stderr is a pipe here, so auto means JSON.
    let r = run(kentledge()
        .args(["restore", "bucket", "media", "-v", "-c"])
        .arg(example("minimal.yaml")));
    assert_eq!(r.code, 2);
    let lines: Vec<serde_json::Value> = r
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "config loaded" && l["namespace"] == "demo"),
        "{}",
        r.stderr
    );
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR");
    assert_eq!(last["exit_code"], 2);
    // -q hides info and debug lines, errors remain.
    let r = run(kentledge()
        .args(["restore", "bucket", "media", "-q", "-c"])
        .arg(example("minimal.yaml")));
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_kentledge()"),
        ("zsh", "#compdef kentledge"),
        ("fish", "complete -c kentledge"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let r = run(kentledge().args(["completions", shell]));
        assert_eq!(r.code, 0);
        assert!(r.stdout.contains(marker), "{shell}");
        assert!(r.stdout.contains("snapshot"), "{shell}");
    }
}

#[test]
fn version_and_help() {
    let r = run(kentledge().arg("--version"));
    assert_eq!(r.code, 0);
    assert_eq!(
        r.stdout.trim(),
        format!("kentledge {}", env!("CARGO_PKG_VERSION"))
    );
    let r = run(kentledge().arg("--help"));
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("Exit codes: 0 success"));
}

#[test]
fn an_unreachable_api_server_is_a_run_failure_that_says_what_failed() {
    let wire = Tripwire::new();
    let r = run(kentledge()
        .args(["snapshot", "--log-format", "text", "-c"])
        .arg(example("minimal.yaml"))
        .arg("--kubeconfig")
        .arg(&wire.kubeconfig));
    assert_eq!(r.code, 1, "{}", r.stderr);
    // The namespace's lists go out together: whichever fails first is said.
    assert!(
        ["PersistentVolumeClaims", "Pods"]
            .iter()
            .any(|what| r.stderr.contains(&format!("error: cannot list {what}"))),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("caused by:"), "{}", r.stderr);
}

#[test]
fn a_restore_of_a_database_the_config_does_not_dump_is_refused_before_any_api_call() {
    let wire = Tripwire::new();
    for (config, args, said) in [
        (
            "minimal.yaml",
            vec!["restore", "database", "shopdb", "--repository", "offsite"],
            "spec.offsite.databases is empty",
        ),
        (
            "full.yaml",
            vec!["restore", "database", "catalog", "--repository", "borg-ssh"],
            "database catalog is dumped to restic-s3, not to it",
        ),
        (
            "full.yaml",
            vec!["restore", "database", "catalog", "--to-database", "mysql"],
            "is one of the server's own databases",
        ),
    ] {
        let r = run(kentledge()
            .args(&args)
            .args(["--log-format", "text", "-c"])
            .arg(example(config))
            .arg("--kubeconfig")
            .arg(&wire.kubeconfig));
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(said), "{args:?}: {}", r.stderr);
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(wire.connections(), 0);
}
