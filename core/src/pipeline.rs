//! The path of one webhook after routing, as plain functions: verify → parse → identify →
//! (subscribed?) → dedup → render → sanitize → submit. The HTTP layer ([`crate::ingress`]) only
//! maps the outcome to a status code.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::Value;

use crate::adapter::{Disposition, IdentifyError, Identity, Registry, Reply, Request};
use crate::config::{self, Config};
use crate::diagnostics::{ConfigErrors, Problems};
use crate::event::{notification_line, Event};
use crate::filter::Verdict;
use crate::render::fields::Need;
use crate::render::{EmbeddedTemplates, Facts, Templates};
use crate::replay::{Claim, MemoryReplayGuard, ReplayGuard};
use crate::sanitize;
use crate::sink::{EventSink, Receipt, SinkError};
use crate::storm::{Admit, Storm};
use crate::verify::VerifyError;
use tokio::sync::Semaphore;

/// What happened to an accepted request (all answered 2xx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Rendered and queued for the session.
    Queued {
        /// The delivery id.
        delivery_id: String,
        /// The body the vendor expects back, if any (else 202).
        reply: Option<Reply>,
    },
    /// A vendor housekeeping event (GitHub `ping`): acknowledged, never delivered.
    Acknowledged,
    /// A vendor handshake (Slack's challenge, Discord's PING): answered with this body.
    Replied(Reply),
    /// A delivery id already accepted within the dedup window: acknowledged, not delivered
    /// again.
    Duplicate {
        /// The repeated delivery id.
        delivery_id: String,
    },
    /// Held by storm control: it will be named in its group's digest.
    Folded {
        /// The folded delivery id.
        delivery_id: String,
    },
    /// The source's `filter` let it through no further: accepted, counted, never pushed.
    Filtered {
        /// Why.
        reason: String,
    },
    /// The source is not in `channel.sources`: accepted, never pushed.
    NotSubscribed,
    /// `channel.enabled` is false: accepted, never pushed.
    ChannelDisabled,
}

/// Why a request was refused. Each maps to one HTTP status in `ingress`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// Bad or missing signature or credentials (401). Never reaches a session.
    #[error("verification failed: {0}")]
    Verify(#[from] VerifyError),
    /// The verified body is not JSON (400).
    #[error("body is not valid JSON: {0}")]
    BadJson(String),
    /// The adapter could not name the event (400).
    #[error("cannot identify the event: {0}")]
    Identify(#[from] IdentifyError),
    /// The queue cannot take it (503 + Retry-After).
    #[error("cannot queue the event: {0}")]
    Sink(#[from] SinkError),
    /// The source already has `limits.max_concurrent_requests` requests being processed
    /// (503 + Retry-After).
    #[error("too many requests of this source at once")]
    Busy,
}

/// Everything the request path needs, built once at start-up.
pub struct Pipeline {
    config: Config,
    templates: Templates,
    routes: HashMap<String, usize>,
    /// Per source: the payload fields its adapter and templates read.
    needs: Vec<Need>,
    sink: Arc<dyn EventSink>,
    replay: Arc<dyn ReplayGuard>,
    storm: Storm,
    /// Per source: its metric handles.
    metrics: Vec<crate::metrics::SourceMetrics>,
    /// Per source: its place on the pool, and the headers its scheme reads as credentials.
    lanes: Vec<Lane>,
    /// Per source: whether its events are kept for sessions at all (decided once, by mode).
    kept: Vec<bool>,
}

/// Which sources' events a pipeline keeps for sessions: decided once, by the mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Local mode: the sources `channel.sources` lists; the others are answered and dropped.
    ChannelSources,
    /// The gateway: every webhook source (each session's token decides what it receives);
    /// schedules only when `channel.sources` lists them, as they run on this machine.
    Every,
}

/// One source's share of the work: requests it may have in progress, threads of the pool it
/// may hold, and the headers it never keeps.
struct Lane {
    in_flight: Arc<Semaphore>,
    share: Arc<Semaphore>,
    withheld: Vec<String>,
    /// Whether a small body's work is short and bounded, so it runs where it was read: the
    /// source's templates are the shipped ones (linear in the payload), it has no filter and
    /// no storm control (a user's expression; a JetStream store round trip), and its scheme
    /// fetches no keys (SNS and OIDC block on the network).
    inline: bool,
}

/// Bodies up to this size of an [`Lane::inline`] source are verified, parsed and rendered on
/// the async worker that read them: tens of microseconds of work, where handing it to a pool
/// thread and back cost a quarter of an event's CPU (pinned, 27 of 103 µs). Anything larger,
/// or of another source, goes to the pool, whose threads a slow template may hold.
const INLINE_BODY_BYTES: usize = 64 * 1024;

/// Pool threads one source may hold at once: enough for every core, and no more, so a
/// source whose payloads make its templates slow leaves the others theirs.
fn pool_share() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).max(2)
}

