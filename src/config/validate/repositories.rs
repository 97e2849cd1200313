//! `spec.repositories`: names, borg and restic locations (ssh, http, s3, rclone, local, pvc),
//! credentials and engine settings.

use std::collections::{BTreeMap, BTreeSet};

use super::{Problems, validate_pvc_path, validate_retention, validate_secret_ref};
use crate::config::schema::*;
use crate::model::names::{check_dns1123_label, check_dns1123_subdomain};
use crate::model::repository::{Engine, Kind, Location};
use crate::model::units::check_quantity;

pub(super) use crate::model::repository::check_http_url;

/// A repository's location as the config may write it: what [`Location::parse`] takes, except a
/// path, which only the mover's own volume provides.
pub(super) fn check_location(engine: Engine, text: &str) -> Result<Location, String> {
    let location = Location::parse(engine, text)?;
    if location.is_path() {
        return Err(in_pod(text));
    }
    Ok(location)
}

fn in_pod(text: &str) -> String {
    format!(
        "{text:?} is a path inside the mover pod; to keep a repository on a volume use pvc: {{claimName: …}}"
    )
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
        match r.try_kind() {
            Some(RepositoryKind::Borg(b)) => validate_borg(p, &format!("{path}.borg"), b),
            Some(RepositoryKind::Restic(rs)) => validate_restic(p, &format!("{path}.restic"), rs),
            None => p.add(&path, "exactly one of borg, restic must be set"),
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
            validate_cache(p, &path, c);
        }
    }
    names.into_keys().collect()
}

/// A cache volume's size and storage class.
pub(super) fn validate_cache(p: &mut Problems, path: &str, c: &CacheVolume) {
    p.check(format!("{path}.cache.size"), check_quantity(&c.size));
    if let Some(sc) = &c.storage_class_name {
        p.check(
            format!("{path}.cache.storageClassName"),
            check_dns1123_subdomain(sc),
        );
    }
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
        (Some(url), None) => match Location::parse(Engine::Borg, url) {
            Ok(l) if l.is_path() => p.add(format!("{path}.repository"), in_pod(url)),
            parsed => {
                p.check(format!("{path}.repository"), parsed.map(drop));
                validate_ssh_credentials(
                    p,
                    path,
                    &b.ssh_key,
                    &b.known_hosts,
                    b.insecure_skip_host_key_check,
                );
            }
        },
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
    // The location's kind; `None` when it is not known (reported already).
    let kind = match (&r.repository, &r.pvc) {
        (Some(repo), None) => match check_location(Engine::Restic, repo) {
            Ok(l) => Some(l.kind().clone()),
            Err(m) => {
                p.add(format!("{path}.repository"), m);
                None
            }
        },
        (None, Some(v)) => {
            validate_pvc_path(p, &format!("{path}.pvc"), v);
            Some(Kind::Path)
        }
        _ => {
            p.add(path, "exactly one of repository, pvc must be set");
            None
        }
    };
    if matches!(kind, Some(Kind::Sftp(_))) {
        validate_ssh_credentials(
            p,
            path,
            &r.ssh_key,
            &r.known_hosts,
            r.insecure_skip_host_key_check,
        );
    } else if kind.is_some() {
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
        if kind.is_some() && kind != Some(Kind::S3) {
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

    /// The checks as validation makes them of `borg.repository`.
    fn check_ssh_url(url: &str) -> Result<(), String> {
        check_location(Engine::Borg, url).map(drop)
    }

    /// The checks as validation makes them of `restic.repository`, and the scheme.
    fn check_restic_repository(repo: &str) -> Result<&'static str, String> {
        Ok(match check_location(Engine::Restic, repo)?.kind() {
            Kind::Sftp(_) => "sftp",
            Kind::Rest => "rest",
            Kind::S3 => "s3",
            _ => "other",
        })
    }

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
