//! Faults a test can switch on in a running kubelet, to see what its clients do when a node
//! misbehaves: log requests refused (as when the kubelet cannot be reached for logs) or log
//! streams cut short after their first line.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// What the kubelet does with container log requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFault {
    /// Serve logs normally.
    None,
    /// Answer every log request with 500 (the API server relays it as an error Status).
    Refuse,
    /// Serve only the first line of each log, then end the stream as if it were complete.
    Cut,
}

/// A switch shared by the kubelet and the test that flips it (cloning shares it).
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<AtomicU8>);

impl Faults {
    /// Sets what log requests get from now on.
    pub fn set_logs(&self, f: LogFault) {
        let v = match f {
            LogFault::None => 0,
            LogFault::Refuse => 1,
            LogFault::Cut => 2,
        };
        self.0.store(v, Ordering::SeqCst);
    }

    /// What log requests get now.
    pub fn logs(&self) -> LogFault {
        match self.0.load(Ordering::SeqCst) {
            1 => LogFault::Refuse,
            2 => LogFault::Cut,
            _ => LogFault::None,
        }
    }
}