/// One request as the pipeline receives it from ingress.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The raw body, shared: the stored event holds it without a copy.
    pub body: &'a Bytes,
    /// The HTTP method.
    pub method: &'a str,
    /// The query string as received (no `?`), appended to the source's `public_url`.
    pub query: Option<&'a str>,
    /// Arrival time.
    pub now: SystemTime,
}

impl<'a> Incoming<'a> {
    /// A POST with no query, arriving now: what tests and `hookwire render` need.
    pub fn post(headers: &'a HeaderMap, body: &'a Bytes) -> Self {
        Incoming {
            headers,
            body,
            method: "POST",
            query: None,
            now: SystemTime::now(),
        }
    }
}

/// A form body as JSON: an object of its fields, or, when its only field is `payload` holding
/// a JSON object (Slack interactivity, GitHub's form content type), that object.
fn form_value(body: &[u8]) -> Value {
    let mut map = serde_json::Map::new();
    for (k, v) in form_urlencoded::parse(body) {
        map.entry(k.into_owned()).or_insert(Value::String(v.into_owned()));
    }
    if map.len() == 1 {
        if let Some(Value::String(p)) = map.get("payload") {
            if let Ok(v @ Value::Object(_)) = serde_json::from_str(p) {
                return v;
            }
        }
    }
    Value::Object(map)
}

/// Loads the config and compiles the templates its sources use (every override file too),
/// reporting all problems of both at once.
pub fn load(
    path: &Path,
    registry: &Registry,
    embedded: EmbeddedTemplates,
) -> Result<(Config, Templates), ConfigErrors> {
    let config = config::load(path, registry)?;
    let templates = compile(path, &TemplateFolders::of(&config), embedded)?;
    Ok((config, templates))
}

/// What [`compile`] needs of a config, owned, so the templates can compile on another thread
/// while the store opens (most of a local channel's start-up).
#[derive(Debug, Clone)]
pub struct TemplateFolders {
    used: Vec<String>,
    overrides: Option<std::path::PathBuf>,
}

impl TemplateFolders {
    /// The template folders `config`'s sources use, and its `templates_dir`.
    pub fn of(config: &Config) -> Self {
        TemplateFolders {
            used: config.sources.iter().map(|s| s.templates.clone()).collect(),
            overrides: config.templates_dir.clone(),
        }
    }
}

/// Compiles the built-in templates `folders` use, then every file of its `templates_dir`;
/// problems name the template file and line, under the config at `path`.
pub fn compile(
    path: &Path,
    folders: &TemplateFolders,
    embedded: EmbeddedTemplates,
) -> Result<Templates, ConfigErrors> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut p = Problems::new(path, &text);
    let used = crate::render::used_by(embedded, folders.used.iter().map(String::as_str));
    let templates = Templates::load(&used, folders.overrides.as_deref(), &mut p);
    p.finish()?;
    Ok(templates)
}

