//! The series a snapshot prune works on: this config's snapshots grouped by PVC, each with what
//! protects it from deletion — the `dataSource` of an existing PVC, a `kentledge.io/in-use-by`
//! mark, a VolumeSnapshotContent with `deletionPolicy: Retain` (unless the config says delete),
//! and, with `keepUntilBackedUp`, being newer than the newest copy offsite. Pure: the flow lists
//! the objects, this decides.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;

use super::{Candidate, Protection};
use crate::config::RetainedContents;
use crate::model::labels::{BACKED_UP_PREFIX, IN_USE_ANNOTATION, PIN, PVC, PVC_ANNOTATION};
use crate::model::snapshots::VolumeSnapshot;
use crate::plan::retention::Member;

/// Snapshot name → the PVCs whose `dataSource` or `dataSourceRef` is that VolumeSnapshot.
pub fn clone_sources(claims: &[PersistentVolumeClaim]) -> BTreeMap<String, Vec<String>> {
    let mut sources: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in claims {
        let spec = c.spec.as_ref();
        let refs = [
            spec.and_then(|s| s.data_source.as_ref())
                .map(|d| (d.kind.clone(), d.name.clone())),
            spec.and_then(|s| s.data_source_ref.as_ref())
                .map(|d| (d.kind.clone(), d.name.clone())),
        ];
        for (kind, name) in refs.into_iter().flatten() {
            if kind == "VolumeSnapshot" {
                sources
                    .entry(name)
                    .or_default()
                    .push(c.metadata.name.clone().unwrap_or_default());
            }
        }
    }
    sources
}

/// What the series are built from.
pub struct Inputs<'a> {
    /// This config's snapshots.
    pub snapshots: &'a [VolumeSnapshot],
    /// From [`clone_sources`].
    pub sources: &'a BTreeMap<String, Vec<String>>,
    /// Names of contents with `deletionPolicy: Retain`; `None` when they could not be read.
    pub retained: Option<&'a BTreeSet<String>>,
    /// What the config says about those.
    pub retained_contents: RetainedContents,
    /// `keepUntilBackedUp`.
    pub keep_until_backed_up: bool,
    /// The time of a snapshot that has none (it then counts as the newest).
    pub now: Timestamp,
}

/// The series, by PVC label key.
#[derive(Debug, Default)]
pub struct Series {
    /// Members of each series with their protections.
    pub members: BTreeMap<String, Vec<Candidate>>,
    /// The full PVC name of each series key (the label may be shortened).
    pub pvc_names: BTreeMap<String, String>,
    /// Snapshots that will be deleted although their content is retained (`retainedContents:
    /// delete`): snapshot and content names, to be said.
    pub retained_deleted: Vec<(String, String)>,
}

/// Groups the snapshots into series with their protections.
pub fn series(i: &Inputs<'_>) -> Series {
    let mut out = Series::default();
    for s in i.snapshots {
        let labels = s.metadata.labels.clone().unwrap_or_default();
        let Some(key) = labels.get(PVC).cloned() else {
            continue;
        };
        let full = s
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PVC_ANNOTATION))
            .cloned()
            .unwrap_or_else(|| key.clone());
        out.pvc_names.insert(key.clone(), full);
        let name = s.metadata.name.clone().unwrap_or_default();
        let status = s.status.as_ref();
        let time = status
            .and_then(|st| st.creation_time.as_ref().map(|t| t.0))
            .or_else(|| s.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .unwrap_or(i.now);
        let mut protections = Vec::new();
        if let Some(pvcs) = i.sources.get(&name) {
            protections.extend(pvcs.iter().map(|p| Protection::CloneSource(p.clone())));
        }
        if let Some(run) = s
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(IN_USE_ANNOTATION))
        {
            protections.push(Protection::Locked(run.clone()));
        }
        if let (Some(retained), Some(content)) = (
            i.retained,
            status.and_then(|st| st.bound_volume_snapshot_content_name.as_ref()),
        ) && retained.contains(content)
        {
            match i.retained_contents {
                RetainedContents::Skip => {
                    protections.push(Protection::RetainedContent(content.clone()))
                }
                RetainedContents::Delete => {
                    out.retained_deleted.push((name.clone(), content.clone()))
                }
            }
        }
        out.members.entry(key).or_default().push(Candidate {
            member: Member {
                id: name,
                time,
                ready: status.and_then(|st| st.ready_to_use) == Some(true),
                pinned: labels.get(PIN).is_some_and(|v| v == "true"),
            },
            labels,
            protections,
        });
    }
    if i.keep_until_backed_up {
        hold_until_backed_up(&mut out.members);
    }
    out
}

