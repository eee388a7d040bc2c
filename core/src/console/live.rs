//! The live log: every counted webhook request ([`crate::metrics::observe`]) becomes a row,
//! and each open console streams the rows of the sources it sees as server-sent events
//! (`GET /console/live`). Refused requests are shown by outcome and reason only, never
//! their bodies.
//!
//! Nothing here slows ingest: requests are published on a bounded broadcast channel, the
//! feed turns them into rows on a second one, and a browser that does not keep up loses
//! rows (it is told how many) rather than holding anything back.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::{auth, html, session_states, Console};
use crate::metrics::{Observed, Outcome};

/// Rows kept for a slow stream before it loses them.
pub(super) const ROW_BACKLOG: usize = 256;
/// A comment this often keeps the stream open through proxies and re-checks the sign-in.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// A stream whose browser takes nothing for this long is ended.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// One line of the live log.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Row {
    /// When, RFC 3339.
    pub time: String,
    /// The source.
    pub source: String,
    /// The event's name, once known.
    pub event: Option<String>,
    /// The delivery id, once known.
    pub delivery_id: Option<String>,
    /// The stored event's id, for its detail page.
    pub seq: Option<u64>,
    /// What happened, for people.
    pub outcome: String,
    /// `ok`, `quiet` or `bad`: how the row is shown.
    pub kind: &'static str,
    /// More about it (a filter's reason, the original of a repeat).
    pub detail: Option<String>,
    /// Each receiving session and its state (`name: acknowledged`).
    pub sessions: Vec<String>,
}

/// How an outcome reads in the log, and its kind.
pub(super) fn describe(outcome: Outcome, named: bool) -> (&'static str, &'static str) {
    match outcome {
        Outcome::Accepted => ("accepted", "ok"),
        Outcome::Folded => ("folded", "quiet"),
        Outcome::Filtered => ("filtered", "quiet"),
        Outcome::Replay if named => ("duplicate", "quiet"),
        Outcome::Replay => ("refused: stale signature timestamp", "bad"),
        Outcome::Acknowledged => ("acknowledged (not delivered)", "quiet"),
        Outcome::BadSignature => ("refused: bad signature", "bad"),
        Outcome::BadRequest => ("refused: bad request", "bad"),
        Outcome::TooLarge => ("refused: too large", "bad"),
        Outcome::Timeout => ("refused: body too slow", "bad"),
        Outcome::Throttled => ("refused: busy, sender asked to retry", "bad"),
        Outcome::Forbidden => ("refused: address not allowed", "bad"),
        Outcome::Failed => ("refused: store failed", "bad"),
    }
}

/// Turns counted requests into rows for as long as the console lives.
pub(super) async fn feed(
    console: Weak<Console>,
    mut observed: tokio::sync::broadcast::Receiver<Arc<Observed>>,
) {
    loop {
        let o = match observed.recv().await {
            Ok(o) => o,
            Err(RecvError::Lagged(n)) => {
                tracing::debug!(missed = n, "console: live log fell behind");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Some(c) = console.upgrade() else { return };
        let (outcome, kind) = describe(o.outcome, o.delivery_id.is_some());
        c.count(&o.source, o.outcome.label());
        if c.rows.receiver_count() == 0 {
            continue;
        }
        let mut row = Row {
            time: html::time(o.at_ms),
            source: o.source.clone(),
            event: None,
            delivery_id: o.delivery_id.clone(),
            seq: None,
            outcome: outcome.to_owned(),
            kind,
            detail: o.detail.clone(),
            sessions: Vec::new(),
        };
        if let Some(id) = o.delivery_id.clone() {
            enrich(&c, &mut row, id, o.outcome == Outcome::Replay).await;
        }
        let _ = c.rows.send(Arc::new(row));
    }
}

/// Names the stored event of a row and its sessions' states.
async fn enrich(c: &Arc<Console>, row: &mut Row, delivery_id: String, repeat: bool) {
    let store = c.store.clone();
    let connected = c.live.connected();
    let found = super::blocking(move || {
        let Some(rec) = store.get(&delivery_id)? else {
            return Ok(None);
        };
        let tokens = store.tokens().list()?;
        let acked: HashMap<String, u64> = store.cursors()?.into_iter().map(|c| (c.name, c.acked)).collect();
        Ok(Some((rec.stored, tokens, acked)))
    })
    .await
    .flatten();
    let Some((stored, tokens, acked)) = found else {
        return;
    };
    if stored.source != row.source {
        return;
    }
    row.event = Some(stored.event.clone());
    row.seq = Some(stored.seq);
    if repeat {
        row.detail = Some(format!("repeat of event {}", stored.seq));
    } else {
        let subs = super::subscribers(&tokens, c.live.fixed());
        row.sessions = session_states(&stored, &subs, &acked, &connected)
            .into_iter()
            .map(|(n, s)| format!("{n}: {s}"))
            .collect();
    }
}

/// Ends a stream's count when it ends.
struct Open(Arc<Console>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `GET /console/live`: the rows of the viewer's sources, as they come.
pub(super) async fn stream(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some(viewer) = c.viewer(&headers).await else {
        return (StatusCode::UNAUTHORIZED, "sign in first\n").into_response();
    };
    let Some(id) = auth::session_id(&headers) else {
        return (StatusCode::UNAUTHORIZED, "sign in first\n").into_response();
    };
    if c.streams.fetch_add(1, Ordering::SeqCst) >= c.max_streams {
        c.streams.fetch_sub(1, Ordering::SeqCst);
        let mut r = (StatusCode::SERVICE_UNAVAILABLE, "too many live logs open\n").into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("15"));
        return r;
    }
    let open = Open(c.clone());
    let rows = c.rows.subscribe();
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    tokio::spawn(async move {
        let _open = open;
        run(&c, viewer, &id, rows, &tx).await;
    });
    crate::gateway::sse::response(rx)
}

/// Writes rows until the browser goes, the sign-in ends or the token stops being good.
async fn run(
    c: &Arc<Console>,
    mut viewer: auth::Viewer,
    id: &str,
    mut rows: tokio::sync::broadcast::Receiver<Arc<Row>>,
    tx: &mpsc::Sender<Bytes>,
) {
    if !send(tx, Bytes::from_static(b"retry: 3000\n: live\n\n")).await {
        return;
    }
    let mut tick = tokio::time::interval(KEEPALIVE);
    tick.tick().await;
    loop {
        let chunk = tokio::select! {
            row = rows.recv() => match row {
                Ok(row) if viewer.sees(&row.source) => {
                    let json = serde_json::to_string(&*row).unwrap_or_default();
                    Bytes::from(format!("data: {json}\n\n"))
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => Bytes::from(format!("event: lost\ndata: {n}\n\n")),
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                let Some(again) = c.viewer_by_id(id).await else { return };
                viewer = again;
                Bytes::from_static(b": keepalive\n\n")
            }
        };
        // Signed out since the last row: nothing more.
        if c.sign_ins.get(id, std::time::Instant::now()).is_none() {
            return;
        }
        if !send(tx, chunk).await {
            return;
        }
    }
}

async fn send(tx: &mpsc::Sender<Bytes>, chunk: Bytes) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, tx.send(chunk)).await,
        Ok(Ok(()))
    )
}
