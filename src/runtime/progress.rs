//! The progress display on a terminal: one indicatif spinner with the current phase, elapsed
//! time, and counts. Log lines are printed through the spinner (`suspend`), so they never
//! clobber it. Off when stderr is not a terminal or logs are JSON (CronJobs get log lines only).

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;

/// The process's one display (a CLI run shows one at a time).
static ACTIVE: OnceLock<Mutex<Option<ProgressBar>>> = OnceLock::new();

fn slot() -> &'static Mutex<Option<ProgressBar>> {
    ACTIVE.get_or_init(|| Mutex::new(None))
}

/// Whether a display is allowed: set once by logging set-up.
static ENABLED: OnceLock<bool> = OnceLock::new();

/// Allows or forbids displays (stderr is a terminal and logs are text).
pub fn enable(on: bool) {
    let _ = ENABLED.set(on);
}

/// A running display; finishing or dropping it clears the line.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Starts a spinner with `message`, when displays are allowed.
    pub fn start(message: &str) -> Progress {
        if !ENABLED.get().copied().unwrap_or(false) {
            return Progress { bar: None };
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(100));
        if let Ok(mut s) = slot().lock() {
            *s = Some(bar.clone());
        }
        Progress { bar: Some(bar) }
    }

    /// Shows the current phase.
    pub fn phase(&self, message: impl Into<String>) {
        if let Some(b) = &self.bar {
            b.set_message(message.into());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
            if let Ok(mut s) = slot().lock() {
                *s = None;
            }
        }
    }
}

/// Stderr for log lines, printed around the active display.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stderr;

/// One log write.
pub struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.0);
        let bar = slot().lock().ok().and_then(|s| s.clone());
        let write = || {
            let _ = std::io::stderr().lock().write_all(&bytes);
        };
        match bar {
            Some(b) => b.suspend(write),
            None => write(),
        }
    }
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Line;
    fn make_writer(&'a self) -> Line {
        Line(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_display_unless_enabled() {
        // ENABLED is never set in unit tests: a display is a no-op.
        let p = Progress::start("working");
        assert!(p.bar.is_none());
        p.phase("still working");
    }
}
