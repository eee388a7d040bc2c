//! Prometheus metrics through the `metrics` facade: what the webhook path, the sessions and
//! the tools count, and the text `/metrics` serves.
//!
//! The recorder is installed once by the long-running commands ([`install`]); without it
//! every handle is a no-op, so tests and one-shot commands pay nothing. Per-source handles
//! are resolved once ([`SourceMetrics`]) so the request path never hashes a label set.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `hookwire_webhooks_total` | counter | `source`, `outcome` (see [`Outcome`]) |
//! | `hookwire_verify_seconds` | histogram | `source` |
//! | `hookwire_render_seconds` | histogram | `source` |
//! | `hookwire_commit_seconds` | histogram | `source` |
//! | `hookwire_store_backlog_events` | gauge | `subscriber` |
//! | `hookwire_store_oldest_unacked_age_seconds` | gauge | `subscriber` |
//! | `hookwire_sessions_connected` | gauge | (none): linked channels' connections and remote channels' (`/mcp`) open event streams |
//! | `hookwire_tool_calls_total` | counter | `tool`, `outcome` (`ok`, `refused`, `error`); on the gateway, its linked channels' calls as their audit arrives |
//! | `hookwire_config_reloads_total` | counter | `result` (`ok`, `failed`) |
//! | `hookwire_connections_refused_total` | counter | `cap` (`total`, `per_client`): a connection closed at accept because every connection in the way was busy |
//! | `hookwire_catchup_redeliveries_total` | counter | `source`: redeliveries of failed GitHub deliveries the catch-up asked for |

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::store::{Store, Subscription};

/// How a webhook request ended, as `hookwire_webhooks_total{outcome}` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Verified, stored and queued for the sessions (202).
    Accepted,
    /// Stored, and held by storm control for its group's digest (202).
    Folded,
    /// Kept out by the source's filter (202, never pushed).
    Filtered,
    /// A delivery id already accepted, or a signed timestamp outside the window (202 / 401).
    Replay,
    /// Acknowledged without delivery: a vendor ping or handshake, an unsubscribed source, a
    /// disabled channel (2xx).
    Acknowledged,
    /// Missing, malformed or wrong signature or credentials (401).
    BadSignature,
    /// Not JSON, not nameable, not POST, or the body could not be read (400/405).
    BadRequest,
    /// Over the source's body limit (413).
    TooLarge,
    /// The body did not arrive in time, or slower than `limits.min_body_bytes_per_sec` (408).
    Timeout,
    /// Too many requests in flight, the unverified-body budget spent, or the queue or store
    /// full (503 + Retry-After).
    Throttled,
    /// The sender's address is not in `allow_from` (403).
    Forbidden,
    /// The store failed or is shutting down (503 + Retry-After).
    Failed,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 12] = [
        Outcome::Accepted,
        Outcome::Folded,
        Outcome::Filtered,
        Outcome::Replay,
        Outcome::Acknowledged,
        Outcome::BadSignature,
        Outcome::BadRequest,
        Outcome::TooLarge,
        Outcome::Timeout,
        Outcome::Throttled,
        Outcome::Forbidden,
        Outcome::Failed,
    ];

    /// The `outcome` label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Folded => "folded",
            Outcome::Filtered => "filtered",
            Outcome::Replay => "replay",
            Outcome::Acknowledged => "acknowledged",
            Outcome::BadSignature => "bad_signature",
            Outcome::BadRequest => "bad_request",
            Outcome::TooLarge => "too_large",
            Outcome::Timeout => "timeout",
            Outcome::Throttled => "throttled",
            Outcome::Forbidden => "forbidden",
            Outcome::Failed => "failed",
        }
    }
}

/// One source's handles, resolved once.
pub struct SourceMetrics {
    outcomes: Vec<Counter>,
    verify: Histogram,
    render: Histogram,
    commit: Histogram,
}

impl SourceMetrics {
    /// Registers (or finds again, after a reload) the series of `source`.
    pub fn new(source: &str) -> Self {
        let outcomes = Outcome::ALL
            .iter()
            .map(|o| {
                metrics::counter!("hookwire_webhooks_total", "source" => source.to_owned(), "outcome" => o.label())
            })
            .collect();
        SourceMetrics {
            outcomes,
            verify: metrics::histogram!("hookwire_verify_seconds", "source" => source.to_owned()),
            render: metrics::histogram!("hookwire_render_seconds", "source" => source.to_owned()),
            commit: metrics::histogram!("hookwire_commit_seconds", "source" => source.to_owned()),
        }
    }

    /// Counts one request.
    pub fn count(&self, outcome: Outcome) {
        // `ALL` lists the variants in declaration order, so the discriminant is the index.
        self.outcomes[outcome as usize].increment(1);
    }

    /// Records a signature check.
    pub fn verified(&self, took: Duration) {
        self.verify.record(took.as_secs_f64());
    }

    /// Records a render (templates and sanitizing).
    pub fn rendered(&self, took: Duration) {
        self.render.record(took.as_secs_f64());
    }

    /// Records the wait for the store's commit.
    pub fn committed(&self, took: Duration) {
        self.commit.record(took.as_secs_f64());
    }
}

/// One counted webhook request, as the delivery console's live log shows it: never its body
/// or headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// When it was counted, Unix milliseconds.
    pub at_ms: i64,
    /// The source whose path it came to.
    pub source: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The delivery id, once the event was named (accepted, folded, repeated).
    pub delivery_id: Option<String>,
    /// Why it stopped, when the outcome alone does not say (a filter's reason).
    pub detail: Option<String>,
}

