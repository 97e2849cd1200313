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
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{Error, exit};
use crate::kube::lease;
use crate::model::snapshots::VolumeSnapshot;
use crate::plan::lock::Lock;
use crate::plan::prune::{Action, Observed, Step, Tally, plan_series, series, tally};
use crate::plan::retention::{Context, Policy};
use crate::runtime::output;
use crate::runtime::signals::Interrupt;
use crate::settings::Settings;
fn content_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshotContent"),
        "volumesnapshotcontents",
    )
}

/// One series' plan, for output.
#[derive(Debug, Serialize)]
struct SeriesReport {
    pvc: String,
    snapshots: Vec<StepReport>,
    #[serde(skip)]
    tally: Tally,
}

#[derive(Debug, Serialize)]
struct StepReport {
    name: String,
    time: String,
    ready: bool,
    action: String,
    reasons: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn action_text(a: &Action) -> String {
    match a {
        Action::Keep => "keep".into(),
        Action::Rescue => "keep (mark removed)".into(),
        Action::Mark(t) => format!("mark: delete after {t}"),
        Action::Pending(t) => format!("marked: delete after {t}"),
        Action::Delete => "delete".into(),
        Action::Hold(p) => format!(
            "hold: {}",
            p.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
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
        results.emit(
            || "no retention is configured for snapshots (spec.snapshots.retention): nothing to prune, every snapshot is kept\n".into(),
            || json!({
                "namespace": settings.namespace, "config": settings.config.metadata.name,
                "dryRun": settings.dry_run, "retention": null, "series": [],
            }),
        )?;
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
    let lost = match held {
        Some(h) => h.release().await,
        None => None,
    };
    result.map(|code| lease::exit_code(code, lost.as_deref()))
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
) -> Result<u8, Error> {
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
    let ctx = Context {
        tz: tz.clone(),
        now,
        not_ready_grace: cfg.not_ready_grace,
    };
    let mut reports = Vec::new();
    let mut failures = 0usize;
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
                        failures += 1;
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
    let total = tally(std::iter::empty());
    let total = reports.iter().fold(total, |mut t, r| {
        t.kept += r.tally.kept;
        t.marked += r.tally.marked;
        t.pending += r.tally.pending;
        t.deleted += r.tally.deleted;
        t.rescued += r.tally.rescued;
        t.held += r.tally.held;
        t.failed += r.tally.failed;
        t
    });
    results.emit(
        || {
        let mut text = format!(
            "{}prune of config {config_name} in namespace {ns} at {} ({}): policy {retention}\n",
            if settings.dry_run { "dry run: " } else { "" },
            now.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M:%S %Z"),
            settings.config.spec.timezone
        );
        for r in &reports {
            text.push_str(&format!(
                "\nPVC {} ({} snapshots)\n",
                r.pvc,
                r.snapshots.len()
            ));
            text.push_str(&format!(
                "  {:<44} {:<25} {:<5} {:<44} {}\n",
                "SNAPSHOT", "TIME", "READY", "ACTION", "REASONS"
            ));
            for s in &r.snapshots {
                text.push_str(&format!(
                    "  {:<44} {:<25} {:<5} {:<44} {}{}\n",
                    s.name,
                    s.time,
                    if s.ready { "yes" } else { "no" },
                    s.action,
                    s.reasons,
                    s.error
                        .as_ref()
                        .map(|e| format!(" [failed: {e}]"))
                        .unwrap_or_default()
                ));
            }
        }
        text.push_str(&format!(
            "\n{}kept {}, marked {}, pending {}, deleted {}, rescued {}, held {}{}{}\n",
            if settings.dry_run { "would be: " } else { "" },
            total.kept,
            total.marked,
            total.pending,
            total.deleted,
            total.rescued,
            total.held,
            if total.failed > 0 {
                format!(", NOT DONE {} (see [failed: …] above)", total.failed)
            } else {
                String::new()
            },
            if settings.dry_run {
                " (nothing was changed)"
            } else {
                ""
            }
        ));
            text
        },
        || json!({
            "namespace": ns, "config": config_name, "now": now.to_string(), "dryRun": settings.dry_run,
            "series": reports,
            "summary": {"kept": total.kept, "marked": total.marked, "pending": total.pending, "deleted": total.deleted, "rescued": total.rescued, "held": total.held, "failed": total.failed},
        }),
    )?;
    if let Some(code) = interrupt.code() {
        return Ok(code);
    }
    Ok(if failures > 0 {
        exit::FAILURE
    } else {
        exit::SUCCESS
    })
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
