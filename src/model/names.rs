//! Kubernetes name and label syntax: DNS-1123 labels and subdomains, label keys and values.
//!
//! These are the rules the API server enforces; checking them here lets a bad config fail
//! before any API call, with a message that says what is wrong.

/// The longest DNS-1123 label (namespaces, most object names that become labels).
pub const DNS1123_LABEL_MAX: usize = 63;
/// The longest DNS-1123 subdomain (most object names, e.g. PVCs and VolumeSnapshots).
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;
/// The longest label value.
pub const LABEL_VALUE_MAX: usize = 63;

fn is_alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// Lowercase alphanumerics and `-`, starting and ending with an alphanumeric (no length check).
fn is_label_part(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| is_alnum_lower(c) || c == '-')
        && s.starts_with(is_alnum_lower)
        && s.ends_with(is_alnum_lower)
}

/// Checks a DNS-1123 label: lowercase alphanumerics and `-`, starting and ending with an
/// alphanumeric, at most 63 characters. Returns why it is not one.
pub fn check_dns1123_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > DNS1123_LABEL_MAX {
        return Err(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters (has {})",
            s.len()
        ));
    }
    if is_label_part(s) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit"
        ))
    }
}

/// Checks a DNS-1123 subdomain: dot-separated DNS-1123 labels, at most 253 characters.
pub fn check_dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        return Err(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters (has {})",
            s.len()
        ));
    }
    if s.split('.').all(is_label_part) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit"
        ))
    }
}

/// Checks a label or annotation key: an optional DNS-1123 subdomain prefix and `/`, then a
/// name of at most 63 characters (alphanumerics, `-`, `_`, `.`, alphanumeric at both ends).
pub fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        check_dns1123_subdomain(p).map_err(|e| format!("label key {key:?}: prefix {e}"))?;
    }
    check_qualified_name_part(name).map_err(|e| format!("label key {key:?}: {e}"))
}

fn check_qualified_name_part(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name part must not be empty".into());
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters".into());
    }
    if name
        .chars()
        .all(|c| is_alnum(c) || matches!(c, '-' | '_' | '.'))
        && name.starts_with(is_alnum)
        && name.ends_with(is_alnum)
    {
        Ok(())
    } else {
        Err("name part must consist of alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric".into())
    }
}

/// Checks a label value: empty, or at most 63 alphanumerics, `-`, `_`, `.` with alphanumeric ends.
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > LABEL_VALUE_MAX {
        return Err(format!(
            "label value {value:?} must be no more than {LABEL_VALUE_MAX} characters"
        ));
    }
    check_qualified_name_part(value).map_err(|_| {
        format!(
            "label value {value:?} must consist of alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_labels() {
        for ok in ["a", "db-0", "0db", &"a".repeat(63)] {
            assert_eq!(check_dns1123_label(ok), Ok(()), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(check_dns1123_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dns1123_subdomains() {
        for ok in ["a.b", "csi-hostpath-snapclass", "data-mariadb-0"] {
            assert_eq!(check_dns1123_subdomain(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a..b", ".a", "a.", "A.b", &"a".repeat(254)] {
            assert!(check_dns1123_subdomain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_keys_and_values() {
        for ok in [
            "app",
            "app.kubernetes.io/name",
            "kentledge.io/keep-daily",
            "A_b.c",
        ] {
            assert_eq!(check_label_key(ok), Ok(()), "{ok}");
        }
        for bad in ["", "/a", "a/", "-a", "Bad_Prefix/a", "a/b/c"] {
            assert!(check_label_key(bad).is_err(), "{bad}");
        }
        for ok in ["", "v1", "2026-11-21", "A.b_c-d"] {
            assert_eq!(check_label_value(ok), Ok(()), "{ok}");
        }
        for bad in ["-a", "a b", "a/b", &"a".repeat(64)] {
            assert!(check_label_value(bad).is_err(), "{bad}");
        }
    }
}
