//! The team gateway (`hookwire serve`): the webhook endpoint for everyone, plus the session
//! endpoint that `hookwire channel --gateway URL` dials out to. Each session receives the
//! events of its token's sources from the store, in order, and acknowledges them; what a
//! session has not acknowledged is sent again when it comes back.
//!
//! # Protocol `hookwire.v1`
//!
//! - **Connect.** `GET /v1/session`, a WebSocket upgrade offering the subprotocol
//!   `hookwire.v1`, with `Authorization: Bearer hwt_...`. Checked before the upgrade, in this
//!   order: a token that is missing or not known → `401` body `unknown`; revoked → `401` body
//!   `revoked`; expired → `401` body `expired`; subprotocol not offered → `400`; gateway
//!   shutting down → `503`. Only the token's SHA-256 is looked up; the token is never logged.
//! - **Hello.** The first frame from the gateway, one text frame:
//!   `{"type":"hello","protocol":1,"subscriber":NAME,"sources":[..],"permissions":[..],
//!   "instructions":TEXT,"head":SEQ}`. `instructions` is what the channel puts in its
//!   `initialize` result; `head` is the gateway's newest event id at connect (a client that
//!   has written ids above it is talking to a new event log and forgets them).
//! - **Events.** Then, in id order, one text frame per event of the token's sources:
//!   `{"type":"event","id":SEQ,"source":NAME,"notification":{..}}` where `notification` is the
//!   exact `notifications/claude/channel` JSON-RPC message the channel writes to stdout. Ids
//!   increase but have gaps (other sources' events). Delivery resumes after the subscriber's
//!   durable cursor, so a reconnecting client receives again what it had not acknowledged:
//!   suppress ids already written.
//! - **Acknowledgements.** The client sends `{"type":"ack","id":SEQ}` once every event up to
//!   `SEQ` is written; acks are cumulative, and an ack for ids the gateway has not sent yet on
//!   this connection (up to its head) skips them. At most 1024 events or 8 MiB are sent and
//!   not acknowledged; the gateway sends more as acks arrive.
//! - **Keepalive.** The client may send `{"type":"ping"}`; the gateway answers
//!   `{"type":"pong"}`. A client that sends nothing (no frame, no WebSocket ping) for 60 s is
//!   disconnected: clients ping every 15 s. Unknown frame types are ignored both ways.
//! - **Close codes** (from the gateway): `4409 superseded` (another connection with the same
//!   token took over: one live connection per token), `4403 revoked` / `4403 expired` (the
//!   token stopped being valid during the session), `4408 idle` (nothing heard for 60 s),
//!   `1001` (gateway shutting down), `1003` (binary frame), `1007` (a frame that is not the
//!   protocol's JSON), `1011` (the store failed).
//!
//! TLS: with `tls:` in the config the gateway serves HTTPS itself (rustls); otherwise plain
//! HTTP, to be put behind a TLS-terminating proxy that passes WebSocket upgrades. Tokens
//! must never cross a network in clear text.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{watch, Notify};

use crate::config::TlsSettings;
use crate::pipeline::Pipeline;
use crate::store::token::{Token, TokenStatus};
use crate::store::{Batch, Store, StoreError, Stored, Subscription};
use crate::verify::timestamp::millis;

/// The WebSocket subprotocol both sides must agree on.
pub const PROTOCOL: &str = "hookwire.v1";
/// The `protocol` number in `hello`.
pub const PROTOCOL_VERSION: u32 = 1;
/// Where sessions connect.
pub const SESSION_PATH: &str = "/v1/session";
/// The gateway's liveness probe.
pub const HEALTH_PATH: &str = "/healthz";

/// Close codes the gateway ends a session with.
pub mod close {
    /// Another connection with the same token took over.
    pub const SUPERSEDED: u16 = 4409;
    /// The token was revoked or expired during the session (reason `revoked` / `expired`).
    pub const TOKEN_INVALID: u16 = 4403;
    /// Nothing heard from the client for too long.
    pub const IDLE: u16 = 4408;
    /// The gateway is shutting down.
    pub const GOING_AWAY: u16 = 1001;
}

