//! The team gateway (`hookwire serve`): the webhook endpoint for everyone, plus the session
//! endpoint that `hookwire channel --gateway URL` dials out to. Each session receives the
//! events of its token's sources from the store, in order, and acknowledges them; what a
//! session has not acknowledged is sent again when it comes back.
//!
//! The protocol, `hookwire.v1`, is [`crate::link_protocol`] (`docs/link-protocol.md`): its
//! frames and codec are the ones the channel's link uses. Here:
//!
//! - this module: the endpoint (token checks before the upgrade), the registry of live
//!   sessions (one per token), the watch that ends sessions whose token stopped being
//!   valid, and [`Gateway::serve`];
//! - `session`: one session's task (streaming events, reading the client, closing);
//! - `flow`: its window of events sent and not yet acknowledged;
//! - `jobs`: its queue of read requests and audit entries, worked through in order;
//! - `reads`: answering a read request from the store;
//! - `audit`: admitting audit frames (budget, trusted fields) and storing them;
//! - `mcp`: `/mcp`, the gateway as a remote channel (MCP over Streamable HTTP) on the same
//!   tokens, cursors and tools; `sse`: its event stream and when an event counts as delivered.

mod audit;
mod flow;
mod jobs;
mod mcp;
mod reads;
mod session;
pub(crate) mod sse;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::{watch, Notify};

use self::audit::Bucket;
use self::session::{end_with, End};
use crate::health::Probes;
use crate::link_protocol::{Close, MAX_CLIENT_FRAME, PROTOCOL, SESSION_PATH};
use crate::store::token::{Token, TokenStatus};
use crate::store::Store;
use crate::verify::timestamp::millis;

pub use crate::health::HEALTH_PATH;

/// How often live sessions' tokens are checked for revocation and expiry.
const TOKEN_CHECK: Duration = Duration::from_secs(1);

/// A live session in the registry: its connection's number, the way to end it, and whether
/// it has recorded the last ack its client sent.
struct Live {
    id: u64,
    end: Arc<watch::Sender<Option<End>>>,
    settled: watch::Receiver<bool>,
}

/// A session's entry in the registry ([`Gateway::register`]).
struct Registration {
    /// The connection's number.
    id: u64,
    /// Its end reason, set once.
    end: Arc<watch::Sender<Option<End>>>,
    /// Set once the session has recorded the last ack its client sent.
    settled: watch::Sender<bool>,
    /// The token's session it superseded, until that one has recorded its client's last ack:
    /// where the new one starts depends on it.
    previous: Option<watch::Receiver<bool>>,
}

/// The session endpoint and its live sessions.
pub struct Gateway {
    store: Arc<dyn Store>,
    pipeline: crate::ingress::Current,
    sessions: Mutex<HashMap<String, Live>>,
    /// The remote channel's sessions (`/mcp`).
    remote: mcp::Sessions,
    /// Each token's audit-frame budget, kept across its connections.
    audit_budgets: Mutex<HashMap<String, Arc<Mutex<Bucket>>>>,
    next_id: AtomicU64,
    closing: AtomicBool,
    drained: Notify,
}

impl Gateway {
    /// A gateway over `store`, whose webhooks go through `pipeline` (which should store into
    /// the same store).
    pub fn new(store: Arc<dyn Store>, pipeline: crate::ingress::Current) -> Arc<Self> {
        Arc::new(Gateway {
            store,
            pipeline,
            sessions: Mutex::new(HashMap::new()),
            remote: mcp::Sessions::default(),
            audit_budgets: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closing: AtomicBool::new(false),
            drained: Notify::new(),
        })
    }

