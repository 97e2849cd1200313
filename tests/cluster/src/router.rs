//! Request routing: authentication, impersonation, the path → (group, version, resource, namespace, name,
//! subresource) parse, the verb mapping, RBAC, and dispatch to the REST handlers and discovery.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use crate::auth::UserInfo;
use crate::cluster::Cluster;
use crate::discovery;
use crate::http::{Body, Query, channel_body, error, full, json, wants_pretty};
use crate::proxy::{self, StreamKind};
use crate::rbac::{Attributes, forbidden_message};
use crate::registry::Storage;
use crate::rest::delete::{self, DeleteOpts};
use crate::rest::write::{self, Part};
use crate::rest::{Ctx, list, parse_body, review, sub, watch};
use crate::status::ApiError;

/// A parsed resource path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourcePath {
    /// Group (empty for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Namespace from the path.
    pub namespace: String,
    /// Resource plural.
    pub resource: String,
    /// Name.
    pub name: String,
    /// Subresource.
    pub subresource: String,
}

/// What a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Discovery and health paths.
    NonResource,
    /// A resource.
    Resource(ResourcePath),
}

/// Split a path the way the apiserver's RequestInfoFactory does.
pub fn parse_path(path: &str) -> Route {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return Route::NonResource,
    };
    let mut rp = ResourcePath {
        group: group.into(),
        version: version.into(),
        ..Default::default()
    };
    let mut rest: Vec<&str> = rest.to_vec();
    if rest[0] == "namespaces" && rest.len() > 1 {
        rp.namespace = rest[1].into();
        if rest.len() > 2 && rest[2] != "status" && rest[2] != "finalize" {
            rest = rest[2..].to_vec();
        }
    }
    rp.resource = rest[0].into();
    if let Some(n) = rest.get(1) {
        rp.name = (*n).into();
    }
    if let Some(s) = rest.get(2) {
        rp.subresource = (*s).into();
    }
    Route::Resource(rp)
}

/// The RBAC verb of a request.
pub fn verb(method: &Method, has_name: bool, query: &Query) -> &'static str {
    match *method {
        Method::GET | Method::HEAD if query.flag("watch") => "watch",
        Method::GET | Method::HEAD if has_name => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if has_name => "delete",
        Method::DELETE => "deletecollection",
        _ => "",
    }
}

/// Serve one request.
pub async fn handle(cl: Arc<Cluster>, req: Request<Incoming>) -> Response<Body> {
    let query = Query::parse(req.uri().query());
    let ua = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let pretty = wants_pretty(&ua, &query);
    let auth_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let user = match cl.auth.authenticate(auth_header.as_deref(), |ns, n| {
        cl.service_account_uid(ns, n)
    }) {
        Ok(u) => u,
        Err(e) => return error(&e, pretty),
    };
    // Impersonation runs after authentication and before every authorization, discovery included.
    let user = match crate::impersonation::impersonate(user, req.headers(), || cl.rbac()) {
        Ok(u) => u,
        Err(e) => return error(&e, pretty),
    };
    let path = req.uri().path().to_string();
    let resp = match parse_path(&path) {
        Route::NonResource => non_resource(&cl, &user, req.method(), &path, pretty),
        Route::Resource(rp) => resource(&cl, &user, rp, query, req, pretty).await,
    };
    tracing::debug!(%path, status = resp.status().as_u16(), user = %user.name, "request");
    resp
}

fn non_resource(
    cl: &Cluster,
    user: &UserInfo,
    method: &Method,
    path: &str,
    pretty: bool,
) -> Response<Body> {
    let verb = method.as_str().to_lowercase();
    let attrs = Attributes {
        verb: if verb == "head" { "get".into() } else { verb },
        path: Some(path.to_string()),
        ..Default::default()
    };
    if !cl.rbac().authorize(user, &attrs).allowed {
        return error(
            &ApiError::forbidden_path(forbidden_message(user, &attrs)),
            pretty,
        );
    }
    let reg = &cl.registry;
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let doc = match parts.as_slice() {
        ["api"] => Some(discovery::api_versions(&cl.address)),
        ["api", "v1"] => Some(discovery::core_resources(reg)),
        ["apis"] => Some(discovery::api_groups(reg)),
        ["apis", g] => discovery::api_group(reg, g),
        ["apis", g, v] => discovery::group_resources(reg, g, v),
        ["version"] => Some(discovery::version()),
        ["openapi", "v3"] => Some(crate::openapi::index(reg)),
        ["openapi", "v3", rest @ ..] => crate::openapi::group_version(reg, &rest.join("/")),
        ["healthz"] | ["livez"] | ["readyz"] => {
            let mut r = Response::new(full("ok"));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return r;
        }
        _ => None,
    };
    match doc {
        Some(d) => json(200, &d, pretty),
        None => error(&ApiError::page_not_found(), pretty),
    }
}

async fn body_bytes(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    req.into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| ApiError::bad_request(format!("reading body: {e}")))
}

