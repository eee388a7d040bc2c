//! The Claude Code side: a stdio MCP server that declares the `claude/channel` capability and
//! writes one `notifications/claude/channel` line per event. Everything the contract
//! (`docs/channel-contract.md`) demands lives here, in one module:
//!
//! - `server/discover` is answered `-32601`, so a dual-era client falls back to `initialize`;
//! - `initialize` is answered with a legacy revision (the client's if we know it, else
//!   2025-11-25); 2026-07-28 is never advertised;
//! - events wait (in the store, or the gateway) until `notifications/initialized` and a short
//!   settling time after it ([`SETTLE`]: a health check that ends at once gets nothing), then
//!   go in order, each reported back to its [`Feed`] once flushed so it can be acknowledged;
//! - stdout carries JSON-RPC lines and nothing else: one writer thread owns it;
//! - stdin EOF or a broken stdout resolves [`ChannelHandle::closed`]; the caller exits.
//!
//! The gateway's remote channel (`/mcp`, MCP over Streamable HTTP) answers its messages with
//! the same `answer`, so both transports negotiate, gate and offer tools identically.
//!
//! Hand-written rather than rmcp: the channel needs eight methods, and owning the loop gives
//! exact control of negotiation, gating and bytes on the wire (see ARCHITECTURE.md).

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};
use serde_json::{json, Value};
use tokio::sync::Notify;

/// Where the channel's events come from: the store in local mode
/// ([`crate::delivery::StoreFeed`]), the gateway link otherwise. Called from the writer thread
/// only.
pub trait Feed: Send + 'static {
    /// Signalled (coalesced) when [`Feed::next`] may have more.
    fn wake(&self) -> Receiver<()>;
    /// Appends up to `max` notification lines, in order, to `out`; returns the position they
    /// reach, or `None` when there is nothing new.
    fn next(&mut self, max: usize, out: &mut Vec<u8>) -> Option<u64>;
    /// Everything [`Feed::next`] returned up to `position` has been written and flushed.
    fn written(&mut self, position: u64);
}

/// A feed with nothing in it: what a channel starts with when it answers `initialize` before
/// its store is open, until [`ChannelHandle::feed`] hands it the real one.
pub struct NoEvents;

impl Feed for NoEvents {
    fn wake(&self) -> Receiver<()> {
        crossbeam_channel::never()
    }

    fn next(&mut self, _max: usize, _out: &mut Vec<u8>) -> Option<u64> {
        None
    }

    fn written(&mut self, _position: u64) {}
}

/// Revisions this server speaks: the legacy ones, with unsolicited notifications.
pub const SUPPORTED_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// Answered when the client asks for a revision we do not speak (including 2026-07-28).
pub const FALLBACK_VERSION: &str = "2025-11-25";
/// Longest accepted inbound line.
const MAX_LINE: u64 = 16 * 1024 * 1024;
/// Events written per flush at most, so responses are never stuck behind a long burst.
const BATCH: usize = 256;
/// How long after `notifications/initialized` the first event waits. Claude Code's health
/// checks (`claude mcp list`, `claude mcp get`, the start-up probe) complete the handshake and
/// close stdin some 20 ms later (channel-contract §10c): nothing written to such a session is
/// seen by anyone, and an event written there would count as delivered. A session that closes
/// within this time is written nothing; a real one gets its backlog this much later.
pub const SETTLE: Duration = Duration::from_millis(500);

/// The protocol revision to answer `initialize` with.
pub fn negotiate(asked: Option<&str>) -> &'static str {
    SUPPORTED_VERSIONS
        .iter()
        .find(|v| Some(**v) == asked)
        .copied()
        .unwrap_or(FALLBACK_VERSION)
}

/// What the server says about itself in `initialize`.
#[derive(Debug, Clone)]
pub struct ServerDescription {
    /// `serverInfo.name`.
    pub name: String,
    /// `serverInfo.version`.
    pub version: String,
    /// Appended to Claude's system prompt.
    pub instructions: String,
}