    /// `/v1/session`, `/mcp`, `/healthz`, `/readyz`, `/metrics`, and every webhook path. Serve
    /// it with [`crate::http::serve`].
    pub fn router(self: &Arc<Self>) -> Router {
        let mut router = Router::new()
            .route(SESSION_PATH, get(connect))
            .route(mcp::MCP_PATH, get(mcp::get).post(mcp::post).delete(mcp::delete))
            .with_state(self.clone())
            .merge(Probes::new(self.store.clone(), crate::health::token_subscribers(), true).router());
        // `/console`, unless `console.enabled: false` (read at start, not on reload).
        let console = self.pipeline.load().config().console.clone();
        if console.enabled {
            let live: Arc<dyn crate::console::LiveSessions> = self.clone();
            router = router.merge(
                crate::console::Console::new(self.store.clone(), self.pipeline.clone(), live, &console)
                    .router(),
            );
        }
        router.merge(crate::ingress::swappable(self.pipeline.clone()))
    }

    /// Serves until `shutdown` resolves, then stops accepting, closes every session with
    /// 1001 and lets requests in flight finish (bounded).
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        limits: crate::http::ConnectionLimits,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let watcher = tokio::spawn(self.clone().watch_tokens());
        let elsewhere = self
            .store
            .sessions_elsewhere()
            .map(|rx| tokio::spawn(self.clone().watch_elsewhere(rx)));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = crate::http::serve(
            listener,
            tls,
            self.router(),
            limits,
            async move {
                let _ = stop_rx.await;
            },
            Duration::from_secs(2),
        );
        tokio::pin!(server);
        tokio::select! {
            r = &mut server => {
                watcher.abort();
                elsewhere.iter().for_each(|w| w.abort());
                return r;
            }
            _ = shutdown => {}
        }
        elsewhere.iter().for_each(|w| w.abort());
        // Sessions first: their WebSockets are no longer the listener's connections.
        let _ = stop_tx.send(());
        let (r, ()) = tokio::join!(server, self.close_sessions(Duration::from_secs(2)));
        watcher.abort();
        r
    }

    /// Refuses new sessions and closes the live ones with 1001, waiting at most `limit`.
    pub async fn close_sessions(&self, limit: Duration) {
        self.closing.store(true, Ordering::SeqCst);
        for live in self.sessions.lock().expect("sessions poisoned").values() {
            end_with(&live.end, End::Close(Close::GoingAway));
        }
        // Their streams end with them; the listener's shutdown waits for those connections.
        self.remote.sweep(|_| Some(mcp::Ended::ShuttingDown));
        let wait = async {
            loop {
                let drained = self.drained.notified();
                tokio::pin!(drained);
                drained.as_mut().enable();
                if self.sessions.lock().expect("sessions poisoned").is_empty() {
                    return;
                }
                drained.await;
            }
        };
        if tokio::time::timeout(limit, wait).await.is_err() {
            tracing::warn!("some sessions did not close in time");
        }
    }

    /// Registers a session for `name`, superseding the live one if any.
    fn register(&self, name: &str) -> Registration {
        let (tx, _) = watch::channel(None);
        let tx = Arc::new(tx);
        let (settled, settled_rx) = watch::channel(false);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut sessions = self.sessions.lock().expect("sessions poisoned");
        // Per connection: a superseded one counts until it has closed.
        crate::metrics::session_connected(1.0);
        if self.closing.load(Ordering::SeqCst) {
            end_with(&tx, End::Close(Close::GoingAway));
        }
        let live = Live {
            id,
            end: tx.clone(),
            settled: settled_rx,
        };
        let previous = sessions.insert(name.to_owned(), live).map(|old| {
            tracing::info!(subscriber = %name, "a new connection with the same token supersedes the live session");
            end_with(&old.end, End::Close(Close::Superseded));
            old.settled
        });
        drop(sessions);
        self.store.session_started(name);
        Registration {
            id,
            end: tx,
            settled,
            previous,
        }
    }

    fn unregister(&self, name: &str, id: u64) {
        let mut sessions = self.sessions.lock().expect("sessions poisoned");
        crate::metrics::session_connected(-1.0);
        if sessions.get(name).is_some_and(|l| l.id == id) {
            sessions.remove(name);
        }
        if sessions.is_empty() {
            self.drained.notify_waiters();
        }
    }

    /// Ends sessions whose token was revoked, expired or deleted since they connected.
    async fn watch_tokens(self: Arc<Self>) {
        let mut tick = tokio::time::interval(TOKEN_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            let now_instant = Instant::now();
            self.remote
                .sweep(|s| mcp::Sessions::idle(s, now_instant).then_some(mcp::Ended::Idle));
            if self.sessions.lock().expect("sessions poisoned").is_empty() && self.remote.is_empty() {
                continue;
            }
            let store = self.store.clone();
            let tokens = match tokio::task::spawn_blocking(move || store.tokens().list()).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot check session tokens; retrying every second");
                    }
                    failing = true;
                    continue;
                }
                Err(_) => continue,
            };
            failing = false;
            let now = millis(SystemTime::now());
            let status: HashMap<&str, TokenStatus> =
                tokens.iter().map(|t| (t.name.as_str(), t.status(now))).collect();
            for (name, live) in self.sessions.lock().expect("sessions poisoned").iter() {
                // A token deleted from the database counts as revoked.
                let s = status.get(name.as_str()).copied().unwrap_or(TokenStatus::Revoked);
                if s != TokenStatus::Valid {
                    end_with(&live.end, End::token(s));
                }
            }
            self.remote.sweep(|r| {
                let s = status.get(r.token.name.as_str()).copied().unwrap_or(TokenStatus::Revoked);
                (s != TokenStatus::Valid).then(|| {
                    tracing::warn!(subscriber = %r.token.name, "remote channel session ended: token no longer valid");
                    mcp::Ended::TokenInvalid
                })
            });
        }
    }

    /// Ends this replica's session of each token whose session started on another replica
    /// sharing the store (one session per token across replicas).
    async fn watch_elsewhere(
        self: Arc<Self>,
        mut started: tokio::sync::broadcast::Receiver<(String, String)>,
    ) {
        loop {
            match started.recv().await {
                Ok((name, replica)) => {
                    if let Some(live) = self.sessions.lock().expect("sessions poisoned").get(&name) {
                        tracing::info!(subscriber = %name, %replica, "a connection on another replica supersedes the live session");
                        end_with(&live.end, End::Close(Close::Superseded));
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "missed session announcements from other replicas");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// The audit-frame budget of token `name` (one per token, across its connections).
    fn audit_budget(&self, name: &str) -> Arc<Mutex<Bucket>> {
        self.audit_budgets
            .lock()
            .expect("audit budgets poisoned")
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Mutex::new(Bucket::new(Instant::now()))))
            .clone()
    }
}

impl crate::console::LiveSessions for Gateway {
    fn connected(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .sessions
            .lock()
            .expect("sessions poisoned")
            .keys()
            .cloned()
            .collect();
        names.extend(self.remote.token_names());
        names.sort();
        names.dedup();
        names
    }
}

/// The bearer token of a request, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether the client offers [`PROTOCOL`] in `Sec-WebSocket-Protocol`.
fn offers_protocol(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == PROTOCOL)
}

