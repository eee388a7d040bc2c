//! Storm control: a source's events that share a group key (a template such as
//! `{{body.alert.id}}`) within a window are let through up to `max_events`, and the rest are
//! folded into one digest event sent when the window closes ("12 more alert.triggered events
//! for group 42 in the last 60 s") that lists every folded delivery id and collapses identical
//! repeats. Nothing is silently lost: each folded event is named in its digest.
//!
//! Where the window is kept: in memory, for a store one process owns (SQLite). With a store
//! several gateway replicas share (`store.backend: nats`), the decision is the store's
//! ([`crate::sink::EventSink::storm_window`]): one revision-checked counter per group says
//! when the window began and admits only its first `max_events` across every replica. Each
//! replica still collects the events it folded and sends its own digest when that shared
//! window ends, so a window with folding on two replicas has two digests, each naming its
//! own folded events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use handlebars::Handlebars;
use serde::Serialize;
use serde_json::Value;

use crate::adapter::Identity;
use crate::event::{notification_line, Event};
use crate::sanitize;
use crate::sink::EventSink;
use crate::verify::timestamp::from_millis;

pub use crate::config::storm::StormSpec;

/// What storm control decided for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Deliver it now.
    Pass,
    /// Held for the group's digest.
    Folded,
}

/// A group's window as the store shared by every replica keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedWindow {
    /// When the group's current window began (ms since the epoch), by the clock of the
    /// replica that began it.
    pub start_ms: i64,
    /// Whether this event is one of the window's first `max_events`.
    pub admitted: bool,
}

struct Folded {
    delivery_id: String,
    event: String,
    summary: String,
}

struct Group {
    started: SystemTime,
    passed: usize,
    folded: Vec<Folded>,
}

/// A closed window with folded events: becomes one digest event.
struct Closed {
    source: usize,
    key: String,
    window: Duration,
    folded: Vec<Folded>,
}

/// Storm control for every source of a pipeline.
pub struct Storm {
    hb: Handlebars<'static>,
    specs: Vec<Option<StormSpec>>,
    groups: Mutex<HashMap<(usize, String), Group>>,
    /// Closed windows whose digest is not rendered yet.
    pending: Mutex<Vec<Closed>>,
    /// Digests the queue refused; tried again first (never dropped).
    unsent: Mutex<Vec<Event>>,
    /// Where windows shared across replicas are counted (the pipeline's sink).
    shared: Option<Arc<dyn EventSink>>,
    /// Makes each digest's delivery id unique: this process's random tag and a count, so
    /// two digests of one flush, or of two replicas in the same millisecond, are never
    /// taken for a vendor's repeat by the store's dedup.
    tag: u32,
    digests: AtomicU64,
}

#[derive(Serialize)]
struct KeyContext<'a> {
    body: &'a Value,
    event: String,
    r#type: &'a str,
    action: Option<&'a str>,
    source: &'a str,
}

impl Storm {
    /// Storm control over each source's optional spec (index = source index).
    pub fn new(specs: Vec<Option<StormSpec>>) -> Self {
        let mut hb = Handlebars::new();
        hb.register_escape_fn(handlebars::no_escape);
        for (i, spec) in specs.iter().enumerate() {
            if let Some(s) = spec {
                hb.register_template_string(&i.to_string(), &s.template)
                    .expect("checked when the config was loaded");
            }
        }
        Storm {
            hb,
            specs,
            groups: Mutex::new(HashMap::new()),
            pending: Mutex::new(Vec::new()),
            unsent: Mutex::new(Vec::new()),
            shared: None,
            tag: {
                let mut b = [0u8; 4];
                // A fixed tag only costs uniqueness across replicas, still kept by the time.
                let _ = getrandom::fill(&mut b);
                u32::from_be_bytes(b)
            },
            digests: AtomicU64::new(0),
        }
    }

    /// Counts windows through `sink` ([`EventSink::storm_window`]): a sink whose store
    /// replicas share keeps each window's count there; any other decides in memory.
    pub fn sharing(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.shared = Some(sink);
        self
    }

    /// Whether any source has storm control (then a flusher must run).
    pub fn active(&self) -> bool {
        self.specs.iter().any(Option::is_some)
    }

    /// Whether a source has storm control (its group template may read any field).
    pub fn covers(&self, source: usize) -> bool {
        self.specs.get(source).is_some_and(Option::is_some)
    }

    /// The group key of an event; `None` when the source has no storm control.
    pub fn key(&self, source: usize, source_name: &str, identity: &Identity, body: &Value) -> Option<String> {
        self.specs.get(source)?.as_ref()?;
        let ctx = KeyContext {
            body,
            event: identity.full_name(),
            r#type: &identity.event,
            action: identity.action.as_deref(),
            source: source_name,
        };
        Some(self.hb.render(&source.to_string(), &ctx).unwrap_or_else(|e| {
            tracing::warn!(source = %source_name, error = %e, "storm.group failed to render; grouping by event");
            identity.full_name()
        }))
    }

