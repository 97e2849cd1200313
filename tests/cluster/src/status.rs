//! `metav1.Status` errors: one `ApiError` type that every handler returns, rendered exactly as kube-apiserver does.

use serde_json::{Map, Value, json};

/// One field-level cause of a 422 Invalid (or other) Status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    pub reason: &'static str,
    /// The message after `<field>: `.
    pub message: String,
    /// The field path (`metadata.name`).
    pub field: String,
}

impl Cause {
    /// `Invalid value: "<value>": <detail>`.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        let message = if detail.is_empty() {
            format!("Invalid value: {shown}")
        } else {
            format!("Invalid value: {shown}: {detail}")
        };
        Cause {
            reason: "FieldValueInvalid",
            message,
            field: field.into(),
        }
    }
    /// `Required value[: detail]`.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Cause {
            reason: "FieldValueRequired",
            message,
            field: field.into(),
        }
    }
    /// `Forbidden: detail`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Cause {
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {detail}"),
            field: field.into(),
        }
    }
    /// `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        Cause {
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {value:?}: supported values: {}",
                list.join(", ")
            ),
            field: field.into(),
        }
    }
    /// `Duplicate value: "x"`.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Cause {
            reason: "FieldValueDuplicate",
            message: format!("Duplicate value: {value}"),
            field: field.into(),
        }
    }
    /// `Invalid value: "<type>": <detail>` for a value of the wrong JSON type.
    pub fn type_invalid(field: impl Into<String>, type_name: &str, detail: &str) -> Self {
        Cause {
            reason: "FieldValueTypeInvalid",
            message: format!("Invalid value: {type_name:?}: {detail}"),
            field: field.into(),
        }
    }
    fn to_json(&self) -> Value {
        json!({"reason": self.reason, "message": self.message, "field": self.field})
    }
}

/// An error answered to the client as a `metav1.Status` (or, for `PlainNotFound`, as Go's text 404).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `reason` (empty for none, as for a proxy 500).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `details`, when present.
    pub details: Option<Value>,
    /// `metadata` (only used for the expired-continue 410).
    pub metadata: Map<String, Value>,
    /// Answer with Go's plain-text `404 page not found` instead of a Status.
    pub plain_text: bool,
}

/// A resource as named in errors: its plural and API group.
#[derive(Debug, Clone, Copy)]
pub struct ResourceName<'a> {
    /// The plural (`pods`).
    pub plural: &'a str,
    /// The API group (empty for core).
    pub group: &'a str,
}

impl ResourceName<'_> {
    /// `pods` or `volumesnapshots.snapshot.storage.k8s.io`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
    fn details(&self, name: Option<&str>) -> Value {
        let mut d = Map::new();
        if let Some(n) = name {
            d.insert("name".into(), json!(n));
        }
        if !self.group.is_empty() {
            d.insert("group".into(), json!(self.group));
        }
        d.insert("kind".into(), json!(self.plural));
        Value::Object(d)
    }
}

