//! The HTTP side of a webhook: route by path, refuse what can be refused before the body is
//! read, read the body within its bounds, hand the raw bytes to the pipeline, and map the
//! outcome to a status. Every decision about the event itself is in
//! [`crate::pipeline`].
//!
//! What a stranger can make hookwire hold before a request is verified is bounded here:
//! - a request without the source's signature or token, or with a malformed one, is answered
//!   401 from its headers alone ([`crate::verify::Verifier::precheck`]); its body is never read;
//! - a body larger than the source's limit is refused (413) from its `Content-Length`, or as
//!   soon as it grows past it;
//! - the bytes of all bodies being read at once come out of one budget
//!   (`limits.body_budget_bytes`); a request that would go over gets 503 with Retry-After;
//! - a body must keep up a minimum pace (`limits.min_body_bytes_per_sec` after a short grace)
//!   and arrive within `limits.body_timeout_secs`, else 408.
//!
//! Connection counts, header and idle timeouts are the listener's ([`crate::http`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::metrics::Outcome as Counted;
use crate::network;
use crate::pipeline::{Incoming, IngestError, Outcome, Pipeline};
use crate::sink::SinkError;
use crate::verify::VerifyError;

/// The pipeline in force; a config reload swaps in a new one while requests run on the old.
pub type Current = Arc<ArcSwap<Pipeline>>;

/// A body's first seconds, before its pace is checked: a sender's first packets may wait
/// for a congestion window.
const PACE_GRACE: Duration = Duration::from_secs(2);
/// Budget taken at once for a body without `Content-Length`, so a chunked body does not
/// go back to the budget for every chunk.
const BUDGET_STEP: usize = 64 * 1024;

struct App {
    pipeline: Current,
    /// Bytes of unverified bodies being held (`limits.body_budget_bytes`).
    budget: Arc<Semaphore>,
    body_timeout: Duration,
    min_rate: usize,
}

/// Binds the webhook listener. Separate from serving so the caller learns the real address
/// (port 0) before anything is served, and a bind error ends start-up cleanly.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// The webhook handler as a router: one fallback that routes by path, so it can be merged
/// under other routes (the gateway's `/v1/session`). Serve it with [`crate::http::serve`],
/// which gives handlers the client's address.
pub fn router(pipeline: Arc<Pipeline>) -> axum::Router {
    swappable(Arc::new(ArcSwap::new(pipeline)))
}

/// [`router`] over a pipeline that can be replaced while serving (`hookwire serve` on
/// SIGHUP). The limits on concurrency, body budget, pace and time are the first pipeline's:
/// they size this listener and are not reloaded.
pub fn swappable(pipeline: Current) -> axum::Router {
    let limits = pipeline.load().config().limits.clone();
    let app = Arc::new(App {
        pipeline,
        budget: Arc::new(Semaphore::new(limits.body_budget_bytes.min(u32::MAX as usize))),
        body_timeout: Duration::from_secs(limits.body_timeout_secs),
        min_rate: limits.min_body_bytes_per_sec,
    });
    axum::Router::new().fallback(handle).with_state(app)
}

fn status(code: StatusCode, text: &'static str) -> Response {
    (code, text).into_response()
}

