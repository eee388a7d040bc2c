//! The durable store: every accepted event is committed here before the vendor gets 2xx, and
//! every session reads its events from here in order, acknowledging as it goes. The
//! [`Store`] trait is the seam between the webhook path and a backend: [`sqlite`] is the
//! embedded default (one file, WAL, group commit); [`nats`] is NATS JetStream for several
//! gateway replicas (append = publish awaited to its acknowledgement, dedup = a create-only
//! key, read = a consumer filtered to the subscriber's sources, ack = a floor in a bucket).

pub mod nats;
pub mod sqlite;
pub mod token;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;

use crate::event::Event;
use crate::sink::{EventSink, Receipt, SinkError};

pub use sqlite::SqliteStore;
pub use token::{NewToken, Token, TokenStatus};

/// A store failure. Never carries payload bytes or secrets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// More is waiting for sessions than `store.max_bytes` allows, or the commit queue is
    /// full: ingress answers 503 with Retry-After.
    #[error("store full")]
    Full,
    /// The store is shutting down.
    #[error("store closed")]
    Closed,
    /// The database said no (disk full, file not writable, corrupt).
    #[error("database error: {0}")]
    Db(String),
    /// Something asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A request the store refuses (a duplicate token name, a bad argument).
    #[error("{0}")]
    Invalid(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

/// One committed event as a session receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The store's id for the event: increasing, never reused. Sessions acknowledge by it and
    /// the channel process suppresses repeats by it.
    pub seq: u64,
    /// The source it came from.
    pub source: String,
    /// `event.action`.
    pub event: String,
    /// The vendor's delivery id.
    pub delivery_id: String,
    /// Arrival, Unix milliseconds.
    pub received_ms: i64,
    /// The notification line, `\n`-terminated.
    pub line: Vec<u8>,
    /// Folded by storm control: retrievable, never delivered on its own.
    pub folded: bool,
    /// Only this subscriber receives it (a targeted `hookwire replay`); `None` = everyone.
    pub target: Option<String>,
}

/// A stored event with everything kept about it: for `hookwire events show` and `get_event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// What sessions receive.
    pub stored: Stored,
    /// The raw request body.
    pub payload: Vec<u8>,
    /// Request headers without credentials.
    pub headers: Vec<(String, String)>,
    /// For a re-delivery, the event it copies.
    pub replay_of: Option<u64>,
}

/// Which events a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The subscriber's name: `local` in local mode, the token's name through a gateway.
    pub name: String,
    /// The sources it receives.
    pub sources: Vec<String>,
}

impl Subscription {
    /// Whether this subscriber receives `e`.
    pub fn wants(&self, e: &Stored) -> bool {
        !e.folded && self.sources.contains(&e.source) && e.target.as_ref().is_none_or(|t| *t == self.name)
    }
}

/// A page of a subscriber's events.
#[derive(Debug, Default)]
pub struct Batch {
    /// The events it receives, in order.
    pub events: Vec<Arc<Stored>>,
    /// Everything up to here was looked at: once `events` are written, the subscriber may
    /// acknowledge this far (skipping events of other sources).
    pub through: u64,
}

/// What `hookwire events list` asks for.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only this source.
    pub source: Option<String>,
    /// Only events received at or after this Unix millisecond.
    pub since_ms: Option<i64>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// One reply or action tool call, as the audit keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When it finished, Unix milliseconds.
    pub at_ms: i64,
    /// Who: the session's subscriber (`local` or the gateway token's name).
    pub subscriber: String,
    /// The tool.
    pub tool: String,
    /// The `event_id` argument as given, if any.
    pub event_ref: Option<String>,
    /// The stored event it names, when found among the session's sources.
    pub event_seq: Option<u64>,
    /// The arguments, JSON, long strings cut (never credentials: Claude has none).
    pub arguments: String,
    /// `ok`, `refused` (nothing was sent) or `error` (sent and failed).
    pub outcome: String,
    /// The result or the error, cut.
    pub detail: String,
}

/// A subscriber's delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The subscriber.
    pub name: String,
    /// Acknowledged up to this seq.
    pub acked: u64,
}

/// A subscriber's unacknowledged events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// How many.
    pub events: u64,
    /// When the oldest of them was received, Unix milliseconds.
    pub oldest_ms: Option<i64>,
}

