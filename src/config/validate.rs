//! Semantic validation of a parsed config: names, durations, time zones, selectors, retention,
//! repository URLs, secret references and cross references. Reports every problem at once,
//! each as (field path, message); `load` turns paths into file positions.

use std::collections::{BTreeMap, BTreeSet};

use super::schema::*;
use crate::names::{
    check_dns1123_label, check_dns1123_subdomain, check_label_key, check_label_value,
};
use crate::units::{check_quantity, parse_byte_rate};

/// Collects problems as (path, message).
#[derive(Default)]
struct Problems(Vec<(String, String)>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push((path.into(), message.into()));
    }

    fn check(&mut self, path: impl Into<String>, result: Result<(), String>) {
        if let Err(m) = result {
            self.add(path, m);
        }
    }
}

/// Returns every semantic problem of `config` as (field path, message); empty when valid.
pub fn validate(config: &Config) -> Vec<(String, String)> {
    let mut p = Problems::default();
    if config.api_version != API_VERSION {
        p.add(
            "apiVersion",
            format!(
                "unsupported apiVersion {:?}, expected {API_VERSION}",
                config.api_version
            ),
        );
    }
    if config.kind != KIND {
        p.add(
            "kind",
            format!("unsupported kind {:?}, expected {KIND}", config.kind),
        );
    }
    p.check("metadata.name", check_dns1123_label(&config.metadata.name));
    if let Some(ns) = &config.metadata.namespace {
        p.check("metadata.namespace", check_dns1123_label(ns));
    }
    let spec = &config.spec;
    if jiff::tz::TimeZone::get(&spec.timezone).is_err() {
        p.add(
            "spec.timezone",
            format!(
                "unknown time zone {:?}, expected an IANA name such as UTC or Europe/Berlin",
                spec.timezone
            ),
        );
    }
    validate_snapshots(&mut p, &spec.snapshots);
    let repos = validate_repositories(&mut p, &spec.repositories);
    validate_offsite(&mut p, spec, &repos);
    validate_mover(&mut p, &spec.mover);
    p.0
}