/// Reply and action tools (`tools/list`, `tools/call`), implemented by
/// [`crate::tools::Toolbox`]. With no definitions the `tools` capability is not declared and
/// `tools/list` is "method not found", exactly as a channel without tools.
pub trait Tools: Send + Sync + 'static {
    /// The `tools/list` entries of the granted tools.
    fn definitions(&self) -> Vec<Value>;
    /// Runs `name` with `arguments` and answers through `reply` (a `CallToolResult`). Called
    /// on the stdin reader thread: it must hand the work off and return at once.
    fn call(&self, name: &str, arguments: Value, reply: Reply);
}

/// Where a `tools/call` result goes: the stdio writer thread, or the HTTP request that asked
/// (the remote channel, [`crate::gateway`]). On stdio it holds one of the `TOOL_SLOTS` until
/// the writer has written it, so tool results waiting for stdout are bounded and sending one
/// never blocks.
pub struct Reply {
    id: Value,
    to: ReplyTo,
}

enum ReplyTo {
    Stdio { replies: Sender<ToolReply>, slot: Slot },
    Http(tokio::sync::oneshot::Sender<Value>),
}

impl Reply {
    /// A reply to request `id` that resolves the returned receiver with the whole JSON-RPC
    /// response (the Streamable HTTP transport answers the POST with it).
    pub(crate) fn http(id: Value) -> (Reply, tokio::sync::oneshot::Receiver<Value>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (
            Reply {
                id,
                to: ReplyTo::Http(tx),
            },
            rx,
        )
    }

    /// Sends `result` as the request's response (dropped if the connection is gone).
    pub fn send(self, result: Value) {
        let response = json!({"jsonrpc": "2.0", "id": self.id, "result": result});
        match self.to {
            ReplyTo::Stdio { replies, slot } => {
                let mut line = serde_json::to_vec(&response).expect("serialisable");
                line.push(b'\n');
                // Never full: at most TOOL_SLOTS replies exist at once, and the queue holds as many.
                let _ = replies.try_send(ToolReply { line, _slot: slot });
            }
            ReplyTo::Http(tx) => {
                let _ = tx.send(response);
            }
        }
    }
}

/// Tool calls in progress or waiting to be written, at most; the stdin reader waits for a
/// free slot before it starts another, so a client that floods calls without reading stdout
/// is slowed, never buffered without bound.
const TOOL_SLOTS: usize = 16;
/// Responses the reader may queue for the writer; beyond, it stops reading stdin until the
/// client reads stdout.
const QUEUED_RESPONSES: usize = 256;

/// One of [`TOOL_SLOTS`]: given back when dropped.
struct Slot(Sender<()>);

impl Drop for Slot {
    fn drop(&mut self) {
        let _ = self.0.try_send(());
    }
}

/// A tool's result on its way to stdout, holding its slot until written.
struct ToolReply {
    line: Vec<u8>,
    _slot: Slot,
}

enum Out {
    Line(Vec<u8>),
    Initialized,
    /// The feed to read from now on.
    Feed(Box<dyn Feed>),
    /// Queued right behind the first `initialize` answer: flush, then say it is out.
    Answered,
    Stop,
}

/// A running channel connection.
pub struct ChannelHandle {
    closed: Arc<Notify>,
    ctl: Sender<Out>,
    answered: Receiver<()>,
    writer: JoinHandle<()>,
}

impl ChannelHandle {
    /// Resolves when the client is gone: stdin reached EOF or stdout broke.
    pub async fn closed(&self) {
        self.closed.notified().await
    }

    /// Gives the writer the feed to read events from, in place of the one it started with: a
    /// local channel answers `initialize` while its store opens, with [`NoEvents`]. Waits only
    /// while the writer's queue is full (a client that does not read stdout).
    pub fn feed(&self, feed: Box<dyn Feed>) {
        // Err: the writer is gone (stdout closed), and with it any use for the feed.
        let _ = self.ctl.send(Out::Feed(feed));
    }

    /// Waits, at most `limit`, until the answer to the first `initialize` is flushed to the
    /// client; `false` if it is not by then. What would compete with it for a core waits for
    /// it, so a session is answered first.
    pub fn answered(&self, limit: Duration) -> bool {
        self.answered.recv_timeout(limit).is_ok()
    }

