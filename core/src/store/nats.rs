//! The scale-out backend: NATS JetStream (`store.backend: nats`), so several `hookwire serve`
//! replicas share one log and any replica serves any session.
//!
//! - **Events**: one stream `<P>_EVENTS`, subject `<p>.ev.<source>`, replicated
//!   `store.nats.replicas` times, limited by `store.max_age` and `store.max_bytes` with
//!   discard-new, so a full stream refuses (503) rather than dropping events nobody has yet.
//!   [`Store::append`] resolves its receipt only with JetStream's publish acknowledgement:
//!   the 2xx waits for the event to be stored on a quorum of the replicas. The stream
//!   sequence is the event's seq.
//! - **Dedup across replicas** for the whole `limits.dedup_window_secs`: a create-only write
//!   of `hash(source, delivery id)` in the key-value bucket `<P>_dedup`, whose `max_age` is
//!   the window (each key expires on its own). A key already there whose value is a seq is a
//!   repeat: acknowledged, not stored again. One still `pending` (its publisher failed or is
//!   publishing now) is published again with the same `Nats-Msg-Id`, and JetStream's own
//!   duplicate window keeps one copy: a claim that never got its publish through never
//!   swallows the vendor's retry.
//! - **Sessions**: each subscriber's acknowledgement floor is kept in `<P>_cursors` (written
//!   in order by one task), so a session resumes on any replica where it acknowledged. Its
//!   events are read with an ephemeral consumer filtered to its sources, kept while the
//!   session reads on in order; a page claims the head only once the stream leader confirms
//!   nothing of those sources lies between (`confirmed`: the consumer's replica may trail).
//!   Every replica learns of new events from a core-NATS note published after each
//!   acknowledged append (and a once-a-second look at the stream as a safety net).
//! - **Storm windows** in `<P>_storm`: per group, `<window start ms> <events admitted>`,
//!   changed only by revision-checked writes (create-only for a new group), so across every
//!   replica a window admits `max_events` and no more. Its keys live `store.max_age` (at
//!   least the dedup window): a longer storm window restarts when its key expires.
//! - **Tokens** in `<P>_tokens` (create-only by name, so two replicas cannot both create
//!   one), **audit** in the stream `<P>_AUDIT`; **takeover**: each session announces itself
//!   on `<p>.session.<name>` and every replica ends its own session for that token.
//!
//! The sync [`Store`] calls run on a runtime of their own (one thread), so they may be
//! called from the blocking pool, the CLI and tests alike; nothing here blocks an async
//! worker except the calls the gateway already makes from `spawn_blocking`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, consumer::pull, kv, stream};
use base64::Engine;
use crossbeam_channel::{Receiver, Sender};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};

use super::token::{self, NewToken, Token, TokenSecret, TokenStore};
use super::{AuditEntry, Backlog, Batch, Cursor, ListQuery, Record, Store, StoreError, Stored, Subscription};
use crate::config::NatsSettings;
use crate::event::Event;
use crate::sink::{Receipt, SinkError};
use crate::verify::timestamp::millis;

/// How long one JetStream request may take before the call fails (a node died and the
/// client is reconnecting to another).
const REQUEST: Duration = Duration::from_secs(10);
/// The value of a dedup claim whose event is not yet acknowledged by JetStream.
const PENDING: &[u8] = b"pending";
/// Events looked at, at most, to answer `events list` (newest first).
const LIST_SCAN: u64 = 20_000;

/// What a [`NatsStore`] needs besides `store.nats`.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// `store.nats`.
    pub settings: NatsSettings,
    /// `store.max_bytes`: the events stream's size limit.
    pub max_bytes: u64,
    /// `store.max_age`: the events stream's age limit.
    pub max_age: Duration,
    /// `limits.dedup_window_secs`: how long a delivery id stays claimed.
    pub dedup_window: Duration,
}

/// The JetStream names of one deployment (`store.nats.prefix`).
#[derive(Debug, Clone)]
struct Names {
    events: String,
    audit: String,
    subject: String,
}

impl Names {
    fn new(prefix: &str) -> Self {
        Names {
            events: format!("{}_EVENTS", prefix.to_uppercase()),
            audit: format!("{}_AUDIT", prefix.to_uppercase()),
            subject: prefix.to_owned(),
        }
    }
    fn event_subject(&self, source: &str) -> String {
        format!("{}.ev.{source}", self.subject)
    }
    fn audit_subject(&self, seq: Option<u64>) -> String {
        match seq {
            Some(s) => format!("{}.audit.{s}", self.subject),
            None => format!("{}.audit.none", self.subject),
        }
    }
    fn head_subject(&self) -> String {
        format!("{}.head", self.subject)
    }
    fn session_subject(&self, name: &str) -> String {
        format!("{}.session.{}", self.subject, hex::encode(name))
    }
    fn bucket(&self, what: &str) -> String {
        format!("{}_{what}", self.subject)
    }
}

/// One event as the stream keeps it.
#[derive(Serialize, Deserialize)]
struct Envelope {
    source: String,
    event: String,
    delivery_id: String,
    received_ms: i64,
    /// base64 of the notification line.
    line: String,
    /// base64 of the raw body.
    payload: String,
    /// `[[name, value], ...]`, as [`crate::event::Headers`] wrote it.
    headers: Box<serde_json::value::RawValue>,
    #[serde(default)]
    folded: bool,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    replay_of: Option<u64>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl Envelope {
    fn decode(seq: u64, bytes: &[u8]) -> Result<Record, StoreError> {
        let e: Envelope = serde_json::from_slice(bytes)
            .map_err(|e| StoreError::Db(format!("event {seq} in the stream is not hookwire's: {e}")))?;
        let bad = |_| StoreError::Db(format!("event {seq} in the stream is not hookwire's"));
        let headers = serde_json::from_str(e.headers.get())
            .map_err(|e| StoreError::Db(format!("event {seq} in the stream is not hookwire's: {e}")))?;
        Ok(Record {
            stored: Stored {
                seq,
                source: e.source,
                event: e.event,
                delivery_id: e.delivery_id,
                received_ms: e.received_ms,
                line: b64().decode(e.line).map_err(bad)?,
                folded: e.folded,
                target: e.target,
            },
            payload: b64().decode(e.payload).map_err(bad)?,
            headers,
            replay_of: e.replay_of,
        })
    }
}

/// What a token is kept as in `<P>_tokens`.
#[derive(Serialize, Deserialize)]
struct StoredToken {
    name: String,
    sources: Vec<String>,
    permissions: Vec<String>,
    created_ms: i64,
    expires_ms: Option<i64>,
    revoked_ms: Option<i64>,
    /// hex of the secret's SHA-256.
    hash: String,
}

impl StoredToken {
    fn token(self) -> Token {
        Token {
            name: self.name,
            sources: self.sources,
            permissions: self.permissions,
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            revoked_ms: self.revoked_ms,
        }
    }
}

/// An audit entry as the audit stream keeps it.
#[derive(Serialize, Deserialize)]
struct StoredAudit {
    at_ms: i64,
    subscriber: String,
    tool: String,
    event_ref: Option<String>,
    event_seq: Option<u64>,
    arguments: String,
    outcome: String,
    detail: String,
}

/// A JetStream failure as a store error, saying what was being done.
fn db<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> StoreError + '_ {
    move |e| StoreError::Db(format!("JetStream: {what}: {e}"))
}

