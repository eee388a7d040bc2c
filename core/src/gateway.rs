//! The team gateway (`hookwire serve`): the webhook endpoint for everyone, plus the session
//! endpoint that `hookwire channel --gateway URL` dials out to. Each session receives the
//! events of its token's sources from the store, in order, and acknowledges them; what a
//! session has not acknowledged is sent again when it comes back.
//!
//! The protocol, `hookwire.v1`, is [`crate::link_protocol`] (`docs/link-protocol.md`): its
//! frames and codec are the ones the channel's link uses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, watch, Notify};

use crate::health::Probes;
use crate::link_protocol::{
    ClientFrame, Close, Hello, ServerFrame, AUDIT_BURST, AUDIT_PER_SECOND, CLIENT_SILENCE, MAX_CLIENT_FRAME,
    MAX_RESULT_FRAME, MAX_WAITING_READS, PROTOCOL, PROTOCOL_VERSION, SESSION_PATH, WINDOW_BYTES,
    WINDOW_EVENTS,
};
use crate::store::token::{Token, TokenStatus};
use crate::store::{AuditEntry, Batch, Store, StoreError, Stored, Subscription};
use crate::tools::{ReadError, StoreReader, Tool, AUDIT_OUTCOMES, MAX_PAYLOAD};
use crate::verify::timestamp::millis;

pub use crate::health::HEALTH_PATH;

/// Events read from the store at once.
const READ_PAGE: usize = 512;
/// How often live sessions' tokens are checked for revocation and expiry.
const TOKEN_CHECK: Duration = Duration::from_secs(1);
/// Audit entries a session may have waiting to be stored; more are dropped.
const MAX_QUEUED_AUDITS: usize = 256;
/// How long a session's worker may take, once the client is gone, to store the audit entries
/// it had already received (at most [`MAX_QUEUED_AUDITS`], one insert each).
const AUDIT_DRAIN: Duration = Duration::from_secs(5);
/// How old an audit frame's `at_ms` may be (a call made while the link was down).
const AUDIT_MAX_AGE_MS: i64 = 24 * 3600 * 1000;
/// How far ahead of the gateway's clock an audit frame's `at_ms` may be (clock skew).
const AUDIT_MAX_SKEW_MS: i64 = 60 * 1000;
/// The answer to a read request when the token lacks `read-events`.
const PERMISSION_DENIED: &str = "permission denied: this session's token does not grant `read-events`";
/// How long the close handshake may take.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// The gateway ends it, with this close frame.
    Close(Close),
    /// The client sent a close frame.
    ClientClosed,
    /// The connection broke.
    ClientGone(String),
}

impl End {
    /// The end of a session whose token is no longer valid (a deleted one counts as revoked).
    fn token(status: TokenStatus) -> End {
        End::Close(match status {
            TokenStatus::Expired => Close::Expired,
            TokenStatus::Revoked | TokenStatus::Valid => Close::Revoked,
        })
    }

