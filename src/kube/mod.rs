//! Thin adapters over kube-rs for what kentledge touches: the client, paginated observation,
//! hook execution by pod exec, the run lock's Lease, Events. Decisions live in the plans; these
//! only carry them out.

pub mod client;
pub mod events;
pub mod exec;
pub mod lease;
pub mod marks;
pub mod observe;
pub mod pods;
pub mod retry;
pub mod workloads;
