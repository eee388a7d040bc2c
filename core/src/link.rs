//! The channel side of the gateway link: `hookwire channel --gateway URL` dials out to the
//! gateway's `/v1/session` (protocol in [`crate::link_protocol`]), hands each event's notification
//! line to the channel writer and acknowledges it once it is flushed to stdout.
//!
//! - **One task** holds the connection: it reconnects (exponential backoff from 0.5 s to 30 s
//!   with full jitter, reset after a connection that lasted). A refused token (401, or a
//!   session closed with 4403) stops the link for good: retrying cannot help, so it says so
//!   once in the log and once to the session, and reads fail with the reason. The process
//!   lives on: exiting would show the server as failed in Claude Code, which never restarts
//!   it.
//! - **The feed** ([`LinkFeed`]) is what the channel's writer thread reads: a bounded queue of
//!   `(id, line)`. The gateway resends whatever it has not durably recorded as acknowledged,
//!   so ids already written are skipped, here and in the link task (which acknowledges them
//!   again so the gateway's window moves on).
//! - **Acks** are cumulative: the writer publishes the highest id flushed; the link task sends
//!   it on the current connection, and first thing on each new one.
//! - If the gateway's newest id is below what this process wrote, the gateway has a new event
//!   log (its database was replaced): the written ids are forgotten, or every new event would
//!   be taken for a repeat.
//! - **Reads** ([`LinkReader`], the read tools' [`EventReader`] in gateway mode) go to the link
//!   task, which numbers each, sends it on the live connection and hands the matching
//!   `result` back. At most 8 are unanswered on a connection; a read waits at most 20 s. While
//!   the link is down a read fails at once ("gateway not connected; retry"), and reads
//!   unanswered when a connection ends fail too: they are not resent (the caller retries).
//! - **Audit** ([`LinkAudit`], the tools' [`AuditSink`] in gateway mode): each tool call's
//!   audit entry is queued and sent as an `audit` frame, fire and forget, to a gateway whose
//!   `hello` says `audit` (to an older one they are dropped, logged at debug). The queue
//!   survives reconnects: while the link is down it keeps the newest 256 entries (dropping the
//!   oldest, with a warning) and sends them first thing on the next connection. Queued entries
//!   go out before any read sent after them, so a `get_event` sees the calls made before it.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderValue, Uri};
use crossbeam_channel::Receiver;
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::channel::Feed;
use crate::link_protocol::{
    close, notification_line, ClientFrame, DecodeError, Hello, ServerFrame, MAX_SERVER_FRAME, PING_EVERY,
    PROTOCOL, PROTOCOL_VERSION, SESSION_PATH,
};
use crate::secret::Secret;
use crate::store::AuditEntry;
use crate::tools::{AuditSink, EventReader, ReadError};

/// The environment variable holding the session token.
pub const TOKEN_ENV: &str = "HOOKWIRE_TOKEN";

/// Events queued for the writer at most; the link stops reading the socket beyond.
const QUEUE: usize = 1024;
/// First reconnect delay (before jitter).
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest reconnect delay; also the delay after a refused token.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A connection that lasted this long resets the backoff.
const STABLE: Duration = Duration::from_secs(10);
/// TCP + TLS + upgrade, at most.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The gateway sends `hello` at once; waiting longer means something is wrong.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Nothing from the gateway for this long (three pings unanswered): the connection is dead.
const SILENCE: Duration = Duration::from_secs(45);
/// One frame's send, at most.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Read requests unanswered on a connection, at most (the gateway allows more waiting).
const MAX_READS: usize = 8;
/// How long a read waits for its result.
const READ_TIMEOUT: Duration = Duration::from_secs(20);
/// Audit entries kept for the gateway at most (while the link is down); beyond, the oldest
/// are dropped.
const AUDIT_QUEUE: usize = 256;
/// A read's error while the link is down.
pub const NOT_CONNECTED: &str = "gateway not connected; retry";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where and how to connect.
pub struct LinkOptions {
    /// The session endpoint, `ws://` or `wss://` (see [`session_url`]).
    pub url: String,
    /// The session token.
    pub token: Secret,
    /// TLS trust for `wss://`; `None` trusts the public web PKI (webpki roots).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The file where the highest id written to stdout is kept between processes (see
    /// [`mark_path`]); `None` keeps nothing, and a restarted channel may show again what the
    /// gateway had not recorded as acknowledged.
    pub mark: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for LinkOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkOptions")
            .field("url", &self.url)
            .field("token", &self.token)
            .field("custom_ca", &self.tls.is_some())
            .field("mark", &self.mark)
            .finish()
    }
}

/// Where a linked channel keeps its written position for `url` and `token`: a file in the
/// user's state folder (`$XDG_STATE_HOME/hookwire`, else `~/.local/state/hookwire`) named by
/// a hash of both, so one machine's sessions of different gateways or tokens never share
/// one, and the token never appears in a file name.
pub fn mark_path(url: &str, token: &Secret) -> Option<std::path::PathBuf> {
    use sha2::Digest as _;
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".local/state")))?;
    let mut h = sha2::Sha256::new();
    h.update(url.as_bytes());
    h.update([0]);
    h.update(token.expose());
    let name = format!("link-{}.position", &hex::encode(h.finalize())[..32]);
    Some(base.join("hookwire").join(name))
}

/// The written position kept in a mark file: read at start, rewritten after every flush
/// (a `pwrite` without fsync, as in local mode: it outlives the process, and power loss takes
/// the session with it).
struct Mark(std::fs::File);

