//! A local Kubernetes test cluster (see README.md): an in-memory API server with the real API's semantics
//! (paths, verbs, status codes, `metav1.Status` bodies, watch, patch, finalizers, garbage collection, RBAC),
//! which proxies pod logs and exec to node kubelets.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kentledge_testcluster::StartError> {
//! use kentledge_testcluster::{ApiServer, ServerOptions};
//! let server = ApiServer::start(ServerOptions::default().kubeconfig("target/cluster/kubeconfig")).await?;
//! println!("{} {}", server.url(), server.admin_token());
//! # Ok(()) }
//! ```

pub mod admission;
pub mod apply;
pub mod auth;
pub mod bootstrap;
pub mod clock;
pub mod cluster;
pub mod controllers;
pub mod discovery;
pub mod http;
pub mod impersonation;
pub mod kinds;
pub mod kubeconfig;
pub mod kubelet;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod proxy;
pub mod rbac;
pub mod registry;
pub mod rest;
pub mod router;
pub mod selector;
pub mod server;
pub mod spdy;
pub mod status;
pub mod store;
pub mod tls;
pub mod translator;
pub mod validation;

pub use auth::StaticUser;
pub use kubelet::{Immediate, NodeKubelet, PodTermination};
pub use server::{ApiServer, ServerHandle, ServerOptions, StartError};