fn retry_later(text: &'static str) -> Response {
    let mut r = status(StatusCode::SERVICE_UNAVAILABLE, text);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

async fn handle(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let pipeline = app.pipeline.load_full();
    let Some(source) = pipeline.route(req.uri().path()) else {
        tracing::debug!(path = %req.uri().path(), "no source on this path");
        return status(StatusCode::NOT_FOUND, "not found\n");
    };
    let span = tracing::info_span!(
        "webhook",
        source = %pipeline.config().sources[source].name,
        event = tracing::field::Empty,
        delivery_id = tracing::field::Empty,
    );
    let mut named = Named::default();
    let (response, counted) = webhook(&app, &pipeline, source, peer, req, &mut named)
        .instrument(span)
        .await;
    if let Some(counted) = counted {
        pipeline.metrics(source).count(counted);
        crate::metrics::publish(|| crate::metrics::Observed {
            at_ms: crate::verify::timestamp::millis(SystemTime::now()),
            source: pipeline.config().sources[source].name.clone(),
            outcome: counted,
            delivery_id: named.delivery_id,
            detail: named.detail,
        });
    }
    response
}

/// What a request's outcome named, for [`crate::metrics::publish`].
#[derive(Default)]
struct Named {
    delivery_id: Option<String>,
    detail: Option<String>,
}

/// One request to `source`'s path: the response and how it is counted (HEAD: not at all).
async fn webhook(
    app: &App,
    pipeline: &Arc<Pipeline>,
    source: usize,
    peer: SocketAddr,
    req: Request,
    named: &mut Named,
) -> (Response, Option<Counted>) {
    let config = pipeline.config();
    let src = &config.sources[source];
    if !network::allowed(peer.ip(), req.headers(), &config.trusted_proxies, &src.allow_from) {
        tracing::info!(%peer, "rejected: address not in allow_from");
        return counted(StatusCode::FORBIDDEN, "forbidden\n", Counted::Forbidden);
    }
    // Some vendors (Intercom) probe a new endpoint with HEAD before saving it.
    if req.method() == Method::HEAD {
        return (StatusCode::OK.into_response(), None);
    }
    if req.method() != Method::POST {
        return counted(StatusCode::METHOD_NOT_ALLOWED, "POST only\n", Counted::BadRequest);
    }
    let now = SystemTime::now();
    let (parts, body) = req.into_parts();
    let query = parts.uri.query().map(str::to_owned);
    if let Err(e) = pipeline.precheck(
        source,
        &parts.headers,
        parts.method.as_str(),
        query.as_deref(),
        now,
    ) {
        return unverified(e, "before reading the body");
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let bytes = match read_body(app, body, src.max_body_bytes, declared).await {
        Ok(b) => b,
        Err(e) => return e.response(),
    };
    let incoming = OwnedIncoming {
        headers: parts.headers,
        body: bytes.body,
        method: parts.method,
        query,
        now,
    };
    // Verification, parsing, the filter and the templates are CPU work on bytes a stranger
    // chose: the pipeline runs them on its pool unless they are known to be short.
    let ingested = pipeline.clone().ingest(source, incoming).await;
    // The body is verified (or refused): it no longer counts against the unverified budget.
    drop(bytes.budget);
    let outcome = match ingested {
        Ok(x) => x,
        Err(IngestError::Verify(e)) => return unverified(e, "verification failed"),
        Err(e @ (IngestError::BadJson(_) | IngestError::Identify(_))) => {
            tracing::info!(error = %e, "rejected: bad request");
            return counted(StatusCode::BAD_REQUEST, "bad request\n", Counted::BadRequest);
        }
        Err(IngestError::Busy) => {
            tracing::warn!("too many requests of this source at once; asking the sender to retry");
            return (retry_later("busy, retry later\n"), Some(Counted::Throttled));
        }
        Err(IngestError::Sink(e)) => return refused(e),
    };
    // Here the event is durable: the vendor may hear 2xx.
    match &outcome {
        Outcome::Queued { delivery_id, .. }
        | Outcome::Folded { delivery_id }
        | Outcome::Duplicate { delivery_id } => named.delivery_id = Some(delivery_id.clone()),
        Outcome::Filtered { reason } => named.detail = Some(reason.clone()),
        _ => {}
    }
    match outcome {
        Outcome::Queued { reply, .. } => {
            tracing::debug!("stored");
            let response = match reply {
                Some(reply) => replied(reply),
                None => accepted(),
            };
            (response, Some(Counted::Accepted))
        }
        Outcome::Replied(reply) => {
            tracing::debug!("answered a vendor handshake");
            (replied(reply), Some(Counted::Acknowledged))
        }
        Outcome::Folded { .. } => {
            tracing::debug!("folded by storm control into its group's digest");
            (accepted(), Some(Counted::Folded))
        }
        Outcome::Filtered { reason } => {
            tracing::debug!(%reason, "filtered out; not delivered");
            (accepted(), Some(Counted::Filtered))
        }
        Outcome::Duplicate { .. } => {
            tracing::info!("repeat of an accepted delivery; not delivered again");
            (accepted(), Some(Counted::Replay))
        }
        outcome => {
            tracing::debug!(?outcome, "accepted, not delivered");
            (accepted(), Some(Counted::Acknowledged))
        }
    }
}

/// A request as the pipeline's pool takes it: owned, so it can cross to another thread.
#[derive(Debug)]
pub struct OwnedIncoming {
    /// The headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
    /// The HTTP method.
    pub method: Method,
    /// The query string as received (no `?`).
    pub query: Option<String>,
    /// Arrival time.
    pub now: SystemTime,
}

impl OwnedIncoming {
    /// The borrowed view the pipeline's steps take.
    pub fn view(&self) -> Incoming<'_> {
        Incoming {
            headers: &self.headers,
            body: &self.body,
            method: self.method.as_str(),
            query: self.query.as_deref(),
            now: self.now,
        }
    }
}

/// 401 for a request that failed verification, at `when`; the kind goes to the log and the
/// count, never to the sender. When the vendor's own keys could not be fetched nothing was
/// judged: 503, so the vendor retries (SNS retries only 5xx).
fn unverified(e: VerifyError, when: &'static str) -> (Response, Option<Counted>) {
    if e == VerifyError::KeysUnavailable {
        tracing::warn!(reason = %e, when, "not verified yet: answered 503 so the vendor retries");
        return (
            retry_later("signing keys unavailable, retry later\n"),
            Some(Counted::Throttled),
        );
    }
    tracing::info!(reason = %e, when, "rejected: verification failed");
    let why = match e {
        VerifyError::Stale => Counted::Replay,
        _ => Counted::BadSignature,
    };
    counted(StatusCode::UNAUTHORIZED, "unauthorized\n", why)
}

/// A body read within its bounds, and the budget it holds until it is verified.
struct ReadBody {
    body: Bytes,
    budget: Option<OwnedSemaphorePermit>,
}

/// Why a body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyError {
    /// Over the source's limit.
    TooLarge,
    /// Not complete within `body_timeout_secs`.
    Timeout,
    /// Below the minimum pace.
    TooSlow,
    /// The unverified-body budget cannot hold it now.
    Budget,
    /// The connection broke mid-body.
    Broken,
}

