//! Riding out an API server that restarts or sheds load: every request of the client is sent
//! again, with a rising pause, while the failure says the server could not take it (refused
//! connections, a connection cut before the answer, 429/503, a gateway's 502/504), for up to
//! [`PATIENCE`]. A request that may have been carried out is not sent again when doing it twice
//! could differ: a create or a stream (exec) only when the connection was refused. A server
//! that never answered this process (a wrong address, a cluster that is down) is not waited
//! for: the first failure is the answer. What to do is decided by [`next`], a pure function.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;

/// How long one request is tried again before its failure is the answer.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The first pause, doubled after each try up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// What a request is, for sending it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A read, or a write whose repetition does the same (replace with a resourceVersion,
    /// delete, merge patch): sent again after any failure of the server.
    Repeatable,
    /// A create: a second one after a lost answer would find the first (409).
    Create,
    /// An exec or attach stream: the command may have started.
    Stream,
}

impl Kind {
    /// The kind of a request by its method and headers.
    pub fn of(method: &Method, headers: &http::HeaderMap) -> Kind {
        if headers.contains_key(http::header::UPGRADE) {
            Kind::Stream
        } else if method == Method::POST {
            Kind::Create
        } else {
            Kind::Repeatable
        }
    }
}

/// How a try failed, as far as sending it again goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// It did not fail (any answer of the server's own, an error status included).
    None,
    /// No connection: the request was not sent.
    Refused,
    /// The connection failed after the request may have been sent.
    Cut,
    /// 429 or 503: the server did not take it (with its `Retry-After`, if any).
    Busy(Option<Duration>),
    /// 502 or 504 from a gateway in front of the server: it may have been carried out.
    Gateway,
}

impl Failure {
    /// The failure an answer's status means.
    pub fn of_status(status: StatusCode, retry_after: Option<&http::HeaderValue>) -> Failure {
        match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => Failure::Busy(
                retry_after
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs),
            ),
            StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => Failure::Gateway,
            _ => Failure::None,
        }
    }

    /// The failure a client error means (an API error status is an answer: [`Failure::None`]).
    pub fn of_error(e: &kube::Error) -> Failure {
        match e {
            kube::Error::Service(inner) => {
                match inner.downcast_ref::<hyper_util::client::legacy::Error>() {
                    Some(l) if l.is_connect() => Failure::Refused,
                    _ => Failure::Cut,
                }
            }
            kube::Error::HyperError(_) => Failure::Cut,
            _ => Failure::None,
        }
    }
}

/// Whether to send a request again, and after what pause: `tries` made so far (≥ 1), `since`
/// the first failed, `answered` whether the server has ever answered this process.
pub fn next(
    kind: Kind,
    failure: &Failure,
    answered: bool,
    tries: u32,
    since: Duration,
) -> Option<Duration> {
    let again = match failure {
        Failure::None => false,
        Failure::Refused => true,
        Failure::Busy(_) => kind != Kind::Stream,
        Failure::Cut | Failure::Gateway => kind == Kind::Repeatable,
    };
    if !again || !answered {
        return None;
    }
    let rising = FIRST_PAUSE
        .saturating_mul(2u32.saturating_pow(tries.saturating_sub(1)))
        .min(MAX_PAUSE);
    let pause = match failure {
        Failure::Busy(Some(after)) => (*after).min(MAX_PAUSE * 2),
        _ => rising,
    };
    (since + pause <= PATIENCE).then_some(pause)
}

/// The client's service: each request through `inner` (the client kube builds from the
/// config), sent again as [`next`] says.
#[derive(Clone)]
pub struct Retrying {
    inner: kube::Client,
    /// The server has answered this process at least once.
    answered: Arc<AtomicBool>,
    /// A request is being tried again now (one warning per outage).
    waiting: Arc<AtomicBool>,
}

impl Retrying {
    /// A client whose requests go through `inner` and are sent again while the server is away.
    pub fn client(inner: kube::Client, default_namespace: String) -> kube::Client {
        let service = Retrying {
            inner,
            answered: Arc::default(),
            waiting: Arc::default(),
        };
        kube::Client::new(service, default_namespace)
    }
}

/// A copy of a request to send again (`None` for a streaming body, which is never the case for
/// the requests kube builds).
fn copy(req: &Request<Body>) -> Option<Request<Body>> {
    let mut r = Request::new(req.body().try_clone()?);
    *r.method_mut() = req.method().clone();
    *r.uri_mut() = req.uri().clone();
    *r.version_mut() = req.version();
    *r.headers_mut() = req.headers().clone();
    *r.extensions_mut() = req.extensions().clone();
    Some(r)
}

