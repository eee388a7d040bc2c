//! `/mcp`: the gateway as a remote Claude Code channel, MCP over Streamable HTTP, so a team
//! member's Claude Code needs no hookwire binary (`{"type": "http", "url": ".../mcp", "headers":
//! {"Authorization": "Bearer hwt_..."}}`). It is a second transport onto what the stdio channel
//! and the link already use: the messages are answered by [`crate::channel::answer`] (the
//! same negotiation, `server/discover` → -32601, lifecycle gate and tools), the tokens are the
//! link's (checked per request, [`Gateway::authenticate`]), and events come from the store
//! through the token's cursor, as a linked session's do.
//!
//! - `POST /mcp`: one JSON-RPC message. `initialize` opens a session (`Mcp-Session-Id`); every
//!   other message names it. Requests are answered with `application/json`, notifications and
//!   responses with `202`.
//! - `GET /mcp`: the session's SSE stream ([`super::sse`]): one `notifications/claude/channel`
//!   per event, its SSE `id:` the event's place in the token's stream; `Last-Event-ID` resumes.
//! - `DELETE /mcp`: ends the session.
//!
//! Every byte is hostile until the token checks out: the token is checked before the body is
//! read, a body is at most [`MAX_BODY`] and must arrive within [`BODY_TIMEOUT`], a token has
//! at most [`MAX_SESSIONS_PER_TOKEN`] sessions (a new one ends the least recently used), a
//! session unused for [`SESSION_IDLE`] with no stream open ends, and at most
//! [`MAX_CALLS`] tool calls of a session run at once. An unknown, revoked or expired token gets
//! `401` without detail; a token revoked during a session ends it within a second.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use super::{Gateway, Refused};
use crate::channel::{self, Answer, Phase, Reply, ServerDescription, Tools};
use crate::http::BodyRefused;
use crate::store::token::Token;
use crate::tools::{Session as ToolSession, Toolbox};

/// The endpoint's path.
pub const MCP_PATH: &str = "/mcp";
/// The header naming a session.
const SESSION_HEADER: &str = "mcp-session-id";
/// Largest accepted request body: a tool call's arguments are bounded far below by their
/// schemas.
pub const MAX_BODY: usize = 64 * 1024;
/// Time for a request body to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Sessions a token may hold at once; one more ends the least recently used (Claude Code's
/// health checks open a session each and may never end it).
pub const MAX_SESSIONS_PER_TOKEN: usize = 8;
/// A session with no request and no stream open for this long is ended.
pub const SESSION_IDLE: Duration = Duration::from_secs(10 * 60);
/// Tool calls of one session running at once; more are refused with a JSON-RPC error.
pub const MAX_CALLS: usize = 16;
/// How long a tool call may take before its request is answered with an error (the call
/// itself is not cancelled: an action may already be under way).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a remote session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// `DELETE /mcp`.
    Deleted,
    /// The token was revoked, deleted or expired.
    TokenInvalid,
    /// The token opened more sessions than it may hold.
    Evicted,
    /// Unused for [`SESSION_IDLE`].
    Idle,
    /// The gateway is stopping.
    ShuttingDown,
}

/// One remote session: its token, lifecycle phase, tools, where its events resume, and its
/// open stream.
pub(super) struct McpSession {
    /// `Mcp-Session-Id`: 128 random bits, hex.
    pub(super) id: String,
    /// Who it is and what it receives: the token as it was at `initialize`.
    pub(super) token: Token,
    phase: Mutex<Phase>,
    /// `Some(when)` once `notifications/initialized` arrived: events may flow after
    /// [`channel::SETTLE`].
    pub(super) ready: watch::Sender<Option<Instant>>,
    server: ServerDescription,
    tools: Option<Arc<dyn Tools>>,
    calls: Arc<Semaphore>,
    /// Everything up to here counts as delivered to this session: a stream opened without
    /// `Last-Event-ID` resumes after it. Starts at the token's cursor.
    pub(super) position: AtomicU64,
    /// `Last-Event-ID` is never taken below this: a session cannot rewind past where it began.
    pub(super) floor: u64,
    /// Bumped by every `GET`: the stream of an older number ends (one stream per session).
    pub(super) stream: watch::Sender<u64>,
    /// Set once; ends the stream and refuses every later request.
    pub(super) end: watch::Sender<Option<Ended>>,
    /// The last request, for [`SESSION_IDLE`].
    last_seen: Mutex<Instant>,
    /// Whether a stream is open (an idle session with one is not idle).
    pub(super) streaming: AtomicU64,
}

