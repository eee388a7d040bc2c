//! The HTTP side: route by path, enforce limits, hand the raw bytes to the pipeline, map the
//! outcome to a status. Kept thin: every decision is in [`crate::pipeline`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use tracing::Instrument;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::metrics::Outcome as Counted;
use crate::network;
use crate::pipeline::{Incoming, IngestError, Outcome, Pipeline};
use crate::sink::SinkError;
use crate::verify::VerifyError;

/// The pipeline in force; a config reload swaps in a new one while requests run on the old.
pub type Current = Arc<ArcSwap<Pipeline>>;

struct App {
    pipeline: Current,
    in_flight: Semaphore,
    max_body: usize,
    body_timeout: std::time::Duration,
}

/// Binds the webhook listener. Separate from [`serve`] so the caller learns the real address
/// (port 0) before anything is served, and a bind error ends start-up cleanly.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `app` (the webhook [`router`], usually merged with the operations endpoints)
/// until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// The webhook handler as a router: one fallback that routes by path, so it can be merged
/// under other routes (the gateway's `/v1/session`). Needs `ConnectInfo<SocketAddr>`: serve it
/// with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(pipeline: Arc<Pipeline>) -> axum::Router {
    swappable(Arc::new(ArcSwap::new(pipeline)))
}

/// [`router`] over a pipeline that can be replaced while serving (`hookwire serve` on
/// SIGHUP). The limits on concurrency, body size and time are the first pipeline's: they
/// size this listener and are not reloaded.
pub fn swappable(pipeline: Current) -> axum::Router {
    let limits = pipeline.load().config().limits.clone();
    let app = Arc::new(App {
        pipeline,
        in_flight: Semaphore::new(limits.max_concurrent_requests),
        max_body: limits.max_body_bytes,
        body_timeout: std::time::Duration::from_secs(limits.body_timeout_secs),
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
    let (response, counted) = webhook(&app, &pipeline, source, peer, req).instrument(span).await;
    if let Some(counted) = counted {
        pipeline.metrics(source).count(counted);
    }
    response
}

/// One request to `source`'s path: the response and how it is counted (HEAD: not at all).
async fn webhook(
    app: &App,
    pipeline: &Pipeline,
    source: usize,
    peer: SocketAddr,
    req: Request,
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
    let Ok(_permit) = app.in_flight.try_acquire() else {
        return (retry_later("busy, retry later\n"), Some(Counted::Throttled));
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > app.max_body) {
        return counted(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload too large\n",
            Counted::TooLarge,
        );
    }
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(app.body_timeout, Limited::new(body, app.max_body).collect());
    let bytes = match read.await {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return counted(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload too large\n",
                Counted::TooLarge,
            )
        }
        Ok(Err(_)) => {
            return counted(
                StatusCode::BAD_REQUEST,
                "could not read the body\n",
                Counted::BadRequest,
            )
        }
        Err(_) => {
            return counted(
                StatusCode::REQUEST_TIMEOUT,
                "body not received in time\n",
                Counted::Timeout,
            )
        }
    };
    let incoming = Incoming {
        headers: &parts.headers,
        body: &bytes,
        method: parts.method.as_str(),
        query: parts.uri.query(),
        now: SystemTime::now(),
    };
    let (outcome, receipt) = match pipeline.ingest(source, &incoming) {
        Ok(x) => x,
        Err(IngestError::Verify(e)) => {
            tracing::info!(reason = %e, "rejected: verification failed");
            let why = match e {
                VerifyError::Stale => Counted::Replay,
                _ => Counted::BadSignature,
            };
            return counted(StatusCode::UNAUTHORIZED, "unauthorized\n", why);
        }
        Err(e @ (IngestError::BadJson(_) | IngestError::Identify(_))) => {
            tracing::info!(error = %e, "rejected: bad request");
            return counted(StatusCode::BAD_REQUEST, "bad request\n", Counted::BadRequest);
        }
        Err(IngestError::Sink(e)) => return refused(e),
    };
    // The vendor hears 2xx only once the event is durable.
    let started = Instant::now();
    if let Err(e) = receipt.wait().await {
        if let Outcome::Queued { delivery_id, .. } | Outcome::Folded { delivery_id } = &outcome {
            pipeline.release(source, delivery_id);
        }
        return refused(e);
    }
    if matches!(outcome, Outcome::Queued { .. } | Outcome::Folded { .. }) {
        pipeline.metrics(source).committed(started.elapsed());
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
