//! The snapshot prune flow: the imperative shell around [`crate::plan::prune`]. It lists this
//! config's snapshots once (paginated) and groups them into series by PVC. It gathers what
//! protects a snapshot: the `dataSource` of an existing PVC, a `kentledge.io/in-use-by`
//! annotation, a Retain content. Then it plans every series and, unless a dry run, applies the
//! steps one API call each, deletions rate-limited, under the run lock. Repository retention is
//! [`crate::flows::repositories`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

use crate::config::RetainedContents;
use crate::error::{Error, exit};
use crate::kube::lease;
use crate::model::labels::{BACKED_UP_PREFIX, IN_USE_ANNOTATION, PIN, PVC, PVC_ANNOTATION};
use crate::model::snapshots::VolumeSnapshot;
use crate::plan::lock::Lock;
use crate::plan::prune::{Action, Observed, Protection, Step, plan_series, tally};
use crate::plan::retention::{Context, Member, Policy};
use crate::report::prune::{self as report, Report, SeriesReport, StepReport, action_text};
use crate::runtime::output;
use crate::runtime::signals::Interrupt;
use crate::settings::Settings;
fn content_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshotContent"),
        "volumesnapshotcontents",
    )
}

/// Lists every object of a kind with pagination (500 at a time).
async fn list_all<K>(api: &Api<K>, lp: ListParams) -> kube::Result<Vec<K>>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut lp = lp.limit(500);
    loop {
        let page = api.list(&lp).await?;
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => return Ok(out),
        }
    }
}

/// Prunes this config's snapshots with `spec.snapshots.retention`, deciding at `now`.
pub async fn snapshots(
    settings: &Settings,
    lock_timeout: Duration,
    now: Timestamp,
    client: &kube::Client,
    interrupt: &Interrupt,
    results: &mut output::Results,
) -> Result<u8, Error> {
    let cfg = &settings.config.spec.snapshots;
    let Some(retention) = &cfg.retention else {
        results.report(&report::NoRetention {
            namespace: &settings.namespace,
            config: &settings.config.metadata.name,
            dry_run: settings.dry_run,
        })?;
        return Ok(exit::SUCCESS);
    };
    let ns = settings.namespace.as_str();
    let config_name = settings.config.metadata.name.as_str();
    let tz = TimeZone::get(&settings.config.spec.timezone).map_err(|e| Error::BadArgument {
        flag: "spec.timezone",
        value: settings.config.spec.timezone.clone(),
        reason: e.to_string(),
    })?;

    let held = if settings.dry_run {
        None
    } else {
        let run_id = crate::model::labels::new_run_id();
        let wait = lock_timeout;
        Some(lease::take(client, ns, config_name, Lock::Run, &run_id, wait, interrupt).await?)
    };
    let result = prune(
        client,
        settings,
        ns,
        config_name,
        now,
        &tz,
        retention,
        interrupt,
        results,
    )
    .await;
    let interrupted = interrupt.code();
    let lost = match held {
        Some(h) => h.release().await,
        None => None,
    };
    result.map(|report| report.code(interrupted, lost.is_some()))
}