impl Mark {
    fn open(path: &Path) -> std::io::Result<(Mark, u64)> {
        use std::os::unix::fs::FileExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut bytes = [0u8; 8];
        let at = match file.read_exact_at(&mut bytes, 0) {
            Ok(()) => u64::from_le_bytes(bytes),
            Err(_) => 0,
        };
        Ok((Mark(file), at))
    }

    fn write(&self, position: u64) {
        use std::os::unix::fs::FileExt;
        if let Err(e) = self.0.write_at(&position.to_le_bytes(), 0) {
            tracing::warn!(error = %e, "cannot write the link's written position");
        }
    }
}

/// The session endpoint for a gateway URL as a user writes it: `https://` and `http://` map
/// to `wss://` and `ws://`, and `/v1/session` is appended to the path unless it is there.
pub fn session_url(gateway: &str) -> Result<String, String> {
    let g = gateway.trim();
    let bad = |why: &str| format!("--gateway {g}: {why}");
    let (scheme, rest) = g
        .split_once("://")
        .ok_or_else(|| bad("write the URL with its scheme, e.g. https://hooks.example.com"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "https" | "wss" => "wss",
        "http" | "ws" => "ws",
        _ => return Err(bad("the scheme must be https, http, wss or ws")),
    };
    if rest.contains(['?', '#']) {
        return Err(bad("no query or fragment"));
    }
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, format!("/{p}")),
        None => (rest, String::new()),
    };
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    if authority.contains('@') {
        return Err(bad(
            "no credentials in the URL: the token goes in HOOKWIRE_TOKEN or --token-file",
        ));
    }
    let path = path.trim_end_matches('/');
    let path = if path.ends_with(SESSION_PATH) {
        path.to_owned()
    } else {
        format!("{path}{SESSION_PATH}")
    };
    let url = format!("{scheme}://{authority}{path}");
    url.parse::<Uri>().map_err(|e| bad(&e.to_string()))?;
    Ok(url)
}

/// The session token: from `file` when given, else from `HOOKWIRE_TOKEN`. Never from argv,
/// which other users of the machine can read. Errors never contain the token. A token that
/// is empty or still an unexpanded reference (`${HOOKWIRE_TOKEN}`, what Claude Code passes
/// from `.mcp.json` when the variable is not exported) is refused like any other secret.
pub fn read_token(file: Option<&Path>) -> Result<Secret, String> {
    let export = || crate::secret::SecretError::EnvMissing(TOKEN_ENV.into()).hint("--token-file PATH");
    let (raw, from) = match file {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|e| format!("cannot read the token file {}: {e}", p.display()))?,
            format!("the token file {}", p.display()),
        ),
        None => (
            std::env::var(TOKEN_ENV).map_err(|_| {
                format!("no session token: {TOKEN_ENV} is not set (an admin creates one with `hookwire token create`); {}", export())
            })?,
            format!("environment variable {TOKEN_ENV}"),
        ),
    };
    let token = raw.trim();
    if let Err(e) = crate::secret::check(token.as_bytes(), &from) {
        let hint = if file.is_some() {
            "write the token itself in the file".to_owned()
        } else {
            export()
        };
        return Err(format!("the session token: {e}; {hint}"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "the session token in {from} has characters a token cannot have"
        ));
    }
    Ok(Secret::new(token.as_bytes()))
}

/// TLS trusting only the CA certificates in a PEM file (a gateway with a private CA).
pub fn tls_with_ca(path: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    crate::gateway::install_crypto_provider();
    let bad = |e: &dyn std::fmt::Display| format!("--ca-file {}: {e}", path.display());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"no certificate in the file"));
    }
    Ok(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// What the link task hands the writer.
enum Item {
    Event(u64, Vec<u8>),
    /// The gateway has a new event log: forget the ids written so far.
    Reset(u64),
    /// A notification of hookwire's own for the session (the token was refused).
    Notice(Vec<u8>),
}

/// The highest id flushed to stdout, in an event-log epoch (see [`Item::Reset`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Written {
    epoch: u64,
    id: u64,
}

/// The gateway link as the channel's [`Feed`].
pub struct LinkFeed {
    rx: mpsc::Receiver<Item>,
    wake: Receiver<()>,
    epoch: u64,
    /// The highest id handed to the writer (flushed by the time `next` is called again).
    highest: u64,
    written: watch::Sender<Written>,
    mark: Option<Mark>,
}

impl Feed for LinkFeed {
    fn wake(&self) -> Receiver<()> {
        self.wake.clone()
    }

