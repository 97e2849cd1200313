//! SIGTERM in a mover whose work must end cleanly when its pod is deleted (a database load
//! drops what it created, a bucket restore aborts its multipart upload): a flag the work reads,
//! instead of the process ending at once. The pod's grace period bounds how long that takes.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set once the mover is asked to stop.
static STOP: AtomicBool = AtomicBool::new(false);

/// From now on SIGTERM sets the stop flag instead of ending the process.
pub(super) fn stop_on_sigterm() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                term.recv().await;
                STOP.store(true, Ordering::SeqCst);
            }
        });
    });
}

/// Whether the mover was asked to stop (SIGTERM after [`stop_on_sigterm`]).
pub(super) fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}