impl McpSession {
    /// Ends the session for `why` (the first reason wins).
    pub(super) fn finish(&self, why: Ended) {
        self.end.send_if_modified(|e| {
            if e.is_none() {
                *e = Some(why);
                true
            } else {
                false
            }
        });
    }

    fn ended(&self) -> bool {
        self.end.borrow().is_some()
    }

    fn touch(&self) {
        *self.last_seen.lock().expect("session poisoned") = Instant::now();
    }
}

/// The live remote sessions, by `Mcp-Session-Id`.
#[derive(Default)]
pub(super) struct Sessions(Mutex<HashMap<String, Arc<McpSession>>>);

impl Sessions {
    pub(super) fn is_empty(&self) -> bool {
        self.0.lock().expect("sessions poisoned").is_empty()
    }

    /// The token names with a live remote session that has a stream open.
    pub(super) fn token_names(&self) -> Vec<String> {
        let map = self.0.lock().expect("sessions poisoned");
        map.values()
            .filter(|s| !s.ended() && s.streaming.load(Ordering::SeqCst) > 0)
            .map(|s| s.token.name.clone())
            .collect()
    }

    /// Adds `s`, ending the token's least recently used session beyond
    /// [`MAX_SESSIONS_PER_TOKEN`].
    fn insert(&self, s: Arc<McpSession>) {
        let mut map = self.0.lock().expect("sessions poisoned");
        let mut mine: Vec<(Instant, String)> = map
            .values()
            .filter(|o| o.token.name == s.token.name)
            .map(|o| (*o.last_seen.lock().expect("session poisoned"), o.id.clone()))
            .collect();
        mine.sort();
        while mine.len() >= MAX_SESSIONS_PER_TOKEN {
            let (_, id) = mine.remove(0);
            if let Some(old) = map.remove(&id) {
                tracing::info!(subscriber = %old.token.name, "too many remote sessions for one token; ending the least recently used");
                old.finish(Ended::Evicted);
            }
        }
        map.insert(s.id.clone(), s);
    }

    /// The live session `id` of token `name`.
    fn get(&self, id: &str, name: &str) -> Option<Arc<McpSession>> {
        let map = self.0.lock().expect("sessions poisoned");
        map.get(id)
            .filter(|s| s.token.name == name && !s.ended())
            .cloned()
    }

    fn remove(&self, id: &str) -> Option<Arc<McpSession>> {
        self.0.lock().expect("sessions poisoned").remove(id)
    }

    /// Ends and removes the sessions for which `why` says so (token checks, idleness).
    pub(super) fn sweep(&self, mut why: impl FnMut(&McpSession) -> Option<Ended>) {
        let mut map = self.0.lock().expect("sessions poisoned");
        map.retain(|_, s| {
            if s.ended() {
                return false;
            }
            match why(s) {
                Some(w) => {
                    s.finish(w);
                    false
                }
                None => true,
            }
        });
    }

    /// Whether `s` has been unused for [`SESSION_IDLE`] with no stream open.
    pub(super) fn idle(s: &McpSession, now: Instant) -> bool {
        s.streaming.load(Ordering::SeqCst) == 0
            && now.duration_since(*s.last_seen.lock().expect("session poisoned")) >= SESSION_IDLE
    }
}

/// A JSON answer with `status`.
fn json_response(status: StatusCode, v: &Value) -> Response {
    let mut r = (status, v.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// The refusal of a token: `401` without saying why (unknown, revoked and expired read the
/// same), or `503` while the gateway stops or cannot read its tokens.
fn refused(r: Refused) -> Response {
    match r {
        Refused::Closing | Refused::Unavailable => {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable\n").into_response()
        }
        Refused::NoToken | Refused::Unknown | Refused::Revoked | Refused::Expired => {
            let mut r = (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            r
        }
    }
}

/// `404` for a session that is not (or no longer) live: the client starts a new one.
fn no_session() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &channel::error(Value::Null, -32001, "Session not found: initialize a new session"),
    )
}

fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers.get(SESSION_HEADER)?.to_str().ok()
}

/// A fresh `Mcp-Session-Id`.
fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    hex::encode(bytes)
}

/// The live session a request names, for its (already valid) token.
fn named(gw: &Gateway, headers: &HeaderMap, token: &Token) -> Option<Arc<McpSession>> {
    let s = gw.remote.get(session_id(headers)?, &token.name)?;
    s.touch();
    Some(s)
}

