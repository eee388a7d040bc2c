//! The shipped templates over the shared vendor fixtures: a pipeline loading `templates/`
//! through `templates_dir` with one source per vendor template folder (and a `generic` one
//! that every event reaches through the fallback `default.hbs`), every fixture under
//! `tests/fixtures/` with the headers that name it (each JSON one also once through the
//! generic fallback), and a way to write text into a fixture's string fields. Shared by
//! `render_properties`, `fence_properties` and the `render` fuzz target
//! (`fuzz/fuzz_targets/render.rs` includes this file), which render through
//! `Pipeline::render_unverified`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use hookwire_core::axum::http::{HeaderMap, HeaderName, HeaderValue};
use hookwire_core::pipeline::{self, Pipeline};
use hookwire_core::{sink, Registry};
use serde_json::Value;

/// `limits.max_content_bytes` of the test config: small, so long text is cut.
pub const MAX_CONTENT_BYTES: usize = 2048;

/// The hmac verification every source declares (never checked: renders are unverified).
const VERIFY: &str =
    "    type: hmac\n    secret_file: secret\n    verify: {digest: sha256, header: X-Sig, encoding: hex}\n";

/// One source per vendor template folder, named like the real adapters name events.
pub const SOURCES: &[(&str, &str, &str)] = &[
    (
        "github",
        "github",
        "    event: {header: X-GitHub-Event}\n    action: {json: /action}\n    delivery: {header: X-GitHub-Delivery}\n",
    ),
    (
        "datadog",
        "datadog",
        "    event: {value: alert}\n    action: [{json: /alert/transition}, {json: /alert_transition}]\n    delivery: {json: /id}\n",
    ),
    (
        "gitlab",
        "gitlab",
        "    event: [{json: /object_kind}, {header: X-Gitlab-Event}]\n    action: [{json: /object_attributes/action}, {json: /object_attributes/status}, {json: /build_status}]\n    delivery: {header: X-Gitlab-Event-UUID}\n",
    ),
    (
        "pagerduty",
        "pagerduty",
        "    event: {json: /event/event_type}\n    delivery: [{header: X-Webhook-Id}, {json: /event/id}]\n",
    ),
    (
        "sentry",
        "sentry",
        "    event: {header: Sentry-Hook-Resource}\n    action: {json: /action}\n    delivery: {header: Request-ID}\n",
    ),
    (
        "slack",
        "slack",
        "    event: [{json: /event/type}, {json: /type}]\n    action: {json: /event/subtype}\n    delivery: {json: /event_id}\n",
    ),
    (
        "slack-commands",
        "slack",
        "    event: {value: slash_command}\n    action: {json: /command}\n    delivery: {json: /trigger_id}\n",
    ),
    (
        "stripe",
        "stripe",
        "    event: {json: /type}\n    delivery: {json: /id}\n",
    ),
    (
        "alertmanager",
        "alertmanager",
        "    event: {value: alert}\n    action: {json: /status}\n",
    ),
    (
        "grafana",
        "grafana",
        "    event: {value: alert}\n    action: {json: /status}\n",
    ),
    (
        "buildkite",
        "buildkite",
        "    event: [{header: X-Buildkite-Event}, {json: /event}]\n",
    ),
    (
        "circleci",
        "circleci",
        "    event: [{header: circleci-event-type}, {json: /type}]\n    delivery: {json: /id}\n",
    ),
    // The adapter names the action after the body's numeric `type`; every Discord fixture is
    // an application command (type 2).
    (
        "discord",
        "discord",
        "    event: {value: interaction}\n    action: {value: application_command}\n    delivery: {json: /id}\n",
    ),
    (
        "heroku",
        "heroku",
        "    event: {json: /resource}\n    action: {json: /action}\n    delivery: {json: /id}\n",
    ),
    // The adapter splits the topic at its last dot, which YAML cannot; the Intercom fixture
    // is a `conversation.user.created` notification.
    (
        "intercom",
        "intercom",
        "    event: {value: conversation.user}\n    action: {value: created}\n    delivery: {json: /id}\n",
    ),
    (
        "linear",
        "linear",
        "    event: [{header: Linear-Event}, {json: /type}]\n    action: {json: /action}\n",
    ),
    // Form bodies, like Twilio's voice webhooks (the adapter picks `call` from `CallSid`).
    (
        "twilio",
        "twilio",
        "    event: {value: call}\n    action: {json: /CallStatus}\n    delivery: {json: /CallSid}\n",
    ),
    (
        "zendesk",
        "zendesk",
        "    event: {json: /type}\n    delivery: {json: /id}\n",
    ),
    // A vendor hookwire ships no template for: every event takes the generic `default.hbs`.
    ("generic", "generic", "    event: {value: ticket}\n"),
];