impl BodyError {
    fn response(self) -> (Response, Option<Counted>) {
        match self {
            BodyError::TooLarge => counted(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload too large\n",
                Counted::TooLarge,
            ),
            BodyError::Timeout => counted(
                StatusCode::REQUEST_TIMEOUT,
                "body not received in time\n",
                Counted::Timeout,
            ),
            BodyError::TooSlow => {
                tracing::info!("rejected: body arriving below the minimum pace");
                counted(StatusCode::REQUEST_TIMEOUT, "body too slow\n", Counted::Timeout)
            }
            BodyError::Budget => {
                tracing::warn!("unverified request bodies at their budget; asking the sender to retry");
                (retry_later("busy, retry later\n"), Some(Counted::Throttled))
            }
            BodyError::Broken => counted(
                StatusCode::BAD_REQUEST,
                "could not read the body\n",
                Counted::BadRequest,
            ),
        }
    }
}

/// Takes `bytes` more of the budget into `held`.
fn reserve(
    budget: &Arc<Semaphore>,
    held: &mut Option<OwnedSemaphorePermit>,
    bytes: usize,
) -> Result<(), BodyError> {
    if bytes == 0 {
        return Ok(());
    }
    let n = u32::try_from(bytes).map_err(|_| BodyError::Budget)?;
    let more = budget
        .clone()
        .try_acquire_many_owned(n)
        .map_err(|_| BodyError::Budget)?;
    match held {
        Some(h) => h.merge(more),
        None => *held = Some(more),
    }
    Ok(())
}