/// `POST /mcp`.
pub(super) async fn post(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let token = match gw
        .authenticate(&parts.headers, peer, "remote channel request")
        .await
    {
        Ok(t) => t,
        Err(r) => return refused(r),
    };
    let json_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json_type {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send Content-Type: application/json\n",
        )
            .into_response();
    }
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let msg = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Value::Object(m),
        Ok(Value::Array(_)) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &channel::error(
                    Value::Null,
                    -32600,
                    "Invalid Request: batches are not supported; send one JSON-RPC message per request",
                ),
            )
        }
        _ => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &channel::error(Value::Null, -32700, "Parse error"),
            )
        }
    };
    let method = msg.get("method").and_then(Value::as_str);
    if method == Some("initialize") && msg.get("id").is_some() {
        return initialize(&gw, token, &msg).await;
    }
    let Some(session) = named(&gw, &parts.headers, &token) else {
        if session_id(&parts.headers).is_some() {
            return no_session();
        }
        // No session: only the `server/discover` probe (→ -32601, so the client falls back to
        // `initialize`) and `ping` are answered; anything else needs `initialize` first.
        let mut phase = Phase::New;
        let nobody = ServerDescription {
            name: String::new(),
            version: String::new(),
            instructions: String::new(),
        };
        return match channel::answer(&msg, &nobody, None, &mut phase) {
            Answer::Respond(v) => {
                let status = if v.pointer("/error/code") == Some(&json!(-32002)) {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::OK
                };
                json_response(status, &v)
            }
            _ => StatusCode::ACCEPTED.into_response(),
        };
    };
    if let Some(v) = parts.headers.get("mcp-protocol-version") {
        let known = v.to_str().is_ok_and(|v| channel::SUPPORTED_VERSIONS.contains(&v));
        if !known {
            return json_response(
                StatusCode::BAD_REQUEST,
                &channel::error(Value::Null, -32600, "Unsupported MCP-Protocol-Version"),
            );
        }
    }
    let answer = {
        let mut phase = session.phase.lock().expect("session poisoned");
        channel::answer(&msg, &session.server, session.tools.as_deref(), &mut phase)
    };
    match answer {
        Answer::Nothing => StatusCode::ACCEPTED.into_response(),
        Answer::Respond(v) => json_response(StatusCode::OK, &v),
        Answer::Initialized => {
            session.ready.send_replace(Some(Instant::now()));
            StatusCode::ACCEPTED.into_response()
        }
        Answer::Call { id, name, arguments } => call(&session, id, &name, arguments).await,
    }
}

/// Opens a session for `token` and answers its `initialize`.
async fn initialize(gw: &Gateway, token: Token, msg: &Value) -> Response {
    // Where the token's stream stands: its cursor, created at the head for a new token.
    let sub = crate::store::Subscription {
        name: token.name.clone(),
        sources: token.sources.clone(),
    };
    let store = gw.store.clone();
    let start = match tokio::task::spawn_blocking(move || store.subscribe(&sub, store.head())).await {
        Ok(Ok(s)) => s,
        Err(_) => return (StatusCode::SERVICE_UNAVAILABLE, "unavailable\n").into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read a remote session's cursor");
            return (StatusCode::SERVICE_UNAVAILABLE, "unavailable\n").into_response();
        }
    };
    let toolbox = gw.remote_tools(&token);
    let granted = toolbox.as_ref().map(|t| t.granted().to_vec()).unwrap_or_default();
    let server = gw.remote_server(&token, &granted);
    // Kept with no tool granted: a call is then refused naming the missing permission.
    let tools = toolbox.map(|t| Arc::new(t) as Arc<dyn Tools>);
    let (end, _) = watch::channel(None);
    let (ready, _) = watch::channel(None);
    let (stream, _) = watch::channel(0);
    let session = Arc::new(McpSession {
        id: new_session_id(),
        token,
        phase: Mutex::new(Phase::New),
        ready,
        server,
        tools,
        calls: Arc::new(Semaphore::new(MAX_CALLS)),
        position: AtomicU64::new(start),
        floor: start,
        stream,
        end,
        last_seen: Mutex::new(Instant::now()),
        streaming: AtomicU64::new(0),
    });
    let answer = {
        let mut phase = session.phase.lock().expect("session poisoned");
        channel::answer(msg, &session.server, session.tools.as_deref(), &mut phase)
    };
    let Answer::Respond(v) = answer else {
        unreachable!("initialize is always answered");
    };
    tracing::info!(subscriber = %session.token.name, resume_after = start, "remote channel session opened");
    let id = session.id.clone();
    gw.remote.insert(session);
    let mut r = json_response(StatusCode::OK, &v);
    r.headers_mut().insert(
        SESSION_HEADER,
        HeaderValue::from_str(&id).expect("hex is a header value"),
    );
    r
}

