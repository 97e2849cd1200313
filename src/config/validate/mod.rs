//! Semantic validation of a parsed config: names, durations, time zones, selectors, retention,
//! repository URLs, secret references and cross references, one file per section. Reports every
//! problem at once, each as (field path, message); `load` turns paths into file positions.

mod mover;
mod offsite;
mod repositories;
mod snapshots;

use crate::config::schema::*;
use crate::model::names::{
    check_dns1123_label, check_dns1123_subdomain, check_label_key, check_label_value,
};
use mover::validate_mover;
pub use offsite::check_bucket_name;
use offsite::validate_offsite;
use repositories::validate_repositories;
use snapshots::validate_snapshots;

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
