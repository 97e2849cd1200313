//! Pushing a run's metrics to a Prometheus Pushgateway: one PUT of the text exposition format
//! to the run's group (`job=kentledge`, config, namespace, command), which replaces what the
//! last run of that command pushed. Over the hyper/rustls stack kube already links.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;

/// How long a push may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The URL cannot be used.
    #[error("--pushgateway {0:?} is not an http(s) URL")]
    Url(String),
    /// The Pushgateway could not be reached, or did not answer in time.
    #[error("pushing to {url}: {why}")]
    Transport {
        /// The group's URL.
        url: String,
        /// Why.
        why: String,
    },
    /// It refused the metrics.
    #[error("pushing to {url}: HTTP {status}: {body}")]
    Refused {
        /// The group's URL.
        url: String,
        /// The status.
        status: u16,
        /// What it said.
        body: String,
    },
}

/// The group URL of a run's metrics under `base`.
pub fn group_url(
    base: &str,
    config: &str,
    namespace: &str,
    command: &str,
) -> Result<String, PushError> {
    let b = base.trim_end_matches('/');
    if !(b.starts_with("http://") || b.starts_with("https://")) || b.contains(char::is_whitespace) {
        return Err(PushError::Url(base.to_owned()));
    }
    Ok(format!(
        "{b}/metrics/job/kentledge/config/{config}/namespace/{namespace}/command/{command}"
    ))
}

/// PUTs `body` (the exposition format) to `url`.
pub async fn push(url: &str, body: String) -> Result<(), PushError> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| PushError::Transport {
            url: url.to_owned(),
            why: format!("the system's CA certificates: {e}"),
        })?
        .https_or_http()
        .enable_http1()
        .build();
    let client: HttpClient<_, Full<Bytes>> = HttpClient::builder(TokioExecutor::new()).build(https);
    let req = Request::builder()
        .method(Method::PUT)
        .uri(url)
        .header("content-type", "text/plain; version=0.0.4")
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| PushError::Url(url.to_owned()))?;
    let transport = |why: String| PushError::Transport {
        url: url.to_owned(),
        why,
    };
    let resp = tokio::time::timeout(TIMEOUT, client.request(req))
        .await
        .map_err(|_| transport(format!("no answer within {} s", TIMEOUT.as_secs())))?
        .map_err(|e| {
            transport(
                std::error::Error::source(&e)
                    .map(|s| format!("{e}: {s}"))
                    .unwrap_or_else(|| e.to_string()),
            )
        })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = tokio::time::timeout(TIMEOUT, resp.into_body().collect())
        .await
        .ok()
        .and_then(|r| r.ok())
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_owned())
        .unwrap_or_default();
    Err(PushError::Refused {
        url: url.to_owned(),
        status: status.as_u16(),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_urls() {
        assert_eq!(
            group_url("http://pgw:9091/", "shop", "web", "backup").unwrap(),
            "http://pgw:9091/metrics/job/kentledge/config/shop/namespace/web/command/backup"
        );
        assert!(group_url("pgw:9091", "a", "b", "c").is_err());
        assert!(group_url("http://a b", "a", "b", "c").is_err());
    }
}
