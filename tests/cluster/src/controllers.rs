//! The in-server controllers of a real control plane: the garbage collector (ownerReferences with background,
//! foreground and orphan propagation), the namespace lifecycle (Terminating → contents deleted → removed) and
//! the ServiceAccount controller's `default` account.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::{Cluster, NAMESPACES, SERVICE_ACCOUNTS};
use crate::registry::{GroupResource, ResourceType};
use crate::rest::delete::{self, DeleteOpts};
use crate::rest::write::{self, WriteOpts};
use crate::rest::{meta_mut, meta_str};
use crate::store::Mutation;

/// Run until the task is aborted.
pub async fn run(cl: Arc<Cluster>) {
    loop {
        reconcile(&cl);
        tokio::select! {
            () = cl.store.changed() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        // Batch bursts of writes.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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

/// One pass over everything.
pub fn reconcile(cl: &Cluster) {
    let keys: Vec<GroupResource> = cl.registry.stored().map(ResourceType::key).collect();
    let all = cl.store.all_objects(&keys);
    let uids: HashSet<&str> = all.iter().map(|(_, v)| uid(v)).collect();
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
                .filter(|u| !uids.contains(u))
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
    namespaces(cl, &all);
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
    let _ = cl.store.mutate(
        gr,
        crate::store::namespace_of(obj),
        meta_str(obj, "name"),
        false,
        |cur| {
            let mut o = cur.clone();
            let refs: Vec<Value> = owner_refs(cur)
                .into_iter()
                .filter(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid))
                .cloned()
                .collect();
            if let Some(meta) = meta_mut(&mut o) {
                if refs.is_empty() {
                    meta.remove("ownerReferences");
                } else {
                    meta.insert("ownerReferences".into(), json!(refs));
                }
            }
            Ok::<_, ()>(Mutation::Replace(o))
        },
    );
}

fn remove_finalizer(cl: &Cluster, rt: &ResourceType, obj: &Value, fin: &str) {
    let _ = cl.store.mutate(
        rt.key(),
        crate::store::namespace_of(obj),
        meta_str(obj, "name"),
        false,
        |cur| {
            let mut o = cur.clone();
            let rest: Vec<String> = finalizers(cur)
                .into_iter()
                .filter(|f| *f != fin)
                .map(String::from)
                .collect();
            if let Some(meta) = meta_mut(&mut o) {
                if rest.is_empty() {
                    meta.remove("finalizers");
                } else {
                    meta.insert("finalizers".into(), json!(rest));
                }
            }
            let grace_zero = o
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                == 0;
            if rest.is_empty() && deleting(&o) && grace_zero && rt.plural != "namespaces" {
                Ok::<_, ()>(Mutation::Delete(o))
            } else {
                Ok(Mutation::Replace(o))
            }
        },
    );
}

fn namespaces(cl: &Cluster, all: &[(GroupResource, Value)]) {
    let mut populated: HashSet<&str> = HashSet::new();
    let mut has_default_sa: HashSet<&str> = HashSet::new();
    for (gr, v) in all {
        let ns = crate::store::namespace_of(v);
        if !ns.is_empty() {
            populated.insert(ns);
        }
        if *gr == SERVICE_ACCOUNTS && meta_str(v, "name") == "default" {
            has_default_sa.insert(ns);
        }
    }
    let Some(sa_type) = cl.registry.by_key(SERVICE_ACCOUNTS) else {
        return;
    };
    let Some(ns_type) = cl.registry.by_key(NAMESPACES) else {
        return;
    };
    for (gr, ns) in all.iter().filter(|(gr, _)| *gr == NAMESPACES) {
        let _ = gr;
        let name = meta_str(ns, "name");
        if !deleting(ns) {
            if !has_default_sa.contains(name) {
                let opts = WriteOpts {
                    dry_run: false,
                    manager: "kube-controller-manager".into(),
                };
                let sa = json!({"metadata": {"name": "default", "namespace": name}});
                let _ = write::create(cl, sa_type, name, sa, &opts, false);
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