/// Events sent and not yet acknowledged, at most.
const WINDOW_EVENTS: usize = 1024;
/// Notification bytes sent and not yet acknowledged, at most.
const WINDOW_BYTES: usize = 8 << 20;
/// Events read from the store at once.
const READ_PAGE: usize = 512;
/// How often live sessions' tokens are checked for revocation and expiry.
const TOKEN_CHECK: Duration = Duration::from_secs(1);
/// A client that sends nothing for this long is gone (clients ping every 15 s).
const CLIENT_SILENCE: Duration = Duration::from_secs(60);
/// Client frames are acks and pings: a few dozen bytes.
const MAX_CLIENT_FRAME: usize = 64 * 1024;
/// How long the close handshake may take.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The gateway's first frame on a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The token's name.
    pub subscriber: String,
    /// The sources this session receives.
    pub sources: Vec<String>,
    /// The permissions this session is offered.
    pub permissions: Vec<String>,
    /// The `instructions` for the channel's `initialize` result.
    pub instructions: String,
    /// The newest event id when the session started.
    #[serde(default)]
    pub head: u64,
}

/// Frames the gateway sends (serialisation only: the notification is embedded as is).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ServerFrame<'a> {
    Hello(&'a Hello),
    Event {
        id: u64,
        source: &'a str,
        notification: &'a RawValue,
    },
    Pong,
}

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientFrame {
    /// Every event up to `id` is written.
    Ack {
        /// The highest event id written.
        id: u64,
    },
    /// Keepalive; answered with `pong`.
    Ping,
    /// A frame type this version does not know: ignored.
    #[serde(other)]
    Unknown,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Superseded,
    TokenInvalid(TokenStatus),
    Shutdown,
    Idle,
    ClientClosed,
    ClientGone(String),
    Protocol(u16, &'static str),
    Store,
}

impl End {
    /// The close frame the gateway sends, if it is the one ending the session.
    fn close_frame(&self) -> Option<CloseFrame> {
        let (code, reason): (u16, String) = match self {
            End::Superseded => (close::SUPERSEDED, "superseded".into()),
            End::TokenInvalid(status) => (close::TOKEN_INVALID, status.to_string()),
            End::Shutdown => (close::GOING_AWAY, "gateway shutting down".into()),
            End::Idle => (close::IDLE, "idle".into()),
            End::Protocol(code, reason) => (*code, (*reason).into()),
            End::Store => (1011, "store error".into()),
            End::ClientClosed | End::ClientGone(_) => return None,
        };
        Some(CloseFrame {
            code,
            reason: reason.into(),
        })
    }
}

/// Sets a session's end reason unless one is set already (the first reason wins).
fn end_with(tx: &watch::Sender<Option<End>>, why: End) {
    tx.send_if_modified(|e| {
        if e.is_none() {
            *e = Some(why);
            true
        } else {
            false
        }
    });
}

struct Live {
    id: u64,
    end: Arc<watch::Sender<Option<End>>>,
}

/// The session endpoint and its live sessions.
pub struct Gateway {
    store: Arc<dyn Store>,
    pipeline: Arc<Pipeline>,
    sessions: Mutex<HashMap<String, Live>>,
    next_id: AtomicU64,
    closing: AtomicBool,
    drained: Notify,
}

impl Gateway {
    /// A gateway over `store`, whose webhooks go through `pipeline` (which should store into
    /// the same store).
    pub fn new(store: Arc<dyn Store>, pipeline: Arc<Pipeline>) -> Arc<Self> {
        Arc::new(Gateway {
            store,
            pipeline,
            sessions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closing: AtomicBool::new(false),
            drained: Notify::new(),
        })
    }

    /// `/v1/session`, `/healthz`, and every webhook path. Serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()`.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route(SESSION_PATH, get(connect))
            .route(HEALTH_PATH, get(|| async { "ok" }))
            .with_state(self.clone())
            .merge(crate::ingress::router(self.pipeline.clone()))
    }

    /// Serves until `shutdown` resolves, then stops accepting, closes every session with
    /// 1001 and lets requests in flight finish (bounded).
    pub async fn serve(
        self: Arc<Self>,
        listener: std::net::TcpListener,
        tls: Option<axum_server::tls_rustls::RustlsConfig>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let app = self.router().into_make_service_with_connect_info::<SocketAddr>();
        let handle = axum_server::Handle::new();
        let server = {
            let handle = handle.clone();
            async move {
                match tls {
                    Some(tls) => {
                        axum_server::from_tcp_rustls(listener, tls)?
                            .handle(handle)
                            .serve(app)
                            .await
                    }
                    None => axum_server::from_tcp(listener)?.handle(handle).serve(app).await,
                }
            }
        };
        let watcher = tokio::spawn(self.clone().watch_tokens());
        tokio::pin!(server);
        tokio::select! {
            r = &mut server => {
                watcher.abort();
                return r;
            }
            _ = shutdown => {}
        }
        handle.graceful_shutdown(Some(Duration::from_secs(2)));
        self.close_sessions(Duration::from_secs(2)).await;
        watcher.abort();
        server.await
    }

    /// Refuses new sessions and closes the live ones with 1001, waiting at most `limit`.
    pub async fn close_sessions(&self, limit: Duration) {
        self.closing.store(true, Ordering::SeqCst);
        for live in self.sessions.lock().expect("sessions poisoned").values() {
            end_with(&live.end, End::Shutdown);
        }
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
    fn register(&self, name: &str) -> (u64, Arc<watch::Sender<Option<End>>>) {
        let (tx, _) = watch::channel(None);
        let tx = Arc::new(tx);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut sessions = self.sessions.lock().expect("sessions poisoned");
        if self.closing.load(Ordering::SeqCst) {
            end_with(&tx, End::Shutdown);
        }
        if let Some(old) = sessions.insert(name.to_owned(), Live { id, end: tx.clone() }) {
            tracing::info!(subscriber = %name, "a new connection with the same token supersedes the live session");
            end_with(&old.end, End::Superseded);
        }
        (id, tx)
    }

    fn unregister(&self, name: &str, id: u64) {
        let mut sessions = self.sessions.lock().expect("sessions poisoned");
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
            if self.sessions.lock().expect("sessions poisoned").is_empty() {
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
                    end_with(&live.end, End::TokenInvalid(s));
                }
            }
        }
    }

    async fn run_session(self: Arc<Self>, token: Token, socket: WebSocket, peer: SocketAddr) {
        let (id, end_tx) = self.register(&token.name);
        tracing::info!(subscriber = %token.name, %peer, sources = ?token.sources, "session connected");
        let (mut sink, stream) = socket.split();
        let (acks_tx, acks) = watch::channel(0u64);
        let pings = Arc::new(Notify::new());
        let mut reader = tokio::spawn(read_client(stream, end_tx.clone(), acks_tx, pings.clone()));
        let mut session = Session {
            store: self.store.clone(),
            sub: Arc::new(Subscription {
                name: token.name.clone(),
                sources: token.sources.clone(),
            }),
            end: end_tx.subscribe(),
            flow: Flow::default(),
        };
        let why = match session.run(&self, &token, &mut sink, acks, &pings).await {
            Ok(never) => match never {},
            Err(why) => why,
        };
        match &why {
            End::TokenInvalid(s) => {
                tracing::warn!(subscriber = %token.name, %peer, token = %s, "session ended: token no longer valid")
            }
            End::Store => {}
            End::ClientClosed => {
                tracing::info!(subscriber = %token.name, %peer, "session closed by the client")
            }
            other => tracing::info!(subscriber = %token.name, %peer, reason = ?other, "session ended"),
        }
        // Close handshake, bounded: a client that stopped reading must not hold the task.
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            match why.close_frame() {
                Some(frame) => sink.send(Message::Close(Some(frame))).await,
                None => sink.close().await,
            }
        })
        .await;
        if tokio::time::timeout(CLOSE_WAIT, &mut reader).await.is_err() {
            reader.abort();
        }
        self.unregister(&token.name, id);
    }
}

