//! The embedded store: one SQLite file in WAL mode (rusqlite, SQLite compiled in).
//!
//! - **Group commit.** Appends and acknowledgements go to one writer thread, which takes
//!   whatever is queued (up to [`GROUP`]), writes it in one transaction and commits once; each
//!   request's receipt resolves after that commit. With `sync: full` the commit is fsynced, so
//!   a 2xx survives power loss; with `sync: normal` it survives a process crash.
//! - **Checkpoints off the commit path.** The writer never copies the WAL into the database
//!   itself: every ~16 MiB of WAL it asks the checkpointer thread, which copies what is there
//!   on a connection of its own while commits go on; then the writer copies the little that
//!   came meanwhile, between two commits, so the WAL starts over. Inline, a checkpoint held up
//!   every receipt behind it for tens of milliseconds: most of the p99 under load.
//! - **Recent events in memory.** Committed events are also kept in a bounded ring, so live
//!   sessions read them without touching the file; a session that is behind reads from SQLite.
//! - **Other writers.** `hookwire replay` and `hookwire token` write the same file from another
//!   process; the writer notices through `PRAGMA data_version` and moves the head.
//! - **Limits.** From 90% of `max_bytes`, events every subscriber has acknowledged are evicted
//!   down to 80%, so appends from sessions that keep up are never refused; what is still
//!   waiting for a session is never evicted for size, so at 100% appends are refused
//!   ([`StoreError::Full`], 503) until sessions catch up. Age (`max_age`) is the
//!   one bound on how long an event waits for a session that never returns. The stored bytes
//!   are counted, never summed over the table (which reads the whole file): the row
//!   `stored_bytes` keeps the total for the next open ([`Ledger`]).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use super::token::{self, NewToken, Token, TokenSecret, TokenStore};
use super::{AuditEntry, Backlog, Batch, Cursor, ListQuery, Record, Store, StoreError, Stored, Subscription};
use crate::event::Event;
use crate::sink::{Receipt, SinkError};
use crate::verify::timestamp::millis;

/// Most operations in one transaction.
const GROUP: usize = 1024;
/// Rows read from SQLite per catch-up page.
const PAGE: usize = 512;
/// How often an idle writer looks for other processes' commits and runs retention.
const TICK: Duration = Duration::from_millis(200);
/// How long acknowledgements may wait to be written: they are advisory (a lost one means a
/// re-delivery the session side suppresses), and writing each at once would add a page to
/// every commit.
const ACK_DELAY: Duration = Duration::from_millis(100);
/// How often retention by age runs.
const AGE_EVERY: Duration = Duration::from_secs(30);
/// How often the `stored_bytes` row moves to the newest event: with every commit it would add
/// a page to each (see ACK_DELAY); this often, an open after a crash sums at most this long's
/// events.
const LEDGER_EVERY: Duration = Duration::from_secs(1);
/// How soon an eviction that found too little to evict is tried again, once something may
/// have freed more: each try reads the rows it passes, the whole file when sessions still wait
/// for the oldest.
const EVICT_RETRY: Duration = Duration::from_secs(1);
/// WAL written (estimated from the rows) after which the checkpointer is asked to run: what
/// `wal_autocheckpoint = 4096` did inline. The last leaf page, rewritten by every group
/// commit, is copied into the database once per checkpoint.
const CHECKPOINT_BYTES: u64 = if cfg!(test) { 256 << 10 } else { 16 << 20 };
/// Pages a commit writes besides its rows: the last leaf and its parents, a cursor's row.
const COMMIT_PAGES_BYTES: u64 = 8 << 10;
/// WAL written past which the writer checkpoints inline: the checkpointer cannot keep up, or
/// a long read holds the WAL. Out of reach in unit tests, so what they see is the
/// checkpointer's work.
const CHECKPOINT_HARD_BYTES: u64 = if cfg!(test) { 1 << 40 } else { 4 * CHECKPOINT_BYTES };

// No secondary indexes on `events`, and no AUTOINCREMENT: each would add pages to every group
// commit, and only rare operations (look-up by delivery id, retention by age, the start-up dedup
// seed) would use them. Seqs must never be reused (sessions suppress repeats by seq), so
// retention never deletes the newest row, and SQLite's max(rowid)+1 keeps counting up.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY,
    source      TEXT    NOT NULL,
    event       TEXT    NOT NULL,
    delivery_id TEXT    NOT NULL,
    received_ms INTEGER NOT NULL,
    line        BLOB    NOT NULL,
    payload     BLOB    NOT NULL,
    codec       INTEGER NOT NULL DEFAULT 0,
    headers     TEXT    NOT NULL,
    folded      INTEGER NOT NULL DEFAULT 0,
    target      TEXT,
    replay_of   INTEGER,
    size        INTEGER NOT NULL,
    signed_key  TEXT
);
CREATE TABLE IF NOT EXISTS subscribers (
    name    TEXT PRIMARY KEY,
    acked   INTEGER NOT NULL,
    sources TEXT
);
CREATE TABLE IF NOT EXISTS tokens (
    name        TEXT PRIMARY KEY,
    hash        BLOB NOT NULL UNIQUE,
    sources     TEXT NOT NULL,
    permissions TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER,
    revoked_ms  INTEGER
);
CREATE TABLE IF NOT EXISTS audit (
    id          INTEGER PRIMARY KEY,
    at_ms       INTEGER NOT NULL,
    subscriber  TEXT    NOT NULL,
    tool        TEXT    NOT NULL,
    event_ref   TEXT,
    event_seq   INTEGER,
    arguments   TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    detail      TEXT    NOT NULL
);
-- The bytes of the events up to `through_seq` (retention's count), so opening the store reads
-- one row and the few events after it instead of summing `size` over the table: each row's
-- size is stored after its payload, so that sum read the whole file (a second or more for a
-- full store on a cold start). The writer moves it to the newest event about once a second
-- (`Ledger`); deleting an event it counts takes the event's size off, whatever process
-- deletes it.
CREATE TABLE IF NOT EXISTS stored_bytes (
    id          INTEGER PRIMARY KEY CHECK (id = 0),
    through_seq INTEGER NOT NULL,
    bytes       INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS stored_bytes_on_delete AFTER DELETE ON events
WHEN old.seq <= (SELECT through_seq FROM stored_bytes WHERE id = 0)
BEGIN
    UPDATE stored_bytes SET bytes = bytes - old.size WHERE id = 0;
END;
PRAGMA user_version = 4;
";

pub use crate::config::SyncMode;

/// How the store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The database file.
    pub path: PathBuf,
    /// Commit durability.
    pub sync: SyncMode,
    /// Stored bytes (lines, payloads, headers) beyond which acknowledged events are evicted
    /// and, when nothing can be, appends refused.
    pub max_bytes: u64,
    /// Events older than this are deleted, delivered or not.
    pub max_age: Duration,
    /// Appends waiting for the writer at most; beyond, refused (503).
    pub queue: usize,
    /// Bytes of recent events kept in memory for live sessions.
    pub ring_bytes: usize,
}

impl StoreOptions {
    /// Defaults for a database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreOptions {
            path: path.into(),
            sync: SyncMode::Full,
            max_bytes: 1 << 30,
            max_age: Duration::from_secs(7 * 24 * 3600),
            queue: 4096,
            ring_bytes: 8 << 20,
        }
    }
}

/// Resolves an append's receipt with its seq once committed.
type Done = oneshot::Sender<Result<u64, SinkError>>;

enum Op {
    /// The event with its payload already encoded ([`encode`]), and the codec used. Boxed:
    /// the queue's slots are allocated and written when it is made, and an `Event` inline
    /// made each 208 bytes, 0.8 MiB for the default 4,096 resident in every idle channel.
    Append(Box<Event>, Codec, Done),
    Ack(String, u64),
    /// Remove a subscriber (after its acknowledgements queued before this); `true` is sent
    /// once that is committed.
    Forget(String, crossbeam_channel::Sender<bool>),
    Stop,
}

/// Recent committed events: all seqs in `(floor, floor + events.len()]`.
struct Ring {
    floor: u64,
    events: VecDeque<Arc<Stored>>,
    bytes: usize,
}

struct Shared {
    head: AtomicU64,
    ring: Mutex<Ring>,
    wakers: Mutex<Vec<Sender<()>>>,
    watch: tokio::sync::watch::Sender<u64>,
    bytes: AtomicU64,
    closed: AtomicBool,
    /// The last commit failed (disk full, I/O error, lock held elsewhere too long).
    failing: AtomicBool,
    /// The newest acknowledgement of each subscriber, as soon as it is made: written to the
    /// file up to [`ACK_DELAY`] later, and read meanwhile by a session resuming after it, so a
    /// quick reconnect never starts behind what the last session acknowledged.
    acked: Mutex<HashMap<String, u64>>,
}

impl Shared {
    fn wake(&self, head: u64) {
        self.wakers
            .lock()
            .expect("wakers poisoned")
            .retain(|w| !matches!(w.try_send(()), Err(TrySendError::Disconnected(_))));
        self.watch.send_replace(head);
    }
}

