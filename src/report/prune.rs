//! What a snapshot prune did: every series' steps (action, reasons, what failed), the tally of
//! what was done, and the text rendering; the JSON document is [`Report::json`].

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;
use serde_json::json;

use crate::plan::prune::{Disposition, Tally};
use crate::report::table::{Column, Table};
use crate::report::{self, Render, Run, Verdict};

/// One series' plan, for output.
#[derive(Clone, Debug, Serialize)]
pub struct SeriesReport {
    /// The PVC.
    pub pvc: String,
    /// Its snapshots, newest name first.
    pub snapshots: Vec<StepReport>,
    /// What was done in this series.
    #[serde(skip)]
    pub tally: Tally,
}

/// One snapshot's step.
#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    /// The VolumeSnapshot.
    pub name: String,
    /// Its time, in the config's time zone.
    pub time: String,
    /// Ready to use.
    pub ready: bool,
    /// What was (or would be) done: [`action_text`].
    pub action: String,
    /// Why.
    pub reasons: String,
    /// Why the step was not done, if it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An action as the report says it.
pub fn action_text(a: &Disposition) -> String {
    match a {
        Disposition::Keep => "keep".into(),
        Disposition::Rescue => "keep (mark removed)".into(),
        Disposition::Mark(t) => format!("mark: delete after {t}"),
        Disposition::Pending(t) => format!("marked: delete after {t}"),
        Disposition::Delete => "delete".into(),
        Disposition::Hold(p) => format!(
            "hold: {}",
            p.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

/// The whole prune of a config's snapshots.
#[derive(Clone, Debug)]
pub struct Report {
    /// The namespace.
    pub namespace: String,
    /// The config.
    pub config: String,
    /// The moment that decided.
    pub now: Timestamp,
    /// The config's time zone.
    pub tz: TimeZone,
    /// Its name (`spec.timezone`).
    pub timezone: String,
    /// The retention policy, as the config says it.
    pub policy: String,
    /// Nothing was changed.
    pub dry_run: bool,
    /// Every series, by PVC.
    pub series: Vec<SeriesReport>,
}

impl Report {
    /// The tally of every series.
    pub fn total(&self) -> Tally {
        self.series.iter().fold(Tally::default(), |mut t, r| {
            t.kept += r.tally.kept;
            t.marked += r.tally.marked;
            t.pending += r.tally.pending;
            t.deleted += r.tally.deleted;
            t.rescued += r.tally.rescued;
            t.held += r.tally.held;
            t.failed += r.tally.failed;
            t
        })
    }

    /// Every step's verdict: done (or, in a dry run, planned), or failed or not done.
    pub fn outcomes(&self) -> impl Iterator<Item = Verdict> + '_ {
        self.series
            .iter()
            .flat_map(|r| &r.snapshots)
            .map(|s| match s.error {
                None => Verdict::Ok,
                Some(_) => Verdict::Failed,
            })
    }

    /// The exit code: the signal's when `interrupted`; 1 when any step failed (a prune is done
    /// or not, never partial) or the run lock was lost; else 0.
    pub fn code(&self, interrupted: Option<u8>, lock_lost: bool) -> u8 {
        let run = Run {
            lock_lost,
            partial: false,
            ..Run::new(interrupted)
        };
        report::exit_code(self.outcomes(), run)
    }
}

impl Render for Report {
    /// The tables for people.
    fn text(&self) -> String {
        let total = self.total();
        let mut text = format!(
            "{}prune of config {} in namespace {} at {} ({}): policy {}\n",
            if self.dry_run { "dry run: " } else { "" },
            self.config,
            self.namespace,
            self.now
                .to_zoned(self.tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S %Z"),
            self.timezone,
            self.policy,
        );
        for r in &self.series {
            text.push_str(&format!(
                "\nPVC {} ({} snapshots)\n",
                r.pvc,
                r.snapshots.len()
            ));
            let mut table = Table::new(
                "  ",
                vec![
                    Column::left("SNAPSHOT").width(44),
                    Column::left("TIME").width(25),
                    Column::left("READY").width(5),
                    Column::left("ACTION").width(44),
                    Column::left("REASONS"),
                ],
            );
            for s in &r.snapshots {
                let reasons = match &s.error {
                    Some(e) => format!("{} [failed: {e}]", s.reasons),
                    None => s.reasons.clone(),
                };
                let ready = if s.ready { "yes" } else { "no" };
                table.row([s.name.as_str(), &s.time, ready, &s.action, &reasons]);
            }
            text.push_str(&table.render());
        }
        text.push_str(&format!(
            "\n{}kept {}, marked {}, pending {}, deleted {}, rescued {}, held {}{}{}\n",
            if self.dry_run { "would be: " } else { "" },
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
            if self.dry_run {
                " (nothing was changed)"
            } else {
                ""
            }
        ));
        text
    }

    /// The JSON document.
    fn json(&self) -> serde_json::Value {
        let total = self.total();
        json!({
            "namespace": self.namespace, "config": self.config, "now": self.now.to_string(), "dryRun": self.dry_run,
            "series": self.series,
            "summary": {"kept": total.kept, "marked": total.marked, "pending": total.pending, "deleted": total.deleted, "rescued": total.rescued, "held": total.held, "failed": total.failed},
        })
    }
}

/// What `prune` says when `spec.snapshots.retention` is not set.
#[derive(Clone, Copy, Debug)]
pub struct NoRetention<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// The config.
    pub config: &'a str,
    /// A dry run.
    pub dry_run: bool,
}

impl Render for NoRetention<'_> {
    fn text(&self) -> String {
        "no retention is configured for snapshots (spec.snapshots.retention): nothing to prune, every snapshot is kept\n".into()
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "namespace": self.namespace, "config": self.config,
            "dryRun": self.dry_run, "retention": null, "series": [],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::prune::Protection;

    fn step(name: &str, ready: bool, action: &Disposition, reasons: &str) -> StepReport {
        StepReport {
            name: name.into(),
            time: "2026-11-22 13:00:00 CET".into(),
            ready,
            action: action_text(action),
            reasons: reasons.into(),
            error: None,
        }
    }

    fn at(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    /// Two series with every action, one deletion that failed and one not done.
    fn every_action(dry_run: bool) -> Report {
        let mut failed = step(
            "kentledge-shop-db-20261101-120000-ab12",
            true,
            &Disposition::Delete,
            "out of retention, delete-after mark expired",
        );
        failed.error = Some("delete failed: ApiError: forbidden".into());
        let db = vec![
            step(
                "kentledge-shop-db-20261122-120000-ab12",
                true,
                &Disposition::Keep,
                "hourly 2026-11-22T12, daily 2026-11-22, weekly 2026-W47, newest ready",
            ),
            step(
                "kentledge-shop-db-20261121-120000-ab12",
                true,
                &Disposition::Rescue,
                "pinned",
            ),
            step(
                "kentledge-shop-db-20261120-120000-ab12",
                true,
                &Disposition::Mark(at("2026-11-23T12:00:00Z")),
                "out of retention",
            ),
            step(
                "kentledge-shop-db-20261119-120000-ab12",
                true,
                &Disposition::Pending(at("2026-11-22T18:00:00Z")),
                "out of retention",
            ),
            step(
                "kentledge-shop-db-20261118-120000-ab12",
                false,
                &Disposition::Delete,
                "not ready (grace ended 2026-11-18 14:00:00 CET)",
            ),
            failed,
        ];
        let mut not_done = step(
            "kentledge-shop-wal-20261110-120000-ab12",
            true,
            &Disposition::Mark(at("2026-11-23T12:00:00Z")),
            "out of retention",
        );
        not_done.error = Some("not done: interrupted".into());
        let wal = vec![
            step(
                "kentledge-shop-wal-20261122-120000-ab12",
                true,
                &Disposition::Hold(vec![
                    Protection::CloneSource("restored".into()),
                    Protection::Locked("backup/20261122-120500-cd34".into()),
                ]),
                "out of retention",
            ),
            step(
                "kentledge-shop-wal-20261121-120000-ab12",
                true,
                &Disposition::Hold(vec![
                    Protection::RetainedContent("snapcontent-1234".into()),
                    Protection::NotBackedUp,
                ]),
                "out of retention",
            ),
            not_done,
        ];
        Report {
            namespace: "shop".into(),
            config: "month".into(),
            now: at("2026-11-22T12:30:00Z"),
            tz: TimeZone::get("Europe/Berlin").unwrap(),
            timezone: "Europe/Berlin".into(),
            policy: "hourly 24, daily 7, weekly 4".into(),
            dry_run,
            series: vec![
                SeriesReport {
                    pvc: "db".into(),
                    snapshots: db,
                    tally: Tally {
                        kept: 2,
                        marked: 1,
                        pending: 1,
                        deleted: 1,
                        rescued: 1,
                        held: 0,
                        failed: 1,
                    },
                },
                SeriesReport {
                    pvc: "db-wal".into(),
                    snapshots: wal,
                    tally: Tally {
                        kept: 2,
                        held: 2,
                        failed: 1,
                        ..Tally::default()
                    },
                },
            ],
        }
    }

    fn no_retention() -> NoRetention<'static> {
        NoRetention {
            namespace: "shop",
            config: "month",
            dry_run: true,
        }
    }

    #[test]
    fn text() {
        insta::assert_snapshot!("text", every_action(false).text());
        let mut dry = every_action(true);
        for s in &mut dry.series {
            s.tally.failed = 0;
            for step in &mut s.snapshots {
                step.error = None;
            }
        }
        insta::assert_snapshot!("text_dry_run", dry.text());
        insta::assert_snapshot!("text_no_retention", no_retention().text());
    }

    #[test]
    fn exit_codes() {
        use crate::error::exit;
        let failed = every_action(false);
        assert_eq!(failed.code(None, false), exit::FAILURE);
        assert_eq!(
            failed.code(Some(exit::INTERRUPTED_SIGTERM), true),
            exit::INTERRUPTED_SIGTERM
        );
        let mut done = every_action(false);
        done.series
            .iter_mut()
            .flat_map(|r| &mut r.snapshots)
            .for_each(|s| s.error = None);
        assert_eq!(done.code(None, false), exit::SUCCESS);
        assert_eq!(done.code(None, true), exit::FAILURE);
        done.series.clear();
        assert_eq!(done.code(None, false), exit::SUCCESS);
    }

    #[test]
    fn json() {
        let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap();
        insta::assert_snapshot!("json", pretty(&every_action(false).json()));
        insta::assert_snapshot!("json_no_retention", pretty(&no_retention().json()));
    }
}
