//! Subresources other than status: scale, pods/binding, serviceaccounts/token, pods/log and the streaming
//! pod subresources (handed to the kubelet proxy after the apiserver's own checks).

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::auth::TokenSpec;
use crate::clock;
use crate::http::{Body, empty, error};
use crate::kubelet::kubelet_endpoint;
use crate::proxy::{self, StreamKind};
use crate::rest::write::{self, Part, PatchType};
use crate::rest::{Ctx, meta_str, parse_body};
use crate::status::{ApiError, Cause};

fn selector_string(obj: &Value) -> String {
    let mut parts: Vec<String> = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    for e in obj
        .pointer("/spec/selector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let vals: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(
            match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => format!("{key} in ({})", vals.join(",")),
                "NotIn" => format!("{key} notin ({})", vals.join(",")),
                "Exists" => key.to_string(),
                _ => format!("!{key}"),
            },
        );
    }
    parts.join(",")
}

/// The `Scale` view of a workload.
pub fn to_scale(obj: &Value) -> Value {
    let m = obj.get("metadata").cloned().unwrap_or(json!({}));
    let mut meta = serde_json::Map::new();
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = m.get(k) {
            meta.insert(k.into(), v.clone());
        }
    }
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": meta,
           "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
           "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector_string(obj)}})
}

/// GET/PUT/PATCH of `scale`. A write that names no resourceVersion is retried on a conflict
/// with a concurrent writer (a controller updating the status), as the real API server's
/// GuaranteedUpdate does; one that names one gets the 409.
pub fn scale(
    ctx: &Ctx<'_>,
    method: &http::Method,
    content_type: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let mut tries = 0;
    loop {
        match scale_inner(ctx, method, content_type, body) {
            Err((e, false)) if e.code == 409 && tries < 20 => tries += 1,
            other => return other.map_err(|(e, _)| e),
        }
    }
}

/// One try of [`scale`]; an error says whether the write named a resourceVersion.
fn scale_inner(
    ctx: &Ctx<'_>,
    method: &http::Method,
    content_type: &str,
    body: &[u8],
) -> Result<Value, (ApiError, bool)> {
    let plain = |e: ApiError| (e, true);
    let cur = ctx
        .cl
        .store
        .get(ctx.rt.key(), ctx.ns, ctx.name)
        .ok_or_else(|| plain(ApiError::not_found(ctx.rt.name(), ctx.name)))?;
    let opts = ctx.write_opts().map_err(plain)?;
    let scale_now = to_scale(&cur);
    // Whether the request itself names a resourceVersion: what a patch is applied to carries
    // the current one, which is no precondition (the real server re-applies the patch to the
    // newer object on a conflict).
    let (wanted, named) = match *method {
        http::Method::GET => return Ok(scale_now),
        http::Method::PUT => {
            let w = parse_body(ctx.rt, body).map_err(plain)?;
            let named = !meta_str(&w, "resourceVersion").is_empty();
            (w, named)
        }
        http::Method::PATCH => match write::patch_type(ctx.rt, content_type).map_err(plain)? {
            PatchType::Json => (
                crate::patch::json_patch(&scale_now, body)
                    .map_err(|_| plain(ApiError::invalid_generic()))?,
                String::from_utf8_lossy(body).contains("/metadata/resourceVersion"),
            ),
            t => {
                let p: Value = serde_json::from_slice(body).map_err(|e| {
                    plain(ApiError::bad_request(format!("error decoding patch: {e}")))
                })?;
                let named = p
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .is_some_and(|v| !v.is_empty());
                let w = if t == PatchType::Strategic {
                    crate::patch::strategic_merge(&scale_now, &p)
                        .map_err(|e| plain(ApiError::bad_request(e.to_string())))?
                } else {
                    crate::patch::merge_patch(&scale_now, &p)
                };
                (w, named)
            }
        },
        _ => return Err(plain(ApiError::method_not_allowed())),
    };
    let replicas = wanted
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if replicas < 0 {
        return Err(plain(ApiError::invalid(
            "Scale",
            "autoscaling",
            ctx.name,
            vec![Cause::invalid(
                "spec.replicas",
                &json!(replicas),
                "must be greater than or equal to 0",
            )],
        )));
    }
    let mut new = cur.clone();
    new["spec"]["replicas"] = json!(replicas);
    new["metadata"]["resourceVersion"] = json!(if named {
        meta_str(&wanted, "resourceVersion")
    } else {
        meta_str(&cur, "resourceVersion")
    });
    let out = write::update(ctx.cl, ctx.rt, ctx.ns, ctx.name, new, Part::Main, &opts)
        .map_err(|e| (e, named))?;
    Ok(to_scale(&out))
}