async fn resource(
    cl: &Arc<Cluster>,
    user: &UserInfo,
    rp: ResourcePath,
    query: Query,
    req: Request<Incoming>,
    pretty: bool,
) -> Response<Body> {
    if !cl.registry.has_group_version(&rp.group, &rp.version) {
        return error(&ApiError::page_not_found(), pretty);
    }
    let Some(rt) = cl.registry.find(&rp.group, &rp.version, &rp.resource) else {
        return error(&ApiError::resource_not_found(), pretty);
    };
    let is_ns_resource = rt.group.is_empty() && rt.plural == "namespaces";
    let bad_scope = if is_ns_resource {
        false
    } else if rt.namespaced {
        rp.namespace.is_empty() && !rp.name.is_empty()
    } else {
        !rp.namespace.is_empty()
    };
    if bad_scope || (!rp.subresource.is_empty() && rt.subresource(&rp.subresource).is_none()) {
        return error(&ApiError::resource_not_found(), pretty);
    }
    let (ns, name) = if is_ns_resource {
        (String::new(), rp.name.clone())
    } else {
        (rp.namespace.clone(), rp.name.clone())
    };
    let method = req.method().clone();
    let v = verb(&method, !name.is_empty(), &query);
    if v.is_empty() {
        return error(&ApiError::method_not_allowed(), pretty);
    }
    let mut attrs = Attributes {
        verb: v.into(),
        api_group: rt.group.into(),
        resource: rt.plural.into(),
        subresource: rp.subresource.clone(),
        name: name.clone(),
        namespace: if is_ns_resource {
            name.clone()
        } else {
            ns.clone()
        },
        path: None,
    };
    let streaming = matches!(rp.subresource.as_str(), "exec" | "attach" | "portforward");
    let mut checks = vec![attrs.clone()];
    if streaming && method == Method::GET && proxy::is_websocket(&req) {
        // Kubernetes ≥ 1.35 also requires `create` for websocket upgrades (1.32 checks only `get`).
        attrs.verb = "create".into();
        checks.push(attrs);
    }
    let rbac = cl.rbac();
    for a in &checks {
        if !rbac.authorize(user, a).allowed {
            let n = (!a.name.is_empty()).then_some(a.name.as_str());
            return error(
                &ApiError::forbidden(rt.name(), n, forbidden_message(user, a)),
                pretty,
            );
        }
    }
    let headers = req.headers().clone();
    let ctx = Ctx {
        cl,
        user,
        rt,
        ns: &ns,
        name: &name,
        sub: &rp.subresource,
        query: &query,
        headers: &headers,
    };
    if streaming {
        let kind = match rp.subresource.as_str() {
            "exec" => StreamKind::Exec,
            "attach" => StreamKind::Attach,
            _ => StreamKind::PortForward,
        };
        if method != Method::GET && method != Method::POST {
            return error(&ApiError::method_not_allowed(), pretty);
        }
        return sub::stream(&ctx, kind, req, pretty).await;
    }
    if rp.subresource == "log" {
        return sub::log(&ctx, pretty).await;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match body_bytes(req).await {
        Ok(b) => b,
        Err(e) => return error(&e, pretty),
    };
    if method == Method::GET && query.flag("watch") {
        let nsopt = (rt.namespaced && !ns.is_empty()).then_some(ns.as_str());
        let named = (!name.is_empty()).then_some(name.as_str());
        return match watch::watch(cl, rt, nsopt, named, &query) {
            Ok(rx) => {
                let mut r = Response::new(channel_body(rx));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                r.headers_mut().insert(
                    header::CACHE_CONTROL,
                    http::HeaderValue::from_static("no-cache, private"),
                );
                r
            }
            Err(e) => error(&e, pretty),
        };
    }
    // kubectl sends some built-in kinds as protobuf: decode those into the JSON we take.
    let is_protobuf = content_type.split(';').next().unwrap_or("").trim()
        == "application/vnd.kubernetes.protobuf";
    let (body, content_type) = if !body.is_empty() && method != Method::PATCH && is_protobuf {
        match crate::protobuf::decode(&body) {
            Ok(v) => (
                bytes::Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
                "application/json".to_owned(),
            ),
            Err(e) => {
                tracing::debug!("protobuf body refused: {e}");
                (body, content_type)
            }
        }
    } else {
        (body, content_type)
    };
    let ct = content_type.split(';').next().unwrap_or("").trim();
    if !body.is_empty()
        && method != Method::PATCH
        && !ct.is_empty()
        && ct != "application/json"
        && ct != "application/yaml"
        && ct != "*/*"
    {
        return error(
            &ApiError::unsupported_media_type(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml".to_string(),
                false,
            ),
            pretty,
        );
    }
    match dispatch(&ctx, &method, &content_type, &body) {
        Ok((code, v)) => json(code, &v, pretty),
        Err(e) => error(&e, pretty),
    }
}

fn dispatch(
    ctx: &Ctx<'_>,
    method: &Method,
    content_type: &str,
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let (cl, rt, ns, name) = (ctx.cl, ctx.rt, ctx.ns, ctx.name);
    if rt.storage == Storage::Review {
        if *method != Method::POST || !name.is_empty() {
            return Err(ApiError::method_not_allowed());
        }
        return match rt.plural {
            "selfsubjectaccessreviews" => {
                Ok((201, review::self_subject_access_review(cl, ctx.user, body)?))
            }
            _ => Ok((201, review::self_subject_review(ctx.user))),
        };
    }
    let get = || {
        cl.store
            .get(rt.key(), ns, name)
            .ok_or_else(|| ApiError::not_found(rt.name(), name))
    };
    match (ctx.sub, method.clone(), name.is_empty()) {
        ("", Method::GET, false) | ("status", Method::GET, false) => Ok((200, get()?)),
        ("", Method::GET, true) => {
            let nsopt = (rt.namespaced && !ns.is_empty()).then_some(ns);
            Ok((200, list::list(cl, rt, nsopt, ctx.query)?))
        }
        ("", Method::POST, true) => {
            if rt.namespaced && ns.is_empty() {
                return Err(ApiError::method_not_allowed());
            }
            let obj = parse_body(rt, body)?;
            Ok((
                201,
                write::create(cl, rt, ns, obj, &ctx.write_opts()?, false)?,
            ))
        }
        ("", Method::PUT, false) | ("status", Method::PUT, false) => {
            let part = if ctx.sub == "status" {
                Part::Status
            } else {
                Part::Main
            };
            let obj = parse_body(rt, body)?;
            Ok((
                200,
                write::update(cl, rt, ns, name, obj, part, &ctx.write_opts()?)?,
            ))
        }
        ("", Method::PATCH, false) | ("status", Method::PATCH, false) => {
            let part = if ctx.sub == "status" {
                Part::Status
            } else {
                Part::Main
            };
            let ptype = write::patch_type(rt, content_type)?;
            if ptype == write::PatchType::Apply {
                write::require_field_manager(
                    ctx.query.get("fieldManager").is_some_and(|m| !m.is_empty()),
                )?;
            }
            write::patch(
                cl,
                rt,
                ns,
                name,
                ptype,
                body,
                part,
                &ctx.write_opts()?,
                ctx.query.flag("force"),
            )
        }
        ("", Method::DELETE, false) => {
            let opts = DeleteOpts::parse(ctx.query, body)?;
            let out = delete::delete(cl, rt, ns, name, &opts)?;
            Ok((200, out.body().clone()))
        }
        ("", Method::DELETE, true) => {
            let opts = DeleteOpts::parse(ctx.query, body)?;
            let sel = list::Selectors::parse(rt, ctx.query)?;
            let nsopt = (rt.namespaced && !ns.is_empty()).then_some(ns);
            let (rv, items) = cl.store.list(rt.key(), nsopt);
            let mut deleted = Vec::new();
            for (_, item) in items.into_iter().filter(|(_, v)| sel.matches(v)) {
                let (ins, iname) = (
                    crate::store::namespace_of(&item).to_string(),
                    crate::rest::meta_str(&item, "name").to_string(),
                );
                match delete::delete(cl, rt, &ins, &iname, &opts) {
                    Ok(_) => deleted.push(item),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            Ok((200, list::envelope(rt, rv, deleted, None)))
        }
        ("scale", m, false) => Ok((200, sub::scale(ctx, &m, content_type, body)?)),
        ("binding", Method::POST, false) => Ok((201, sub::binding(ctx, body)?)),
        ("token", Method::POST, false) => Ok((201, sub::token(ctx, body)?)),
        _ => Err(ApiError::method_not_allowed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(path: &str) -> ResourcePath {
        match parse_path(path) {
            Route::Resource(r) => r,
            Route::NonResource => panic!("{path}"),
        }
    }

    #[test]
    fn paths_split_like_request_info() {
        let r = rp("/api/v1/namespaces/ref/pods/pod-a/exec");
        assert_eq!(
            (
                r.namespace.as_str(),
                r.resource.as_str(),
                r.name.as_str(),
                r.subresource.as_str()
            ),
            ("ref", "pods", "pod-a", "exec")
        );
        let r = rp("/api/v1/namespaces/ref");
        assert_eq!(
            (r.namespace.as_str(), r.resource.as_str(), r.name.as_str()),
            ("ref", "namespaces", "ref")
        );
        let r = rp("/api/v1/namespaces/ref/status");
        assert_eq!(
            (r.resource.as_str(), r.name.as_str(), r.subresource.as_str()),
            ("namespaces", "ref", "status")
        );
        let r = rp("/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents/c");
        assert_eq!(
            (r.group.as_str(), r.resource.as_str(), r.name.as_str()),
            ("snapshot.storage.k8s.io", "volumesnapshotcontents", "c")
        );
        assert_eq!(parse_path("/apis/apps"), Route::NonResource);
        let q = Query::parse(Some("watch=true"));
        assert_eq!(verb(&Method::GET, false, &q), "watch");
        assert_eq!(
            verb(&Method::DELETE, false, &Query::default()),
            "deletecollection"
        );
    }
}
