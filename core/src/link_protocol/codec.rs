//! The one codec of `hookwire.v1`: every frame either side sends is written by an `encode`
//! and read by a `decode` here, so the two ends cannot drift apart.
//!
//! The hot path is the event frame. Encoding embeds the stored notification line as a
//! [`RawValue`], byte for byte, without parsing it into a tree; decoding borrows the
//! notification from the frame's text, and the link copies it once, into the line it hands
//! the writer ([`notification_line`]). A gateway frame's fields are kept raw until its type
//! says how to read them, so one frame type's fields never fail another's.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::{ClientFrame, Hello, ServerFrame, MAX_CLIENT_FRAME, MAX_SERVER_FRAME, PROTOCOL};
use crate::tools::ReadError;

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Longer than the protocol allows a frame in this direction.
    TooLarge {
        /// The frame's length.
        bytes: usize,
        /// The direction's limit.
        limit: usize,
    },
    /// Not JSON, not an object with a string `type`, or a frame of a known type with a
    /// field missing or of the wrong type.
    Invalid {
        /// The frame's type, when it is one this version knows.
        frame: Option<&'static str>,
        /// What is wrong.
        why: String,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { bytes, limit } => {
                write!(f, "a frame of {bytes} bytes (at most {limit})")
            }
            DecodeError::Invalid { frame: Some(t), why } => write!(f, "`{t}` frame {why}"),
            DecodeError::Invalid { frame: None, why } => write!(f, "not a {PROTOCOL} frame: {why}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The wire shape of a gateway frame (serialisation only).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Wire<'a> {
    Hello(&'a Hello),
    Event {
        id: u64,
        source: &'a str,
        notification: &'a RawValue,
    },
    Pong,
    Result {
        req: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        ok: Option<&'a Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        kind: Option<&'static str>,
    },
    Unknown,
}

/// Every field a gateway frame may carry, each kept raw until the frame's type is known.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(rename = "type", borrow)]
    frame: Cow<'a, str>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    source: Option<&'a RawValue>,
    #[serde(borrow)]
    notification: Option<&'a RawValue>,
    #[serde(borrow)]
    req: Option<&'a RawValue>,
    #[serde(borrow)]
    ok: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
    #[serde(borrow)]
    kind: Option<&'a RawValue>,
}

/// A string field, borrowed from the frame's text unless it has escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// The `kind` of a `result` frame's error.
fn kind(e: &ReadError) -> &'static str {
    match e {
        ReadError::Refused(_) => "refused",
        ReadError::Failed(_) => "failed",
    }
}

impl<'a> ServerFrame<'a> {
    /// The event frame of a stored notification line (with or without its final newline),
    /// embedded as is; `None` when the line is not a JSON object.
    pub fn event(id: u64, source: &'a str, line: &'a [u8]) -> Option<ServerFrame<'a>> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let notification: &RawValue = serde_json::from_slice(line).ok()?;
        notification.get().starts_with('{').then_some(ServerFrame::Event {
            id,
            source: Cow::Borrowed(source),
            notification,
        })
    }

    /// The frame's text.
    pub fn encode(&self) -> String {
        let wire = match self {
            ServerFrame::Hello(h) => Wire::Hello(h),
            ServerFrame::Event {
                id,
                source,
                notification,
            } => Wire::Event {
                id: *id,
                source,
                notification,
            },
            ServerFrame::Pong => Wire::Pong,
            ServerFrame::Result { req, answer: Ok(v) } => Wire::Result {
                req: *req,
                ok: Some(v),
                error: None,
                kind: None,
            },
            ServerFrame::Result { req, answer: Err(e) } => Wire::Result {
                req: *req,
                ok: None,
                error: Some(e.message()),
                kind: Some(kind(e)),
            },
            ServerFrame::Unknown => Wire::Unknown,
        };
        serde_json::to_string(&wire).expect("frames serialise")
    }

    /// Reads a gateway frame. An unknown type is [`ServerFrame::Unknown`]; fields a frame's
    /// type does not have are ignored. A `result` frame with an error whose `kind` is not
    /// `refused` is a failure, and one with neither `ok` nor `error` fails too.
    pub fn decode(text: &'a str) -> Result<ServerFrame<'a>, DecodeError> {
        if text.len() > MAX_SERVER_FRAME {
            return Err(DecodeError::TooLarge {
                bytes: text.len(),
                limit: MAX_SERVER_FRAME,
            });
        }
        let f: Fields<'a> = serde_json::from_str(text).map_err(|e| DecodeError::Invalid {
            frame: None,
            why: e.to_string(),
        })?;
        match f.frame.as_ref() {
            "hello" => serde_json::from_str(text)
                .map(ServerFrame::Hello)
                .map_err(|e| invalid("hello", e.to_string())),
            "event" => {
                let id: u64 = required("event", "id", f.id)?;
                let Text(source) = required("event", "source", f.source)?;
                let notification = f
                    .notification
                    .filter(|n| n.get().starts_with('{'))
                    .ok_or_else(|| invalid("event", "without a `notification` object".into()))?;
                Ok(ServerFrame::Event {
                    id,
                    source,
                    notification,
                })
            }
            "pong" => Ok(ServerFrame::Pong),
            "result" => {
                let req: u64 = required("result", "req", f.req)?;
                let ok: Option<Value> = optional("result", "ok", f.ok)?;
                let error: Option<String> = optional("result", "error", f.error)?;
                let error_kind: Option<Text<'_>> = optional("result", "kind", f.kind)?;
                let answer = match (ok, error) {
                    (_, Some(e)) if error_kind.is_some_and(|Text(k)| k == "refused") => {
                        Err(ReadError::Refused(e))
                    }
                    (_, Some(e)) => Err(ReadError::Failed(e)),
                    (Some(v), None) => Ok(Cow::Owned(v)),
                    (None, None) => Err(ReadError::Failed("the gateway answered nothing".into())),
                };
                Ok(ServerFrame::Result { req, answer })
            }
            _ => Ok(ServerFrame::Unknown),
        }
    }
}

