//! The vocabulary every layer shares, as plain data: Kubernetes names and their limits, units
//! (durations, quantities, byte rates), every label and annotation key kentledge writes, and
//! the engine a repository uses, the VolumeSnapshot types with their pure readiness conditions.

pub mod labels;
pub mod names;
pub mod policy;
pub mod repository;
pub mod snapshots;
pub mod units;
