//! End-to-end tests of the real `kentledge` binary, run as a subprocess. One test binary with
//! modules, to keep link time down.

mod backup;
mod backup_failures;
mod bench;
mod buckets;
mod cli;
mod cluster;
mod databases;
mod engines;
mod image;
mod inplace;
mod list;
mod manifests;
mod mariadb;
mod outages;
mod postgres;
mod progress;
mod prune;
mod relay;
mod repo_prune;
mod restore;
mod retention_borg;
mod s3;
mod scale;
mod servers;
mod signals;
mod snapshot;
mod status;
mod support;
mod tree;
mod unseen;