    fn next(&mut self, max: usize, out: &mut Vec<u8>) -> Option<u64> {
        let mut n = 0;
        while n < max {
            match self.rx.try_recv() {
                // A repeat across a reconnect: both copies can be queued.
                Ok(Item::Event(id, _)) if id <= self.highest => {}
                Ok(Item::Event(id, line)) => {
                    out.extend_from_slice(&line);
                    self.highest = id;
                    n += 1;
                }
                Ok(Item::Reset(epoch)) => {
                    self.epoch = epoch;
                    self.highest = 0;
                }
                Ok(Item::Notice(line)) => {
                    out.extend_from_slice(&line);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        (n > 0).then_some(self.highest)
    }

    fn written(&mut self, position: u64) {
        if let Some(mark) = &self.mark {
            mark.write(position);
        }
        self.written.send_replace(Written {
            epoch: self.epoch,
            id: position,
        });
    }
}

/// The running link task.
pub struct Link {
    hello: watch::Receiver<Option<Arc<Hello>>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    reader: LinkReader,
    audit: LinkAudit,
}

impl Link {
    /// The read tools' reader: `get_event` and `list_events` answered by the gateway.
    pub fn reader(&self) -> LinkReader {
        self.reader.clone()
    }

    /// The tools' audit sink: entries sent to the gateway to be stored with their event.
    pub fn audit(&self) -> LinkAudit {
        self.audit.clone()
    }

    /// The first `hello`, waiting at most `limit` for it.
    pub async fn hello(&mut self, limit: Duration) -> Option<Arc<Hello>> {
        let wait = self.hello.wait_for(Option::is_some);
        match tokio::time::timeout(limit, wait).await {
            Ok(Ok(h)) => h.clone(),
            _ => None,
        }
    }

    /// Closes the connection (close frame 1000) and stops, waiting at most `limit`.
    pub async fn stop(self, limit: Duration) {
        self.stop.send_replace(true);
        let mut task = self.task;
        if tokio::time::timeout(limit, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// Starts the link task (on the current tokio runtime) and returns it with the feed for
/// [`crate::channel::start`].
pub fn start(opts: LinkOptions) -> (Link, LinkFeed) {
    // What an earlier process of this session wrote: acknowledged first thing, never shown
    // again (the gateway may not have recorded its acknowledgement before that process died).
    let (mark, written) = match opts.mark.as_deref().map(Mark::open) {
        Some(Ok((mark, at))) => {
            if at > 0 {
                tracing::info!(
                    written = at,
                    "resuming after what an earlier process of this session wrote"
                );
            }
            (Some(mark), at)
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, "cannot keep the written position between processes");
            (None, 0)
        }
        None => (None, 0),
    };
    let (tx, rx) = mpsc::channel(QUEUE);
    let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
    let (written_tx, written_rx) = watch::channel(Written::default());
    let (hello_tx, hello_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (reads_tx, reads_rx) = mpsc::channel(MAX_READS);
    let audits = Arc::new(AuditQueue::default());
    let refused = Arc::new(Mutex::new(None));
    if opts.url.starts_with("ws://") && !is_loopback(&opts.url) {
        tracing::warn!(gateway = %opts.url, "the session token crosses the network unencrypted: use https://");
    }
    let task = LinkTask {
        opts,
        tx,
        wake: wake_tx,
        written: written_rx,
        hello: hello_tx,
        stop: stop_rx,
        reads: reads_rx,
        audits: audits.clone(),
        epoch: 0,
        flushed: written,
        refused: refused.clone(),
    };
    let feed = LinkFeed {
        rx,
        wake: wake_rx,
        epoch: 0,
        highest: written,
        written: written_tx,
        mark,
    };
    let link = Link {
        hello: hello_rx,
        stop: stop_tx,
        task: tokio::spawn(task.run()),
        reader: LinkReader {
            tx: reads_tx,
            slots: Arc::new(Semaphore::new(MAX_READS)),
            refused,
        },
        audit: LinkAudit { queue: audits },
    };
    (link, feed)
}

fn is_loopback(url: &str) -> bool {
    url.parse::<Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_owned))
        .is_some_and(|h| {
            let h = h.trim_start_matches('[').trim_end_matches(']');
            h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        })
}

/// Why a connection attempt failed.
enum ConnectError {
    /// 401: the token is unknown, revoked or expired (the gateway's one-word reason).
    Refused(String),
    Other(String),
}

/// How a connection ended.
enum Ended {
    /// The channel is shutting down.
    Stopped,
    /// The gateway closed it.
    Closed(u16, String),
    /// The connection broke or went silent.
    Lost(String),
    /// The gateway spoke something else than hookwire.v1.
    Protocol(String),
}

struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// Full jitter: uniform in [0, min(max, base·2^attempt)].
    fn next(&mut self) -> Duration {
        let cap = BACKOFF_BASE
            .saturating_mul(1 << self.attempt.min(16))
            .min(BACKOFF_MAX);
        self.attempt += 1;
        jitter(Duration::ZERO, cap)
    }

    /// For failures retrying soon will not fix (a refused token): about the longest delay.
    fn longest(&mut self) -> Duration {
        jitter(BACKOFF_MAX / 2, BACKOFF_MAX)
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }
}

fn jitter(low: Duration, high: Duration) -> Duration {
    let span = high.saturating_sub(low).as_millis() as u64;
    let r = getrandom::u64().unwrap_or(span / 2);
    low + Duration::from_millis(r % (span + 1))
}

struct LinkTask {
    opts: LinkOptions,
    tx: mpsc::Sender<Item>,
    wake: crossbeam_channel::Sender<()>,
    written: watch::Receiver<Written>,
    hello: watch::Sender<Option<Arc<Hello>>>,
    stop: watch::Receiver<bool>,
    /// Read requests of the tools.
    reads: mpsc::Receiver<Read>,
    /// Audit entries of the tools, for the gateway.
    audits: Arc<AuditQueue>,
    /// The current event-log epoch and the highest id flushed in it.
    epoch: u64,
    flushed: u64,
    /// Why the gateway refused this session's token, once it has: the link stops for good.
    refused: Arc<Mutex<Option<String>>>,
}

impl LinkTask {
    async fn run(mut self) {
        let mut backoff = Backoff { attempt: 0 };
        let url = self.opts.url.clone();
        loop {
            let attempt = tokio::time::timeout(CONNECT_TIMEOUT, connect(&self.opts));
            let Some(attempt) = while_down(&mut self.stop, &mut self.reads, attempt).await else {
                return;
            };
            let delay = match attempt {
                Err(_) => {
                    let d = backoff.next();
                    tracing::warn!(gateway = %url, retry_in_ms = d.as_millis() as u64, "cannot reach the gateway: no answer in time");
                    d
                }
                Ok(Err(ConnectError::Refused(reason))) => {
                    tracing::error!(gateway = %url, %reason, "the gateway refused this session's token ({reason})");
                    return self.refuse(&reason).await;
                }
                Ok(Err(ConnectError::Other(e))) => {
                    let d = backoff.next();
                    tracing::warn!(gateway = %url, error = %e, retry_in_ms = d.as_millis() as u64, "cannot connect to the gateway");
                    d
                }
                Ok(Ok(ws)) => {
                    let began = Instant::now();
                    let ended = self.session(ws).await;
                    if began.elapsed() >= STABLE {
                        backoff.reset();
                    }
                    match ended {
                        Ended::Stopped => return,
                        Ended::Closed(close::TOKEN_INVALID, reason) => {
                            tracing::error!(gateway = %url, %reason, "the gateway ended the session: this session's token is {reason}");
                            return self.refuse(&reason).await;
                        }
                        Ended::Closed(close::SUPERSEDED, _) => {
                            let d = backoff.longest();
                            tracing::warn!(
                                gateway = %url, retry_in_ms = d.as_millis() as u64,
                                "another channel connected with the same token and took over; use one token per session"
                            );
                            d
                        }
                        Ended::Closed(code, reason) => {
                            let d = backoff.next();
                            tracing::warn!(gateway = %url, code, %reason, retry_in_ms = d.as_millis() as u64, "the gateway closed the session");
                            d
                        }
                        Ended::Lost(e) => {
                            let d = backoff.next();
                            tracing::warn!(gateway = %url, error = %e, retry_in_ms = d.as_millis() as u64, "lost the gateway connection");
                            d
                        }
                        Ended::Protocol(e) => {
                            let d = backoff.longest();
                            tracing::error!(gateway = %url, error = %e, retry_in_ms = d.as_millis() as u64, "the gateway does not speak {PROTOCOL}");
                            d
                        }
                    }
                }
            };
            if while_down(&mut self.stop, &mut self.reads, tokio::time::sleep(delay))
                .await
                .is_none()
            {
                return;
            }
        }
    }

    /// The gateway refused this session's token (unknown, revoked or expired): retrying
    /// cannot help, so the link stops, says so once in the log and once to the session (a
    /// notification of its own), and reads fail with the reason from now on.
    async fn refuse(self, reason: &str) {
        let reason = match reason {
            "unknown" | "revoked" | "expired" => reason,
            _ => "not accepted",
        };
        tracing::error!(
            gateway = %self.opts.url,
            "no more events will arrive in this session and the link does not retry: it needs a valid token"
        );
        *self.refused.lock().expect("refusal poisoned") = Some(reason.to_owned());
        let content = format!(
            "hookwire cannot receive events for this session: the team gateway at {} refused its token ({reason}). \
             No events will arrive in this session until it has a valid token. To fix it, ask the gateway's admin for a \
             new token (`hookwire token create`), put it in HOOKWIRE_TOKEN (or the --token-file) for Claude Code, and \
             restart the session. This message comes from hookwire itself, not from a vendor.",
            self.opts.url.replace("wss://", "https://").replace("ws://", "http://")
        );
        let meta = [
            ("source_name".to_owned(), "hookwire".to_owned()),
            ("event".to_owned(), "hookwire.token_refused".to_owned()),
            ("reason".to_owned(), reason.to_owned()),
        ];
        let line = crate::event::notification_line(&content, &meta);
        if self.tx.send(Item::Notice(line)).await.is_ok() {
            let _ = self.wake.try_send(());
        }
    }

    /// One connection, from `hello` until it ends.
    async fn session(&mut self, mut ws: Ws) -> Ended {
        let first = tokio::select! {
            _ = stopped(&mut self.stop) => return stop(&mut ws).await,
            r = tokio::time::timeout(HELLO_TIMEOUT, next_text(&mut ws)) => r,
        };
        let hello = match first {
            Err(_) => return Ended::Lost("no hello from the gateway in time".into()),
            Ok(Err(ended)) => return ended,
            Ok(Ok(text)) => match ServerFrame::decode(&text) {
                Ok(ServerFrame::Hello(h)) => h,
                _ => return Ended::Protocol("the first frame is not a hello".into()),
            },
        };
        if hello.protocol != PROTOCOL_VERSION {
            return Ended::Protocol(format!(
                "protocol {} (this channel speaks {PROTOCOL_VERSION})",
                hello.protocol
            ));
        }
        // Pick up what was flushed while disconnected.
        let w = *self.written.borrow_and_update();
        if w.epoch == self.epoch {
            self.flushed = self.flushed.max(w.id);
        }
        let mut pending = None;
        if hello.head < self.flushed {
            tracing::warn!(
                head = hello.head, written = self.flushed,
                "the gateway has a new event log (its newest id is below what this channel wrote); forgetting written ids"
            );
            self.epoch += 1;
            self.flushed = 0;
            pending = Some(Item::Reset(self.epoch));
        }
        tracing::info!(gateway = %self.opts.url, subscriber = %hello.subscriber, sources = ?hello.sources, "connected to the gateway");
        let audits = hello.audit;
        self.hello.send_replace(Some(Arc::new(hello)));
        let mut acked = 0;
        if self.flushed > 0 {
            if let Err(e) = send(&mut ws, &ClientFrame::Ack { id: self.flushed }).await {
                return e;
            }
            acked = self.flushed;
        }
        // What was recorded while disconnected.
        if let Err(e) = self.audits.flush(&mut ws, audits).await {
            return e;
        }
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        let mut heard = Instant::now();
        // Reads sent on this connection and not answered yet; dropped (failing them) with it.
        let mut unanswered: HashMap<u64, Read> = HashMap::new();
        let mut next_req = 0u64;
        loop {
            enum Step<'a> {
                Stop,
                Written(Written),
                Audit,
                Read(Read),
                Room(Option<mpsc::Permit<'a, Item>>),
                Frame(Option<Result<Message, tungstenite::Error>>),
                Ping,
            }
            let step = tokio::select! {
                biased;
                _ = stopped(&mut self.stop) => Step::Stop,
                r = self.written.changed() => match r {
                    Ok(()) => Step::Written(*self.written.borrow_and_update()),
                    Err(_) => Step::Stop,
                },
                _ = self.audits.ready.notified() => Step::Audit,
                Some(r) = self.reads.recv() => Step::Read(r),
                p = self.tx.reserve(), if pending.is_some() => Step::Room(p.ok()),
                m = ws.next(), if pending.is_none() => Step::Frame(m),
                _ = ping.tick() => Step::Ping,
            };
            match step {
                Step::Stop | Step::Room(None) => {
                    // Calls recorded just before the channel stops still reach the gateway
                    // (bounded: `Link::stop` gives up after its limit).
                    let _ = self.audits.flush(&mut ws, audits).await;
                    return stop(&mut ws).await;
                }
                Step::Audit => {
                    if let Err(e) = self.audits.flush(&mut ws, audits).await {
                        return e;
                    }
                }
                Step::Written(w) => {
                    if w.epoch == self.epoch {
                        self.flushed = self.flushed.max(w.id);
                    }
                    if self.flushed > acked {
                        if let Err(e) = send(&mut ws, &ClientFrame::Ack { id: self.flushed }).await {
                            return e;
                        }
                        acked = self.flushed;
                    }
                }
                Step::Read(r) => {
                    if r.reply.is_closed() {
                        // The caller gave up before it could be sent.
                        continue;
                    }
                    // The calls recorded before this read go first: it sees them.
                    if let Err(e) = self.audits.flush(&mut ws, audits).await {
                        return e;
                    }
                    next_req += 1;
                    if let Err(e) = send(&mut ws, &r.query.frame(next_req)).await {
                        return e;
                    }
                    unanswered.insert(next_req, r);
                }
                Step::Room(Some(permit)) => {
                    permit.send(pending.take().expect("reserved for a pending item"));
                    let _ = self.wake.try_send(());
                    // Not reading while the queue was full was our doing, not the gateway's.
                    heard = Instant::now();
                }
                Step::Frame(None) => return Ended::Lost("connection closed".into()),
                Step::Frame(Some(Err(e))) => return Ended::Lost(e.to_string()),
                Step::Frame(Some(Ok(msg))) => {
                    heard = Instant::now();
                    match msg {
                        Message::Text(text) => match ServerFrame::decode(text.as_str()) {
                            Ok(ServerFrame::Event { id, .. }) if id <= self.flushed => {
                                // Written before a reconnect: acknowledge again so the
                                // gateway's window moves past it.
                                if self.flushed > acked {
                                    if let Err(e) =
                                        send(&mut ws, &ClientFrame::Ack { id: self.flushed }).await
                                    {
                                        return e;
                                    }
                                    acked = self.flushed;
                                }
                            }
                            Ok(ServerFrame::Event { id, notification, .. }) => {
                                pending = Some(Item::Event(id, notification_line(notification)))
                            }
                            Ok(ServerFrame::Result { req, answer }) => match unanswered.remove(&req) {
                                Some(r) => {
                                    let _ = r.reply.send(answer.map(Cow::into_owned));
                                }
                                None => tracing::debug!(req, "a result for no read waiting; ignored"),
                            },
                            // A later hello, a pong, a type this version does not know.
                            Ok(ServerFrame::Hello(_) | ServerFrame::Pong | ServerFrame::Unknown) => {}
                            // An event cannot be skipped (acks would pass it), and a frame
                            // that is not the protocol's says the peer is something else; any
                            // other frame that cannot be read answers nothing (a read waiting
                            // for it times out).
                            Err(e @ DecodeError::Invalid { frame: Some(f), .. }) if f != "event" => {
                                tracing::debug!(error = %e, "ignoring a gateway frame it cannot read")
                            }
                            Err(e) => return Ended::Protocol(e.to_string()),
                        },
                        Message::Close(frame) => {
                            return match frame {
                                Some(f) => Ended::Closed(u16::from(f.code), f.reason.to_string()),
                                None => Ended::Closed(1005, String::new()),
                            }
                        }
                        _ => {}
                    }
                }
                Step::Ping => {
                    if pending.is_none() && heard.elapsed() >= SILENCE {
                        return Ended::Lost(format!("nothing from the gateway for {} s", SILENCE.as_secs()));
                    }
                    if let Err(e) = send(&mut ws, &ClientFrame::Ping).await {
                        return e;
                    }
                }
            }
        }
    }
}

/// Resolves once the link is told to stop (or its owner is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Runs `work` (a connection attempt, a backoff delay) while there is no connection: reads
/// fail at once. `None` if the link is told to stop first.
async fn while_down<F: Future>(
    stop: &mut watch::Receiver<bool>,
    reads: &mut mpsc::Receiver<Read>,
    work: F,
) -> Option<F::Output> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            _ = stopped(stop) => return None,
            r = &mut work => return Some(r),
            Some(r) = reads.recv() => {
                let _ = r.reply.send(Err(ReadError::Failed(NOT_CONNECTED.into())));
            }
        }
    }
}

