//! The object store: every object as JSON keyed by resource, namespace and name, one global resourceVersion
//! counter, and a bounded history of change events that watches replay from.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::{Notify, broadcast};

use crate::registry::GroupResource;

/// The type of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The watch event type string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change.
#[derive(Debug)]
pub struct Event {
    /// The resourceVersion of the change.
    pub rv: u64,
    /// The resource.
    pub gr: GroupResource,
    /// The namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (for a delete: its last state with the delete's resourceVersion).
    pub object: Value,
    /// The object before the change (for MODIFIED).
    pub old: Option<Value>,
}

/// The result of a conditional write.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The write changed nothing; the current object (resourceVersion not bumped).
    Unchanged(Value),
    /// The object was replaced; the new state.
    Updated(Value),
    /// The object was removed; its last state (with its last stored resourceVersion).
    Deleted(Value),
}

/// What a write closure asks for.
#[derive(Debug)]
pub enum Mutation {
    /// Leave the object as it is.
    Keep,
    /// Replace the object.
    Replace(Value),
    /// Remove the object; the value is its final state.
    Delete(Value),
}

/// Events to replay and the live feed after them.
pub type Replay = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

/// A watch that asked for history the store no longer has.
#[derive(Debug, Clone, Copy)]
pub struct TooOld {
    /// The oldest resourceVersion still replayable.
    pub oldest: u64,
}

struct State {
    rv: u64,
    objects: HashMap<GroupResource, BTreeMap<String, Value>>,
    history: VecDeque<Arc<Event>>,
    history_cap: usize,
    compacted: u64,
    /// The resourceVersion of the last change to each resource.
    written: HashMap<GroupResource, u64>,
}

/// What [`Store::view`] saw.
#[derive(Debug, Default)]
pub struct View {
    /// Copies of the objects asked for.
    pub objects: Vec<(GroupResource, Value)>,
    /// The uid of every object.
    pub uids: std::collections::HashSet<String>,
    /// Every namespace that holds an object.
    pub namespaces: std::collections::HashSet<String>,
}

/// The shared store.
pub struct Store {
    state: Mutex<State>,
    events: broadcast::Sender<Arc<Event>>,
    changed: Notify,
}

/// The map key of an object: `ns/name`, or `name` when cluster-scoped (etcd's ordering).
pub fn object_key(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    }
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

