//! DELETE and deletecollection: preconditions, propagation policies (finalizers for Foreground/Orphan),
//! finalizer-held objects, graceful pod deletion through the kubelet hook, namespaces entering Terminating.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::clock;
use crate::cluster::Cluster;
use crate::registry::ResourceType;
use crate::rest::{meta_mut, meta_str};
use crate::status::{ApiError, success_status};
use crate::store::{Mutation, Outcome};

/// `propagationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Owner goes first, the garbage collector deletes dependents.
    Background,
    /// Owner waits (foregroundDeletion finalizer) until blocking dependents are gone.
    Foreground,
    /// Dependents lose their ownerReference (orphan finalizer).
    Orphan,
}

/// DeleteOptions (from the body and the query).
#[derive(Debug, Clone)]
pub struct DeleteOpts {
    /// Propagation (None: the default, Background).
    pub propagation: Option<Propagation>,
    /// `gracePeriodSeconds`.
    pub grace: Option<i64>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

impl DeleteOpts {
    /// Defaults: background, no grace override, no preconditions.
    pub fn background() -> Self {
        DeleteOpts {
            propagation: None,
            grace: None,
            uid: None,
            resource_version: None,
            dry_run: false,
        }
    }

    /// Parse the query and an optional JSON DeleteOptions body.
    pub fn parse(query: &crate::http::Query, body: &[u8]) -> Result<Self, ApiError> {
        let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
        };
        let policy = query
            .get("propagationPolicy")
            .map(String::from)
            .or_else(|| {
                b.get("propagationPolicy")
                    .and_then(Value::as_str)
                    .map(String::from)
            });
        let orphan = query
            .get("orphanDependents")
            .map(|v| v == "true")
            .or_else(|| b.get("orphanDependents").and_then(Value::as_bool));
        let propagation = match policy.as_deref() {
            Some("Foreground") => Some(Propagation::Foreground),
            Some("Background") => Some(Propagation::Background),
            Some("Orphan") => Some(Propagation::Orphan),
            Some(other) => {
                return Err(ApiError::invalid(
                    "DeleteOptions",
                    "meta.k8s.io",
                    "",
                    vec![crate::status::Cause::not_supported(
                        "propagationPolicy",
                        other,
                        &["Foreground", "Background", "Orphan", "nil"],
                    )],
                ));
            }
            None => match orphan {
                Some(true) => Some(Propagation::Orphan),
                _ => None,
            },
        };
        let grace = query
            .int("gracePeriodSeconds")
            .or_else(|| b.get("gracePeriodSeconds").and_then(Value::as_i64));
        let dry = !query.all("dryRun").is_empty()
            || b.get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
        Ok(DeleteOpts {
            propagation,
            grace,
            uid: b
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(String::from),
            resource_version: b
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(String::from),
            dry_run: dry,
        })
    }
}

/// What a delete answered.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// Removed now: the Status to answer (or the object, for pods).
    Gone(Value),
    /// Kept (finalizers, graceful pod, namespace): the object.
    Marked(Value),
}

impl Deleted {
    /// The response body.
    pub fn body(&self) -> &Value {
        match self {
            Deleted::Gone(v) | Deleted::Marked(v) => v,
        }
    }
}

fn finalizers(v: &Value) -> Vec<String> {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect()
}

/// Delete one object.
pub fn delete(
    cl: &Cluster,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    opts: &DeleteOpts,
) -> Result<Deleted, ApiError> {
    let Some(current) = cl.store.get(rt.key(), ns, name) else {
        return Err(ApiError::not_found(rt.name(), name));
    };
    let is_pod = rt.group.is_empty() && rt.plural == "pods";
    let graceful = if is_pod {
        cl.pod_termination.graceful_period(cl, &current, opts.grace)
    } else {
        None
    };
    let group = if rt.builtin { "" } else { rt.group };
    let out = cl.store.mutate(rt.key(), ns, name, opts.dry_run, |cur| {
        let uid = meta_str(cur, "uid");
        if let Some(want) = &opts.uid
            && want != uid
        {
            return Err(ApiError::precondition_conflict(
                rt.kind,
                group,
                name,
                &format!("the UID in the precondition ({want}) does not match the UID in record ({uid}). The object might have been deleted and then recreated"),
            ));
        }
        if let Some(want) = &opts.resource_version
            && want != meta_str(cur, "resourceVersion")
        {
            return Err(ApiError::precondition_conflict(
                rt.kind,
                group,
                name,
                &format!(
                    "the ResourceVersion in the precondition ({want}) does not match the ResourceVersion in record ({}). The object might have been modified",
                    meta_str(cur, "resourceVersion")
                ),
            ));
        }
        let mut fins = finalizers(cur);
        let already = cur.pointer("/metadata/deletionTimestamp").is_some();
        if already {
            // A repeated delete: a pod's kubelet finishing (grace 0) removes it; otherwise nothing changes.
            if is_pod && graceful.is_none() && fins.is_empty() {
                return Ok(Mutation::Delete(cur.clone()));
            }
            if is_pod && let Some(g) = graceful {
                let cur_grace = cur.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(g);
                if g < cur_grace {
                    let mut o = cur.clone();
                    mark(&mut o, g, &fins);
                    return Ok(Mutation::Replace(o));
                }
            }
            return Ok(Mutation::Keep);
        }
        match opts.propagation {
            Some(Propagation::Foreground) if !fins.iter().any(|f| f == "foregroundDeletion") => fins.push("foregroundDeletion".into()),
            Some(Propagation::Orphan) if !fins.iter().any(|f| f == "orphan") => fins.push("orphan".into()),
            _ => {}
        }
        let is_ns = rt.group.is_empty() && rt.plural == "namespaces";
        let mut o = cur.clone();
        if is_ns {
            mark(&mut o, 0, &fins);
            o["status"]["phase"] = json!("Terminating");
            return Ok(Mutation::Replace(o));
        }
        if let Some(g) = graceful {
            mark(&mut o, g, &fins);
            return Ok(Mutation::Replace(o));
        }
        mark(&mut o, 0, &fins);
        if fins.is_empty() { Ok(Mutation::Delete(if is_pod { o } else { cur.clone() })) } else { Ok(Mutation::Replace(o)) }
    })?;
    match out {
        None => Err(ApiError::not_found(rt.name(), name)),
        Some(Outcome::Deleted(last)) => {
            if is_pod {
                Ok(Deleted::Gone(last))
            } else {
                Ok(Deleted::Gone(success_status(
                    rt.name(),
                    name,
                    meta_str(&last, "uid"),
                )))
            }
        }
        Some(Outcome::Updated(v)) | Some(Outcome::Unchanged(v)) => Ok(Deleted::Marked(v)),
    }
}

fn mark(o: &mut Value, grace: i64, fins: &[String]) {
    let at = Timestamp::now()
        .checked_add(SignedDuration::from_secs(grace))
        .unwrap_or_else(|_| Timestamp::now());
    if let Some(meta) = meta_mut(o) {
        meta.insert("deletionTimestamp".into(), json!(clock::format_time(at)));
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        if fins.is_empty() {
            meta.remove("finalizers");
        } else {
            meta.insert("finalizers".into(), json!(fins));
        }
    }
}