    /// Stops the writer after what is already queued for it, waiting at most `limit`.
    pub fn stop(self, limit: Duration) {
        let deadline = Instant::now() + limit;
        // Bounded: a writer stuck on a stdout nobody reads never takes it.
        let _ = self.ctl.send_deadline(Out::Stop, deadline);
        while !self.writer.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Starts the connection over `input`/`output` (the process's stdin/stdout in production,
/// pipes in tests). Events are read from `feed` only after `notifications/initialized`.
pub fn start(
    input: impl Read + Send + 'static,
    output: impl Write + Send + 'static,
    feed: Box<dyn Feed>,
    server: ServerDescription,
) -> ChannelHandle {
    start_with_tools(input, output, feed, server, None)
}

/// [`start`], offering `tools` (declared only when it has at least one definition; a call
/// still goes to `tools` then, so its refusal can say which permission is missing).
pub fn start_with_tools(
    input: impl Read + Send + 'static,
    output: impl Write + Send + 'static,
    feed: Box<dyn Feed>,
    server: ServerDescription,
    tools: Option<Arc<dyn Tools>>,
) -> ChannelHandle {
    let closed = Arc::new(Notify::new());
    let (ctl_tx, ctl_rx) = crossbeam_channel::bounded::<Out>(QUEUED_RESPONSES);
    let (replies_tx, replies_rx) = crossbeam_channel::bounded::<ToolReply>(TOOL_SLOTS);
    let (answered_tx, answered) = crossbeam_channel::bounded(1);
    let writer = {
        let closed = closed.clone();
        std::thread::Builder::new()
            .name("channel-writer".into())
            .spawn(move || {
                if let Err(e) = write_loop(output, ctl_rx, replies_rx, feed, answered_tx) {
                    tracing::info!(error = %e, "stdout closed");
                }
                closed.notify_one();
            })
            .expect("spawn writer thread")
    };
    {
        let closed = closed.clone();
        let ctl = ctl_tx.clone();
        // A plain thread: a blocking stdin read cannot be cancelled, so shutdown never waits
        // for it; the process exits around it.
        std::thread::Builder::new()
            .name("channel-reader".into())
            .spawn(move || {
                let (slot_back, slots) = crossbeam_channel::bounded(TOOL_SLOTS);
                for _ in 0..TOOL_SLOTS {
                    let _ = slot_back.send(());
                }
                let link = Link {
                    ctl: &ctl,
                    replies: &replies_tx,
                    slots: (&slot_back, &slots),
                };
                read_loop(input, &link, &server, tools.as_deref());
                tracing::info!("stdin closed; the client is gone");
                closed.notify_one();
                // Nothing more is written to a client that has gone, not even what is due.
                let _ = ctl.try_send(Out::Stop);
            })
            .expect("spawn reader thread");
    }
    ChannelHandle {
        closed,
        ctl: ctl_tx,
        answered,
        writer,
    }
}

/// What the writer's control messages change.
struct Writer {
    feed: Box<dyn Feed>,
    wake: Receiver<()>,
    /// When `notifications/initialized` arrived, and so when events may start.
    settles_at: Option<Instant>,
    answered: Sender<()>,
}

impl Writer {
    /// Applies one control message to `out`; `false` once it says stop (all flushed).
    fn control(&mut self, m: Out, out: &mut impl Write) -> std::io::Result<bool> {
        match m {
            Out::Line(l) => out.write_all(&l)?,
            Out::Initialized => {
                self.settles_at.get_or_insert_with(|| Instant::now() + SETTLE);
            }
            Out::Feed(f) => {
                self.wake = f.wake();
                self.feed = f;
            }
            Out::Answered => {
                out.flush()?;
                let _ = self.answered.try_send(());
            }
            Out::Stop => {
                out.flush()?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn settled(&self) -> bool {
        self.settles_at.is_some_and(|t| Instant::now() >= t)
    }
}

fn write_loop(
    output: impl Write,
    ctl: Receiver<Out>,
    replies: Receiver<ToolReply>,
    feed: Box<dyn Feed>,
    answered: Sender<()>,
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, output);
    let never = crossbeam_channel::never();
    let mut w = Writer {
        wake: feed.wake(),
        feed,
        settles_at: None,
        answered,
    };
    let mut buf = Vec::with_capacity(1 << 16);
    loop {
        let settled = w.settled();
        let wake_rx = if settled { &w.wake } else { &never };
        let settling = match w.settles_at {
            Some(t) if !settled => crossbeam_channel::at(t),
            _ => crossbeam_channel::never(),
        };
        // Block for one message, then take whatever else is ready and flush once.
        let first = select! {
            recv(ctl) -> m => match m { Ok(m) => Some(m), Err(_) => Some(Out::Stop) },
            recv(replies) -> r => {
                if let Ok(r) = r {
                    out.write_all(&r.line)?;
                }
                None
            }
            recv(wake_rx) -> _ => None,
            recv(settling) -> _ => None,
        };
        while let Ok(r) = replies.try_recv() {
            out.write_all(&r.line)?;
        }
        for m in first
            .into_iter()
            .chain(std::iter::from_fn(|| ctl.try_recv().ok()))
        {
            if !w.control(m, &mut out)? {
                return Ok(());
            }
        }
        if w.settled() {
            // The wake is coalesced: take everything there is now, one flush per batch so each
            // batch is acknowledged as soon as it is in the pipe. Responses queued meanwhile go
            // between batches, never behind a long backlog. Read before a batch is taken, so
            // a stop leaves nothing taken unwritten and a new feed never gets the old one's
            // position.
            loop {
                while let Ok(m) = ctl.try_recv() {
                    if !w.control(m, &mut out)? {
                        return Ok(());
                    }
                }
                buf.clear();
                let Some(pos) = w.feed.next(BATCH, &mut buf) else {
                    break;
                };
                out.write_all(&buf)?;
                out.flush()?;
                w.feed.written(pos);
            }
        }
        out.flush()?;
    }
}

/// The reader's ways to the writer: responses, tool results, and the tool slots.
struct Link<'a> {
    ctl: &'a Sender<Out>,
    replies: &'a Sender<ToolReply>,
    /// Where a slot goes back, and where a free one is taken.
    slots: (&'a Sender<()>, &'a Receiver<()>),
}

/// Where the session is in MCP's lifecycle: requests other than `ping` (and the `server/discover`
/// probe, answered "method not found" as always) are refused until `initialize` is answered,
/// and events wait for `notifications/initialized` after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Nothing yet.
    New,
    /// `initialize` answered.
    Initializing,
    /// `notifications/initialized` received: events flow.
    Ready,
}

fn read_loop(input: impl Read, link: &Link<'_>, server: &ServerDescription, tools: Option<&dyn Tools>) {
    let mut reader = BufReader::new(input);
    let mut buf = Vec::new();
    let mut phase = Phase::New;
    let mut first_answer = true;
    loop {
        buf.clear();
        match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if !buf.ends_with(b"\n") && buf.len() as u64 >= MAX_LINE {
            tracing::warn!("inbound line over 16 MiB; closing");
            return;
        }
        let text = buf.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let reply = match serde_json::from_slice::<Value>(text) {
            // JSON-RPC batches were removed from MCP in 2025-06-18 and no client of a channel
            // sends them: one error for the whole array, nothing in it executed.
            Ok(Value::Array(_)) => Some(error(
                Value::Null,
                -32600,
                "Invalid Request: batches are not supported; send one JSON-RPC message per line",
            )),
            Ok(msg) => handle(&msg, server, link, tools, &mut phase),
            Err(_) => Some(error(Value::Null, -32700, "Parse error")),
        };
        if let Some(r) = reply {
            let mut line = serde_json::to_vec(&r).expect("serialisable");
            line.push(b'\n');
            // Blocks while the writer's queue is full: a client that does not read stdout
            // stops being read.
            if link.ctl.send(Out::Line(line)).is_err() {
                return;
            }
            if first_answer && phase != Phase::New {
                first_answer = false;
                let _ = link.ctl.send(Out::Answered);
            }
        }
    }
}

/// What one inbound message asks of the transport that read it (stdio or Streamable HTTP):
/// the same answers on both.
#[derive(Debug)]
pub(crate) enum Answer {
    /// Nothing to send: a notification or a response.
    Nothing,
    /// This JSON-RPC response.
    Respond(Value),
    /// `notifications/initialized` moved the session to [`Phase::Ready`]: events may flow
    /// ([`SETTLE`] later).
    Initialized,
    /// A `tools/call` for the session's [`Tools`]; its result goes through a [`Reply`].
    Call {
        /// The request id.
        id: Value,
        /// The tool.
        name: String,
        /// Its arguments (`{}` when absent).
        arguments: Value,
    },
}

/// Answers one inbound message (not a batch) and moves `phase` along MCP's lifecycle. The
/// `tools` capability and `tools/list` exist only when `tools` has a definition; a call goes
/// to `tools` whenever there is one (its refusal names the missing permission), else it is a
/// tool error.
pub(crate) fn answer(
    msg: &Value,
    server: &ServerDescription,
    tools: Option<&dyn Tools>,
    phase: &mut Phase,
) -> Answer {
    let method = msg.get("method").and_then(Value::as_str);
    let id = msg.get("id").cloned();
    let declared = || tools.is_some_and(|t| !t.definitions().is_empty());
    match (method, id) {
        (Some("notifications/initialized"), None) => match *phase {
            Phase::Initializing => {
                tracing::info!("session initialized; delivering events");
                *phase = Phase::Ready;
                Answer::Initialized
            }
            Phase::New => {
                tracing::warn!("notifications/initialized before initialize; ignored");
                Answer::Nothing
            }
            Phase::Ready => Answer::Nothing,
        },
        // Other notifications (cancelled, roots changed, ...) need nothing from a channel.
        (Some(_), None) => Answer::Nothing,
        // Before `initialize` only a ping is answered (and the discover probe, below).
        (Some(m), Some(id))
            if *phase == Phase::New && !matches!(m, "initialize" | "ping" | "server/discover") =>
        {
            Answer::Respond(error(
                id,
                -32002,
                &format!("Server not initialized: send initialize before {m}"),
            ))
        }
        // A repeated `initialize` is answered again (negotiation only); it does not stop events.
        (Some("initialize"), Some(id)) => {
            if *phase == Phase::New {
                *phase = Phase::Initializing;
            }
            let asked = msg.pointer("/params/protocolVersion").and_then(Value::as_str);
            let version = negotiate(asked);
            tracing::info!(asked = asked.unwrap_or("-"), answered = version, "initialize");
            // `tools` only with at least one granted tool; never `claude/channel/permission`.
            let capabilities = if declared() {
                json!({"experimental": {"claude/channel": {}}, "tools": {}})
            } else {
                json!({"experimental": {"claude/channel": {}}})
            };
            Answer::Respond(json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": version,
                "capabilities": capabilities,
                "serverInfo": {"name": server.name, "version": server.version},
                "instructions": server.instructions,
            }}))
        }
        (Some("ping"), Some(id)) => Answer::Respond(json!({"jsonrpc": "2.0", "id": id, "result": {}})),
        (Some("tools/list"), Some(id)) if declared() => {
            let list = tools.map(|t| t.definitions()).unwrap_or_default();
            Answer::Respond(json!({"jsonrpc": "2.0", "id": id, "result": {"tools": list}}))
        }
        (Some("tools/call"), Some(id)) => {
            let Some(name) = msg.pointer("/params/name").and_then(Value::as_str) else {
                return Answer::Respond(error(id, -32602, "Invalid params: tools/call needs params.name"));
            };
            let arguments = msg
                .pointer("/params/arguments")
                .cloned()
                .unwrap_or_else(|| json!({}));
            tracing::debug!(tool = name, "tools/call");
            if tools.is_some() {
                return Answer::Call {
                    id,
                    name: name.to_owned(),
                    arguments,
                };
            }
            // No tools at all: a tool error Claude can read, rather than a protocol one.
            let text = format!("unknown tool `{name}`: this session offers no tools; nothing was done");
            Answer::Respond(json!({"jsonrpc": "2.0", "id": id, "result":
                {"isError": true, "content": [{"type": "text", "text": text}]}}))
        }
        // `server/discover` must get a plain "method not found" so the client treats this
        // server as legacy and sends `initialize` (a DiscoverResult would lose the channel).
        (Some(m), Some(id)) => Answer::Respond(error(id, -32601, &format!("Method not found: {m}"))),
        // A response to a request we never send, or junk without a method.
        (None, Some(id)) if msg.get("result").is_none() && msg.get("error").is_none() => {
            Answer::Respond(error(id, -32600, "Invalid Request"))
        }
        (None, _) => Answer::Nothing,
    }
}