/// The namespace of a stored object.
pub fn namespace_of(obj: &Value) -> &str {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl Store {
    /// A store that keeps `history_cap` events for watches.
    pub fn new(history_cap: usize) -> Self {
        let (events, _) = broadcast::channel(8192);
        Store {
            state: Mutex::new(State {
                rv: 0,
                objects: HashMap::new(),
                history: VecDeque::new(),
                history_cap: history_cap.max(1),
                compacted: 0,
                written: HashMap::new(),
            }),
            events,
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// The resourceVersion of the last change to any of `resources` (0 when none changed yet):
    /// what a cache of them is current at.
    pub fn written_at(&self, resources: &[GroupResource]) -> u64 {
        let st = self.lock();
        resources
            .iter()
            .filter_map(|gr| st.written.get(gr).copied())
            .max()
            .unwrap_or(0)
    }

    /// Whether any change after `rv` is one `matters` picks; also when the history no longer
    /// reaches back to `rv` (what was dropped may have mattered).
    pub fn changed_since(&self, rv: u64, matters: impl Fn(&Event) -> bool) -> bool {
        let st = self.lock();
        rv < st.compacted
            || st
                .history
                .iter()
                .rev()
                .take_while(|e| e.rv > rv)
                .any(|e| matters(e))
    }

    /// Wait until something was written.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Takes the next resourceVersion for `object`, records the change, and returns the object
    /// carrying that version.
    fn record(
        &self,
        st: &mut State,
        gr: GroupResource,
        namespace: String,
        kind: EventType,
        mut object: Value,
        old: Option<Value>,
    ) -> Value {
        st.rv += 1;
        let rv = st.rv;
        st.written.insert(gr, rv);
        set_rv(&mut object, rv);
        let ev = Arc::new(Event {
            rv,
            gr,
            namespace,
            kind,
            object: object.clone(),
            old,
        });
        st.history.push_back(ev.clone());
        while st.history.len() > st.history_cap {
            if let Some(old) = st.history.pop_front() {
                st.compacted = old.rv;
            }
        }
        // No receivers is fine.
        let _ = self.events.send(ev);
        self.changed.notify_one();
        object
    }

    /// One object.
    pub fn get(&self, gr: GroupResource, namespace: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&gr)
            .and_then(|m| m.get(&object_key(namespace, name)))
            .cloned()
    }

    /// All objects of a resource (in one namespace, or all when `None`), in key order, with the current RV.
    pub fn list(&self, gr: GroupResource, namespace: Option<&str>) -> (u64, Vec<(String, Value)>) {
        let st = self.lock();
        (st.rv, Self::list_locked(&st, gr, namespace))
    }

    fn list_locked(st: &State, gr: GroupResource, namespace: Option<&str>) -> Vec<(String, Value)> {
        let Some(m) = st.objects.get(&gr) else {
            return Vec::new();
        };
        match namespace {
            None => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Some(ns) => {
                let prefix = format!("{ns}/");
                m.range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }
        }
    }

    /// Every object of every given resource (for the garbage collector).
    pub fn all_objects(&self, resources: &[GroupResource]) -> Vec<(GroupResource, Value)> {
        self.view(resources, |_, _| true).objects
    }

    /// One look at `resources` under one lock: every object's uid and namespace, and copies of
    /// only the objects `wanted` picks. What the in-server controllers read on each pass: a pass
    /// that copied every object held the lock, and so every request, for milliseconds once
    /// thousands of snapshots were stored.
    pub fn view(
        &self,
        resources: &[GroupResource],
        wanted: impl Fn(GroupResource, &Value) -> bool,
    ) -> View {
        let st = self.lock();
        let mut view = View::default();
        for gr in resources {
            for v in st.objects.get(gr).into_iter().flat_map(BTreeMap::values) {
                let meta = |k: &str| {
                    v.get("metadata")
                        .and_then(|m| m.get(k))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                };
                view.uids.insert(meta("uid").to_owned());
                if !meta("namespace").is_empty() && !view.namespaces.contains(meta("namespace")) {
                    view.namespaces.insert(meta("namespace").to_owned());
                }
                if wanted(*gr, v) {
                    view.objects.push((*gr, v.clone()));
                }
            }
        }
        view
    }

    /// Create an object; `Err(existing)` when the name is taken. With `dry_run` nothing is stored and the
    /// object has no resourceVersion.
    pub fn create(&self, gr: GroupResource, obj: Value, dry_run: bool) -> Result<Value, Value> {
        let ns = namespace_of(&obj).to_string();
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let key = object_key(&ns, &name);
        let mut st = self.lock();
        if let Some(existing) = st.objects.get(&gr).and_then(|m| m.get(&key)) {
            return Err(existing.clone());
        }
        if dry_run {
            return Ok(obj);
        }
        let obj = self.record(&mut st, gr, ns, EventType::Added, obj, None);
        st.objects.entry(gr).or_default().insert(key, obj.clone());
        Ok(obj)
    }

    /// Change an object atomically: `f` sees the current object and decides. `Ok(None)` when it does not exist.
    pub fn mutate<E>(
        &self,
        gr: GroupResource,
        namespace: &str,
        name: &str,
        dry_run: bool,
        f: impl FnOnce(&Value) -> Result<Mutation, E>,
    ) -> Result<Option<Outcome>, E> {
        let key = object_key(namespace, name);
        let mut st = self.lock();
        let Some(current) = st.objects.get(&gr).and_then(|m| m.get(&key)).cloned() else {
            return Ok(None);
        };
        match f(&current)? {
            Mutation::Keep => Ok(Some(Outcome::Unchanged(current))),
            Mutation::Replace(mut new) => {
                set_rv(&mut new, current_rv_of(&current));
                if new == current {
                    return Ok(Some(Outcome::Unchanged(current)));
                }
                if dry_run {
                    return Ok(Some(Outcome::Updated(new)));
                }
                let ns = namespace.to_string();
                let new = self.record(&mut st, gr, ns, EventType::Modified, new, Some(current));
                st.objects.entry(gr).or_default().insert(key, new.clone());
                Ok(Some(Outcome::Updated(new)))
            }
            Mutation::Delete(mut last) => {
                set_rv(&mut last, current_rv_of(&current));
                if dry_run {
                    return Ok(Some(Outcome::Deleted(last)));
                }
                if let Some(m) = st.objects.get_mut(&gr) {
                    m.remove(&key);
                }
                // The Deleted event carries the deletion's version; the caller gets the last
                // stored one.
                let ns = namespace.to_string();
                self.record(
                    &mut st,
                    gr,
                    ns,
                    EventType::Deleted,
                    last.clone(),
                    Some(current),
                );
                Ok(Some(Outcome::Deleted(last)))
            }
        }
    }

    /// Subscribe to changes after `from` (replaying history), atomically. `Err` when `from` is older than the history.
    pub fn watch_from(&self, from: u64) -> Result<Replay, TooOld> {
        let st = self.lock();
        if from < st.compacted {
            let oldest = st.history.front().map_or(st.rv + 1, |e| e.rv);
            return Err(TooOld { oldest });
        }
        let replay = st.history.iter().filter(|e| e.rv > from).cloned().collect();
        Ok((replay, self.events.subscribe()))
    }

    /// Subscribe to changes from now, with a consistent list of current objects.
    pub fn watch_now(
        &self,
        gr: GroupResource,
        namespace: Option<&str>,
    ) -> (u64, Vec<Value>, broadcast::Receiver<Arc<Event>>) {
        let st = self.lock();
        let items = Self::list_locked(&st, gr, namespace)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        (st.rv, items, self.events.subscribe())
    }
}

fn current_rv_of(obj: &Value) -> u64 {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CM: GroupResource = GroupResource {
        group: "",
        plural: "configmaps",
    };

    fn cm(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns"}, "data": {"k": "v"}})
    }

    #[test]
    fn rv_is_global_and_noop_writes_do_not_bump_it() {
        let s = Store::new(10);
        let a = s.create(CM, cm("a"), false).unwrap();
        assert_eq!(a["metadata"]["resourceVersion"], "1");
        assert!(s.create(CM, cm("a"), false).is_err());
        let out = s
            .mutate(CM, "ns", "a", false, |cur| {
                Ok::<_, ()>(Mutation::Replace(cur.clone()))
            })
            .unwrap();
        assert!(matches!(out, Some(Outcome::Unchanged(_))));
        assert_eq!(s.current_rv(), 1);
        let out = s
            .mutate(CM, "ns", "a", false, |cur| {
                Ok::<_, ()>(Mutation::Delete(cur.clone()))
            })
            .unwrap();
        assert!(
            matches!(out, Some(Outcome::Deleted(ref v)) if v["metadata"]["resourceVersion"] == "1")
        );
        assert_eq!(s.current_rv(), 2);
        assert!(s.get(CM, "ns", "a").is_none());
    }

    #[test]
    fn history_is_bounded() {
        let s = Store::new(2);
        for n in ["a", "b", "c", "d"] {
            s.create(CM, cm(n), false).unwrap();
        }
        assert!(s.watch_from(1).is_err());
        let (replay, _) = s.watch_from(2).unwrap();
        assert_eq!(replay.iter().map(|e| e.rv).collect::<Vec<_>>(), vec![3, 4]);
    }

    #[test]
    fn written_at_and_changed_since_see_each_resource_and_a_dropped_history() {
        const SECRETS: GroupResource = GroupResource {
            group: "",
            plural: "secrets",
        };
        let s = Store::new(3);
        assert_eq!(s.written_at(&[CM, SECRETS]), 0);
        s.create(CM, cm("a"), false).unwrap();
        s.create(SECRETS, cm("b"), false).unwrap();
        assert_eq!(s.written_at(&[CM]), 1);
        assert_eq!(s.written_at(&[CM, SECRETS]), 2);
        // A dry run is no change.
        s.create(CM, cm("c"), true).unwrap();
        assert_eq!(s.written_at(&[CM]), 1);
        let is_cm = |e: &Event| e.gr == CM;
        assert!(s.changed_since(0, is_cm));
        assert!(!s.changed_since(1, is_cm), "only a secret changed after 1");
        assert!(s.changed_since(1, |e| e.gr == SECRETS));
        assert!(!s.changed_since(2, |_| true));
        for n in ["d", "e", "f"] {
            s.create(SECRETS, cm(n), false).unwrap();
        }
        // The history keeps 3 events (rv 3..5): what happened after rv 1 is no longer all known.
        assert!(s.changed_since(1, is_cm));
        assert!(!s.changed_since(2, is_cm));
    }
}
