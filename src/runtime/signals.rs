//! SIGINT/SIGTERM → a cancellation token that every phase of a run watches, and the exit code
//! the interruption maps to. Cleanup (post-hooks, deleting what is half-done, releasing the
//! lock) runs after cancellation; the command still exits non-zero.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio_util::sync::CancellationToken;

use crate::error::exit;

/// The interruption state of a run.
#[derive(Clone, Debug, Default)]
pub struct Interrupt {
    token: CancellationToken,
    code: Arc<AtomicU8>,
}

impl Interrupt {
    /// A token nothing triggers (tests) until [`Interrupt::trigger`].
    pub fn new() -> Self {
        Interrupt::default()
    }

    /// Installs handlers for SIGINT and SIGTERM.
    pub fn from_signals() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let me = Interrupt::new();
        for (kind, code) in [
            (SignalKind::interrupt(), exit::INTERRUPTED_SIGINT),
            (SignalKind::terminate(), exit::INTERRUPTED_SIGTERM),
        ] {
            let mut s = signal(kind)?;
            let m = me.clone();
            tokio::spawn(async move {
                if s.recv().await.is_some() {
                    tracing::warn!(
                        code,
                        "interrupted: running cleanup and post-hooks, then exiting"
                    );
                    m.trigger(code);
                }
            });
        }
        Ok(me)
    }

    /// Marks the run interrupted with this exit code.
    pub fn trigger(&self, code: u8) {
        let _ = self
            .code
            .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
        self.token.cancel();
    }

    /// The token phases select on.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Whether the run was interrupted.
    pub fn is_set(&self) -> bool {
        self.token.is_cancelled()
    }

    /// The exit code of the interruption (130 for SIGINT, 143 for SIGTERM), if any.
    pub fn code(&self) -> Option<u8> {
        match self.code.load(Ordering::SeqCst) {
            0 => None,
            c => Some(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_signal_decides_the_code() {
        let i = Interrupt::new();
        assert_eq!(i.code(), None);
        i.trigger(exit::INTERRUPTED_SIGTERM);
        i.trigger(exit::INTERRUPTED_SIGINT);
        assert!(i.is_set());
        assert_eq!(i.code(), Some(143));
    }
}