    /// Decides for one prepared event of group `key`.
    pub fn admit(&self, source: usize, key: String, event: &Event, now: SystemTime) -> Admit {
        let Some(spec) = self.specs.get(source).and_then(Option::as_ref) else {
            return Admit::Pass;
        };
        // Asked before the lock: a round trip to the store must not hold up other groups.
        let shared = self.shared.as_ref().and_then(|sink| {
            sink.storm_window(
                &format!("{}\n{key}", event.source),
                spec.window,
                spec.max_events,
                now,
            )
        });
        let mut groups = self.groups.lock().expect("storm state poisoned");
        let slot = (source, key);
        if let Some(w) = shared {
            let started = from_millis(w.start_ms);
            // The shared window moved on: this replica's part of the last one is due.
            if groups.get(&slot).is_some_and(|g| g.started != started) {
                let g = groups.remove(&slot).expect("present");
                self.close(slot.0, slot.1.clone(), spec.window, g);
            }
            let group = groups.entry(slot).or_insert_with(|| Group {
                started,
                passed: 0,
                folded: Vec::new(),
            });
            if w.admitted {
                group.passed += 1;
                return Admit::Pass;
            }
            group.folded.push(Folded {
                delivery_id: event.delivery_id.clone(),
                event: event.event.clone(),
                summary: summary(&event.line),
            });
            return Admit::Folded;
        }
        let expired = groups
            .get(&slot)
            .is_some_and(|g| now.duration_since(g.started).unwrap_or_default() >= spec.window);
        if expired {
            let g = groups.remove(&slot).expect("present");
            self.close(slot.0, slot.1.clone(), spec.window, g);
        }
        let group = groups.entry(slot).or_insert_with(|| Group {
            started: now,
            passed: 0,
            folded: Vec::new(),
        });
        if group.passed < spec.max_events {
            group.passed += 1;
            return Admit::Pass;
        }
        group.folded.push(Folded {
            delivery_id: event.delivery_id.clone(),
            event: event.event.clone(),
            summary: summary(&event.line),
        });
        Admit::Folded
    }

    fn close(&self, source: usize, key: String, window: Duration, group: Group) {
        if !group.folded.is_empty() {
            self.pending.lock().expect("storm state poisoned").push(Closed {
                source,
                key,
                window,
                folded: group.folded,
            });
        }
    }

    /// Closes every window that has ended and returns the digests to queue, oldest first.
    /// `names` maps a source index to its name; `max_bytes` is the digest's content budget.
    pub fn due(&self, now: SystemTime, names: &[String], max_bytes: usize) -> Vec<Event> {
        {
            let mut groups = self.groups.lock().expect("storm state poisoned");
            let ended: Vec<(usize, String)> = groups
                .iter()
                .filter(|((source, _), g)| {
                    let window = self.specs[*source].as_ref().map(|s| s.window).unwrap_or_default();
                    now.duration_since(g.started).unwrap_or_default() >= window
                })
                .map(|(k, _)| k.clone())
                .collect();
            for slot in ended {
                let g = groups.remove(&slot).expect("present");
                let window = self.specs[slot.0].as_ref().map(|s| s.window).unwrap_or_default();
                self.close(slot.0, slot.1, window, g);
            }
        }
        let closed = std::mem::take(&mut *self.pending.lock().expect("storm state poisoned"));
        let mut out = std::mem::take(&mut *self.unsent.lock().expect("storm state poisoned"));
        out.extend(closed.into_iter().map(|c| {
            let n = self.digests.fetch_add(1, Ordering::Relaxed);
            let id = format!(
                "digest-{}-{}-{:08x}{n}",
                names[c.source],
                crate::verify::timestamp::millis(now),
                self.tag
            );
            digest(&c, &names[c.source], id, now, max_bytes)
        }));
        out
    }

    /// Puts back digests the queue refused, to be tried again by the next [`Storm::due`].
    pub fn retry(&self, events: Vec<Event>) {
        self.unsent.lock().expect("storm state poisoned").extend(events);
    }
}

/// The first line of an event's content, for a digest.
fn summary(line: &[u8]) -> String {
    let v: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
    let content = v["params"]["content"].as_str().unwrap_or_default();
    let first = content.lines().next().unwrap_or_default();
    let mut s: String = first.chars().take(160).collect();
    if first.chars().count() > 160 {
        s.push('…');
    }
    s
}