/// Audit entries waiting for the gateway (a connection that accepts them).
#[derive(Default)]
struct AuditQueue {
    entries: Mutex<VecDeque<AuditEntry>>,
    /// Signalled when an entry is queued.
    ready: Notify,
}

impl AuditQueue {
    /// Queues one entry, dropping the oldest beyond [`AUDIT_QUEUE`].
    fn push(&self, entry: AuditEntry) {
        let mut q = self.entries.lock().expect("audit queue poisoned");
        q.push_back(entry);
        if q.len() > AUDIT_QUEUE {
            if let Some(old) = q.pop_front() {
                tracing::warn!(
                    tool = %old.tool, event = old.event_ref.as_deref().unwrap_or("-"),
                    "the gateway has been unreachable for {AUDIT_QUEUE} tool calls: dropping the oldest call's audit entry (it stays in this log)"
                );
            }
        }
        drop(q);
        self.ready.notify_one();
    }

    fn pop(&self) -> Option<AuditEntry> {
        self.entries.lock().expect("audit queue poisoned").pop_front()
    }

    /// Sends every queued entry on `ws` when the gateway stores them (`accepted`, its
    /// hello's `audit`), else drops them. An entry whose send failed is kept for the next
    /// connection.
    async fn flush(&self, ws: &mut Ws, accepted: bool) -> Result<(), Ended> {
        while let Some(entry) = self.pop() {
            if !accepted {
                tracing::debug!(tool = %entry.tool, "this gateway does not store audit entries; kept in this log only");
                continue;
            }
            if let Err(e) = send(ws, &audit_frame(&entry)).await {
                self.entries
                    .lock()
                    .expect("audit queue poisoned")
                    .push_front(entry);
                return Err(e);
            }
        }
        Ok(())
    }
}

