//! A remote session's event stream (`GET /mcp`, [`super::mcp`]): Server-Sent Events, one
//! `notifications/claude/channel` each, with `id:` the event's store id, its place in the
//! token's stream.
//!
//! **When an event counts as delivered.** SSE has no acknowledgement, and Claude Code's
//! health checks (`claude mcp list`, `claude mcp get`, the start-up probe) open the stream
//! and drop it within milliseconds (channel-contract §10c), so:
//!
//! 1. a stream is written no event until the session has sent `notifications/initialized`
//!    and the stream has stayed open [`SETTLE`] (as on stdio): a health check gets nothing;
//! 2. an event written to a stream counts as delivered once the stream has stayed open
//!    [`SETTLE`] after it was handed to the connection: the session's position and the
//!    token's cursor in the store then move past it;
//! 3. a `GET` with `Last-Event-ID: N` says the client has everything up to `N`: it counts as
//!    delivered at once, and the stream resumes after `N`, even where rule 2 had already
//!    counted more (those are sent again), but never before where the session began.
//!
//! So a session sees an event twice only when it was written to a stream that dropped
//! within [`SETTLE`] of it *and* the client's reconnection carries no `Last-Event-ID` that
//! covers it (Claude Code sends the last id it received, so with it there is no repeat). A
//! new session (a new `initialize`) starts at the token's cursor, so it receives again what
//! the previous one was written but not counted as delivered. Two sessions of one token each
//! receive every event.
//!
//! Bounds: one stream per session (a new `GET` ends the old one); a chunk the client does not
//! take within [`WRITE_TIMEOUT`] ends the stream; a comment every [`KEEPALIVE`] keeps proxies
//! from timing the stream out and finds dead connections.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::mcp::McpSession;
use super::Gateway;
use crate::channel::SETTLE;
use crate::store::{Store, Stored, Subscription};

/// Events read from the store at once.
const READ_PAGE: usize = 256;
/// A comment line this often keeps the stream alive through proxies.
pub const KEEPALIVE: Duration = Duration::from_secs(15);
/// A stream whose client takes no chunk for this long is ended.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// One SSE event: `id:` the store id, `data:` the stored notification line (one line of
/// compact JSON; a line holding CR or LF could not be framed and is skipped).
fn sse_event(e: &Stored) -> Option<Bytes> {
    let line = e.line.strip_suffix(b"\n").unwrap_or(&e.line);
    if line.iter().any(|&b| b == b'\n' || b == b'\r')
        || serde_json::from_slice::<serde_json::Value>(line).is_err()
    {
        return None;
    }
    let mut out = Vec::with_capacity(line.len() + 32);
    out.extend_from_slice(format!("id: {}\nevent: message\ndata: ", e.seq).as_bytes());
    out.extend_from_slice(line);
    out.extend_from_slice(b"\n\n");
    Some(Bytes::from(out))
}

/// Answers a `GET` with the session's stream, resuming after `last_event_id` when it is one
/// of the token's stream's ids, else after the session's position.
pub(super) fn open(gw: &Arc<Gateway>, session: Arc<McpSession>, last_event_id: Option<u64>) -> Response {
    let head = gw.store.head();
    let start = match last_event_id {
        // Beyond the head: an id of another event log (the database was replaced).
        Some(n) if n <= head => {
            let n = n.max(session.floor);
            // The client has everything up to n, and no more: a later stream without
            // Last-Event-ID resumes here too.
            session.position.store(n, Ordering::SeqCst);
            gw.store.ack(&session.token.name, n);
            n
        }
        _ => session.position.load(Ordering::SeqCst),
    };
    session.stream.send_modify(|g| *g += 1);
    let generation = *session.stream.borrow();
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    tracing::info!(subscriber = %session.token.name, resume_after = start, resumed = last_event_id.is_some(), "remote channel stream opened");
    tokio::spawn(stream(gw.store.clone(), session, generation, start, tx));
    response(rx)
}

/// A `text/event-stream` response whose body is what arrives on `rx` (each chunk one or more
/// whole events), ending when its sender is dropped.
pub(crate) fn response(rx: mpsc::Receiver<Bytes>) -> Response {
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    }));
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    // nginx: pass each event on at once rather than buffering the response.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

/// Why a stream's task stops.
enum Stop {
    /// The client went, or took nothing for too long.
    Gone,
    /// The session ended or a newer stream took over.
    Replaced,
    /// The store failed.
    Store,
}

/// Writes the session's events to `tx` until the client goes, a newer stream of the session
/// takes over or the session ends; counts them delivered as the module doc says.
async fn stream(
    store: Arc<dyn Store>,
    session: Arc<McpSession>,
    generation: u64,
    mut pos: u64,
    tx: mpsc::Sender<Bytes>,
) {
    session.streaming.fetch_add(1, Ordering::SeqCst);
    crate::metrics::session_connected(1.0);
    let opened = Instant::now();
    let why = run(&store, &session, generation, &mut pos, opened, &tx).await;
    session.streaming.fetch_sub(1, Ordering::SeqCst);
    crate::metrics::session_connected(-1.0);
    let lasted = opened.elapsed();
    match why {
        Stop::Gone => {
            tracing::info!(subscriber = %session.token.name, ?lasted, "remote channel stream closed by the client")
        }
        Stop::Replaced => tracing::debug!(subscriber = %session.token.name, "remote channel stream ended"),
        Stop::Store => {
            tracing::error!(subscriber = %session.token.name, "store read failed; ending the remote channel stream")
        }
    }
}

