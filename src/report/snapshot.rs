//! What a snapshot run did: every hook command and snapshot, the failure, the exit code, and
//! the text rendering (JSON is the serialized form).

use serde::Serialize;

use crate::report::table::{Column, Table};
use crate::report::{self, Render, Run, Verdict};

/// One hook command's result.
#[derive(Clone, Debug, Serialize)]
pub struct HookRecord {
    /// The hook.
    pub hook: String,
    /// `pre` or `post`.
    pub phase: &'static str,
    /// The pod.
    pub pod: String,
    /// The container.
    pub container: String,
    /// How it ended.
    pub result: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// How long it took, in seconds.
    pub seconds: f64,
}

/// One snapshot's result.
#[derive(Clone, Debug, Serialize)]
pub struct SnapshotRecord {
    /// The PVC.
    pub pvc: String,
    /// The VolumeSnapshot.
    pub name: String,
    /// The cut.
    pub cut: Option<String>,
    /// Ready to use.
    pub ready: bool,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// Deleted because it was not cut while the application was frozen.
    pub deleted: bool,
}

/// The whole run's result.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// The run id.
    pub run: String,
    /// The namespace.
    pub namespace: String,
    /// The config.
    pub config: String,
    /// Hooks, in the order they ran.
    pub hooks: Vec<HookRecord>,
    /// Snapshots.
    pub snapshots: Vec<SnapshotRecord>,
    /// End of the last pre-hook to start of the first post-hook, in seconds.
    pub freeze_window_seconds: Option<f64>,
    /// Why the run failed, if it did.
    pub failure: Option<String>,
    /// The signal exit code, if interrupted.
    pub interrupted: Option<u8>,
}

impl Report {
    /// Every snapshot's verdict: ready or failed.
    pub fn outcomes(&self) -> impl Iterator<Item = Verdict> + '_ {
        self.snapshots.iter().map(|s| {
            if s.ready {
                Verdict::Ok
            } else {
                Verdict::Failed
            }
        })
    }

    /// The exit code: interrupted, failed (the run, or the run lock lost), partial or success.
    pub fn code(&self, lock_lost: bool) -> u8 {
        let run = Run {
            failed: self.failure.is_some(),
            lock_lost,
            ..Run::new(self.interrupted)
        };
        report::exit_code(self.outcomes(), run)
    }
}

impl Render for Report {
    fn targets(&self) -> Vec<crate::report::metrics::Target> {
        self.snapshots
            .iter()
            .map(|s| crate::report::metrics::Target {
                kind: "snapshot",
                series: s.pvc.clone(),
                repository: None,
                ok: s.ready,
                bytes: None,
                seconds: None,
            })
            .collect()
    }