/// The `audit` frame of an entry (the gateway decides who and which event).
fn audit_frame(e: &AuditEntry) -> ClientFrame {
    ClientFrame::Audit {
        tool: e.tool.clone(),
        event_ref: e.event_ref.clone(),
        arguments: serde_json::from_str(&e.arguments).unwrap_or_else(|_| Value::String(e.arguments.clone())),
        outcome: e.outcome.clone(),
        detail: e.detail.clone(),
        at_ms: Some(e.at_ms),
    }
}

/// The tools' [`AuditSink`] in gateway mode: queues each entry for the link task, which sends
/// it to the gateway (see the module doc). Never blocks.
#[derive(Clone)]
pub struct LinkAudit {
    queue: Arc<AuditQueue>,
}

impl std::fmt::Debug for LinkAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkAudit").finish_non_exhaustive()
    }
}

impl AuditSink for LinkAudit {
    fn send(&self, entry: &AuditEntry) {
        self.queue.push(entry.clone());
    }
}

/// What a read asks the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Query {
    GetEvent(String),
    ListEvents(Option<String>, Option<usize>),
}

impl Query {
    fn frame(&self, req: u64) -> ClientFrame {
        match self {
            Query::GetEvent(id) => ClientFrame::GetEvent { req, id: id.clone() },
            Query::ListEvents(source, limit) => ClientFrame::ListEvents {
                req,
                source: source.clone(),
                limit: limit.map(|l| l as u64),
            },
        }
    }
}

