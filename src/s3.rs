//! An S3 client for bucket backups: SigV4 signing by rusty-s3, HTTP by the hyper stack kube
//! already links (rustls with ring, the system's CA certificates). Lists a prefix page by page
//! (bounded memory), reads an object's metadata, streams an object's body into a writer, writes
//! an object with its metadata, deletes one. Signed URLs carry signatures, so they are never
//! logged or put into an error.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rusty_s3::actions::{ListObjectsV2, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};
use tokio::io::AsyncWriteExt;

/// How long a signed request stays valid.
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);

/// How long a server may leave a request without an answer, or a body without its next piece,
/// before the call fails (a stalled connection must not hang a mover until its deadline).
const IDLE: Duration = Duration::from_secs(120);

/// The most parts S3 takes in one multipart upload.
pub const MAX_PARTS: u16 = 10_000;

/// Why an S3 call failed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The endpoint, bucket or region cannot be used.
    #[error("{0}")]
    Config(String),
    /// A key this client cannot address exactly.
    #[error(
        "object key {0:?} cannot be addressed exactly (a key with `.`/`..` segments, `//` or a leading `/`)"
    )]
    Key(String),
    /// The server answered with an error.
    #[error("{what}: HTTP {status}{}", .code.as_ref().map(|c| format!(" {c}: {}", .message)).unwrap_or_default())]
    Status {
        /// What was asked.
        what: String,
        /// The HTTP status.
        status: u16,
        /// S3's error code (`NoSuchBucket`, `SignatureDoesNotMatch`, …).
        code: Option<String>,
        /// S3's message.
        message: String,
    },
    /// The server could not be reached or the connection broke.
    #[error("{what}: {why}")]
    Transport {
        /// What was asked.
        what: String,
        /// Why it failed.
        why: String,
    },
    /// An answer that cannot be read.
    #[error("{what}: the answer cannot be read: {why}")]
    Answer {
        /// What was asked.
        what: String,
        /// Why.
        why: String,
    },
}

/// Whether this client can address `key` exactly: not empty, no leading `/`, no `//`, no `.`
/// or `..` segment (a URL normalises those to another path).
pub fn addressable(key: &str) -> bool {
    !(key.is_empty()
        || key.starts_with('/')
        || key.contains("//")
        || key.split('/').any(|seg| seg == "." || seg == ".."))
}

/// Where a bucket is and how to sign for it (its `Debug` leaves the keys out).
#[derive(Clone)]
pub struct Endpoint {
    /// `http://…` or `https://…`.
    pub url: String,
    /// The region.
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// Path-style addressing.
    pub path_style: bool,
    /// The access key id.
    pub access_key: String,
    /// The secret access key.
    pub secret_key: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

pub use crate::engines::bucket::{Metadata, Object};

/// The headers a write sets, by name (lowercase), from the metadata.
fn write_headers(m: &Metadata) -> Vec<(String, String)> {
    let mut h = Vec::new();
    for (name, value) in [
        ("content-type", &m.content_type),
        ("content-encoding", &m.content_encoding),
        ("content-language", &m.content_language),
        ("content-disposition", &m.content_disposition),
        ("cache-control", &m.cache_control),
        ("expires", &m.expires),
    ] {
        if let Some(v) = value {
            h.push((name.to_owned(), v.clone()));
        }
    }
    for (k, v) in &m.user {
        h.push((format!("x-amz-meta-{}", k.to_ascii_lowercase()), v.clone()));
    }
    h
}

/// The metadata a response's headers carry.
fn read_headers(headers: &hyper::HeaderMap) -> Metadata {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let mut user = BTreeMap::new();
    for (name, value) in headers {
        if let (Some(k), Ok(v)) = (name.as_str().strip_prefix("x-amz-meta-"), value.to_str()) {
            user.insert(k.to_ascii_lowercase(), v.to_owned());
        }
    }
    Metadata {
        size: get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0),
        content_type: get("content-type"),
        content_encoding: get("content-encoding"),
        content_language: get("content-language"),
        content_disposition: get("content-disposition"),
        cache_control: get("cache-control"),
        expires: get("expires"),
        user,
        etag: get("etag"),
        last_modified: get("last-modified"),
    }
}