/// The source a fixture is rendered by: its vendor's, except Slack's form bodies (commands).
fn source_of(vendor: &str, form: bool) -> &str {
    match (vendor, form) {
        ("slack", true) => "slack-commands",
        _ => vendor,
    }
}

/// A fixture body: JSON, or a form (Slack slash commands).
#[derive(Debug, Clone)]
pub enum Body {
    /// A JSON payload.
    Json(Value),
    /// A form's fields, in order.
    Form(Vec<(String, String)>),
}

/// One fixture of one source, with the headers that name it.
#[derive(Debug)]
pub struct Fixture {
    /// The file it was read from.
    pub file: String,
    /// Its source's index in the pipeline.
    pub source: usize,
    /// The headers that name it.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Body,
    /// JSON pointers of the string fields (for a form: unused, every field is a string).
    pub strings: Vec<String>,
}

impl Fixture {
    /// How many fields text can be written into: its strings, or its form's fields.
    pub fn fields(&self) -> usize {
        match &self.body {
            Body::Json(_) => self.strings.len(),
            Body::Form(fields) => fields.len(),
        }
    }
}

/// The pipeline over the shipped templates, and every fixture.
pub struct World {
    /// Renders with `render_unverified`.
    pub pipeline: Pipeline,
    /// Every fixture of every source.
    pub fixtures: Vec<Fixture>,
}

/// The repository.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Built once per process.
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let pipeline = load_pipeline("world", Some(MAX_CONTENT_BYTES));
        assert_eq!(pipeline.config().limits.max_content_bytes, MAX_CONTENT_BYTES);
        let fixtures = fixtures(&pipeline);
        World { pipeline, fixtures }
    })
}

/// A pipeline over the shipped templates with one source per [`SOURCES`] entry, and
/// `limits.max_content_bytes` when given (else hookwire's default); `tag` keeps the scratch
/// directories of several pipelines apart.
pub fn load_pipeline(tag: &str, max_content_bytes: Option<usize>) -> Pipeline {
    let dir = std::env::temp_dir().join(format!("hookwire-render-properties-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("secret"), "render-properties-secret").unwrap();
    let templates = root().join("templates").canonicalize().unwrap();
    let limits = max_content_bytes.map_or(String::new(), |n| format!("limits:\n  max_content_bytes: {n}\n"));
    let mut yaml = format!(
        "channel:\n  sources: []\n{limits}templates_dir: {}\nsources:\n",
        serde_json::to_string(&templates.display().to_string()).unwrap()
    );
    for (name, folder, naming) in SOURCES {
        yaml.push_str(&format!(
            "  - name: {name}\n{VERIFY}    templates: {folder}\n{naming}"
        ));
    }
    let config = dir.join("config.yaml");
    std::fs::write(&config, yaml).unwrap();
    let mut registry = Registry::new();
    hookwire_core::adapter::declared::register(&mut registry);
    let (config, templates) =
        pipeline::load(&config, &registry, &[]).unwrap_or_else(|e| panic!("test config: {e}"));
    let (queue, _events) = sink::memory_queue(1);
    let pipeline = Pipeline::new(config, templates, Arc::new(queue), pipeline::Keep::ChannelSources);
    let _ = std::fs::remove_dir_all(&dir);
    pipeline
}

/// The naming headers a vendor sends with a fixture, from its file name.
fn headers(vendor: &str, stem: &str) -> HeaderMap {
    let first = stem.split('.').next().unwrap();
    let pairs: Vec<(&str, String)> = match vendor {
        "github" => vec![
            ("X-GitHub-Event", first.to_owned()),
            ("X-GitHub-Delivery", format!("delivery-{stem}")),
        ],
        "gitlab" => vec![
            ("X-Gitlab-Event", "System Hook".to_owned()),
            ("X-Gitlab-Event-UUID", format!("uuid-{stem}")),
        ],
        "sentry" => vec![
            ("Sentry-Hook-Resource", first.to_owned()),
            ("Request-ID", format!("req-{stem}")),
        ],
        "pagerduty" => vec![("X-Webhook-Id", format!("wh-{stem}"))],
        "linear" => vec![("Linear-Event", first.to_owned())],
        _ => vec![],
    };
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    map
}

/// The JSON pointers of every string in `v`.
fn string_pointers(v: &Value, at: &mut String, out: &mut Vec<String>) {
    let len = at.len();
    match v {
        Value::String(_) => out.push(at.clone()),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push_str(&format!("/{i}"));
                string_pointers(item, at, out);
                at.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                at.push('/');
                at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                string_pointers(item, at, out);
                at.truncate(len);
            }
        }
        _ => {}
    }
}

