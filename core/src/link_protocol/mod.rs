//! The gateway link's wire protocol, `hookwire.v1`, in one place for both ends: its constants
//! and close codes, the frames each side sends ([`ServerFrame`], [`ClientFrame`]) and the one
//! codec that writes and reads them (`encode` / `decode` on each). The gateway
//! ([`crate::gateway`]) and the channel's link ([`crate::link`]) speak it through nothing
//! else. The specification below is `docs/link-protocol.md`, its one copy.
//!
#![doc = include_str!("../../../docs/link-protocol.md")]

mod codec;
mod frames;

use std::time::Duration;

pub use codec::{notification_line, DecodeError};
pub use frames::{ClientFrame, Hello, ServerFrame};

/// The WebSocket subprotocol both sides must agree on.
pub const PROTOCOL: &str = "hookwire.v1";
/// The `protocol` number in `hello`.
pub const PROTOCOL_VERSION: u32 = 1;
/// Where sessions connect.
pub const SESSION_PATH: &str = "/v1/session";

/// A client frame's size at most (acks, pings, read requests and audit entries are small);
/// the gateway's WebSocket refuses larger ones.
pub const MAX_CLIENT_FRAME: usize = 64 * 1024;
/// A gateway frame's size at most, as the link reads it (tungstenite's default frame limit).
pub const MAX_SERVER_FRAME: usize = 16 << 20;
/// A `result` frame's size at most: a larger `get_event` payload is cut to fit.
pub const MAX_RESULT_FRAME: usize = 4 << 20;

/// Events sent and not yet acknowledged, at most.
pub const WINDOW_EVENTS: usize = 1024;
/// Notification bytes sent and not yet acknowledged beyond which the gateway sends no more.
pub const WINDOW_BYTES: usize = 8 << 20;

/// A client that sends nothing (no frame, no WebSocket ping) for this long is disconnected.
pub const CLIENT_SILENCE: Duration = Duration::from_secs(60);
/// How often a client pings, well within [`CLIENT_SILENCE`].
pub const PING_EVERY: Duration = Duration::from_secs(15);

/// Read requests a session may have waiting beyond the one being answered; one more closes
/// the session ([`Close::TooManyReads`]).
pub const MAX_WAITING_READS: usize = 16;
/// `audit` frames a token may send in a burst, across its connections (a linked channel
/// queues as many while disconnected and sends them on reconnecting).
pub const AUDIT_BURST: u32 = 256;
/// `audit` frames a token may send per second beyond the burst.
pub const AUDIT_PER_SECOND: u32 = 1;

/// Close codes, for matching a close frame.
pub mod close {
    /// The client closes normally (the channel stopping, `hookwire doctor` done).
    pub const NORMAL: u16 = 1000;
    /// The gateway is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A binary frame.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A text frame that is not a client frame of this protocol.
    pub const INVALID_FRAME: u16 = 1007;
    /// Too many read requests waiting.
    pub const POLICY: u16 = 1008;
    /// The gateway's store failed.
    pub const STORE_ERROR: u16 = 1011;
    /// The token was revoked or expired during the session (reason `revoked` / `expired`).
    pub const TOKEN_INVALID: u16 = 4403;
    /// Nothing heard from the client for too long.
    pub const IDLE: u16 = 4408;
    /// Another connection with the same token took over.
    pub const SUPERSEDED: u16 = 4409;
}

/// Why the gateway ends a session: the code and reason of the close frame it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// Another connection with the same token took over: one live connection per token.
    Superseded,
    /// The token was revoked (or deleted) during the session.
    Revoked,
    /// The token expired during the session.
    Expired,
    /// Nothing heard from the client for [`CLIENT_SILENCE`].
    Idle,
    /// The gateway is shutting down.
    GoingAway,
    /// The client sent a binary frame.
    BinaryFrame,
    /// The client sent a text frame that is not one of [`ClientFrame`].
    NotAFrame,
    /// More than [`MAX_WAITING_READS`] read requests waiting.
    TooManyReads,
    /// The gateway's store failed (the client reconnects).
    StoreFailed,
}

impl Close {
    /// The close code.
    pub const fn code(self) -> u16 {
        match self {
            Close::Superseded => close::SUPERSEDED,
            Close::Revoked | Close::Expired => close::TOKEN_INVALID,
            Close::Idle => close::IDLE,
            Close::GoingAway => close::GOING_AWAY,
            Close::BinaryFrame => close::UNSUPPORTED_DATA,
            Close::NotAFrame => close::INVALID_FRAME,
            Close::TooManyReads => close::POLICY,
            Close::StoreFailed => close::STORE_ERROR,
        }
    }

    /// The close frame's reason text.
    pub const fn reason(self) -> &'static str {
        match self {
            Close::Superseded => "superseded",
            Close::Revoked => "revoked",
            Close::Expired => "expired",
            Close::Idle => "idle",
            Close::GoingAway => "gateway shutting down",
            Close::BinaryFrame => "text frames only",
            Close::NotAFrame => "not a hookwire.v1 frame",
            Close::TooManyReads => "too many read requests waiting",
            Close::StoreFailed => "store error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = include_str!("../../../docs/link-protocol.md");

    /// The spec is the one copy: every number it promises is the one in force here.
    #[test]
    fn the_spec_states_the_numbers_in_force() {
        let spec = SPEC.split_whitespace().collect::<Vec<_>>().join(" ");
        let mib = |b: usize| format!("{} MiB", b >> 20);
        let secs = |d: Duration| format!("{} s", d.as_secs());
        for stated in [
            format!("`{PROTOCOL}`"),
            format!("\"protocol\":{PROTOCOL_VERSION}"),
            format!("`GET {SESSION_PATH}`"),
            format!("{} KiB", MAX_CLIENT_FRAME >> 10),
            mib(MAX_SERVER_FRAME),
            mib(MAX_RESULT_FRAME),
            format!("{WINDOW_EVENTS} events"),
            mib(WINDOW_BYTES),
            secs(CLIENT_SILENCE),
            secs(PING_EVERY),
            format!("{MAX_WAITING_READS} requests"),
            format!("{AUDIT_BURST} frames in a burst, then {AUDIT_PER_SECOND} per second"),
        ] {
            assert!(spec.contains(&stated), "the spec does not say {stated}");
        }
        for c in [
            Close::Superseded,
            Close::Revoked,
            Close::Expired,
            Close::Idle,
            Close::GoingAway,
            Close::BinaryFrame,
            Close::NotAFrame,
            Close::TooManyReads,
            Close::StoreFailed,
        ] {
            let row = format!("| `{}` | `{}` |", c.code(), c.reason());
            assert!(spec.contains(&row), "the spec's close codes lack {row}");
        }
    }
}