/// `keepUntilBackedUp`: in each series, every snapshot newer than the newest one that carries a
/// `backed-up.kentledge.io/<repository>` label is held (all of them while none is copied).
fn hold_until_backed_up(series: &mut BTreeMap<String, Vec<Candidate>>) {
    for members in series.values_mut() {
        let newest_copied = members
            .iter()
            .filter(|o| o.labels.keys().any(|k| k.starts_with(BACKED_UP_PREFIX)))
            .map(|o| o.member.time)
            .max();
        for o in members.iter_mut() {
            if newest_copied.is_none_or(|t| o.member.time > t) {
                o.protections.push(Protection::NotBackedUp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snap(name: &str, pvc: &str, time: &str, extra: serde_json::Value) -> VolumeSnapshot {
        let mut v = json!({
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
            "metadata": {"name": name, "labels": {PVC: pvc}},
            "spec": {"source": {"persistentVolumeClaimName": pvc}},
            "status": {"readyToUse": true, "creationTime": time, "boundVolumeSnapshotContentName": format!("c-{name}")},
        });
        if let Some(m) = extra.get("labels") {
            v["metadata"]["labels"]
                .as_object_mut()
                .unwrap()
                .extend(m.as_object().unwrap().clone());
        }
        if let Some(a) = extra.get("annotations") {
            v["metadata"]["annotations"] = a.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    fn inputs<'a>(
        snapshots: &'a [VolumeSnapshot],
        sources: &'a BTreeMap<String, Vec<String>>,
        retained: Option<&'a BTreeSet<String>>,
    ) -> Inputs<'a> {
        Inputs {
            snapshots,
            sources,
            retained,
            retained_contents: RetainedContents::Skip,
            keep_until_backed_up: false,
            now: "2026-12-01T00:00:00Z".parse().unwrap(),
        }
    }

    fn protections(s: &Series, key: &str) -> Vec<(String, Vec<Protection>)> {
        s.members[key]
            .iter()
            .map(|o| (o.member.id.clone(), o.protections.clone()))
            .collect()
    }

    #[test]
    fn clone_sources_come_from_data_source_and_data_source_ref() {
        let claims: Vec<PersistentVolumeClaim> = serde_json::from_value(json!([
            {"metadata": {"name": "restored"}, "spec": {"dataSource": {"kind": "VolumeSnapshot", "name": "s1", "apiGroup": "snapshot.storage.k8s.io"}}},
            {"metadata": {"name": "again"}, "spec": {"dataSourceRef": {"kind": "VolumeSnapshot", "name": "s1", "apiGroup": "snapshot.storage.k8s.io"}}},
            {"metadata": {"name": "copy"}, "spec": {"dataSource": {"kind": "PersistentVolumeClaim", "name": "data"}}},
        ]))
        .unwrap();
        let s = clone_sources(&claims);
        assert_eq!(s.len(), 1);
        assert_eq!(s["s1"], ["restored", "again"]);
    }

    #[test]
    fn series_by_pvc_with_every_protection() {
        let snaps = [
            snap("s1", "data", "2026-11-20T00:00:00Z", json!({})),
            snap(
                "s2",
                "data",
                "2026-11-21T00:00:00Z",
                json!({"annotations": {IN_USE_ANNOTATION: "backup/r1"}}),
            ),
            snap(
                "s3",
                "data",
                "2026-11-22T00:00:00Z",
                json!({"labels": {PIN: "true"}}),
            ),
            snap("l1", "logs", "2026-11-22T00:00:00Z", json!({})),
        ];
        let sources = BTreeMap::from([("s1".to_owned(), vec!["restored".to_owned()])]);
        let retained = BTreeSet::from(["c-s3".to_owned()]);
        let s = series(&inputs(&snaps, &sources, Some(&retained)));
        assert_eq!(s.members.keys().collect::<Vec<_>>(), ["data", "logs"]);
        assert_eq!(
            protections(&s, "data"),
            [
                (
                    "s1".into(),
                    vec![Protection::CloneSource("restored".into())]
                ),
                ("s2".into(), vec![Protection::Locked("backup/r1".into())]),
                (
                    "s3".into(),
                    vec![Protection::RetainedContent("c-s3".into())]
                ),
            ]
        );
        assert!(s.members["data"][2].member.pinned);
        assert!(s.retained_deleted.is_empty());
        // retainedContents: delete says so instead of protecting; contents unread protect nothing.
        let mut i = inputs(&snaps, &sources, Some(&retained));
        i.retained_contents = RetainedContents::Delete;
        let d = series(&i);
        assert_eq!(d.retained_deleted, [("s3".to_owned(), "c-s3".to_owned())]);
        assert!(d.members["data"][2].protections.is_empty());
        let unread = series(&inputs(&snaps, &sources, None));
        assert!(unread.members["data"][2].protections.is_empty());
    }

    #[test]
    fn keep_until_backed_up_holds_what_is_newer_than_the_newest_copy() {
        let copied = json!({"labels": {format!("{BACKED_UP_PREFIX}r"): "20261121T000000Z"}});
        let snaps = [
            snap("s1", "data", "2026-11-20T00:00:00Z", json!({})),
            snap("s2", "data", "2026-11-21T00:00:00Z", copied),
            snap("s3", "data", "2026-11-22T00:00:00Z", json!({})),
            snap("l1", "logs", "2026-11-22T00:00:00Z", json!({})),
        ];
        let sources = BTreeMap::new();
        let mut i = inputs(&snaps, &sources, None);
        i.keep_until_backed_up = true;
        let s = series(&i);
        assert_eq!(
            protections(&s, "data"),
            [
                ("s1".into(), vec![]),
                ("s2".into(), vec![]),
                ("s3".into(), vec![Protection::NotBackedUp]),
            ]
        );
        assert_eq!(
            protections(&s, "logs"),
            [("l1".into(), vec![Protection::NotBackedUp])],
            "nothing copied yet: all held"
        );
    }
}