fn fixtures(pipeline: &Pipeline) -> Vec<Fixture> {
    let mut out = Vec::new();
    let payloads = root().join("tests/fixtures/payloads");
    let mut dirs: Vec<(&str, PathBuf)> = SOURCES
        .iter()
        .filter(|(name, _, _)| !matches!(*name, "slack-commands" | "generic"))
        .map(|(name, _, _)| (*name, payloads.join(name)))
        .collect();
    dirs.push(("datadog", root().join("tests/fixtures/datadog")));
    for (vendor, dir) in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json" || x == "form"))
            .collect();
        files.sort();
        for path in files {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            let raw = std::fs::read(&path).unwrap();
            let mut headers = headers(vendor, &stem);
            let (source, body, strings) = if path.extension().is_some_and(|x| x == "form") {
                headers.insert(
                    "content-type",
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                let fields: Vec<(String, String)> = form_urlencoded::parse(&raw).into_owned().collect();
                (source_of(vendor, true), Body::Form(fields), Vec::new())
            } else {
                let v: Value = serde_json::from_slice(&raw).unwrap();
                let mut strings = Vec::new();
                string_pointers(&v, &mut String::new(), &mut strings);
                (source_of(vendor, false), Body::Json(v), strings)
            };
            out.push(Fixture {
                file: path.display().to_string(),
                source: pipeline.source_index(source).unwrap(),
                headers,
                body,
                strings,
            });
        }
    }
    // Every JSON payload once more through the generic fallback.
    let generic = pipeline.source_index("generic").unwrap();
    let again: Vec<Fixture> = out
        .iter()
        .filter(|f| matches!(f.body, Body::Json(_)))
        .map(|f| Fixture {
            file: format!("{} (generic fallback)", f.file),
            source: generic,
            headers: HeaderMap::new(),
            body: f.body.clone(),
            strings: f.strings.clone(),
        })
        .collect();
    out.extend(again);
    out
}

/// The fixtures of one source.
pub fn of(source: &str) -> Vec<&'static Fixture> {
    let w = world();
    let i = w.pipeline.source_index(source).unwrap();
    let list: Vec<_> = w.fixtures.iter().filter(|f| f.source == i).collect();
    assert!(!list.is_empty(), "no fixtures for {source}");
    list
}

/// `body` with each injection (field selector, text) written into a string field: the
/// selector picks one modulo the number of fields.
pub fn inject(fixture: &Fixture, injections: &[(usize, String)]) -> Vec<u8> {
    match &fixture.body {
        Body::Json(v) => {
            let mut v = v.clone();
            for (i, text) in injections {
                if fixture.strings.is_empty() {
                    break;
                }
                let pointer = &fixture.strings[i % fixture.strings.len()];
                *v.pointer_mut(pointer).unwrap() = Value::String(text.clone());
            }
            serde_json::to_vec(&v).unwrap()
        }
        Body::Form(fields) => {
            let mut fields = fields.clone();
            for (i, text) in injections {
                if fields.is_empty() {
                    break;
                }
                let n = i % fields.len();
                fields[n].1 = text.clone();
            }
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&fields)
                .finish()
                .into_bytes()
        }
    }
}