impl tower_service::Service<Request<Body>> for Retrying {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, kube::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), kube::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let me = self.clone();
        Box::pin(async move {
            let kind = Kind::of(req.method(), req.headers());
            let mut first_failure: Option<Instant> = None;
            let mut tries = 0u32;
            loop {
                let Some(this) = copy(&req) else {
                    return me.inner.send(req).await;
                };
                tries += 1;
                let outcome = me.inner.send(this).await;
                let failure = match &outcome {
                    Ok(r) => {
                        Failure::of_status(r.status(), r.headers().get(http::header::RETRY_AFTER))
                    }
                    Err(e) => Failure::of_error(e),
                };
                if failure == Failure::None
                    || matches!(failure, Failure::Busy(_) | Failure::Gateway)
                {
                    me.answered.store(true, Ordering::SeqCst);
                }
                let since = first_failure.get_or_insert_with(Instant::now).elapsed();
                let answered = me.answered.load(Ordering::SeqCst);
                let Some(pause) = next(kind, &failure, answered, tries, since) else {
                    if failure == Failure::None && me.waiting.swap(false, Ordering::SeqCst) {
                        tracing::info!("the API server answers again");
                    }
                    return outcome;
                };
                if !me.waiting.swap(true, Ordering::SeqCst) {
                    let why = match &outcome {
                        Ok(r) => format!("HTTP {}", r.status()),
                        Err(e) => e.to_string(),
                    };
                    tracing::warn!(
                        error = %why,
                        "the API server did not take a request; trying again for up to {}",
                        crate::model::units::HumanDuration(PATIENCE)
                    );
                }
                tokio::time::sleep(pause).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Kind; 3] = [Kind::Repeatable, Kind::Create, Kind::Stream];

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_answer_of_the_servers_own_is_never_sent_again() {
        for kind in ALL {
            assert_eq!(next(kind, &Failure::None, true, 1, ms(0)), None);
        }
        for s in [200, 201, 404, 409, 422, 500] {
            assert_eq!(
                Failure::of_status(StatusCode::from_u16(s).unwrap(), None),
                Failure::None,
                "{s}"
            );
        }
    }

    #[test]
    fn a_refused_connection_is_tried_again_for_every_kind_with_a_rising_pause() {
        for kind in ALL {
            let pauses: Vec<_> = (1..=8)
                .map(|t| next(kind, &Failure::Refused, true, t, ms(0)).unwrap())
                .collect();
            assert_eq!(
                pauses,
                [100, 200, 400, 800, 1600, 3200, 5000, 5000].map(ms),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn a_cut_or_a_gateway_error_repeats_only_what_can_be_repeated() {
        for f in [Failure::Cut, Failure::Gateway] {
            assert_eq!(next(Kind::Repeatable, &f, true, 1, ms(0)), Some(ms(100)));
            assert_eq!(next(Kind::Create, &f, true, 1, ms(0)), None, "{f:?}");
            assert_eq!(next(Kind::Stream, &f, true, 1, ms(0)), None, "{f:?}");
        }
    }

    #[test]
    fn a_busy_server_is_asked_again_after_its_retry_after_but_a_stream_is_not() {
        let busy = Failure::of_status(
            StatusCode::TOO_MANY_REQUESTS,
            Some(&http::HeaderValue::from_static("3")),
        );
        assert_eq!(busy, Failure::Busy(Some(Duration::from_secs(3))));
        assert_eq!(
            next(Kind::Create, &busy, true, 1, ms(0)),
            Some(Duration::from_secs(3))
        );
        assert_eq!(next(Kind::Stream, &busy, true, 1, ms(0)), None);
        let long = Failure::Busy(Some(Duration::from_secs(3600)));
        assert_eq!(
            next(Kind::Repeatable, &long, true, 1, ms(0)),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            Failure::of_status(StatusCode::SERVICE_UNAVAILABLE, None),
            Failure::Busy(None)
        );
        assert_eq!(
            next(Kind::Repeatable, &Failure::Busy(None), true, 2, ms(0)),
            Some(ms(200))
        );
    }

    #[test]
    fn patience_ends_the_tries() {
        let f = Failure::Refused;
        assert_eq!(
            next(Kind::Repeatable, &f, true, 20, PATIENCE - ms(5000)),
            Some(ms(5000))
        );
        assert_eq!(
            next(Kind::Repeatable, &f, true, 20, PATIENCE - ms(4999)),
            None
        );
    }

    #[test]
    fn a_server_that_never_answered_is_not_waited_for() {
        for kind in ALL {
            assert_eq!(next(kind, &Failure::Refused, false, 1, ms(0)), None);
        }
    }

    #[test]
    fn kinds_by_method_and_upgrade() {
        let none = http::HeaderMap::new();
        let mut up = http::HeaderMap::new();
        up.insert(
            http::header::UPGRADE,
            http::HeaderValue::from_static("websocket"),
        );
        assert_eq!(Kind::of(&Method::GET, &none), Kind::Repeatable);
        for m in [Method::PUT, Method::PATCH, Method::DELETE] {
            assert_eq!(Kind::of(&m, &none), Kind::Repeatable);
        }
        assert_eq!(Kind::of(&Method::POST, &none), Kind::Create);
        assert_eq!(Kind::of(&Method::GET, &up), Kind::Stream);
    }

    #[test]
    fn errors_that_are_answers_are_not_failures() {
        let api = kube::Error::Api(
            kube::core::Status::failure("not found", "NotFound")
                .with_code(404)
                .boxed(),
        );
        assert_eq!(Failure::of_error(&api), Failure::None);
    }
}