/// The embedded SQLite store.
pub struct SqliteStore {
    shared: Arc<Shared>,
    tx: Sender<Op>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// For reads, token administration and `replay`; the writer thread has its own.
    side: Arc<Mutex<Connection>>,
    tokens: SqliteTokens,
    path: PathBuf,
    max_bytes: u64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// How a stored payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Codec {
    Raw = 0,
    /// LZ4 block, uncompressed size prepended (`lz4_flex`).
    Lz4 = 1,
}

/// Payloads below this are stored as they are: too small to gain.
const COMPRESS_FROM: usize = 1024;

/// Compresses `payload` in place when that saves at least an eighth. Vendor JSON compresses
/// about 4x: the payload is most of what every event writes to the WAL and again at the
/// checkpoint, so LZ4's few microseconds buy back more than they cost.
fn encode(payload: &mut bytes::Bytes) -> Codec {
    if payload.len() < COMPRESS_FROM {
        return Codec::Raw;
    }
    let packed = lz4_flex::block::compress_prepend_size(payload);
    if packed.len() > payload.len() - payload.len() / 8 {
        return Codec::Raw;
    }
    *payload = packed.into();
    Codec::Lz4
}

/// The payload as received, from its stored form.
fn decode(codec: i64, stored: Vec<u8>) -> Result<Vec<u8>, String> {
    match codec {
        0 => Ok(stored),
        1 => lz4_flex::block::decompress_size_prepended(&stored).map_err(|e| format!("stored payload: {e}")),
        other => Err(format!(
            "stored payload: unknown codec {other} (a newer hookwire wrote it)"
        )),
    }
}

/// Brings a store made by an older hookwire up to [`SCHEMA`].
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let has_codec = conn
        .prepare("SELECT 1 FROM pragma_table_info('events') WHERE name = 'codec'")?
        .exists([])?;
    if !has_codec {
        conn.execute_batch(
            "ALTER TABLE events ADD COLUMN codec INTEGER NOT NULL DEFAULT 0; PRAGMA user_version = 2;",
        )?;
    }
    let has_signed_key = conn
        .prepare("SELECT 1 FROM pragma_table_info('events') WHERE name = 'signed_key'")?
        .exists([])?;
    if !has_signed_key {
        conn.execute_batch("ALTER TABLE events ADD COLUMN signed_key TEXT; PRAGMA user_version = 3;")?;
    }
    let has_sources = conn
        .prepare("SELECT 1 FROM pragma_table_info('subscribers') WHERE name = 'sources'")?
        .exists([])?;
    if !has_sources {
        // NULL: a subscriber from before this column waits for every source's events.
        conn.execute_batch("ALTER TABLE subscribers ADD COLUMN sources TEXT;")?;
    }
    Ok(())
}

/// The bytes of the events after seq `after` through `through`: a range of the rowid. A sum
/// over the whole table would read every event's overflow pages (a size is stored after its
/// payload).
fn bytes_between(conn: &Connection, after: u64, through: u64) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT coalesce(sum(size), 0) FROM events WHERE seq > ?1 AND seq <= ?2")?
        .query_row([after as i64, through as i64], |r| r.get::<_, i64>(0))
        .map(to_u64)
}

/// The head and the bytes stored, at open: the `stored_bytes` row plus the events after it
/// (those of the last second before a crash, another process's, an older hookwire's), in one
/// transaction so a concurrent writer cannot slip between the reads; the row is then moved to
/// the head. A store without the row (from an older hookwire) is summed whole once; an empty
/// one writes nothing, so a channel that only starts and stops leaves the file as it was.
fn opening_totals(conn: &mut Connection) -> Result<(u64, u64), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let head: i64 = tx.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))?;
    let head = to_u64(head);
    let (through, counted) = tx
        .query_row(
            "SELECT through_seq, bytes FROM stored_bytes WHERE id = 0",
            [],
            |r| Ok((to_u64(r.get(0)?), to_u64(r.get(1)?))),
        )
        .optional()?
        .unwrap_or((0, 0));
    let bytes = counted + bytes_between(&tx, through, head)?;
    if through < head {
        tx.execute(
            "INSERT INTO stored_bytes (id, through_seq, bytes) VALUES (0, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET through_seq = excluded.through_seq, bytes = excluded.bytes",
            params![head as i64, bytes as i64],
        )?;
    }
    tx.commit()?;
    Ok((head, bytes))
}

/// How long a statement waits for another connection's lock.
const BUSY_WAIT: Duration = Duration::from_secs(5);
/// How long the readiness probe waits for the write lock.
const PROBE_WAIT: Duration = Duration::from_millis(500);

fn open_conn(path: &Path, sync: SyncMode) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Db(format!("cannot open the store at {}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_WAIT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Db(format!(
            "{}: the store needs WAL mode, SQLite kept `{mode}` (is it on a network file system?)",
            path.display()
        )));
    }
    conn.execute_batch(match sync {
        SyncMode::Full => "PRAGMA synchronous = FULL;",
        SyncMode::Normal => "PRAGMA synchronous = NORMAL;",
    })?;
    // Checkpoint every ~16 MiB of WAL rather than 4: the last leaf page, rewritten by every
    // group commit, is copied into the database once per checkpoint.
    conn.execute_batch("PRAGMA wal_autocheckpoint = 4096;")?;
    Ok(conn)
}

fn to_u64(v: i64) -> u64 {
    v.max(0) as u64
}

fn stored_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        seq: to_u64(r.get(0)?),
        source: r.get(1)?,
        event: r.get(2)?,
        delivery_id: r.get(3)?,
        received_ms: r.get(4)?,
        line: r.get(5)?,
        folded: r.get::<_, i64>(6)? != 0,
        target: r.get(7)?,
    })
}

const STORED_COLUMNS: &str = "seq, source, event, delivery_id, received_ms, line, folded, target";

impl SqliteStore {
    /// Opens (creating if needed) the store and starts its writer thread.
    pub fn open(opts: StoreOptions) -> Result<Arc<Self>, StoreError> {
        if let Some(dir) = opts.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Db(format!("cannot create the store's folder {}: {e}", dir.display()))
            })?;
        }
        let mut conn = open_conn(&opts.path, opts.sync)?;
        // The writer's commits never checkpoint inline: see [`Checkpointer`].
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        let (head, bytes) = opening_totals(&mut conn)?;
        let side = Arc::new(Mutex::new(open_conn(&opts.path, opts.sync)?));
        let (watch, _) = tokio::sync::watch::channel(head);
        let shared = Arc::new(Shared {
            head: AtomicU64::new(head),
            ring: Mutex::new(Ring {
                floor: head,
                events: VecDeque::new(),
                bytes: 0,
            }),
            wakers: Mutex::new(Vec::new()),
            watch,
            bytes: AtomicU64::new(bytes),
            closed: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            acked: Mutex::new(HashMap::new()),
        });
        let checkpointer = Checkpointer::start(open_conn(&opts.path, opts.sync)?)?;
        let (tx, rx) = crossbeam_channel::bounded(opts.queue.max(1));
        let writer = {
            let shared = shared.clone();
            let opts = opts.clone();
            std::thread::Builder::new()
                .name("store-writer".into())
                .spawn(move || Writer::new(conn, shared, opts, checkpointer).run(rx))
                .map_err(|e| StoreError::Db(format!("cannot start the store writer: {e}")))?
        };
        tracing::info!(path = %opts.path.display(), head, "store open");
        Ok(Arc::new(SqliteStore {
            shared,
            tx,
            writer: Mutex::new(Some(writer)),
            tokens: SqliteTokens { side: side.clone() },
            side,
            path: opts.path,
            max_bytes: opts.max_bytes,
        }))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn side(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.side.lock().expect("store connection poisoned")
    }

    /// Bytes currently stored.
    pub fn stored_bytes(&self) -> u64 {
        self.shared.bytes.load(Ordering::Relaxed)
    }
}