/// The stdio side of [`answer`]: `None` for notifications, responses and `tools/call` (whose
/// answer the tool sends when done).
fn handle(
    msg: &Value,
    server: &ServerDescription,
    link: &Link<'_>,
    tools: Option<&dyn Tools>,
    phase: &mut Phase,
) -> Option<Value> {
    match answer(msg, server, tools, phase) {
        Answer::Nothing => None,
        Answer::Respond(v) => Some(v),
        Answer::Initialized => {
            let _ = link.ctl.send(Out::Initialized);
            None
        }
        Answer::Call { id, name, arguments } => {
            // Waits while TOOL_SLOTS calls are running or unwritten: stdin is not read meanwhile.
            if link.slots.1.recv().is_err() {
                return None;
            }
            let reply = Reply {
                id,
                to: ReplyTo::Stdio {
                    replies: link.replies.clone(),
                    slot: Slot(link.slots.0.clone()),
                },
            };
            if let Some(t) = tools {
                t.call(&name, arguments, reply);
            }
            None
        }
    }
}

/// A JSON-RPC error response.
pub(crate) fn error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_stays_on_legacy_revisions() {
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("2024-11-05")), "2024-11-05");
        assert_eq!(negotiate(Some("2026-07-28")), FALLBACK_VERSION);
        assert_eq!(negotiate(None), FALLBACK_VERSION);
    }

    /// Answers `msgs` in order with a fresh reader state; returns each answer.
    fn answers(msgs: &[Value]) -> Vec<Option<Value>> {
        let (ctl, _ctl_rx) = crossbeam_channel::bounded(QUEUED_RESPONSES);
        let (replies, _replies_rx) = crossbeam_channel::bounded(TOOL_SLOTS);
        let (back, slots) = crossbeam_channel::bounded(TOOL_SLOTS);
        for _ in 0..TOOL_SLOTS {
            back.send(()).unwrap();
        }
        let link = Link {
            ctl: &ctl,
            replies: &replies,
            slots: (&back, &slots),
        };
        let s = ServerDescription {
            name: "hookwire".into(),
            version: "0".into(),
            instructions: "i".into(),
        };
        let mut phase = Phase::New;
        msgs.iter()
            .map(|m| handle(m, &s, &link, None, &mut phase))
            .collect()
    }

    #[test]
    fn discover_and_unknown_methods_are_method_not_found() {
        let r = answers(&[
            json!({"jsonrpc":"2.0","id":1,"method":"server/discover"}),
            json!({"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"2026-07-28"}}),
            json!({"jsonrpc":"2.0","id":"x","method":"tools/list"}),
            json!({"jsonrpc":"2.0","method":"notifications/cancelled"}),
        ]);
        assert_eq!(r[0].as_ref().unwrap()["error"]["code"], -32601);
        let init = r[1].as_ref().unwrap();
        assert_eq!(init["result"]["protocolVersion"], FALLBACK_VERSION);
        assert_eq!(
            init["result"]["capabilities"],
            json!({"experimental": {"claude/channel": {}}})
        );
        assert_eq!(r[2].as_ref().unwrap()["error"]["code"], -32601);
        assert!(r[3].is_none());
    }

    #[test]
    fn nothing_but_ping_is_answered_before_initialize() {
        let r = answers(&[
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_event","arguments":{}}}),
            json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
            json!({"jsonrpc":"2.0","id":3,"method":"ping"}),
            json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
            json!({"jsonrpc":"2.0","id":4,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}),
            json!({"jsonrpc":"2.0","id":5,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}),
        ]);
        assert_eq!(r[0].as_ref().unwrap()["error"]["code"], -32002);
        assert_eq!(r[1].as_ref().unwrap()["error"]["code"], -32002);
        assert_eq!(r[2].as_ref().unwrap()["result"], json!({}));
        assert!(r[3].is_none());
        assert_eq!(r[4].as_ref().unwrap()["result"]["protocolVersion"], "2025-06-18");
        assert_eq!(r[5].as_ref().unwrap()["result"]["protocolVersion"], "2025-06-18");
    }
}
