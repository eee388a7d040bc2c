//! The read tools' view of the store: `get_event` and `list_events`, limited to the
//! session's sources, as the same JSON in local mode and through a gateway.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::{MAX_LIST, MAX_PAYLOAD};
use crate::store::{AuditEntry, ListQuery, Record, Store};

/// Why a read tool answered nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// Not found among the session's sources, not permitted, or bad arguments: nothing was
    /// read.
    Refused(String),
    /// The store or the gateway link failed (retrying may help).
    Failed(String),
}

impl ReadError {
    /// The message the tool error shows.
    pub fn message(&self) -> &str {
        match self {
            ReadError::Refused(m) | ReadError::Failed(m) => m,
        }
    }
}

/// Where `get_event` and `list_events` read. The results are the tools' JSON, the same
/// whatever the implementation: [`StoreReader`] (local mode, and the gateway answering a
/// linked channel) or `crate::link::LinkReader` (a channel linked to a gateway).
pub trait EventReader: Send + Sync + 'static {
    /// `get_event`: the event `id` (store id, `evt_N` or delivery id) in full.
    fn get_event(&self, id: String) -> BoxFuture<'static, Result<Value, ReadError>>;

    /// `list_events`: recent events, newest first, of `source` or of every source read.
    fn list_events(
        &self,
        source: Option<String>,
        limit: Option<usize>,
    ) -> BoxFuture<'static, Result<Value, ReadError>>;
}

/// The read tools over a store, limited to some sources: the session's in local mode, the
/// token's when the gateway answers a linked channel. The `*_blocking` calls hit the store:
/// run them off the async workers.
#[derive(Clone)]
pub struct StoreReader {
    store: Arc<dyn Store>,
    sources: Arc<[String]>,
}

/// One event as `get_event` shows it, read from the store.
pub struct EventView {
    record: Record,
    actions: Vec<AuditEntry>,
}

impl StoreReader {
    /// Reads `store`, seeing only events of `sources`.
    pub fn new(store: Arc<dyn Store>, sources: Vec<String>) -> StoreReader {
        StoreReader {
            store,
            sources: sources.into(),
        }
    }

    /// The event `id` (store id, `evt_N` or delivery id; trimmed) with the actions recorded
    /// for it. An event of another source is "not found", exactly like one that does not
    /// exist.
    pub fn fetch_event(&self, id: &str) -> Result<EventView, ReadError> {
        let id = id.trim();
        if id.is_empty() {
            return Err(ReadError::Refused(
                "pass the event's delivery_id or store id".into(),
            ));
        }
        let not_found = || ReadError::Refused(format!("no event `{id}` among this session's sources"));
        let record = self
            .store
            .get(id)
            .map_err(|e| ReadError::Failed(format!("the store failed: {e}")))?
            .ok_or_else(not_found)?;
        if !self.sources.contains(&record.stored.source) {
            return Err(not_found());
        }
        let actions = self
            .store
            .audit_for(record.stored.seq)
            .map_err(|e| ReadError::Failed(format!("the store failed: {e}")))?;
        Ok(EventView { record, actions })
    }

    /// `get_event`'s result (blocking).
    pub fn get_event_blocking(&self, id: &str) -> Result<Value, ReadError> {
        Ok(self.fetch_event(id)?.to_json(MAX_PAYLOAD))
    }