impl Store for SqliteStore {
    fn append(&self, event: Event) -> Result<Receipt, StoreError> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(StoreError::Closed);
        }
        if self.shared.bytes.load(Ordering::Relaxed) >= self.max_bytes {
            return Err(StoreError::Full);
        }
        let (done, rx) = oneshot::channel();
        // On the request's thread, in parallel: the writer thread is the serial part.
        let mut event = event;
        let codec = encode(&mut event.payload);
        match self.tx.try_send(Op::Append(Box::new(event), codec, done)) {
            Ok(()) => Ok(Receipt::pending(rx)),
            Err(TrySendError::Full(_)) => Err(StoreError::Full),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::Closed),
        }
    }

    fn read_after(&self, sub: &Subscription, after: u64, max: usize) -> Result<Batch, StoreError> {
        let mut batch = Batch {
            events: Vec::new(),
            through: after,
        };
        {
            let ring = self.shared.ring.lock().expect("ring poisoned");
            if after >= ring.floor {
                let skip = ((after - ring.floor) as usize).min(ring.events.len());
                for e in ring.events.range(skip..) {
                    if batch.events.len() >= max {
                        break;
                    }
                    if sub.wants(e) {
                        batch.events.push(e.clone());
                    }
                    batch.through = e.seq;
                }
                return Ok(batch);
            }
        }
        let conn = self.side();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {STORED_COLUMNS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![after as i64, PAGE as i64], stored_from_row)?;
        for row in rows {
            let e = row?;
            if batch.events.len() >= max {
                break;
            }
            batch.through = e.seq;
            if sub.wants(&e) {
                batch.events.push(Arc::new(e));
            }
        }
        Ok(batch)
    }

    fn head(&self) -> u64 {
        self.shared.head.load(Ordering::Acquire)
    }

    fn wake(&self) -> Receiver<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.shared.wakers.lock().expect("wakers poisoned").push(tx);
        rx
    }

    fn head_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.watch.subscribe()
    }

    fn ack(&self, subscriber: &str, seq: u64) {
        {
            let mut acked = self.shared.acked.lock().expect("acks poisoned");
            let a = acked.entry(subscriber.to_owned()).or_default();
            *a = (*a).max(seq);
        }
        // Blocking is fine: acks come from session tasks, never the request path.
        let _ = self.tx.send(Op::Ack(subscriber.to_owned(), seq));
    }

    fn cursor(&self, subscriber: &str, start: u64) -> Result<u64, StoreError> {
        let conn = self.side();
        conn.execute(
            "INSERT OR IGNORE INTO subscribers (name, acked) VALUES (?1, ?2)",
            params![subscriber, start as i64],
        )?;
        let acked: i64 = conn.query_row(
            "SELECT acked FROM subscribers WHERE name = ?1",
            [subscriber],
            |r| r.get(0),
        )?;
        let pending = self
            .shared
            .acked
            .lock()
            .expect("acks poisoned")
            .get(subscriber)
            .copied();
        Ok(to_u64(acked).max(pending.unwrap_or(0)))
    }

    fn forget_subscriber(&self, name: &str) -> Result<(), StoreError> {
        self.shared.acked.lock().expect("acks poisoned").remove(name);
        // Through the writer, after the subscriber's acknowledgements still queued there, so
        // none of them brings it back; waited for, so a cursor set next is not removed too.
        let (done, committed) = crossbeam_channel::bounded(1);
        self.tx
            .send(Op::Forget(name.to_owned(), done))
            .map_err(|_| StoreError::Closed)?;
        match committed.recv() {
            Ok(true) => Ok(()),
            Ok(false) => Err(StoreError::Db(format!(
                "cannot forget subscriber `{name}`: the commit failed"
            ))),
            Err(_) => Err(StoreError::Closed),
        }
    }

    fn subscribe(&self, sub: &Subscription, start: u64) -> Result<u64, StoreError> {
        let sources = serde_json::to_string(&sub.sources).unwrap_or_else(|_| "[]".into());
        self.side().execute(
            // Unchanged sources write nothing: no WAL frame, so no fsync at every start.
            "INSERT INTO subscribers (name, acked, sources) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET sources = excluded.sources
             WHERE sources IS NOT excluded.sources",
            params![sub.name, start as i64, sources],
        )?;
        self.cursor(&sub.name, start)
    }

    fn recent_deliveries(&self, since_ms: i64) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        let conn = self.side();
        let mut stmt = conn.prepare(
            "SELECT source, delivery_id, signed_key FROM events WHERE received_ms >= ?1 AND replay_of IS NULL ORDER BY seq",
        )?;
        let rows = stmt.query_map([since_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        let conn = self.side();
        let cols = format!("{STORED_COLUMNS}, payload, headers, replay_of, codec");
        let row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Record> {
            let headers: String = r.get(9)?;
            let payload = decode(r.get(11)?, r.get(8)?).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(8, rusqlite::types::Type::Blob, e.into())
            })?;
            Ok(Record {
                stored: stored_from_row(r)?,
                payload,
                headers: serde_json::from_str(&headers).unwrap_or_default(),
                replay_of: r.get::<_, Option<i64>>(10)?.map(to_u64),
            })
        };
        let by_seq = id
            .strip_prefix("evt_")
            .unwrap_or(id)
            .parse::<i64>()
            .ok()
            .map(|seq| {
                conn.query_row(&format!("SELECT {cols} FROM events WHERE seq = ?1"), [seq], row)
                    .optional()
            })
            .transpose()?
            .flatten();
        if by_seq.is_some() {
            return Ok(by_seq);
        }
        Ok(conn
            .query_row(
                &format!("SELECT {cols} FROM events WHERE delivery_id = ?1 ORDER BY seq DESC LIMIT 1"),
                [id],
                row,
            )
            .optional()?)
    }

    fn list(&self, q: &ListQuery) -> Result<Vec<Stored>, StoreError> {
        let conn = self.side();
        let mut stmt = conn.prepare(&format!(
            "SELECT {STORED_COLUMNS} FROM events
             WHERE (?1 IS NULL OR source = ?1) AND (?2 IS NULL OR received_ms >= ?2)
             ORDER BY seq DESC LIMIT ?3"
        ))?;
        let rows = stmt.query_map(
            params![q.source, q.since_ms, q.limit.max(1) as i64],
            stored_from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn replay_origins(&self, seqs: &[u64]) -> Result<HashMap<u64, u64>, StoreError> {
        let conn = self.side();
        let mut origins = HashMap::new();
        // Point lookups by primary key, a bounded number of parameters per statement.
        for chunk in seqs.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let mut stmt = conn.prepare(&format!(
                "SELECT seq, replay_of FROM events WHERE seq IN ({marks}) AND replay_of IS NOT NULL"
            ))?;
            let rows = stmt.query_map(rusqlite::params_from_iter(chunk.iter().map(|&s| s as i64)), |r| {
                Ok((to_u64(r.get(0)?), to_u64(r.get(1)?)))
            })?;
            for row in rows {
                let (seq, of) = row?;
                origins.insert(seq, of);
            }
        }
        Ok(origins)
    }

    fn replay(&self, source: &str, since_ms: Option<i64>, target: Option<&str>) -> Result<usize, StoreError> {
        let conn = self.side();
        let n = conn.execute(
            "INSERT INTO events (source, event, delivery_id, received_ms, line, payload, codec, headers, folded, target, replay_of, size)
             SELECT source, event, delivery_id, received_ms, line, payload, codec, headers, 0, ?3, seq, size
             FROM events
             WHERE source = ?1 AND (?2 IS NULL OR received_ms >= ?2) AND folded = 0 AND replay_of IS NULL
             ORDER BY seq",
            params![source, since_ms, target],
        )?;
        Ok(n)
    }

    fn replay_one(&self, seq: u64, target: Option<&str>) -> Result<Option<u64>, StoreError> {
        let conn = self.side();
        let n = conn.execute(
            "INSERT INTO events (source, event, delivery_id, received_ms, line, payload, codec, headers, folded, target, replay_of, size)
             SELECT source, event, delivery_id, received_ms, line, payload, codec, headers, 0, ?2, COALESCE(replay_of, seq), size
             FROM events WHERE seq = ?1",
            params![seq as i64, target],
        )?;
        Ok((n == 1).then(|| to_u64(conn.last_insert_rowid())))
    }

    // Tool calls are rare and written by the channel process itself: on the side connection,
    // outside the group commit. Kept when their event is evicted (the audit outlives it).
    fn record_audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        self.side().execute(
            "INSERT INTO audit (at_ms, subscriber, tool, event_ref, event_seq, arguments, outcome, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                e.at_ms,
                e.subscriber,
                e.tool,
                e.event_ref,
                e.event_seq.map(|s| s as i64),
                e.arguments,
                e.outcome,
                e.detail
            ],
        )?;
        Ok(())
    }

    fn audit_for(&self, seq: u64) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.side();
        let mut stmt = conn.prepare(
            "SELECT at_ms, subscriber, tool, event_ref, event_seq, arguments, outcome, detail
             FROM audit WHERE event_seq = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([seq as i64], |r| {
            Ok(AuditEntry {
                at_ms: r.get(0)?,
                subscriber: r.get(1)?,
                tool: r.get(2)?,
                event_ref: r.get(3)?,
                event_seq: r.get::<_, Option<i64>>(4)?.map(to_u64),
                arguments: r.get(5)?,
                outcome: r.get(6)?,
                detail: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn cursors(&self) -> Result<Vec<Cursor>, StoreError> {
        let conn = self.side();
        let mut stmt = conn.prepare("SELECT name, acked FROM subscribers ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok(Cursor {
                name: r.get(0)?,
                acked: to_u64(r.get(1)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn backlog(&self, sub: &Subscription) -> Result<Backlog, StoreError> {
        let conn = self.side();
        let acked: Option<i64> = conn
            .query_row(
                "SELECT acked FROM subscribers WHERE name = ?1",
                [&sub.name],
                |r| r.get(0),
            )
            .optional()?;
        let Some(acked) = acked else {
            return Ok(Backlog::default());
        };
        let sources = serde_json::to_string(&sub.sources).unwrap_or_else(|_| "[]".into());
        let (events, oldest_ms) = conn.query_row(
            "SELECT count(*), min(received_ms) FROM events
             WHERE seq > ?1 AND folded = 0 AND source IN (SELECT value FROM json_each(?2))
               AND (target IS NULL OR target = ?3)",
            params![acked, sources, sub.name],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?)),
        )?;
        Ok(Backlog {
            events: to_u64(events),
            oldest_ms,
        })
    }

    fn writable(&self) -> Result<(), StoreError> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(StoreError::Closed);
        }
        if self.shared.bytes.load(Ordering::Relaxed) >= self.max_bytes {
            return Err(StoreError::Full);
        }
        if self.shared.failing.load(Ordering::Relaxed) {
            return Err(StoreError::Db("the last commit failed".into()));
        }
        let conn = self.side();
        // Take the write lock and let go: proves the file accepts a writer now, without
        // writing. Short wait: a probe must answer before its caller's timeout.
        conn.busy_timeout(PROBE_WAIT)?;
        let probe = conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;");
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        conn.busy_timeout(BUSY_WAIT)?;
        probe.map_err(|e| StoreError::Db(format!("cannot take the write lock: {e}")))
    }

    fn tokens(&self) -> &dyn TokenStore {
        &self.tokens
    }

    fn close(&self, limit: Duration) {
        self.shared.closed.store(true, Ordering::Relaxed);
        let _ = self.tx.send_timeout(Op::Stop, limit);
        let deadline = Instant::now() + limit;
        let handle = self.writer.lock().expect("writer poisoned").take();
        if let Some(h) = handle {
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            if h.is_finished() {
                let _ = h.join();
            } else {
                tracing::warn!("store writer did not stop in time");
            }
        }
    }
}

/// Copies the WAL into the database on a thread of its own, when the writer asks, so that no
/// commit waits for it. A PASSIVE checkpoint copies the frames there when it starts, without
/// locking out the writer; SQLite starts the WAL over only once every frame is copied, so
/// the writer finishes each round itself ([`Writer::checkpoint`]).
struct Checkpointer {
    /// Round numbers, from 1.
    ask: Sender<u64>,
    /// The last round the thread has done.
    done: Arc<AtomicU64>,
    /// The last round asked for.
    asked: u64,
    /// The writer has yet to finish round `asked`.
    running: bool,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    fn start(conn: Connection) -> Result<Self, StoreError> {
        let (ask, rounds) = crossbeam_channel::bounded::<u64>(1);
        let done = Arc::new(AtomicU64::new(0));
        let finished = done.clone();
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || {
                // Ends when the writer drops `ask`.
                while let Ok(round) = rounds.recv() {
                    if let Err(e) = checkpoint(&conn) {
                        tracing::warn!(error = %e, "store: checkpoint failed; the writer will run one");
                    }
                    finished.store(round, Ordering::Release);
                }
            })
            .map_err(|e| StoreError::Db(format!("cannot start the store checkpointer: {e}")))?;
        Ok(Checkpointer {
            ask,
            done,
            asked: 0,
            running: false,
            thread: Some(thread),
        })
    }

    /// Whether the thread has done every round asked for.
    fn idle(&self) -> bool {
        self.done.load(Ordering::Acquire) >= self.asked
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Close the channel (by replacing `ask`), then wait for a round in progress.
        self.ask = crossbeam_channel::bounded(1).0;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A PASSIVE checkpoint on `conn`: whether every frame of the WAL is now in the database.
fn checkpoint(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        let (busy, log, copied): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        Ok(busy == 0 && log == copied)
    })
}

struct Writer {
    /// Before `conn`: dropped first, so the writer's connection is the last one closed.
    checkpointer: Checkpointer,
    conn: Connection,
    /// WAL written since it last started over, estimated from the rows committed.
    wal_bytes: u64,
    /// WAL written since the checkpointer was last asked for a round.
    round_bytes: u64,
    shared: Arc<Shared>,
    opts: StoreOptions,
    data_version: i64,
    last_age_check: Instant,
    /// Acknowledgements not written yet, and when the oldest of them arrived.
    acks: HashMap<String, u64>,
    acks_since: Option<Instant>,
    /// When the last eviction could not get under 90% (sessions still wait for the rest):
    /// none is tried again until `evict_freed` and [`EVICT_RETRY`] later, or the next age check.
    evict_stalled: Option<Instant>,
    /// Acknowledgements, a forgotten subscriber or another process's write may have made
    /// events evictable since the stall.
    evict_freed: bool,
    /// Transactions and events committed since start (logged at exit: the group size tells
    /// how well commits are shared).
    commits: u64,
    appends: u64,
    /// What the `stored_bytes` row does not count yet.
    ledger: Ledger,
}

/// The writer's side of the `stored_bytes` row: what it appended, and what other processes
/// did, since the row last moved. Moving it adds this writer's bytes (known) and sums other
/// processes' rows from the file (rare, few), so no commit reads back its own events.
#[derive(Clone)]
struct Ledger {
    /// The row's `through_seq` as this writer last moved it.
    through: u64,
    /// The newest event accounted for here: this writer's last append, or the last of
    /// another process's events it has seen.
    last: u64,
    /// The bytes of this writer's appends after `through`.
    own: u64,
    /// Other processes' events after `through`, as seq ranges `(after, upto]`.
    foreign: Vec<(u64, u64)>,
    moved: Instant,
}

impl Ledger {
    fn new(head: u64) -> Self {
        Ledger {
            through: head,
            last: head,
            own: 0,
            foreign: Vec::new(),
            moved: Instant::now(),
        }
    }

    fn behind(&self) -> bool {
        self.last > self.through
    }

    /// This writer committed `first..=last`, `bytes` in all; a gap before `first` is
    /// another process's.
    fn appended(&mut self, first: u64, last: u64, bytes: u64) {
        if first > self.last + 1 {
            self.foreign.push((self.last, first - 1));
        }
        self.last = last;
        self.own += bytes;
    }

    /// Another process's events up to `head` were seen.
    fn noticed(&mut self, head: u64) {
        if head > self.last {
            self.foreign.push((self.last, head));
            self.last = head;
        }
    }

    /// Moves the row to `last` in `tx`: the total it then holds. Moved meanwhile by another
    /// process (which counted some of these events): what lies after where it stands is
    /// summed from the file instead. Not there: written, from what this writer counted when
    /// the store was empty at open, else (deleted by hand) summed from every event.
    fn move_in(&self, tx: &Connection) -> rusqlite::Result<u64> {
        let mut bytes = self.own;
        for (after, upto) in &self.foreign {
            bytes += bytes_between(tx, *after, *upto)?;
        }
        let moved = tx
            .prepare_cached(
                "UPDATE stored_bytes SET bytes = bytes + ?1, through_seq = ?2
                 WHERE id = 0 AND through_seq = ?3 RETURNING bytes",
            )?
            .query_row(
                params![bytes as i64, self.last as i64, self.through as i64],
                |r| r.get::<_, i64>(0),
            )
            .optional()?;
        let moved = match moved {
            Some(total) => Some(total),
            None => tx
                .query_row(
                    "UPDATE stored_bytes SET
                         bytes = bytes + (SELECT coalesce(sum(size), 0) FROM events
                                          WHERE seq > stored_bytes.through_seq AND seq <= ?1),
                         through_seq = max(through_seq, ?1)
                     WHERE id = 0 RETURNING bytes",
                    [self.last as i64],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?,
        };
        if let Some(total) = moved {
            return Ok(to_u64(total));
        }
        // The store was empty at open: this writer has counted every event since.
        let total = if self.through == 0 {
            bytes
        } else {
            bytes_between(tx, 0, self.last)?
        };
        tx.execute(
            "INSERT INTO stored_bytes (id, through_seq, bytes) VALUES (0, ?1, ?2)",
            params![self.last as i64, total as i64],
        )?;
        Ok(total)
    }

    /// The row now stands at `last`.
    fn moved(&mut self) {
        self.through = self.last;
        self.own = 0;
        self.foreign.clear();
        self.moved = Instant::now();
    }
}

impl Writer {
    fn new(conn: Connection, shared: Arc<Shared>, opts: StoreOptions, checkpointer: Checkpointer) -> Self {
        let data_version = conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .unwrap_or(0);
        // `opening_totals` left the row at the head.
        let shared_head = shared.head.load(Ordering::Acquire);
        Writer {
            conn,
            checkpointer,
            wal_bytes: 0,
            round_bytes: 0,
            shared,
            opts,
            data_version,
            last_age_check: Instant::now(),
            acks: HashMap::new(),
            evict_stalled: None,
            evict_freed: false,
            acks_since: None,
            commits: 0,
            appends: 0,
            ledger: Ledger::new(shared_head),
        }
    }

    fn run(mut self, rx: Receiver<Op>) {
        let mut ops = Vec::with_capacity(GROUP);
        loop {
            let wait = match self.acks_since {
                Some(t) => ACK_DELAY.saturating_sub(t.elapsed()).min(TICK),
                None => TICK,
            };
            match rx.recv_timeout(wait) {
                Ok(op) => ops.push(op),
                Err(RecvTimeoutError::Timeout) => {
                    if self.acks_since.is_some_and(|t| t.elapsed() >= ACK_DELAY) {
                        self.commit(Vec::new(), true);
                    }
                    self.idle();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.commit(Vec::new(), true);
                    return;
                }
            }
            ops.extend(rx.try_iter().take(GROUP - 1));
            let stop = ops.iter().any(|o| matches!(o, Op::Stop));
            // Eviction needs acknowledgements in the file to make room: from 80% they are
            // written with every commit, so the one that crosses 90% finds them there.
            let acks_due = stop
                || self.acks_since.is_some_and(|t| t.elapsed() >= ACK_DELAY)
                || self.shared.bytes.load(Ordering::Relaxed) >= self.eviction_low_mark();
            self.commit(std::mem::take(&mut ops), acks_due);
            if stop {
                // Whatever raced in behind the stop is committed too: it may have a receipt.
                let rest: Vec<Op> = rx.try_iter().collect();
                self.commit(rest, true);
                self.move_ledger();
                tracing::info!(commits = self.commits, events = self.appends, "store closed");
                return;
            }
        }
    }

    /// Asks the checkpointer for a round once enough WAL is written, and finishes a round it
    /// has done: the frames committed while it ran are copied here, between two commits, so
    /// the next commit starts the WAL over (a few hundred KiB instead of 16 MiB on the path
    /// of a commit). Past [`CHECKPOINT_HARD_BYTES`] the writer checkpoints whatever it can.
    fn checkpoint(&mut self) {
        let c = &mut self.checkpointer;
        if (c.running && c.idle()) || self.wal_bytes >= CHECKPOINT_HARD_BYTES {
            c.running = false;
            let complete = checkpoint(&self.conn).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "store: checkpoint failed");
                false
            });
            // Not complete: a reader holds the rest of the WAL. The next round comes after
            // another round's worth of writing, as does the next try at the hard limit.
            self.wal_bytes = if complete {
                0
            } else {
                self.wal_bytes.min(CHECKPOINT_HARD_BYTES - CHECKPOINT_BYTES)
            };
        } else if !c.running
            && c.idle()
            && self.round_bytes >= CHECKPOINT_BYTES
            && c.ask.try_send(c.asked + 1).is_ok()
        {
            c.asked += 1;
            c.running = true;
            self.round_bytes = 0;
        }
    }

    /// Picks up other processes' commits; runs retention.
    fn idle(&mut self) {
        if self.checkpointer.running {
            self.checkpoint();
        }
        let version: i64 = match self.conn.query_row("PRAGMA data_version", [], |r| r.get(0)) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "store: cannot read data_version");
                return;
            }
        };
        if version != self.data_version {
            self.data_version = version;
            // Another process may have revoked a token or forgotten a subscriber.
            self.evict_freed = true;
            if let Ok(head) = self
                .conn
                .query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| {
                    r.get::<_, i64>(0)
                })
            {
                let head = to_u64(head);
                let before = self.shared.head.load(Ordering::Acquire);
                if head > before {
                    let mut ring = self.shared.ring.lock().expect("ring poisoned");
                    ring.events.clear();
                    ring.bytes = 0;
                    ring.floor = head;
                    self.shared.head.store(head, Ordering::Release);
                    drop(ring);
                    self.count_appended(before, head);
                    self.ledger.noticed(head);
                    self.shared.wake(head);
                }
            }
        }
        if self.last_age_check.elapsed() >= AGE_EVERY {
            self.evict_stalled = None;
            self.retention();
        } else if self.evicting() {
            self.retention();
        }
        if self.ledger.moved.elapsed() >= LEDGER_EVERY {
            self.move_ledger();
        }
    }

    /// Moves `stored_bytes` to the newest event this writer knows of, in a transaction of its
    /// own (between commits: idle, before retention deletes, at close), when it is behind.
    fn move_ledger(&mut self) {
        if !self.ledger.behind() {
            return;
        }
        let result = (|| -> rusqlite::Result<u64> {
            let tx = self.conn.transaction()?;
            let total = self.ledger.move_in(&tx)?;
            tx.commit()?;
            Ok(total)
        })();
        match result {
            Ok(total) => {
                self.ledger.moved();
                self.shared.bytes.store(total, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "store: cannot record the stored bytes"),
        }
    }

    /// Adds the events another process appended after `after` through `head` (`hookwire
    /// replay`'s copies) to the stored bytes. Bounded by `head`, what was read as the head: a
    /// commit landing between the two reads is counted when it is seen, not twice.
    fn count_appended(&self, after: u64, head: u64) {
        match bytes_between(&self.conn, after, head) {
            Ok(b) => {
                self.shared.bytes.fetch_add(b, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "store: cannot size other writers' events"),
        }
    }

    /// Runs a `DELETE ... RETURNING size` and takes what it deleted off the stored bytes:
    /// `(rows, bytes)`.
    fn delete_counted(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<(usize, u64)> {
        let mut stmt = self.conn.prepare(sql)?;
        let mut rows = stmt.query(params)?;
        let (mut n, mut bytes) = (0usize, 0u64);
        while let Some(row) = rows.next()? {
            n += 1;
            bytes += to_u64(row.get::<_, i64>(0)?);
        }
        // Never below zero, even if the count had drifted.
        let _ = self
            .shared
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(bytes))
            });
        Ok((n, bytes))
    }

    /// Writes the appends in `ops` and, when `acks_due`, every pending acknowledgement, in one
    /// transaction.
    fn commit(&mut self, ops: Vec<Op>, acks_due: bool) {
        let mut appended: Vec<(Arc<Stored>, u64, Done)> = Vec::new();
        let has_appends = ops.iter().any(|o| matches!(o, Op::Append(..)));
        let mut forgotten = Vec::new();
        for op in &ops {
            match op {
                Op::Ack(name, seq) => {
                    let a = self.acks.entry(name.clone()).or_default();
                    *a = (*a).max(*seq);
                    self.acks_since.get_or_insert_with(Instant::now);
                }
                Op::Forget(name, done) => {
                    self.acks.remove(name);
                    forgotten.push((name.clone(), done.clone()));
                }
                _ => {}
            }
        }
        if !has_appends && forgotten.is_empty() && (!acks_due || self.acks.is_empty()) {
            return;
        }
        let acks = if acks_due {
            self.acks_since = None;
            std::mem::take(&mut self.acks)
        } else {
            HashMap::new()
        };
        // Once a second the transaction also moves `stored_bytes` to its last event: the
        // ledger as it will be after this commit, and the total the row then holds.
        let mut moving = (self.ledger.moved.elapsed() >= LEDGER_EVERY).then(|| self.ledger.clone());
        let result = (|| -> Result<Option<u64>, rusqlite::Error> {
            let tx = self.conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO events (source, event, delivery_id, received_ms, line, payload, codec, headers, folded, size, signed_key)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?;
                for op in ops {
                    match op {
                        Op::Append(e, codec, done) => {
                            let headers = e.headers.as_json();
                            let size = (e.line.len() + e.payload.len() + headers.len()) as u64;
                            insert.execute(params![
                                e.source,
                                e.event,
                                e.delivery_id,
                                e.received_ms,
                                e.line,
                                &e.payload[..],
                                codec as i64,
                                headers,
                                e.folded as i64,
                                size as i64,
                                e.signed_key
                            ])?;
                            let seq = to_u64(tx.last_insert_rowid());
                            let stored = Stored {
                                seq,
                                source: e.source,
                                event: e.event,
                                delivery_id: e.delivery_id,
                                received_ms: e.received_ms,
                                line: e.line,
                                folded: e.folded,
                                target: None,
                            };
                            appended.push((Arc::new(stored), size, done));
                        }
                        Op::Ack(..) | Op::Forget(..) | Op::Stop => {}
                    }
                }
                let mut ack = tx.prepare_cached(
                    "INSERT INTO subscribers (name, acked) VALUES (?1, ?2)
                     ON CONFLICT (name) DO UPDATE SET acked = max(acked, excluded.acked)",
                )?;
                for (name, seq) in &acks {
                    ack.execute(params![name, *seq as i64])?;
                }
                for (name, _) in &forgotten {
                    tx.execute("DELETE FROM subscribers WHERE name = ?1", [name])?;
                }
            }
            let total = match (&mut moving, appended.first(), appended.last()) {
                (Some(ledger), Some((first, ..)), Some((last, ..))) => {
                    ledger.appended(
                        first.seq,
                        last.seq,
                        appended.iter().map(|(_, size, _)| size).sum(),
                    );
                    // The events' commit never fails for the row: it moves at the next try.
                    match ledger.move_in(&tx) {
                        Ok(total) => Some(total),
                        Err(e) => {
                            tracing::warn!(error = %e, "store: cannot record the stored bytes");
                            None
                        }
                    }
                }
                _ => None,
            };
            tx.commit()?;
            Ok(total)
        })();
        self.shared.failing.store(result.is_err(), Ordering::Relaxed);
        let forgot = !forgotten.is_empty();
        for (_, done) in forgotten {
            let _ = done.send(result.is_ok());
        }
        let total = match result {
            Ok(total) => total,
            Err(e) => {
                tracing::error!(error = %e, path = %self.opts.path.display(), "store commit failed; refusing the events it held");
                for (_, _, done) in appended {
                    let _ = done.send(Err(SinkError::Failed));
                }
                return;
            }
        };
        self.commits += 1;
        self.appends += appended.len() as u64;
        if !acks.is_empty() || forgot {
            self.evict_freed = true;
        }
        if appended.is_empty() {
            self.wal_bytes += COMMIT_PAGES_BYTES;
            self.round_bytes += COMMIT_PAGES_BYTES;
            self.checkpoint();
            if !acks.is_empty() && self.evicting() {
                self.retention();
            }
            return;
        }
        let added: u64 = appended.iter().map(|(_, size, _)| size).sum();
        match (moving, total) {
            // Every event is at or before this commit's last: the row counts them all, also
            // those another process appended while this writer was busy.
            (Some(mut ledger), Some(total)) => {
                ledger.moved();
                self.ledger = ledger;
                self.shared.bytes.store(total, Ordering::Relaxed);
            }
            _ => {
                self.ledger
                    .appended(appended[0].0.seq, appended[appended.len() - 1].0.seq, added);
                self.shared.bytes.fetch_add(added, Ordering::Relaxed);
            }
        }
        self.wal_bytes += COMMIT_PAGES_BYTES + added;
        self.round_bytes += COMMIT_PAGES_BYTES + added;
        let head = {
            let mut ring = self.shared.ring.lock().expect("ring poisoned");
            let first = appended[0].0.seq;
            let head = self.shared.head.load(Ordering::Acquire);
            if first != head + 1 {
                // Another process committed in between: those rows are only in the file.
                ring.events.clear();
                ring.bytes = 0;
                ring.floor = first - 1;
            }
            for (e, _, _) in &appended {
                ring.bytes += e.line.len() + 64;
                ring.events.push_back(e.clone());
            }
            while ring.bytes > self.opts.ring_bytes {
                let Some(old) = ring.events.pop_front() else { break };
                ring.bytes -= old.line.len() + 64;
                ring.floor = old.seq;
            }
            let last = appended.last().expect("non-empty").0.seq;
            self.shared.head.store(last, Ordering::Release);
            last
        };
        // Our own commit moved data_version for other connections only; nothing to re-read.
        for (e, _, done) in appended {
            let _ = done.send(Ok(e.seq));
        }
        self.shared.wake(head);
        self.checkpoint();
        if self.evicting() {
            self.retention();
        }
    }

    /// Whether the stored bytes call for eviction: from 90% of `max_bytes`, down to 80%, so
    /// events every session has are gone before an append is refused at 100% (an eviction that
    /// started only then refused every append while it ran).
    fn evicting(&self) -> bool {
        self.over_eviction_mark()
            && self
                .evict_stalled
                .is_none_or(|t| self.evict_freed && t.elapsed() >= EVICT_RETRY)
    }

    fn over_eviction_mark(&self) -> bool {
        self.shared.bytes.load(Ordering::Relaxed) >= self.opts.max_bytes / 10 * 9
    }

    fn eviction_low_mark(&self) -> u64 {
        self.opts.max_bytes / 10 * 8
    }

    /// The oldest events no live subscriber still waits for, `over` bytes of them (or all
    /// there are): one waits for an event when it has not acknowledged it, receives its source
    /// (a subscriber from before sources were recorded receives all) and is not excluded by a
    /// replay's target. Live: a local session, or a token neither revoked nor expired. So an
    /// idle subscriber holds back only its own sources' events. Folded events are delivered to
    /// nobody. Read in seq order and stopped once `over` is reached: each row's size and flags
    /// are stored after its payload, so a row read is a row's overflow pages read, and a query
    /// summing over the table read the whole file at every eviction.
    fn evictable(&self, over: u64, now: i64) -> rusqlite::Result<Vec<i64>> {
        let mut stmt = self.conn.prepare(
            "SELECT e.seq, e.size FROM events e
             WHERE e.seq < (SELECT max(seq) FROM events)
               AND (e.folded = 1 OR NOT EXISTS (
                   SELECT 1 FROM subscribers s LEFT JOIN tokens t ON t.name = s.name
                   WHERE s.acked < e.seq
                     AND ((t.name IS NULL AND s.name GLOB 'local*')
                          OR (t.revoked_ms IS NULL AND (t.expires_ms IS NULL OR t.expires_ms > ?1)))
                     AND (s.sources IS NULL OR e.source IN (SELECT value FROM json_each(s.sources)))
                     AND (e.target IS NULL OR e.target = s.name)))
             ORDER BY e.seq",
        )?;
        let mut rows = stmt.query([now])?;
        let (mut seqs, mut bytes) = (Vec::new(), 0u64);
        while bytes < over {
            let Some(row) = rows.next()? else { break };
            seqs.push(row.get::<_, i64>(0)?);
            bytes += to_u64(row.get::<_, i64>(1)?);
        }
        Ok(seqs)
    }

    /// Deletes events past `max_age`, and, from 90% of `max_bytes`, the oldest events every
    /// subscriber has acknowledged ([`Self::evictable`]).
    fn retention(&mut self) {
        // So every event it deletes is one the row counts, and the trigger takes it off.
        self.move_ledger();
        self.last_age_check = Instant::now();
        let now = millis(SystemTime::now());
        let cutoff = now - self.opts.max_age.as_millis().min(i64::MAX as u128) as i64;
        match self.delete_counted(
            "DELETE FROM events WHERE received_ms < ?1 AND seq < (SELECT max(seq) FROM events)
             RETURNING size",
            [cutoff],
        ) {
            Ok((0, _)) => {}
            Ok((n, _)) => tracing::warn!(
                deleted = n,
                "store: events past store.max_age deleted, delivered or not"
            ),
            Err(e) => tracing::warn!(error = %e, "store: age retention failed"),
        }
        if !self.evicting() {
            return;
        }
        let over = self
            .shared
            .bytes
            .load(Ordering::Relaxed)
            .saturating_sub(self.eviction_low_mark());
        let deleted = self.evictable(over, now).and_then(|seqs| {
            let seqs = serde_json::to_string(&seqs).expect("a list of numbers serialises");
            self.delete_counted(
                "DELETE FROM events WHERE seq IN (SELECT value FROM json_each(?1)) RETURNING size",
                [seqs],
            )
        });
        match deleted {
            Ok((0, _)) => {}
            Ok((n, _)) => tracing::info!(evicted = n, "store: acknowledged events evicted for space"),
            Err(e) => tracing::warn!(error = %e, "store: size retention failed"),
        }
        self.evict_stalled = self.over_eviction_mark().then(Instant::now);
        self.evict_freed = false;
        if self.shared.bytes.load(Ordering::Relaxed) >= self.opts.max_bytes {
            tracing::warn!(
                max_bytes = self.opts.max_bytes,
                "store full of events sessions have not acknowledged; refusing webhooks (503) until they catch up"
            );
        }
    }
}