fn validate_snapshots(p: &mut Problems, s: &Snapshots) {
    let base = "spec.snapshots";
    if let Some(class) = &s.volume_snapshot_class_name {
        p.check(
            format!("{base}.volumeSnapshotClassName"),
            check_dns1123_subdomain(class),
        );
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, t) in s.targets.iter().enumerate() {
        let path = format!("{base}.targets[{i}]");
        let count = [t.pvc.is_some(), t.selector.is_some(), t.workload.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if count != 1 {
            p.add(
                &path,
                format!("exactly one of pvc, selector, workload must be set (found {count})"),
            );
        }
        if let Some(pvc) = &t.pvc {
            p.check(format!("{path}.pvc"), check_dns1123_subdomain(pvc));
        }
        if let Some(sel) = &t.selector {
            validate_selector(p, &format!("{path}.selector"), sel);
        }
        if let Some(w) = &t.workload {
            p.check(
                format!("{path}.workload.name"),
                check_dns1123_subdomain(&w.name),
            );
        }
        if let Some(class) = &t.volume_snapshot_class_name {
            p.check(
                format!("{path}.volumeSnapshotClassName"),
                check_dns1123_subdomain(class),
            );
        }
        // Targets that name the same thing twice would snapshot it twice in one run.
        let identity = format!("{:?}{:?}{:?}", t.pvc, t.selector, t.workload);
        if let Some(first) = seen.insert(identity, i) {
            p.add(&path, format!("duplicates targets[{first}]"));
        }
    }
    if s.cut_timeout.as_secs() == 0 {
        p.add(format!("{base}.cutTimeout"), "must be greater than zero");
    }
    if s.ready_timeout.as_secs() == 0 {
        p.add(format!("{base}.readyTimeout"), "must be greater than zero");
    }
    if s.max_deletes_per_second == 0 {
        p.add(format!("{base}.maxDeletesPerSecond"), "must be at least 1");
    }
    let mut hook_names = BTreeMap::new();
    for (i, h) in s.hooks.iter().enumerate() {
        let path = format!("{base}.hooks[{i}]");
        p.check(format!("{path}.name"), check_dns1123_label(&h.name));
        if let Some(first) = hook_names.insert(h.name.clone(), i) {
            p.add(
                format!("{path}.name"),
                format!("hook name {:?} is already used by hooks[{first}]", h.name),
            );
        }
        validate_pod_selector(p, &format!("{path}.pod"), &h.pod);
        if let Some(c) = &h.container {
            p.check(format!("{path}.container"), check_dns1123_label(c));
        }
        match (&h.exec, &h.session) {
            (Some(_), Some(_)) | (None, None) => {
                p.add(&path, "exactly one of exec, session must be set");
            }
            (Some(e), None) => {
                if e.pre.is_none() && e.post.is_none() {
                    p.add(
                        format!("{path}.exec"),
                        "at least one of pre, post must be set",
                    );
                }
                for (field, cmd) in [("pre", &e.pre), ("post", &e.post)] {
                    if let Some(cmd) = cmd {
                        check_argv(p, &format!("{path}.exec.{field}"), cmd);
                    }
                }
            }
            (None, Some(sess)) => {
                check_argv(p, &format!("{path}.session.command"), &sess.command);
                if sess.pre.trim().is_empty() {
                    p.add(format!("{path}.session.pre"), "must not be empty");
                }
                if sess.ready_marker.trim().is_empty() {
                    p.add(format!("{path}.session.readyMarker"), "must not be empty");
                }
            }
        }
        if h.timeout.as_secs() == 0 {
            p.add(format!("{path}.timeout"), "must be greater than zero");
        }
    }
    if let Some(r) = &s.retention {
        validate_retention(p, &format!("{base}.retention"), r);
    }
}

fn check_argv(p: &mut Problems, path: &str, argv: &[String]) {
    if argv.is_empty() || argv[0].trim().is_empty() {
        p.add(
            path,
            "must be a non-empty command (a list: program, then arguments)",
        );
    }
}

fn validate_selector(p: &mut Problems, path: &str, sel: &LabelSelector) {
    if sel.match_labels.is_empty() && sel.match_expressions.is_empty() {
        p.add(
            path,
            "an empty selector would match every PVC; list matchLabels or matchExpressions",
        );
    }
    for (k, v) in &sel.match_labels {
        p.check(format!("{path}.matchLabels.{k}"), check_label_key(k));
        p.check(format!("{path}.matchLabels.{k}"), check_label_value(v));
    }
    for (i, r) in sel.match_expressions.iter().enumerate() {
        let rp = format!("{path}.matchExpressions[{i}]");
        p.check(format!("{rp}.key"), check_label_key(&r.key));
        match r.operator {
            SelectorOperator::In | SelectorOperator::NotIn if r.values.is_empty() => {
                p.add(format!("{rp}.values"), "must be non-empty for In and NotIn");
            }
            SelectorOperator::Exists | SelectorOperator::DoesNotExist if !r.values.is_empty() => {
                p.add(
                    format!("{rp}.values"),
                    "must be empty for Exists and DoesNotExist",
                );
            }
            _ => {}
        }
        for (j, v) in r.values.iter().enumerate() {
            p.check(format!("{rp}.values[{j}]"), check_label_value(v));
        }
    }
}

fn validate_pod_selector(p: &mut Problems, path: &str, pod: &PodSelector) {
    match (&pod.name, &pod.selector) {
        (Some(n), None) => p.check(format!("{path}.name"), check_dns1123_subdomain(n)),
        (None, Some(s)) => validate_selector(p, &format!("{path}.selector"), s),
        _ => p.add(path, "exactly one of name, selector must be set"),
    }
}

/// Checks a retention policy; a policy that would keep nothing is refused.
fn validate_retention(p: &mut Problems, path: &str, r: &Retention) {
    let counts = [
        ("last", r.last),
        ("hourly", r.hourly),
        ("daily", r.daily),
        ("weekly", r.weekly),
        ("monthly", r.monthly),
        ("yearly", r.yearly),
    ];
    let any_rule = counts.iter().any(|(_, c)| c.is_some()) || r.within.is_some();
    if r.keep.is_some() {
        if any_rule {
            p.add(
                format!("{path}.keep"),
                "keep: all cannot be combined with other rules",
            );
        }
        return;
    }
    let keeps_something = counts.iter().any(|(_, c)| c.is_some_and(|n| n > 0))
        || r.within.is_some_and(|w| w.as_secs() > 0);
    if !keeps_something {
        p.add(
            path,
            "this policy keeps nothing (every rule is zero or absent); set at least one of last, hourly, daily, weekly, monthly, yearly, within, or keep: all",
        );
    }
}

fn validate_secret_ref(p: &mut Problems, path: &str, r: &SecretKeyRef) {
    p.check(format!("{path}.secret"), check_dns1123_subdomain(&r.secret));
    if r.key.is_empty()
        || r.key.len() > 253
        || !r
            .key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        p.add(
            format!("{path}.key"),
            format!(
                "{:?} is not a valid Secret key (alphanumerics, '-', '_' or '.')",
                r.key
            ),
        );
    }
}

