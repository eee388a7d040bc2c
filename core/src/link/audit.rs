//! The tools' audit sink in gateway mode ([`LinkAudit`]): each tool call's entry is queued
//! for the link task, which sends it as an `audit` frame, fire and forget, to a gateway whose
//! `hello` says `audit`. The queue outlives connections: while the link is down it keeps the
//! newest [`AUDIT_QUEUE`] entries, sent first thing on the next connection.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::Notify;

use super::task::{send, Ended};
use super::Ws;
use crate::link_protocol::ClientFrame;
use crate::store::AuditEntry;
use crate::tools::AuditSink;

/// Audit entries kept for the gateway at most (while the link is down); beyond, the oldest
/// are dropped.
const AUDIT_QUEUE: usize = 256;

/// Audit entries waiting for the gateway (a connection that accepts them).
#[derive(Default)]
pub(super) struct AuditQueue {
    entries: Mutex<VecDeque<AuditEntry>>,
    /// Signalled when an entry is queued.
    pub(super) ready: Notify,
}

impl AuditQueue {
    /// Queues one entry, dropping the oldest beyond [`AUDIT_QUEUE`].
    pub(super) fn push(&self, entry: AuditEntry) {
        let mut q = self.entries.lock().expect("audit queue poisoned");
        q.push_back(entry);
        if q.len() > AUDIT_QUEUE {
            if let Some(old) = q.pop_front() {
                tracing::warn!(
                    tool = %old.tool, event = old.event_ref.as_deref().unwrap_or("-"),
                    "the gateway has been unreachable for {AUDIT_QUEUE} tool calls: dropping the oldest call's audit entry (it stays in this log)"
                );
            }
        }
        drop(q);
        self.ready.notify_one();
    }

    fn pop(&self) -> Option<AuditEntry> {
        self.entries.lock().expect("audit queue poisoned").pop_front()
    }

    /// Sends every queued entry on `ws` when the gateway stores them (`accepted`, its
    /// hello's `audit`), else drops them. An entry whose send failed is kept for the next
    /// connection.
    pub(super) async fn flush(&self, ws: &mut Ws, accepted: bool) -> Result<(), Ended> {
        while let Some(entry) = self.pop() {
            if !accepted {
                tracing::debug!(tool = %entry.tool, "this gateway does not store audit entries; kept in this log only");
                continue;
            }
            if let Err(e) = send(ws, &audit_frame(&entry)).await {
                self.entries
                    .lock()
                    .expect("audit queue poisoned")
                    .push_front(entry);
                return Err(e);
            }
        }
        Ok(())
    }
}

/// The `audit` frame of an entry (the gateway decides who and which event).
fn audit_frame(e: &AuditEntry) -> ClientFrame {
    ClientFrame::Audit {
        tool: e.tool.clone(),
        event_ref: e.event_ref.clone(),
        arguments: serde_json::from_str(&e.arguments).unwrap_or_else(|_| Value::String(e.arguments.clone())),
        outcome: e.outcome.clone(),
        detail: e.detail.clone(),
        at_ms: Some(e.at_ms),
    }
}

/// The tools' [`AuditSink`] in gateway mode: queues each entry for the link task, which sends
/// it to the gateway (see the module doc). Never blocks.
#[derive(Clone)]
pub struct LinkAudit {
    pub(super) queue: Arc<AuditQueue>,
}

impl std::fmt::Debug for LinkAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkAudit").finish_non_exhaustive()
    }
}

impl AuditSink for LinkAudit {
    fn send(&self, entry: &AuditEntry) {
        self.queue.push(entry.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_queue_keeps_the_newest_and_frames_carry_no_subscriber() {
        let q = AuditQueue::default();
        let e = |i: usize| {
            crate::tools::audit_entry(
                "alice",
                "slack_post_message",
                Some(&format!("d-{i}")),
                &serde_json::json!({"channel": "#c"}),
                "ok",
                "{}",
                i as i64,
            )
        };
        for i in 0..AUDIT_QUEUE + 10 {
            q.push(e(i));
        }
        let kept = q.entries.lock().unwrap().clone();
        assert_eq!(kept.len(), AUDIT_QUEUE);
        assert_eq!(kept.front().unwrap().at_ms, 10, "the oldest were dropped");
        assert_eq!(kept.back().unwrap().at_ms, (AUDIT_QUEUE + 9) as i64);
        let text = audit_frame(&e(3)).encode();
        assert_eq!(
            text,
            r##"{"type":"audit","tool":"slack_post_message","event_ref":"d-3","arguments":{"channel":"#c"},"outcome":"ok","detail":"{}","at_ms":3}"##
        );
    }
}
