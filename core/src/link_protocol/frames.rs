//! The frames of `hookwire.v1`, one type per direction: [`ServerFrame`] (gateway → channel)
//! and [`ClientFrame`] (channel → gateway). Reading and writing them is the codec's
//! (`encode` / `decode`, in `codec.rs`); these types only say what each frame carries.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::tools::ReadError;

/// The gateway's first frame on a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`super::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The token's name.
    pub subscriber: String,
    /// The sources this session receives.
    pub sources: Vec<String>,
    /// The permissions this session is offered.
    pub permissions: Vec<String>,
    /// The `instructions` for the channel's `initialize` result.
    pub instructions: String,
    /// The newest event id when the session started.
    #[serde(default)]
    pub head: u64,
    /// Whether the gateway answers read requests (`get_event`, `list_events`); gateways
    /// from before them omit it.
    #[serde(default)]
    pub reads: bool,
    /// Whether the gateway stores `audit` frames; gateways from before them omit it.
    #[serde(default)]
    pub audit: bool,
}

/// A frame the gateway sends. Borrows what it can from the text it was decoded from (or the
/// stored line it embeds): an event's notification is never copied on the way.
#[derive(Debug, Clone)]
pub enum ServerFrame<'a> {
    /// The first frame of a session.
    Hello(Hello),
    /// One event of the token's sources.
    Event {
        /// The event's id (the store's sequence number; increasing, with gaps).
        id: u64,
        /// The event's source.
        source: Cow<'a, str>,
        /// The exact `notifications/claude/channel` message the channel writes, a JSON object.
        notification: &'a RawValue,
    },
    /// The answer to a `ping`.
    Pong,
    /// The answer to read request `req`: exactly the local tool's result, or its error.
    Result {
        /// The client's number for the request.
        req: u64,
        /// The tool's result, or why there is none (`refused`: nothing was read; `failed`).
        answer: std::result::Result<Cow<'a, Value>, ReadError>,
    },
    /// A frame type this version does not know: ignored. Never sent (it would encode as
    /// `{"type":"unknown"}`, which a peer ignores too).
    Unknown,
}

/// A frame a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientFrame {
    /// Every event up to `id` is written.
    Ack {
        /// The highest event id written.
        id: u64,
    },
    /// Keepalive; answered with `pong`.
    Ping,
    /// `get_event`: answered with a `result` frame.
    #[serde(rename = "get_event")]
    GetEvent {
        /// The client's number for the request.
        req: u64,
        /// A store id (`42`, `evt_42`) or a delivery id.
        id: String,
    },
    /// `list_events`: answered with a `result` frame.
    #[serde(rename = "list_events")]
    ListEvents {
        /// The client's number for the request.
        req: u64,
        /// Only this source (one of the token's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        /// At most this many (default 20, clamped to 1..=100).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
    },
    /// One tool call of the linked channel, for the gateway's audit (nothing is answered).
    /// Fields beyond these (a `subscriber`, an `event_seq`) are ignored: the gateway decides
    /// them.
    Audit {
        /// The tool's MCP name.
        tool: String,
        /// The call's `event_id` argument, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_ref: Option<String>,
        /// The arguments (summarised by the channel; bounded again by the gateway).
        #[serde(default)]
        arguments: Value,
        /// `ok`, `refused` or `error`.
        outcome: String,
        /// The result or the error.
        #[serde(default)]
        detail: String,
        /// When the call finished, Unix milliseconds, by the channel's clock.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_ms: Option<i64>,
    },
    /// A frame type this version does not know: ignored. Never sent.
    #[serde(other)]
    Unknown,
}