fn digest(c: &Closed, source: &str, delivery_id: String, now: SystemTime, max_bytes: usize) -> Event {
    let n = c.folded.len();
    let mut events: Vec<&str> = c.folded.iter().map(|f| f.event.as_str()).collect();
    events.sort();
    events.dedup();
    let mut content = format!(
        "Storm control: {n} more {} event{} from {source} for group \"{}\" in the last {} s were folded into this digest \
(the first event of the group was delivered on its own).\nFolded delivery ids: {}\n",
        events.join(", "),
        if n == 1 { "" } else { "s" },
        c.key,
        c.window.as_secs(),
        c.folded.iter().map(|f| f.delivery_id.as_str()).collect::<Vec<_>>().join(", "),
    );
    // Identical summaries collapse into one line with a count.
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for f in &c.folded {
        match seen.iter_mut().find(|(s, _)| *s == f.summary) {
            Some((_, count)) => *count += 1,
            None => seen.push((&f.summary, 1)),
        }
    }
    content.push_str("What they said (first lines, identical ones counted):\n");
    let budget = max_bytes.saturating_sub(200);
    for (i, (s, count)) in seen.iter().enumerate() {
        let line = if *count > 1 {
            format!("- ×{count} {s}\n")
        } else {
            format!("- {s}\n")
        };
        if content.len() + line.len() > budget {
            content.push_str(&format!(
                "- ... {} more distinct lines not shown\n",
                seen.len() - i
            ));
            break;
        }
        content.push_str(&line);
    }
    let at = crate::verify::timestamp::millis(now);
    let mut meta = Vec::new();
    for (k, v) in [
        ("source_name", source.to_owned()),
        ("event", "digest".to_owned()),
        ("delivery_id", delivery_id.clone()),
        ("group", c.key.clone()),
        ("folded", n.to_string()),
    ] {
        if let Some(v) = sanitize::meta_value(&v) {
            meta.push((k.to_owned(), v));
        }
    }
    let content = sanitize::content(content.trim_end(), max_bytes);
    Event {
        source: source.to_owned(),
        event: "digest".into(),
        delivery_id,
        line: notification_line(&content, &meta),
        received_ms: at,
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, text: &str) -> Event {
        Event {
            source: "s".into(),
            event: "alert.triggered".into(),
            delivery_id: id.into(),
            line: notification_line(text, &[]),
            ..Event::default()
        }
    }

    fn storm(yaml: &str) -> Storm {
        Storm::new(vec![Some(
            StormSpec::from_yaml(&serde_norway::from_str(yaml).unwrap()).unwrap(),
        )])
    }

    #[test]
    fn max_events_pass_then_fold_until_the_window_closes() {
        let s = storm("{group: '{{body.m}}', window_secs: 60, max_events: 2}");
        let t0 = from_millis(1_000_000);
        let admit = |id: &str, at| s.admit(0, "g".into(), &event(id, "same"), at);
        assert_eq!(admit("1", t0), Admit::Pass);
        assert_eq!(admit("2", t0), Admit::Pass);
        assert_eq!(admit("3", t0), Admit::Folded);
        assert_eq!(admit("4", from_millis(1_059_000)), Admit::Folded);
        let names = ["s".to_owned()];
        assert!(
            s.due(from_millis(1_059_999), &names, 4096).is_empty(),
            "window still open"
        );
        let digests = s.due(from_millis(1_060_000), &names, 4096);
        assert_eq!(digests.len(), 1);
        let v: Value = serde_json::from_slice(&digests[0].line).unwrap();
        assert_eq!(v["params"]["meta"]["folded"], "2");
        let content = v["params"]["content"].as_str().unwrap();
        assert!(content.contains("Folded delivery ids: 3, 4\n"), "{content}");
        assert!(content.contains("- ×2 same"), "{content}");
        // A new window starts fresh.
        assert_eq!(admit("5", from_millis(1_060_001)), Admit::Pass);
    }

    #[test]
    fn a_refused_digest_is_kept_for_the_next_flush() {
        let s = storm("{window_secs: 1}");
        let t0 = from_millis(0);
        assert_eq!(s.admit(0, "g".into(), &event("1", "a"), t0), Admit::Pass);
        assert_eq!(s.admit(0, "g".into(), &event("2", "b"), t0), Admit::Folded);
        let names = ["s".to_owned()];
        let digests = s.due(from_millis(5_000), &names, 4096);
        assert_eq!(digests.len(), 1);
        s.retry(digests.clone());
        assert_eq!(s.due(from_millis(6_000), &names, 4096), digests);
    }

    #[test]
    fn digests_closed_together_have_distinct_delivery_ids() {
        let s = storm("{window_secs: 1}");
        let t0 = from_millis(0);
        for g in ["a", "b"] {
            assert_eq!(s.admit(0, g.into(), &event("1", "x"), t0), Admit::Pass);
            assert_eq!(s.admit(0, g.into(), &event("2", "y"), t0), Admit::Folded);
        }
        let digests = s.due(from_millis(5_000), &["s".to_owned()], 4096);
        assert_eq!(digests.len(), 2);
        assert_ne!(
            digests[0].delivery_id, digests[1].delivery_id,
            "the store's dedup would drop the second"
        );
    }

    #[test]
    fn bad_settings_are_config_errors() {
        let bad = |y: &str| {
            StormSpec::from_yaml(&serde_norway::from_str(y).unwrap())
                .unwrap_err()
                .0
        };
        assert_eq!(bad("{window_secs: 0}"), "window_secs");
        assert_eq!(bad("{max_events: 0}"), "max_events");
        assert_eq!(bad("{group: '{{body.x'}"), "group");
        assert_eq!(bad("{windw: 3}"), "");
    }
}