/// Reads a body of at most `max` bytes within the budget, the pace and the time allowed.
async fn read_body(
    app: &App,
    mut body: Body,
    max: usize,
    declared: Option<usize>,
) -> Result<ReadBody, BodyError> {
    if declared.is_some_and(|n| n > max) {
        return Err(BodyError::TooLarge);
    }
    let mut held = None;
    let mut reserved = 0;
    if let Some(n) = declared {
        reserve(&app.budget, &mut held, n)?;
        reserved = n;
    }
    let start = tokio::time::Instant::now();
    let hard = start + app.body_timeout;
    let mut buf = Gathered::default();
    loop {
        // The moment the body would fall below the minimum pace.
        let behind =
            start + PACE_GRACE + Duration::from_secs_f64(buf.len() as f64 / app.min_rate.max(1) as f64);
        let deadline = behind.min(hard);
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(None) => break,
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Err(_) if deadline == hard => return Err(BodyError::Timeout),
            Err(_) => return Err(BodyError::TooSlow),
        };
        let Ok(data) = frame.into_data() else { continue };
        let total = buf.len() + data.len();
        if total > max {
            return Err(BodyError::TooLarge);
        }
        if total > reserved {
            let step = (total - reserved).max(BUDGET_STEP).min(max - reserved);
            reserve(&app.budget, &mut held, step)?;
            reserved += step;
        }
        buf.push(data, declared.unwrap_or(0));
    }
    Ok(ReadBody {
        body: buf.freeze(),
        budget: held,
    })
}

/// A body as its frames arrive. A body that arrives in one frame, as most webhooks do, is
/// kept as hyper read it, not copied; a second frame starts a buffer holding both.
#[derive(Default)]
struct Gathered {
    first: Bytes,
    more: Option<BytesMut>,
}

impl Gathered {
    fn len(&self) -> usize {
        self.more.as_ref().map_or(self.first.len(), BytesMut::len)
    }

    /// Appends a frame; `declared` (the Content-Length, when sent) sizes the buffer.
    fn push(&mut self, data: Bytes, declared: usize) {
        if data.is_empty() {
            return;
        }
        match &mut self.more {
            Some(more) => more.extend_from_slice(&data),
            None if self.first.is_empty() => self.first = data,
            // A second frame: from here on the body is gathered in a buffer of its own.
            None => {
                let mut more = BytesMut::with_capacity(declared.max(self.first.len() + data.len()));
                more.extend_from_slice(&self.first);
                more.extend_from_slice(&data);
                self.first = Bytes::new();
                self.more = Some(more);
            }
        }
    }

    fn freeze(self) -> Bytes {
        self.more.map_or(self.first, BytesMut::freeze)
    }
}

fn counted(code: StatusCode, text: &'static str, why: Counted) -> (Response, Option<Counted>) {
    (status(code, text), Some(why))
}

/// 503 with Retry-After: the vendor retries, nothing was accepted.
fn refused(e: SinkError) -> (Response, Option<Counted>) {
    match e {
        SinkError::Full => {
            tracing::warn!("store or queue full; asking the sender to retry");
            (retry_later("queue full, retry later\n"), Some(Counted::Throttled))
        }
        SinkError::Failed => (
            retry_later("cannot store the event, retry later\n"),
            Some(Counted::Failed),
        ),
        SinkError::Closed => (retry_later("shutting down\n"), Some(Counted::Failed)),
    }
}

fn replied(reply: crate::adapter::Reply) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, reply.content_type)
        .body(Body::from(reply.body))
        .expect("valid response")
}

fn accepted() -> Response {
    Response::builder()
        .status(StatusCode::ACCEPTED)
        .body(Body::from("accepted\n"))
        .expect("static response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_in_one_frame_is_kept_and_frames_are_joined_in_order() {
        let whole = Bytes::from_static(b"{\"whole\":1}");
        let mut one = Gathered::default();
        one.push(whole.clone(), whole.len());
        assert_eq!(one.len(), whole.len());
        let kept = one.freeze();
        assert_eq!(kept, whole);
        assert_eq!(kept.as_ptr(), whole.as_ptr(), "not copied");

        let mut many = Gathered::default();
        for (i, part) in ["ab", "", "cde", "f"].into_iter().enumerate() {
            many.push(Bytes::from(part), 0);
            assert_eq!(many.len(), ["ab", "ab", "abcde", "abcdef"][i].len());
        }
        assert_eq!(many.freeze(), Bytes::from_static(b"abcdef"));
        assert_eq!(Gathered::default().freeze(), Bytes::new(), "no frame, no body");
    }
}