fn refuse(status: StatusCode, body: &'static str) -> Response {
    let mut r = (status, body).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    r
}

/// Why a request's bearer token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// The gateway is shutting down.
    Closing,
    /// No bearer token.
    NoToken,
    /// The token could not be looked up (store error).
    Unavailable,
    /// Not a token this gateway issued.
    Unknown,
    /// Revoked.
    Revoked,
    /// Expired.
    Expired,
}

impl Refused {
    /// The answer of `/v1/session` (the link protocol names the reason).
    fn response(self) -> Response {
        match self {
            Refused::Closing => refuse(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
            Refused::Unavailable => refuse(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Refused::NoToken | Refused::Unknown => refuse(StatusCode::UNAUTHORIZED, "unknown"),
            Refused::Revoked => refuse(StatusCode::UNAUTHORIZED, "revoked"),
            Refused::Expired => refuse(StatusCode::UNAUTHORIZED, "expired"),
        }
    }
}

impl Gateway {
    /// The valid token a request's `Authorization: Bearer` names, checked against the store
    /// (only its hash is looked up; the token is never logged). `what` names the endpoint in
    /// the log.
    async fn authenticate(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
        what: &str,
    ) -> Result<Token, Refused> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(Refused::Closing);
        }
        let Some(secret) = bearer(headers).map(str::to_owned) else {
            tracing::info!(%peer, "{what} refused: no bearer token");
            return Err(Refused::NoToken);
        };
        let store = self.store.clone();
        let found = match tokio::task::spawn_blocking(move || store.tokens().find(&secret)).await {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot look up a session token");
                return Err(Refused::Unavailable);
            }
            Err(_) => return Err(Refused::Unavailable),
        };
        let Some(token) = found else {
            tracing::info!(%peer, "{what} refused: unknown token");
            return Err(Refused::Unknown);
        };
        match token.status(millis(SystemTime::now())) {
            TokenStatus::Valid => Ok(token),
            TokenStatus::Revoked => {
                tracing::info!(%peer, subscriber = %token.name, "{what} refused: token revoked");
                Err(Refused::Revoked)
            }
            TokenStatus::Expired => {
                tracing::info!(%peer, subscriber = %token.name, "{what} refused: token expired");
                Err(Refused::Expired)
            }
        }
    }
}

