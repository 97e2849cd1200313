//! What a snapshot run did: every hook command and snapshot, the failure, the exit code, and
//! the text rendering (JSON is the serialized form).

use serde::Serialize;

use crate::error::exit;

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
    /// The exit code: interrupted, failed, partial or success.
    pub fn code(&self) -> u8 {
        if let Some(c) = self.interrupted {
            return c;
        }
        let ready = self.snapshots.iter().filter(|s| s.ready).count();
        let bad = self.snapshots.iter().filter(|s| !s.ready).count();
        match (self.failure.is_some() || bad > 0, ready > 0) {
            (false, _) => exit::SUCCESS,
            (true, true) if self.failure.is_none() => exit::PARTIAL,
            _ => exit::FAILURE,
        }
    }

    /// The summary table for people.
    pub fn render(&self) -> String {
        let mut out = format!(
            "snapshot run {} of config {} in namespace {}\n",
            self.run, self.config, self.namespace
        );
        if !self.snapshots.is_empty() {
            out.push_str(&format!(
                "  {:<24} {:<40} {:<22} {}\n",
                "PVC", "SNAPSHOT", "CUT", "STATE"
            ));
            for s in &self.snapshots {
                let state = if s.ready {
                    "ready".to_owned()
                } else if s.deleted {
                    format!("deleted ({})", s.error.as_deref().unwrap_or("not cut"))
                } else {
                    format!("not ready: {}", s.error.as_deref().unwrap_or("timed out"))
                };
                out.push_str(&format!(
                    "  {:<24} {:<40} {:<22} {state}\n",
                    s.pvc,
                    s.name,
                    s.cut.as_deref().unwrap_or("-")
                ));
            }
        }
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