/// Runs a `tools/call` and answers the request with its result.
async fn call(session: &McpSession, id: Value, name: &str, arguments: Value) -> Response {
    let Some(tools) = &session.tools else {
        unreachable!("answer() returns Call only with tools");
    };
    let Ok(permit) = session.calls.clone().try_acquire_owned() else {
        return json_response(
            StatusCode::OK,
            &channel::error(
                id,
                -32000,
                "too many tool calls in progress in this session; retry",
            ),
        );
    };
    let (reply, rx) = Reply::http(id.clone());
    tools.call(name, arguments, reply);
    let answered = tokio::time::timeout(CALL_TIMEOUT, rx).await;
    drop(permit);
    match answered {
        Ok(Ok(v)) => json_response(StatusCode::OK, &v),
        Ok(Err(_)) => json_response(
            StatusCode::OK,
            &channel::error(id, -32603, "the tool call failed without an answer"),
        ),
        Err(_) => json_response(
            StatusCode::OK,
            &channel::error(
                id,
                -32603,
                "the tool call did not finish in time; it may still complete",
            ),
        ),
    }
}

/// The request body, at most [`MAX_BODY`], within [`BODY_TIMEOUT`].
async fn read_body(body: Body) -> Result<bytes::Bytes, Response> {
    crate::http::read_small_body(body, MAX_BODY, BODY_TIMEOUT)
        .await
        .map_err(|e| {
            let (status, text) = match e {
                BodyRefused::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
                BodyRefused::TooSlow => (StatusCode::REQUEST_TIMEOUT, "request body too slow\n"),
                BodyRefused::Broken => (StatusCode::BAD_REQUEST, "cannot read the request body\n"),
            };
            (status, text).into_response()
        })
}

/// `GET /mcp`: the session's event stream.
pub(super) async fn get(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let token = match gw.authenticate(&headers, peer, "remote channel stream").await {
        Ok(t) => t,
        Err(r) => return refused(r),
    };
    let accepts = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream") || v.contains("*/*"));
    if !accepts {
        return (StatusCode::NOT_ACCEPTABLE, "accept text/event-stream\n").into_response();
    }
    let Some(session) = named(&gw, &headers, &token) else {
        return if session_id(&headers).is_some() {
            no_session()
        } else {
            (StatusCode::BAD_REQUEST, "name the session with Mcp-Session-Id\n").into_response()
        };
    };
    // Not a number (or not ours): resume as if it were absent.
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    super::sse::open(&gw, session, last)
}

/// `DELETE /mcp`: ends the session.
pub(super) async fn delete(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let token = match gw.authenticate(&headers, peer, "remote channel request").await {
        Ok(t) => t,
        Err(r) => return refused(r),
    };
    let Some(session) = named(&gw, &headers, &token) else {
        return no_session();
    };
    session.finish(Ended::Deleted);
    gw.remote.remove(&session.id);
    tracing::info!(subscriber = %token.name, "remote channel session ended by the client");
    StatusCode::OK.into_response()
}

impl Gateway {
    /// The remote session's tools: the token's permissions, performed by the gateway with the
    /// credentials of its own `tools:`, reads and audit in its store under the token's name.
    fn remote_tools(&self, token: &Token) -> Option<Toolbox> {
        if token.permissions.is_empty() {
            return None;
        }
        let session = ToolSession {
            subscriber: token.name.clone(),
            sources: token.sources.clone(),
            permissions: token.permissions.clone(),
        };
        let settings = self.pipeline.load().config().tools.clone();
        Some(Toolbox::new(
            session,
            &settings,
            Some(self.store.clone()),
            tokio::runtime::Handle::current(),
        ))
    }

    /// What a remote session is told in `initialize`: the token's sources and `granted`
    /// tools.
    fn remote_server(&self, token: &Token, granted: &[crate::tools::Tool]) -> ServerDescription {
        let base = crate::instructions::for_sources(self.pipeline.load().config(), &token.sources);
        ServerDescription {
            name: "hookwire".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            instructions: crate::instructions::with_tools(&base, granted),
        }
    }
}
