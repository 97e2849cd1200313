//! `spec.snapshots`: targets, hooks, timeouts and retention of snapshots.

use std::collections::BTreeMap;

use super::{Problems, check_argv, validate_pod_selector, validate_retention, validate_selector};
use crate::config::schema::*;
use crate::model::names::{check_dns1123_label, check_dns1123_subdomain};

pub(super) fn validate_snapshots(p: &mut Problems, s: &Snapshots) {
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
