//! Config parsing and validation: one test per error class, asserting the exact location and
//! message a user sees; every file in `examples/` validates.

use super::*;
use pretty_assertions::assert_eq;

const HEAD: &str = "apiVersion: kentledge.io/v1alpha1\nkind: BackupConfig\nmetadata:\n  name: shop\n  namespace: shop\n";

/// Parses `HEAD` + `body` and returns the error lines (`file:line:col: path: message`).
fn errors(body: &str) -> Vec<String> {
    let text = format!("{HEAD}{body}");
    match parse("kentledge.yaml", &text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.lines(),
    }
}

fn ok(body: &str) -> Config {
    let text = format!("{HEAD}{body}");
    parse("kentledge.yaml", &text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_minimal_config_gets_defaults() {
    let c = ok("spec:\n  snapshots:\n    targets:\n      - pvc: data\n");
    assert_eq!(c.metadata.name, "shop");
    assert_eq!(c.spec.timezone, "UTC");
    assert_eq!(c.spec.snapshots.cut_timeout.to_string(), "5m");
    assert_eq!(c.spec.snapshots.delete_after.to_string(), "1d");
    assert_eq!(c.spec.mover.concurrency, 2);
    assert!(c.spec.mover.image.ends_with(env!("CARGO_PKG_VERSION")));
}

#[test]
fn unknown_field_names_path_position_and_expected_fields() {
    let e = errors("spec:\n  snapshots:\n    retention:\n      dialy: 7\n");
    assert_eq!(
        e,
        [
            "kentledge.yaml:9:7: spec.snapshots.retention.dialy: unknown field, expected one of keep, last, hourly, daily, weekly, monthly, yearly, within (did you mean daily?)"
        ]
    );
}

#[test]
fn unknown_field_in_a_list_item() {
    let e = errors("spec:\n  snapshots:\n    targets:\n      - pvc: a\n        pcv: b\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("kentledge.yaml:10:9: spec.snapshots.targets[0].pcv: unknown field, expected one of pvc, selector"),
        "{e:?}"
    );
}

#[test]
fn missing_required_field() {
    let e = errors("spec:\n  repositories:\n    - borg:\n        repository: ssh://u@h/r\n");
    assert_eq!(
        e,
        ["kentledge.yaml:8:7: spec.repositories[0].name: required field is missing"]
    );
}

#[test]
fn yaml_1_1_booleans_are_refused() {
    let e = errors("spec:\n  snapshots:\n    allowEmpty: yes\n");
    assert_eq!(
        e,
        [
            "kentledge.yaml:8:17: spec.snapshots.allowEmpty: invalid boolean (strict mode expects true/false)"
        ]
    );
}

#[test]
fn wrong_type() {
    let e = errors("spec:\n  snapshots:\n    retention:\n      daily: seven\n");
    assert_eq!(
        e,
        ["kentledge.yaml:9:14: spec.snapshots.retention.daily: invalid u32"]
    );
}

#[test]
fn unknown_enum_value() {
    let e =
        errors("spec:\n  snapshots:\n    targets:\n      - workload: {kind: DaemonSet, name: x}\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("kentledge.yaml:9:"), "{e:?}");
    assert!(
        e[0].contains("unknown variant DaemonSet, expected Deployment or StatefulSet")
            || e[0].contains("unknown variant DaemonSet, expected one of Deployment, StatefulSet"),
        "{e:?}"
    );
}

#[test]
fn bad_duration() {
    let e = errors("spec:\n  snapshots:\n    cutTimeout: 5\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("kentledge.yaml:8:17: spec.snapshots.cutTimeout: \"5\": missing unit"),
        "{e:?}"
    );
}

#[test]
fn duplicate_keys_are_refused() {
    let e = errors("spec:\n  timezone: UTC\n  timezone: Europe/Berlin\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("kentledge.yaml:8:3: "), "{e:?}");
    assert!(e[0].contains("duplicate mapping key: timezone"), "{e:?}");
}

#[test]
fn syntax_error_has_a_position() {
    let e = errors("spec:\n  snapshots: [\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("kentledge.yaml:"), "{e:?}");
}

#[test]
fn empty_file() {
    let e = parse("k.yaml", "# nothing\n").unwrap_err().lines();
    assert_eq!(
        e,
        [
            "k.yaml: the file is empty; expected a document with apiVersion: kentledge.io/v1alpha1 and kind: BackupConfig"
        ]
    );
}

#[test]
fn wrong_api_version_and_kind() {
    let e = parse(
        "k.yaml",
        "apiVersion: kentledge.io/v1\nkind: Backup\nmetadata:\n  name: a\n",
    )
    .unwrap_err()
    .lines();
    assert_eq!(
        e,
        [
            "k.yaml:1:1: apiVersion: unsupported apiVersion \"kentledge.io/v1\", expected kentledge.io/v1alpha1",
            "k.yaml:2:1: kind: unsupported kind \"Backup\", expected BackupConfig",
        ]
    );
}

#[test]
fn invalid_names() {
    let e = parse(
        "k.yaml",
        "apiVersion: kentledge.io/v1alpha1\nkind: BackupConfig\nmetadata:\n  name: Shop_1\n  namespace: -x\n",
    )
    .unwrap_err()
    .lines();
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("k.yaml:4:3: metadata.name: \"Shop_1\" is not a DNS-1123 label"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("k.yaml:5:3: metadata.namespace: \"-x\" is not a DNS-1123 label"),
        "{e:?}"
    );
}

#[test]
fn unknown_time_zone() {
    let e = errors("spec:\n  timezone: Mars/Olympus\n");
    assert_eq!(
        e,
        [
            "kentledge.yaml:7:3: spec.timezone: unknown time zone \"Mars/Olympus\", expected an IANA name such as UTC or Europe/Berlin"
        ]
    );
}

#[test]
fn all_zero_retention_is_refused() {
    let e = errors("spec:\n  snapshots:\n    retention:\n      daily: 0\n      last: 0\n");
    assert_eq!(
        e,
        [
            "kentledge.yaml:8:5: spec.snapshots.retention: this policy keeps nothing (every rule is zero or absent); set at least one of last, hourly, daily, weekly, monthly, yearly, within, or keep: all"
        ]
    );
    let e = errors("spec:\n  snapshots:\n    retention: {}\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].contains("keeps nothing"));
}

#[test]
fn keep_all_is_explicit_and_exclusive() {
    let c = ok("spec:\n  snapshots:\n    retention:\n      keep: all\n");
    assert_eq!(c.spec.snapshots.retention.unwrap().to_string(), "keep all");
    let e = errors("spec:\n  snapshots:\n    retention:\n      keep: all\n      daily: 3\n");
    assert_eq!(
        e,
        [
            "kentledge.yaml:9:7: spec.snapshots.retention.keep: keep: all cannot be combined with other rules"
        ]
    );
}

#[test]
fn invalid_selector() {
    let e = errors(
        "spec:\n  snapshots:\n    targets:\n      - selector:\n          matchExpressions:\n            - key: app\n              operator: In\n            - key: tier\n              operator: Exists\n              values: [db]\n",
    );
    assert_eq!(
        e,
        [
            "kentledge.yaml:11:15: spec.snapshots.targets[0].selector.matchExpressions[0].values: must be non-empty for In and NotIn",
            "kentledge.yaml:15:15: spec.snapshots.targets[0].selector.matchExpressions[1].values: must be empty for Exists and DoesNotExist",
        ]
    );
}

#[test]
fn target_needs_exactly_one_kind_and_no_duplicates() {
    let e = errors(
        "spec:\n  snapshots:\n    targets:\n      - pvc: a\n        workload: {kind: Deployment, name: b}\n      - pvc: c\n      - pvc: c\n",
    );
    assert_eq!(
        e,
        [
            "kentledge.yaml:9:9: spec.snapshots.targets[0]: exactly one of pvc, selector, workload must be set (found 2)",
            "kentledge.yaml:12:9: spec.snapshots.targets[2]: duplicates targets[1]",
        ]
    );
}

#[test]
fn hooks_need_one_mode_and_unique_names() {
    let e = errors(
        "spec:\n  snapshots:\n    hooks:\n      - name: a\n        pod: {name: p}\n      - name: a\n        pod: {name: p}\n        exec: {pre: []}\n",
    );
    assert_eq!(
        e,
        [
            "kentledge.yaml:9:9: spec.snapshots.hooks[0]: exactly one of exec, session must be set",
            "kentledge.yaml:11:9: spec.snapshots.hooks[1].name: hook name \"a\" is already used by hooks[0]",
            "kentledge.yaml:13:16: spec.snapshots.hooks[1].exec.pre: must be a non-empty command (a list: program, then arguments)",
        ]
    );
}

#[test]
fn repository_url_and_incomplete_secret_references() {
    let e = errors(
        "spec:\n  repositories:\n    - name: r\n      borg:\n        repository: backup.example.com:/repo\n        passphrase: {secret: borg, key: \"\"}\n",
    );
    assert_eq!(
        e,
        [
            "kentledge.yaml:9:7: spec.repositories[0].borg.sshKey: an ssh repository needs sshKey: {secret, key}",
            "kentledge.yaml:9:7: spec.repositories[0].borg.knownHosts: an ssh repository needs knownHosts: {secret, key} (host keys are checked); to opt out set insecureSkipHostKeyCheck: true",
            "kentledge.yaml:10:9: spec.repositories[0].borg.repository: \"backup.example.com:/repo\" is not an ssh:// repository URL, expected ssh://user@host[:port]/path",
            "kentledge.yaml:11:36: spec.repositories[0].borg.passphrase.key: \"\" is not a valid Secret key (alphanumerics, '-', '_' or '.')",
        ]
    );
}

#[test]
fn ssh_repositories_check_host_keys_unless_opted_out() {
    let e = errors(
        "spec:\n  repositories:\n    - name: r\n      borg:\n        repository: ssh://u@h/r\n        passphrase: {secret: b, key: p}\n        sshKey: {secret: s, key: k}\n",
    );
    assert_eq!(
        e,
        [
            "kentledge.yaml:9:7: spec.repositories[0].borg.knownHosts: an ssh repository needs knownHosts: {secret, key} (host keys are checked); to opt out set insecureSkipHostKeyCheck: true"
        ]
    );
    ok(
        "spec:\n  repositories:\n    - name: r\n      borg:\n        repository: ssh://u@h/r\n        passphrase: {secret: b, key: p}\n        sshKey: {secret: s, key: k}\n        insecureSkipHostKeyCheck: true\n",
    );
}

#[test]
fn restic_local_paths_point_to_pvc() {
    let e = errors(
        "spec:\n  repositories:\n    - name: r\n      restic:\n        repository: /srv/restic\n        password: {secret: r, key: p}\n",
    );
    assert_eq!(e.len(), 1);
    assert!(e[0].contains("spec.repositories[0].restic.repository: \"/srv/restic\" is a path inside the mover pod; to keep a repository on a volume use pvc"), "{e:?}");
}

#[test]
fn unknown_repository_reference() {
    let e = errors(
        "spec:\n  snapshots:\n    targets: [{pvc: a}]\n  repositories:\n    - name: r\n      restic:\n        repository: rest:http://h:8000/\n        password: {secret: r, key: p}\n  offsite:\n    volumes:\n      repositories: [r, nope]\n",
    );
    assert_eq!(
        e,
        [
            "kentledge.yaml:16:25: spec.offsite.volumes.repositories[1]: unknown repository \"nope\", expected one of r"
        ]
    );
}

#[test]
fn colliding_series_names() {
    let e = errors(
        "spec:\n  repositories:\n    - name: r\n      restic: {repository: \"rest:http://h/\", password: {secret: r, key: p}}\n  offsite:\n    databases:\n      - {name: db, engine: mariadb, pod: {name: p}, repositories: [r]}\n    buckets:\n      - name: db\n        endpoint: https://s3\n        bucket: media\n        credentials: {accessKeyId: {secret: s, key: a}, secretAccessKey: {secret: s, key: b}}\n        repositories: [r]\n",
    );
    assert_eq!(
        e,
        [
            "kentledge.yaml:14:9: spec.offsite.buckets[0].name: name \"db\" is already used by spec.offsite.databases[0]"
        ]
    );
}

#[test]
fn mover_quantities_and_rates() {
    let e = errors(
        "spec:\n  mover:\n    resources:\n      limits: {memory: 2GB}\n    bandwidthLimit: fast\n    concurrency: 0\n",
    );
    assert_eq!(
        e,
        [
            "kentledge.yaml:9:16: spec.mover.resources.limits.memory: \"2GB\" is not a Kubernetes quantity (e.g. 100m, 512Mi, 10Gi)",
            "kentledge.yaml:10:5: spec.mover.bandwidthLimit: \"fast\": expected a rate such as 512KiB, 10MiB or 1GB (per second)",
            "kentledge.yaml:11:5: spec.mover.concurrency: must be at least 1",
        ]
    );
}

#[test]
fn a_mover_that_is_not_root_needs_an_fs_group() {
    let e = errors("spec:\n  mover:\n    securityContext: {runAsUser: 1000}\n");
    assert_eq!(
        e,
        [
            "kentledge.yaml:8:23: spec.mover.securityContext.runAsUser: a mover that is not root needs fsGroup too: its passphrase, keys and known_hosts are mounted readable by the owner (root) and the fsGroup only"
        ]
    );
    ok("spec:\n  mover:\n    securityContext: {runAsUser: 1000, fsGroup: 1000}\n");
    ok("spec:\n  mover:\n    securityContext: {runAsUser: 0}\n");
}

#[test]
fn all_semantic_problems_are_reported_at_once() {
    let e = errors(
        "spec:\n  timezone: Nowhere\n  snapshots:\n    cutTimeout: 0s\n    targets:\n      - pvc: Bad\n",
    );
    assert_eq!(e.len(), 3, "{e:?}");
}

#[test]
fn every_example_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            load_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            count += 1;
        }
    }
    assert!(count >= 4, "expected the examples, found {count}");
}

#[test]
fn the_full_example_sets_every_field() {
    // If a field is added to the schema, examples/full.yaml (the reference) must show it.
    let c = load_file(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/full.yaml"))
        .unwrap();
    let json = serde_json::to_value(&c).unwrap();
    let (mut null, mut set) = (
        std::collections::BTreeSet::new(),
        std::collections::BTreeSet::new(),
    );
    classify(&json, "", &mut null, &mut set);
    let never: Vec<&String> = null.difference(&set).collect();
    assert!(
        never.is_empty(),
        "fields never set in examples/full.yaml: {never:?}"
    );
}

/// Sorts every field path (list indices folded to `[]`) into null or set.
fn classify(
    v: &serde_json::Value,
    path: &str,
    null: &mut std::collections::BTreeSet<String>,
    set: &mut std::collections::BTreeSet<String>,
) {
    match v {
        // Retention policies are one type: a rule shown in any of them documents it.
        _ if path.contains(".retention.") => {
            let folded = format!("retention.{}", path.rsplit('.').next().unwrap_or(""));
            if v.is_null() {
                null.insert(folded)
            } else {
                set.insert(folded)
            };
        }
        serde_json::Value::Null => {
            null.insert(path.to_owned());
        }
        serde_json::Value::Object(m) => {
            set.insert(path.to_owned());
            for (k, v) in m {
                classify(v, &format!("{path}.{k}"), null, set);
            }
        }
        serde_json::Value::Array(a) => {
            set.insert(path.to_owned());
            for v in a {
                classify(v, &format!("{path}[]"), null, set);
            }
        }
        _ => {
            set.insert(path.to_owned());
        }
    }
}