#[allow(clippy::too_many_arguments)]
async fn prune(
    client: &kube::Client,
    settings: &Settings,
    ns: &str,
    config_name: &str,
    now: Timestamp,
    tz: &TimeZone,
    retention: &crate::config::Retention,
    interrupt: &Interrupt,
    results: &mut output::Results,
) -> Result<Report, Error> {
    let cfg = &settings.config.spec.snapshots;
    let snaps: Api<VolumeSnapshot> = Api::namespaced(client.clone(), ns);
    let selector = crate::model::labels::config_selector(config_name);
    let all = list_all(&snaps, ListParams::default().labels(&selector))
        .await
        .map_err(Error::cluster("list VolumeSnapshots"))?;
    let claims = list_all(
        &Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns),
        ListParams::default(),
    )
    .await
    .map_err(Error::cluster("list PersistentVolumeClaims"))?;
    // Snapshots that are the source of an existing PVC.
    let mut sources: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in &claims {
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
    // Contents with deletionPolicy Retain (needs the optional read-only ClusterRole).
    let retained: Option<BTreeSet<String>> = match list_all(
        &Api::<DynamicObject>::all_with(client.clone(), &content_resource()),
        ListParams::default(),
    )
    .await
    {
        Ok(list) => Some(
            list.into_iter()
                .filter(|c| {
                    c.data
                        .pointer("/spec/deletionPolicy")
                        .and_then(Value::as_str)
                        == Some("Retain")
                })
                .filter_map(|c| c.metadata.name)
                .collect(),
        ),
        Err(kube::Error::Api(s)) if s.code == 403 => {
            tracing::warn!(
                "cannot read VolumeSnapshotContents (install manifests/cluster-read.yaml): contents with deletionPolicy Retain are not detected"
            );
            None
        }
        Err(e) => return Err(Error::cluster("list VolumeSnapshotContents")(e)),
    };

    // Series: one PVC of this config.
    let mut series: BTreeMap<String, Vec<Observed>> = BTreeMap::new();
    let mut pvc_names: BTreeMap<String, String> = BTreeMap::new();
    for s in &all {
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
        pvc_names.insert(key.clone(), full);
        let name = s.metadata.name.clone().unwrap_or_default();
        let status = s.status.as_ref();
        let time = status
            .and_then(|st| st.creation_time.as_ref().map(|t| t.0))
            .or_else(|| s.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .unwrap_or(now);
        let mut protections = Vec::new();
        if let Some(pvcs) = sources.get(&name) {
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
            &retained,
            status.and_then(|st| st.bound_volume_snapshot_content_name.as_ref()),
        ) && retained.contains(content)
        {
            match cfg.retained_contents {
                RetainedContents::Skip => {
                    protections.push(Protection::RetainedContent(content.clone()))
                }
                RetainedContents::Delete => {
                    tracing::warn!(snapshot = %name, %content, "deleting a snapshot whose content has deletionPolicy Retain: the content and its storage stay")
                }
            }
        }
        series.entry(key).or_default().push(Observed {
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
    if cfg.keep_until_backed_up {
        hold_until_backed_up(&mut series);
    }
    let policy = Policy::from(retention);
    let ctx = Context {
        tz: tz.clone(),
        now,
        not_ready_grace: cfg.not_ready_grace,
    };
    let mut reports = Vec::new();
    let pause = Duration::from_secs_f64(1.0 / f64::from(cfg.max_deletes_per_second.max(1)));
    for (key, members) in &series {
        let steps: Vec<Step> = plan_series(members, &policy, &ctx, cfg.delete_after);
        let by_name: BTreeMap<&str, &Observed> =
            members.iter().map(|o| (o.member.id.as_str(), o)).collect();
        let mut out = Vec::new();
        // Only what was done is counted as done.
        let mut done = Vec::new();
        let mut not_done = 0usize;
        for step in &steps {
            let o = by_name[step.name.as_str()];
            let mut error = None;
            if settings.dry_run {
                done.push(step);
            } else if interrupt.is_set() {
                error = Some("not done: interrupted".to_owned());
                not_done += 1;
            } else {
                error = apply(&snaps, step, pause).await.err();
                match &error {
                    Some(e) => {
                        not_done += 1;
                        tracing::error!(snapshot = %step.name, "{e}");
                    }
                    None => done.push(step),
                }
            }
            out.push(StepReport {
                name: step.name.clone(),
                time: o
                    .member
                    .time
                    .to_zoned(tz.clone())
                    .strftime("%Y-%m-%d %H:%M:%S %Z")
                    .to_string(),
                ready: o.member.ready,
                action: action_text(&step.action),
                reasons: step.decision.explain(),
                error,
            });
        }
        out.sort_by(|a, b| b.name.cmp(&a.name));
        reports.push(SeriesReport {
            pvc: pvc_names.get(key).cloned().unwrap_or_else(|| key.clone()),
            snapshots: out,
            tally: crate::plan::prune::Tally {
                failed: not_done,
                ..tally(done)
            },
        });
    }
    let report = Report {
        namespace: ns.to_owned(),
        config: config_name.to_owned(),
        now,
        tz: tz.clone(),
        timezone: settings.config.spec.timezone.clone(),
        policy: retention.to_string(),
        dry_run: settings.dry_run,
        series: reports,
    };
    results.report(&report)?;
    Ok(report)
}

/// `keepUntilBackedUp`: in each series, every snapshot newer than the newest one that carries a
/// `backed-up.kentledge.io/<repository>` label is held (all of them while none is copied).
fn hold_until_backed_up(series: &mut BTreeMap<String, Vec<Observed>>) {
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

/// Applies one step: one merge patch of labels, or one deletion (then a pause for the rate).
async fn apply(snaps: &Api<VolumeSnapshot>, step: &Step, pause: Duration) -> Result<(), String> {
    if step.action == Action::Delete {
        match snaps.delete(&step.name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(format!("delete failed: {e}")),
        }
        tracing::info!(snapshot = %step.name, reasons = %step.decision.explain(), "deleted");
        tokio::time::sleep(pause).await;
        return Ok(());
    }
    if step.labels.is_empty() {
        return Ok(());
    }
    let labels: serde_json::Map<String, Value> = step
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String)))
        .collect();
    snaps
        .patch(
            &step.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": labels}})),
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("label patch failed: {e}"))
}