fn validate_pvc_path(p: &mut Problems, path: &str, v: &PvcPath) {
    p.check(
        format!("{path}.claimName"),
        check_dns1123_subdomain(&v.claim_name),
    );
    if let Some(sub) = &v.path
        && (sub.starts_with('/') || sub.split('/').any(|c| c == ".."))
    {
        p.add(
            format!("{path}.path"),
            "must be a relative path inside the volume, without '..'",
        );
    }
}

/// Checks `ssh://user@host[:port]/path`.
fn check_ssh_url(url: &str) -> Result<(), String> {
    let err =
        || format!("{url:?} is not an ssh:// repository URL, expected ssh://user@host[:port]/path");
    let rest = url.strip_prefix("ssh://").ok_or_else(err)?;
    let (authority, path) = rest.split_once('/').ok_or_else(err)?;
    let (user, hostport) = authority.split_once('@').ok_or_else(err)?;
    if user.is_empty() || path.is_empty() {
        return Err(err());
    }
    let host = if let Some(h) = hostport.strip_prefix('[') {
        let (h, after) = h.split_once(']').ok_or_else(err)?;
        if !after.is_empty() {
            let port = after.strip_prefix(':').ok_or_else(err)?;
            port.parse::<u16>().map_err(|_| err())?;
        }
        h
    } else {
        match hostport.split_once(':') {
            Some((h, port)) => {
                port.parse::<u16>()
                    .map_err(|_| format!("{url:?}: port {port:?} is not a number 1-65535"))?;
                h
            }
            None => hostport,
        }
    };
    if host.is_empty() {
        return Err(err());
    }
    Ok(())
}

/// Checks an http(s) URL with a host.
fn check_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

/// The scheme of a restic repository string, after checking it.
fn check_restic_repository(repo: &str) -> Result<&'static str, String> {
    if repo.starts_with('/') || repo.starts_with("local:") {
        return Err(format!(
            "{repo:?} is a path inside the mover pod; to keep a repository on a volume use pvc: {{claimName: …}}"
        ));
    }
    for scheme in ["sftp", "rest", "s3", "b2", "azure", "gs", "swift", "rclone"] {
        if let Some(rest) = repo.strip_prefix(scheme).and_then(|r| r.strip_prefix(':')) {
            if rest.is_empty() {
                return Err(format!("{repo:?}: nothing after {scheme}:"));
            }
            if scheme == "rest" {
                check_http_url(rest)?;
            }
            if scheme == "s3" && (rest.starts_with("http://") || rest.starts_with("https://")) {
                check_http_url(rest)?;
            }
            return Ok(match scheme {
                "sftp" => "sftp",
                "rest" => "rest",
                "s3" => "s3",
                _ => "other",
            });
        }
    }
    Err(format!(
        "{repo:?} is not a restic repository, expected one of sftp:, rest:, s3:, b2:, azure:, gs:, swift:, rclone:"
    ))
}

