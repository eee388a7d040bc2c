//! The audit of tool calls: one entry per call, logged (target `hookwire::audit`) and stored
//! with the event it answered, locally or through the gateway link.

use serde_json::Value;

use super::reads::{cut, summarise};
use super::{AUDIT_ARGUMENTS, AUDIT_DETAIL, AUDIT_EVENT_REF};
use crate::store::{AuditEntry, Store};

/// Where a channel without a store (gateway mode) sends its audit entries: the gateway
/// link, which forwards them so the gateway stores them with the event. Best effort: never
/// blocks, never fails the call.
pub trait AuditSink: Send + Sync + 'static {
    /// Hands one entry over (already logged locally).
    fn send(&self, entry: &AuditEntry);
}

/// An audit entry with every field bounded the same way in both modes: `event_ref` trimmed
/// and cut to [`AUDIT_EVENT_REF`] characters, the arguments summarised (strings cut to 200
/// characters, arrays to 20 items) and at most [`AUDIT_ARGUMENTS`] bytes, `detail` cut to
/// [`AUDIT_DETAIL`] characters. `event_seq` is left for [`resolve_event`]. Cutting twice
/// changes nothing, so the gateway can bound again what a linked channel sends.
pub fn audit_entry(
    subscriber: &str,
    tool: &str,
    event_ref: Option<&str>,
    arguments: &Value,
    outcome: &str,
    detail: &str,
    at_ms: i64,
) -> AuditEntry {
    let mut arguments = summarise(arguments).to_string();
    if arguments.len() > AUDIT_ARGUMENTS {
        // Still JSON (a string cut like any other), so `get_event` shows it as a value.
        arguments = Value::String(cut(&arguments, 200)).to_string();
    }
    AuditEntry {
        at_ms,
        subscriber: subscriber.to_owned(),
        tool: tool.to_owned(),
        event_ref: event_ref.map(|s| cut(s.trim(), AUDIT_EVENT_REF)),
        event_seq: None,
        arguments,
        outcome: outcome.to_owned(),
        detail: cut(detail, AUDIT_DETAIL),
    }
}

/// The stored event an audit entry's `event_ref` names (store id, `evt_N` or delivery id),
/// when it is one of `sources`' (blocking: the store). Anything else, a store failure
/// included, is `None`: the entry is kept, attached to no event.
pub fn resolve_event(store: &dyn Store, sources: &[String], event_ref: &str) -> Option<u64> {
    store
        .get(event_ref)
        .ok()
        .flatten()
        .filter(|rec| sources.contains(&rec.stored.source))
        .map(|rec| rec.stored.seq)
}

/// Logs one audit entry at target `hookwire::audit`.
pub fn log_audit(entry: &AuditEntry) {
    tracing::info!(
        target: "hookwire::audit",
        by = %entry.subscriber,
        tool = %entry.tool,
        event = entry.event_ref.as_deref().unwrap_or("-"),
        event_seq = entry.event_seq,
        arguments = %entry.arguments,
        outcome = %entry.outcome,
        detail = %entry.detail,
        "tool call"
    );
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn audit_entries_are_bounded_and_bounding_twice_changes_nothing() {
        let args = json!({"channel": "#c", "text": "é".repeat(1000), "event_id": " d-1 "});
        let e = audit_entry(
            "alice",
            "slack_post_message",
            Some(&"r".repeat(300)),
            &args,
            "ok",
            &"x".repeat(900),
            7,
        );
        assert_eq!(
            e.event_ref.as_deref().unwrap().chars().count(),
            AUDIT_EVENT_REF + 1
        );
        assert_eq!(e.detail.chars().count(), AUDIT_DETAIL + 1);
        let a: Value = serde_json::from_str(&e.arguments).unwrap();
        assert_eq!(a["text"].as_str().unwrap().chars().count(), 201);
        assert_eq!((e.at_ms, e.event_seq), (7, None));
        let again = audit_entry(
            "alice",
            &e.tool,
            e.event_ref.as_deref(),
            &a,
            &e.outcome,
            &e.detail,
            e.at_ms,
        );
        assert_eq!(again, e, "what a linked channel sends is bounded the same again");
        // Many keys: the whole is bounded too, and still JSON.
        let wide: serde_json::Map<String, Value> = (0..2000).map(|i| (format!("k{i}"), json!("v"))).collect();
        let e = audit_entry("a", "get_event", None, &Value::Object(wide), "refused", "", 0);
        assert!(e.arguments.len() <= AUDIT_ARGUMENTS, "{}", e.arguments.len());
        let a: Value = serde_json::from_str(&e.arguments).unwrap();
        assert!(a.as_str().unwrap().starts_with("{\"k0\":\"v\""), "{a}");
        let again = audit_entry("a", "get_event", None, &a, "refused", "", 0);
        assert_eq!(again, e);
    }
}
