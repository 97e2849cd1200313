//! Generic object validation: names, labels, annotations, finalizers and ownerReferences, with apimachinery's messages.

use serde_json::Value;

use crate::registry::NameRule;
use crate::status::Cause;

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const QUALIFIED_NAME_MSG: &str = "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_lower_alnum(b[0])
        && is_lower_alnum(b[b.len() - 1])
        && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(is_dns_label)
}

/// Errors of an RFC 1123 subdomain.
pub fn dns1123_subdomain_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 253 {
        out.push("must be no more than 253 characters".to_string());
    }
    if !is_dns_subdomain(s) {
        out.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    out
}

/// Errors of an RFC 1123 label.
pub fn dns1123_label_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    if !is_dns_label(s) {
        out.push(DNS1123_LABEL_MSG.to_string());
    }
    out
}

fn path_segment_errors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s == "." || s == ".." {
        out.push(format!("may not be '{s}'"));
    }
    for bad in ["/", "%"] {
        if s.contains(bad) {
            out.push(format!("may not contain '{bad}'"));
        }
    }
    out
}

/// Errors of a resource name under a rule; `prefix` is for generateName (a trailing '-' is allowed).
pub fn name_errors(rule: NameRule, name: &str, prefix: bool) -> Vec<String> {
    let masked;
    let name = if prefix && name.ends_with('-') {
        masked = format!("{}a", &name[..name.len() - 1]);
        masked.as_str()
    } else {
        name
    };
    match rule {
        NameRule::Subdomain => dns1123_subdomain_errors(name),
        NameRule::Label => dns1123_label_errors(name),
        NameRule::PathSegment => path_segment_errors(name),
    }
}

fn is_label_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.'
}

fn is_label_like(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&c| is_label_name_char(c))
}

/// The first error of a label value, if any.
pub fn label_value_error(v: &str) -> Option<String> {
    if v.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    if !v.is_empty() && !is_label_like(v) {
        return Some(LABEL_VALUE_MSG.into());
    }
    None
}

/// The first error of a qualified name (label key, annotation key, finalizer), if any.
pub fn qualified_name_error(k: &str) -> Option<String> {
    let parts: Vec<&str> = k.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                return Some("prefix part must be non-empty".into());
            }
            if let Some(e) = dns1123_subdomain_errors(prefix).into_iter().next() {
                return Some(format!("prefix part {e}"));
            }
            name
        }
        _ => return Some(QUALIFIED_NAME_MSG.into()),
    };
    if name.is_empty() {
        return Some("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    if !is_label_like(name) {
        return Some(QUALIFIED_NAME_PART_MSG.into());
    }
    None
}

/// The first error of a ConfigMap/Secret data key, if any.
pub fn config_key_error(k: &str) -> Option<String> {
    if k.is_empty() || !k.bytes().all(is_label_name_char) {
        return Some(CONFIG_KEY_MSG.into());
    }
    if k == "." || k == ".." {
        return Some("must not be '.'".into());
    }
    None
}

/// Validate `metadata` (name or generateName, labels, annotations, finalizers, ownerReferences).
pub fn validate_meta(rule: NameRule, meta: &Value, causes: &mut Vec<Cause>) {
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    let generate = meta
        .get("generateName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !generate.is_empty() {
        for e in name_errors(rule, generate, true) {
            causes.push(Cause::invalid(
                "metadata.generateName",
                &Value::String(generate.into()),
                &e,
            ));
        }
    }
    if name.is_empty() {
        causes.push(Cause::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for e in name_errors(rule, name, false) {
            causes.push(Cause::invalid(
                "metadata.name",
                &Value::String(name.into()),
                &e,
            ));
        }
    }
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(e) = qualified_name_error(k) {
                causes.push(Cause::invalid(
                    "metadata.labels",
                    &Value::String(k.clone()),
                    &e,
                ));
            }
            match v.as_str() {
                Some(s) => {
                    if let Some(e) = label_value_error(s) {
                        causes.push(Cause::invalid("metadata.labels", v, &e));
                    }
                }
                None => causes.push(Cause::invalid(
                    "metadata.labels",
                    v,
                    "label values must be strings",
                )),
            }
        }
    }
    if let Some(ann) = meta.get("annotations").and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in ann {
            total += k.len() + v.as_str().map_or(0, str::len);
            if let Some(e) = qualified_name_error(&k.to_lowercase()) {
                causes.push(Cause::invalid(
                    "metadata.annotations",
                    &Value::String(k.clone()),
                    &e,
                ));
            }
        }
        if total > 256 * 1024 {
            causes.push(Cause {
                reason: "FieldValueTooLong",
                message: "Too long: may not be more than 262144 bytes".into(),
                field: "metadata.annotations".into(),
            });
        }
    }
    if let Some(fins) = meta.get("finalizers").and_then(Value::as_array) {
        for f in fins {
            let s = f.as_str().unwrap_or("");
            if let Some(e) = qualified_name_error(s) {
                causes.push(Cause::invalid("metadata.finalizers", f, &e));
            }
        }
    }
    if let Some(refs) = meta.get("ownerReferences").and_then(Value::as_array) {
        let mut controllers = 0;
        for r in refs {
            for (field, what) in [
                ("apiVersion", "version must not be empty"),
                ("kind", "kind must not be empty"),
                ("name", "name must not be empty"),
                ("uid", "uid must not be empty"),
            ] {
                if r.get(field)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
                {
                    causes.push(Cause::invalid(
                        format!("metadata.ownerReferences.{field}"),
                        &Value::String(String::new()),
                        what,
                    ));
                }
            }
            if r.get("controller").and_then(Value::as_bool) == Some(true) {
                controllers += 1;
            }
        }
        if controllers > 1 {
            causes.push(Cause::invalid(
                "metadata.ownerReferences",
                &Value::Null,
                "Only one reference can have Controller set to true",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels() {
        assert!(name_errors(NameRule::Subdomain, "a.b-c", false).is_empty());
        assert_eq!(
            name_errors(NameRule::Subdomain, "Bad_Name", false),
            vec![DNS1123_SUBDOMAIN_MSG]
        );
        assert!(name_errors(NameRule::Subdomain, "cm-", true).is_empty());
        assert!(!name_errors(NameRule::Label, "a.b", false).is_empty());
        assert!(name_errors(NameRule::PathSegment, "system:admin", false).is_empty());
        assert_eq!(
            label_value_error("bad value!").as_deref(),
            Some(LABEL_VALUE_MSG)
        );
        assert!(label_value_error("").is_none());
        assert!(qualified_name_error("kentledge.io/keep-monthly").is_none());
        assert!(qualified_name_error("a/b/c").is_some());
        assert!(config_key_error("bad key").is_some());
    }
}
