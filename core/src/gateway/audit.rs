//! Audit frames of a linked channel, which performs its actions itself: each frame is
//! admitted against its token's budget ([`AUDIT_BURST`], then [`AUDIT_PER_SECOND`], shared by
//! the token's connections), turned into an entry whose trusted fields the gateway decides
//! (who is the token, the event is resolved among its sources, every field bounded as in
//! local mode), and stored.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::link_protocol::{ClientFrame, AUDIT_BURST, AUDIT_PER_SECOND};
use crate::store::{AuditEntry, Store};
use crate::tools::{Tool, AUDIT_OUTCOMES};

/// How old an audit frame's `at_ms` may be (a call made while the link was down).
const AUDIT_MAX_AGE_MS: i64 = 24 * 3600 * 1000;
/// How far ahead of the gateway's clock an audit frame's `at_ms` may be (clock skew).
const AUDIT_MAX_SKEW_MS: i64 = 60 * 1000;

/// A token bucket: [`AUDIT_BURST`] at once, [`AUDIT_PER_SECOND`] after.
#[derive(Debug)]
pub(super) struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub(super) fn new(now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(AUDIT_BURST),
            at: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(AUDIT_PER_SECOND)).min(f64::from(AUDIT_BURST));
        self.at = self.at.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Turns a session's audit frames into entries the gateway trusts.
pub(super) struct Auditor {
    /// The token's name: who, whatever the frame says.
    pub(super) subscriber: String,
    /// The token's permissions.
    pub(super) permissions: Vec<String>,
    /// The token's budget, shared by its connections.
    pub(super) budget: Arc<Mutex<Bucket>>,
    /// Frames dropped over budget since the last one admitted.
    pub(super) dropped: u64,
}

impl Auditor {
    /// The entry to store for an `audit` frame, or `None` (over budget, or a frame the
    /// channel never sends). `now` and `now_ms` are the arrival time.
    pub(super) fn admit(&mut self, frame: ClientFrame, now: Instant, now_ms: i64) -> Option<AuditEntry> {
        let ClientFrame::Audit {
            tool,
            event_ref,
            arguments,
            outcome,
            detail,
            at_ms,
        } = frame
        else {
            return None;
        };
        if !self.budget.lock().expect("audit budget poisoned").take(now) {
            if self.dropped == 0 {
                tracing::warn!(
                    subscriber = %self.subscriber,
                    "audit frames arrive faster than {AUDIT_PER_SECOND}/s after a burst of {AUDIT_BURST}; dropping them"
                );
            }
            self.dropped += 1;
            return None;
        }
        if self.dropped > 0 {
            tracing::warn!(subscriber = %self.subscriber, dropped = self.dropped, "audit frames dropped over budget");
            self.dropped = 0;
        }
        let Some(known) = Tool::by_name(&tool) else {
            tracing::debug!(subscriber = %self.subscriber, "ignoring an audit frame for an unknown tool");
            return None;
        };
        if !AUDIT_OUTCOMES.contains(&outcome.as_str()) {
            tracing::debug!(subscriber = %self.subscriber, tool = known.name(), "ignoring an audit frame with an unknown outcome");
            return None;
        }
        if outcome != "refused" && !self.permissions.iter().any(|p| p == known.permission()) {
            tracing::debug!(
                subscriber = %self.subscriber, tool = known.name(),
                "ignoring an audit frame of a call this token does not grant (the channel refuses those)"
            );
            return None;
        }
        let at_ms = at_ms
            .filter(|t| (now_ms - AUDIT_MAX_AGE_MS..=now_ms + AUDIT_MAX_SKEW_MS).contains(t))
            .unwrap_or(now_ms);
        // The gateway's /metrics counts its sessions' calls too (outcome checked above).
        crate::metrics::tool_call(known.name(), &outcome);
        Some(crate::tools::audit_entry(
            &self.subscriber,
            known.name(),
            event_ref.as_deref(),
            &arguments,
            &outcome,
            &detail,
            at_ms,
        ))
    }
}

/// Stores a session's audit entries, attached to an event of the token's sources.
pub(super) struct AuditWriter {
    pub(super) store: Arc<dyn Store>,
    /// The token's sources: the only events an entry may be attached to.
    pub(super) sources: Vec<String>,
}