struct SqliteTokens {
    side: Arc<Mutex<Connection>>,
}

fn split(s: String) -> Vec<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

fn token_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Token> {
    Ok(Token {
        name: r.get(0)?,
        sources: split(r.get(1)?),
        permissions: split(r.get(2)?),
        created_ms: r.get(3)?,
        expires_ms: r.get(4)?,
        revoked_ms: r.get(5)?,
    })
}

const TOKEN_COLUMNS: &str = "name, sources, permissions, created_ms, expires_ms, revoked_ms";

impl TokenStore for SqliteTokens {
    fn create(&self, new: &NewToken, now_ms: i64) -> Result<TokenSecret, StoreError> {
        let secret = token::generate();
        let mut conn = self.side.lock().expect("store connection poisoned");
        // Immediate: a read that later writes cannot take the write lock once the writer has
        // committed meanwhile (SQLITE_BUSY at once, past the busy wait), as a running gateway
        // does whenever events or tool calls arrive.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let exists: bool = tx
            .query_row("SELECT 1 FROM tokens WHERE name = ?1", [&new.name], |_| Ok(()))
            .optional()?
            .is_some();
        if exists {
            return Err(StoreError::Invalid(format!(
                "a token named `{}` exists; revoke it first or pick another name",
                new.name
            )));
        }
        tx.execute(
            &format!("INSERT INTO tokens ({TOKEN_COLUMNS}, hash) VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6)"),
            params![
                new.name,
                new.sources.join(","),
                new.permissions.join(","),
                now_ms,
                new.expires_ms,
                token::hash(&secret.0)
            ],
        )?;
        // The subscriber starts at the head: it receives what arrives from now on.
        tx.execute(
            "INSERT INTO subscribers (name, acked)
             VALUES (?1, (SELECT coalesce(max(seq), 0) FROM events))
             ON CONFLICT (name) DO UPDATE SET acked = excluded.acked",
            [&new.name],
        )?;
        tx.commit()?;
        Ok(secret)
    }

