//! The in-server controllers of a real control plane: the garbage collector (ownerReferences with background,
//! foreground and orphan propagation), the namespace lifecycle (Terminating → contents deleted → removed),
//! the ServiceAccount controller's `default` account, the root-CA publisher's `kube-root-ca.crt` ConfigMap,
//! and the pvc-/pv-protection controllers (the finalizers go once nothing uses the claim or volume).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::admission::{PV_PROTECTION, PVC_PROTECTION, ROOT_CA_CONFIG_MAP};
use crate::cluster::{Cluster, NAMESPACES, PODS, SERVICE_ACCOUNTS};
use crate::registry::{GroupResource, ResourceType};
use crate::rest::delete::{self, DeleteOpts};
use crate::rest::write::{self, WriteOpts};
use crate::rest::{meta_mut, meta_str};
use crate::store::{Event, EventType, Mutation};

/// Run until the task is aborted: a pass after each burst of writes that any of these
/// controllers acts on (see [`matters`]), and one every second whatever was written.
pub async fn run(cl: Arc<Cluster>) {
    let mut seen = cl.store.current_rv();
    let mut terminating = reconcile(&cl);
    loop {
        let tick = tokio::select! {
            () = cl.store.changed() => false,
            () = tokio::time::sleep(Duration::from_secs(1)) => true,
        };
        // Batch bursts of writes.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = cl.store.current_rv();
        if tick || terminating || cl.store.changed_since(seen, matters) {
            terminating = reconcile(&cl);
        }
        seen = now;
    }
}

/// Whether a change is one a pass acts on: one to a kind read whole, a removal (an owner or a
/// namespace's last object gone), an object being deleted (finalizers to run) or one with
/// owners (a dependent whose owner may be gone). Anything else (a snapshot's status, a Lease
/// renewed) leaves every decision of a pass as it was.
fn matters(ev: &Event) -> bool {
    READ_WHOLE.contains(&ev.gr)
        || ev.kind == EventType::Deleted
        || deleting(&ev.object)
        || !owner_refs(&ev.object).is_empty()
}

fn uid(v: &Value) -> &str {
    meta_str(v, "uid")
}

fn deleting(v: &Value) -> bool {
    v.pointer("/metadata/deletionTimestamp").is_some()
}

fn finalizers(v: &Value) -> Vec<&str> {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn owner_refs(v: &Value) -> Vec<&Value> {
    v.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect()
}

/// One pass over everything; whether a namespace is terminating (its contents go on the next
/// passes, whatever is written).
pub fn reconcile(cl: &Cluster) -> bool {
    let keys: Vec<GroupResource> = cl.registry.stored().map(ResourceType::key).collect();
    // Copied: what some controller acts on (an object being deleted or with owners, the kinds the
    // namespace and storage-protection controllers read, everything in a terminating namespace).
    // Every other object only counts by its uid (a live owner) and namespace (one still populated).
    let terminating: HashSet<String> = cl
        .store
        .all_objects(&[NAMESPACES])
        .iter()
        .filter(|(_, ns)| deleting(ns))
        .map(|(_, ns)| meta_str(ns, "name").to_owned())
        .collect();
    let view = cl.store.view(&keys, |gr, v| {
        READ_WHOLE.contains(&gr)
            || deleting(v)
            || !owner_refs(v).is_empty()
            || terminating.contains(crate::store::namespace_of(v))
    });
    let all = view.objects;
    let uids = view.uids;
    let mut dependents: HashMap<&str, Vec<&(GroupResource, Value)>> = HashMap::new();
    for item in &all {
        for r in owner_refs(&item.1) {
            if let Some(u) = r.get("uid").and_then(Value::as_str) {
                dependents.entry(u).or_default().push(item);
            }
        }
    }
    for (gr, obj) in &all {
        let Some(rt) = cl.registry.by_key(*gr) else {
            continue;
        };
        let fins = finalizers(obj);
        if deleting(obj) && fins.contains(&"orphan") {
            for (dgr, dep) in dependents.get(uid(obj)).into_iter().flatten() {
                strip_owner(cl, *dgr, dep, uid(obj));
            }
            remove_finalizer(cl, rt, obj, "orphan");
        }
        if deleting(obj) && fins.contains(&"foregroundDeletion") {
            let deps = dependents.get(uid(obj)).cloned().unwrap_or_default();
            let mut blocking = false;
            for (dgr, dep) in &deps {
                let blocks = owner_refs(dep).iter().any(|r| {
                    r.get("uid").and_then(Value::as_str) == Some(uid(obj))
                        && r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true)
                });
                blocking |= blocks;
                if !deleting(dep) {
                    delete_quietly(cl, *dgr, dep);
                }
            }
            if !blocking {
                remove_finalizer(cl, rt, obj, "foregroundDeletion");
            }
        }
        // Dangling owners: collect the dependent when every owner is gone; drop the dangling refs otherwise.
        let refs = owner_refs(obj);
        if !refs.is_empty() && !deleting(obj) {
            let missing: Vec<&str> = refs
                .iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .filter(|u| !uids.contains(*u))
                .collect();
            if missing.len() == refs.len() {
                delete_quietly(cl, *gr, obj);
            } else {
                for m in missing {
                    strip_owner(cl, *gr, obj, m);
                }
            }
        }
    }
    namespaces(cl, &all, &view.namespaces);
    storage_protection(cl, &all);
    !terminating.is_empty()
}

