//! The link task: one connection at a time to the gateway, reconnecting with backoff. On each
//! it reads `hello`, acknowledges what was written meanwhile, then loops over the writer's
//! acks, the tools' reads and audit entries, the gateway's frames (events for the writer,
//! results for the reads) and the keepalive, until the connection ends, which decides how
//! long to wait before the next (or, for a refused token, to stop for good).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

use super::audit::AuditQueue;
use super::connect::{connect, ConnectError};
use super::feed::{Item, Written};
use super::reads::{while_down, Read};
use super::{LinkOptions, Ws};
use crate::link_protocol::{
    close, notification_line, ClientFrame, DecodeError, Hello, ServerFrame, PING_EVERY, PROTOCOL,
    PROTOCOL_VERSION,
};

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

/// How a connection ended.
pub(super) enum Ended {
    /// The channel is shutting down.
    Stopped,
    /// The gateway closed it.
    Closed(u16, String),
    /// The connection broke or went silent.
    Lost(String),
    /// The gateway spoke something else than hookwire.v1.
    Protocol(String),
}

/// Reconnect delays.
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

/// The link task's state, across connections.
pub(super) struct LinkTask {
    pub(super) opts: LinkOptions,
    /// Events (and notices) for the writer.
    pub(super) tx: mpsc::Sender<Item>,
    pub(super) wake: crossbeam_channel::Sender<()>,
    /// The highest id the writer flushed.
    pub(super) written: watch::Receiver<Written>,
    pub(super) hello: watch::Sender<Option<Arc<Hello>>>,
    pub(super) stop: watch::Receiver<bool>,
    /// Read requests of the tools.
    pub(super) reads: mpsc::Receiver<Read>,
    /// Audit entries of the tools, for the gateway.
    pub(super) audits: Arc<AuditQueue>,
    /// The current event-log epoch and the highest id flushed in it.
    pub(super) epoch: u64,
    pub(super) flushed: u64,
    /// Why the gateway refused this session's token, once it has: the link stops for good.
    pub(super) refused: Arc<Mutex<Option<String>>>,
}

impl LinkTask {
    pub(super) async fn run(mut self) {
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
                    // The stop is polled first: what the writer flushed just before it is still
                    // acknowledged, or a session that reconnects at once gets it again.
                    let w = *self.written.borrow_and_update();
                    if w.epoch == self.epoch {
                        self.flushed = self.flushed.max(w.id);
                    }
                    if self.flushed > acked {
                        let _ = send(&mut ws, &ClientFrame::Ack { id: self.flushed }).await;
                    }
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
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Closes the connection because the channel is stopping.
async fn stop(ws: &mut Ws) -> Ended {
    let frame = CloseFrame {
        code: CloseCode::from(close::NORMAL),
        reason: "channel closing".into(),
    };
    let _ = tokio::time::timeout(Duration::from_millis(300), ws.close(Some(frame))).await;
    Ended::Stopped
}

/// Sends one frame, bounded: a gateway that stopped reading is lost.
pub(super) async fn send(ws: &mut Ws, frame: &ClientFrame) -> Result<(), Ended> {
    match tokio::time::timeout(SEND_TIMEOUT, ws.send(Message::text(frame.encode()))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Ended::Lost(e.to_string())),
        Err(_) => Err(Ended::Lost("the gateway stopped reading".into())),
    }
}

/// The next text frame (pings and pongs skipped).
pub(super) async fn next_text(ws: &mut Ws) -> Result<String, Ended> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