/// Counted requests kept for a slow subscriber before it starts losing them: ingest never
/// waits for one.
const OBSERVED_BACKLOG: usize = 256;

static OBSERVED: OnceLock<tokio::sync::broadcast::Sender<std::sync::Arc<Observed>>> = OnceLock::new();

fn observed_channel() -> &'static tokio::sync::broadcast::Sender<std::sync::Arc<Observed>> {
    OBSERVED.get_or_init(|| tokio::sync::broadcast::channel(OBSERVED_BACKLOG).0)
}

/// Publishes a counted request to [`observe`]rs; `record` runs only when there are some, so
/// without a console this costs one atomic load per request.
pub fn publish(record: impl FnOnce() -> Observed) {
    let tx = observed_channel();
    if tx.receiver_count() > 0 {
        let _ = tx.send(std::sync::Arc::new(record()));
    }
}

/// Every counted request from now on (bounded: a subscriber that falls behind loses the
/// oldest, and learns how many through `Lagged`).
pub fn observe() -> tokio::sync::broadcast::Receiver<std::sync::Arc<Observed>> {
    observed_channel().subscribe()
}

/// A session connected (`+1`) or ended (`-1`).
pub fn session_connected(delta: f64) {
    metrics::gauge!("hookwire_sessions_connected").increment(delta);
}

/// Counts a tool call: `ok`, `refused` (nothing was sent) or `error`.
pub fn tool_call(tool: &str, outcome: &str) {
    metrics::counter!("hookwire_tool_calls_total", "tool" => tool.to_owned(), "outcome" => outcome.to_owned())
        .increment(1);
}

/// Counts a configuration reload.
pub fn config_reload(ok: bool) {
    metrics::counter!("hookwire_config_reloads_total", "result" => if ok { "ok" } else { "failed" })
        .increment(1);
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

// Seconds: verification is microseconds, a commit up to a disk's fsync and beyond.
const BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Installs the process-wide Prometheus recorder (once; later calls do nothing), and a
/// thread that folds histogram samples every few seconds so memory stays flat between
/// scrapes. Call before building the pipeline so its handles are live.
pub fn install() {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        metrics::describe_counter!(
            "hookwire_webhooks_total",
            "Webhook requests by source and outcome."
        );
        metrics::describe_histogram!("hookwire_verify_seconds", "Signature verification time.");
        metrics::describe_histogram!(
            "hookwire_render_seconds",
            "Template rendering and sanitizing time."
        );
        metrics::describe_histogram!(
            "hookwire_commit_seconds",
            "Time from submit until the event is durable in the store."
        );
        metrics::describe_gauge!(
            "hookwire_sessions_connected",
            "Channel sessions connected to the gateway."
        );
        metrics::describe_counter!(
            "hookwire_tool_calls_total",
            "Reply and action tool calls by outcome."
        );
        metrics::describe_counter!("hookwire_config_reloads_total", "Configuration reloads (SIGHUP).");
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            });
        handle
    });
}

/// The `/metrics` page: every recorded series, then each subscriber's backlog read from
/// the store now (so a revoked token's series disappears instead of going stale).
pub fn render(store: Option<&dyn Store>, subscriptions: &[Subscription]) -> String {
    let mut out = HANDLE.get().map(|h| h.render()).unwrap_or_default();
    let Some(store) = store else { return out };
    let now = crate::verify::timestamp::millis(SystemTime::now());
    let mut depth = String::new();
    let mut age = String::new();
    for sub in subscriptions {
        let backlog = match store.backlog(sub) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(subscriber = %sub.name, error = %e, "cannot read the backlog for /metrics");
                continue;
            }
        };
        let name = escape(&sub.name);
        let _ = writeln!(
            depth,
            "hookwire_store_backlog_events{{subscriber=\"{name}\"}} {}",
            backlog.events
        );
        let oldest = backlog
            .oldest_ms
            .map(|t| (now - t).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        let _ = writeln!(
            age,
            "hookwire_store_oldest_unacked_age_seconds{{subscriber=\"{name}\"}} {oldest}"
        );
    }
    out.push_str("# HELP hookwire_store_backlog_events Stored events a subscriber has not acknowledged.\n");
    out.push_str("# TYPE hookwire_store_backlog_events gauge\n");
    out.push_str(&depth);
    out.push_str("# HELP hookwire_store_oldest_unacked_age_seconds Age of the oldest event a subscriber has not acknowledged (0: none).\n");
    out.push_str("# TYPE hookwire_store_oldest_unacked_age_seconds gauge\n");
    out.push_str(&age);
    out
}

/// Counts a connection closed at accept (see [`crate::http`]).
pub fn connection_refused(cap: &'static str) {
    metrics::counter!("hookwire_connections_refused_total", "cap" => cap).increment(1);
}

/// Counts redeliveries the catch-up asked GitHub for, of `source`'s hook.
pub fn catchup_redeliveries(source: &str, n: u64) {
    metrics::counter!("hookwire_catchup_redeliveries_total", "source" => source.to_owned()).increment(n);
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_and_prometheus_safe() {
        let labels: Vec<_> = Outcome::ALL.iter().map(|o| o.label()).collect();
        let mut unique = labels.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), labels.len());
        assert!(labels
            .iter()
            .all(|l| l.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
    }

    #[test]
    fn each_outcome_indexes_its_own_counter() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i, "{o:?}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