/// Everything the webhook path, the sessions and the CLI need from a backend.
pub trait Store: Send + Sync + 'static {
    /// Queues `event` for the next group commit; the receipt resolves once it is durable.
    /// Refuses at once with [`StoreError::Full`] when over the limits.
    fn append(&self, event: Event) -> Result<Receipt, StoreError>;

    /// Up to `max` events after `after` that `sub` receives, in order.
    fn read_after(&self, sub: &Subscription, after: u64, max: usize) -> Result<Batch, StoreError>;

    /// The highest committed seq.
    fn head(&self) -> u64;

    /// Signalled (coalesced) after each commit that advanced the head.
    fn wake(&self) -> Receiver<()>;

    /// The head, for async readers (gateway sessions): changes after each commit that
    /// advanced it, including another process's.
    fn head_watch(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Records that `subscriber` has everything up to `seq` (monotonic; committed with the
    /// next group).
    fn ack(&self, subscriber: &str, seq: u64);

    /// Where a subscriber resumes, creating it at `start` if new: what it acknowledged, as
    /// soon as it did (an acknowledgement not yet written counts).
    fn cursor(&self, subscriber: &str, start: u64) -> Result<u64, StoreError>;

    /// [`Store::cursor`] for a session starting: also records which sources the subscriber
    /// receives, so an event of another source never waits for it (eviction for size).
    fn subscribe(&self, sub: &Subscription, start: u64) -> Result<u64, StoreError>;

    /// Removes a subscriber and its cursor (a local session's extra seat, released): its
    /// events no longer wait for it.
    fn forget_subscriber(&self, name: &str) -> Result<(), StoreError>;

    /// (source, delivery id, signed-content key) of the events accepted since `since_ms`, to
    /// seed replay protection after a restart.
    fn recent_deliveries(&self, since_ms: i64) -> Result<Vec<(String, String, Option<String>)>, StoreError>;

    /// One event by seq, or the newest with this delivery id.
    fn get(&self, id: &str) -> Result<Option<Record>, StoreError>;

    /// Recent events, newest first.
    fn list(&self, q: &ListQuery) -> Result<Vec<Stored>, StoreError>;

    /// For each of `seqs` that is a re-delivery, the seq it copies: the `replay of N` flag of
    /// `hookwire events list`. The default looks each up with [`Store::get`] (payload and
    /// all); backends override it with one cheap query.
    fn replay_origins(&self, seqs: &[u64]) -> Result<HashMap<u64, u64>, StoreError> {
        let mut origins = HashMap::new();
        for &seq in seqs {
            if let Some(of) = self.get(&seq.to_string())?.and_then(|r| r.replay_of) {
                origins.insert(seq, of);
            }
        }
        Ok(origins)
    }

    /// Copies the stored events of `source` since `since_ms` as new events (new seqs), for
    /// `target` only or for every subscriber. Returns how many.
    fn replay(&self, source: &str, since_ms: Option<i64>, target: Option<&str>) -> Result<usize, StoreError>;

    /// Copies one stored event (`seq`) as a new event, for `target` only or for every
    /// subscriber: the console's re-delivery. The new seq, or `None` when there is no such
    /// event. The default refuses: a backend that can do it overrides it.
    fn replay_one(&self, seq: u64, target: Option<&str>) -> Result<Option<u64>, StoreError> {
        let _ = (seq, target);
        Err(StoreError::Invalid(
            "this store cannot re-deliver a single event".into(),
        ))
    }

    /// Every subscriber's delivery state.
    fn cursors(&self) -> Result<Vec<Cursor>, StoreError>;

    /// What `sub` has not acknowledged yet (nothing for a subscriber never seen).
    fn backlog(&self, sub: &Subscription) -> Result<Backlog, StoreError>;

    /// Whether an append would be taken now: open, not full, the last commit succeeded, and
    /// the database grants its write lock within a moment. What `/readyz` reports.
    fn writable(&self) -> Result<(), StoreError>;

    /// Stores one tool call (the audit). The default keeps nothing; backends override it.
    fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let _ = entry;
        Ok(())
    }

    /// The tool calls recorded for event `seq`, oldest first.
    fn audit_for(&self, seq: u64) -> Result<Vec<AuditEntry>, StoreError> {
        let _ = seq;
        Ok(Vec::new())
    }

    /// Token administration and lookup (the gateway's session settings).
    fn tokens(&self) -> &dyn token::TokenStore;

    /// Claims `key` once across every process sharing the store (a schedule's tick): `true`
    /// for the first claim. The default, for a store one process owns: always `true`.
    fn claim_once(&self, key: &str) -> Result<bool, StoreError> {
        let _ = key;
        Ok(true)
    }

    /// Counts one event of storm group `key` in its window as every process sharing the store
    /// sees it ([`EventSink::storm_window`]). The default, for a store one process owns:
    /// `None` (storm control keeps the window in memory).
    fn storm_window(
        &self,
        key: &str,
        window: Duration,
        max_events: usize,
        now_ms: i64,
    ) -> Result<Option<crate::storm::SharedWindow>, StoreError> {
        let _ = (key, window, max_events, now_ms);
        Ok(None)
    }

    /// A session of `subscriber` started on this process: tells the other gateway replicas
    /// sharing the store, which end theirs (one session per token across replicas). The
    /// default, for a store one process owns, tells no one.
    fn session_started(&self, subscriber: &str) {
        let _ = subscriber;
    }

    /// Sessions started on other replicas, as (subscriber, replica): the gateway ends its
    /// own session of each. `None` when no other process serves sessions from this store.
    fn sessions_elsewhere(&self) -> Option<tokio::sync::broadcast::Receiver<(String, String)>> {
        None
    }

    /// Commits what is queued and stops the writer, waiting at most `limit`.
    fn close(&self, limit: Duration);
}

/// The store as the pipeline's sink: append, and answer 2xx when the receipt resolves.
pub struct StoreSink(pub Arc<dyn Store>);

impl EventSink for StoreSink {
    fn submit(&self, event: Event) -> Result<Receipt, SinkError> {
        self.0.append(event).map_err(|e| match e {
            StoreError::Closed => SinkError::Closed,
            StoreError::Full => SinkError::Full,
            other => {
                tracing::error!(error = %other, "cannot queue an event for the store");
                SinkError::Failed
            }
        })
    }

    fn claim_run(&self, run: &str) -> bool {
        // Unclaimable (the store unreachable): run it; its event is deduplicated anyway.
        self.0.claim_once(run).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot claim a scheduled run; running it here");
            true
        })
    }

    fn storm_window(
        &self,
        key: &str,
        window: Duration,
        max_events: usize,
        now: std::time::SystemTime,
    ) -> Option<crate::storm::SharedWindow> {
        let now_ms = crate::verify::timestamp::millis(now);
        // Uncountable (the store unreachable): this replica decides alone; the append that
        // follows fails the same way, and the vendor retries.
        self.0
            .storm_window(key, window, max_events, now_ms)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot count a storm window in the store; deciding here");
                None
            })
    }
}