/// Checks the repositories; returns their names.
fn validate_repositories(p: &mut Problems, repos: &[Repository]) -> BTreeSet<String> {
    let mut names = BTreeMap::new();
    for (i, r) in repos.iter().enumerate() {
        let path = format!("spec.repositories[{i}]");
        p.check(format!("{path}.name"), check_dns1123_label(&r.name));
        if let Some(first) = names.insert(r.name.clone(), i) {
            p.add(
                format!("{path}.name"),
                format!(
                    "repository name {:?} is already used by repositories[{first}]",
                    r.name
                ),
            );
        }
        match (&r.borg, &r.restic) {
            (Some(b), None) => validate_borg(p, &format!("{path}.borg"), b),
            (None, Some(rs)) => validate_restic(p, &format!("{path}.restic"), rs),
            _ => p.add(&path, "exactly one of borg, restic must be set"),
        }
        if let Some(ret) = &r.retention {
            validate_retention(p, &format!("{path}.retention"), ret);
        }
        if let Some(subset) = &r.check.read_data_subset {
            let ok = subset
                .strip_suffix('%')
                .and_then(|n| n.parse::<f64>().ok())
                .is_some_and(|n| n > 0.0 && n <= 100.0)
                || subset
                    .split_once('/')
                    .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
                    .is_some_and(|(a, b)| a >= 1 && a <= b);
            if !ok {
                p.add(
                    format!("{path}.check.readDataSubset"),
                    format!("{subset:?}: expected a percentage such as 5% or a part such as 1/10"),
                );
            }
        }
        if let Some(c) = &r.cache {
            p.check(format!("{path}.cache.size"), check_quantity(&c.size));
            if let Some(sc) = &c.storage_class_name {
                p.check(
                    format!("{path}.cache.storageClassName"),
                    check_dns1123_subdomain(sc),
                );
            }
        }
    }
    names.into_keys().collect()
}

fn validate_ssh_credentials(
    p: &mut Problems,
    path: &str,
    ssh_key: &Option<SecretKeyRef>,
    known_hosts: &Option<SecretKeyRef>,
    insecure: bool,
) {
    match ssh_key {
        Some(k) => validate_secret_ref(p, &format!("{path}.sshKey"), k),
        None => p.add(
            format!("{path}.sshKey"),
            "an ssh repository needs sshKey: {secret, key}",
        ),
    }
    match known_hosts {
        Some(k) => {
            validate_secret_ref(p, &format!("{path}.knownHosts"), k);
            if insecure {
                p.add(format!("{path}.insecureSkipHostKeyCheck"), "cannot be combined with knownHosts");
            }
        }
        None if !insecure => p.add(
            format!("{path}.knownHosts"),
            "an ssh repository needs knownHosts: {secret, key} (host keys are checked); to opt out set insecureSkipHostKeyCheck: true",
        ),
        None => {}
    }
}

fn validate_borg(p: &mut Problems, path: &str, b: &BorgRepository) {
    match (&b.repository, &b.pvc) {
        (Some(url), None) => {
            if url.starts_with('/') {
                p.add(
                    format!("{path}.repository"),
                    format!("{url:?} is a path inside the mover pod; to keep a repository on a volume use pvc: {{claimName: …}}"),
                );
            } else {
                p.check(format!("{path}.repository"), check_ssh_url(url));
                validate_ssh_credentials(
                    p,
                    path,
                    &b.ssh_key,
                    &b.known_hosts,
                    b.insecure_skip_host_key_check,
                );
            }
        }
        (None, Some(v)) => {
            validate_pvc_path(p, &format!("{path}.pvc"), v);
            for (field, set) in [
                ("sshKey", b.ssh_key.is_some()),
                ("knownHosts", b.known_hosts.is_some()),
            ] {
                if set {
                    p.add(
                        format!("{path}.{field}"),
                        "only used with an ssh:// repository",
                    );
                }
            }
        }
        _ => p.add(path, "exactly one of repository, pvc must be set"),
    }
    let needs_passphrase = matches!(
        b.encryption,
        BorgEncryption::Repokey | BorgEncryption::RepokeyBlake2
    );
    match &b.passphrase {
        Some(r) => validate_secret_ref(p, &format!("{path}.passphrase"), r),
        None if needs_passphrase => p.add(
            format!("{path}.passphrase"),
            "an encrypted borg repository needs passphrase: {secret, key}",
        ),
        None => {}
    }
    if let Some(c) = &b.compression {
        let algo = c
            .split(',')
            .find(|part| *part != "auto" && *part != "obfuscate")
            .unwrap_or("");
        if !matches!(algo, "none" | "lz4" | "zstd" | "zlib" | "lzma") {
            p.add(format!("{path}.compression"), format!("{c:?}: expected none, lz4, zstd[,L], zlib[,L], lzma[,L], optionally prefixed by auto,"));
        }
    }
    if let Some(rp) = &b.remote_path
        && rp.trim().is_empty()
    {
        p.add(format!("{path}.remotePath"), "must not be empty");
    }
}

