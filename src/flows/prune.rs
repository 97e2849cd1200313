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

use crate::error::{Error, exit};
use crate::kube::lease;
use crate::model::snapshots::VolumeSnapshot;
use crate::plan::lock::Lock;
use crate::plan::prune::{Candidate, Disposition, Step, plan_series, series, tally};
use crate::plan::retention::{Clock, Policy};
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

/// Lists every object of a kind with pagination (500 at a time), without their
/// `managedFields` (often most of an object's size, and never read here: a prune of 10,000
/// snapshots keeps all of them at once).
async fn list_all<K>(api: &Api<K>, lp: ListParams) -> kube::Result<Vec<K>>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug + kube::Resource,
{
    let mut out = Vec::new();
    let mut lp = lp.limit(500);
    loop {
        let page = api.list(&lp).await?;
        out.extend(page.items.into_iter().map(|mut k| {
            k.meta_mut().managed_fields = None;
            k
        }));
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
    if let Some(h) = &held {
        crate::flows::snapshot::killed::sweep(client, ns, h).await;
    }
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
    crate::flows::restore::warn_unfinished(client, settings, &claims).await;
    let sources = series::clone_sources(&claims);
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

    let grouped = series::series(&series::Inputs {
        snapshots: &all,
        sources: &sources,
        retained: retained.as_ref(),
        retained_contents: cfg.retained_contents,
        keep_until_backed_up: cfg.keep_until_backed_up,
        now,
    });
    for (snapshot, content) in &grouped.retained_deleted {
        tracing::warn!(%snapshot, %content, "deleting a snapshot whose content has deletionPolicy Retain: the content and its storage stay");
    }
    let (series, pvc_names) = (grouped.members, grouped.pvc_names);
    let policy = Policy::from(retention);
    let ctx = Clock {
        tz: tz.clone(),
        now,
        not_ready_grace: cfg.not_ready_grace,
    };
    let mut reports = Vec::new();
    let pause = Duration::from_secs_f64(1.0 / f64::from(cfg.max_deletes_per_second.max(1)));
    for (key, members) in &series {
        let steps: Vec<Step> = plan_series(members, &policy, &ctx, cfg.delete_after);
        let by_name: BTreeMap<&str, &Candidate> =
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

/// Applies one step: one merge patch of labels, or one deletion (then a pause for the rate).
async fn apply(snaps: &Api<VolumeSnapshot>, step: &Step, pause: Duration) -> Result<(), String> {
    if step.action == Disposition::Delete {
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
        .map_err(|e| format!("label patch failed: {e}"))?;
    match &step.action {
        Disposition::Mark(at) => {
            tracing::info!(snapshot = %step.name, delete_after = %at, reasons = %step.decision.explain(), "marked for deletion")
        }
        Disposition::Rescue => {
            tracing::info!(snapshot = %step.name, reasons = %step.decision.explain(), "deletion mark removed")
        }
        _ => tracing::debug!(snapshot = %step.name, "labels updated"),
    }
    Ok(())
}