/// `GET /v1/session`: authenticate, then upgrade.
async fn connect(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (mut parts, _) = req.into_parts();
    let token = match gw.authenticate(&parts.headers, peer, "session").await {
        Ok(t) => t,
        Err(r) => return r.response(),
    };
    if !offers_protocol(&parts.headers) {
        tracing::info!(%peer, subscriber = %token.name, "session refused: subprotocol {PROTOCOL} not offered");
        return refuse(
            StatusCode::BAD_REQUEST,
            "offer the WebSocket subprotocol hookwire.v1",
        );
    }
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    ws.protocols([PROTOCOL])
        .max_message_size(MAX_CLIENT_FRAME)
        .max_frame_size(MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| session::run(gw, token, socket, peer))
}

/// Makes ring the process's TLS crypto provider (idempotent). Call before building any TLS
/// configuration: the gateway's and the link's.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::{SqliteStore, StoreOptions};
    use serde_json::Value;

    /// A store in a fresh folder holding `(source, delivery id, payload)` events, and the
    /// folder (for the test to remove).
    pub(super) fn store_with(events: &[(&str, &str, Vec<u8>)]) -> (Arc<dyn Store>, std::path::PathBuf) {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hookwire-gateway-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqliteStore::open(StoreOptions::new(dir.join("s.db"))).unwrap();
        for (source, delivery, payload) in events {
            store
                .append(crate::event::Event {
                    source: (*source).into(),
                    event: "issues.opened".into(),
                    delivery_id: (*delivery).into(),
                    line: crate::event::notification_line("x", &[("delivery_id".into(), (*delivery).into())]),
                    received_ms: millis(SystemTime::now()),
                    payload: payload.clone().into(),
                    headers: [("x-github-event", "issues")].into_iter().collect(),
                    folded: false,
                    signed_key: None,
                })
                .unwrap()
                .wait_blocking()
                .unwrap();
        }
        (store, dir)
    }

    /// A result frame's JSON.
    pub(super) fn answered(text: &str) -> Value {
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["type"], "result", "{text}");
        v
    }

    #[test]
    fn bearer_and_subprotocol_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  hwt_abc "),
        );
        assert_eq!(bearer(&h), Some("hwt_abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic eDp5"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
        assert!(!offers_protocol(&h));
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("x, hookwire.v1"),
        );
        assert!(offers_protocol(&h));
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("hookwire.v2"),
        );
        assert!(!offers_protocol(&h));
    }
}
