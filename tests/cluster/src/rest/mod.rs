//! The REST handlers of stored resources: create, read, update, patch, delete, list and watch, plus the
//! subresources (status, scale, binding, token, log, exec) and the review resources.

pub mod delete;
pub mod list;
pub mod review;
pub mod sub;
pub mod watch;
pub mod write;

use std::sync::Arc;

use http::HeaderMap;
use serde_json::{Map, Value};

use crate::auth::UserInfo;
use crate::cluster::{Cluster, NAMESPACES};
use crate::http::Query;
use crate::registry::ResourceType;
use crate::status::ApiError;

/// One resource request, resolved.
pub struct Ctx<'a> {
    /// The server.
    pub cl: &'a Arc<Cluster>,
    /// The caller.
    pub user: &'a UserInfo,
    /// The resource.
    pub rt: &'a ResourceType,
    /// Namespace from the path (empty for cluster scope or all namespaces).
    pub ns: &'a str,
    /// Name from the path.
    pub name: &'a str,
    /// Subresource from the path.
    pub sub: &'a str,
    /// Query parameters.
    pub query: &'a Query,
    /// Request headers.
    pub headers: &'a HeaderMap,
}

impl Ctx<'_> {
    /// Write options from the query (`dryRun`, `fieldManager`) and User-Agent.
    pub fn write_opts(&self) -> Result<write::WriteOpts, ApiError> {
        let dry = self.query.all("dryRun");
        for d in dry {
            if d != "All" {
                return Err(ApiError::bad_request(format!(
                    "Invalid dry run value: {d:?}. Supported values are \"All\""
                )));
            }
        }
        let ua = self
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let manager = match self.query.get("fieldManager") {
            Some(m) if !m.is_empty() => m.to_string(),
            _ => {
                let prefix = ua.split('/').next().unwrap_or("");
                if prefix.is_empty() {
                    "unknown".to_string()
                } else {
                    prefix.chars().take(128).collect()
                }
            }
        };
        Ok(write::WriteOpts {
            dry_run: !dry.is_empty(),
            manager,
        })
    }
}

/// Read a JSON body, with the apiserver's message for malformed input.
pub fn parse_body(rt: &ResourceType, body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice::<Value>(body).map_err(|e| {
        let snippet: String = String::from_utf8_lossy(body).chars().take(64).collect();
        ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {} ({snippet})",
            rt.kind,
            crate::patch::go_json_error(&e)
        ))
    })
}

/// `metadata` of an object, created if missing.
pub fn meta_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let m = obj.as_object_mut()?;
    let meta = m
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
}

/// A string in `metadata`.
pub fn meta_str<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Check that objects may be created in a namespace: 404 naming the namespace, 403 while it terminates.
pub fn check_namespace_for_create(
    cl: &Cluster,
    rt: &ResourceType,
    ns: &str,
    name: &str,
) -> Result<(), ApiError> {
    let Some(nsobj) = cl.store.get(NAMESPACES, "", ns) else {
        return Err(ApiError::not_found(
            crate::status::ResourceName {
                plural: "namespaces",
                group: "",
            },
            ns,
        ));
    };
    if nsobj.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating") {
        return Err(ApiError::namespace_terminating(rt.name(), name, ns));
    }
    Ok(())
}

/// An object as returned in a list of a built-in type (no kind/apiVersion), or unchanged for CRs.
pub fn list_item(rt: &ResourceType, mut v: Value) -> Value {
    if rt.builtin
        && let Some(m) = v.as_object_mut()
    {
        m.remove("kind");
        m.remove("apiVersion");
    }
    v
}