/// POST pods/NAME/binding.
pub fn binding(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, ApiError> {
    let b: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("couldn't decode Binding: {e}")))?;
    let node = b
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "Binding",
            "",
            ctx.name,
            vec![Cause::required("target.name", "")],
        ));
    }
    let binding_res = crate::status::ResourceName {
        plural: "pods/binding",
        group: "",
    };
    let opts = ctx.write_opts()?;
    ctx.cl
        .store
        .mutate(ctx.rt.key(), ctx.ns, ctx.name, opts.dry_run, |cur| {
            let assigned = cur.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
            if cur.pointer("/metadata/deletionTimestamp").is_some() {
                return Err(ApiError::conflict_with(binding_res, ctx.name, &format!("pod {} is being deleted, cannot be assigned to a host", ctx.name)));
            }
            if !assigned.is_empty() {
                return Err(ApiError::conflict_with(binding_res, ctx.name, &format!("pod {} is already assigned to node {assigned:?}", ctx.name)));
            }
            let mut o = cur.clone();
            o["spec"]["nodeName"] = json!(node);
            let conds = o["status"]["conditions"].as_array().cloned().unwrap_or_default();
            let mut conds: Vec<Value> = conds.into_iter().filter(|c| c.get("type") != Some(&json!("PodScheduled"))).collect();
            conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": clock::now_time()}));
            o["status"]["conditions"] = json!(conds);
            Ok(crate::store::Mutation::Replace(o))
        })?
        .ok_or_else(|| ApiError::not_found(ctx.rt.name(), ctx.name))?;
    Ok(
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

/// POST serviceaccounts/NAME/token (TokenRequest).
pub fn token(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, ApiError> {
    let req: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("couldn't decode TokenRequest: {e}")))?
    };
    let Some(uid) = ctx.cl.service_account_uid(ctx.ns, ctx.name) else {
        return Err(ApiError::not_found(
            crate::status::ResourceName {
                plural: "serviceaccounts",
                group: "",
            },
            ctx.name,
        ));
    };
    let expiration = req
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    if expiration < 600 {
        return Err(ApiError::invalid(
            "TokenRequest",
            "authentication.k8s.io",
            "",
            vec![Cause::invalid(
                "spec.expirationSeconds",
                &json!(expiration),
                "may not specify a duration less than 10 minutes",
            )],
        ));
    }
    if expiration > 1 << 32 {
        return Err(ApiError::invalid(
            "TokenRequest",
            "authentication.k8s.io",
            "",
            vec![Cause::invalid(
                "spec.expirationSeconds",
                &json!(expiration),
                "may not specify a duration larger than 2^32 seconds",
            )],
        ));
    }
    let audiences: Vec<String> = req
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec![ctx.cl.issuer.clone()]);
    let bound = req
        .pointer("/spec/boundObjectRef")
        .cloned()
        .filter(|v| !v.is_null());
    let spec = TokenSpec {
        audiences: audiences.clone(),
        expiration_seconds: expiration,
        bound_object: bound.clone(),
    };
    let (tok, exp) = ctx
        .cl
        .auth
        .mint(&ctx.cl.issuer, ctx.ns, ctx.name, &uid, &spec);
    Ok(json!({
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": ctx.name, "namespace": ctx.ns, "creationTimestamp": clock::now_time()},
        "spec": {"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": bound.unwrap_or(Value::Null)},
        "status": {"token": tok, "expirationTimestamp": clock::format_time(exp)},
    }))
}

/// The pod, its container, and its node's kubelet, checked in the apiserver's order.
fn locate(
    ctx: &Ctx<'_>,
    need_container: bool,
) -> Result<Option<(String, crate::kubelet::KubeletEndpoint)>, ApiError> {
    let pod = ctx
        .cl
        .store
        .get(ctx.rt.key(), ctx.ns, ctx.name)
        .ok_or_else(|| ApiError::not_found(ctx.rt.name(), ctx.name))?;
    let container = if need_container {
        proxy::pick_container(&pod, ctx.query.get("container"))?
    } else {
        String::new()
    };
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node.is_empty() {
        return Ok(None);
    }
    let ep = kubelet_endpoint(ctx.cl, node)?;
    Ok(Some((container, ep)))
}

/// GET pods/NAME/log.
pub async fn log(ctx: &Ctx<'_>, pretty: bool) -> Response<Body> {
    match locate(ctx, true) {
        Err(e) => error(&e, pretty),
        Ok(None) => {
            let mut r = Response::new(empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Ok(Some((container, ep))) => {
            proxy::logs(
                ctx.cl,
                &ep,
                &proxy::log_target(ctx.ns, ctx.name, &container, ctx.query),
                pretty,
            )
            .await
        }
    }
}

/// exec / attach / portforward.
pub async fn stream(
    ctx: &Ctx<'_>,
    kind: StreamKind,
    req: Request<Incoming>,
    pretty: bool,
) -> Response<Body> {
    match locate(ctx, kind != StreamKind::PortForward) {
        Err(e) => error(&e, pretty),
        Ok(None) => error(
            &ApiError::bad_request(format!("pod {} does not have a host assigned", ctx.name)),
            pretty,
        ),
        Ok(Some((container, ep))) => {
            let target = proxy::stream_target(kind, ctx.ns, ctx.name, &container, ctx.query);
            proxy::stream(ctx.cl, &ep, &target, ctx.query, req, pretty).await
        }
    }
}