    /// `list_events`'s result (blocking): at most `limit` (default 20, at most
    /// [`MAX_LIST`]) events, newest first.
    pub fn list_events_blocking(
        &self,
        source: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Value, ReadError> {
        let limit = limit.unwrap_or(20).clamp(1, MAX_LIST);
        let sources: Vec<String> = match source {
            Some(s) if self.sources.iter().any(|x| x == s) => vec![s.to_owned()],
            Some(s) => {
                return Err(ReadError::Refused(format!(
                    "`{s}` is not one of this session's sources ({})",
                    self.sources.join(", ")
                )))
            }
            None => self.sources.to_vec(),
        };
        let mut events = Vec::new();
        for s in &sources {
            let q = ListQuery {
                source: Some(s.clone()),
                since_ms: None,
                limit,
            };
            events.extend(
                self.store
                    .list(&q)
                    .map_err(|e| ReadError::Failed(format!("the store failed: {e}")))?,
            );
        }
        events.sort_by_key(|e| std::cmp::Reverse(e.seq));
        events.truncate(limit);
        Ok(json!({"events": events.iter().map(|e| json!({
            "id": e.seq,
            "source": e.source,
            "event": e.event,
            "delivery_id": e.delivery_id,
            "received": rfc3339(e.received_ms),
            "folded": e.folded,
        })).collect::<Vec<_>>()}))
    }
}

impl EventView {
    /// The `get_event` result, the payload whole if it is JSON of at most `max_payload`
    /// bytes, else a string of its first `max_payload` bytes (`payload_truncated` says
    /// whether it was cut).
    pub fn to_json(&self, max_payload: usize) -> Value {
        let record = &self.record;
        let s = &record.stored;
        let notification: Value = serde_json::from_slice(&s.line).unwrap_or(Value::Null);
        let (payload, truncated) = payload_value(&record.payload, max_payload);
        let headers: serde_json::Map<String, Value> = record
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        json!({
            "id": s.seq,
            "source": s.source,
            "event": s.event,
            "delivery_id": s.delivery_id,
            "received": rfc3339(s.received_ms),
            "folded": s.folded,
            "replay_of": record.replay_of,
            "notification": notification.get("params").cloned().unwrap_or(notification),
            "headers": headers,
            "payload_bytes": record.payload.len(),
            "payload_truncated": truncated,
            "payload": payload,
            "actions": self.actions.iter().map(|a| json!({
                "at": rfc3339(a.at_ms),
                "by": a.subscriber,
                "tool": a.tool,
                "arguments": serde_json::from_str::<Value>(&a.arguments).unwrap_or(Value::String(a.arguments.clone())),
                "outcome": a.outcome,
                "detail": a.detail,
            })).collect::<Vec<_>>(),
        })
    }
}

impl EventReader for StoreReader {
    fn get_event(&self, id: String) -> BoxFuture<'static, Result<Value, ReadError>> {
        let me = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || me.get_event_blocking(&id))
                .await
                .map_err(|_| ReadError::Failed("the store read panicked".into()))?
        })
    }

    fn list_events(
        &self,
        source: Option<String>,
        limit: Option<usize>,
    ) -> BoxFuture<'static, Result<Value, ReadError>> {
        let me = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || me.list_events_blocking(source.as_deref(), limit))
                .await
                .map_err(|_| ReadError::Failed("the store read panicked".into()))?
        })
    }
}

/// The arguments with long strings cut, for the audit (Claude's arguments carry no
/// credentials: those live in hookwire's configuration only).
pub(super) fn summarise(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(cut(s, 200)),
        Value::Array(a) => Value::Array(a.iter().take(20).map(summarise).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), summarise(v))).collect()),
        other => other.clone(),
    }
}

pub(super) fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut c: String = s.chars().take(max).collect();
        c.push('…');
        c
    }
}

pub(super) fn payload_value(bytes: &[u8], max: usize) -> (Value, bool) {
    if bytes.len() <= max {
        if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
            return (v, false);
        }
    }
    let end = bytes.len().min(max);
    (
        Value::String(String::from_utf8_lossy(&bytes[..end]).into_owned()),
        end < bytes.len(),
    )
}

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(super) fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_cut_long_text() {
        let v = summarise(&json!({"text": "x".repeat(1000), "n": 3}));
        assert_eq!(v["text"].as_str().unwrap().chars().count(), 201);
        assert_eq!(v["n"], 3);
    }
}
