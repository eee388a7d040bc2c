//! One session's task: from the upgrade, it registers the session (superseding the token's
//! live one), sends `hello` and then the token's events within the window ([`super::flow`]),
//! while a reader beside it takes the client's frames (acks, pings, read requests and audit
//! frames, the last two for the session's worker in [`super::jobs`]) so a client stays heard
//! even while a send to it is blocked. Whatever ends it first, the gateway's reason or the
//! client's, decides the close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch, Notify};

use super::audit::{AuditWriter, Auditor};
use super::flow::Flow;
use super::jobs::{answer_requests, jobs, Jobs, AUDIT_DRAIN};
use super::reads::ReadRequest;
use super::{Gateway, Registration};
use crate::link_protocol::{ClientFrame, Close, Hello, ServerFrame, CLIENT_SILENCE, PROTOCOL_VERSION};
use crate::store::token::{Token, TokenStatus};
use crate::store::{Batch, Store, StoreError, Stored, Subscription};
use crate::tools::{StoreReader, Tool};
use crate::verify::timestamp::millis;

/// Events read from the store at once.
const READ_PAGE: usize = 512;
/// How long the close handshake may take.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// How long a session waits for the token's session it superseded to record its client's
/// last ack: that one's close handshake and its reader take [`CLOSE_WAIT`] each at most.
const PREVIOUS_WAIT: Duration = Duration::from_secs(3);

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum End {
    /// The gateway ends it, with this close frame.
    Close(Close),
    /// The client sent a close frame.
    ClientClosed,
    /// The connection broke.
    ClientGone(String),
}

impl End {
    /// The end of a session whose token is no longer valid (a deleted one counts as revoked).
    pub(super) fn token(status: TokenStatus) -> End {
        End::Close(match status {
            TokenStatus::Expired => Close::Expired,
            TokenStatus::Revoked | TokenStatus::Valid => Close::Revoked,
        })
    }

    /// The close frame the gateway sends, if it is the one ending the session.
    pub(super) fn close_frame(&self) -> Option<CloseFrame> {
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
pub(super) fn end_with(tx: &watch::Sender<Option<End>>, why: End) {
    tx.send_if_modified(|e| {
        if e.is_none() {
            *e = Some(why);
            true
        } else {
            false
        }
    });
}

/// One session, from the upgrade until it has ended: registers it (superseding the token's
/// live one), streams events and answers the client beside it, then closes and unregisters.
pub(super) async fn run(gw: Arc<Gateway>, token: Token, socket: WebSocket, peer: SocketAddr) {
    let Registration {
        id,
        end: end_tx,
        settled,
        previous,
    } = gw.register(&token.name);
    tracing::info!(subscriber = %token.name, %peer, sources = ?token.sources, "session connected");
    if let Some(mut previous) = previous {
        // Where this session starts is the token's cursor, which the superseded one may still
        // move with its client's last ack. Ended or dropped, it has settled either way.
        if tokio::time::timeout(PREVIOUS_WAIT, previous.wait_for(|s| *s))
            .await
            .is_err()
        {
            tracing::warn!(subscriber = %token.name, "the superseded session did not settle in time; its last event may be sent again");
        }
    }
    let (mut sink, stream) = socket.split();
    let (acks_tx, acks) = watch::channel(0u64);
    let last_ack = acks.clone();
    let pings = Arc::new(Notify::new());
    let (jobs_tx, jobs) = jobs();
    let (results_tx, mut results) = mpsc::channel(1);
    let auditor = Auditor {
        subscriber: token.name.clone(),
        permissions: token.permissions.clone(),
        budget: gw.audit_budget(&token.name),
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
        .then(|| StoreReader::new(gw.store.clone(), token.sources.clone()));
    let audit = AuditWriter {
        store: gw.store.clone(),
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
        store: gw.store.clone(),
        sub: Arc::new(Subscription {
            name: token.name.clone(),
            sources: token.sources.clone(),
        }),
        end: end_tx.subscribe(),
        flow: Flow::default(),
    };
    let why = match session
        .run(&gw, &token, &mut sink, acks, &pings, &mut results)
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
    // Every frame the client sent before it went has been read, so its last ack too (a
    // session superseded at once stops before reading them). The token's next session waits
    // for this before it reads where to start, or it would send that event again.
    let last = *last_ack.borrow();
    if last > 0 {
        session.acked(last);
    }
    let _ = settled.send(true);
    // The reader is gone, so the queue is closed: the worker stores what is left of it
    // (at most 256 entries; bounded all the same) and stops.
    if tokio::time::timeout(AUDIT_DRAIN, &mut answerer).await.is_err() {
        tracing::warn!(subscriber = %token.name, "audit entries left unstored at the end of the session");
        answerer.abort();
    }
    gw.unregister(&token.name, id);
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
                End(End),
                Ack(u64),
                Pong,
                Reply(String),
                More,
                ReaderGone,
            }
            let next = tokio::select! {
                biased;
                r = self.end.wait_for(Option::is_some) => Next::End(reason(r)),
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
                // The client's last acks are recorded once its reader has stopped (`run`).
                Next::End(why) => return Err(why),
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
}