const CONFIG_MAPS: GroupResource = GroupResource {
    group: "",
    plural: "configmaps",
};
const CLAIMS: GroupResource = GroupResource {
    group: "",
    plural: "persistentvolumeclaims",
};
const VOLUMES: GroupResource = GroupResource {
    group: "",
    plural: "persistentvolumes",
};
/// The kinds every pass reads whole: the namespace lifecycle's and the storage-protection
/// controllers'.
const READ_WHOLE: [GroupResource; 6] = [
    NAMESPACES,
    SERVICE_ACCOUNTS,
    CONFIG_MAPS,
    PODS,
    CLAIMS,
    VOLUMES,
];
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// Whether a (scheduled) pod keeps a claim in use, as the pvc-protection controller decides: any
/// scheduled pod that names the claim, whatever its phase, until the pod object is gone; an ephemeral
/// volume's claim until the pod is shut down (deleted with grace 0).
fn pod_uses_claim(pod: &Value, claim: &Value) -> bool {
    if pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        return false;
    }
    let claim_name = meta_str(claim, "name");
    let pod_name = meta_str(pod, "name");
    let shut_down = deleting(pod)
        && pod
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            == Some(0);
    let owned_by_pod = owner_refs(claim).iter().any(|r| {
        r.get("uid").and_then(Value::as_str) == Some(uid(pod))
            && r.get("controller").and_then(Value::as_bool) == Some(true)
    });
    pod.pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|v| {
            let named = v
                .pointer("/persistentVolumeClaim/claimName")
                .and_then(Value::as_str);
            let ephemeral = v.get("ephemeral").is_some()
                && format!(
                    "{pod_name}-{}",
                    v.get("name").and_then(Value::as_str).unwrap_or("")
                ) == claim_name;
            named == Some(claim_name) || (!shut_down && ephemeral && owned_by_pod)
        })
}

/// The pvc-protection and pv-protection controllers: re-add a missing finalizer to live objects, and remove
/// it from deleted ones once no scheduled pod uses the claim / the volume is no longer Bound.
fn storage_protection(cl: &Cluster, all: &[(GroupResource, Value)]) {
    let (Some(claims), Some(volumes)) = (cl.registry.by_key(CLAIMS), cl.registry.by_key(VOLUMES))
    else {
        return;
    };
    let pods: Vec<&Value> = all
        .iter()
        .filter(|(gr, _)| *gr == PODS)
        .map(|(_, v)| v)
        .collect();
    for (gr, obj) in all {
        let (rt, fin) = match *gr {
            CLAIMS => (claims, PVC_PROTECTION),
            VOLUMES => (volumes, PV_PROTECTION),
            _ => continue,
        };
        let has = finalizers(obj).contains(&fin);
        if !deleting(obj) {
            if !has {
                add_finalizer(cl, rt, obj, fin);
            }
            continue;
        }
        if !has {
            continue;
        }
        let in_use = if *gr == CLAIMS {
            let ns = crate::store::namespace_of(obj);
            pods.iter()
                .any(|p| crate::store::namespace_of(p) == ns && pod_uses_claim(p, obj))
        } else {
            obj.pointer("/status/phase").and_then(Value::as_str) == Some("Bound")
        };
        if !in_use {
            remove_finalizer(cl, rt, obj, fin);
        }
    }
}

fn add_finalizer(cl: &Cluster, rt: &ResourceType, obj: &Value, fin: &str) {
    mutate_stored(cl, rt.key(), obj, |cur| {
        if deleting(cur) || finalizers(cur).contains(&fin) {
            return Mutation::Keep;
        }
        let mut fins: Vec<String> = finalizers(cur).into_iter().map(String::from).collect();
        fins.push(fin.to_string());
        Mutation::Replace(with_meta_list(cur, "finalizers", fins))
    });
}

/// Rewrite the stored copy of `obj` (the controllers' writes: never dry-run, a vanished object is
/// left alone).
fn mutate_stored(cl: &Cluster, gr: GroupResource, obj: &Value, f: impl FnOnce(&Value) -> Mutation) {
    let _ = cl.store.mutate(
        gr,
        crate::store::namespace_of(obj),
        meta_str(obj, "name"),
        false,
        |cur| Ok::<_, ()>(f(cur)),
    );
}

/// `cur` with the metadata list `field` set to `items` (removed when empty).
fn with_meta_list<T: serde::Serialize>(cur: &Value, field: &str, items: Vec<T>) -> Value {
    let mut o = cur.clone();
    if let Some(meta) = meta_mut(&mut o) {
        if items.is_empty() {
            meta.remove(field);
        } else {
            meta.insert(field.into(), json!(items));
        }
    }
    o
}