    /// The serialized form.
    fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The summary table for people.
    fn text(&self) -> String {
        let mut out = format!(
            "snapshot run {} of config {} in namespace {}\n",
            self.run, self.config, self.namespace
        );
        let mut table = Table::new(
            "  ",
            vec![
                Column::left("PVC").width(24),
                Column::left("SNAPSHOT").width(40),
                Column::left("CUT").width(22),
                Column::left("STATE"),
            ],
        );
        for s in &self.snapshots {
            let state = if s.ready {
                "ready".to_owned()
            } else if s.deleted {
                format!("deleted ({})", s.error.as_deref().unwrap_or("not cut"))
            } else {
                format!("not ready: {}", s.error.as_deref().unwrap_or("timed out"))
            };
            let cut = s.cut.as_deref().unwrap_or("-");
            table.row([s.pvc.as_str(), &s.name, cut, &state]);
        }
        out.push_str(&table.render());
        for h in &self.hooks {
            out.push_str(&format!(
                "  hook {} {} in {}/{}: {} ({:.1}s)\n",
                h.hook, h.phase, h.pod, h.container, h.result, h.seconds
            ));
        }
        if let Some(f) = self.freeze_window_seconds {
            out.push_str(&format!("  freeze window: {f:.2}s\n"));
        }
        if let Some(c) = self.interrupted {
            out.push_str(&format!(
                "  interrupted (exit {c}); post-hooks and cleanup ran\n"
            ));
        }
        if let Some(f) = &self.failure {
            out.push_str(&format!("  failed: {f}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit;

    fn hook(hook: &str, phase: &'static str, result: &str, ok: bool) -> HookRecord {
        HookRecord {
            hook: hook.into(),
            phase,
            pod: "db-0".into(),
            container: "mariadb".into(),
            result: result.into(),
            ok,
            seconds: 0.42,
        }
    }

    fn snapshot(pvc: &str, ready: bool, error: Option<&str>, deleted: bool) -> SnapshotRecord {
        SnapshotRecord {
            pvc: pvc.into(),
            name: format!("kentledge-shop-{pvc}-20261122-120000-ab12"),
            cut: ready.then(|| "2026-11-22T12:00:01Z".into()),
            ready,
            error: error.map(String::from),
            deleted,
        }
    }

    /// A run with hooks (one failed post-hook), ready snapshots, one deleted because it was not
    /// cut in time, one not ready with and one without an error.
    fn with_hooks() -> Report {
        Report {
            run: "20261122-120000-ab12".into(),
            namespace: "shop".into(),
            config: "shop".into(),
            hooks: vec![
                hook("read-lock", "pre", "exit code 0", true),
                hook("read-lock", "post", "exit code 0", true),
                hook("flush", "post", "exit code 7", false),
            ],
            snapshots: vec![
                snapshot("mysql-db-0", true, None, false),
                snapshot("logs", false, Some("not cut before the post-hooks"), true),
                snapshot("media", false, Some("the disk is on fire"), false),
                snapshot("cache", false, None, false),
            ],
            freeze_window_seconds: Some(1.234),
            failure: None,
            interrupted: None,
        }
    }

    /// A run that failed in a pre-hook, and was interrupted.
    fn failed() -> Report {
        Report {
            hooks: vec![hook("second", "pre", "exit code 7", false)],
            snapshots: Vec::new(),
            freeze_window_seconds: None,
            failure: Some("pre-hook second in app failed: exit code 7".into()),
            interrupted: Some(exit::INTERRUPTED_SIGTERM),
            ..with_hooks()
        }
    }

    #[test]
    fn text() {
        insta::assert_snapshot!("text", with_hooks().text());
        insta::assert_snapshot!("text_failed", failed().text());
    }

    #[test]
    fn json() {
        // The document as printed: the value's fields, in serde_json's map order.
        let pretty = |r: Report| serde_json::to_string_pretty(&r.json()).unwrap();
        insta::assert_snapshot!("json", pretty(with_hooks()));
        insta::assert_snapshot!("json_failed", pretty(failed()));
    }

    #[test]
    fn exit_codes() {
        let of = |snapshots: Vec<SnapshotRecord>, failure: Option<&str>| {
            Report {
                snapshots,
                failure: failure.map(String::from),
                ..Report::default()
            }
            .code(false)
        };
        let ready = || snapshot("a", true, None, false);
        let bad = || snapshot("b", false, Some("timed out"), false);
        assert_eq!(of(Vec::new(), None), exit::SUCCESS);
        assert_eq!(of(vec![ready(), ready()], None), exit::SUCCESS);
        assert_eq!(of(vec![ready(), bad()], None), exit::PARTIAL);
        assert_eq!(of(vec![bad()], None), exit::FAILURE);
        // A failure of the run (a hook, the lock) is never partial.
        assert_eq!(of(vec![ready()], Some("post-hook failed")), exit::FAILURE);
        assert_eq!(of(Vec::new(), Some("pre-hook failed")), exit::FAILURE);
        assert_eq!(failed().code(true), exit::INTERRUPTED_SIGTERM);
        // A run that lost its lock is not a success.
        let lost = Report {
            snapshots: vec![ready()],
            ..Report::default()
        };
        assert_eq!(lost.code(true), exit::FAILURE);
    }
}