fn validate_restic(p: &mut Problems, path: &str, r: &ResticRepository) {
    validate_secret_ref(p, &format!("{path}.password"), &r.password);
    let scheme = match (&r.repository, &r.pvc) {
        (Some(repo), None) => match check_restic_repository(repo) {
            Ok(s) => Some(s),
            Err(m) => {
                p.add(format!("{path}.repository"), m);
                None
            }
        },
        (None, Some(v)) => {
            validate_pvc_path(p, &format!("{path}.pvc"), v);
            Some("pvc")
        }
        _ => {
            p.add(path, "exactly one of repository, pvc must be set");
            None
        }
    };
    if scheme == Some("sftp") {
        validate_ssh_credentials(
            p,
            path,
            &r.ssh_key,
            &r.known_hosts,
            r.insecure_skip_host_key_check,
        );
    } else if scheme.is_some() {
        for (field, set) in [
            ("sshKey", r.ssh_key.is_some()),
            ("knownHosts", r.known_hosts.is_some()),
            ("insecureSkipHostKeyCheck", r.insecure_skip_host_key_check),
        ] {
            if set {
                p.add(
                    format!("{path}.{field}"),
                    "only used with an sftp: repository",
                );
            }
        }
    }
    if let Some(s3) = &r.s3 {
        if scheme.is_some() && scheme != Some("s3") {
            p.add(format!("{path}.s3"), "only used with an s3: repository");
        }
        validate_secret_ref(p, &format!("{path}.s3.accessKeyId"), &s3.access_key_id);
        validate_secret_ref(
            p,
            &format!("{path}.s3.secretAccessKey"),
            &s3.secret_access_key,
        );
    }
    let mut names = BTreeMap::new();
    for (i, e) in r.env.iter().enumerate() {
        let ep = format!("{path}.env[{i}]");
        let valid_name = !e.name.is_empty()
            && !e.name.starts_with(|c: char| c.is_ascii_digit())
            && e.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            p.add(
                format!("{ep}.name"),
                format!("{:?} is not an environment variable name", e.name),
            );
        }
        if e.name.starts_with("RESTIC_PASSWORD") || e.name == "RESTIC_REPOSITORY" {
            p.add(
                format!("{ep}.name"),
                format!(
                    "{} is set by kentledge from password and repository",
                    e.name
                ),
            );
        }
        if let Some(first) = names.insert(e.name.clone(), i) {
            p.add(
                format!("{ep}.name"),
                format!("{} is already set by env[{first}]", e.name),
            );
        }
        match (&e.value, &e.value_from) {
            (Some(_), None) => {}
            (None, Some(r)) => validate_secret_ref(p, &format!("{ep}.valueFrom"), r),
            _ => p.add(&ep, "exactly one of value, valueFrom must be set"),
        }
    }
}