/// The root-CA publisher: `kube-root-ca.crt` with the cluster CA in every live namespace, repaired when
/// changed.
fn root_ca(cl: &Cluster, ns: &str, current: Option<&Value>) {
    let Some(rt) = cl.registry.by_key(CONFIG_MAPS) else {
        return;
    };
    let ca = String::from_utf8_lossy(crate::tls::CA_PEM).into_owned();
    let data = json!({"ca.crt": ca});
    match current {
        None => {
            let opts = WriteOpts {
                dry_run: false,
                manager: "kube-controller-manager".into(),
            };
            let cm = json!({"metadata": {"name": ROOT_CA_CONFIG_MAP, "namespace": ns,
                            "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}}, "data": data});
            let _ = write::create(cl, rt, ns, cm, &opts, false);
        }
        Some(cm) => {
            let described = cm
                .pointer("/metadata/annotations/kubernetes.io~1description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.is_empty());
            if cm.get("data") == Some(&data) && described {
                return;
            }
            let _ = cl
                .store
                .mutate(rt.key(), ns, ROOT_CA_CONFIG_MAP, false, |cur| {
                    let mut o = cur.clone();
                    o["data"] = data.clone();
                    if let Some(meta) = meta_mut(&mut o) {
                        let ann = meta.entry("annotations").or_insert_with(|| json!({}));
                        if !ann.is_object() {
                            *ann = json!({});
                        }
                        ann["kubernetes.io/description"] = json!(ROOT_CA_DESCRIPTION);
                    }
                    Ok::<_, ()>(Mutation::Replace(o))
                });
        }
    }
}

fn delete_quietly(cl: &Cluster, gr: GroupResource, obj: &Value) {
    if let Some(rt) = cl.registry.by_key(gr) {
        let _ = delete::delete(
            cl,
            rt,
            crate::store::namespace_of(obj),
            meta_str(obj, "name"),
            &DeleteOpts::background(),
        );
    }
}

fn strip_owner(cl: &Cluster, gr: GroupResource, obj: &Value, owner_uid: &str) {
    mutate_stored(cl, gr, obj, |cur| {
        let refs: Vec<Value> = owner_refs(cur)
            .into_iter()
            .filter(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid))
            .cloned()
            .collect();
        Mutation::Replace(with_meta_list(cur, "ownerReferences", refs))
    });
}

fn remove_finalizer(cl: &Cluster, rt: &ResourceType, obj: &Value, fin: &str) {
    mutate_stored(cl, rt.key(), obj, |cur| {
        let rest: Vec<String> = finalizers(cur)
            .into_iter()
            .filter(|f| *f != fin)
            .map(String::from)
            .collect();
        let empty = rest.is_empty();
        let o = with_meta_list(cur, "finalizers", rest);
        let grace_zero = o
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0;
        if empty && deleting(&o) && grace_zero && rt.plural != "namespaces" {
            Mutation::Delete(o)
        } else {
            Mutation::Replace(o)
        }
    });
}

/// The namespace lifecycle, the default ServiceAccount and the root-CA ConfigMap; `populated`:
/// every namespace that holds an object.
fn namespaces(cl: &Cluster, all: &[(GroupResource, Value)], populated: &HashSet<String>) {
    let mut has_default_sa: HashSet<&str> = HashSet::new();
    let mut root_cas: HashMap<&str, &Value> = HashMap::new();
    for (gr, v) in all {
        let ns = crate::store::namespace_of(v);
        if *gr == SERVICE_ACCOUNTS && meta_str(v, "name") == "default" {
            has_default_sa.insert(ns);
        }
        if *gr == CONFIG_MAPS && meta_str(v, "name") == ROOT_CA_CONFIG_MAP {
            root_cas.insert(ns, v);
        }
    }
    let Some(ns_type) = cl.registry.by_key(NAMESPACES) else {
        return;
    };
    for (gr, ns) in all.iter().filter(|(gr, _)| *gr == NAMESPACES) {
        let _ = gr;
        let name = meta_str(ns, "name");
        if !deleting(ns) {
            // The CA first: whoever waits for the default account then finds both.
            root_ca(cl, name, root_cas.get(name).copied());
            if !has_default_sa.contains(name) {
                crate::admission::ensure_default_service_account(cl, name);
            }
            continue;
        }
        if populated.contains(name) {
            for (gr, v) in all
                .iter()
                .filter(|(_, v)| crate::store::namespace_of(v) == name && !deleting(v))
            {
                delete_quietly(cl, *gr, v);
            }
            continue;
        }
        let _ = cl.store.mutate(ns_type.key(), "", name, false, |cur| {
            let mut o = cur.clone();
            if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("finalizers".into(), json!([]));
            }
            if finalizers(&o).is_empty() {
                Ok::<_, ()>(Mutation::Delete(o))
            } else {
                Ok(Mutation::Replace(o))
            }
        });
    }
}