impl ClientFrame {
    /// The frame's text.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("frames serialise")
    }

    /// Reads a client frame. An unknown type is [`ClientFrame::Unknown`]; unknown fields are
    /// ignored.
    pub fn decode(text: &str) -> Result<ClientFrame, DecodeError> {
        if text.len() > MAX_CLIENT_FRAME {
            return Err(DecodeError::TooLarge {
                bytes: text.len(),
                limit: MAX_CLIENT_FRAME,
            });
        }
        serde_json::from_str(text).map_err(|e| DecodeError::Invalid {
            frame: None,
            why: e.to_string(),
        })
    }
}

/// The line the channel writes for an event frame's notification: its exact bytes, then a
/// newline.
pub fn notification_line(notification: &RawValue) -> Vec<u8> {
    let n = notification.get().as_bytes();
    let mut line = Vec::with_capacity(n.len() + 1);
    line.extend_from_slice(n);
    line.push(b'\n');
    line
}

fn invalid(frame: &'static str, why: String) -> DecodeError {
    DecodeError::Invalid {
        frame: Some(frame),
        why,
    }
}

fn optional<'a, T: Deserialize<'a>>(
    frame: &'static str,
    name: &str,
    raw: Option<&'a RawValue>,
) -> Result<Option<T>, DecodeError> {
    raw.map(|r| serde_json::from_str(r.get()))
        .transpose()
        .map_err(|e| invalid(frame, format!("with a bad `{name}`: {e}")))
}