/// Reads client frames until the client goes, hands acks and pings to the session, and
/// records why it stopped. Runs beside the session so a client stays heard (its pings keep it
/// alive, its acks arrive) even while a send to it is blocked.
async fn read_client(
    mut stream: SplitStream<WebSocket>,
    end: Arc<watch::Sender<Option<End>>>,
    acks: watch::Sender<u64>,
    pings: Arc<Notify>,
) {
    // When the session ends for another reason this keeps reading until the client answers
    // the close frame; the session aborts it if that takes too long.
    let why = loop {
        match tokio::time::timeout(CLIENT_SILENCE, stream.next()).await {
            Err(_) => break End::Idle,
            Ok(None) => break End::ClientGone("connection closed".into()),
            Ok(Some(Err(e))) => break End::ClientGone(e.to_string()),
            Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<ClientFrame>(text.as_str()) {
                Ok(ClientFrame::Ack { id }) => {
                    acks.send_if_modified(|a| {
                        let newer = id > *a;
                        if newer {
                            *a = id;
                        }
                        newer
                    });
                }
                Ok(ClientFrame::Ping) => pings.notify_one(),
                Ok(ClientFrame::Unknown) => tracing::debug!("ignoring a client frame of unknown type"),
                Err(_) => break End::Protocol(1007, "not a hookwire.v1 frame"),
            },
            Ok(Some(Ok(Message::Binary(_)))) => break End::Protocol(1003, "text frames only"),
            Ok(Some(Ok(Message::Close(_)))) => break End::ClientClosed,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
        }
    };
    end_with(&end, why);
    // Keep reading briefly so the close handshake (our close frame's reply) completes.
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}

