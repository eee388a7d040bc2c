//! The HTTP side: route by path, enforce limits, hand the raw bytes to the pipeline, map the
//! outcome to a status. Kept thin: every decision is in [`crate::pipeline`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::network;
use crate::pipeline::{Incoming, IngestError, Outcome, Pipeline};
use crate::sink::SinkError;

struct App {
    pipeline: Arc<Pipeline>,
    in_flight: Semaphore,
    max_body: usize,
    body_timeout: std::time::Duration,
}

/// Binds the webhook listener. Separate from [`serve`] so the caller learns the real address
/// (port 0) before anything is served, and a bind error ends start-up cleanly.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves webhooks until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    pipeline: Arc<Pipeline>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(pipeline).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// The webhook handler as a router: one fallback that routes by path, so it can be merged
/// under other routes (the gateway's `/v1/session`). Needs `ConnectInfo<SocketAddr>`: serve it
/// with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(pipeline: Arc<Pipeline>) -> axum::Router {
    let limits = pipeline.config().limits.clone();
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
    let Some(source) = app.pipeline.route(req.uri().path()) else {
        tracing::debug!(path = %req.uri().path(), "no source on this path");
        return status(StatusCode::NOT_FOUND, "not found\n");
    };
    let config = app.pipeline.config();
    let src = &config.sources[source];
    if !network::allowed(peer.ip(), req.headers(), &config.trusted_proxies, &src.allow_from) {
        tracing::info!(source = %src.name, %peer, "rejected: address not in allow_from");
        return status(StatusCode::FORBIDDEN, "forbidden\n");
    }
    // Some vendors (Intercom) probe a new endpoint with HEAD before saving it.
    if req.method() == Method::HEAD {
        return StatusCode::OK.into_response();
    }
    if req.method() != Method::POST {
        return status(StatusCode::METHOD_NOT_ALLOWED, "POST only\n");
    }
    let Ok(_permit) = app.in_flight.try_acquire() else {
        return retry_later("busy, retry later\n");
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > app.max_body) {
        return status(StatusCode::PAYLOAD_TOO_LARGE, "payload too large\n");
    }
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(app.body_timeout, Limited::new(body, app.max_body).collect());
    let bytes = match read.await {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return status(StatusCode::PAYLOAD_TOO_LARGE, "payload too large\n")
        }
        Ok(Err(_)) => return status(StatusCode::BAD_REQUEST, "could not read the body\n"),
        Err(_) => return status(StatusCode::REQUEST_TIMEOUT, "body not received in time\n"),
    };
    let pipeline = &app.pipeline;
    let name = &src.name;
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
            tracing::info!(source = %name, reason = %e, "rejected: verification failed");
            return status(StatusCode::UNAUTHORIZED, "unauthorized\n");
        }
        Err(e @ (IngestError::BadJson(_) | IngestError::Identify(_))) => {
            tracing::info!(source = %name, error = %e, "rejected: bad request");
            return status(StatusCode::BAD_REQUEST, "bad request\n");
        }
        Err(IngestError::Sink(e)) => return refused(name, e),
    };
    // The vendor hears 2xx only once the event is durable.
    if let Err(e) = receipt.wait().await {
        if let Outcome::Queued { delivery_id, .. } | Outcome::Folded { delivery_id } = &outcome {
            pipeline.release(source, delivery_id);
        }
        return refused(name, e);
    }
    match outcome {
        Outcome::Queued { delivery_id, reply } => {
            tracing::debug!(source = %name, %delivery_id, "stored");
            match reply {
                Some(reply) => replied(reply),
                None => accepted(),
            }
        }
        Outcome::Replied(reply) => {
            tracing::debug!(source = %name, "answered a vendor handshake");
            replied(reply)
        }
        Outcome::Folded { delivery_id } => {
            tracing::debug!(source = %name, %delivery_id, "folded by storm control into its group's digest");
            accepted()
        }
        Outcome::Filtered { reason } => {
            tracing::debug!(source = %name, %reason, "filtered out; not delivered");
            accepted()
        }
        Outcome::Duplicate { delivery_id } => {
            tracing::info!(source = %name, %delivery_id, "repeat of an accepted delivery; not delivered again");
            accepted()
        }
        outcome => {
            tracing::debug!(source = %name, ?outcome, "accepted, not delivered");
            accepted()
        }
    }
}

/// 503 with Retry-After: the vendor retries, nothing was accepted.
fn refused(source: &str, e: SinkError) -> Response {
    match e {
        SinkError::Full => {
            tracing::warn!(%source, "store or queue full; asking the sender to retry");
            retry_later("queue full, retry later\n")
        }
        SinkError::Failed => retry_later("cannot store the event, retry later\n"),
        SinkError::Closed => retry_later("shutting down\n"),
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
