//! Execution that always cleans up: carrying plans out through the kube adapters and mover
//! pods, with post-hooks, clone PVCs and mover pods removed on success, error, timeout and
//! interruption.

pub mod backup;
pub mod list;
pub mod movers;
pub mod prune;
pub mod repositories;
pub mod restore;
pub mod snapshot;
pub mod status;