impl ApiError {
    fn new(
        code: u16,
        reason: &'static str,
        message: impl Into<String>,
        details: Option<Value>,
    ) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details,
            metadata: Map::new(),
            plain_text: false,
        }
    }

    /// 404 `<plural> "<name>" not found`.
    pub fn not_found(res: ResourceName<'_>, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} {name:?} not found", res.qualified()),
            Some(res.details(Some(name))),
        )
    }

    /// 409 `<plural> "<name>" already exists`.
    pub fn already_exists(res: ResourceName<'_>, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", res.qualified()),
            Some(res.details(Some(name))),
        )
    }

    /// 409 Conflict for a stale resourceVersion.
    pub fn conflict(res: ResourceName<'_>, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
                res.qualified()
            ),
            Some(res.details(Some(name))),
        )
    }

    /// 409 Conflict with a free text after `Operation cannot be fulfilled on <what> "<name>": `.
    pub fn conflict_with(res: ResourceName<'_>, name: &str, text: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: {text}",
                res.qualified()
            ),
            Some(res.details(Some(name))),
        )
    }

    /// 409 Conflict for a failed delete precondition (details name the Kind).
    pub fn precondition_conflict(kind: &str, group: &str, name: &str, text: &str) -> Self {
        let mut d = Map::new();
        d.insert("name".into(), json!(name));
        if !group.is_empty() {
            d.insert("group".into(), json!(group));
        }
        d.insert("kind".into(), json!(kind));
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {kind} {name:?}: {text}"),
            Some(Value::Object(d)),
        )
    }

    /// 422 Invalid with one cause per violation.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let what = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let errs: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let joined = if errs.len() == 1 {
            errs[0].clone()
        } else {
            format!("[{}]", errs.join(", "))
        };
        let mut d = Map::new();
        if !name.is_empty() {
            d.insert("name".into(), json!(name));
        }
        if !group.is_empty() {
            d.insert("group".into(), json!(group));
        }
        d.insert("kind".into(), json!(kind));
        d.insert(
            "causes".into(),
            Value::Array(causes.iter().map(Cause::to_json).collect()),
        );
        Self::new(
            422,
            "Invalid",
            format!("{what} {name:?} is invalid: {joined}"),
            Some(Value::Object(d)),
        )
    }

    /// 422 with the generic message (used when a JSON patch fails).
    pub fn invalid_generic() -> Self {
        Self::new(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
            Some(json!({})),
        )
    }

    /// 400 BadRequest without details.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message, None)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized", None)
    }

    /// 403 Forbidden with details `{name?, group?, kind}`.
    pub fn forbidden(res: ResourceName<'_>, name: Option<&str>, message: String) -> Self {
        Self::new(403, "Forbidden", message, Some(res.details(name)))
    }

    /// 403 Forbidden for a non-resource URL.
    pub fn forbidden_path(message: String) -> Self {
        Self::new(403, "Forbidden", message, Some(json!({})))
    }

    /// 403 for a create into a Terminating namespace.
    pub fn namespace_terminating(res: ResourceName<'_>, name: &str, namespace: &str) -> Self {
        let mut details = res.details(Some(name));
        if let Some(d) = details.as_object_mut() {
            d.insert(
                "causes".into(),
                json!([{"reason": "NamespaceTerminating", "message": format!("namespace {namespace} is being terminated"), "field": "metadata.namespace"}]),
            );
        }
        Self::new(
            403,
            "Forbidden",
            format!(
                "{} {name:?} is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                res.qualified()
            ),
            Some(details),
        )
    }

    /// 404 for an unknown resource in a known group version.
    pub fn resource_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
            Some(json!({})),
        )
    }

    /// Go's plain-text `404 page not found`.
    pub fn page_not_found() -> Self {
        let mut e = Self::new(404, "NotFound", "404 page not found", None);
        e.plain_text = true;
        e
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            Some(json!({})),
        )
    }

    /// 415 for a PATCH content type the resource does not accept.
    pub fn unsupported_media_type(message: impl Into<String>, details: bool) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            message,
            details.then(|| json!({})),
        )
    }

    /// 410 Expired (continue token or list RV too old).
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message, None)
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
            Some(json!({"causes": [{"message": message}]})),
        )
    }

    /// A kubelet's plain-text error answer, as the API server relays it: a Status with the
    /// kubelet's code and the text as message.
    pub fn from_kubelet(code: u16, text: &str) -> Self {
        let reason = match code {
            400 => "BadRequest",
            403 => "Forbidden",
            404 => "NotFound",
            500 => "InternalError",
            _ => "",
        };
        Self::new(code, reason, text.trim().to_owned(), None)
    }

    /// 500 with no reason (proxy failures).
    pub fn proxy_failure(message: impl Into<String>) -> Self {
        Self::new(500, "", message, None)
    }

    /// 504 Timeout for a too-large resourceVersion.
    pub fn too_large_rv(requested: u64, current: u64) -> Self {
        Self::new(
            504,
            "Timeout",
            format!("Timeout: Too large resource version: {requested}, current: {current}"),
            Some(
                json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
            ),
        )
    }

    /// The `metav1.Status` object (with kind and apiVersion).
    pub fn to_status(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), json!("Status"));
        m.insert("apiVersion".into(), json!("v1"));
        m.insert("metadata".into(), Value::Object(self.metadata.clone()));
        m.insert("status".into(), json!("Failure"));
        m.insert("message".into(), json!(self.message));
        if !self.reason.is_empty() {
            m.insert("reason".into(), json!(self.reason));
        }
        if let Some(d) = &self.details {
            m.insert("details".into(), d.clone());
        }
        m.insert("code".into(), json!(self.code));
        Value::Object(m)
    }
}

/// The `Status` answered for an immediate delete.
pub fn success_status(res: ResourceName<'_>, name: &str, uid: &str) -> Value {
    let mut d = Map::new();
    d.insert("name".into(), json!(name));
    if !res.group.is_empty() {
        d.insert("group".into(), json!(res.group));
    }
    d.insert("kind".into(), json!(res.plural));
    d.insert("uid".into(), json!(uid));
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": Value::Object(d)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_joins_several_causes_in_brackets() {
        let e = ApiError::invalid(
            "Pod",
            "",
            "x",
            vec![
                Cause::required("spec.containers", ""),
                Cause::required("metadata.name", ""),
            ],
        );
        assert_eq!(
            e.message,
            "Pod \"x\" is invalid: [spec.containers: Required value, metadata.name: Required value]"
        );
        assert_eq!(
            e.to_status()["details"]["causes"][0]["reason"],
            "FieldValueRequired"
        );
    }

    #[test]
    fn group_resources_are_qualified() {
        let r = ResourceName {
            plural: "volumesnapshots",
            group: "snapshot.storage.k8s.io",
        };
        let e = ApiError::not_found(r, "s");
        assert_eq!(
            e.message,
            "volumesnapshots.snapshot.storage.k8s.io \"s\" not found"
        );
        assert_eq!(
            e.to_status()["details"],
            json!({"name":"s","group":"snapshot.storage.k8s.io","kind":"volumesnapshots"})
        );
    }
}