/// A read on its way to the gateway: the answer goes to `reply`. It holds one of the
/// [`MAX_READS`] slots until answered or its connection ends, even if its caller stopped
/// waiting, so the gateway never has more of this channel's reads than that.
struct Read {
    query: Query,
    reply: oneshot::Sender<Result<Value, ReadError>>,
    _slot: OwnedSemaphorePermit,
}

/// The read tools' [`EventReader`] in gateway mode: each read is a request on the live
/// connection; the gateway checks the token's `read-events` permission and sources and
/// answers with the same JSON as local mode.
#[derive(Clone)]
pub struct LinkReader {
    tx: mpsc::Sender<Read>,
    slots: Arc<Semaphore>,
    refused: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for LinkReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkReader").finish_non_exhaustive()
    }
}

impl LinkReader {
    async fn read(self, query: Query) -> Result<Value, ReadError> {
        if let Some(reason) = self.refused.lock().expect("refusal poisoned").clone() {
            return Err(ReadError::Failed(format!(
                "the gateway refused this session's token ({reason}); nothing can be read until the session has a valid token"
            )));
        }
        let work = async {
            let gone = || ReadError::Failed("the gateway link has stopped".into());
            let slot = self.slots.clone().acquire_owned().await.map_err(|_| gone())?;
            let (reply, answer) = oneshot::channel();
            self.tx
                .send(Read {
                    query,
                    reply,
                    _slot: slot,
                })
                .await
                .map_err(|_| gone())?;
            answer.await.map_err(|_| {
                ReadError::Failed("the gateway connection ended before it answered; retry".into())
            })?
        };
        tokio::time::timeout(READ_TIMEOUT, work)
            .await
            .unwrap_or_else(|_| {
                Err(ReadError::Failed(format!(
                    "the gateway did not answer in {} s; retry",
                    READ_TIMEOUT.as_secs()
                )))
            })
    }
}

impl EventReader for LinkReader {
    fn get_event(&self, id: String) -> BoxFuture<'static, Result<Value, ReadError>> {
        Box::pin(self.clone().read(Query::GetEvent(id)))
    }

    fn list_events(
        &self,
        source: Option<String>,
        limit: Option<usize>,
    ) -> BoxFuture<'static, Result<Value, ReadError>> {
        Box::pin(self.clone().read(Query::ListEvents(source, limit)))
    }
}

/// Closes the connection because the channel is stopping.
async fn stop(ws: &mut Ws) -> Ended {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "channel closing".into(),
    };
    let _ = tokio::time::timeout(Duration::from_millis(300), ws.close(Some(frame))).await;
    Ended::Stopped
}

async fn send(ws: &mut Ws, frame: &ClientFrame) -> Result<(), Ended> {
    match tokio::time::timeout(SEND_TIMEOUT, ws.send(Message::text(frame.encode()))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Ended::Lost(e.to_string())),
        Err(_) => Err(Ended::Lost("the gateway stopped reading".into())),
    }
}

