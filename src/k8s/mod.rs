//! Thin adapters over kube-rs for what kentledge touches: the client, VolumeSnapshots, hook
//! execution by pod exec, the run lock's Lease. Decisions live in the pure modules; these only
//! carry them out.

pub mod client;
pub mod events;
pub mod exec;
pub mod lease;
pub mod mover;
pub mod observe;
pub mod snapshots;