/// Sent-but-unacknowledged bookkeeping of one session.
#[derive(Default)]
struct Flow {
    /// Everything up to here was sent or is not for this subscriber.
    pos: u64,
    /// Sent, not acknowledged: (id, bytes), in order.
    inflight: std::collections::VecDeque<(u64, usize)>,
    inflight_bytes: usize,
    /// The last position acknowledged to the store.
    stored: u64,
}

impl Flow {
    fn room(&self) -> usize {
        if self.inflight_bytes >= WINDOW_BYTES {
            0
        } else {
            WINDOW_EVENTS.saturating_sub(self.inflight.len())
        }
    }

    fn sent(&mut self, id: u64, bytes: usize) {
        self.inflight.push_back((id, bytes));
        self.inflight_bytes += bytes;
    }

    fn acked(&mut self, id: u64) {
        while let Some(&(seq, bytes)) = self.inflight.front() {
            if seq > id {
                break;
            }
            self.inflight.pop_front();
            self.inflight_bytes -= bytes;
        }
        // The client has everything up to `id` already (from an earlier connection).
        self.pos = self.pos.max(id);
    }

    /// How far the store may consider this subscriber served: up to the first event still
    /// unacknowledged, including other sources' events skipped on the way.
    fn durable(&self) -> u64 {
        self.inflight.front().map_or(self.pos, |&(seq, _)| seq - 1)
    }
}

struct Session {
    store: Arc<dyn Store>,
    sub: Arc<Subscription>,
    end: watch::Receiver<Option<End>>,
    flow: Flow,
}