    /// The close frame the gateway sends, if it is the one ending the session.
    fn close_frame(&self) -> Option<CloseFrame> {
        match self {
            End::Close(c) => Some(CloseFrame {
                code: c.code(),
                reason: c.reason().into(),
            }),
            End::ClientClosed | End::ClientGone(_) => None,
        }
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
    pipeline: crate::ingress::Current,
    sessions: Mutex<HashMap<String, Live>>,
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
            audit_budgets: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closing: AtomicBool::new(false),
            drained: Notify::new(),
        })
    }

    /// `/v1/session`, `/healthz`, `/readyz`, `/metrics`, and every webhook path. Serve it with
    /// [`crate::http::serve`].
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route(SESSION_PATH, get(connect))
            .with_state(self.clone())
            .merge(Probes::new(self.store.clone(), crate::health::token_subscribers(), true).router())
            .merge(crate::ingress::swappable(self.pipeline.clone()))
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
                return r;
            }
            _ = shutdown => {}
        }
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
        // Per connection: a superseded one counts until it has closed.
        crate::metrics::session_connected(1.0);
        if self.closing.load(Ordering::SeqCst) {
            end_with(&tx, End::Close(Close::GoingAway));
        }
        if let Some(old) = sessions.insert(name.to_owned(), Live { id, end: tx.clone() }) {
            tracing::info!(subscriber = %name, "a new connection with the same token supersedes the live session");
            end_with(&old.end, End::Close(Close::Superseded));
        }
        (id, tx)
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
                    end_with(&live.end, End::token(s));
                }
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

    async fn run_session(self: Arc<Self>, token: Token, socket: WebSocket, peer: SocketAddr) {
        let (id, end_tx) = self.register(&token.name);
        tracing::info!(subscriber = %token.name, %peer, sources = ?token.sources, "session connected");
        let (mut sink, stream) = socket.split();
        let (acks_tx, acks) = watch::channel(0u64);
        let pings = Arc::new(Notify::new());
        let (jobs_tx, jobs) = jobs();
        let (results_tx, mut results) = mpsc::channel(1);
        let auditor = Auditor {
            subscriber: token.name.clone(),
            permissions: token.permissions.clone(),
            budget: self.audit_budget(&token.name),
            dropped: 0,
        };
        let mut reader = tokio::spawn(read_client(
            stream,
            end_tx.clone(),
            acks_tx,
            pings.clone(),
            jobs_tx,
            auditor,
        ));
        // Without `read-events` there is nothing to read with: every request is refused.
        let events = token
            .permissions
            .iter()
            .any(|p| p == Tool::GetEvent.permission())
            .then(|| StoreReader::new(self.store.clone(), token.sources.clone()));
        let audit = AuditWriter {
            store: self.store.clone(),
            sources: token.sources.clone(),
        };
        let mut answerer = tokio::spawn(answer_requests(
            events,
            audit,
            token.name.clone(),
            jobs,
            results_tx,
        ));
        let mut session = Session {
            store: self.store.clone(),
            sub: Arc::new(Subscription {
                name: token.name.clone(),
                sources: token.sources.clone(),
            }),
            end: end_tx.subscribe(),
            flow: Flow::default(),
        };
        let why = match session
            .run(&self, &token, &mut sink, acks, &pings, &mut results)
            .await
        {
            Ok(never) => match never {},
            Err(why) => why,
        };
        // Nobody to answer any more; the audit entries already received are still stored.
        drop(results);
        match &why {
            End::Close(c @ (Close::Revoked | Close::Expired)) => {
                tracing::warn!(subscriber = %token.name, %peer, token = c.reason(), "session ended: token no longer valid")
            }
            End::Close(Close::StoreFailed) => {}
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
        // The reader is gone, so the queue is closed: the worker stores what is left of it
        // (at most 256 entries; bounded all the same) and stops.
        if tokio::time::timeout(AUDIT_DRAIN, &mut answerer).await.is_err() {
            tracing::warn!(subscriber = %token.name, "audit entries left unstored at the end of the session");
            answerer.abort();
        }
        self.unregister(&token.name, id);
    }
}

