//! `spec.repositories`: names, borg and restic locations (ssh, http, s3, rclone, local, pvc),
//! credentials and engine settings.

use std::collections::{BTreeMap, BTreeSet};

use super::{Problems, validate_pvc_path, validate_retention, validate_secret_ref};
use crate::config::schema::*;
use crate::model::names::{check_dns1123_label, check_dns1123_subdomain};
use crate::model::units::check_quantity;

/// Checks `ssh://user@host[:port]/path`.
pub(super) fn check_ssh_url(url: &str) -> Result<(), String> {
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
pub(super) fn check_http_url(url: &str) -> Result<(), String> {
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
pub(super) fn check_restic_repository(repo: &str) -> Result<&'static str, String> {
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
pub(super) fn validate_repositories(p: &mut Problems, repos: &[Repository]) -> BTreeSet<String> {
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

pub(super) fn validate_ssh_credentials(
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

pub(super) fn validate_borg(p: &mut Problems, path: &str, b: &BorgRepository) {
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

pub(super) fn validate_restic(p: &mut Problems, path: &str, r: &ResticRepository) {
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