/// The next text frame (pings and pongs skipped).
async fn next_text(ws: &mut Ws) -> Result<String, Ended> {
    loop {
        match ws.next().await {
            None => return Err(Ended::Lost("connection closed".into())),
            Some(Err(e)) => return Err(Ended::Lost(e.to_string())),
            Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
            Some(Ok(Message::Close(f))) => {
                return Err(match f {
                    Some(f) => Ended::Closed(u16::from(f.code), f.reason.to_string()),
                    None => Ended::Closed(1005, String::new()),
                })
            }
            Some(Ok(_)) => {}
        }
    }
}

/// The upgrade request: bearer token (marked sensitive) and subprotocol.
async fn connect(opts: &LinkOptions) -> Result<Ws, ConnectError> {
    let mut req = opts
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| ConnectError::Other(e.to_string()))?;
    let token = std::str::from_utf8(opts.token.expose()).unwrap_or_default();
    let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| ConnectError::Other("the token is not a valid header value".into()))?;
    auth.set_sensitive(true);
    req.headers_mut().insert(header::AUTHORIZATION, auth);
    req.headers_mut()
        .insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(PROTOCOL));
    let connector = opts.tls.clone().map(Connector::Rustls);
    let limits = WebSocketConfig::default()
        .max_message_size(Some(MAX_SERVER_FRAME))
        .max_frame_size(Some(MAX_SERVER_FRAME));
    match tokio_tungstenite::connect_async_tls_with_config(req, Some(limits), true, connector).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_deref()
                .map(|b| {
                    String::from_utf8_lossy(b)
                        .trim()
                        .chars()
                        .take(80)
                        .filter(|c| !c.is_control())
                        .collect::<String>()
                })
                .unwrap_or_default();
            if resp.status() == axum::http::StatusCode::UNAUTHORIZED {
                Err(ConnectError::Refused(if body.is_empty() {
                    "unauthorized".into()
                } else {
                    body
                }))
            } else if resp.status() == axum::http::StatusCode::NOT_FOUND {
                Err(ConnectError::Other(format!(
                    "HTTP 404 {body}: no hookwire gateway at this URL (it serves {SESSION_PATH})"
                )))
            } else {
                Err(ConnectError::Other(format!("HTTP {} {body}", resp.status())))
            }
        }
        Err(tungstenite::Error::Io(e)) => Err(ConnectError::Other(
            match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                Some(tls) => format!(
                    "TLS failed: {tls} (a gateway whose certificate a private CA signed needs --ca-file PEM)"
                ),
                None => format!("cannot reach the gateway: {e}"),
            },
        )),
        Err(tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::SecWebSocketSubProtocolError(_),
        )) => Err(ConnectError::Other(format!(
            "the server did not agree to the {PROTOCOL} WebSocket subprotocol: not a hookwire gateway, or a proxy in front of it drops Sec-WebSocket-Protocol"
        ))),
        Err(e) => Err(ConnectError::Other(e.to_string())),
    }
}