/// The text of the first `<name>` element of an XML answer, unescaped. Read this way, not by a
/// strict schema: servers name the root elements differently (rclone answers
/// `InitiateMultipartUpload` where S3 says `InitiateMultipartUploadResult`).
fn xml_text(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&close)? + start;
    Some(
        body[start..end]
            .replace("&quot;", "\"")
            .replace("&#34;", "\"")
            .replace("&apos;", "'")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// S3's `<Error><Code>…</Code><Message>…</Message></Error>`.
fn error_parts(body: &str) -> (Option<String>, String) {
    (
        xml_text(body, "Code"),
        xml_text(body, "Message").unwrap_or_default(),
    )
}

/// Percent-decoding of a listing's `encoding-type=url` key, for a server that encodes although
/// it was not asked to (`+` stays `+`).
fn url_decoded(s: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|e| format!("key {s:?} is not UTF-8 once decoded: {e}"))
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// A bucket's client. Use it on one Tokio runtime for its whole life: its pooled connections
/// run as tasks of the runtime that opened them, so a call from another (not driven) runtime
/// would wait for them until the idle limit.
pub struct Client {
    http: HttpClient<Https, Full<Bytes>>,
    bucket: Bucket,
    credentials: Credentials,
}

impl Client {
    /// A client of the endpoint's bucket (no request is made).
    pub fn new(e: &Endpoint) -> Result<Client, S3Error> {
        let url = e
            .url
            .parse()
            .map_err(|err| S3Error::Config(format!("endpoint {:?}: {err}", e.url)))?;
        let style = if e.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(url, style, e.bucket.clone(), e.region.clone())
            .map_err(|err| S3Error::Config(format!("bucket {:?}: {err}", e.bucket)))?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|err| S3Error::Config(format!("the system's CA certificates: {err}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Client {
            http: HttpClient::builder(TokioExecutor::new()).build(https),
            bucket,
            credentials: Credentials::new(e.access_key.clone(), e.secret_key.clone()),
        })
    }

    /// The object URL of `key`, when it addresses exactly that key.
    fn object_url(&self, key: &str) -> Result<url::Url, S3Error> {
        let bad = || S3Error::Key(key.to_owned());
        if !addressable(key) {
            return Err(bad());
        }
        self.bucket.object_url(key).map_err(|_| bad())
    }

    async fn send(
        &self,
        what: &str,
        method: Method,
        url: url::Url,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Result<Response<hyper::body::Incoming>, S3Error> {
        // An empty PUT still says its length (hyper sends none for an empty body: S3 answers 411).
        let put = method == Method::PUT;
        let mut req = Request::builder().method(method).uri(url.as_str());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        if put {
            req = req.header("content-length", body.len());
        }
        let req = req.body(Full::new(body)).map_err(|e| S3Error::Transport {
            what: what.to_owned(),
            why: e.to_string(),
        })?;
        let answer = tokio::time::timeout(IDLE, self.http.request(req))
            .await
            .map_err(|_| S3Error::Transport {
                what: what.to_owned(),
                why: format!("no answer within {} s", IDLE.as_secs()),
            })?;
        answer.map_err(|e| S3Error::Transport {
            what: what.to_owned(),
            // The error's display never holds the URL's query (hyper-util says "client error
            // (Connect)" and its source the socket's words).
            why: std::error::Error::source(&e)
                .map(|s| format!("{e}: {s}"))
                .unwrap_or_else(|| e.to_string()),
        })
    }

    async fn failed(what: &str, resp: Response<hyper::body::Incoming>) -> S3Error {
        let status = resp.status().as_u16();
        // An error whose body cannot be read is still the status's error.
        let body = Self::text(what, resp).await.unwrap_or_default();
        let (code, message) = error_parts(&body);
        S3Error::Status {
            what: what.to_owned(),
            status,
            code,
            message,
        }
    }

    /// Lists every object under `prefix`, a page (at most 1,000) at a time; returns how many.
    pub async fn list(
        &self,
        prefix: &str,
        on_page: &mut (dyn FnMut(Vec<Object>) -> Result<(), S3Error> + Send),
    ) -> Result<u64, S3Error> {
        let what = format!("listing bucket {} under {prefix:?}", self.bucket.name());
        let mut token: Option<String> = None;
        let mut total = 0u64;
        loop {
            let mut action = ListObjectsV2::new(&self.bucket, Some(&self.credentials));
            // Keys as they are (XML-escaped): servers disagree on `encoding-type=url` (rclone
            // writes a space as `+` and leaves a `+` as it is, so the two cannot be told apart).
            action.query_mut().remove("encoding-type");
            if !prefix.is_empty() {
                action.with_prefix(prefix);
            }
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let url = action.sign(SIGNED_FOR);
            let resp = self
                .send(&what, Method::GET, url, &[], Bytes::new())
                .await?;
            if resp.status() != StatusCode::OK {
                return Err(Self::failed(&what, resp).await);
            }
            let text = Self::text(&what, resp).await?;
            let truncated = xml_text(&text, "IsTruncated").is_some_and(|t| t.trim() == "true");
            let page = ListObjectsV2::parse_response(&text).map_err(|e| S3Error::Answer {
                what: what.clone(),
                why: e.to_string(),
            })?;
            let encoded = page.encoding_type.as_deref() == Some("url");
            let mut objects = Vec::with_capacity(page.contents.len());
            for c in page.contents {
                let key = if encoded {
                    url_decoded(&c.key).map_err(|why| S3Error::Answer {
                        what: what.clone(),
                        why,
                    })?
                } else {
                    c.key
                };
                objects.push(Object {
                    key,
                    size: c.size,
                    etag: c.etag,
                    last_modified: c.last_modified,
                });
            }
            total += objects.len() as u64;
            let empty = objects.is_empty();
            on_page(objects)?;
            match page.next_continuation_token {
                // Some servers send a token on the last page too: an empty page that is not
                // said to be truncated ends the listing, and a token that comes back again
                // would never end it.
                Some(t) if !t.is_empty() && (truncated || !empty) => {
                    if token.as_deref() == Some(t.as_str()) {
                        return Err(S3Error::Answer {
                            what,
                            why: "the server gave the same continuation token twice".into(),
                        });
                    }
                    token = Some(t);
                }
                _ if truncated => {
                    // A listing cut short would look like objects deleted from the bucket.
                    return Err(S3Error::Answer {
                        what,
                        why: "the server says the listing goes on but gave no continuation token"
                            .into(),
                    });
                }
                _ => return Ok(total),
            }
        }
    }

    /// An object's metadata; `None` when there is no such object.
    pub async fn head(&self, key: &str) -> Result<Option<Metadata>, S3Error> {
        let what = format!("reading object {key:?}");
        self.object_url(key)?;
        let url = self
            .bucket
            .head_object(Some(&self.credentials), key)
            .sign(SIGNED_FOR);
        let resp = self
            .send(&what, Method::HEAD, url, &[], Bytes::new())
            .await?;
        match resp.status() {
            StatusCode::OK => Ok(Some(read_headers(resp.headers()))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(Self::failed(&what, resp).await),
        }
    }

    /// Streams an object's body into `sink`; its metadata (the size is the bytes written).
    /// The body is taken as stored: no `Accept-Encoding`, nothing decoded.
    pub async fn get(
        &self,
        key: &str,
        sink: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
    ) -> Result<Metadata, S3Error> {
        let what = format!("reading object {key:?}");
        self.object_url(key)?;
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(SIGNED_FOR);
        let resp = self
            .send(&what, Method::GET, url, &[], Bytes::new())
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(Self::failed(&what, resp).await);
        }
        let mut meta = read_headers(resp.headers());
        let mut body = resp.into_body();
        let mut written = 0u64;
        loop {
            let next = tokio::time::timeout(IDLE, body.frame())
                .await
                .map_err(|_| S3Error::Transport {
                    what: what.clone(),
                    why: format!("the body stalled for {} s", IDLE.as_secs()),
                })?;
            let Some(frame) = next else { break };
            let frame = frame.map_err(|e| S3Error::Transport {
                what: what.clone(),
                why: e.to_string(),
            })?;
            if let Some(data) = frame.data_ref() {
                sink.write_all(data).await.map_err(|e| S3Error::Transport {
                    what: what.clone(),
                    why: format!("writing the body: {e}"),
                })?;
                written += data.len() as u64;
            }
        }
        if written != meta.size {
            return Err(S3Error::Answer {
                what,
                why: format!(
                    "{written} bytes arrived but Content-Length said {}",
                    meta.size
                ),
            });
        }
        meta.size = written;
        Ok(meta)
    }

    /// Writes an object with its metadata (the user metadata and headers of `meta`; its size,
    /// ETag and Last-Modified are the server's); returns the new ETag.
    pub async fn put(&self, key: &str, meta: &Metadata, body: Bytes) -> Result<String, S3Error> {
        let what = format!("writing object {key:?}");
        self.object_url(key)?;
        let headers = write_headers(meta);
        let mut action = self.bucket.put_object(Some(&self.credentials), key);
        for (k, v) in &headers {
            action.headers_mut().insert(k.clone(), v.clone());
        }
        let url = action.sign(SIGNED_FOR);
        let resp = self.send(&what, Method::PUT, url, &headers, body).await?;
        if resp.status() != StatusCode::OK {
            return Err(Self::failed(&what, resp).await);
        }
        Ok(resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned())
    }

    /// Writes an object read from `source` in parts of `part_size` bytes (at least 5 MiB, as S3
    /// requires of every part but the last) by a multipart upload, with its metadata; returns the
    /// new ETag. Memory holds one part. An upload that fails is aborted, so no parts are left.
    pub async fn put_multipart(
        &self,
        key: &str,
        meta: &Metadata,
        source: &mut (dyn tokio::io::AsyncRead + Unpin + Send),
        part_size: usize,
    ) -> Result<String, S3Error> {
        let what = format!("writing object {key:?} in parts");
        self.object_url(key)?;
        let headers = write_headers(meta);
        let mut create = self
            .bucket
            .create_multipart_upload(Some(&self.credentials), key);
        for (k, v) in &headers {
            create.headers_mut().insert(k.clone(), v.clone());
        }
        let url = create.sign(SIGNED_FOR);
        let resp = self
            .send(&what, Method::POST, url, &headers, Bytes::new())
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(Self::failed(&what, resp).await);
        }
        let text = Self::text(&what, resp).await?;
        let upload_id = xml_text(&text, "UploadId")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| S3Error::Answer {
                what: what.clone(),
                why: "no UploadId in the answer".into(),
            })?;
        match self
            .upload_parts(&what, key, &upload_id, source, part_size.max(5 << 20))
            .await
        {
            Ok(etag) => Ok(etag),
            Err(e) => {
                let abort = self
                    .bucket
                    .abort_multipart_upload(Some(&self.credentials), key, &upload_id)
                    .sign(SIGNED_FOR);
                if let Err(a) = self
                    .send(&what, Method::DELETE, abort, &[], Bytes::new())
                    .await
                {
                    tracing::warn!(key, error = %a, "could not abort a failed multipart upload");
                }
                Err(e)
            }
        }
    }

    async fn upload_parts(
        &self,
        what: &str,
        key: &str,
        upload_id: &str,
        source: &mut (dyn tokio::io::AsyncRead + Unpin + Send),
        part_size: usize,
    ) -> Result<String, S3Error> {
        use tokio::io::AsyncReadExt;
        let mut etags: Vec<String> = Vec::new();
        let mut buf = vec![0u8; part_size];
        loop {
            let mut filled = 0;
            while filled < part_size {
                let n = source
                    .read(&mut buf[filled..])
                    .await
                    .map_err(|e| S3Error::Transport {
                        what: what.to_owned(),
                        why: format!("reading the object to write: {e}"),
                    })?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 && !etags.is_empty() {
                break;
            }
            let number = u16::try_from(etags.len() + 1)
                .ok()
                .filter(|n| *n <= MAX_PARTS)
                .ok_or_else(|| {
                    S3Error::Config(format!(
                        "{what}: more than {MAX_PARTS} parts: use a larger part size"
                    ))
                })?;
            let url = self
                .bucket
                .upload_part(Some(&self.credentials), key, number, upload_id)
                .sign(SIGNED_FOR);
            let resp = self
                .send(
                    what,
                    Method::PUT,
                    url,
                    &[],
                    Bytes::copy_from_slice(&buf[..filled]),
                )
                .await?;
            if resp.status() != StatusCode::OK {
                return Err(Self::failed(what, resp).await);
            }
            let etag = resp
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(String::from)
                .ok_or_else(|| S3Error::Answer {
                    what: what.to_owned(),
                    why: format!("part {number} has no ETag"),
                })?;
            etags.push(etag);
            if filled < part_size {
                break;
            }
        }
        let complete = self.bucket.complete_multipart_upload(
            Some(&self.credentials),
            key,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = complete.sign(SIGNED_FOR);
        let body = complete.body();
        let resp = self
            .send(what, Method::POST, url, &[], Bytes::from(body))
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(Self::failed(what, resp).await);
        }
        // S3 may answer 200 and still fail the completion in the body.
        let text = Self::text(what, resp).await?;
        if text.contains("<Error>") {
            let (code, message) = error_parts(&text);
            return Err(S3Error::Status {
                what: what.to_owned(),
                status: 200,
                code,
                message,
            });
        }
        Ok(xml_text(&text, "ETag").unwrap_or_default())
    }

    async fn text(what: &str, resp: Response<hyper::body::Incoming>) -> Result<String, S3Error> {
        let body = tokio::time::timeout(IDLE, resp.into_body().collect())
            .await
            .map_err(|_| S3Error::Transport {
                what: what.to_owned(),
                why: format!("the answer stalled for {} s", IDLE.as_secs()),
            })?
            .map_err(|e| S3Error::Transport {
                what: what.to_owned(),
                why: e.to_string(),
            })?
            .to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Deletes an object (a missing one is not an error, as in S3).
    pub async fn delete(&self, key: &str) -> Result<(), S3Error> {
        let what = format!("deleting object {key:?}");
        self.object_url(key)?;
        let url = self
            .bucket
            .delete_object(Some(&self.credentials), key)
            .sign(SIGNED_FOR);
        let resp = self
            .send(&what, Method::DELETE, url, &[], Bytes::new())
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(Self::failed(&what, resp).await)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_becomes_headers_and_comes_back() {
        let mut m = Metadata {
            content_type: Some("text/plain; charset=utf-8".into()),
            cache_control: Some("max-age=60".into()),
            ..Metadata::default()
        };
        m.user.insert("Owner".into(), "shop".into());
        let h = write_headers(&m);
        assert!(h.contains(&("content-type".into(), "text/plain; charset=utf-8".into())));
        assert!(h.contains(&("x-amz-meta-owner".into(), "shop".into())));
        let mut map = hyper::HeaderMap::new();
        for (k, v) in &h {
            map.insert(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map.insert("x-amz-meta-Mixed", "Case".parse().unwrap());
        map.insert("content-length", "12".parse().unwrap());
        let back = read_headers(&map);
        assert_eq!(back.size, 12);
        assert_eq!(back.content_type, m.content_type);
        assert_eq!(back.user.get("owner").map(String::as_str), Some("shop"));
        assert_eq!(back.user.get("mixed").map(String::as_str), Some("Case"));
    }

    #[test]
    fn errors_and_keys_read_plainly() {
        let (code, msg) = error_parts(
            "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The bucket does not exist</Message></Error>",
        );
        assert_eq!(code.as_deref(), Some("NoSuchBucket"));
        assert_eq!(msg, "The bucket does not exist");
        assert_eq!(url_decoded("a%2Bb+c%20d").unwrap(), "a+b+c d");
    }
}