impl Session {
    /// Streams events until something ends the session, and says what.
    async fn run(
        &mut self,
        gw: &Gateway,
        token: &Token,
        sink: &mut SplitSink<WebSocket, Message>,
        mut acks: watch::Receiver<u64>,
        pings: &Notify,
    ) -> Result<std::convert::Infallible, End> {
        let store = self.store.clone();
        let name = token.name.clone();
        let head = store.head();
        let start = blocking(move || store.cursor(&name, head)).await?;
        self.flow.pos = start;
        self.flow.stored = start;
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            subscriber: token.name.clone(),
            sources: token.sources.clone(),
            permissions: token.permissions.clone(),
            instructions: crate::instructions::for_sources(gw.pipeline.config(), &token.sources),
            head: self.store.head(),
        };
        tracing::debug!(subscriber = %token.name, resume_after = start, "session streaming");
        self.send(sink, frame(&ServerFrame::Hello(&hello))).await?;
        let mut heads = self.store.head_watch();
        loop {
            self.pump(sink).await?;
            enum Next {
                Ack(u64),
                Pong,
                More,
                ReaderGone,
            }
            let next = tokio::select! {
                biased;
                r = self.end.wait_for(Option::is_some) => return Err(reason(r)),
                r = acks.changed() => match r {
                    Ok(()) => Next::Ack(*acks.borrow_and_update()),
                    Err(_) => Next::ReaderGone,
                },
                _ = pings.notified() => Next::Pong,
                r = heads.changed() => match r {
                    Ok(()) => Next::More,
                    Err(_) => return Err(End::Shutdown),
                },
            };
            match next {
                Next::Ack(id) => self.acked(id),
                Next::Pong => self.send(sink, frame(&ServerFrame::Pong)).await?,
                Next::More => {}
                // The reader set the reason before it stopped.
                Next::ReaderGone => {
                    let why = self.end.borrow().clone();
                    return Err(why.unwrap_or_else(|| End::ClientGone("reader stopped".into())));
                }
            }
        }
    }

    fn acked(&mut self, id: u64) {
        let head = self.store.head();
        if id > head {
            tracing::warn!(subscriber = %self.sub.name, id, head, "ignoring an ack beyond the newest event");
            return;
        }
        self.flow.acked(id);
        self.sync_store();
    }

    fn sync_store(&mut self) {
        let durable = self.flow.durable();
        if durable > self.flow.stored {
            self.flow.stored = durable;
            self.store.ack(&self.sub.name, durable);
        }
    }

    /// Sends what the window allows of what the store has.
    async fn pump(&mut self, sink: &mut SplitSink<WebSocket, Message>) -> Result<(), End> {
        loop {
            let room = self.flow.room();
            if room == 0 || self.flow.pos >= self.store.head() {
                return Ok(());
            }
            let (store, sub, after) = (self.store.clone(), self.sub.clone(), self.flow.pos);
            let batch: Batch = blocking(move || store.read_after(&sub, after, room.min(READ_PAGE))).await?;
            if batch.through <= self.flow.pos {
                return Ok(());
            }
            for e in &batch.events {
                match event_frame(e) {
                    Some(text) => {
                        self.send(sink, text).await?;
                        self.flow.sent(e.seq, e.line.len());
                    }
                    None => tracing::error!(seq = e.seq, "stored notification is not JSON; skipping it"),
                }
            }
            self.flow.pos = batch.through;
            self.sync_store();
        }
    }

    /// Sends one frame, giving up as soon as the session is ended (a client that stopped
    /// reading must not pin the session).
    async fn send(&mut self, sink: &mut SplitSink<WebSocket, Message>, text: String) -> Result<(), End> {
        tokio::select! {
            biased;
            r = self.end.wait_for(Option::is_some) => Err(reason(r)),
            r = sink.send(Message::Text(text.into())) => r.map_err(|e| End::ClientGone(e.to_string())),
        }
    }
}

fn reason(r: Result<watch::Ref<'_, Option<End>>, watch::error::RecvError>) -> End {
    match r {
        Ok(e) => e.clone().unwrap_or(End::Shutdown),
        Err(_) => End::Shutdown,
    }
}

/// Runs a store call off the async workers (catch-up reads hit SQLite).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, End> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "store read failed; ending the session (the client reconnects)");
            Err(End::Store)
        }
        Err(_) => Err(End::Store),
    }
}

fn frame(f: &ServerFrame<'_>) -> String {
    serde_json::to_string(f).expect("frames serialise")
}

