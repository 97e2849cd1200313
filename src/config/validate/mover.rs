//! `spec.mover`: image, resources, security context, tolerations, concurrency and clone PVCs.

use super::Problems;
use crate::config::schema::*;
use crate::model::names::{check_dns1123_subdomain, check_label_key, check_label_value};
use crate::model::units::{check_quantity, parse_byte_rate};

pub(super) fn validate_mover(p: &mut Problems, m: &Mover) {
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
    if m.clone.bind_timeout.0.is_zero() {
        p.add(
            format!("{base}.clone.bindTimeout"),
            "must be longer than zero",
        );
    }
}