async fn run(
    store: &Arc<dyn Store>,
    session: &Arc<McpSession>,
    generation: u64,
    pos: &mut u64,
    opened: Instant,
    tx: &mpsc::Sender<Bytes>,
) -> Stop {
    let mut end = session.end.subscribe();
    let mut streams = session.stream.subscribe();
    let mut ready = session.ready.subscribe();
    let replaced = |streams: &tokio::sync::watch::Receiver<u64>,
                    end: &tokio::sync::watch::Receiver<Option<super::mcp::Ended>>| {
        *streams.borrow() != generation || end.borrow().is_some()
    };
    // 1. Nothing until initialized, and the stream has stayed open SETTLE.
    let ready_at = loop {
        if replaced(&streams, &end) {
            return Stop::Replaced;
        }
        if let Some(t) = *ready.borrow_and_update() {
            break t;
        }
        tokio::select! {
            _ = ready.changed() => {}
            _ = streams.changed() => {}
            _ = end.changed() => {}
            _ = tx.closed() => return Stop::Gone,
        }
    };
    let settled = tokio::time::Instant::from_std(opened.max(ready_at) + SETTLE);
    tokio::select! {
        _ = tokio::time::sleep_until(settled) => {}
        _ = streams.changed() => return Stop::Replaced,
        _ = end.changed() => return Stop::Replaced,
        _ = tx.closed() => return Stop::Gone,
    }
    let sub = Subscription {
        name: session.token.name.clone(),
        sources: session.token.sources.clone(),
    };
    let mut heads = store.head_watch();
    // Written, not yet counted delivered: (when it counts, how far).
    let mut pending: VecDeque<(tokio::time::Instant, u64)> = VecDeque::new();
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    loop {
        if replaced(&streams, &end) {
            return Stop::Replaced;
        }
        // Send what the store has.
        while *pos < store.head() {
            let (s, sb, after) = (store.clone(), sub.clone(), *pos);
            let batch = match tokio::task::spawn_blocking(move || s.read_after(&sb, after, READ_PAGE)).await {
                Ok(Ok(b)) => b,
                _ => return Stop::Store,
            };
            if batch.through <= *pos {
                break;
            }
            for e in &batch.events {
                let Some(chunk) = sse_event(e) else {
                    tracing::error!(
                        seq = e.seq,
                        "stored notification cannot be an SSE event; skipping it"
                    );
                    continue;
                };
                if let Some(stop) = send(tx, chunk, &mut streams, &mut end).await {
                    return stop;
                }
            }
            *pos = batch.through;
            pending.push_back((tokio::time::Instant::now() + SETTLE, batch.through));
        }
        let due = pending.front().map(|&(t, _)| t);
        tokio::select! {
            _ = async { tokio::time::sleep_until(due.expect("checked")).await }, if due.is_some() => {
                if tx.is_closed() {
                    return Stop::Gone;
                }
                if replaced(&streams, &end) {
                    return Stop::Replaced;
                }
                let now = tokio::time::Instant::now();
                let mut through = None;
                while let Some(&(t, p)) = pending.front() {
                    if t > now {
                        break;
                    }
                    through = Some(p);
                    pending.pop_front();
                }
                if let Some(p) = through {
                    session.position.fetch_max(p, Ordering::SeqCst);
                    store.ack(&sub.name, p);
                }
            }
            r = heads.changed() => if r.is_err() {
                return Stop::Replaced;
            },
            _ = keepalive.tick() => {
                if let Some(stop) = send(tx, Bytes::from_static(b": keepalive\n\n"), &mut streams, &mut end).await {
                    return stop;
                }
            }
            _ = streams.changed() => {}
            _ = end.changed() => {}
            _ = tx.closed() => return Stop::Gone,
        }
    }
}

/// Hands one chunk to the connection; `Some` when the stream must stop instead.
async fn send(
    tx: &mpsc::Sender<Bytes>,
    chunk: Bytes,
    streams: &mut tokio::sync::watch::Receiver<u64>,
    end: &mut tokio::sync::watch::Receiver<Option<super::mcp::Ended>>,
) -> Option<Stop> {
    tokio::select! {
        r = tokio::time::timeout(WRITE_TIMEOUT, tx.send(chunk)) => match r {
            Ok(Ok(())) => None,
            _ => Some(Stop::Gone),
        },
        _ = streams.changed() => Some(Stop::Replaced),
        _ = end.changed() => Some(Stop::Replaced),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_one_sse_event_with_its_store_id() {
        let e = Stored {
            seq: 42,
            source: "github".into(),
            event: "issues.opened".into(),
            delivery_id: "d".into(),
            received_ms: 0,
            line: b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/claude/channel\",\"params\":{\"content\":\"a\\nb\"}}\n".to_vec(),
            folded: false,
            target: None,
        };
        assert_eq!(
            sse_event(&e).unwrap(),
            Bytes::from_static(
                b"id: 42\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/claude/channel\",\"params\":{\"content\":\"a\\nb\"}}\n\n"
            )
        );
        let broken = Stored {
            line: b"{\"a\":1}\r\ndata: {\"forged\":1}\n".to_vec(),
            ..e
        };
        assert!(
            sse_event(&broken).is_none(),
            "a raw line break could forge an event"
        );
    }
}
