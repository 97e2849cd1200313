//! `spec.offsite`: volume, database and bucket backups and their cross references to repositories.

use std::collections::{BTreeMap, BTreeSet};

use super::repositories::check_http_url;
use super::{Problems, validate_pod_selector, validate_secret_ref};
use crate::config::schema::*;
use crate::model::names::{check_dns1123_label, check_dns1123_subdomain};

pub(super) fn validate_offsite(p: &mut Problems, spec: &Spec, repos: &BTreeSet<String>) {
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
        p.check(format!("{path}.bucket"), check_bucket_name(&b.bucket));
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
        if let Some(c) = &b.cache {
            super::repositories::validate_cache(p, &path, c);
        }
        check_repo_refs(p, &format!("{path}.repositories"), &b.repositories);
    }
}

/// An S3 bucket name: 3-63 lowercase letters, digits, `-` and `.`, starting and ending with a
/// letter or digit.
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an S3 bucket name (3-63 lowercase letters, digits, '-' and '.')"
        ))
    }
}
