//! Plans are data: pure functions from (config, observed objects, now) to what to create,
//! delete and run, in what order, and why. Nothing here talks to the cluster.

pub mod backup;
pub mod buckets;
pub mod dumps;
pub mod hooks;
pub mod lock;
pub mod movers;
pub mod prune;
pub mod restore;
pub mod retention;
pub mod selection;
pub mod snapshot;
