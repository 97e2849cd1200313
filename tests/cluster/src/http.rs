//! HTTP plumbing: the response body type, JSON and Status responses, query-string access.

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::status::ApiError;

/// The body of every response.
pub type Body = BoxBody<Bytes, Infallible>;

/// A full body.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// A streaming body fed by a channel (watch streams, followed logs).
pub fn channel_body(rx: mpsc::Receiver<Bytes>) -> Body {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    StreamBody::new(stream).boxed()
}

/// Whether the server pretty-prints for this client (curl, wget, browsers, `?pretty=true`).
pub fn wants_pretty(user_agent: &str, query: &Query) -> bool {
    query.get("pretty").is_some_and(|v| v == "true" || v == "1")
        || ["curl", "Wget", "Mozilla/5.0"]
            .iter()
            .any(|p| user_agent.starts_with(p))
}

/// A JSON response.
pub fn json(code: u16, v: &Value, pretty: bool) -> Response<Body> {
    let text = if pretty {
        serde_json::to_string_pretty(v)
    } else {
        serde_json::to_string(v)
    }
    .unwrap_or_default();
    let mut r = Response::new(full(text));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    r
}

/// An error response (a Status, or Go's plain-text 404).
pub fn error(e: &ApiError, pretty: bool) -> Response<Body> {
    if e.plain_text {
        let mut r = Response::new(full("404 page not found\n"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return r;
    }
    json(e.code, &e.to_status(), pretty)
}

/// Parsed query parameters (repeated keys kept in order).
#[derive(Debug, Clone, Default)]
pub struct Query {
    map: HashMap<String, Vec<String>>,
}

impl Query {
    /// Parse a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            map.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        Query { map }
    }
    /// First value.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.map.get(k).and_then(|v| v.first()).map(String::as_str)
    }
    /// All values.
    pub fn all(&self, k: &str) -> &[String] {
        self.map.get(k).map(Vec::as_slice).unwrap_or(&[])
    }
    /// A boolean (`true`/`1`).
    pub fn flag(&self, k: &str) -> bool {
        self.get(k).is_some_and(|v| v == "true" || v == "1")
    }
    /// An integer.
    pub fn int(&self, k: &str) -> Option<i64> {
        self.get(k).and_then(|v| v.parse().ok())
    }
}