/// The event frame, the stored notification embedded byte for byte (checked to be JSON).
fn event_frame(e: &Stored) -> Option<String> {
    let line = e.line.strip_suffix(b"\n").unwrap_or(&e.line);
    let notification: &RawValue = serde_json::from_slice(line).ok()?;
    Some(frame(&ServerFrame::Event {
        id: e.seq,
        source: &e.source,
        notification,
    }))
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

/// `GET /v1/session`: authenticate, then upgrade.
async fn connect(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (mut parts, _) = req.into_parts();
    if gw.closing.load(Ordering::SeqCst) {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    let Some(secret) = bearer(&parts.headers).map(str::to_owned) else {
        tracing::info!(%peer, "session refused: no bearer token");
        return refuse(StatusCode::UNAUTHORIZED, "unknown");
    };
    let store = gw.store.clone();
    let found = match tokio::task::spawn_blocking(move || store.tokens().find(&secret)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot look up a session token");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        }
        Err(_) => return refuse(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let Some(token) = found else {
        tracing::info!(%peer, "session refused: unknown token");
        return refuse(StatusCode::UNAUTHORIZED, "unknown");
    };
    match token.status(millis(SystemTime::now())) {
        TokenStatus::Valid => {}
        TokenStatus::Revoked => {
            tracing::info!(%peer, subscriber = %token.name, "session refused: token revoked");
            return refuse(StatusCode::UNAUTHORIZED, "revoked");
        }
        TokenStatus::Expired => {
            tracing::info!(%peer, subscriber = %token.name, "session refused: token expired");
            return refuse(StatusCode::UNAUTHORIZED, "expired");
        }
    }
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
        .on_upgrade(move |socket| gw.run_session(token, socket, peer))
}

/// Makes ring the process's TLS crypto provider (idempotent). Call before building any TLS
/// configuration: the gateway's and the link's.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The gateway's TLS configuration from `tls:` (PEM certificate chain and key).
pub async fn tls_config(tls: &TlsSettings) -> Result<axum_server::tls_rustls::RustlsConfig, String> {
    install_crypto_provider();
    axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert_file, &tls.key_file)
        .await
        .map_err(|e| {
            format!(
                "cannot load tls.cert_file {} / tls.key_file {}: {e}",
                tls.cert_file.display(),
                tls.key_file.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_embed_the_notification_byte_for_byte() {
        let line = b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/claude/channel\",\"params\":{\"content\":\"a\\nb\",\"meta\":{\"z\":\"1\",\"a\":\"2\"}}}\n";
        let e = Stored {
            seq: 7,
            source: "github".into(),
            event: "e".into(),
            delivery_id: "d".into(),
            received_ms: 0,
            line: line.to_vec(),
            folded: false,
            target: None,
        };
        let text = event_frame(&e).unwrap();
        let inner = std::str::from_utf8(&line[..line.len() - 1]).unwrap();
        assert_eq!(
            text,
            format!("{{\"type\":\"event\",\"id\":7,\"source\":\"github\",\"notification\":{inner}}}")
        );
        let bad = Stored {
            line: b"not json\n".to_vec(),
            ..e
        };
        assert!(event_frame(&bad).is_none());
    }

    #[test]
    fn client_frames_parse_and_unknown_types_are_tolerated() {
        let f: ClientFrame = serde_json::from_str(r#"{"type":"ack","id":42}"#).unwrap();
        assert_eq!(f, ClientFrame::Ack { id: 42 });
        let f: ClientFrame = serde_json::from_str(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(f, ClientFrame::Ping);
        let f: ClientFrame = serde_json::from_str(r#"{"type":"subscribe","x":1}"#).unwrap();
        assert_eq!(f, ClientFrame::Unknown);
        assert!(serde_json::from_str::<ClientFrame>(r#"{"id":1}"#).is_err());
        assert_eq!(
            serde_json::to_string(&ClientFrame::Ack { id: 3 }).unwrap(),
            r#"{"type":"ack","id":3}"#
        );
    }

    #[test]
    fn hello_is_tagged() {
        let h = Hello {
            protocol: 1,
            subscriber: "alice".into(),
            sources: vec!["github".into()],
            permissions: vec![],
            instructions: "i".into(),
            head: 9,
        };
        let text = frame(&ServerFrame::Hello(&h));
        assert!(
            text.starts_with(r#"{"type":"hello","protocol":1,"subscriber":"alice""#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Hello>(&text).unwrap(), h);
        assert_eq!(frame(&ServerFrame::Pong), r#"{"type":"pong"}"#);
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

    #[test]
    fn flow_window_and_durable_point() {
        let mut f = Flow {
            pos: 10,
            stored: 10,
            ..Flow::default()
        };
        assert_eq!(f.room(), WINDOW_EVENTS);
        f.sent(12, 100);
        f.sent(15, 100);
        f.pos = 20; // 16..=20 were other sources'
        assert_eq!(f.room(), WINDOW_EVENTS - 2);
        assert_eq!(f.durable(), 11, "11 was skipped, 12 is unacknowledged");
        f.acked(12);
        assert_eq!(f.durable(), 14);
        f.acked(15);
        assert_eq!(f.durable(), 20, "all sent acknowledged: the skipped tail counts");
        assert_eq!(f.inflight_bytes, 0);
        f.acked(30);
        assert_eq!(f.pos, 30, "an ack ahead of what was sent skips it");
        f.sent(31, WINDOW_BYTES);
        assert_eq!(f.room(), 0, "bytes bound the window too");
    }
}
