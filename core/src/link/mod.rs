//! The channel side of the gateway link: `hookwire channel --gateway URL` dials out to the
//! gateway's `/v1/session` (protocol in [`crate::link_protocol`]), hands each event's
//! notification line to the channel writer and acknowledges it once it is flushed to stdout.
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
//! - **Reads** ([`LinkReader`], the read tools' [`EventReader`](crate::tools::EventReader)
//!   in gateway mode) go to the link task, which numbers each, sends it on the live
//!   connection and hands the matching `result` back. At most 8 are unanswered on a
//!   connection; a read waits at most 20 s. While the link is down a read fails at once
//!   ("gateway not connected; retry"), and reads unanswered when a connection ends fail too:
//!   they are not resent (the caller retries).
//! - **Audit** ([`LinkAudit`], the tools' [`AuditSink`](crate::tools::AuditSink) in gateway
//!   mode): each tool call's audit entry is queued and sent as an `audit` frame, fire and
//!   forget, to a gateway whose `hello` says `audit` (to an older one they are dropped,
//!   logged at debug). The queue survives reconnects: while the link is down it keeps the
//!   newest 256 entries (dropping the oldest, with a warning) and sends them first thing on
//!   the next connection. Queued entries go out before any read sent after them, so a
//!   `get_event` sees the calls made before it.
//!
//! Here: this module starts the link ([`start`]) and holds what the channel gets back
//! ([`Link`], [`LinkFeed`]); `task` is the connection task (connect, `hello`, the frame loop,
//! reconnecting); `connect` dials the gateway (URL, token, TLS, the upgrade; `probe` for
//! `hookwire doctor`); `feed` is the writer's side; `mark` keeps the written position between
//! processes; `reads` and `audit` are the tools' reader and audit sink.

mod audit;
mod connect;
mod feed;
mod mark;
mod reads;
mod task;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use self::audit::AuditQueue;
pub use self::audit::LinkAudit;
use self::connect::is_loopback;
pub use self::connect::{probe, read_token, session_url, tls_with_ca};
pub use self::feed::LinkFeed;
use self::feed::Written;
pub use self::mark::mark_path;
use self::mark::Mark;
use self::reads::MAX_READS;
pub use self::reads::{LinkReader, NOT_CONNECTED};
use self::task::LinkTask;
use crate::link_protocol::Hello;
use crate::secret::Secret;

/// The environment variable holding the session token.
pub const TOKEN_ENV: &str = "HOOKWIRE_TOKEN";

/// Events queued for the writer at most; the link stops reading the socket beyond.
const QUEUE: usize = 1024;

/// A connection to the gateway.
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
