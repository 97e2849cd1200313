//! The review resources: SelfSubjectAccessReview (answered by the same authorizer) and SelfSubjectReview.

use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::clock;
use crate::cluster::Cluster;
use crate::rbac::Attributes;
use crate::status::ApiError;

/// POST selfsubjectaccessreviews.
pub fn self_subject_access_review(
    cl: &Cluster,
    user: &UserInfo,
    body: &[u8],
) -> Result<Value, ApiError> {
    let req: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("couldn't decode SelfSubjectAccessReview: {e}"))
    })?;
    let spec = req.get("spec").cloned().unwrap_or(json!({}));
    let s = |p: &str| {
        spec.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let attrs = if spec.get("resourceAttributes").is_some() {
        Attributes {
            verb: s("/resourceAttributes/verb"),
            api_group: s("/resourceAttributes/group"),
            resource: s("/resourceAttributes/resource"),
            subresource: s("/resourceAttributes/subresource"),
            name: s("/resourceAttributes/name"),
            namespace: s("/resourceAttributes/namespace"),
            path: None,
        }
    } else if spec.get("nonResourceAttributes").is_some() {
        Attributes {
            verb: s("/nonResourceAttributes/verb"),
            path: Some(s("/nonResourceAttributes/path")),
            ..Default::default()
        }
    } else {
        return Err(ApiError::invalid(
            "SelfSubjectAccessReview",
            "authorization.k8s.io",
            "",
            vec![crate::status::Cause::invalid(
                "spec.resourceAttributes",
                &Value::Null,
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
        ));
    };
    let d = cl.rbac().authorize(user, &attrs);
    let mut status = json!({"allowed": d.allowed});
    if !d.reason.is_empty() {
        status["reason"] = json!(d.reason);
    }
    Ok(
        json!({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
              "metadata": {"creationTimestamp": null}, "spec": spec, "status": status}),
    )
}

/// POST selfsubjectreviews.
pub fn self_subject_review(user: &UserInfo) -> Value {
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    json!({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
           "metadata": {"creationTimestamp": clock::now_time()}, "status": {"userInfo": info}})
}