impl AuditWriter {
    /// Blocking: the store.
    pub(super) fn write(&self, mut entry: AuditEntry) {
        if let Some(r) = &entry.event_ref {
            entry.event_seq = crate::tools::resolve_event(self.store.as_ref(), &self.sources, r);
        }
        crate::tools::log_audit(&entry);
        if let Err(e) = self.store.record_audit(&entry) {
            tracing::error!(subscriber = %entry.subscriber, error = %e, "cannot store a linked channel's audit entry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::store_with;
    use super::*;
    use serde_json::{json, Value};
    use std::time::Duration;

    fn audit_frame(tool: &str, outcome: &str, at_ms: Option<i64>) -> ClientFrame {
        ClientFrame::Audit {
            tool: tool.into(),
            event_ref: Some("  d-1 ".into()),
            arguments: json!({"channel": "#c", "text": "t".repeat(300)}),
            outcome: outcome.into(),
            detail: "d".repeat(600),
            at_ms,
        }
    }

    #[test]
    fn audit_frames_parse_and_the_gateway_decides_who() {
        let f = ClientFrame::decode(
            r##"{"type":"audit","tool":"slack_post_message","event_ref":"d-1","arguments":{"channel":"#c"},
               "outcome":"ok","detail":"{}","at_ms":5,"subscriber":"mallory","event_seq":1}"##,
        )
        .unwrap();
        assert_eq!(
            f,
            ClientFrame::Audit {
                tool: "slack_post_message".into(),
                event_ref: Some("d-1".into()),
                arguments: json!({"channel": "#c"}),
                outcome: "ok".into(),
                detail: "{}".into(),
                at_ms: Some(5),
            },
            "a subscriber or event_seq in the frame is not even read"
        );
        let minimal =
            ClientFrame::decode(r#"{"type":"audit","tool":"get_event","outcome":"refused"}"#).unwrap();
        assert_eq!(
            minimal.encode(),
            r#"{"type":"audit","tool":"get_event","arguments":null,"outcome":"refused","detail":""}"#
        );
        assert!(ClientFrame::decode(r#"{"type":"audit","outcome":"ok"}"#).is_err());

        let t0 = Instant::now();
        let now_ms = 1_800_000_000_000;
        let mut a = Auditor {
            subscriber: "alice".into(),
            permissions: vec!["post-slack-message".into()],
            budget: Arc::new(Mutex::new(Bucket::new(t0))),
            dropped: 0,
        };
        let e = a
            .admit(
                audit_frame("slack_post_message", "ok", Some(now_ms - 1000)),
                t0,
                now_ms,
            )
            .unwrap();
        assert_eq!(e.subscriber, "alice");
        assert_eq!(e.tool, "slack_post_message");
        assert_eq!(e.event_ref.as_deref(), Some("d-1"));
        assert_eq!(
            e.event_seq, None,
            "resolved when stored, among the token's sources"
        );
        assert_eq!(e.at_ms, now_ms - 1000);
        assert_eq!(
            e.detail.chars().count(),
            crate::tools::AUDIT_DETAIL + 1,
            "local mode's caps"
        );
        let args: Value = serde_json::from_str(&e.arguments).unwrap();
        assert_eq!(args["text"].as_str().unwrap().chars().count(), 201);
        for bad in [Some(now_ms + 3_600_000), Some(0), None] {
            let e = a
                .admit(audit_frame("slack_post_message", "ok", bad), t0, now_ms)
                .unwrap();
            assert_eq!(e.at_ms, now_ms, "{bad:?}: the arrival time");
        }
        // Refused calls of any known tool are kept (the channel audits them); an action the
        // token does not grant cannot have succeeded or failed.
        assert!(a
            .admit(audit_frame("github_comment", "refused", None), t0, now_ms)
            .is_some());
        assert!(a
            .admit(audit_frame("github_comment", "ok", None), t0, now_ms)
            .is_none());
        assert!(a
            .admit(audit_frame("github_comment", "error", None), t0, now_ms)
            .is_none());
        assert!(a
            .admit(audit_frame("rm_rf", "refused", None), t0, now_ms)
            .is_none());
        assert!(a
            .admit(audit_frame("slack_post_message", "done", None), t0, now_ms)
            .is_none());
        assert!(a.admit(ClientFrame::Ping, t0, now_ms).is_none());
    }

    #[test]
    fn audit_frames_are_rate_limited_per_token() {
        let t0 = Instant::now();
        let budget = Arc::new(Mutex::new(Bucket::new(t0)));
        let mut a = Auditor {
            subscriber: "alice".into(),
            permissions: vec![],
            budget: budget.clone(),
            dropped: 0,
        };
        let mut admitted = 0;
        for _ in 0..300 {
            admitted += usize::from(
                a.admit(audit_frame("get_event", "refused", None), t0, 0)
                    .is_some(),
            );
        }
        assert_eq!(admitted, AUDIT_BURST as usize);
        assert_eq!(a.dropped, 300 - AUDIT_BURST as u64);
        // A new connection of the same token shares the budget.
        let mut b = Auditor {
            subscriber: "alice".into(),
            permissions: vec![],
            budget,
            dropped: 0,
        };
        assert!(b
            .admit(audit_frame("get_event", "refused", None), t0, 0)
            .is_none());
        let later = t0 + Duration::from_secs(3);
        let n = (0..10)
            .filter(|_| {
                b.admit(audit_frame("get_event", "refused", None), later, 0)
                    .is_some()
            })
            .count();
        assert_eq!(n, 3, "one per second after the burst");
        let much_later = t0 + Duration::from_secs(3600);
        let n = (0..300)
            .filter(|_| {
                b.admit(audit_frame("get_event", "refused", None), much_later, 0)
                    .is_some()
            })
            .count();
        assert_eq!(n, AUDIT_BURST as usize, "refilled up to the burst, no more");
    }

    #[test]
    fn audit_entries_are_stored_with_an_event_of_the_tokens_sources_only() {
        let (store, dir) = store_with(&[
            ("github", "gh-1", b"{}".to_vec()),
            ("ops", "ops-1", b"{}".to_vec()),
        ]);
        let w = AuditWriter {
            store: store.clone(),
            sources: vec!["github".into()],
        };
        let e =
            |r: &str| crate::tools::audit_entry("alice", "get_event", Some(r), &json!({}), "refused", "x", 1);
        w.write(e("gh-1"));
        w.write(e("ops-1"));
        w.write(e("evt_2"));
        let on_1 = store.audit_for(1).unwrap();
        assert_eq!(on_1.len(), 1);
        assert_eq!(
            (on_1[0].event_seq, on_1[0].subscriber.as_str()),
            (Some(1), "alice")
        );
        assert_eq!(
            store.audit_for(2).unwrap(),
            vec![],
            "another source's event: attached to none"
        );
        store.close(Duration::from_secs(1));
        let _ = std::fs::remove_dir_all(dir);
    }
}
