//! The shared state of one server: store, registry, tokens, list snapshots and the pod-termination hook.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::auth::Authenticator;
use crate::kubelet::PodTermination;
use crate::rbac::RbacData;
use crate::registry::{GroupResource, Registry};
use crate::store::Store;

/// Core resources read often.
pub const NAMESPACES: GroupResource = GroupResource {
    group: "",
    plural: "namespaces",
};
/// Pods.
pub const PODS: GroupResource = GroupResource {
    group: "",
    plural: "pods",
};
/// Nodes.
pub const NODES: GroupResource = GroupResource {
    group: "",
    plural: "nodes",
};
/// ServiceAccounts.
pub const SERVICE_ACCOUNTS: GroupResource = GroupResource {
    group: "",
    plural: "serviceaccounts",
};
const RBAC: &str = "rbac.authorization.k8s.io";
/// The four RBAC resources every request is authorized against.
const RBAC_KINDS: [GroupResource; 4] = [
    GroupResource {
        group: RBAC,
        plural: "clusterroles",
    },
    GroupResource {
        group: RBAC,
        plural: "roles",
    },
    GroupResource {
        group: RBAC,
        plural: "clusterrolebindings",
    },
    GroupResource {
        group: RBAC,
        plural: "rolebindings",
    },
];

/// Key of a cached list snapshot (for `continue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotKey {
    /// The list's resourceVersion.
    pub rv: u64,
    /// Resource.
    pub gr: GroupResource,
    /// Namespace of the list (None: all).
    pub namespace: Option<String>,
    /// Label selector text.
    pub labels: String,
    /// Field selector text.
    pub fields: String,
}

/// The items of one list, with their store keys.
pub type Snapshot = Arc<Vec<(String, Value)>>;

/// A bounded cache of list snapshots so that `continue` pages stay consistent.
#[derive(Debug, Default)]
pub struct ListCache {
    entries: Mutex<VecDeque<(SnapshotKey, Snapshot)>>,
}

impl ListCache {
    const CAP: usize = 64;
    /// Remember a snapshot.
    pub fn put(&self, key: SnapshotKey, items: Snapshot) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if e.iter().any(|(k, _)| *k == key) {
            return;
        }
        e.push_back((key, items));
        while e.len() > Self::CAP {
            e.pop_front();
        }
    }
    /// Find a snapshot.
    pub fn get(&self, key: &SnapshotKey) -> Option<Snapshot> {
        let e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }
}

/// Everything one server owns.
pub struct Cluster {
    /// Objects.
    pub store: Store,
    /// Resource types.
    pub registry: Registry,
    /// Tokens.
    pub auth: Authenticator,
    /// List snapshots.
    pub lists: ListCache,
    /// Token issuer / API audience.
    pub issuer: String,
    /// Who finishes pod deletion.
    pub pod_termination: Arc<dyn PodTermination>,
    /// The address clients reach (`127.0.0.1:PORT`).
    pub address: String,
    /// TLS towards kubelets: the kubelet client certificate, and the serving-certificate check.
    pub kubelet_tls: tokio_rustls::TlsConnector,
    /// Whether websocket `v5.channel.k8s.io` exec/attach requests are translated into SPDY towards the
    /// kubelet (kube-apiserver 1.30+), or relayed to it as websockets.
    pub stream_translator: bool,
    /// Set to `true` when the server stops; background tasks end then.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// Bumped when the server restarts (see [`crate::ServerHandle::restart`]): the streams
    /// connections started (exec, attach, port-forward relays) end then.
    pub restarts: tokio::sync::watch::Sender<u64>,
    /// Every request's method and URL (path and query), the bearer token it came with and when
    /// it arrived, in arrival order: what an audit log of a real API server records (the token
    /// stands for the user).
    pub requests: std::sync::Mutex<Vec<(String, String, std::time::Instant)>>,
    /// The RBAC objects as last read, and the resourceVersion they are current at: every
    /// request is authorized against them, and they change rarely (the real authorizer reads
    /// them from an informer's cache too).
    pub rbac_cache: Mutex<Option<(u64, Arc<RbacData>)>>,
}

impl Cluster {
    /// Spawn a task of a connection's (a stream relay): it ends when the server stops or
    /// restarts, as the process that served it would.
    pub fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut rx = self.shutdown.subscribe();
        let mut restarts = self.restarts.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                () = fut => {}
                _ = rx.wait_for(|stop| *stop) => {}
                _ = restarts.changed() => {}
            }
        });
    }

    /// The RBAC objects now (read again only once one of them changed).
    pub fn rbac(&self) -> Arc<RbacData> {
        // Read before the objects: a change between the two makes the next call read again.
        let at = self.store.written_at(&RBAC_KINDS);
        let mut cache = self.rbac_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((rv, data)) = cache.as_ref()
            && *rv == at
        {
            return data.clone();
        }
        let objs = |gr: GroupResource| {
            self.store
                .list(gr, None)
                .1
                .into_iter()
                .map(|(_, v)| v)
                .collect()
        };
        let [cluster_roles, roles, cluster_role_bindings, role_bindings] = RBAC_KINDS.map(objs);
        let data = Arc::new(RbacData {
            cluster_roles,
            roles,
            cluster_role_bindings,
            role_bindings,
        });
        *cache = Some((at, data.clone()));
        data
    }

    /// The uid of a live ServiceAccount.
    pub fn service_account_uid(&self, namespace: &str, name: &str) -> Option<String> {
        self.store
            .get(SERVICE_ACCOUNTS, namespace, name)
            .and_then(|sa| {
                sa.pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
    }
}
