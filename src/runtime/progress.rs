//! The progress display on a terminal: one indicatif spinner with the current phase, elapsed
//! time, and counts. Log lines are printed through the spinner (`suspend`), so they never
//! clobber it. Off when stderr is not a terminal or logs are JSON (CronJobs get log lines only).

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
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
    meter: Meter,
}

impl Progress {
    /// Starts a spinner with `message`, when displays are allowed.
    pub fn start(message: &str) -> Progress {
        if !ENABLED.get().copied().unwrap_or(false) {
            return Progress {
                bar: None,
                meter: Meter::default(),
            };
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
        Progress {
            bar: Some(bar),
            meter: Meter::default(),
        }
    }

    /// Shows the current phase.
    pub fn phase(&self, message: impl Into<String>) {
        if let Some(b) = &self.bar {
            b.set_message(message.into());
        }
    }

    /// Shows the display's one transfer: `what: ` and [`Meter::text`] (rate from its first
    /// call).
    pub fn transfer(&self, what: &str, bytes: u64, total: Option<u64>, items: Option<(u64, &str)>) {
        if self.bar.is_some() {
            self.phase(format!("{what}: {}", self.meter.text(bytes, total, items)));
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

/// The rate and the remaining time of one transfer (a copy, a dump, a restore), measured from
/// its first progress report (pod start and the engine's set-up are not counted).
#[derive(Debug, Default)]
pub struct Meter {
    first: Mutex<Option<(Instant, u64)>>,
}

impl Meter {
    /// The text for the transfer's counts now: see [`transfer`].
    pub fn text(&self, bytes: u64, total: Option<u64>, items: Option<(u64, &str)>) -> String {
        let now = Instant::now();
        let first = match self.first.lock() {
            Ok(mut f) => *f.get_or_insert((now, bytes)),
            Err(_) => (now, bytes),
        };
        let secs = now.duration_since(first.0).as_secs_f64();
        transfer(bytes, total, items, rate(first.1, bytes, secs))
    }
}

/// Bytes per second between two readings, `None` until half a second has passed.
pub fn rate(from: u64, to: u64, secs: f64) -> Option<f64> {
    (secs >= 0.5).then(|| to.saturating_sub(from) as f64 / secs)
}

/// What a transfer has done, for a progress line: `12.0 MiB of 70.0 MiB [====>      ] 17%,
/// 1,234 files, 3.0 MiB/s, 19s left`; the parts not known are left out.
pub fn transfer(
    bytes: u64,
    total: Option<u64>,
    items: Option<(u64, &str)>,
    rate: Option<f64>,
) -> String {
    let mut out = HumanBytes(bytes).to_string();
    let total = total.filter(|t| *t > 0);
    if let Some(t) = total {
        let done = (bytes as f64 / t as f64).clamp(0.0, 1.0);
        let width = 20;
        let full = (done * width as f64).floor() as usize;
        let head = if full < width { ">" } else { "" };
        out.push_str(&format!(
            " of {} [{}{head}{}] {:.0}%",
            HumanBytes(t),
            "=".repeat(full),
            " ".repeat(width - full - head.len()),
            (done * 100.0).floor()
        ));
    }
    if let Some((n, what)) = items {
        out.push_str(&format!(", {} {what}", thousands(n)));
    }
    if let Some(r) = rate.filter(|r| r.is_finite()) {
        out.push_str(&format!(", {}/s", HumanBytes(r as u64)));
        if let Some(t) = total
            && r >= 1.0
            && t > bytes
        {
            let left = ((t - bytes) as f64 / r).ceil() as u64;
            out.push_str(&format!(
                ", {} left",
                crate::report::status::human_age(left as i64)
            ));
        }
    }
    out
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
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

    #[test]
    fn transfer_lines() {
        assert_eq!(transfer(0, None, None, None), "0 B");
        assert_eq!(
            transfer(12 << 20, None, Some((1234, "files")), Some(3.0 * 1048576.0)),
            "12.00 MiB, 1,234 files, 3.00 MiB/s"
        );
        assert_eq!(
            transfer(35 << 20, Some(70 << 20), None, Some(1048576.0)),
            "35.00 MiB of 70.00 MiB [==========>         ] 50%, 1.00 MiB/s, 35s left"
        );
        assert_eq!(
            transfer(70 << 20, Some(70 << 20), Some((3, "objects")), None),
            "70.00 MiB of 70.00 MiB [====================] 100%, 3 objects"
        );
        // More than the total (a sparse file, a growing source): full, no time left.
        assert_eq!(
            transfer(80, Some(70), None, Some(10.0)),
            "80 B of 70 B [====================] 100%, 10 B/s"
        );
        // A total of zero is no total.
        assert_eq!(transfer(5, Some(0), None, None), "5 B");
        assert_eq!(
            transfer(0, Some(7200), None, Some(1.0)),
            "0 B of 7.03 KiB [>                   ] 0%, 1 B/s, 2h0m left"
        );
        assert_eq!(
            transfer(0, Some(185), None, Some(1.0)),
            "0 B of 185 B [>                   ] 0%, 1 B/s, 3m5s left"
        );
    }

    #[test]
    fn rates_and_counts() {
        assert_eq!(rate(0, 100, 0.4), None);
        assert_eq!(rate(100, 300, 2.0), Some(100.0));
        assert_eq!(rate(300, 100, 2.0), Some(0.0));
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        let m = Meter::default();
        assert_eq!(m.text(10, None, None), "10 B");
    }
}
