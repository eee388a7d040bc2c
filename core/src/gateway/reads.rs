//! Answering a linked channel's read requests (`get_event` / `list_events` frames) from the
//! store, for the token's sources only, with exactly the JSON of the local tools, in a
//! `result` frame of at most [`MAX_RESULT_FRAME`] bytes.

use serde_json::Value;

use crate::link_protocol::{ServerFrame, MAX_RESULT_FRAME};
use crate::tools::{ReadError, StoreReader, MAX_PAYLOAD};

/// The answer to a read request when the token lacks `read-events`.
const PERMISSION_DENIED: &str = "permission denied: this session's token does not grant `read-events`";

/// A read request of a linked channel (`get_event` / `list_events` frames).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ReadRequest {
    GetEvent {
        req: u64,
        id: String,
    },
    ListEvents {
        req: u64,
        source: Option<String>,
        limit: Option<u64>,
    },
}

impl ReadRequest {
    pub(super) fn req(&self) -> u64 {
        match self {
            ReadRequest::GetEvent { req, .. } | ReadRequest::ListEvents { req, .. } => *req,
        }
    }
}

/// The result frame refusing request `req` of a token without `read-events` (nothing read).
pub(super) fn permission_denied(req: u64) -> String {
    result_frame(req, Err(&ReadError::Refused(PERMISSION_DENIED.into())))
}

/// The result frame for one read request (blocking: the store), at most [`MAX_RESULT_FRAME`]
/// bytes.
pub(super) fn answer(reader: &StoreReader, r: ReadRequest) -> String {
    let too_large = |what: &str| {
        ReadError::Failed(format!(
            "{what} is too large to send through the gateway; read it on the gateway with `hookwire events show`"
        ))
    };
    match r {
        ReadRequest::GetEvent { req, id } => {
            let view = match reader.fetch_event(&id) {
                Ok(v) => v,
                Err(e) => return result_frame(req, Err(&e)),
            };
            let v = view.to_json(MAX_PAYLOAD);
            let text = result_frame(req, Ok(&v));
            if text.len() <= MAX_RESULT_FRAME {
                return text;
            }
            // Cut the payload to what surely fits: a byte is at most 6 once escaped.
            let payload = serde_json::to_string(&v["payload"]).map_or(0, |p| p.len());
            let rest = text.len().saturating_sub(payload) + 64;
            let text = result_frame(req, Ok(&view.to_json(MAX_RESULT_FRAME.saturating_sub(rest) / 6)));
            if text.len() <= MAX_RESULT_FRAME {
                text
            } else {
                result_frame(req, Err(&too_large(&format!("event `{}`", id.trim()))))
            }
        }
        ReadRequest::ListEvents { req, source, limit } => {
            let limit = limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
            let text = result_frame(
                req,
                reader.list_events_blocking(source.as_deref(), limit).as_ref(),
            );
            if text.len() <= MAX_RESULT_FRAME {
                text
            } else {
                result_frame(req, Err(&too_large("the list")))
            }
        }
    }
}

pub(super) fn result_frame(req: u64, r: Result<&Value, &ReadError>) -> String {
    ServerFrame::Result {
        req,
        answer: r.map(std::borrow::Cow::Borrowed).map_err(ReadError::clone),
    }
    .encode()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{answered, store_with};
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn result_frames_say_refused_or_failed() {
        let ok = json!({"events": []});
        assert_eq!(
            result_frame(4, Ok(&ok)),
            r#"{"type":"result","req":4,"ok":{"events":[]}}"#
        );
        assert_eq!(
            result_frame(5, Err(&ReadError::Refused("no".into()))),
            r#"{"type":"result","req":5,"error":"no","kind":"refused"}"#
        );
        assert_eq!(
            result_frame(6, Err(&ReadError::Failed("db".into()))),
            r#"{"type":"result","req":6,"error":"db","kind":"failed"}"#
        );
    }

    #[test]
    fn reads_see_only_the_tokens_sources_and_match_local_mode() {
        let (store, dir) = store_with(&[
            ("github", "gh-1", br#"{"a":1}"#.to_vec()),
            ("ops", "ops-1", b"{}".to_vec()),
        ]);
        let reader = StoreReader::new(store.clone(), vec!["github".into()]);
        let get = |id: &str| {
            answered(&answer(
                &reader,
                ReadRequest::GetEvent {
                    req: 1,
                    id: id.into(),
                },
            ))
        };
        let v = get("gh-1");
        assert_eq!(v["req"], 1);
        assert_eq!(
            v["ok"],
            reader.get_event_blocking("gh-1").unwrap(),
            "the same JSON as local mode"
        );
        assert_eq!(v["ok"]["payload"], json!({"a": 1}));
        assert_eq!(get("1")["ok"]["delivery_id"], "gh-1", "by store id");
        // Another source's event is not found, word for word like a missing one.
        let other = get("ops-1");
        let missing = get("nope");
        assert_eq!(other["kind"], "refused");
        assert!(other.get("ok").is_none());
        assert_eq!(other["error"], "no event `ops-1` among this session's sources");
        assert_eq!(missing["error"], "no event `nope` among this session's sources");
        assert_eq!(get("2")["error"], "no event `2` among this session's sources");

        let list = |source: Option<&str>, limit: Option<u64>| {
            answered(&answer(
                &reader,
                ReadRequest::ListEvents {
                    req: 2,
                    source: source.map(str::to_owned),
                    limit,
                },
            ))
        };
        let v = list(None, Some(u64::MAX));
        let events = v["ok"]["events"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{v}");
        assert_eq!(events[0]["delivery_id"], "gh-1");
        assert_eq!(v["ok"], reader.list_events_blocking(None, None).unwrap());
        let v = list(Some("ops"), None);
        assert_eq!(v["kind"], "refused", "{v}");
        assert!(v["error"]
            .as_str()
            .unwrap()
            .contains("not one of this session's sources"));
        store.close(Duration::from_secs(1));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_payload_too_large_for_a_frame_is_cut() {
        // Control bytes: six bytes each once escaped, so the whole payload cannot fit.
        let payload = vec![1u8; MAX_PAYLOAD - 1];
        let (store, dir) = store_with(&[("github", "big", payload)]);
        let reader = StoreReader::new(store.clone(), vec!["github".into()]);
        let local = reader.get_event_blocking("big").unwrap();
        assert_eq!(local["payload_truncated"], false);
        assert!(serde_json::to_string(&local).unwrap().len() > MAX_RESULT_FRAME);
        let text = answer(
            &reader,
            ReadRequest::GetEvent {
                req: 3,
                id: "big".into(),
            },
        );
        assert!(text.len() <= MAX_RESULT_FRAME, "{}", text.len());
        let v = answered(&text);
        assert_eq!(v["ok"]["payload_truncated"], true);
        assert_eq!(v["ok"]["payload_bytes"], MAX_PAYLOAD - 1);
        let cut = v["ok"]["payload"].as_str().unwrap().len();
        assert!(cut > MAX_RESULT_FRAME / 8 && cut < MAX_PAYLOAD - 1, "{cut}");
        store.close(Duration::from_secs(1));
        let _ = std::fs::remove_dir_all(dir);
    }
}
