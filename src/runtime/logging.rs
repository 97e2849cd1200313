//! Log setup: human text on a terminal, JSON lines otherwise (CronJobs), on stderr, with the
//! level from `-v`/`-q` or `KENTLEDGE_LOG` (an env-filter directive such as `kentledge=debug`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Text on a terminal, JSON lines otherwise.
    Auto,
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The default level for a `-v`/`-q` balance.
pub fn level(verbose: u8, quiet: u8) -> &'static str {
    match (verbose, quiet) {
        (0, 0) => "info",
        (1, _) => "debug",
        (v, _) if v >= 2 => "trace",
        (_, 1) => "warn",
        _ => "error",
    }
}

/// Whether to write JSON lines for this format on this stderr.
pub fn use_json(format: LogFormat, stderr_is_terminal: bool) -> bool {
    match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !stderr_is_terminal,
    }
}

/// Installs the global subscriber; returns whether log lines are JSON.
pub fn init(format: LogFormat, verbose: u8, quiet: u8) -> bool {
    let filter = EnvFilter::try_from_env("KENTLEDGE_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("kentledge={}", level(verbose, quiet))));
    let terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::runtime::progress::Stderr);
    let json = use_json(format, terminal);
    crate::runtime::progress::enable(terminal && !json);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.with_ansi(terminal).with_target(false).try_init()
    };
    // Already initialised (e.g. in tests): keep the existing subscriber.
    let _ = result;
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(level(0, 0), "info");
        assert_eq!(level(1, 0), "debug");
        assert_eq!(level(3, 0), "trace");
        assert_eq!(level(0, 1), "warn");
        assert_eq!(level(0, 2), "error");
    }

    #[test]
    fn auto_format_follows_the_terminal() {
        assert!(!use_json(LogFormat::Auto, true));
        assert!(use_json(LogFormat::Auto, false));
        assert!(use_json(LogFormat::Json, true));
        assert!(!use_json(LogFormat::Text, false));
    }
}