/// The connection and handles every call shares.
struct Shared {
    rt: tokio::runtime::Handle,
    client: async_nats::Client,
    js: jetstream::Context,
    events: stream::Stream,
    dedup: kv::Store,
    cursors: kv::Store,
    tokens: kv::Store,
    storm: kv::Store,
    names: Names,
    head: watch::Sender<u64>,
    wake: (Sender<()>, Receiver<()>),
    /// Set when JetStream refused an event for size: not ready until the stream shrinks.
    refused_full: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Runs `fut` on the store's runtime and waits for it, bounded by [`REQUEST`].
    fn call<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rt.spawn(async move {
            let r = tokio::time::timeout(REQUEST, fut)
                .await
                .unwrap_or_else(|_| Err(StoreError::Db("JetStream did not answer in time".into())));
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or(Err(StoreError::Closed))
    }

    /// Raises the known head to `seq` and wakes the readers.
    fn advance(&self, seq: u64) {
        let raised = self.head.send_if_modified(|h| {
            let newer = seq > *h;
            if newer {
                *h = seq;
            }
            newer
        });
        if raised {
            let _ = self.wake.0.try_send(());
        }
    }
}

/// A subscriber's open reader: the consumer and where it stands.
struct Reader {
    consumer: jetstream::consumer::Consumer<pull::Config>,
    sources: Vec<String>,
    next_after: u64,
}

/// The JetStream store. See the module doc.
pub struct NatsStore {
    shared: Arc<Shared>,
    tokens: NatsTokens,
    acked: Arc<Mutex<HashMap<String, u64>>>,
    ack_tx: mpsc::UnboundedSender<AckNote>,
    /// Each subscriber's reader, locked on its own so sessions read side by side.
    readers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Reader>>>>>,
    sessions: tokio::sync::broadcast::Sender<(String, String)>,
    replica: String,
    /// Appends under way, so [`Store::close`] waits for them (the digests a stopping
    /// gateway's storm flush submits are nobody else's to retry).
    appending: Arc<(std::sync::atomic::AtomicUsize, tokio::sync::Notify)>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// A note to the cursor writer: write this subscriber's floor, or tell me when all is written.
enum AckNote {
    Write(String),
    Flush(oneshot::Sender<()>),
}

impl NatsStore {
    /// Connects, creates or updates the streams and buckets, and starts the background tasks.
    pub fn open(opts: NatsOptions) -> Result<Self, StoreError> {
        let (handle_tx, handle_rx) = std::sync::mpsc::sync_channel(1);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("hookwire-nats".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("hookwire-nats")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(rt.handle().clone()));
                rt.block_on(async move {
                    let _ = stop_rx.await;
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(|e| StoreError::Db(e.to_string()))?;
        let rt = handle_rx
            .recv()
            .map_err(|_| StoreError::Closed)?
            .map_err(StoreError::Db)?;
        let names = Names::new(&opts.settings.prefix);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let setup_names = names.clone();
        rt.spawn(async move {
            let r = tokio::time::timeout(REQUEST * 3, connect(opts, setup_names))
                .await
                .unwrap_or_else(|_| Err(StoreError::Db("JetStream: no server answered in time".into())));
            let _ = tx.send(r);
        });
        let opened = rx.recv().map_err(|_| StoreError::Closed).and_then(|r| r);
        let (client, js, events, dedup, cursors, tokens, storm, last) = match opened {
            Ok(x) => x,
            Err(e) => {
                let _ = stop_tx.send(());
                let _ = thread.join();
                return Err(e);
            }
        };
        let (head, _) = watch::channel(last);
        let shared = Arc::new(Shared {
            rt: rt.clone(),
            client,
            js,
            events,
            dedup,
            cursors,
            tokens,
            storm,
            names,
            head,
            wake: crossbeam_channel::bounded(1),
            refused_full: std::sync::atomic::AtomicBool::new(false),
        });
        let acked = Arc::new(Mutex::new(HashMap::new()));
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        rt.spawn(write_cursors(shared.clone(), acked.clone(), ack_rx));
        rt.spawn(follow_head(shared.clone()));
        let (sessions, _) = tokio::sync::broadcast::channel(64);
        let replica = hex::encode({
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).map_err(|e| StoreError::Db(e.to_string()))?;
            b
        });
        rt.spawn(follow_sessions(shared.clone(), sessions.clone(), replica.clone()));
        Ok(NatsStore {
            tokens: NatsTokens {
                shared: shared.clone(),
            },
            shared,
            acked,
            ack_tx,
            readers: Mutex::new(HashMap::new()),
            sessions,
            replica,
            appending: Arc::new((std::sync::atomic::AtomicUsize::new(0), tokio::sync::Notify::new())),
            stop: Mutex::new(Some(stop_tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    fn local_floor(&self, name: &str) -> Option<u64> {
        self.acked.lock().expect("acks poisoned").get(name).copied()
    }
}

type Opened = (
    async_nats::Client,
    jetstream::Context,
    stream::Stream,
    kv::Store,
    kv::Store,
    kv::Store,
    kv::Store,
    u64,
);

/// A client of `store.nats` (its servers, credentials and TLS). `retry`: keep trying while no
/// server answers (the gateway starting before the cluster) instead of failing at once.
async fn dial(s: &NatsSettings, retry: bool) -> Result<async_nats::Client, StoreError> {
    let mut co = match &s.credentials_file {
        Some(f) => async_nats::ConnectOptions::with_credentials_file(f.clone())
            .await
            .map_err(|e| StoreError::Db(format!("store.nats.credentials_file {}: {e}", f.display())))?,
        None => async_nats::ConnectOptions::new(),
    };
    co = co.name("hookwire").connection_timeout(Duration::from_secs(5));
    if retry {
        co = co.retry_on_initial_connect();
    }
    if let Some(tls) = &s.tls {
        co = co.require_tls(true);
        if let Some(ca) = &tls.ca_file {
            co = co.add_root_certificates(ca.clone());
        }
    }
    co.connect(s.servers.as_slice())
        .await
        .map_err(|e| StoreError::Db(format!("cannot connect to NATS: {e}")))
}

async fn connect(opts: NatsOptions, names: Names) -> Result<Opened, StoreError> {
    let s = &opts.settings;
    let client = dial(s, true).await?;
    let js = jetstream::new(client.clone());
    // The creating requests time out sooner than the default, to be tried again within the
    // open's deadline (`settled`); the handles kept are read through `js`, with the default.
    let mut setup = js.clone();
    setup.set_timeout(SETUP_TIMEOUT);
    let events_config = stream::Config {
        name: names.events.clone(),
        subjects: vec![format!("{}.ev.*", names.subject)],
        num_replicas: s.replicas,
        max_bytes: i64::try_from(opts.max_bytes).unwrap_or(i64::MAX),
        max_age: opts.max_age,
        discard: stream::DiscardPolicy::New,
        storage: stream::StorageType::File,
        allow_direct: true,
        ..Default::default()
    };
    let info = settled("events stream", || {
        setup.create_or_update_stream(events_config.clone())
    })
    .await?;
    let events = settled("events stream", || js.get_stream(&names.events)).await?;
    let audit_config = stream::Config {
        name: names.audit.clone(),
        subjects: vec![format!("{}.audit.*", names.subject)],
        num_replicas: s.replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    settled("audit stream", || {
        setup.create_or_update_stream(audit_config.clone())
    })
    .await?;
    let bucket = |what: &str, max_age: Duration| kv::Config {
        bucket: names.bucket(what),
        history: 1,
        max_age,
        num_replicas: s.replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    let kv = |name: &'static str, max_age: Duration| {
        let config = bucket(name, max_age);
        let (js, setup) = (&js, &setup);
        async move {
            let what = format!("{name} bucket");
            settled(&what, || setup.create_or_update_key_value(config.clone())).await?;
            settled(&what, || js.get_key_value(&config.bucket)).await
        }
    };
    let dedup = kv("dedup", opts.dedup_window).await?;
    let cursors = kv("cursors", Duration::ZERO).await?;
    let tokens = kv("tokens", Duration::ZERO).await?;
    let storm = kv("storm", opts.max_age.max(opts.dedup_window)).await?;
    Ok((
        client,
        js,
        events,
        dedup,
        cursors,
        tokens,
        storm,
        info.state.last_sequence,
    ))
}

/// Tries of one set-up request before the store gives up opening.
const SETUP_TRIES: u32 = 5;
/// How long one set-up request may take before it is tried again.
const SETUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs `attempt` up to `tries` times, pausing `pause` (doubled each time) after an error that
/// `again` accepts; any other answer, and the last, is returned as it is.
async fn with_retries<T, E, F>(
    tries: u32,
    mut pause: Duration,
    again: impl Fn(&E) -> bool,
    mut attempt: impl FnMut() -> F,
) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
{
    for _ in 1..tries {
        match attempt().await {
            Err(e) if again(&e) => {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            done => return done,
        }
    }
    attempt().await
}

/// Runs an idempotent set-up request until it succeeds, [`SETUP_TRIES`] times at most: replicas
/// starting together on a fresh cluster create the same streams at once, and one's request
/// can time out while the cluster places the other's. The open's own deadline bounds it too.
async fn settled<T, E, F>(what: &str, attempt: impl FnMut() -> F) -> Result<T, StoreError>
where
    E: std::fmt::Display,
    F: Future<Output = Result<T, E>>,
{
    let again = |e: &E| {
        tracing::warn!(what, error = %e, "JetStream set-up request failed; trying again");
        true
    };
    with_retries(SETUP_TRIES, Duration::from_millis(250), again, attempt)
        .await
        .map_err(db(what))
}

/// How many times a write is sent when no server took it ([`reaching`]): pauses of 50 ms
/// doubling, about six seconds in all, as the cluster of a loaded machine can take seconds to
/// spread a new stream's subjects.
const REACH_TRIES: u32 = 8;

/// Sends a write to a stream or bucket again when JetStream answers that no stream takes its
/// subject, or that no server answered a request the write made (a bucket's create reads the
/// key it found taken): the server this client talks to has not yet learned the subjects of a
/// stream the cluster has just placed, or whose leader is moving. No server took that request,
/// so sending the write again is safe (a create or update still checks what it checked). Any
/// other answer is returned at once.
async fn reaching<T, E, F>(attempt: impl FnMut() -> F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: Future<Output = Result<T, E>>,
{
    sent_again_while(
        |e: &E| e.to_string().contains("no stream found") || nobody_answered(e),
        attempt,
    )
    .await
}

/// Sends a request again, [`REACH_TRIES`] times at most, while `unheard` says no server took
/// or answered it: [`reaching`] for writes, [`answered`] for reads.
async fn sent_again_while<T, E, F>(unheard: impl Fn(&E) -> bool, attempt: impl FnMut() -> F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: Future<Output = Result<T, E>>,
{
    let again = |e: &E| {
        let lost = unheard(e);
        if lost {
            tracing::debug!(error = %e, "no JetStream server took or answered a request yet; sending it again");
        }
        lost
    };
    with_retries(REACH_TRIES, Duration::from_millis(50), again, attempt).await
}

/// Whether JetStream's answer is NATS's "no responders": no server had interest in the
/// request's subject yet.
fn nobody_answered(e: &impl std::fmt::Display) -> bool {
    let text = e.to_string();
    text.contains("no responders") || text.contains("from the stream: 503")
}

/// Sends a read again when no server answered it: the servers holding a stream, bucket or
/// reader just placed have not yet made their interest known to the server this client talks
/// to, as [`reaching`] is for writes. A read changes nothing, so sending it again is safe; any
/// other answer is returned at once.
async fn answered<T, E, F>(attempt: impl FnMut() -> F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: Future<Output = Result<T, E>>,
{
    sent_again_while(|e: &E| nobody_answered(e), attempt).await
}

/// One pull of up to `max` messages from `consumer`, gathered. On a reader just opened
/// (`fresh`), a batch no server answered is asked again ([`answered`]), which needs the whole
/// batch, since the "no responders" status arrives in place of its messages. A reader kept
/// from an earlier read that no server answers has gone (with a node), and its caller opens
/// another at once.
async fn pull_batch(
    consumer: &jetstream::consumer::Consumer<pull::Config>,
    max: usize,
    fresh: bool,
) -> Result<Vec<jetstream::Message>, async_nats::Error> {
    let pull = || async {
        let mut batch = consumer.fetch().max_messages(max).messages().await?;
        let mut got = Vec::new();
        while let Some(m) = batch.next().await {
            got.push(m?);
        }
        Ok::<_, async_nats::Error>(got)
    };
    if fresh {
        answered(pull).await
    } else {
        pull().await
    }
}

/// Writes each subscriber's acknowledgement floor, in order, so a later write never loses
/// to an earlier one.
async fn write_cursors(
    shared: Arc<Shared>,
    acked: Arc<Mutex<HashMap<String, u64>>>,
    mut notes: mpsc::UnboundedReceiver<AckNote>,
) {
    let mut written: HashMap<String, u64> = HashMap::new();
    while let Some(note) = notes.recv().await {
        let name = match note {
            AckNote::Flush(done) => {
                let _ = done.send(());
                continue;
            }
            AckNote::Write(name) => name,
        };
        let Some(floor) = acked.lock().expect("acks poisoned").get(&name).copied() else {
            continue;
        };
        if written.get(&name).is_some_and(|w| *w >= floor) {
            continue;
        }
        let key = hex::encode(&name);
        // A node failing over: try again until the cluster takes it.
        for attempt in 0..20u32 {
            match shared.cursors.put(&key, floor.to_string().into()).await {
                Ok(_) => {
                    written.insert(name.clone(), floor);
                    break;
                }
                Err(e) => {
                    if attempt == 0 {
                        tracing::warn!(subscriber = %name, error = %e, "cannot record an acknowledgement in JetStream; retrying");
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }
}

/// Keeps the head current: the notes other replicas publish after each append, and a look
/// at the stream every second for a note that was lost.
async fn follow_head(shared: Arc<Shared>) {
    let mut notes = match shared.client.subscribe(shared.names.head_subject()).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot follow other replicas' appends; polling the stream");
            None
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some(note) = async { match notes.as_mut() { Some(n) => n.next().await, None => std::future::pending().await } } => {
                if let Some(seq) = std::str::from_utf8(&note.payload).ok().and_then(|s| s.parse().ok()) {
                    shared.advance(seq);
                }
            }
            _ = tick.tick() => {
                if let Ok(info) = shared.events.get_info().await {
                    shared.advance(info.state.last_sequence);
                }
            }
        }
    }
}

/// Relays other replicas' session announcements to this one's gateway.
async fn follow_sessions(
    shared: Arc<Shared>,
    tx: tokio::sync::broadcast::Sender<(String, String)>,
    replica: String,
) {
    let subject = format!("{}.session.*", shared.names.subject);
    let mut sub = match shared.client.subscribe(subject).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot follow sessions on other replicas");
            return;
        }
    };
    while let Some(msg) = sub.next().await {
        let Some(from) = std::str::from_utf8(&msg.payload).ok() else {
            continue;
        };
        if from == replica {
            continue;
        }
        let Some(name) = msg
            .subject
            .rsplit('.')
            .next()
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| String::from_utf8(b).ok())
        else {
            continue;
        };
        let _ = tx.send((name, from.to_owned()));
    }
}

/// The dedup key of a delivery: no delivery id (vendor-chosen, any bytes) is ever a key.
fn dedup_key(source: &str, delivery_id: &str) -> String {
    let mut h = Sha256::new();
    // Length-prefixed, so no (source, id) pair reads as another.
    h.update((source.len() as u64).to_be_bytes());
    h.update(source.as_bytes());
    h.update(delivery_id.as_bytes());
    hex::encode(&h.finalize()[..20])
}

fn envelope(e: &Event, target: Option<String>, replay_of: Option<u64>) -> Vec<u8> {
    serde_json::to_vec(&Envelope {
        source: e.source.clone(),
        event: e.event.clone(),
        delivery_id: e.delivery_id.clone(),
        received_ms: e.received_ms,
        line: b64().encode(&e.line),
        payload: b64().encode(&e.payload),
        headers: serde_json::value::RawValue::from_string(e.headers.as_json().to_owned())
            .expect("headers are JSON"),
        folded: e.folded,
        target,
        replay_of,
    })
    .expect("an envelope serialises")
}

/// The envelope of a copy of `r` for `target` (every subscriber when `None`), delivered anew:
/// never folded, naming the original `of`.
fn copy_of(r: Record, received_ms: i64, target: Option<String>, of: u64) -> Vec<u8> {
    let e = Event {
        source: r.stored.source,
        event: r.stored.event,
        delivery_id: r.stored.delivery_id,
        line: r.stored.line,
        received_ms,
        payload: r.payload.into(),
        headers: r.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect(),
        folded: false,
        signed_key: None,
    };
    envelope(&e, target, Some(of))
}

/// Publishes one event and waits for JetStream's acknowledgement: `(seq, duplicate)`.
async fn publish(
    shared: &Shared,
    subject: String,
    body: Vec<u8>,
    msg_id: Option<&str>,
) -> Result<(u64, bool), SinkError> {
    let mut headers = async_nats::HeaderMap::new();
    if let Some(id) = msg_id {
        headers.insert("Nats-Msg-Id", id);
    }
    let body = bytes::Bytes::from(body);
    let ack = reaching(|| async {
        shared
            .js
            .publish_with_headers(subject.clone(), headers.clone(), body.clone())
            .await?
            .await
    });
    match ack.await {
        Ok(a) => {
            shared
                .refused_full
                .store(false, std::sync::atomic::Ordering::Relaxed);
            shared.advance(a.sequence);
            let _ = shared
                .client
                .publish(shared.names.head_subject(), a.sequence.to_string().into())
                .await;
            Ok((a.sequence, a.duplicate))
        }
        Err(e) => {
            let text = e.to_string();
            if text.contains("maximum") {
                tracing::warn!(error = %text, "JetStream refused an event: the events stream is full");
                shared
                    .refused_full
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                Err(SinkError::Full)
            } else {
                tracing::error!(error = %text, "JetStream did not acknowledge an event");
                Err(SinkError::Failed)
            }
        }
    }
}

/// The append: claim the delivery id across replicas, publish, record the seq in the claim.
async fn append(shared: Arc<Shared>, event: Event) -> Result<u64, SinkError> {
    let key = dedup_key(&event.source, &event.delivery_id);
    match reaching(|| shared.dedup.create(&key, PENDING.into())).await {
        Ok(_) => {}
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
            let held = answered(|| shared.dedup.get(&key)).await.map_err(|e| {
                tracing::error!(error = %e, "cannot read a dedup claim");
                SinkError::Failed
            })?;
            if let Some(seq) = held
                .as_deref()
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse::<u64>().ok())
            {
                tracing::debug!(source = %event.source, seq, "repeat of a delivery another replica stored");
                return Ok(seq);
            }
            // Pending: being published, or its publisher failed. Publishing again with the same
            // message id keeps one copy within JetStream's duplicate window.
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot claim a delivery id in JetStream");
            return Err(SinkError::Failed);
        }
    }
    let subject = shared.names.event_subject(&event.source);
    let (seq, _) = publish(&shared, subject, envelope(&event, None, None), Some(&key)).await?;
    if let Err(e) = reaching(|| shared.dedup.put(&key, seq.to_string().into())).await {
        tracing::warn!(error = %e, "cannot record a stored delivery's seq in its claim");
    }
    Ok(seq)
}

/// The seq recorded in the dedup claim of `delivery` for any source the stream holds.
async fn claimed_seq(shared: &Shared, delivery: &str) -> Result<Option<u64>, StoreError> {
    let prefix = format!("{}.ev.", shared.names.subject);
    let mut subjects = shared
        .events
        .info_with_subjects(format!("{prefix}*"))
        .await
        .map_err(db("stream subjects"))?;
    let mut newest = None;
    while let Some(s) = subjects.next().await {
        let (subject, _) = s.map_err(db("stream subjects"))?;
        let Some(source) = subject.strip_prefix(&prefix) else {
            continue;
        };
        let held = shared
            .dedup
            .get(dedup_key(source, delivery))
            .await
            .map_err(db("read a claim"))?;
        let seq = held
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok());
        newest = newest.max(seq);
    }
    Ok(newest)
}

async fn open_reader(
    shared: &Shared,
    sources: &[String],
    after: u64,
) -> Result<jetstream::consumer::Consumer<pull::Config>, StoreError> {
    shared
        .events
        .create_consumer(pull::Config {
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: after + 1,
            },
            ack_policy: jetstream::consumer::AckPolicy::None,
            filter_subjects: sources.iter().map(|s| shared.names.event_subject(s)).collect(),
            inactive_threshold: Duration::from_secs(120),
            memory_storage: true,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(db("open a reader"))
}

/// Up to `max` events of `sources` after `after`: `(records, exhausted)`. `fresh`: the reader
/// was just opened ([`pull_batch`]).
async fn fetch(
    consumer: &jetstream::consumer::Consumer<pull::Config>,
    max: usize,
    fresh: bool,
) -> Result<(Vec<Record>, bool), StoreError> {
    let batch = pull_batch(consumer, max, fresh)
        .await
        .map_err(db("read events"))?;
    let mut out = Vec::new();
    let mut pending = None;
    for m in batch {
        let info = m.info().map_err(db("read events"))?;
        let seq = info.stream_sequence;
        pending = Some(info.pending);
        out.push(Envelope::decode(seq, &m.payload)?);
    }
    // Exhausted only on the server's word: nothing pending after the last message delivered,
    // or, when none came, nothing pending at all. A short batch alone proves nothing.
    let exhausted = match pending {
        Some(p) => p == 0,
        None => {
            let info = consumer.get_info().await.map_err(db("read events"))?;
            info.num_pending == 0
        }
    };
    Ok((out, exhausted))
}

/// How long apart a reader whose replica is behind is read again, and for how long before
/// the read fails (the session then ends and its client reconnects): never a silent stall,
/// and inside the [`REQUEST`] bound of the whole read.
const BEHIND_WAIT: Duration = Duration::from_millis(10);
const BEHIND_LIMIT: Duration = Duration::from_secs(5);

/// A fetch's `(records, exhausted)`, with `exhausted` confirmed by the stream leader. The
/// reader's consumer lives on one replica of the stream, and its "nothing pending" holds for
/// what that replica has stored, which can trail the leader's acknowledgements by a few
/// events under load (seen in `bench/gateway nats 2`: 5 to 12 events). Taking the head as
/// read then would pass over those events: a reader opened from there never returns them.
/// So when the head is beyond the last event returned, the leader is asked for the first
/// event of the reader's sources after it; if there is one up to the head, the replica is
/// behind: what came is returned as not exhausted, or, when nothing came, the reader is read
/// again until it catches up.
async fn confirmed(
    shared: &Shared,
    reader: &Reader,
    after: u64,
    head: u64,
    max: usize,
    (mut records, mut exhausted): (Vec<Record>, bool),
) -> Result<(Vec<Record>, bool), StoreError> {
    let give_up = tokio::time::Instant::now() + BEHIND_LIMIT;
    loop {
        let last = records.last().map_or(after, |r| r.stored.seq);
        if !exhausted || head <= last || !leader_has_more(shared, &reader.sources, last, head).await? {
            return Ok((records, exhausted));
        }
        if !records.is_empty() {
            return Ok((records, false));
        }
        if tokio::time::Instant::now() >= give_up {
            return Err(StoreError::Db(
                "the reader's replica of the events stream stays behind its leader".into(),
            ));
        }
        tokio::time::sleep(BEHIND_WAIT).await;
        (records, exhausted) = fetch(&reader.consumer, max, false).await?;
    }
}

/// Whether the stream leader holds an event of `sources` after `last`, up to `head`.
async fn leader_has_more(
    shared: &Shared,
    sources: &[String],
    last: u64,
    head: u64,
) -> Result<bool, StoreError> {
    use async_nats::jetstream::stream::RawMessageErrorKind;
    for source in sources {
        // `get_first_raw_message_by_subject` always asks the leader, unlike a direct get.
        match shared
            .events
            .get_first_raw_message_by_subject(shared.names.event_subject(source), last + 1)
            .await
        {
            Ok(m) if m.sequence <= head => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => {}
            Err(e) => return Err(db("read events")(e)),
        }
    }
    Ok(false)
}

/// Every message of a reader through `head`: its end confirmed by the stream leader, as a
/// session's read is ([`confirmed`]), so a replica that trails the leader does not cut it short.
async fn drain(shared: &Shared, reader: &Reader, head: u64) -> Result<Vec<Record>, StoreError> {
    const PAGE: usize = 256;
    let mut all: Vec<Record> = Vec::new();
    loop {
        let after = all.last().map_or(reader.next_after, |r| r.stored.seq);
        let found = fetch(&reader.consumer, PAGE, all.is_empty()).await?;
        let (page, done) = confirmed(shared, reader, after, head, PAGE, found).await?;
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

impl Store for NatsStore {
    fn append(&self, event: Event) -> Result<Receipt, StoreError> {
        let (tx, rx) = oneshot::channel();
        let shared = self.shared.clone();
        let appending = self.appending.clone();
        appending.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.shared.rt.spawn(async move {
            let _ = tx.send(append(shared, event).await);
            appending.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            appending.1.notify_waiters();
        });
        Ok(Receipt::pending(rx))
    }

    fn read_after(&self, sub: &Subscription, after: u64, max: usize) -> Result<Batch, StoreError> {
        let head = self.head();
        if sub.sources.is_empty() || max == 0 {
            return Ok(Batch {
                events: Vec::new(),
                through: head.max(after),
            });
        }
        let slot = self
            .readers
            .lock()
            .expect("readers poisoned")
            .entry(sub.name.clone())
            .or_default()
            .clone();
        let (shared, sub) = (self.shared.clone(), sub.clone());
        self.shared.call(async move {
            let mut slot = slot.lock().await;
            // Taken out while it reads: the consumer advances as it delivers (no acks), so one
            // whose read was cut short (an error, a timeout) must not be read on from.
            let kept = slot
                .take()
                .filter(|r| r.next_after == after && r.sources == sub.sources);
            let fresh = kept.is_none();
            let mut reader = match kept {
                Some(r) => r,
                None => Reader {
                    consumer: open_reader(&shared, &sub.sources, after).await?,
                    sources: sub.sources.clone(),
                    next_after: after,
                },
            };
            let found = match fetch(&reader.consumer, max, fresh).await {
                Ok((r, exhausted)) if exhausted || !r.is_empty() => (r, exhausted),
                // Failed, or nothing came though events are pending (the consumer went with
                // a node, or a leader changed): a fresh one where this one stood.
                _ => {
                    let stale = reader.consumer.cached_info().name.clone();
                    let events = shared.events.clone();
                    tokio::spawn(async move {
                        let _ = events.delete_consumer(&stale).await;
                    });
                    reader.consumer = open_reader(&shared, &sub.sources, after).await?;
                    let (r, exhausted) = fetch(&reader.consumer, max, true).await?;
                    if r.is_empty() && !exhausted {
                        // Never a silent stall: the session ends and its client reconnects.
                        return Err(StoreError::Db(
                            "JetStream delivered nothing though events are pending".into(),
                        ));
                    }
                    (r, exhausted)
                }
            };
            let (records, exhausted) = confirmed(&shared, &reader, after, head, max, found).await?;
            let last = records.last().map_or(after, |r| r.stored.seq);
            // Everything of these sources up to the head known before the fetch was fetched.
            let through = if exhausted { last.max(head) } else { last };
            shared.advance(last);
            reader.next_after = through;
            *slot = Some(reader);
            Ok(Batch {
                events: records
                    .into_iter()
                    .map(|r| r.stored)
                    .filter(|e| sub.wants(e))
                    .map(Arc::new)
                    .collect(),
                through,
            })
        })
    }

    fn head(&self) -> u64 {
        *self.shared.head.borrow()
    }

    fn wake(&self) -> Receiver<()> {
        self.shared.wake.1.clone()
    }

    fn head_watch(&self) -> watch::Receiver<u64> {
        self.shared.head.subscribe()
    }

    fn ack(&self, subscriber: &str, seq: u64) {
        {
            let mut acked = self.acked.lock().expect("acks poisoned");
            let floor = acked.entry(subscriber.to_owned()).or_insert(0);
            if seq <= *floor {
                return;
            }
            *floor = seq;
        }
        let _ = self.ack_tx.send(AckNote::Write(subscriber.to_owned()));
    }

    fn cursor(&self, subscriber: &str, start: u64) -> Result<u64, StoreError> {
        let shared = self.shared.clone();
        let key = hex::encode(subscriber);
        let stored = self.shared.call(async move {
            let held = answered(|| shared.cursors.get(&key))
                .await
                .map_err(db("read a cursor"))?;
            match held
                .as_deref()
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
            {
                Some(c) => Ok(c),
                None => {
                    reaching(|| shared.cursors.put(&key, start.to_string().into()))
                        .await
                        .map_err(db("create a cursor"))?;
                    Ok(start)
                }
            }
        })?;
        // This replica's own acknowledgements not yet written count (never another's stale one:
        // the bucket is the truth across replicas).
        let floor = stored.max(self.local_floor(subscriber).unwrap_or(0));
        self.acked
            .lock()
            .expect("acks poisoned")
            .insert(subscriber.to_owned(), floor);
        Ok(floor)
    }

    fn subscribe(&self, sub: &Subscription, start: u64) -> Result<u64, StoreError> {
        self.cursor(&sub.name, start)
    }

    fn forget_subscriber(&self, name: &str) -> Result<(), StoreError> {
        self.acked.lock().expect("acks poisoned").remove(name);
        let shared = self.shared.clone();
        let key = hex::encode(name);
        self.shared
            .call(async move { shared.cursors.delete(&key).await.map_err(db("forget a cursor")) })
    }

    fn recent_deliveries(&self, since_ms: i64) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        // Dedup lives in the bucket, shared by every replica; nothing to seed locally.
        let _ = since_ms;
        Ok(Vec::new())
    }

    fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        let Ok(seq) = id.parse::<u64>() else {
            // By delivery id: its claim names the seq while the dedup window lasts; older, the
            // newest events are scanned.
            let shared = self.shared.clone();
            let delivery = id.to_owned();
            if let Some(seq) = self
                .shared
                .call(async move { claimed_seq(&shared, &delivery).await })?
            {
                return self.get(&seq.to_string());
            }
            let found = self.list(&ListQuery {
                limit: usize::MAX,
                ..ListQuery::default()
            })?;
            return match found.into_iter().find(|e| e.delivery_id == id) {
                Some(e) => self.get(&e.seq.to_string()),
                None => Ok(None),
            };
        };
        let shared = self.shared.clone();
        self.shared.call(async move {
            match answered(|| shared.events.direct_get(seq)).await {
                Ok(m) => Ok(Some(Envelope::decode(seq, &m.payload)?)),
                Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => Ok(None),
                Err(e) => Err(db("read an event")(&e)),
            }
        })
    }

    fn list(&self, q: &ListQuery) -> Result<Vec<Stored>, StoreError> {
        let shared = self.shared.clone();
        let q = q.clone();
        self.shared.call(async move {
            let info = shared.events.get_info().await.map_err(db("stream info"))?;
            let (first, last) = (info.state.first_sequence, info.state.last_sequence);
            let mut out = Vec::new();
            let mut seq = last;
            let floor = first.max(last.saturating_sub(LIST_SCAN));
            while seq >= floor && seq > 0 && out.len() < q.limit {
                match answered(|| shared.events.direct_get(seq)).await {
                    Ok(m) => {
                        let r = Envelope::decode(seq, &m.payload)?.stored;
                        if q.since_ms.is_some_and(|s| r.received_ms < s) {
                            break;
                        }
                        if q.source.as_ref().is_none_or(|s| *s == r.source) {
                            out.push(r);
                        }
                    }
                    Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => {}
                    Err(e) => return Err(db("read an event")(&e)),
                }
                seq -= 1;
            }
            Ok(out)
        })
    }

    fn replay(&self, source: &str, since_ms: Option<i64>, target: Option<&str>) -> Result<usize, StoreError> {
        let shared = self.shared.clone();
        let (source, target) = (source.to_owned(), target.map(str::to_owned));
        self.shared.call(async move {
            let head = *shared.head.borrow();
            let sources = vec![source.clone()];
            let reader = Reader {
                consumer: open_reader(&shared, &sources, 0).await?,
                sources,
                next_after: 0,
            };
            let records = drain(&shared, &reader, head).await;
            let _ = shared
                .events
                .delete_consumer(&reader.consumer.cached_info().name)
                .await;
            let mut n = 0;
            for r in records? {
                // As SQLite: originals only, never a folded event on its own.
                if r.replay_of.is_some()
                    || r.stored.folded
                    || since_ms.is_some_and(|s| r.stored.received_ms < s)
                {
                    continue;
                }
                let of = r.stored.seq;
                let body = copy_of(r, millis(SystemTime::now()), target.clone(), of);
                publish(&shared, shared.names.event_subject(&source), body, None)
                    .await
                    .map_err(|e| StoreError::Db(format!("JetStream: replay: {e}")))?;
                n += 1;
            }
            Ok(n)
        })
    }

    fn replay_one(&self, seq: u64, target: Option<&str>) -> Result<Option<u64>, StoreError> {
        let Some(r) = self.get(&seq.to_string())? else {
            return Ok(None);
        };
        // As SQLite: the copy keeps when the original arrived and names the original, even
        // when the one copied is itself a copy.
        let of = r.replay_of.unwrap_or(seq);
        let subject = self.shared.names.event_subject(&r.stored.source);
        let received = r.stored.received_ms;
        let body = copy_of(r, received, target.map(str::to_owned), of);
        let shared = self.shared.clone();
        self.shared.call(async move {
            let (new, _) = publish(&shared, subject, body, None)
                .await
                .map_err(|e| StoreError::Db(format!("JetStream: re-deliver: {e}")))?;
            Ok(Some(new))
        })
    }

    fn cursors(&self) -> Result<Vec<Cursor>, StoreError> {
        let shared = self.shared.clone();
        let mut out = self.shared.call(async move {
            let mut keys = shared.cursors.keys().await.map_err(db("list cursors"))?;
            let mut out = Vec::new();
            while let Some(k) = keys.next().await {
                let k = k.map_err(db("list cursors"))?;
                let Some(name) = hex::decode(&k).ok().and_then(|b| String::from_utf8(b).ok()) else {
                    continue;
                };
                if let Some(v) = answered(|| shared.cursors.get(&k))
                    .await
                    .map_err(db("read a cursor"))?
                {
                    if let Some(acked) = std::str::from_utf8(&v).ok().and_then(|v| v.parse().ok()) {
                        out.push(Cursor { name, acked });
                    }
                }
            }
            Ok(out)
        })?;
        for c in &mut out {
            c.acked = c.acked.max(self.local_floor(&c.name).unwrap_or(0));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn backlog(&self, sub: &Subscription) -> Result<Backlog, StoreError> {
        if sub.sources.is_empty() {
            return Ok(Backlog::default());
        }
        let shared = self.shared.clone();
        let key = hex::encode(&sub.name);
        let local = self.local_floor(&sub.name);
        let sources = sub.sources.clone();
        self.shared.call(async move {
            let held = answered(|| shared.cursors.get(&key))
                .await
                .map_err(db("read a cursor"))?;
            let stored = held
                .as_deref()
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok());
            let Some(floor) = stored.max(local) else {
                return Ok(Backlog::default());
            };
            let mut consumer = open_reader(&shared, &sources, floor).await?;
            let pending = consumer.info().await.map_err(db("backlog"))?.num_pending;
            let oldest = if pending > 0 {
                fetch(&consumer, 1, true)
                    .await?
                    .0
                    .first()
                    .map(|r| r.stored.received_ms)
            } else {
                None
            };
            let _ = shared.events.delete_consumer(&consumer.cached_info().name).await;
            Ok(Backlog {
                events: pending,
                oldest_ms: oldest,
            })
        })
    }

    fn writable(&self) -> Result<(), StoreError> {
        let shared = self.shared.clone();
        self.shared.call(async move {
            let info = tokio::time::timeout(Duration::from_millis(500), shared.events.get_info())
                .await
                .map_err(|_| StoreError::Db("JetStream did not answer within 500 ms".into()))?
                .map_err(db("stream info"))?;
            // The last event was refused for size and nothing has aged out since (the stream
            // only shrinks by `max_age`): full. Room made, or an event taken: ready again.
            let max = u64::try_from(info.config.max_bytes).unwrap_or(u64::MAX);
            let last_refused = shared.refused_full.load(std::sync::atomic::Ordering::Relaxed);
            if last_refused && info.state.bytes + info.state.bytes / 16 >= max {
                return Err(StoreError::Full);
            }
            shared
                .refused_full
                .store(false, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })
    }

    fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let shared = self.shared.clone();
        let subject = self.shared.names.audit_subject(entry.event_seq);
        let body = serde_json::to_vec(&StoredAudit {
            at_ms: entry.at_ms,
            subscriber: entry.subscriber.clone(),
            tool: entry.tool.clone(),
            event_ref: entry.event_ref.clone(),
            event_seq: entry.event_seq,
            arguments: entry.arguments.clone(),
            outcome: entry.outcome.clone(),
            detail: entry.detail.clone(),
        })
        .expect("an audit entry serialises");
        let body = bytes::Bytes::from(body);
        self.shared.call(async move {
            reaching(|| async { shared.js.publish(subject.clone(), body.clone()).await?.await })
                .await
                .map_err(db("audit"))?;
            Ok(())
        })
    }

    fn audit_for(&self, seq: u64) -> Result<Vec<AuditEntry>, StoreError> {
        let shared = self.shared.clone();
        self.shared.call(async move {
            let audit = shared
                .js
                .get_stream(&shared.names.audit)
                .await
                .map_err(db("audit stream"))?;
            let consumer = audit
                .create_consumer(pull::Config {
                    ack_policy: jetstream::consumer::AckPolicy::None,
                    filter_subject: shared.names.audit_subject(Some(seq)),
                    inactive_threshold: Duration::from_secs(30),
                    memory_storage: true,
                    num_replicas: 1,
                    ..Default::default()
                })
                .await
                .map_err(db("audit reader"))?;
            let mut out = Vec::new();
            loop {
                let batch = pull_batch(&consumer, 256, out.is_empty())
                    .await
                    .map_err(db("audit"))?;
                let n = batch.len();
                for m in batch {
                    if let Ok(a) = serde_json::from_slice::<StoredAudit>(&m.payload) {
                        out.push(AuditEntry {
                            at_ms: a.at_ms,
                            subscriber: a.subscriber,
                            tool: a.tool,
                            event_ref: a.event_ref,
                            event_seq: a.event_seq,
                            arguments: a.arguments,
                            outcome: a.outcome,
                            detail: a.detail,
                        });
                    }
                }
                if n < 256 {
                    break;
                }
            }
            let _ = audit.delete_consumer(&consumer.cached_info().name).await;
            Ok(out)
        })
    }

    fn tokens(&self) -> &dyn TokenStore {
        &self.tokens
    }

    fn claim_once(&self, key: &str) -> Result<bool, StoreError> {
        let shared = self.shared.clone();
        // `run:` cannot begin a source name, so a claim never meets a delivery's.
        let key = dedup_key("run:", key);
        self.shared.call(async move {
            match reaching(|| shared.dedup.create(&key, "run".into())).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(db("claim a scheduled run")(e)),
            }
        })
    }

    fn storm_window(
        &self,
        key: &str,
        window: Duration,
        max_events: usize,
        now_ms: i64,
    ) -> Result<Option<crate::storm::SharedWindow>, StoreError> {
        let shared = self.shared.clone();
        let key = dedup_key("storm:", key);
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        self.shared
            .call(async move { storm_window(&shared.storm, &key, window_ms, max_events, now_ms).await })
            .map(Some)
    }

    fn session_started(&self, name: &str) {
        let shared = self.shared.clone();
        let subject = self.shared.names.session_subject(name);
        let replica = self.replica.clone();
        self.shared.rt.spawn(async move {
            let _ = shared.client.publish(subject, replica.into()).await;
            let _ = shared.client.flush().await;
        });
    }

    fn sessions_elsewhere(&self) -> Option<tokio::sync::broadcast::Receiver<(String, String)>> {
        Some(self.sessions.subscribe())
    }

    fn close(&self, limit: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.ack_tx.send(AckNote::Flush(tx)).is_ok() {
            let shared = self.shared.clone();
            let appending = self.appending.clone();
            let _ = self.shared.call(async move {
                let _ = tokio::time::timeout(limit, async {
                    loop {
                        // Registered before the check, so no wake-up falls between.
                        let done = appending.1.notified();
                        if appending.0.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                            break;
                        }
                        done.await;
                    }
                })
                .await;
                let _ = tokio::time::timeout(limit, rx).await;
                let _ = shared.client.flush().await;
                Ok(())
            });
        }
        if let Some(stop) = self.stop.lock().expect("stop poisoned").take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.lock().expect("thread poisoned").take() {
            let _ = t.join();
        }
    }
}

/// Revision-checked attempts at one storm count before giving up (each lost race means
/// another replica's write got in first, so this is only reached under a flood).
const STORM_TRIES: usize = 32;

/// Counts one event in group `key`'s window: begins a window when there is none or it has
/// ended, admits while fewer than `max_events` were. Every write names the revision it read,
/// so two replicas never both take the last place.
async fn storm_window(
    bucket: &kv::Store,
    key: &str,
    window_ms: i64,
    max_events: usize,
    now_ms: i64,
) -> Result<crate::storm::SharedWindow, StoreError> {
    use crate::storm::SharedWindow;
    let begin = || bytes::Bytes::from(format!("{now_ms} 1"));
    for _ in 0..STORM_TRIES {
        let entry = answered(|| bucket.entry(key))
            .await
            .map_err(db("read a storm window"))?
            .filter(|e| e.operation == kv::Operation::Put);
        let Some(entry) = entry else {
            match reaching(|| bucket.create(key, begin())).await {
                Ok(_) => {
                    return Ok(SharedWindow {
                        start_ms: now_ms,
                        admitted: true,
                    })
                }
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => continue,
                Err(e) => return Err(db("begin a storm window")(e)),
            }
        };
        // Unreadable (not hookwire's): begin anew, as an ended window would.
        let (start, count) = std::str::from_utf8(&entry.value)
            .ok()
            .and_then(|v| v.split_once(' '))
            .and_then(|(a, b)| Some((a.parse::<i64>().ok()?, b.parse::<usize>().ok()?)))
            .unwrap_or((i64::MIN, 0));
        let (value, verdict) = if now_ms.saturating_sub(start) >= window_ms {
            (
                begin(),
                SharedWindow {
                    start_ms: now_ms,
                    admitted: true,
                },
            )
        } else if count < max_events {
            (
                format!("{start} {}", count + 1).into(),
                SharedWindow {
                    start_ms: start,
                    admitted: true,
                },
            )
        } else {
            return Ok(SharedWindow {
                start_ms: start,
                admitted: false,
            });
        };
        match reaching(|| bucket.update(key, value.clone(), entry.revision)).await {
            Ok(_) => return Ok(verdict),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
            Err(e) => return Err(db("count in a storm window")(e)),
        }
    }
    Err(StoreError::Db(format!(
        "JetStream: storm window: {STORM_TRIES} writes in a row lost to other replicas"
    )))
}

/// What `hookwire doctor` reports of a JetStream deployment ([`inspect`]).
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The server answering, and its version.
    pub server: String,
    /// Its nats-server version.
    pub version: String,
    /// Its cluster's name; `None` for a single server.
    pub cluster: Option<String>,
    /// Servers of the cluster this client was told of (the server's `connect_urls`, at
    /// least 1): what `replicas` must not exceed.
    pub peers: usize,
    /// The account's streams, consumers and file storage used, in bytes.
    pub account: (usize, usize, u64),
    /// The account's file storage limit in bytes; `None` when unlimited.
    pub max_storage: Option<u64>,
    /// Each stream and bucket hookwire uses: (what, JetStream stream name, state when it
    /// exists; `None`: created at the gateway's first start).
    pub items: Vec<(&'static str, String, Option<Item>)>,
}

/// One stream (or a bucket's stream) as it exists now.
#[derive(Debug, Clone)]
pub struct Item {
    /// Its replica count.
    pub replicas: usize,
    /// Replicas current with the leader, leader included.
    pub current: usize,
    /// Its leader's server name.
    pub leader: Option<String>,
    /// Messages held.
    pub messages: u64,
}

/// Connects with `store.nats` (once, no retry: a doctor must answer) and reads, creating
/// nothing, the server, account and hookwire's streams and buckets.
pub fn inspect(settings: &NatsSettings) -> Result<Inspection, StoreError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Db(e.to_string()))?;
    let settings = settings.clone();
    rt.block_on(async move {
        tokio::time::timeout(REQUEST * 2, inspect_async(&settings))
            .await
            .unwrap_or_else(|_| Err(StoreError::Db("JetStream did not answer in time".into())))
    })
}

async fn inspect_async(s: &NatsSettings) -> Result<Inspection, StoreError> {
    let client = dial(s, false).await?;
    let info = client.server_info();
    if !info.jetstream {
        return Err(StoreError::Db(format!(
            "server {} has no JetStream (start nats-server with -js or a `jetstream {{}}` block)",
            info.server_name
        )));
    }
    let js = jetstream::new(client.clone());
    let account = js.query_account().await.map_err(db("account info"))?;
    let names = Names::new(&s.prefix);
    let mut items = Vec::new();
    for (what, stream) in [
        ("events stream", names.events.clone()),
        ("audit stream", names.audit.clone()),
        ("dedup bucket", format!("KV_{}", names.bucket("dedup"))),
        ("cursors bucket", format!("KV_{}", names.bucket("cursors"))),
        ("tokens bucket", format!("KV_{}", names.bucket("tokens"))),
        ("storm bucket", format!("KV_{}", names.bucket("storm"))),
    ] {
        let state = match js.get_stream(&stream).await {
            Ok(st) => {
                let i = st.cached_info();
                let peers = i.cluster.as_ref().map(|c| &c.replicas);
                Some(Item {
                    replicas: i.config.num_replicas,
                    current: 1 + peers.map_or(0, |p| p.iter().filter(|p| p.current && !p.offline).count()),
                    leader: i.cluster.as_ref().and_then(|c| c.leader.clone()),
                    messages: i.state.messages,
                })
            }
            Err(e)
                if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(j)
                    if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
            {
                None
            }
            Err(e) => return Err(db("stream info")(e)),
        };
        items.push((what, stream, state));
    }
    let max_storage = account.limits.max_storage.and_then(|m| u64::try_from(m).ok());
    let out = Inspection {
        server: info.server_name.clone(),
        version: info.version.clone(),
        cluster: info.cluster.clone(),
        peers: info.connect_urls.len().max(1),
        account: (account.streams, account.consumers, account.storage),
        max_storage,
        items,
    };
    let _ = client.drain().await;
    Ok(out)
}

/// Tokens in the `<P>_tokens` bucket: `n.<hex name>` holds the token, `h.<hex hash>` its name.
pub struct NatsTokens {
    shared: Arc<Shared>,
}

fn name_key(name: &str) -> String {
    format!("n.{}", hex::encode(name))
}
fn hash_key(hash: &[u8]) -> String {
    format!("h.{}", hex::encode(hash))
}

async fn token_by_name(shared: &Shared, name: &str) -> Result<Option<(StoredToken, u64)>, StoreError> {
    let key = name_key(name);
    match answered(|| shared.tokens.entry(key.as_str()))
        .await
        .map_err(db("read a token"))?
    {
        Some(e) if e.operation == kv::Operation::Put => {
            let t: StoredToken = serde_json::from_slice(&e.value)
                .map_err(|e| StoreError::Db(format!("a token in JetStream is not hookwire's: {e}")))?;
            Ok(Some((t, e.revision)))
        }
        _ => Ok(None),
    }
}

impl TokenStore for NatsTokens {
    fn create(&self, new: &NewToken, now_ms: i64) -> Result<TokenSecret, StoreError> {
        let secret = token::generate();
        let hash = token::hash(&secret.0);
        let stored = StoredToken {
            name: new.name.clone(),
            sources: new.sources.clone(),
            permissions: new.permissions.clone(),
            created_ms: now_ms,
            expires_ms: new.expires_ms,
            revoked_ms: None,
            hash: hex::encode(&hash),
        };
        let body = serde_json::to_vec(&stored).expect("a token serialises");
        let shared = self.shared.clone();
        let name = new.name.clone();
        self.shared.call(async move {
            // Create-only: of two replicas creating the same name, one wins.
            let body = bytes::Bytes::from(body);
            match reaching(|| shared.tokens.create(name_key(&name), body.clone())).await {
                Ok(_) => {}
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    return Err(StoreError::Invalid(format!(
                        "a token named `{name}` exists; revoke it first or pick another name"
                    )))
                }
                Err(e) => return Err(db("create a token")(&e)),
            }
            reaching(|| shared.tokens.put(hash_key(&hash), name.clone().into()))
                .await
                .map_err(db("create a token"))?;
            // The subscriber starts at the head: it receives what arrives from now on.
            let head = shared
                .events
                .get_info()
                .await
                .map_err(db("stream info"))?
                .state
                .last_sequence;
            reaching(|| shared.cursors.put(hex::encode(&name), head.to_string().into()))
                .await
                .map_err(db("create a cursor"))?;
            Ok(())
        })?;
        Ok(secret)
    }

    fn list(&self) -> Result<Vec<Token>, StoreError> {
        let shared = self.shared.clone();
        self.shared.call(async move {
            let mut keys = shared.tokens.keys().await.map_err(db("list tokens"))?;
            let mut names = Vec::new();
            while let Some(k) = keys.next().await {
                let k = k.map_err(db("list tokens"))?;
                if let Some(name) = k
                    .strip_prefix("n.")
                    .and_then(|h| hex::decode(h).ok())
                    .and_then(|b| String::from_utf8(b).ok())
                {
                    names.push(name);
                }
            }
            let mut out = Vec::new();
            for name in names {
                if let Some((t, _)) = token_by_name(&shared, &name).await? {
                    out.push(t.token());
                }
            }
            out.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then_with(|| a.name.cmp(&b.name)));
            Ok(out)
        })
    }

    fn revoke(&self, name: &str, now_ms: i64) -> Result<bool, StoreError> {
        let shared = self.shared.clone();
        let name = name.to_owned();
        self.shared.call(async move {
            loop {
                let Some((mut t, rev)) = token_by_name(&shared, &name).await? else {
                    return Ok(false);
                };
                if t.revoked_ms.is_some() {
                    return Ok(false);
                }
                t.revoked_ms = Some(now_ms);
                let body = serde_json::to_vec(&t).expect("a token serialises");
                let body = bytes::Bytes::from(body);
                match reaching(|| shared.tokens.update(name_key(&name), body.clone(), rev)).await {
                    Ok(_) => break,
                    // Changed meanwhile (another replica): read it again.
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                    Err(e) => return Err(db("revoke a token")(&e)),
                }
            }
            // Its events no longer wait for it.
            let _ = shared.cursors.delete(hex::encode(&name)).await;
            Ok(true)
        })
    }

    fn find(&self, secret: &str) -> Result<Option<Token>, StoreError> {
        let shared = self.shared.clone();
        let hash = token::hash(secret);
        self.shared.call(async move {
            let key = hash_key(&hash);
            let Some(name) = answered(|| shared.tokens.get(key.as_str()))
                .await
                .map_err(db("find a token"))?
            else {
                return Ok(None);
            };
            let name = String::from_utf8_lossy(&name).into_owned();
            Ok(token_by_name(&shared, &name)
                .await?
                .filter(|(t, _)| t.hash == hex::encode(&hash))
                .map(|(t, _)| t.token()))
        })
    }

    fn get(&self, name: &str) -> Result<Option<Token>, StoreError> {
        let shared = self.shared.clone();
        let name = name.to_owned();
        self.shared
            .call(async move { Ok(token_by_name(&shared, &name).await?.map(|(t, _)| t.token())) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_no_stream_took_is_sent_again_and_any_other_answer_is_returned() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let sent = std::cell::Cell::new(0);
        let answer = |fail: &'static str, until: u32| {
            sent.set(0);
            rt.block_on(reaching(|| {
                sent.set(sent.get() + 1);
                let n = sent.get();
                async move {
                    if n < until {
                        Err(fail)
                    } else {
                        Ok(n)
                    }
                }
            }))
        };
        assert_eq!(answer("ack error: no stream found for given subject", 3), Ok(3));
        assert_eq!(sent.get(), 3);
        assert_eq!(answer("wrong last sequence", 3), Err("wrong last sequence"));
        assert_eq!(sent.get(), 1, "another error is not sent again");
        assert_eq!(
            answer("no stream found for given subject", 100),
            Err("no stream found for given subject")
        );
        assert_eq!(sent.get(), REACH_TRIES);
        // The very answers async-nats gave a bucket's create and a pull on a new stream.
        let create = "other error: failed getting entry: unable to get message: 503 no responders";
        assert_eq!(answer(create, 2), Ok(2));
    }

    #[test]
    fn a_read_no_server_answered_is_asked_again_and_any_other_answer_is_returned() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let asked = std::cell::Cell::new(0);
        let answer = |fail: &'static str| {
            asked.set(0);
            rt.block_on(answered(|| {
                asked.set(asked.get() + 1);
                let n = asked.get();
                async move {
                    if n < 3 {
                        Err(fail)
                    } else {
                        Ok(n)
                    }
                }
            }))
        };
        let pulled = "error while processing messages from the stream: 503, None";
        assert_eq!(answer(pulled), Ok(3));
        assert_eq!(answer("unable to get message: 503 no responders"), Ok(3));
        assert_eq!(answer("stream not found"), Err("stream not found"));
        assert_eq!(asked.get(), 1, "another error is not asked again");
    }

    #[test]
    fn dedup_keys_are_fixed_length_hex_whatever_the_delivery_id() {
        let k = dedup_key("github", "a.b c/*>\u{0}");
        assert_eq!(k.len(), 40);
        assert!(k.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(dedup_key("github", "1"), dedup_key("gitlab", "1"));
        assert_ne!(dedup_key("a", "b\u{0}c"), dedup_key("a\u{0}b", "c"));
    }

    #[test]
    fn envelopes_round_trip_byte_for_byte() {
        let e = Event {
            source: "github".into(),
            event: "issues.opened".into(),
            delivery_id: "d-1".into(),
            line: b"{\"x\":1}\n".to_vec(),
            received_ms: 5,
            payload: vec![0, 255, 10].into(),
            headers: [("x-github-event", "issues")].into_iter().collect(),
            folded: true,
            signed_key: None,
        };
        let r = Envelope::decode(9, &envelope(&e, Some("alice".into()), Some(3))).unwrap();
        assert_eq!(r.stored.seq, 9);
        assert_eq!(r.stored.line, e.line);
        assert_eq!(r.payload, e.payload);
        assert!(r.stored.folded);
        assert_eq!(r.stored.target.as_deref(), Some("alice"));
        assert_eq!(r.replay_of, Some(3));
        assert!(Envelope::decode(1, b"not json").is_err());
    }
}
