//! What the pod workers tell the kubelet HTTP server about running containers: per pod and container,
//! the log file of each instance, the running process (for exec: pid, environment, working directory,
//! user) and its output tap and stdin (for attach), or why it is waiting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::process::ChildStdin;

use super::container::Creds;
use super::logs::{LogFile, Tap};

/// `namespace/name` of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// A running container's process, as exec and attach need it.
#[derive(Clone)]
pub struct Running {
    /// The main process (its mount namespace is the container's).
    pub pid: u32,
    /// The container's environment.
    pub env: Vec<(String, String)>,
    /// The container's working directory.
    pub working_dir: Option<std::path::PathBuf>,
    /// The container's user.
    pub creds: Option<Creds>,
    /// Live output, for attach.
    pub tap: Tap,
    /// The container's stdin when its spec has `stdin: true`.
    pub stdin: Option<Arc<tokio::sync::Mutex<Option<ChildStdin>>>>,
    /// Close stdin after the first attach detaches.
    pub stdin_once: bool,
}

/// One container of a pod.
#[derive(Default, Clone)]
pub struct ContainerRecord {
    /// Log files by instance (restart count).
    pub logs: Vec<Arc<LogFile>>,
    /// The process while it runs.
    pub running: Option<Running>,
    /// The waiting reason while it waits.
    pub waiting: Option<String>,
}

/// One pod.
#[derive(Default, Clone)]
pub struct PodRecord {
    /// The pod's uid.
    pub uid: String,
    /// Containers (init and main) by name.
    pub containers: HashMap<String, ContainerRecord>,
}

/// The registry; cheap to clone.
#[derive(Default, Clone)]
pub struct Runtime(Arc<Mutex<HashMap<PodKey, PodRecord>>>);

impl Runtime {
    /// Change (or create) a pod's record.
    pub fn update<R>(
        &self,
        key: &PodKey,
        uid: &str,
        f: impl FnOnce(&mut PodRecord) -> R,
    ) -> Option<R> {
        let mut map = self.0.lock().ok()?;
        let rec = map.entry(key.clone()).or_default();
        if rec.uid != uid {
            *rec = PodRecord {
                uid: uid.to_string(),
                ..PodRecord::default()
            };
        }
        Some(f(rec))
    }
    /// Change a container's record.
    pub fn container<R>(
        &self,
        key: &PodKey,
        uid: &str,
        name: &str,
        f: impl FnOnce(&mut ContainerRecord) -> R,
    ) -> Option<R> {
        self.update(key, uid, |p| {
            f(p.containers.entry(name.to_string()).or_default())
        })
    }
    /// Forget a pod (only the record of this uid).
    pub fn remove(&self, key: &PodKey, uid: &str) {
        if let Ok(mut map) = self.0.lock()
            && map.get(key).is_some_and(|r| r.uid == uid)
        {
            map.remove(key);
        }
    }
    /// A copy of a pod's record.
    pub fn get(&self, key: &PodKey) -> Option<PodRecord> {
        self.0.lock().ok()?.get(key).cloned()
    }
}
