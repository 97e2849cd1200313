//! The process around a command: signal handling, writing results to stdout, the terminal
//! progress display and log setup.

pub mod logging;
pub mod output;
pub mod progress;
pub mod signals;
