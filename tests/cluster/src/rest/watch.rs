//! WATCH: newline-delimited events from a resourceVersion (or with initial events), selector transitions,
//! bookmarks, `timeoutSeconds`, and the in-stream 410 for a version older than the history.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, sleep_until};

use crate::cluster::Cluster;
use crate::http::Query;
use crate::registry::ResourceType;
use crate::rest::list::Selectors;
use crate::selector::FieldTerm;
use crate::status::ApiError;
use crate::store::{Event, EventType};

/// A live feed of store events.
type Subscription = broadcast::Receiver<Arc<Event>>;

/// Where a watch starts.
enum Start {
    /// Synthetic ADDED events for the current state, then changes.
    Initial,
    /// Changes after this resourceVersion.
    From(u64),
    /// Changes from now.
    Now,
}

struct Filter {
    gr: crate::registry::GroupResource,
    ns: Option<String>,
    sel: Selectors,
}

impl Filter {
    fn in_scope(&self, ev: &Event) -> bool {
        ev.gr == self.gr && self.ns.as_ref().is_none_or(|n| *n == ev.namespace)
    }
}

fn line(kind: &str, obj: &Value) -> Bytes {
    let mut s = serde_json::to_string(&json!({"type": kind, "object": obj})).unwrap_or_default();
    s.push('\n');
    Bytes::from(s)
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Value {
    let mut meta = serde_json::Map::new();
    meta.insert("resourceVersion".into(), json!(rv.to_string()));
    if rt.builtin {
        meta.insert("creationTimestamp".into(), Value::Null);
    }
    if initial_end {
        meta.insert(
            "annotations".into(),
            json!({"k8s.io/initial-events-end": "true"}),
        );
    }
    json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta})
}

/// Translate a change into what this watch sees (selector transitions become ADDED/DELETED).
fn translate(f: &Filter, ev: &Event) -> Option<(&'static str, Value)> {
    if !f.in_scope(ev) {
        return None;
    }
    let now = f.sel.matches(&ev.object);
    match ev.kind {
        EventType::Added => now.then(|| ("ADDED", ev.object.clone())),
        EventType::Deleted => now.then(|| ("DELETED", ev.object.clone())),
        EventType::Modified => {
            let before = ev.old.as_ref().is_some_and(|o| f.sel.matches(o));
            match (before, now) {
                (true, true) => Some(("MODIFIED", ev.object.clone())),
                (false, true) => Some(("ADDED", ev.object.clone())),
                (true, false) => {
                    let mut old = ev.old.clone().unwrap_or(Value::Null);
                    old["metadata"]["resourceVersion"] = json!(ev.rv.to_string());
                    Some(("DELETED", old))
                }
                (false, false) => None,
            }
        }
    }
}

/// Start a watch; returns the channel the response body reads.
pub fn watch(
    cl: &Arc<Cluster>,
    rt: &ResourceType,
    ns: Option<&str>,
    name: Option<&str>,
    query: &Query,
) -> Result<mpsc::Receiver<Bytes>, ApiError> {
    let mut sel = Selectors::parse(rt, query)?;
    if let Some(n) = name {
        sel.fields.terms.push(FieldTerm {
            field: "metadata.name".into(),
            equals: true,
            value: n.into(),
        });
    }
    let rv = query.get("resourceVersion").unwrap_or("");
    let bookmarks = query.flag("allowWatchBookmarks");
    let send_initial = query.get("sendInitialEvents").map(|v| v == "true");
    let start = match (send_initial, rv) {
        (Some(true), _) | (None, "" | "0") => Start::Initial,
        (Some(false), "" | "0") => Start::Now,
        (_, other) => Start::From(other.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid resource version: strconv.ParseUint: parsing {other:?}: invalid syntax"
            ))
        })?),
    };
    let timeout = match query.int("timeoutSeconds") {
        Some(t) if t > 0 => Duration::from_secs(t.unsigned_abs()),
        _ => Duration::from_secs(1800 + fastrand::u64(..1800)),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let filter = Filter {
        gr: rt.key(),
        ns: ns.map(String::from),
        sel,
    };
    let rt = rt.clone();
    let (replay, sub, start_rv, seen_rv, initial_end): (
        Vec<String>,
        Option<Subscription>,
        u64,
        u64,
        bool,
    ) = match start {
        Start::Initial => {
            let (rv, items, sub) = cl.store.watch_now(filter.gr, ns);
            let items = items
                .into_iter()
                .filter(|o| filter.sel.matches(o))
                .map(|o| line_obj("ADDED", o))
                .collect();
            (items, Some(sub), rv, rv, bookmarks)
        }
        Start::Now => {
            let (rv, _, sub) = cl.store.watch_now(filter.gr, ns);
            (Vec::new(), Some(sub), rv, rv, false)
        }
        Start::From(from) => match cl.store.watch_from(from) {
            Ok((events, sub)) => {
                let lines = events
                    .iter()
                    .filter_map(|e| translate(&filter, e))
                    .map(|(k, o)| line_obj(k, o))
                    .collect();
                let last = events.last().map_or(from, |e| e.rv.max(from));
                (lines, Some(sub), from, last, false)
            }
            Err(too_old) => {
                let e = ApiError::expired(format!(
                    "too old resource version: {from} ({})",
                    too_old.oldest
                ));
                (
                    vec![line_obj("ERROR", e.to_status())],
                    None,
                    from,
                    from,
                    false,
                )
            }
        },
    };
    cl.spawn(async move {
        for l in replay {
            if tx.send(Bytes::from(l)).await.is_err() {
                return;
            }
        }
        let Some(mut sub) = sub else { return };
        if initial_end
            && tx
                .send(line("BOOKMARK", &bookmark(&rt, start_rv, true)))
                .await
                .is_err()
        {
            return;
        }
        let deadline = Instant::now() + timeout;
        let mut seen = seen_rv;
        let mut last_bookmark = start_rv;
        let mut next_bookmark = next_bookmark_at(Instant::now(), deadline);
        loop {
            tokio::select! {
                () = sleep_until(deadline) => return,
                () = sleep_until(next_bookmark) => {
                    next_bookmark = next_bookmark_at(Instant::now(), deadline);
                    if bookmarks && seen > last_bookmark {
                        last_bookmark = seen;
                        if tx.send(line("BOOKMARK", &bookmark(&rt, seen, false))).await.is_err() {
                            return;
                        }
                    }
                }
                ev = sub.recv() => {
                    let Ok(ev) = ev else { return };
                    seen = seen.max(ev.rv);
                    if let Some((kind, obj)) = translate(&filter, &ev)
                        && tx.send(line(kind, &obj)).await.is_err()
                    {
                        return;
                    }
                }
                () = tx.closed() => return,
            }
        }
    });
    Ok(rx)
}

fn line_obj(kind: &str, obj: Value) -> String {
    let mut s = serde_json::to_string(&json!({"type": kind, "object": obj})).unwrap_or_default();
    s.push('\n');
    s
}

/// Bookmarks: about 2 s before the deadline and every second after that; otherwise once a minute.
fn next_bookmark_at(now: Instant, deadline: Instant) -> Instant {
    let pre = deadline.checked_sub(Duration::from_secs(2)).unwrap_or(now);
    if now >= pre {
        now + Duration::from_secs(1)
    } else {
        pre.min(now + Duration::from_secs(60))
    }
}