/// Connects once as the channel does (same request, token and TLS), reads the gateway's
/// `hello` and closes the connection normally: for `hookwire doctor --gateway`. Nothing is
/// acknowledged, so the session's events stay for the channel. While it lasts, this
/// connection takes over a live session of the same token (which reconnects by itself).
/// The error says why no `hello` came: unreachable, TLS, a refused token (401 `unknown`,
/// `revoked` or `expired`), not a hookwire gateway.
pub async fn probe(opts: &LinkOptions, limit: Duration) -> Result<Hello, String> {
    let mut ws = match tokio::time::timeout(limit, connect(opts)).await {
        Err(_) => return Err(format!("no answer within {} s", limit.as_secs())),
        Ok(Err(ConnectError::Refused(reason))) => {
            return Err(format!("401: the gateway refused the token ({reason})"))
        }
        Ok(Err(ConnectError::Other(e))) => return Err(e),
        Ok(Ok(ws)) => ws,
    };
    let hello = match tokio::time::timeout(limit, next_text(&mut ws)).await {
        Err(_) => Err("connected, but no hello from the gateway in time".to_owned()),
        Ok(Err(Ended::Closed(code, reason))) => Err(format!(
            "connected, then the gateway closed the session ({code} {reason})"
        )),
        Ok(Err(Ended::Lost(e) | Ended::Protocol(e))) => Err(format!("connected, then {e}")),
        Ok(Err(Ended::Stopped)) => Err("stopped".to_owned()),
        Ok(Ok(text)) => match ServerFrame::decode(&text) {
            Ok(ServerFrame::Hello(h)) => Ok(h),
            _ => Err(format!("the first frame is not a {PROTOCOL} hello")),
        },
    };
    // A clean close: our close frame, then the gateway's answer (events it sent meanwhile
    // are dropped unacknowledged, so they stay queued for the channel).
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "hookwire doctor".into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        if ws.close(Some(frame)).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
    hello
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_urls_map_to_the_session_endpoint() {
        assert_eq!(
            session_url("https://hooks.example.com").unwrap(),
            "wss://hooks.example.com/v1/session"
        );
        assert_eq!(
            session_url("http://127.0.0.1:8790/").unwrap(),
            "ws://127.0.0.1:8790/v1/session"
        );
        assert_eq!(
            session_url("wss://h/hookwire").unwrap(),
            "wss://h/hookwire/v1/session"
        );
        assert_eq!(session_url("ws://h:1/v1/session").unwrap(), "ws://h:1/v1/session");
        assert!(session_url("hooks.example.com").is_err());
        assert!(session_url("ftp://h").is_err());
        assert!(session_url("https://user:pw@h").is_err());
        assert!(session_url("https://h/?t=1").is_err());
        assert!(is_loopback("ws://127.0.0.1:1/v1/session"));
        assert!(is_loopback("ws://[::1]:1/v1/session"));
        assert!(!is_loopback("ws://hooks.example.com/v1/session"));
    }

    #[test]
    fn reads_become_request_frames() {
        assert_eq!(
            Query::GetEvent("evt_2".into()).frame(1).encode(),
            r#"{"type":"get_event","req":1,"id":"evt_2"}"#
        );
        assert_eq!(
            Query::ListEvents(None, Some(5)).frame(2).encode(),
            r#"{"type":"list_events","req":2,"limit":5}"#
        );
    }

    #[test]
    fn reads_fail_at_once_while_the_link_is_down() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (tx, mut reads) = mpsc::channel(MAX_READS);
            let (_stop_tx, mut stop) = watch::channel(false);
            let reader = LinkReader {
                tx,
                slots: Arc::new(Semaphore::new(MAX_READS)),
                refused: Arc::new(Mutex::new(None)),
            };
            let (release, waiting) = oneshot::channel::<()>();
            let down =
                tokio::spawn(async move { while_down(&mut stop, &mut reads, waiting).await.is_some() });
            let r = reader.get_event("1".into()).await;
            assert_eq!(r, Err(ReadError::Failed(NOT_CONNECTED.into())));
            let r = reader.list_events(None, None).await;
            assert_eq!(r, Err(ReadError::Failed(NOT_CONNECTED.into())));
            assert_eq!(
                reader.slots.available_permits(),
                MAX_READS,
                "slots are given back"
            );
            release.send(()).unwrap();
            assert!(down.await.unwrap(), "the work finished");
        });
    }

    #[test]
    fn the_audit_queue_keeps_the_newest_and_frames_carry_no_subscriber() {
        let q = AuditQueue::default();
        let e = |i: usize| {
            crate::tools::audit_entry(
                "alice",
                "slack_post_message",
                Some(&format!("d-{i}")),
                &serde_json::json!({"channel": "#c"}),
                "ok",
                "{}",
                i as i64,
            )
        };
        for i in 0..AUDIT_QUEUE + 10 {
            q.push(e(i));
        }
        let kept = q.entries.lock().unwrap().clone();
        assert_eq!(kept.len(), AUDIT_QUEUE);
        assert_eq!(kept.front().unwrap().at_ms, 10, "the oldest were dropped");
        assert_eq!(kept.back().unwrap().at_ms, (AUDIT_QUEUE + 9) as i64);
        let text = audit_frame(&e(3)).encode();
        assert_eq!(
            text,
            r##"{"type":"audit","tool":"slack_post_message","event_ref":"d-3","arguments":{"channel":"#c"},"outcome":"ok","detail":"{}","at_ms":3}"##
        );
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let mut b = Backoff { attempt: 0 };
        for i in 0..20 {
            let d = b.next();
            let cap = BACKOFF_BASE.saturating_mul(1 << i.min(16)).min(BACKOFF_MAX);
            assert!(d <= cap, "{d:?} > {cap:?} at {i}");
        }
        let d = b.longest();
        assert!(d >= BACKOFF_MAX / 2 && d <= BACKOFF_MAX);
        b.reset();
        assert!(b.next() <= BACKOFF_BASE);
    }

    #[test]
    fn feed_skips_repeats_and_forgets_on_reset() {
        let (tx, rx) = mpsc::channel(16);
        let (_wake_tx, wake) = crossbeam_channel::bounded(1);
        let (written, seen) = watch::channel(Written::default());
        let mut feed = LinkFeed {
            rx,
            wake,
            epoch: 0,
            highest: 0,
            written,
            mark: None,
        };
        for (id, l) in [(3, "a"), (5, "b"), (3, "a"), (5, "b"), (7, "c")] {
            tx.try_send(Item::Event(id, format!("{l}\n").into_bytes()))
                .unwrap();
        }
        let mut out = Vec::new();
        assert_eq!(feed.next(2, &mut out), Some(5));
        assert_eq!(out, b"a\nb\n");
        feed.written(5);
        assert_eq!(*seen.borrow(), Written { epoch: 0, id: 5 });
        out.clear();
        assert_eq!(
            feed.next(10, &mut out),
            Some(7),
            "the repeats of 3 and 5 are skipped"
        );
        assert_eq!(out, b"c\n");
        assert_eq!(feed.next(10, &mut out), None);
        tx.try_send(Item::Reset(1)).unwrap();
        tx.try_send(Item::Event(2, b"d\n".to_vec())).unwrap();
        out.clear();
        assert_eq!(feed.next(10, &mut out), Some(2), "after a reset low ids are new");
        feed.written(2);
        assert_eq!(*seen.borrow(), Written { epoch: 1, id: 2 });
    }

    #[test]
    fn tokens_come_from_a_file_trimmed_and_never_appear_in_errors() {
        let dir = std::env::temp_dir().join(format!("hookwire-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("token");
        std::fs::write(&f, "hwt_abc\n").unwrap();
        assert_eq!(read_token(Some(&f)).unwrap().expose(), b"hwt_abc");
        std::fs::write(&f, "hwt_a bc").unwrap();
        let e = read_token(Some(&f)).unwrap_err();
        assert!(!e.contains("hwt_a"), "{e}");
        std::fs::write(&f, "  \n").unwrap();
        assert!(read_token(Some(&f)).unwrap_err().contains("empty"));
        std::fs::write(&f, "${HOOKWIRE_TOKEN}\n").unwrap();
        let e = read_token(Some(&f)).unwrap_err();
        assert!(
            e.contains("unexpanded") && !e.contains("${HOOKWIRE_TOKEN}"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