fn validate_offsite(p: &mut Problems, spec: &Spec, repos: &BTreeSet<String>) {
    let check_repo_refs = |p: &mut Problems, path: &str, refs: &[String]| {
        if refs.is_empty() {
            p.add(path, "list at least one repository");
        }
        let mut seen = BTreeSet::new();
        for (i, r) in refs.iter().enumerate() {
            if !repos.contains(r) {
                let known: Vec<&str> = repos.iter().map(String::as_str).collect();
                p.add(
                    format!("{path}[{i}]"),
                    if known.is_empty() {
                        format!("unknown repository {r:?}: spec.repositories is empty")
                    } else {
                        format!(
                            "unknown repository {r:?}, expected one of {}",
                            known.join(", ")
                        )
                    },
                );
            }
            if !seen.insert(r) {
                p.add(
                    format!("{path}[{i}]"),
                    format!("repository {r:?} is listed twice"),
                );
            }
        }
    };
    let o = &spec.offsite;
    if let Some(v) = &o.volumes {
        check_repo_refs(p, "spec.offsite.volumes.repositories", &v.repositories);
        if spec.snapshots.targets.is_empty() {
            p.add(
                "spec.offsite.volumes",
                "volumes are copied from snapshots, but spec.snapshots.targets is empty",
            );
        }
        if let Some(pvcs) = &v.pvcs {
            for (i, name) in pvcs.iter().enumerate() {
                p.check(
                    format!("spec.offsite.volumes.pvcs[{i}]"),
                    check_dns1123_subdomain(name),
                );
            }
        }
        for (i, ex) in v.exclude.iter().enumerate() {
            if ex.trim().is_empty() {
                p.add(
                    format!("spec.offsite.volumes.exclude[{i}]"),
                    "must not be empty",
                );
            }
        }
    }
    // Series names: one namespace for databases and buckets, so archive names never collide.
    let mut series: BTreeMap<&str, String> = BTreeMap::new();
    for (i, d) in o.databases.iter().enumerate() {
        let path = format!("spec.offsite.databases[{i}]");
        p.check(format!("{path}.name"), check_dns1123_label(&d.name));
        if let Some(first) = series.insert(&d.name, path.clone()) {
            p.add(
                format!("{path}.name"),
                format!("name {:?} is already used by {first}", d.name),
            );
        }
        validate_pod_selector(p, &format!("{path}.pod"), &d.pod);
        if let Some(c) = &d.container {
            p.check(format!("{path}.container"), check_dns1123_label(c));
        }
        for (j, db) in d.databases.iter().enumerate() {
            if db.is_empty() || db.contains(['/', '\0', '\'', '"', '`', ' ']) {
                p.add(
                    format!("{path}.databases[{j}]"),
                    format!("{db:?} is not a database name kentledge can pass safely"),
                );
            }
        }
        let c = &d.credentials;
        let users = [
            c.user.is_some(),
            c.user_from_env.is_some(),
            c.user_secret.is_some(),
        ];
        if users.iter().filter(|b| **b).count() > 1 {
            p.add(
                format!("{path}.credentials"),
                "at most one of user, userFromEnv, userSecret may be set",
            );
        }
        if c.password_from_env.is_some() && c.password_secret.is_some() {
            p.add(
                format!("{path}.credentials"),
                "at most one of passwordFromEnv, passwordSecret may be set",
            );
        }
        for (field, env) in [
            ("userFromEnv", &c.user_from_env),
            ("passwordFromEnv", &c.password_from_env),
        ] {
            if let Some(e) = env
                && (e.is_empty() || !e.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'))
            {
                p.add(
                    format!("{path}.credentials.{field}"),
                    format!("{e:?} is not an environment variable name"),
                );
            }
        }
        if let Some(r) = &c.user_secret {
            validate_secret_ref(p, &format!("{path}.credentials.userSecret"), r);
        }
        if let Some(r) = &c.password_secret {
            validate_secret_ref(p, &format!("{path}.credentials.passwordSecret"), r);
        }
        check_repo_refs(p, &format!("{path}.repositories"), &d.repositories);
    }
    for (i, b) in o.buckets.iter().enumerate() {
        let path = format!("spec.offsite.buckets[{i}]");
        p.check(format!("{path}.name"), check_dns1123_label(&b.name));
        if let Some(first) = series.insert(&b.name, path.clone()) {
            p.add(
                format!("{path}.name"),
                format!("name {:?} is already used by {first}", b.name),
            );
        }
        p.check(format!("{path}.endpoint"), check_http_url(&b.endpoint));
        let bucket_ok = (3..=63).contains(&b.bucket.len())
            && b.bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && b.bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && b.bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !bucket_ok {
            p.add(
                format!("{path}.bucket"),
                format!(
                    "{:?} is not an S3 bucket name (3-63 lowercase letters, digits, '-' and '.')",
                    b.bucket
                ),
            );
        }
        if let Some(prefix) = &b.prefix
            && prefix.starts_with('/')
        {
            p.add(format!("{path}.prefix"), "S3 keys do not start with '/'");
        }
        validate_secret_ref(
            p,
            &format!("{path}.credentials.accessKeyId"),
            &b.credentials.access_key_id,
        );
        validate_secret_ref(
            p,
            &format!("{path}.credentials.secretAccessKey"),
            &b.credentials.secret_access_key,
        );
        check_repo_refs(p, &format!("{path}.repositories"), &b.repositories);
    }
}

fn validate_mover(p: &mut Problems, m: &Mover) {
    let base = "spec.mover";
    if m.image.trim().is_empty() || m.image.contains(char::is_whitespace) {
        p.add(
            format!("{base}.image"),
            format!("{:?} is not an image reference", m.image),
        );
    }
    if let Some(sa) = &m.service_account_name {
        p.check(
            format!("{base}.serviceAccountName"),
            check_dns1123_subdomain(sa),
        );
    }
    for (kind, map) in [
        ("requests", &m.resources.requests),
        ("limits", &m.resources.limits),
    ] {
        for (name, q) in map {
            p.check(format!("{base}.resources.{kind}.{name}"), check_quantity(q));
        }
    }
    for (field, id) in [
        ("runAsUser", m.security_context.run_as_user),
        ("runAsGroup", m.security_context.run_as_group),
        ("fsGroup", m.security_context.fs_group),
    ] {
        if id.is_some_and(|v| v < 0) {
            p.add(
                format!("{base}.securityContext.{field}"),
                "must not be negative",
            );
        }
    }
    let sc = &m.security_context;
    if sc.run_as_user.is_some_and(|u| u > 0) && sc.fs_group.is_none() {
        p.add(
            format!("{base}.securityContext.runAsUser"),
            "a mover that is not root needs fsGroup too: its passphrase, keys and known_hosts are mounted readable by the owner (root) and the fsGroup only",
        );
    }
    for (k, v) in &m.node_selector {
        p.check(format!("{base}.nodeSelector.{k}"), check_label_key(k));
        p.check(format!("{base}.nodeSelector.{k}"), check_label_value(v));
    }
    for (i, t) in m.tolerations.iter().enumerate() {
        let path = format!("{base}.tolerations[{i}]");
        if t.operator == Some(TolerationOperator::Exists) && t.value.is_some() {
            p.add(
                format!("{path}.value"),
                "must be empty when operator is Exists",
            );
        }
        if t.key.is_none() && t.operator != Some(TolerationOperator::Exists) {
            p.add(
                format!("{path}.operator"),
                "an empty key requires operator: Exists",
            );
        }
        if t.toleration_seconds.is_some() && t.effect != Some(TaintEffect::NoExecute) {
            p.add(
                format!("{path}.tolerationSeconds"),
                "only applies to effect: NoExecute",
            );
        }
    }
    if m.timeout.as_secs() == 0 {
        p.add(format!("{base}.timeout"), "must be greater than zero");
    }
    if m.concurrency == 0 {
        p.add(format!("{base}.concurrency"), "must be at least 1");
    }
    if let Some(limit) = &m.bandwidth_limit
        && let Err(e) = parse_byte_rate(limit)
    {
        p.add(format!("{base}.bandwidthLimit"), e);
    }
    if let Some(sc) = &m.clone.storage_class_name {
        p.check(
            format!("{base}.clone.storageClassName"),
            check_dns1123_subdomain(sc),
        );
    }
    if let Some(size) = &m.clone.size {
        p.check(format!("{base}.clone.size"), check_quantity(size));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_urls() {
        for ok in [
            "ssh://borg@host/./repo",
            "ssh://u@host:2222/srv/repo",
            "ssh://u@[::1]:22/r",
        ] {
            assert_eq!(check_ssh_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "host:/repo",
            "ssh://host/repo",
            "ssh://u@host",
            "ssh://u@host:x/r",
            "ssh://u@:22/r",
        ] {
            assert!(check_ssh_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn restic_repositories() {
        assert_eq!(check_restic_repository("sftp:u@h:/r"), Ok("sftp"));
        assert_eq!(
            check_restic_repository("rest:http://127.0.0.1:8000/"),
            Ok("rest")
        );
        assert_eq!(
            check_restic_repository("s3:https://s3.example.com/b/p"),
            Ok("s3")
        );
        assert_eq!(check_restic_repository("b2:bucket:path"), Ok("other"));
        assert!(
            check_restic_repository("/srv/restic")
                .unwrap_err()
                .contains("pvc")
        );
        assert!(check_restic_repository("rest:ftp://x").is_err());
        assert!(check_restic_repository("webdav:x").is_err());
        assert!(check_restic_repository("s3:").is_err());
    }
}