    fn list(&self) -> Result<Vec<Token>, StoreError> {
        let conn = self.side.lock().expect("store connection poisoned");
        let mut stmt = conn.prepare(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_ms DESC, name"
        ))?;
        let rows = stmt.query_map([], token_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn revoke(&self, name: &str, now_ms: i64) -> Result<bool, StoreError> {
        let conn = self.side.lock().expect("store connection poisoned");
        let n = conn.execute(
            "UPDATE tokens SET revoked_ms = ?2 WHERE name = ?1 AND revoked_ms IS NULL",
            params![name, now_ms],
        )?;
        // Its events no longer wait for it.
        conn.execute("DELETE FROM subscribers WHERE name = ?1", [name])?;
        Ok(n > 0)
    }

    fn find(&self, secret: &str) -> Result<Option<Token>, StoreError> {
        let conn = self.side.lock().expect("store connection poisoned");
        Ok(conn
            .query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?1"),
                [token::hash(secret)],
                token_from_row,
            )
            .optional()?)
    }

    fn get(&self, name: &str) -> Result<Option<Token>, StoreError> {
        let conn = self.side.lock().expect("store connection poisoned");
        Ok(conn
            .query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE name = ?1"),
                [name],
                token_from_row,
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(source: &str, id: &str) -> Event {
        Event {
            source: source.into(),
            event: "e".into(),
            delivery_id: id.into(),
            line: format!("{{\"id\":\"{id}\"}}\n").into_bytes(),
            received_ms: millis(SystemTime::now()),
            payload: b"{}".to_vec().into(),
            headers: [("x-github-event", "push")].into_iter().collect(),
            folded: false,
            signed_key: None,
        }
    }

    fn sub(sources: &[&str]) -> Subscription {
        Subscription {
            name: "local".into(),
            sources: sources.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn append(store: &SqliteStore, e: Event) -> u64 {
        store.append(e).unwrap().wait_blocking().unwrap();
        store.head()
    }

    #[test]
    fn the_wal_is_checkpointed_off_the_writer_and_starts_over() {
        let dir = tempdir();
        let store = SqliteStore::open(StoreOptions::new(dir.join("s.db"))).unwrap();
        // Payloads LZ4 cannot shrink, so the rows are what the WAL holds.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        };
        let rounds = 20 * CHECKPOINT_BYTES / (16 << 10);
        for i in 0..rounds {
            let mut e = event("github", &format!("d{i}"));
            e.payload = noise(16 << 10).into();
            append(&store, e);
        }
        let len = |name: &str| std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
        let written = rounds * (16 << 10);
        // Without checkpoints the WAL would hold all of it; with each round finished by the
        // writer it starts over at about every CHECKPOINT_BYTES.
        assert!(
            len("s.db-wal") < written / 2,
            "WAL {} bytes after {written} written",
            len("s.db-wal")
        );
        assert!(len("s.db") > written / 2, "database {} bytes", len("s.db"));
        let batch = store.read_after(&sub(&["github"]), 0, 10).unwrap();
        assert_eq!(batch.events.len(), 10);
        store.close(Duration::from_secs(5));
    }

    #[test]
    fn large_payloads_are_stored_compressed_and_read_back_exactly() {
        let dir = tempdir();
        let path = dir.join("s.db");
        let store = SqliteStore::open(StoreOptions::new(&path)).unwrap();
        let big: Vec<u8> = (0..400)
            .flat_map(|i| format!("{{\"n\":{i},\"repo\":\"octo/hello\",\"ok\":true}},").into_bytes())
            .collect();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let random: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        for (id, payload) in [
            ("big", big.clone()),
            ("random", random.clone()),
            ("small", b"{}".to_vec()),
        ] {
            append(
                &store,
                Event {
                    payload: payload.into(),
                    ..event("github", id)
                },
            );
        }
        assert_eq!(store.get("big").unwrap().unwrap().payload, big);
        assert_eq!(store.get("random").unwrap().unwrap().payload, random);
        assert_eq!(store.get("small").unwrap().unwrap().payload, b"{}");
        let raw = Connection::open(&path).unwrap();
        let stored = |id: &str| -> (i64, i64) {
            raw.query_row(
                "SELECT codec, length(payload) FROM events WHERE delivery_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        let (codec, len) = stored("big");
        assert_eq!(codec, 1);
        assert!((len as usize) < big.len() / 3, "{len} of {}", big.len());
        // Incompressible and small payloads are kept as they are.
        assert_eq!(stored("random"), (0, random.len() as i64));
        assert_eq!(stored("small"), (0, 2));
        // A replayed copy keeps its encoding.
        store.replay("github", None, None).unwrap();
        assert_eq!(store.get("evt_4").unwrap().unwrap().payload, big);
        store.close(Duration::from_secs(1));
    }

    #[test]
    fn a_store_from_before_compression_is_migrated_and_still_read() {
        let dir = tempdir();
        let path = dir.join("old.db");
        {
            let conn = Connection::open(&path).unwrap();
            let v1 = SCHEMA
                .replace("    codec       INTEGER NOT NULL DEFAULT 0,\n", "")
                .replace("user_version = 2", "user_version = 1");
            assert!(!v1.contains("codec"));
            conn.execute_batch(&v1).unwrap();
            conn.execute(
                "INSERT INTO events (source, event, delivery_id, received_ms, line, payload, headers, size)
                 VALUES ('github', 'e', 'old', 1, x'7B7D0A', x'7B2261223A317D', '[]', 10)",
                [],
            )
            .unwrap();
        }
        let store = SqliteStore::open(StoreOptions::new(&path)).unwrap();
        assert_eq!(store.get("old").unwrap().unwrap().payload, b"{\"a\":1}");
        append(
            &store,
            Event {
                payload: vec![b'x'; 4096].into(),
                ..event("github", "new")
            },
        );
        assert_eq!(store.get("new").unwrap().unwrap().payload, vec![b'x'; 4096]);
        store.close(Duration::from_secs(1));
    }

    #[test]
    fn appends_survive_reopen_and_are_read_in_order_per_subscription() {
        let dir = tempdir();
        let path = dir.join("s.db");
        {
            let store = SqliteStore::open(StoreOptions::new(&path)).unwrap();
            assert_eq!(append(&store, event("github", "a")), 1);
            assert_eq!(append(&store, event("datadog", "b")), 2);
            assert_eq!(append(&store, event("github", "c")), 3);
            let b = store.read_after(&sub(&["github"]), 0, 10).unwrap();
            let ids: Vec<_> = b.events.iter().map(|e| e.delivery_id.as_str()).collect();
            assert_eq!(ids, ["a", "c"]);
            assert_eq!(b.through, 3);
            store.ack("local", 1);
            store.close(Duration::from_secs(5));
        }
        let store = SqliteStore::open(StoreOptions::new(&path)).unwrap();
        assert_eq!(store.head(), 3);
        assert_eq!(store.cursor("local", 0).unwrap(), 1, "the ack was committed");
        // From the file now (the ring is empty after a restart).
        let b = store.read_after(&sub(&["github", "datadog"]), 1, 10).unwrap();
        let ids: Vec<_> = b.events.iter().map(|e| e.delivery_id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(append(&store, event("github", "d")), 4, "seqs continue");
        let rec = store.get("4").unwrap().unwrap();
        assert_eq!(
            rec.headers,
            vec![("x-github-event".to_string(), "push".to_string())]
        );
        assert_eq!(store.get("c").unwrap().unwrap().stored.seq, 3, "by delivery id");
        assert_eq!(store.recent_deliveries(0).unwrap().len(), 4);
    }

    #[test]
    fn folded_and_targeted_events_reach_only_whom_they_should() {
        let dir = tempdir();
        let store = SqliteStore::open(StoreOptions::new(dir.join("s.db"))).unwrap();
        let mut folded = event("github", "f");
        folded.folded = true;
        append(&store, folded);
        append(&store, event("github", "g"));
        assert_eq!(
            store.replay("github", None, Some("alice")).unwrap(),
            1,
            "folded ones are not replayed"
        );
        // Another connection wrote: the writer notices on its next tick.
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.head() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(store.head(), 3);
        let alice = Subscription {
            name: "alice".into(),
            sources: vec!["github".into()],
        };
        let ids = |s: &Subscription| -> Vec<u64> {
            store
                .read_after(s, 0, 10)
                .unwrap()
                .events
                .iter()
                .map(|e| e.seq)
                .collect()
        };
        assert_eq!(ids(&alice), [2, 3]);
        assert_eq!(ids(&sub(&["github"])), [2], "the replay was for alice only");
        assert_eq!(store.replay_origins(&[1, 2, 3]).unwrap(), HashMap::from([(3, 2)]));
        assert_eq!(store.get("3").unwrap().unwrap().replay_of, Some(2));
    }

    #[test]
    fn full_store_refuses_until_acknowledged_events_can_go() {
        let dir = tempdir();
        let mut opts = StoreOptions::new(dir.join("s.db"));
        opts.max_bytes = 2000;
        let store = SqliteStore::open(opts).unwrap();
        store.cursor("local", 0).unwrap();
        let mut accepted = 0;
        for i in 0..100 {
            match store.append(event("github", &i.to_string())) {
                Ok(r) => {
                    r.wait_blocking().unwrap();
                    accepted += 1;
                }
                Err(StoreError::Full) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(accepted > 0 && accepted < 100, "accepted {accepted}");
        assert!(matches!(
            store.append(event("github", "x")),
            Err(StoreError::Full)
        ));
        // Nothing unacknowledged was evicted.
        assert_eq!(
            store.read_after(&sub(&["github"]), 0, 1000).unwrap().events.len(),
            accepted
        );
        store.ack("local", store.head());
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.stored_bytes() >= 2000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            store.append(event("github", "y")).is_ok(),
            "space again once acknowledged"
        );
    }

    /// A session that acknowledges as it goes never meets a full store: eviction starts at 90%,
    /// so there is room when the next append comes (at 100% only, every append racing the
    /// eviction was refused: a fifth of a run answered 503 with nothing waiting).
    #[test]
    fn a_store_whose_events_are_all_acknowledged_never_refuses() {
        let dir = tempdir();
        let mut opts = StoreOptions::new(dir.join("s.db"));
        opts.max_bytes = 4000;
        let store = SqliteStore::open(opts).unwrap();
        store.cursor("local", 0).unwrap();
        for i in 0..400 {
            match store.append(event("github", &i.to_string())) {
                Ok(r) => r.wait_blocking().unwrap(),
                Err(e) => panic!("append {i} refused at {} bytes: {e}", store.stored_bytes()),
            }
            store.ack("local", store.head());
        }
        assert!(store.stored_bytes() < 4000, "{}", store.stored_bytes());
    }

    /// The stored bytes are kept by counting what each commit adds and each delete removes, so
    /// no scan of the table runs while serving; they must stay what a scan would say.
    #[test]
    fn stored_bytes_follow_appends_other_writers_and_evictions_exactly() {
        let dir = tempdir();
        let mut opts = StoreOptions::new(dir.join("s.db"));
        opts.max_bytes = 6000;
        let store = SqliteStore::open(opts).unwrap();
        let scanned = || -> u64 {
            let conn = Connection::open(dir.join("s.db")).unwrap();
            let b: i64 = conn
                .query_row("SELECT coalesce(sum(size), 0) FROM events", [], |r| r.get(0))
                .unwrap();
            to_u64(b)
        };
        // The row the next open starts from: where it stands, what it says, what a scan of
        // the events through there says.
        let row = || -> (u64, u64, u64) {
            let conn = Connection::open(dir.join("s.db")).unwrap();
            conn.query_row(
                "SELECT through_seq, bytes, (SELECT coalesce(sum(size), 0) FROM events e
                                             WHERE e.seq <= stored_bytes.through_seq)
                 FROM stored_bytes WHERE id = 0",
                [],
                |r| Ok((to_u64(r.get(0)?), to_u64(r.get(1)?), to_u64(r.get(2)?))),
            )
            .optional()
            .unwrap()
            // A new store gets the row when the writer first moves it.
            .unwrap_or_default()
        };
        let settled = |what: &str| {
            // The count follows each commit (another writer's rows: the next move), and the
            // row moves within about LEDGER_EVERY.
            let deadline = Instant::now() + Duration::from_secs(5);
            while (store.stored_bytes() != scanned() || row().0 != store.head()) && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(store.stored_bytes(), scanned(), "{what}");
            let (through, bytes, counted) = row();
            assert_eq!(through, store.head(), "{what}: the row moved to the newest event");
            assert_eq!(bytes, counted, "{what}: stored_bytes through seq {through}");
        };
        store.cursor("local", 0).unwrap();
        for i in 0..10 {
            append(&store, event("github", &i.to_string()));
        }
        settled("after appends");
        assert!(store.stored_bytes() > 0);
        // Another connection's copies, as `hookwire replay` writes them.
        assert_eq!(store.replay("github", None, None).unwrap(), 10);
        settled("after another writer's copies");
        // Acknowledged and over max_bytes: the oldest go, and their bytes with them.
        let mut i = 10;
        while store.stored_bytes() < 6000 {
            append(&store, event("github", &i.to_string()));
            i += 1;
        }
        store.ack("local", store.head());
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.stored_bytes() >= 6000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(store.stored_bytes() < 6000, "evicted");
        settled("after eviction");
        // Copies another writer adds just before this one appends lie in the gap before its
        // event: counted when the row next moves.
        assert!(store.replay("github", None, None).unwrap() > 0);
        append(&store, event("github", "after the copies"));
        settled("after copies and an append");
    }

    /// Two writers on one file (a gateway and `hookwire replay`, say) each move the row; the
    /// one that finds it moved by the other sums what lies after from the file.
    #[test]
    fn two_writers_keep_the_stored_total_exact() {
        let dir = tempdir();
        let path = dir.join("s.db");
        let a = SqliteStore::open(StoreOptions::new(&path)).unwrap();
        let b = SqliteStore::open(StoreOptions::new(&path)).unwrap();
        for i in 0..3 {
            append(&a, event("github", &format!("a{i}")));
        }
        for i in 0..3 {
            append(&b, event("github", &format!("b{i}")));
        }
        for i in 3..6 {
            append(&a, event("github", &format!("a{i}")));
        }
        b.close(Duration::from_secs(5));
        a.close(Duration::from_secs(5));
        let conn = Connection::open(&path).unwrap();
        let (through, bytes, scanned): (i64, i64, i64) = conn
            .query_row(
                "SELECT through_seq, bytes, (SELECT sum(size) FROM events) FROM stored_bytes",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(through, 9);
        assert_eq!(bytes, scanned);
        let store = SqliteStore::open(StoreOptions::new(&path)).unwrap();
        assert_eq!(store.stored_bytes(), to_u64(scanned));
    }

    /// Opening a store reads its total from `stored_bytes` and sums only the events after it;
    /// what another process appends or deletes meanwhile keeps the row exact.
    #[test]
    fn opening_reads_the_stored_total_instead_of_summing_the_table() {
        let dir = tempdir();
        let path = dir.join("s.db");
        let by_hand = |sql: &str| Connection::open(&path).unwrap().execute_batch(sql).unwrap();
        let scanned = || -> u64 {
            let conn = Connection::open(&path).unwrap();
            to_u64(
                conn.query_row("SELECT coalesce(sum(size), 0) FROM events", [], |r| r.get(0))
                    .unwrap(),
            )
        };
        // What a store opened now counts; closed again, so the row is left where it moved.
        let reopened = || -> u64 {
            let store = SqliteStore::open(StoreOptions::new(&path)).unwrap();
            let bytes = store.stored_bytes();
            store.close(Duration::from_secs(5));
            bytes
        };
        {
            let store = SqliteStore::open(StoreOptions::new(&path)).unwrap();
            for i in 0..5 {
                append(&store, event("github", &i.to_string()));
            }
            store.close(Duration::from_secs(5));
        }
        assert!(scanned() > 0);
        // An older hookwire's append (after the row's seq) and delete (before it).
        by_hand(
            "INSERT INTO events (source, event, delivery_id, received_ms, line, payload, headers, size)
             VALUES ('github', 'e', 'old-writer', 1, x'7B7D0A', x'7B7D', '[]', 7);
             DELETE FROM events WHERE seq = 2;",
        );
        let exact = scanned();
        assert_eq!(reopened(), exact, "the row, the events after it and the trigger");
        // Proof that the row is what is read: a total set by hand is what the next open says.
        by_hand("UPDATE stored_bytes SET bytes = bytes + 1000");
        assert_eq!(reopened(), exact + 1000);
        // A store without the row (an older hookwire's) is summed once and gets one.
        by_hand("DELETE FROM stored_bytes");
        assert_eq!(reopened(), exact);
        let row: i64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT bytes FROM stored_bytes WHERE id = 0", [], |r| r.get(0))
            .unwrap();
        assert_eq!(to_u64(row), exact);
    }

    #[test]
    fn an_idle_subscriber_holds_back_only_its_own_sources() {
        let dir = tempdir();
        let mut opts = StoreOptions::new(dir.join("s.db"));
        opts.max_bytes = 4000;
        let store = SqliteStore::open(opts).unwrap();
        let idle = Subscription {
            name: "local".into(),
            sources: vec!["github".into()],
        };
        let reader = Subscription {
            name: "local-2".into(),
            sources: vec!["ops".into()],
        };
        store.subscribe(&idle, 0).unwrap();
        store.subscribe(&reader, 0).unwrap();
        let waiting = append(&store, event("github", "waits"));
        for i in 0..200 {
            let seq = match store.append(event("ops", &i.to_string())) {
                Ok(r) => r.wait_blocking().map(|_| store.head()),
                Err(e) => panic!("ops event {i} refused: {e}"),
            };
            store.ack("local-2", seq.unwrap());
            // Acknowledgements reach the file within ACK_DELAY; eviction needs them there.
            let deadline = Instant::now() + Duration::from_secs(5);
            while store.stored_bytes() >= 4000 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let batch = store.read_after(&idle, 0, 10).unwrap();
        assert_eq!(batch.events.len(), 1);
        assert_eq!(
            batch.events[0].seq, waiting,
            "what the idle subscriber waits for stays"
        );
    }

    #[test]
    fn tokens_store_only_a_hash_and_report_status() {
        let dir = tempdir();
        let store = SqliteStore::open(StoreOptions::new(dir.join("s.db"))).unwrap();
        append(&store, event("github", "before"));
        let t = store.tokens();
        let secret = t
            .create(
                &NewToken {
                    name: "alice".into(),
                    sources: vec!["github".into()],
                    permissions: vec!["read-events".into()],
                    expires_ms: None,
                },
                1,
            )
            .unwrap();
        assert!(t
            .create(
                &NewToken {
                    name: "alice".into(),
                    sources: vec![],
                    permissions: vec![],
                    expires_ms: None
                },
                1
            )
            .is_err());
        let found = t.find(&secret.0).unwrap().unwrap();
        assert_eq!(found.sources, ["github"]);
        assert!(t.find("hwt_wrong").unwrap().is_none());
        assert_eq!(store.cursor("alice", 0).unwrap(), 1, "starts at the head");
        let raw = std::fs::read(dir.join("s.db")).unwrap();
        assert!(
            !raw.windows(secret.0.len()).any(|w| w == secret.0.as_bytes()),
            "secret not in the file"
        );
        assert!(t.revoke("alice", 5).unwrap());
        assert_eq!(
            t.get("alice").unwrap().unwrap().status(6),
            token::TokenStatus::Revoked
        );
    }

    fn tempdir() -> PathBuf {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hookwire-store-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
