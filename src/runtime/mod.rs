//! The process around a command: signal handling, the cancellable poll of waits, writing
//! results to stdout, the terminal progress display and log setup.

pub mod logging;
pub mod output;
pub mod poll;
pub mod progress;
pub mod signals;