/// Reads client frames until the client goes, hands acks, pings, read requests and audit
/// entries to the session, and records why it stopped. Runs beside the session so a client
/// stays heard (its pings keep it alive, its acks arrive) even while a send to it is blocked.
async fn read_client(
    mut stream: SplitStream<WebSocket>,
    end: Arc<watch::Sender<Option<End>>>,
    acks: watch::Sender<u64>,
    pings: Arc<Notify>,
    jobs: Jobs,
    mut auditor: Auditor,
) {
    // When the session ends for another reason this keeps reading until the client answers
    // the close frame; the session aborts it if that takes too long.
    let why = loop {
        match tokio::time::timeout(CLIENT_SILENCE, stream.next()).await {
            Err(_) => break End::Close(Close::Idle),
            Ok(None) => break End::ClientGone("connection closed".into()),
            Ok(Some(Err(e))) => break End::ClientGone(e.to_string()),
            Ok(Some(Ok(Message::Text(text)))) => match ClientFrame::decode(text.as_str()) {
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
                Ok(ClientFrame::GetEvent { req, id }) => {
                    if let Err(why) = jobs.read(ReadRequest::GetEvent { req, id }) {
                        break why;
                    }
                }
                Ok(ClientFrame::ListEvents { req, source, limit }) => {
                    if let Err(why) = jobs.read(ReadRequest::ListEvents { req, source, limit }) {
                        break why;
                    }
                }
                Ok(frame @ ClientFrame::Audit { .. }) => {
                    if let Some(entry) = auditor.admit(frame, Instant::now(), millis(SystemTime::now())) {
                        if !jobs.audit(entry) {
                            tracing::warn!(subscriber = %auditor.subscriber, "too many audit entries waiting to be stored; dropping one");
                        }
                    }
                }
                Ok(ClientFrame::Unknown) => tracing::debug!("ignoring a client frame of unknown type"),
                Err(_) => break End::Close(Close::NotAFrame),
            },
            Ok(Some(Ok(Message::Binary(_)))) => break End::Close(Close::BinaryFrame),
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

/// A read request of a linked channel (`get_event` / `list_events` frames).
#[derive(Debug, Clone, PartialEq, Eq)]
enum ReadRequest {
    GetEvent {
        req: u64,
        id: String,
    },
    ListEvents {
        req: u64,
        source: Option<String>,
        limit: Option<u64>,
    },
}

impl ReadRequest {
    fn req(&self) -> u64 {
        match self {
            ReadRequest::GetEvent { req, .. } | ReadRequest::ListEvents { req, .. } => *req,
        }
    }
}

/// What a session's worker does, one at a time, in the order the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Job {
    Read(ReadRequest),
    Audit(AuditEntry),
}

/// The session's work queue, read side: read requests (at most [`MAX_WAITING_READS`]
/// waiting; more breaks the protocol) and audit entries (at most [`MAX_QUEUED_AUDITS`]
/// waiting; more are dropped) share one queue so they are handled in the order sent.
struct Jobs {
    tx: mpsc::UnboundedSender<Job>,
    reads: Arc<AtomicUsize>,
    audits: Arc<AtomicUsize>,
}

/// The session's work queue, worker side.
struct JobQueue {
    rx: mpsc::UnboundedReceiver<Job>,
    reads: Arc<AtomicUsize>,
    audits: Arc<AtomicUsize>,
}

fn jobs() -> (Jobs, JobQueue) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (reads, audits) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    (
        Jobs {
            tx,
            reads: reads.clone(),
            audits: audits.clone(),
        },
        JobQueue { rx, reads, audits },
    )
}

impl Jobs {
    /// Queues a read request; a client with too many waiting breaks the protocol's bound
    /// (its own requests would otherwise pile up here).
    fn read(&self, r: ReadRequest) -> Result<(), End> {
        if self.reads.load(Ordering::SeqCst) >= MAX_WAITING_READS {
            return Err(End::Close(Close::TooManyReads));
        }
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(Job::Read(r)).is_err() {
            // The session is ending.
            self.reads.fetch_sub(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Queues an audit entry; `false` (dropped) when too many are waiting.
    fn audit(&self, e: AuditEntry) -> bool {
        if self.audits.load(Ordering::SeqCst) >= MAX_QUEUED_AUDITS {
            return false;
        }
        self.audits.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(Job::Audit(e)).is_err() {
            self.audits.fetch_sub(1, Ordering::SeqCst);
        }
        true
    }
}

impl JobQueue {
    async fn recv(&mut self) -> Option<Job> {
        let job = self.rx.recv().await?;
        match &job {
            Job::Read(_) => self.reads.fetch_sub(1, Ordering::SeqCst),
            Job::Audit(_) => self.audits.fetch_sub(1, Ordering::SeqCst),
        };
        Some(job)
    }
}

/// A token bucket: [`AUDIT_BURST`] at once, [`AUDIT_PER_SECOND`] after.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(AUDIT_BURST),
            at: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(AUDIT_PER_SECOND)).min(f64::from(AUDIT_BURST));
        self.at = self.at.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Turns a session's audit frames into entries the gateway trusts.
struct Auditor {
    /// The token's name: who, whatever the frame says.
    subscriber: String,
    permissions: Vec<String>,
    budget: Arc<Mutex<Bucket>>,
    /// Frames dropped over budget since the last one admitted.
    dropped: u64,
}

impl Auditor {
    /// The entry to store for an `audit` frame, or `None` (over budget, or a frame the
    /// channel never sends). `now` and `now_ms` are the arrival time.
    fn admit(&mut self, frame: ClientFrame, now: Instant, now_ms: i64) -> Option<AuditEntry> {
        let ClientFrame::Audit {
            tool,
            event_ref,
            arguments,
            outcome,
            detail,
            at_ms,
        } = frame
        else {
            return None;
        };
        if !self.budget.lock().expect("audit budget poisoned").take(now) {
            if self.dropped == 0 {
                tracing::warn!(
                    subscriber = %self.subscriber,
                    "audit frames arrive faster than {AUDIT_PER_SECOND}/s after a burst of {AUDIT_BURST}; dropping them"
                );
            }
            self.dropped += 1;
            return None;
        }
        if self.dropped > 0 {
            tracing::warn!(subscriber = %self.subscriber, dropped = self.dropped, "audit frames dropped over budget");
            self.dropped = 0;
        }
        let Some(known) = Tool::by_name(&tool) else {
            tracing::debug!(subscriber = %self.subscriber, "ignoring an audit frame for an unknown tool");
            return None;
        };
        if !AUDIT_OUTCOMES.contains(&outcome.as_str()) {
            tracing::debug!(subscriber = %self.subscriber, tool = known.name(), "ignoring an audit frame with an unknown outcome");
            return None;
        }
        if outcome != "refused" && !self.permissions.iter().any(|p| p == known.permission()) {
            tracing::debug!(
                subscriber = %self.subscriber, tool = known.name(),
                "ignoring an audit frame of a call this token does not grant (the channel refuses those)"
            );
            return None;
        }
        let at_ms = at_ms
            .filter(|t| (now_ms - AUDIT_MAX_AGE_MS..=now_ms + AUDIT_MAX_SKEW_MS).contains(t))
            .unwrap_or(now_ms);
        // The gateway's /metrics counts its sessions' calls too (outcome checked above).
        crate::metrics::tool_call(known.name(), &outcome);
        Some(crate::tools::audit_entry(
            &self.subscriber,
            known.name(),
            event_ref.as_deref(),
            &arguments,
            &outcome,
            &detail,
            at_ms,
        ))
    }
}

/// Stores a session's audit entries, attached to an event of the token's sources.
struct AuditWriter {
    store: Arc<dyn Store>,
    sources: Vec<String>,
}

impl AuditWriter {
    /// Blocking: the store.
    fn write(&self, mut entry: AuditEntry) {
        if let Some(r) = &entry.event_ref {
            entry.event_seq = crate::tools::resolve_event(self.store.as_ref(), &self.sources, r);
        }
        crate::tools::log_audit(&entry);
        if let Err(e) = self.store.record_audit(&entry) {
            tracing::error!(subscriber = %entry.subscriber, error = %e, "cannot store a linked channel's audit entry");
        }
    }
}

/// Works through a session's queue one job at a time, in the order received (one store call
/// per session at once): answers read requests, handing the result frames to the session to
/// send, and stores audit entries. `reader` is `None` when the token lacks `read-events`:
/// every read request is then refused without reading. Runs until the queue closes (the
/// client's reader stopped); once the session stops taking results, reads are skipped and
/// only audit entries are stored.
async fn answer_requests(
    reader: Option<StoreReader>,
    audit: AuditWriter,
    subscriber: String,
    mut jobs: JobQueue,
    results: mpsc::Sender<String>,
) {
    let audit = Arc::new(audit);
    while let Some(job) = jobs.recv().await {
        let r = match job {
            Job::Read(r) => r,
            Job::Audit(entry) => {
                let audit = audit.clone();
                let _ = tokio::task::spawn_blocking(move || audit.write(entry)).await;
                continue;
            }
        };
        let req = r.req();
        if results.is_closed() {
            continue;
        }
        let text = match &reader {
            None => {
                tracing::info!(subscriber = %subscriber, req, "read request refused: the token does not grant read-events");
                result_frame(req, Err(&ReadError::Refused(PERMISSION_DENIED.into())))
            }
            Some(reader) => {
                let reader = reader.clone();
                match tokio::task::spawn_blocking(move || answer(&reader, r)).await {
                    Ok(text) => text,
                    Err(_) => result_frame(req, Err(&ReadError::Failed("the store read panicked".into()))),
                }
            }
        };
        tracing::debug!(subscriber = %subscriber, req, bytes = text.len(), "answered a read request");
        // An error: the session ended meanwhile (the loop goes on for the audit entries).
        let _ = results.send(text).await;
    }
}

/// The result frame for one read request (blocking: the store), at most [`MAX_RESULT_FRAME`]
/// bytes.
fn answer(reader: &StoreReader, r: ReadRequest) -> String {
    let too_large = |what: &str| {
        ReadError::Failed(format!(
            "{what} is too large to send through the gateway; read it on the gateway with `hookwire events show`"
        ))
    };
    match r {
        ReadRequest::GetEvent { req, id } => {
            let view = match reader.fetch_event(&id) {
                Ok(v) => v,
                Err(e) => return result_frame(req, Err(&e)),
            };
            let v = view.to_json(MAX_PAYLOAD);
            let text = result_frame(req, Ok(&v));
            if text.len() <= MAX_RESULT_FRAME {
                return text;
            }
            // Cut the payload to what surely fits: a byte is at most 6 once escaped.
            let payload = serde_json::to_string(&v["payload"]).map_or(0, |p| p.len());
            let rest = text.len().saturating_sub(payload) + 64;
            let text = result_frame(req, Ok(&view.to_json(MAX_RESULT_FRAME.saturating_sub(rest) / 6)));
            if text.len() <= MAX_RESULT_FRAME {
                text
            } else {
                result_frame(req, Err(&too_large(&format!("event `{}`", id.trim()))))
            }
        }
        ReadRequest::ListEvents { req, source, limit } => {
            let limit = limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
            let text = result_frame(
                req,
                reader.list_events_blocking(source.as_deref(), limit).as_ref(),
            );
            if text.len() <= MAX_RESULT_FRAME {
                text
            } else {
                result_frame(req, Err(&too_large("the list")))
            }
        }
    }
}

fn result_frame(req: u64, r: Result<&Value, &ReadError>) -> String {
    ServerFrame::Result {
        req,
        answer: r.map(std::borrow::Cow::Borrowed).map_err(ReadError::clone),
    }
    .encode()
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
        results: &mut mpsc::Receiver<String>,
    ) -> Result<std::convert::Infallible, End> {
        let store = self.store.clone();
        let sub = self.sub.clone();
        let head = store.head();
        let start = blocking(move || store.subscribe(&sub, head)).await?;
        self.flow.pos = start;
        self.flow.stored = start;
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            subscriber: token.name.clone(),
            sources: token.sources.clone(),
            permissions: token.permissions.clone(),
            instructions: crate::instructions::for_sources(gw.pipeline.load().config(), &token.sources),
            head: self.store.head(),
            reads: true,
            audit: true,
        };
        tracing::debug!(subscriber = %token.name, resume_after = start, "session streaming");
        self.send(sink, ServerFrame::Hello(hello).encode()).await?;
        let mut heads = self.store.head_watch();
        loop {
            self.pump(sink).await?;
            enum Next {
                Ack(u64),
                Pong,
                Reply(String),
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
                Some(text) = results.recv() => Next::Reply(text),
                r = heads.changed() => match r {
                    Ok(()) => Next::More,
                    Err(_) => return Err(End::Close(Close::GoingAway)),
                },
            };
            match next {
                Next::Ack(id) => self.acked(id),
                Next::Pong => self.send(sink, ServerFrame::Pong.encode()).await?,
                Next::Reply(text) => self.send(sink, text).await?,
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
                    None => tracing::error!(
                        seq = e.seq,
                        "stored notification is not a JSON object; skipping it"
                    ),
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
        Ok(e) => e.clone().unwrap_or(End::Close(Close::GoingAway)),
        Err(_) => End::Close(Close::GoingAway),
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
            Err(End::Close(Close::StoreFailed))
        }
        Err(_) => Err(End::Close(Close::StoreFailed)),
    }
}

/// The event frame, the stored notification embedded byte for byte (checked to be a JSON
/// object).
fn event_frame(e: &Stored) -> Option<String> {
    ServerFrame::event(e.seq, &e.source, &e.line).map(|f| f.encode())
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    fn result_frames_say_refused_or_failed() {
        let ok = json!({"events": []});
        assert_eq!(
            result_frame(4, Ok(&ok)),
            r#"{"type":"result","req":4,"ok":{"events":[]}}"#
        );
        assert_eq!(
            result_frame(5, Err(&ReadError::Refused("no".into()))),
            r#"{"type":"result","req":5,"error":"no","kind":"refused"}"#
        );
        assert_eq!(
            result_frame(6, Err(&ReadError::Failed("db".into()))),
            r#"{"type":"result","req":6,"error":"db","kind":"failed"}"#
        );
    }

    fn store_with(events: &[(&str, &str, Vec<u8>)]) -> (Arc<dyn Store>, std::path::PathBuf) {
        use crate::store::sqlite::{SqliteStore, StoreOptions};
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
                    payload: payload.clone(),
                    headers: vec![("x-github-event".into(), "issues".into())],
                    folded: false,
                    signed_key: None,
                })
                .unwrap()
                .wait_blocking()
                .unwrap();
        }
        (store, dir)
    }

    fn answered(text: &str) -> Value {
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["type"], "result", "{text}");
        v
    }

    #[test]
    fn reads_see_only_the_tokens_sources_and_match_local_mode() {
        let (store, dir) = store_with(&[
            ("github", "gh-1", br#"{"a":1}"#.to_vec()),
            ("ops", "ops-1", b"{}".to_vec()),
        ]);
        let reader = StoreReader::new(store.clone(), vec!["github".into()]);
        let get = |id: &str| {
            answered(&answer(
                &reader,
                ReadRequest::GetEvent {
                    req: 1,
                    id: id.into(),
                },
            ))
        };
        let v = get("gh-1");
        assert_eq!(v["req"], 1);
        assert_eq!(
            v["ok"],
            reader.get_event_blocking("gh-1").unwrap(),
            "the same JSON as local mode"
        );
        assert_eq!(v["ok"]["payload"], json!({"a": 1}));
        assert_eq!(get("1")["ok"]["delivery_id"], "gh-1", "by store id");
        // Another source's event is not found, word for word like a missing one.
        let other = get("ops-1");
        let missing = get("nope");
        assert_eq!(other["kind"], "refused");
        assert!(other.get("ok").is_none());
        assert_eq!(other["error"], "no event `ops-1` among this session's sources");
        assert_eq!(missing["error"], "no event `nope` among this session's sources");
        assert_eq!(get("2")["error"], "no event `2` among this session's sources");

        let list = |source: Option<&str>, limit: Option<u64>| {
            answered(&answer(
                &reader,
                ReadRequest::ListEvents {
                    req: 2,
                    source: source.map(str::to_owned),
                    limit,
                },
            ))
        };
        let v = list(None, Some(u64::MAX));
        let events = v["ok"]["events"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{v}");
        assert_eq!(events[0]["delivery_id"], "gh-1");
        assert_eq!(v["ok"], reader.list_events_blocking(None, None).unwrap());
        let v = list(Some("ops"), None);
        assert_eq!(v["kind"], "refused", "{v}");
        assert!(v["error"]
            .as_str()
            .unwrap()
            .contains("not one of this session's sources"));
        store.close(Duration::from_secs(1));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_payload_too_large_for_a_frame_is_cut() {
        // Control bytes: six bytes each once escaped, so the whole payload cannot fit.
        let payload = vec![1u8; MAX_PAYLOAD - 1];
        let (store, dir) = store_with(&[("github", "big", payload)]);
        let reader = StoreReader::new(store.clone(), vec!["github".into()]);
        let local = reader.get_event_blocking("big").unwrap();
        assert_eq!(local["payload_truncated"], false);
        assert!(serde_json::to_string(&local).unwrap().len() > MAX_RESULT_FRAME);
        let text = answer(
            &reader,
            ReadRequest::GetEvent {
                req: 3,
                id: "big".into(),
            },
        );
        assert!(text.len() <= MAX_RESULT_FRAME, "{}", text.len());
        let v = answered(&text);
        assert_eq!(v["ok"]["payload_truncated"], true);
        assert_eq!(v["ok"]["payload_bytes"], MAX_PAYLOAD - 1);
        let cut = v["ok"]["payload"].as_str().unwrap().len();
        assert!(cut > MAX_RESULT_FRAME / 8 && cut < MAX_PAYLOAD - 1, "{cut}");
        store.close(Duration::from_secs(1));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn without_read_events_every_request_is_refused_unread() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (store, dir) = store_with(&[]);
        rt.block_on(async {
            let (tx, rx) = jobs();
            let (results_tx, mut results) = mpsc::channel(4);
            let audit = AuditWriter {
                store: store.clone(),
                sources: vec!["github".into()],
            };
            let task = tokio::spawn(answer_requests(None, audit, "bob".into(), rx, results_tx));
            tx.read(ReadRequest::GetEvent {
                req: 11,
                id: "1".into(),
            })
            .unwrap();
            tx.read(ReadRequest::ListEvents {
                req: 12,
                source: None,
                limit: None,
            })
            .unwrap();
            for req in [11, 12] {
                let v = answered(&results.recv().await.unwrap());
                assert_eq!(v["req"], req);
                assert_eq!(v["kind"], "refused");
                assert!(
                    v["error"].as_str().unwrap().starts_with("permission denied"),
                    "{v}"
                );
            }
            drop(tx);
            task.await.unwrap();
        });
        store.close(Duration::from_secs(1));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn too_many_waiting_requests_break_the_protocol_and_audits_are_dropped() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (tx, mut rx) = jobs();
        let r = |req| ReadRequest::GetEvent { req, id: "1".into() };
        for req in 0..MAX_WAITING_READS as u64 {
            assert_eq!(tx.read(r(req)), Ok(()));
        }
        let refused = tx.read(r(99)).unwrap_err().close_frame().unwrap();
        assert_eq!(
            (refused.code, refused.reason.as_str()),
            (1008, "too many read requests waiting")
        );
        let e = crate::tools::audit_entry("a", "get_event", None, &Value::Null, "ok", "", 0);
        for _ in 0..MAX_QUEUED_AUDITS {
            assert!(tx.audit(e.clone()), "audits have their own bound");
        }
        assert!(!tx.audit(e.clone()), "beyond it they are dropped");
        // The one being answered no longer counts: one more of each may wait.
        assert_eq!(rt.block_on(rx.recv()), Some(Job::Read(r(0))));
        assert_eq!(tx.read(r(100)), Ok(()));
        assert!(!tx.audit(e.clone()));
        for _ in 1..MAX_WAITING_READS {
            assert!(matches!(rt.block_on(rx.recv()), Some(Job::Read(_))));
        }
        assert!(
            matches!(rt.block_on(rx.recv()), Some(Job::Audit(_))),
            "in the order sent"
        );
        assert!(tx.audit(e));
    }

    fn audit_frame(tool: &str, outcome: &str, at_ms: Option<i64>) -> ClientFrame {
        ClientFrame::Audit {
            tool: tool.into(),
            event_ref: Some("  d-1 ".into()),
            arguments: json!({"channel": "#c", "text": "t".repeat(300)}),
            outcome: outcome.into(),
            detail: "d".repeat(600),
            at_ms,
        }
    }

    #[test]
    fn audit_frames_parse_and_the_gateway_decides_who() {
        let f = ClientFrame::decode(
            r##"{"type":"audit","tool":"slack_post_message","event_ref":"d-1","arguments":{"channel":"#c"},
               "outcome":"ok","detail":"{}","at_ms":5,"subscriber":"mallory","event_seq":1}"##,
        )
        .unwrap();
        assert_eq!(
            f,
            ClientFrame::Audit {
                tool: "slack_post_message".into(),
                event_ref: Some("d-1".into()),
                arguments: json!({"channel": "#c"}),
                outcome: "ok".into(),
                detail: "{}".into(),
                at_ms: Some(5),
            },
            "a subscriber or event_seq in the frame is not even read"
        );
        let minimal =
            ClientFrame::decode(r#"{"type":"audit","tool":"get_event","outcome":"refused"}"#).unwrap();
        assert_eq!(
            minimal.encode(),
            r#"{"type":"audit","tool":"get_event","arguments":null,"outcome":"refused","detail":""}"#
        );
        assert!(ClientFrame::decode(r#"{"type":"audit","outcome":"ok"}"#).is_err());

        let t0 = Instant::now();
        let now_ms = 1_800_000_000_000;
        let mut a = Auditor {
            subscriber: "alice".into(),
            permissions: vec!["post-slack-message".into()],
            budget: Arc::new(Mutex::new(Bucket::new(t0))),
            dropped: 0,
        };
        let e = a
            .admit(
                audit_frame("slack_post_message", "ok", Some(now_ms - 1000)),
                t0,
                now_ms,
            )
            .unwrap();
        assert_eq!(e.subscriber, "alice");
        assert_eq!(e.tool, "slack_post_message");
        assert_eq!(e.event_ref.as_deref(), Some("d-1"));
        assert_eq!(
            e.event_seq, None,
            "resolved when stored, among the token's sources"
        );
        assert_eq!(e.at_ms, now_ms - 1000);
        assert_eq!(
            e.detail.chars().count(),
            crate::tools::AUDIT_DETAIL + 1,
            "local mode's caps"
        );
        let args: Value = serde_json::from_str(&e.arguments).unwrap();
        assert_eq!(args["text"].as_str().unwrap().chars().count(), 201);
        for bad in [Some(now_ms + 3_600_000), Some(0), None] {
            let e = a
                .admit(audit_frame("slack_post_message", "ok", bad), t0, now_ms)
                .unwrap();
            assert_eq!(e.at_ms, now_ms, "{bad:?}: the arrival time");
        }
        // Refused calls of any known tool are kept (the channel audits them); an action the
        // token does not grant cannot have succeeded or failed.
        assert!(a
            .admit(audit_frame("github_comment", "refused", None), t0, now_ms)
            .is_some());
        assert!(a
            .admit(audit_frame("github_comment", "ok", None), t0, now_ms)
            .is_none());
        assert!(a
            .admit(audit_frame("github_comment", "error", None), t0, now_ms)
            .is_none());
        assert!(a
            .admit(audit_frame("rm_rf", "refused", None), t0, now_ms)
            .is_none());
        assert!(a
            .admit(audit_frame("slack_post_message", "done", None), t0, now_ms)
            .is_none());
        assert!(a.admit(ClientFrame::Ping, t0, now_ms).is_none());
    }

    #[test]
    fn audit_frames_are_rate_limited_per_token() {
        let t0 = Instant::now();
        let budget = Arc::new(Mutex::new(Bucket::new(t0)));
        let mut a = Auditor {
            subscriber: "alice".into(),
            permissions: vec![],
            budget: budget.clone(),
            dropped: 0,
        };
        let mut admitted = 0;
        for _ in 0..300 {
            admitted += usize::from(
                a.admit(audit_frame("get_event", "refused", None), t0, 0)
                    .is_some(),
            );
        }
        assert_eq!(admitted, AUDIT_BURST as usize);
        assert_eq!(a.dropped, 300 - AUDIT_BURST as u64);
        // A new connection of the same token shares the budget.
        let mut b = Auditor {
            subscriber: "alice".into(),
            permissions: vec![],
            budget,
            dropped: 0,
        };
        assert!(b
            .admit(audit_frame("get_event", "refused", None), t0, 0)
            .is_none());
        let later = t0 + Duration::from_secs(3);
        let n = (0..10)
            .filter(|_| {
                b.admit(audit_frame("get_event", "refused", None), later, 0)
                    .is_some()
            })
            .count();
        assert_eq!(n, 3, "one per second after the burst");
        let much_later = t0 + Duration::from_secs(3600);
        let n = (0..300)
            .filter(|_| {
                b.admit(audit_frame("get_event", "refused", None), much_later, 0)
                    .is_some()
            })
            .count();
        assert_eq!(n, AUDIT_BURST as usize, "refilled up to the burst, no more");
    }

    #[test]
    fn audit_entries_are_stored_with_an_event_of_the_tokens_sources_only() {
        let (store, dir) = store_with(&[
            ("github", "gh-1", b"{}".to_vec()),
            ("ops", "ops-1", b"{}".to_vec()),
        ]);
        let w = AuditWriter {
            store: store.clone(),
            sources: vec!["github".into()],
        };
        let e =
            |r: &str| crate::tools::audit_entry("alice", "get_event", Some(r), &json!({}), "refused", "x", 1);
        w.write(e("gh-1"));
        w.write(e("ops-1"));
        w.write(e("evt_2"));
        let on_1 = store.audit_for(1).unwrap();
        assert_eq!(on_1.len(), 1);
        assert_eq!(
            (on_1[0].event_seq, on_1[0].subscriber.as_str()),
            (Some(1), "alice")
        );
        assert_eq!(
            store.audit_for(2).unwrap(),
            vec![],
            "another source's event: attached to none"
        );
        store.close(Duration::from_secs(1));
        let _ = std::fs::remove_dir_all(dir);
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
