//! Node agents of kentledge's local test cluster. Each is an ordinary Kubernetes API client
//! (kube-rs) that watches and acts only through the API, like the real component it stands in
//! for, so it runs unchanged against a real kube-apiserver given a kubeconfig:
//! - [`storage`]: a CSI hostpath-style driver, provisioner and snapshot controller (every PV is
//!   a directory; snapshots are point-in-time copies);
//! - [`node`]: a scheduler and a kubelet that run pod containers as real local processes;
//! - [`workloads`]: Deployment/ReplicaSet and StatefulSet controllers.

pub mod local;
pub mod node;
pub mod storage;
pub mod testing;
pub mod workloads;