impl Pipeline {
    /// Assembles the pipeline over a loaded config, its templates and a sink, with an
    /// in-memory replay guard sized by the config's limits.
    pub fn new(mut config: Config, templates: Templates, sink: Arc<dyn EventSink>, keep: Keep) -> Self {
        let kept = config
            .sources
            .iter()
            .map(|s| match keep {
                Keep::Every if s.schedule.is_none() => true,
                _ => config.channel.sources.contains(&s.name),
            })
            .collect();
        let storm =
            Storm::new(config.sources.iter_mut().map(|s| s.storm.take()).collect()).sharing(sink.clone());
        let replay = Arc::new(MemoryReplayGuard::new(
            Duration::from_secs(config.limits.dedup_window_secs),
            config.limits.dedup_capacity,
        ));
        let routes = config
            .sources
            .iter()
            .enumerate()
            .filter(|(_, s)| s.schedule.is_none())
            .map(|(i, s)| (s.path.clone(), i))
            .collect();
        let needs = config
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| match s.adapter.identity_fields() {
                // A filter condition may read any field.
                _ if s.filter.as_ref().is_some_and(|f| f.reads_body()) => Need::All,
                // So may a storm group key.
                _ if storm.covers(i) => Need::All,
                Some(fields) => {
                    let mut need = templates.need_for_type(&s.templates);
                    fields.iter().for_each(|f| need.add_dotted(f));
                    need.build()
                }
                None => Need::All,
            })
            .inspect(|need| tracing::debug!(?need, "payload fields read"))
            .collect();
        let lanes = config
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| Lane {
                in_flight: Arc::new(Semaphore::new(config.limits.max_concurrent_requests)),
                share: Arc::new(Semaphore::new(pool_share())),
                withheld: s.adapter.verifier().credential_headers(),
                inline: !s.adapter.verifier().keyless()
                    && s.filter.is_none()
                    && !storm.covers(i)
                    && templates.shipped(&s.templates),
            })
            .collect();
        Pipeline {
            templates,
            routes,
            needs,
            sink,
            replay,
            lanes,
            kept,
            metrics: config
                .sources
                .iter()
                .map(|s| crate::metrics::SourceMetrics::new(&s.name))
                .collect(),
            storm,
            config,
        }
    }

    /// Replaces the replay guard (the durable store provides one that survives restarts).
    pub fn with_replay(mut self, replay: Arc<dyn ReplayGuard>) -> Self {
        self.replay = replay;
        self
    }

    /// Re-claims the delivery ids the store accepted within the dedup window, so a vendor's
    /// retry of something acknowledged before a restart is still recognised as a repeat.
    pub fn seed_replay(
        &self,
        store: &dyn crate::store::Store,
        now: SystemTime,
    ) -> Result<usize, crate::store::StoreError> {
        let window = Duration::from_secs(self.config.limits.dedup_window_secs);
        let since =
            crate::verify::timestamp::millis(now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH));
        let seen = store.recent_deliveries(since)?;
        for (source, id, signed) in &seen {
            self.replay.claim(source, id, now);
            if let Some(key) = signed {
                self.replay.claim(source, key, now);
            }
        }
        Ok(seen.len())
    }

    /// A source's metric handles.
    pub fn metrics(&self, source: usize) -> &crate::metrics::SourceMetrics {
        &self.metrics[source]
    }

    /// The replay guard, to carry over into a reloaded pipeline.
    pub fn replay_guard(&self) -> Arc<dyn ReplayGuard> {
        self.replay.clone()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The source that owns a URL path.
    pub fn route(&self, path: &str) -> Option<usize> {
        self.routes.get(path).copied()
    }

    /// What can be decided from a request's headers alone, before its body is read: the
    /// source's scheme finds its signature or token missing or malformed (or, for a token,
    /// wrong). A request refused here is answered 401 and its body never read.
    pub fn precheck(
        &self,
        source: usize,
        headers: &HeaderMap,
        method: &str,
        query: Option<&str>,
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let url = self.public_url(source, query);
        let req = Request {
            headers,
            body: &[],
            method,
            url: url.as_deref(),
            now,
        };
        self.config.sources[source].adapter.verifier().precheck(&req)
    }

    /// One request through every step after routing up to the commit: the source's request
    /// count is taken first (over its `limits.max_concurrent_requests`:
    /// [`IngestError::Busy`]); then the CPU work runs, here for a small body of an inline
    /// source ([`INLINE_BODY_BYTES`]), else on a blocking thread under the source's pool share
    /// (no async worker waits on a template that may be slow); then the commit is awaited.
    /// `Ok` means the vendor may hear 2xx: the event is durable. A commit that fails releases
    /// the delivery's dedup claims, so the vendor's retry is delivered.
    pub async fn ingest(
        self: Arc<Self>,
        source: usize,
        incoming: crate::ingress::OwnedIncoming,
    ) -> Result<Outcome, IngestError> {
        let lane = &self.lanes[source];
        let Ok(_request) = lane.in_flight.clone().try_acquire_owned() else {
            return Err(IngestError::Busy);
        };
        let (outcome, receipt, claims) = if lane.inline && incoming.body.len() <= INLINE_BODY_BYTES {
            // As on the pool, a bug that panics answers 503 (the vendor retries) instead of
            // dropping the connection.
            let work = std::panic::AssertUnwindSafe(|| self.ingest_inner(source, &incoming.view()));
            match std::panic::catch_unwind(work) {
                Ok(result) => result?,
                Err(_) => {
                    tracing::error!("the pipeline's work for a request panicked");
                    return Err(IngestError::Sink(SinkError::Failed));
                }
            }
        } else {
            let share = lane
                .share
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| IngestError::Busy)?;
            let span = tracing::Span::current();
            let this = self.clone();
            let work = tokio::task::spawn_blocking(move || {
                let _share = share;
                span.in_scope(|| this.ingest_inner(source, &incoming.view()))
            });
            match work.await {
                Ok(result) => result?,
                Err(e) => {
                    tracing::error!(error = %e, "the pipeline's work for a request failed");
                    return Err(IngestError::Sink(SinkError::Failed));
                }
            }
        };
        let Some(receipt) = receipt else {
            return Ok(outcome);
        };
        let started = std::time::Instant::now();
        if let Err(e) = receipt.wait().await {
            self.release(source, &claims);
            return Err(e.into());
        }
        self.metrics[source].committed(started.elapsed());
        Ok(outcome)
    }

    /// Forgets the dedup claims of a delivery whose commit failed.
    fn release(&self, source: usize, claims: &Claims) {
        let name = &self.config.sources[source].name;
        for key in claims.iter() {
            self.replay.release(name, key);
        }
    }

    /// Every step after routing up to the sink: the outcome, the commit to wait for (when
    /// something was submitted) and the dedup claims taken. Runs on a pool thread, or inline
    /// (see [`Pipeline::ingest`]).
    fn ingest_inner(
        &self,
        source: usize,
        incoming: &Incoming<'_>,
    ) -> Result<(Outcome, Option<Receipt>, Claims), IngestError> {
        let src = &self.config.sources[source];
        let url = self.public_url(source, incoming.query);
        let req = self.request(incoming, url.as_deref());
        let started = std::time::Instant::now();
        let verified = src.adapter.verifier().verify(&req);
        self.metrics[source].verified(started.elapsed());
        let verified = verified?;
        let (parsed, whole, identity) = match self.identify(source, &req)? {
            Named::Deliver(parsed, whole, identity) => (parsed, whole, identity),
            Named::Acknowledge => return Ok((Outcome::Acknowledged, None, Claims::default())),
            Named::Reply(reply) => return Ok((Outcome::Replied(reply), None, Claims::default())),
        };
        // The ingress span (`webhook`) names the event from here on.
        let span = tracing::Span::current();
        span.record("event", identity.event.as_str());
        span.record("delivery_id", identity.delivery_id.as_str());
        let budget = Duration::from_millis(self.config.limits.render_budget_ms);
        if let Verdict::Blocked(reason) =
            crate::budget::run(budget, || self.filter(source, &identity, &parsed))
        {
            return Ok((Outcome::Filtered { reason }, None, Claims::default()));
        }
        if !self.config.channel.enabled {
            return Ok((Outcome::ChannelDisabled, None, Claims::default()));
        }
        if !self.kept[source] {
            return Ok((Outcome::NotSubscribed, None, Claims::default()));
        }
        let delivery_id = identity.delivery_id.clone();
        let claims = match self.claim(&src.name, &delivery_id, verified.fingerprint, incoming.now) {
            Some(claims) => claims,
            None => return Ok((Outcome::Duplicate { delivery_id }, None, Claims::default())),
        };
        let group = self.storm.key(source, &src.name, &identity, &parsed);
        let started = std::time::Instant::now();
        let mut event = self.prepare(source, &identity, parsed, whole, incoming);
        event.signed_key = claims.signed.clone();
        self.metrics[source].rendered(started.elapsed());
        let mut outcome = Outcome::Queued {
            delivery_id: delivery_id.clone(),
            reply: identity.reply,
        };
        if let Some(group) = group {
            if self.storm.admit(source, group, &event, incoming.now) == Admit::Folded {
                // Stored all the same: the digest names it and it stays retrievable by id.
                event.folded = true;
                outcome = Outcome::Folded {
                    delivery_id: delivery_id.clone(),
                };
            }
        }
        match self.sink.submit(event) {
            Ok(receipt) => Ok((outcome, Some(receipt), claims)),
            Err(e) => {
                // Not queued, so not accepted: the vendor's retry must be delivered.
                self.release(source, &claims);
                Err(e.into())
            }
        }
    }

    /// Claims a delivery for dedup: its id, and the fingerprint of what was signed. A
    /// vendor's delivery id often travels in a header the signature does not cover (GitHub's
    /// `X-GitHub-Delivery`), so the same signed bytes under a new id are a repeat too. `None`
    /// when either is a repeat (nothing stays claimed).
    fn claim(
        &self,
        source: &str,
        delivery_id: &str,
        fingerprint: Option<[u8; 16]>,
        now: SystemTime,
    ) -> Option<Claims> {
        if self.replay.claim(source, delivery_id, now) == Claim::Repeat {
            return None;
        }
        let signed = fingerprint.map(|f| format!("{SIGNED_PREFIX}{}", hex::encode(f)));
        if let Some(key) = &signed {
            if self.replay.claim(source, key, now) == Claim::Repeat {
                self.replay.release(source, delivery_id);
                return None;
            }
        }
        Some(Claims {
            delivery_id: delivery_id.to_owned(),
            signed,
        })
    }

    /// The source's filter verdict for an identified event.
    fn filter(&self, source: usize, identity: &Identity, body: &Value) -> Verdict {
        let src = &self.config.sources[source];
        match &src.filter {
            Some(f) => f.check(&src.name, identity, body),
            None => Verdict::Pass,
        }
    }

    /// What the source's filter says of a payload (not verified): for `hookwire render`.
    /// `None` when the event is acknowledged or answered without delivery.
    pub fn filter_unverified(
        &self,
        source: usize,
        incoming: &Incoming<'_>,
    ) -> Result<Option<Verdict>, IngestError> {
        let req = self.request(incoming, None);
        Ok(match self.identify(source, &req)? {
            Named::Deliver(parsed, _, identity) => Some(self.filter(source, &identity, &parsed)),
            Named::Acknowledge | Named::Reply(_) => None,
        })
    }

    /// Whether any source has storm control, so [`Pipeline::flush_storms`] must run.
    pub fn has_storm_control(&self) -> bool {
        self.storm.active()
    }

    /// Queues the digests of storm-control windows that have closed; returns how many. A
    /// digest the queue refuses is kept and tried again on the next call.
    pub fn flush_storms(&self, now: SystemTime) -> usize {
        let names: Vec<String> = self.config.sources.iter().map(|s| s.name.clone()).collect();
        let mut due = self
            .storm
            .due(now, &names, self.config.limits.max_content_bytes)
            .into_iter();
        let mut sent = 0;
        while let Some(digest) = due.next() {
            // A clone, so a digest the queue refuses is kept: it is all that names its events.
            match self.sink.submit(digest.clone()) {
                // Not awaited: nobody is waiting for a 2xx, and a failed commit is logged.
                Ok(_receipt) => sent += 1,
                Err(SinkError::Full) => {
                    tracing::warn!("queue full; storm digests wait for the next flush");
                    self.storm.retry(std::iter::once(digest).chain(due).collect());
                    break;
                }
                Err(SinkError::Closed | SinkError::Failed) => break,
            }
        }
        sent
    }

    /// Whether this process runs the scheduled job `run` ([`EventSink::claim_run`]).
    /// Blocking.
    pub fn claim_run(&self, run: &str) -> bool {
        self.sink.claim_run(run)
    }

    /// Submits one run of a schedule: `payload` is what its template sees as `body`.
    pub fn ingest_scheduled(
        &self,
        source: usize,
        payload: Value,
        delivery_id: &str,
        now: SystemTime,
    ) -> Result<(Outcome, Receipt), IngestError> {
        if !self.config.channel.enabled {
            return Ok((Outcome::ChannelDisabled, Receipt::done()));
        }
        if !self.kept[source] {
            return Ok((Outcome::NotSubscribed, Receipt::done()));
        }
        let identity = Identity {
            event: "schedule".into(),
            action: None,
            delivery_id: delivery_id.into(),
            disposition: Disposition::Deliver,
            reply: None,
            meta: Vec::new(),
        };
        let raw = Bytes::from(serde_json::to_vec(&payload).unwrap_or_default());
        let no_headers = HeaderMap::new();
        let incoming = Incoming {
            headers: &no_headers,
            body: &raw,
            method: "",
            query: None,
            now,
        };
        let event = self.prepare(source, &identity, payload, true, &incoming);
        let receipt = self.sink.submit(event)?;
        Ok((
            Outcome::Queued {
                delivery_id: delivery_id.into(),
                reply: None,
            },
            receipt,
        ))
    }

    /// The URL the vendor signed: the source's `public_url` plus the query as received.
    pub fn public_url(&self, source: usize, query: Option<&str>) -> Option<String> {
        let base = self.config.sources[source].public_url.as_deref()?;
        Some(match query {
            Some(q) => format!("{base}?{q}"),
            None => base.to_owned(),
        })
    }

    fn request<'a>(&self, incoming: &Incoming<'a>, url: Option<&'a str>) -> Request<'a> {
        Request {
            headers: incoming.headers,
            body: incoming.body,
            method: incoming.method,
            url,
            now: incoming.now,
        }
    }

    /// The templates in force (the console names the one an event renders with).
    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    /// The index of a source by name.
    pub fn source_index(&self, name: &str) -> Option<usize> {
        self.config.sources.iter().position(|s| s.name == name)
    }

    /// Identifies, renders and sanitises a payload without verifying it: what `hookwire
    /// render` prints while a template is being written. `None` for an event that is
    /// acknowledged or answered without delivery (GitHub's `ping`, Slack's challenge).
    pub fn render_unverified(
        &self,
        source: usize,
        incoming: &Incoming<'_>,
    ) -> Result<Option<Event>, IngestError> {
        let req = self.request(incoming, None);
        Ok(match self.identify(source, &req)? {
            Named::Deliver(parsed, whole, identity) => {
                Some(self.prepare(source, &identity, parsed, whole, incoming))
            }
            Named::Acknowledge | Named::Reply(_) => None,
        })
    }

    /// Parses what the source reads and names the event.
    fn identify(&self, source: usize, req: &Request<'_>) -> Result<Named, IngestError> {
        let (parsed, whole) = if req.is_form() {
            (form_value(req.body), true)
        } else {
            let need = &self.needs[source];
            let parsed = need
                .parse(req.body)
                .map_err(|e| IngestError::BadJson(e.to_string()))?;
            (parsed, matches!(need, Need::All))
        };
        let identity = self.config.sources[source].adapter.identify(req, &parsed)?;
        Ok(match identity.disposition {
            Disposition::Deliver => Named::Deliver(parsed, whole, identity),
            Disposition::Acknowledge => Named::Acknowledge,
            Disposition::Reply(ref r) => Named::Reply(r.clone()),
        })
    }

    /// Renders and sanitises an identified event into its notification line. `parsed` holds
    /// what the source's own templates read (see [`Need`]); the full payload is parsed from
    /// the raw body only when another template is used or a render fails. A template that fails at
    /// run time falls back to the next candidate, then to a plain summary: an accepted event
    /// is never dropped for a template bug.
    pub fn prepare(
        &self,
        source: usize,
        identity: &Identity,
        parsed: Value,
        whole: bool,
        incoming: &Incoming<'_>,
    ) -> Event {
        let (raw, now) = (incoming.body, incoming.now);
        let src = &self.config.sources[source];
        let received_at = humantime::format_rfc3339_seconds(now).to_string();
        let event_name = identity.full_name();
        let facts = Facts {
            source: &src.name,
            type_name: &src.templates,
            identity,
            event_name: &event_name,
            received_at: &received_at,
            headers: Value::Object(
                src.headers
                    .iter()
                    .filter_map(|h| {
                        let v = incoming.headers.get(h.as_str())?.to_str().ok()?;
                        Some((h.clone(), Value::String(v.to_owned())))
                    })
                    .collect(),
            ),
        };
        let mut whole = whole;
        let mut ctx = Templates::context(parsed, &facts);
        let parse_whole = |ctx: &mut _, whole: &mut bool| {
            if !*whole {
                *ctx = Templates::context(serde_json::from_slice(raw).unwrap_or(Value::Null), &facts);
                *whole = true;
            }
        };
        let own = |name: &str| {
            name.strip_prefix(src.templates.as_str())
                .is_some_and(|r| r.starts_with('/'))
        };
        let budget = Duration::from_millis(self.config.limits.render_budget_ms);
        // Content beyond `max_content_bytes` is cut anyway; a template writing far past it is
        // looping over a hostile payload.
        let max_output = (4 * self.config.limits.max_content_bytes).max(64 * 1024);
        let mut rendered = None;
        let mut tried = Vec::new();
        for name in self.templates.candidates(&src.templates, identity) {
            if !own(&name) {
                parse_whole(&mut ctx, &mut whole);
            }
            // Each template tried gets a budget of its own, so the fallback still renders
            // after a template that ran out of time.
            let render =
                |ctx: &_| crate::budget::run(budget, || self.templates.render(&name, ctx, max_output));
            let mut result = render(&ctx);
            if result.is_err() && !whole {
                parse_whole(&mut ctx, &mut whole);
                result = render(&ctx);
            }
            match result {
                Ok(r) => {
                    rendered = Some(r);
                    break;
                }
                Err(e) => {
                    tracing::warn!(source = %src.name, event = %event_name, template = %name, error = %e, "template failed; trying the next one");
                    tried.push(name);
                }
            }
        }
        let rendered = rendered.unwrap_or_else(|| crate::render::Rendered {
            content: format!(
                "{} sent a {} event (delivery {}). hookwire could not render it (templates tried: {}).",
                src.name,
                event_name,
                identity.delivery_id,
                tried.join(", ")
            ),
            meta: Vec::new(),
        });
        let mut meta = Vec::with_capacity(rendered.meta.len() + 3);
        for (k, v) in [
            ("source_name", &src.name),
            ("event", &event_name),
            ("delivery_id", &identity.delivery_id),
        ] {
            if let Some(v) = sanitize::meta_value(v) {
                meta.push((k.to_owned(), v));
            }
        }
        meta.extend(rendered.meta);
        for (k, v) in &identity.meta {
            if sanitize::is_valid_meta_key(k) && k != "source" && !meta.iter().any(|(have, _)| have == k) {
                if let Some(v) = sanitize::meta_value(v) {
                    meta.push((k.clone(), v));
                }
            }
        }
        let mut content = rendered.content;
        content.truncate(content.trim_end().len());
        let content = sanitize::content(content, self.config.limits.max_content_bytes);
        Event {
            source: src.name.clone(),
            event: event_name,
            delivery_id: identity.delivery_id.clone(),
            line: notification_line(&content, &meta),
            received_ms: crate::verify::timestamp::millis(now),
            payload: incoming.body.clone(),
            headers: incoming
                .headers
                .iter()
                .filter(|(name, _)| !self.withholds(source, name.as_str()))
                .filter_map(|(name, v)| Some((name.as_str(), v.to_str().ok()?)))
                .collect(),
            folded: false,
            signed_key: None,
        }
    }

    /// Whether a request header of `source` is a credential, never stored or shown: the
    /// headers its scheme reads (whatever their names), and any whose name says it may be one.
    pub fn withholds(&self, source: usize, header: &str) -> bool {
        config::carries_credentials(header) || self.lanes[source].withheld.iter().any(|h| h == header)
    }
}

/// The prefix of a dedup key made of a signed-content fingerprint rather than a delivery
/// id (stored with the event, so a restart re-claims it).
pub const SIGNED_PREFIX: &str = "~signed:";

/// The dedup keys one accepted delivery holds.
#[derive(Debug, Default)]
struct Claims {
    delivery_id: String,
    signed: Option<String>,
}

impl Claims {
    fn iter(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.delivery_id.as_str())
            .filter(|id| !id.is_empty())
            .chain(self.signed.as_deref())
    }
}

/// What identification decided.
// Made once per webhook and taken apart at once: boxing the common case buys nothing.
#[allow(clippy::large_enum_variant)]
enum Named {
    /// Deliver: the parsed body, whether it is whole, and the names.
    Deliver(Value, bool, Identity),
    /// Acknowledge without delivery.
    Acknowledge,
    /// Answer a handshake.
    Reply(Reply),
}