fn required<'a, T: Deserialize<'a>>(
    frame: &'static str,
    name: &str,
    raw: Option<&'a RawValue>,
) -> Result<T, DecodeError> {
    optional(frame, name, raw)?.ok_or_else(|| invalid(frame, format!("without `{name}`")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOTIFICATION: &str = r#"{"jsonrpc":"2.0","method":"notifications/claude/channel","params":{"content":"a\nb","meta":{"z":"1","a":"2"}}}"#;

    fn hello() -> Hello {
        Hello {
            protocol: 1,
            subscriber: "alice".into(),
            sources: vec!["github".into()],
            permissions: vec!["read-events".into()],
            instructions: "i".into(),
            head: 9,
            reads: true,
            audit: true,
        }
    }

    #[test]
    fn frames_embed_the_notification_byte_for_byte() {
        // Key order, escapes and all: the stored line, not a re-serialisation of it.
        let line = format!("{NOTIFICATION}\n").into_bytes();
        let text = ServerFrame::event(7, "github", &line).unwrap().encode();
        assert_eq!(
            text,
            format!("{{\"type\":\"event\",\"id\":7,\"source\":\"github\",\"notification\":{NOTIFICATION}}}")
        );
        assert!(ServerFrame::event(7, "github", b"not json\n").is_none());
        assert!(
            ServerFrame::event(7, "github", b"[1]\n").is_none(),
            "a notification is an object"
        );
    }

    #[test]
    fn event_frames_yield_the_exact_line() {
        let n =
            r#"{"jsonrpc":"2.0","method":"notifications/claude/channel","params":{"content":"x","meta":{}}}"#;
        let text = format!(r#"{{"type":"event","id":5,"source":"github","notification":{n}}}"#);
        let ServerFrame::Event {
            id,
            source,
            notification,
        } = ServerFrame::decode(&text).unwrap()
        else {
            panic!("not an event")
        };
        assert_eq!((id, source.as_ref()), (5, "github"));
        assert!(matches!(source, Cow::Borrowed(_)), "borrowed from the frame");
        assert_eq!(notification_line(notification), format!("{n}\n").into_bytes());
        assert!(matches!(
            ServerFrame::decode(r#"{"type":"pong"}"#).unwrap(),
            ServerFrame::Pong
        ));
    }

    #[test]
    fn every_server_frame_round_trips() {
        let h = hello();
        let text = ServerFrame::Hello(h.clone()).encode();
        assert!(
            text.starts_with(r#"{"type":"hello","protocol":1,"subscriber":"alice""#),
            "{text}"
        );
        assert!(matches!(ServerFrame::decode(&text).unwrap(), ServerFrame::Hello(d) if d == h));

        let line = NOTIFICATION.as_bytes();
        let text = ServerFrame::event(3, "git\"hub", line).unwrap().encode();
        match ServerFrame::decode(&text).unwrap() {
            ServerFrame::Event {
                id,
                source,
                notification,
            } => {
                assert_eq!((id, source.as_ref()), (3, "git\"hub"));
                assert_eq!(notification.get(), NOTIFICATION);
            }
            other => panic!("{other:?}"),
        }

        let text = ServerFrame::Pong.encode();
        assert_eq!(text, r#"{"type":"pong"}"#);
        assert!(matches!(ServerFrame::decode(&text).unwrap(), ServerFrame::Pong));

        let ok = json!({"events": []});
        for (answer, wire) in [
            (
                Ok(Cow::Borrowed(&ok)),
                r#"{"type":"result","req":4,"ok":{"events":[]}}"#,
            ),
            (
                Err(ReadError::Refused("no".into())),
                r#"{"type":"result","req":4,"error":"no","kind":"refused"}"#,
            ),
            (
                Err(ReadError::Failed("db".into())),
                r#"{"type":"result","req":4,"error":"db","kind":"failed"}"#,
            ),
        ] {
            let text = ServerFrame::Result {
                req: 4,
                answer: answer.clone(),
            }
            .encode();
            assert_eq!(text, wire);
            match ServerFrame::decode(&text).unwrap() {
                ServerFrame::Result { req, answer: back } => {
                    assert_eq!((req, back), (4, answer));
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            ServerFrame::decode(&ServerFrame::Unknown.encode()).unwrap(),
            ServerFrame::Unknown
        ));
    }

    #[test]
    fn every_client_frame_round_trips() {
        for (frame, wire) in [
            (ClientFrame::Ack { id: 3 }, r#"{"type":"ack","id":3}"#),
            (ClientFrame::Ping, r#"{"type":"ping"}"#),
            (
                ClientFrame::GetEvent {
                    req: 1,
                    id: "evt_2".into(),
                },
                r#"{"type":"get_event","req":1,"id":"evt_2"}"#,
            ),
            (
                ClientFrame::ListEvents {
                    req: 9,
                    source: Some("github".into()),
                    limit: Some(5),
                },
                r#"{"type":"list_events","req":9,"source":"github","limit":5}"#,
            ),
            (
                ClientFrame::ListEvents {
                    req: 2,
                    source: None,
                    limit: Some(5),
                },
                r#"{"type":"list_events","req":2,"limit":5}"#,
            ),
            (
                ClientFrame::Audit {
                    tool: "slack_post_message".into(),
                    event_ref: Some("d-3".into()),
                    arguments: json!({"channel": "#c"}),
                    outcome: "ok".into(),
                    detail: "{}".into(),
                    at_ms: Some(3),
                },
                r##"{"type":"audit","tool":"slack_post_message","event_ref":"d-3","arguments":{"channel":"#c"},"outcome":"ok","detail":"{}","at_ms":3}"##,
            ),
        ] {
            assert_eq!(frame.encode(), wire);
            assert_eq!(ClientFrame::decode(wire).unwrap(), frame);
        }
    }

    #[test]
    fn what_older_peers_send_still_decodes() {
        // A gateway from before `head`, reads and audit.
        let old = r#"{"type":"hello","protocol":1,"subscriber":"a","sources":[],"permissions":[],"instructions":""}"#;
        let ServerFrame::Hello(h) = ServerFrame::decode(old).unwrap() else {
            panic!("not a hello")
        };
        assert_eq!(h.head, 0);
        assert!(!h.reads, "an older gateway answers no reads");
        assert!(!h.audit, "and stores no audit frames");
        // Channels that send what they have and nothing more.
        assert_eq!(
            ClientFrame::decode(r#"{"type":"list_events","req":8}"#).unwrap(),
            ClientFrame::ListEvents {
                req: 8,
                source: None,
                limit: None
            }
        );
        let minimal =
            ClientFrame::decode(r#"{"type":"audit","tool":"get_event","outcome":"refused"}"#).unwrap();
        assert_eq!(
            minimal.encode(),
            r#"{"type":"audit","tool":"get_event","arguments":null,"outcome":"refused","detail":""}"#
        );
        // A newer peer's frame types and fields are ignored.
        assert_eq!(
            ClientFrame::decode(r#"{"type":"subscribe","x":1}"#).unwrap(),
            ClientFrame::Unknown
        );
        assert!(matches!(
            ServerFrame::decode(r#"{"type":"notice","id":"x","req":[]}"#).unwrap(),
            ServerFrame::Unknown
        ));
        assert!(matches!(
            ServerFrame::decode(r#"{"type":"pong","req":"not a number"}"#).unwrap(),
            ServerFrame::Pong
        ));
    }

    #[test]
    fn result_frames_carry_their_answer() {
        let answer = |text: &str| match ServerFrame::decode(text).unwrap() {
            ServerFrame::Result { req, answer } => (req, answer.map(Cow::into_owned)),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            answer(r#"{"type":"result","req":3,"ok":{"events":[]}}"#),
            (3, Ok(json!({"events": []})))
        );
        assert_eq!(
            answer(r#"{"type":"result","req":4,"error":"no event","kind":"refused"}"#).1,
            Err(ReadError::Refused("no event".into()))
        );
        assert_eq!(
            answer(r#"{"type":"result","req":6,"error":"x","kind":"new"}"#).1,
            Err(ReadError::Failed("x".into())),
            "an unknown kind is a failure"
        );
        assert_eq!(
            answer(r#"{"type":"result","req":7,"ok":{},"error":"x"}"#).1,
            Err(ReadError::Failed("x".into())),
            "an error wins"
        );
        assert_eq!(
            answer(r#"{"type":"result","req":8,"ok":null}"#).1,
            Err(ReadError::Failed("the gateway answered nothing".into()))
        );
    }

    #[test]
    fn malformed_frames_are_errors() {
        let frame_of = |text: &str| match ServerFrame::decode(text) {
            Err(DecodeError::Invalid { frame, .. }) => frame,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(frame_of("nope"), None);
        assert_eq!(frame_of(r#"{"id":1}"#), None, "no type");
        assert_eq!(frame_of(r#"{"type":5}"#), None);
        assert_eq!(frame_of(r#"{"type":"event","id":1}"#), Some("event"));
        assert_eq!(
            frame_of(r#"{"type":"event","id":1,"source":"s","notification":"x"}"#),
            Some("event")
        );
        assert_eq!(
            frame_of(r#"{"type":"event","id":-1,"source":"s","notification":{}}"#),
            Some("event")
        );
        assert_eq!(
            frame_of(r#"{"type":"event","id":1,"notification":{}}"#),
            Some("event")
        );
        assert_eq!(frame_of(r#"{"type":"result","ok":{}}"#), Some("result"));
        assert_eq!(frame_of(r#"{"type":"result","req":1,"error":5}"#), Some("result"));
        assert_eq!(frame_of(r#"{"type":"hello","protocol":1}"#), Some("hello"));
        let e = ServerFrame::decode(r#"{"type":"event","id":1}"#).unwrap_err();
        assert_eq!(e.to_string(), "`event` frame without `source`");

        for text in [
            r#"{"id":1}"#,
            r#"{"type":"ack"}"#,
            r#"{"type":"ack","id":"1"}"#,
            // A request without its number cannot be answered.
            r#"{"type":"get_event","id":"1"}"#,
            r#"{"type":"audit","outcome":"ok"}"#,
            "[",
        ] {
            assert!(
                matches!(ClientFrame::decode(text), Err(DecodeError::Invalid { .. })),
                "{text}"
            );
        }
        let big = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(MAX_CLIENT_FRAME));
        assert!(matches!(
            ClientFrame::decode(&big),
            Err(DecodeError::TooLarge {
                limit: MAX_CLIENT_FRAME,
                ..
            })
        ));
    }
}
