//! The path of one webhook after routing, as plain functions: verify → parse → identify →
//! (subscribed?) → render → sanitize → submit. The HTTP layer ([`crate::ingress`]) only maps
//! the outcome to a status code.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use axum::http::HeaderMap;
use serde_json::Value;

use crate::adapter::{Disposition, IdentifyError, Identity, Registry, Request};
use crate::config::{self, Config, ConfigErrors, Problems};
use crate::event::{notification_line, Event};
use crate::render::fields::Need;
use crate::render::{EmbeddedTemplates, Facts, Templates};
use crate::sanitize;
use crate::sink::{EventSink, SinkError};
use crate::verify::VerifyError;

/// What happened to an accepted request (all answered 2xx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Rendered and queued for the session.
    Queued {
        /// The delivery id.
        delivery_id: String,
    },
    /// A vendor housekeeping event (GitHub `ping`): acknowledged, never delivered.
    Acknowledged,
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
}

/// Everything the request path needs, built once at start-up.
pub struct Pipeline {
    config: Config,
    templates: Templates,
    routes: HashMap<String, usize>,
    /// Per source: the payload fields its adapter and templates read.
    needs: Vec<Need>,
    sink: Arc<dyn EventSink>,
}

/// Loads the config and compiles every template, reporting all problems of both at once.
pub fn load(
    path: &Path,
    registry: &Registry,
    embedded: EmbeddedTemplates,
) -> Result<(Config, Templates), ConfigErrors> {
    let config = config::load(path, registry)?;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut p = Problems::new(path, &text);
    let templates = Templates::load(embedded, config.templates_dir.as_deref(), &mut p);
    p.finish()?;
    Ok((config, templates))
}

impl Pipeline {
    /// Assembles the pipeline over a loaded config, its templates and a sink.
    pub fn new(config: Config, templates: Templates, sink: Arc<dyn EventSink>) -> Self {
        let routes = config
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| (s.path.clone(), i))
            .collect();
        let needs = config
            .sources
            .iter()
            .map(|s| match s.adapter.identity_fields() {
                Some(fields) => {
                    let mut need = templates.need_for_type(&s.type_name);
                    fields.iter().for_each(|f| need.add_dotted(f));
                    need.build()
                }
                None => Need::All,
            })
            .inspect(|need| tracing::debug!(?need, "payload fields read"))
            .collect();
        Pipeline {
            config,
            templates,
            routes,
            needs,
            sink,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The source that owns a URL path.
    pub fn route(&self, path: &str) -> Option<usize> {
        self.routes.get(path).copied()
    }

    /// Runs one request through every step after routing.
    pub fn ingest(
        &self,
        source: usize,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Outcome, IngestError> {
        let src = &self.config.sources[source];
        let req = Request { headers, body, now };
        src.adapter.verify(&req)?;
        let Some((parsed, identity)) = self.identify(source, &req)? else {
            return Ok(Outcome::Acknowledged);
        };
        if !self.config.channel.enabled {
            return Ok(Outcome::ChannelDisabled);
        }
        if !src.subscribed {
            return Ok(Outcome::NotSubscribed);
        }
        let event = self.prepare(source, &identity, parsed, body, now);
        let delivery_id = event.delivery_id.clone();
        self.sink.submit(event)?;
        Ok(Outcome::Queued { delivery_id })
    }

    /// The index of a source by name.
    pub fn source_index(&self, name: &str) -> Option<usize> {
        self.config.sources.iter().position(|s| s.name == name)
    }

    /// Identifies, renders and sanitises a payload without verifying it: what `hookwire
    /// render` prints while a template is being written. `None` for an acknowledged-only
    /// event such as GitHub's `ping`.
    pub fn render_unverified(
        &self,
        source: usize,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Option<Event>, IngestError> {
        let req = Request { headers, body, now };
        Ok(self
            .identify(source, &req)?
            .map(|(parsed, identity)| self.prepare(source, &identity, parsed, body, now)))
    }

    /// Parses what the source reads and names the event; `None` for an acknowledged-only
    /// event such as GitHub's `ping`.
    fn identify(&self, source: usize, req: &Request<'_>) -> Result<Option<(Value, Identity)>, IngestError> {
        let parsed = self.needs[source]
            .parse(req.body)
            .map_err(|e| IngestError::BadJson(e.to_string()))?;
        let identity = self.config.sources[source].adapter.identify(req, &parsed)?;
        Ok((identity.disposition == Disposition::Deliver).then_some((parsed, identity)))
    }

    /// Renders and sanitises an identified event into its notification line. `parsed` holds
    /// what the source's own templates read (see [`Need`]); the full payload is parsed from
    /// `raw` only when another template is used or a render fails. A template that fails at
    /// run time falls back to the next candidate, then to a plain summary: an accepted event
    /// is never dropped for a template bug.
    pub fn prepare(
        &self,
        source: usize,
        identity: &Identity,
        parsed: Value,
        raw: &[u8],
        now: SystemTime,
    ) -> Event {
        let src = &self.config.sources[source];
        let received_at = humantime::format_rfc3339_seconds(now).to_string();
        let event_name = identity.full_name();
        let facts = Facts {
            source: &src.name,
            type_name: &src.type_name,
            identity,
            event_name: &event_name,
            received_at: &received_at,
        };
        let mut whole = matches!(self.needs[source], Need::All);
        let mut ctx = Templates::context(parsed, &facts);
        let parse_whole = |ctx: &mut _, whole: &mut bool| {
            if !*whole {
                *ctx = Templates::context(serde_json::from_slice(raw).unwrap_or(Value::Null), &facts);
                *whole = true;
            }
        };
        let own = |name: &str| {
            name.strip_prefix(src.type_name.as_str())
                .is_some_and(|r| r.starts_with('/'))
        };
        let mut rendered = None;
        let mut tried = Vec::new();
        for name in self.templates.candidates(&src.type_name, identity) {
            if !own(&name) {
                parse_whole(&mut ctx, &mut whole);
            }
            let mut result = self.templates.render(&name, &ctx);
            if result.is_err() && !whole {
                parse_whole(&mut ctx, &mut whole);
                result = self.templates.render(&name, &ctx);
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
        let content = sanitize::content(rendered.content.trim_end(), self.config.limits.max_content_bytes);
        Event {
            source: src.name.clone(),
            event: event_name,
            delivery_id: identity.delivery_id.clone(),
            line: notification_line(&content, &meta),
        }
    }
}
