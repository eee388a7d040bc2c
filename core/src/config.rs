//! `config.yaml`: typed, strict, and every problem reported at once with file, line, field
//! and a hint. YAML is read with `serde_norway` (a maintained fork of the archived
//! `serde_yaml`, whose errors keep line and column); semantic errors get their line from
//! [`crate::diagnostics::locate::LineIndex`].

pub mod connect;
pub mod schedule;
pub mod storm;
pub mod tools;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_norway::{Mapping, Value};

use crate::adapter::{Adapter, Registry, SourceSpec};
use crate::diagnostics::{ConfigError, ConfigErrors, Problems};
use crate::filter::Filter;
use crate::network::Cidr;
use crate::secret::{SecretRef, SecretSet};

/// Where `hookwire channel` listens for webhooks unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8788";

const TOP_KEYS: &[&str] = &[
    "listen",
    "channel",
    "limits",
    "templates_dir",
    "trusted_proxies",
    "sources",
    "schedules",
    "store",
    "tls",
    "tools",
    "metrics",
    "console",
    "fetch",
];

/// Paths hookwire serves itself on the webhook listener; no source may use them.
/// `/console` reserves every path under it too (the delivery console).
pub const RESERVED_PATHS: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/session",
    "/mcp",
    "/console",
];
const SOURCE_KEYS: &[&str] = &[
    "name",
    "type",
    "path",
    "secret_env",
    "secret_file",
    "templates",
    "public_url",
    "allow_from",
    "filter",
    "storm",
    "headers",
    "max_body_bytes",
    "connect",
];

/// A loaded, validated configuration with its adapters built and its secrets read.
#[derive(Debug)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Webhook listen address.
    pub listen: SocketAddr,
    /// The Channels session settings.
    pub channel: ChannelSettings,
    /// Size and queue limits.
    pub limits: Limits,
    /// A folder whose templates override the built-in ones (`<type>/<event>.hbs`).
    pub templates_dir: Option<PathBuf>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (for `allow_from`).
    pub trusted_proxies: Vec<Cidr>,
    /// The configured sources, in file order.
    pub sources: Vec<Source>,
    /// The durable store.
    pub store: StoreSettings,
    /// TLS for `hookwire serve` (certificate and key files).
    pub tls: Option<TlsSettings>,
    /// Credentials and allowlists of the reply and action tools (`tools:`).
    pub tools: tools::ToolsSettings,
    /// `metrics: true`: serve Prometheus `/metrics` in local mode too (the gateway always
    /// does).
    pub metrics: bool,
    /// `console:`: the delivery console `hookwire serve` serves at `/console`.
    pub console: ConsoleSettings,
}

/// `console:`: the delivery console in the browser ([`crate::console`]), served by `hookwire
/// serve` at `/console` to tokens with the `console` or `admin` permission.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSettings {
    /// Serve it (default: yes; it answers only signed-in tokens with the permission).
    pub enabled: bool,
    /// Console sign-ins held at once; one more is refused until one expires or signs out.
    pub max_sessions: usize,
    /// How long a sign-in lasts.
    pub session_ttl_secs: u64,
    /// Mark the session cookie `Secure`. Default: when `tls:` is set or a source's
    /// `public_url` is `https://` (a TLS-terminating proxy in front).
    pub secure_cookie: Option<bool>,
    /// Serve it in local mode too (`hookwire channel`, on its webhook listener); default no.
    pub local: bool,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            enabled: true,
            max_sessions: 64,
            session_ttl_secs: 8 * 3600,
            secure_cookie: None,
            local: false,
        }
    }
}

/// `store:`: where and how events are kept until every session has them.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// The database file (relative paths are beside the config file).
    pub path: PathBuf,
    /// `full` (fsync every group commit) or `normal` (survives a crash, not power loss).
    pub sync: SyncMode,
    /// Stored bytes beyond which acknowledged events are evicted and, when nothing can be,
    /// webhooks refused with 503.
    pub max_bytes: u64,
    /// Events older than this are deleted, delivered or not.
    pub max_age: std::time::Duration,
    /// Bytes of recently committed events kept in memory, so live sessions read them without
    /// a query; most of the store's share of peak memory under load.
    pub memory_bytes: usize,
    /// Where events are kept: the embedded SQLite file (default) or NATS JetStream.
    pub backend: StoreBackend,
}

/// The store backends `store.backend` may name.
pub const STORE_BACKENDS: &[&str] = &["sqlite", "nats"];

/// `store.backend`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// The embedded SQLite file at `store.path` (one writer: `channel` and a single `serve`).
    Sqlite,
    /// NATS JetStream (`store.nats`): several `serve` replicas share one log.
    Nats(NatsSettings),
}

/// `store.nats:` for the JetStream backend.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    /// Server URLs (`nats://host:4222`); the client fails over between them.
    pub servers: Vec<String>,
    /// Replication of the streams and key-value buckets (1, 3 or 5; 3 for a three-node
    /// cluster).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// A NATS credentials file (JWT and nkey seed), if the servers require one.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Prefix of every stream, bucket and subject name, so several deployments can share
    /// one cluster.
    #[serde(default = "default_nats_prefix")]
    pub prefix: String,
    /// Require TLS to the servers (CA file optional; the system roots otherwise).
    #[serde(default)]
    pub tls: Option<NatsTls>,
}

/// `store.nats.tls:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsTls {
    /// PEM root certificates to trust for the servers.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_replicas() -> usize {
    3
}
fn default_nats_prefix() -> String {
    "hookwire".into()
}

/// How hard a commit is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// fsync at every group commit: a 2xx survives power loss.
    Full,
    /// fsync at checkpoints only: a 2xx survives a process crash, not power loss.
    Normal,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    nats: Option<NatsSettings>,
    #[serde(default)]
    path: Option<PathBuf>,
    #[serde(default = "sync_full")]
    sync: SyncMode,
    #[serde(default = "default_max_bytes")]
    max_bytes: u64,
    #[serde(default = "default_max_age")]
    max_age: String,
    #[serde(default = "default_memory_bytes")]
    memory_bytes: usize,
}

fn sync_full() -> SyncMode {
    SyncMode::Full
}
fn default_max_bytes() -> u64 {
    1 << 30
}
fn default_max_age() -> String {
    "7d".into()
}
fn default_memory_bytes() -> usize {
    8 << 20
}

/// `tls:` for the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

/// The Channels session settings (`channels.enabled/sources/permissions` in Claude Code).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSettings {
    /// Master switch: when false nothing is pushed to the session.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The sources allowed to push into the session; others are accepted and never pushed.
    #[serde(default)]
    pub sources: Vec<String>,
    /// What Claude may do in response: the reply and action tools offered (see
    /// [`crate::tools`]); names from [`tools::PERMISSIONS`].
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Extra text appended to the generated `instructions`.
    #[serde(default)]
    pub instructions: Option<String>,
}

fn yes() -> bool {
    true
}

/// Resource limits of the webhook path. Everything a stranger can make hookwire hold before
/// a request is verified is bounded here: connections, header time, body bytes and pace.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// When set, the largest request body any source accepts (413 beyond), unless a source
    /// sets its own `max_body_bytes:`. Unset, each source takes the maximum its vendor
    /// documents (GitHub: 25 MB), or [`DEFAULT_MAX_BODY`] when the vendor documents none.
    pub max_body_bytes: Option<usize>,
    /// Request body bytes held by all requests at once before they are verified; a request
    /// that would go over gets 503 with Retry-After. At least the largest source's body limit.
    pub body_budget_bytes: usize,
    /// Cap of one event's `content`; longer content is cut with a visible mark.
    pub max_content_bytes: usize,
    /// Events held for the session (before `initialized`, or while it is slow); when full,
    /// ingress answers 503 with Retry-After.
    pub queue_capacity: usize,
    /// Verified requests processed at once; more get 503 with Retry-After.
    pub max_concurrent_requests: usize,
    /// Seconds a sender may take to deliver the body; slower gets 408.
    pub body_timeout_secs: u64,
    /// Bytes per second a body must arrive at, on average, once its first 2 seconds are
    /// over; slower gets 408 (a trickle of one byte a second is cut in seconds, not minutes).
    pub min_body_bytes_per_sec: usize,
    /// Seconds a connection may take to send a request's headers, counted from its accept or
    /// its previous response: closes slow-header and idle keep-alive connections alike.
    pub header_timeout_secs: u64,
    /// Connections open at once on a listener (lowered to what the open-file limit allows).
    /// At the cap, the connection that has waited longest for a request is closed for the
    /// new one.
    pub max_connections: usize,
    /// Connections open at once from one client address, with the same rule. A tunnel or
    /// proxy in front is one address: keep this high enough for it.
    pub max_connections_per_client: usize,
    /// Milliseconds a source's filter and template may take for one event; beyond, the
    /// filter counts as not evaluated (the event is delivered, with a warning) and the
    /// template falls back to the next one.
    pub render_budget_ms: u64,
    /// How long a delivery id is remembered, so a repeat is acknowledged but not delivered
    /// again. Default 3 days: Stripe retries for up to 3 days, PagerDuty for 48 h.
    pub dedup_window_secs: u64,
    /// Most delivery ids remembered at once; beyond it the oldest are forgotten early.
    pub dedup_capacity: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: None,
            body_budget_bytes: 64 * 1024 * 1024,
            max_content_bytes: 16 * 1024,
            queue_capacity: 4096,
            max_concurrent_requests: 512,
            body_timeout_secs: 30,
            min_body_bytes_per_sec: 4096,
            header_timeout_secs: 10,
            max_connections: 2048,
            max_connections_per_client: 512,
            render_budget_ms: 250,
            dedup_window_secs: 3 * 24 * 3600,
            dedup_capacity: 1_000_000,
        }
    }
}

/// A source's body limit when neither it, `limits.max_body_bytes` nor its vendor says one.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// One configured webhook source with its adapter.
#[derive(Debug)]
pub struct Source {
    /// Unique name (`github`), the `source_name` attribute Claude sees.
    pub name: String,
    /// The adapter type (`github`, `datadog`).
    pub type_name: String,
    /// The template folder (`templates:`, default the type): `<templates>/<event>.hbs`.
    pub templates: String,
    /// The URL the vendor is configured with, for schemes that sign it (Twilio). The query of
    /// each request is appended as received.
    pub public_url: Option<String>,
    /// Networks allowed to post to this source; empty allows any.
    pub allow_from: Vec<Cidr>,
    /// Which verified events reach the session.
    pub filter: Option<Filter>,
    /// Request headers templates may read as `headers.<lowercase-name>`.
    pub headers: Vec<String>,
    /// Storm control: group key, window and how many pass before folding.
    pub storm: Option<storm::StormSpec>,
    /// Set for a `schedules:` entry: hookwire runs it; it has no HTTP path.
    pub schedule: Option<schedule::Schedule>,
    /// `connect:` of a GitHub source: its webhook on GitHub, API token, catch-up.
    pub connect: Option<connect::ConnectSettings>,
    /// URL path it is served on (`/hooks/<name>` by default).
    pub path: String,
    /// Largest request body accepted (413 beyond): the source's `max_body_bytes:`, else the
    /// maximum its vendor documents, else `limits.max_body_bytes`.
    pub max_body_bytes: usize,
    /// The vendor behaviour.
    pub adapter: Box<dyn Adapter>,
    /// One line describing the source type, for `instructions`.
    pub description: &'static str,
}

/// One secret reference or several (rotation): `secret_env: A` or `secret_env: [A, B]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Whether loading reads the sources' secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Secrets {
    Read,
    /// Adapters are built with no secret, so they verify nothing (fail closed).
    Skip,
}

/// Reads, validates and builds a configuration. Every problem is reported, not the first.
pub fn load(path: &Path, registry: &Registry) -> Result<Config, ConfigErrors> {
    read_text(path).and_then(|text| parse_with(path, &text, registry, Secrets::Read))
}

/// Like [`load`], without reading any secret: for the store administration commands
/// (`hookwire token`, `events`, `replay`), which need source names and `store:` but may run
/// on a machine that holds no vendor secret. Secret references are still checked to be
/// declared. The sources' adapters hold no key, so every request would fail verification:
/// never serve webhooks with such a config.
pub fn load_without_secrets(path: &Path, registry: &Registry) -> Result<Config, ConfigErrors> {
    read_text(path).and_then(|text| parse_with(path, &text, registry, Secrets::Skip))
}

fn read_text(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_owned(),
            line: None,
            field: String::new(),
            message: format!("cannot read the config file: {e}"),
            hint: Some("pass --config PATH, or run from the folder that holds config.yaml".into()),
        }])
    })
}

/// Reads only `tools:` of a config file, for `hookwire channel --gateway`: events and
/// permissions come from the gateway, while the actions run here with this machine's
/// credentials. Every other key is ignored; a missing file means no tool settings.
pub fn load_tools(path: &Path) -> Result<tools::ToolsSettings, ConfigErrors> {
    if !path.exists() {
        return Ok(tools::ToolsSettings::default());
    }
    let text = read_text(path)?;
    let base = path.parent().map(Path::to_owned).unwrap_or_default();
    let mut p = Problems::new(path, &text);
    let root: Value = match serde_norway::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            let line = e.location().map(|l| l.line());
            p.add_at(path, line, "", format!("not valid YAML: {e}"));
            return Err(p.finish().unwrap_err());
        }
    };
    let (tools, _) = tools::parse(&mut p, root.get("tools"), &base, true);
    p.finish()?;
    Ok(tools)
}

/// Like [`load`], over text already read (`path` is used in messages and to resolve
/// relative paths).
pub fn parse(path: &Path, text: &str, registry: &Registry) -> Result<Config, ConfigErrors> {
    parse_with(path, text, registry, Secrets::Read)
}

fn parse_with(
    path: &Path,
    text: &str,
    registry: &Registry,
    secrets: Secrets,
) -> Result<Config, ConfigErrors> {
    let base = path.parent().map(Path::to_owned).unwrap_or_default();
    let mut p = Problems::new(path, text);
    let root: Value = match serde_norway::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let line = e.location().map(|l| l.line());
            p.add_at(path, line, "", format!("not valid YAML: {e}"));
            return Err(p.finish().unwrap_err());
        }
    };
    let Value::Mapping(root) = root else {
        p.add(
            "",
            "the file must be a YAML mapping with `channel:` and `sources:`",
            None,
        );
        return Err(p.finish().unwrap_err());
    };
    for key in root.keys() {
        let k = key.as_str().unwrap_or("?");
        if !TOP_KEYS.contains(&k) {
            p.add(
                k,
                format!("unknown key `{k}`"),
                Some(format!("valid keys: {}", TOP_KEYS.join(", "))),
            );
        }
    }

    let listen = match root.get("listen") {
        None => Some(DEFAULT_LISTEN.parse().expect("valid default")),
        Some(v) => match v.as_str().map(str::parse::<SocketAddr>) {
            Some(Ok(a)) => Some(a),
            _ => {
                p.add(
                    "listen",
                    "not an address",
                    Some("write HOST:PORT, e.g. 127.0.0.1:8788".into()),
                );
                None
            }
        },
    };
    let channel: Option<ChannelSettings> = section(&mut p, &root, "channel");
    let limits: Option<Limits> = section(&mut p, &root, "limits").or_else(|| Some(Limits::default()));
    if let Some(l) = &limits {
        for (field, value) in [
            ("limits.max_body_bytes", l.max_body_bytes.unwrap_or(1)),
            ("limits.body_budget_bytes", l.body_budget_bytes),
            ("limits.max_content_bytes", l.max_content_bytes),
            ("limits.queue_capacity", l.queue_capacity),
            ("limits.max_concurrent_requests", l.max_concurrent_requests),
            ("limits.body_timeout_secs", l.body_timeout_secs as usize),
            ("limits.min_body_bytes_per_sec", l.min_body_bytes_per_sec),
            ("limits.header_timeout_secs", l.header_timeout_secs as usize),
            ("limits.max_connections", l.max_connections),
            ("limits.max_connections_per_client", l.max_connections_per_client),
            ("limits.render_budget_ms", l.render_budget_ms as usize),
            ("limits.dedup_window_secs", l.dedup_window_secs as usize),
            ("limits.dedup_capacity", l.dedup_capacity),
        ] {
            if value == 0 {
                p.add(field, "must be greater than 0", None);
            }
        }
        if l.max_content_bytes < 1024 {
            p.add("limits.max_content_bytes", "must be at least 1024", None);
        }
    }
    let templates_dir = match root.get("templates_dir") {
        None => None,
        Some(Value::String(s)) => Some(base.join(s)),
        Some(_) => {
            p.add("templates_dir", "must be a folder path", None);
            None
        }
    };

    let trusted_proxies = cidrs(&mut p, root.get("trusted_proxies"), "trusted_proxies");
    let store = section::<RawStore>(&mut p, &root, "store").and_then(|raw| {
        let max_age = match humantime::parse_duration(&raw.max_age) {
            Ok(d) if !d.is_zero() => Some(d),
            _ => {
                p.add(
                    "store.max_age",
                    format!("`{}` is not a duration", raw.max_age),
                    Some("write e.g. 7d, 36h or 90m".into()),
                );
                None
            }
        };
        if raw.max_bytes < 64 * 1024 {
            p.add("store.max_bytes", "must be at least 65536", None);
            return None;
        }
        let backend = store_backend(&mut p, &base, raw.backend.as_deref(), raw.nats)?;
        Some(StoreSettings {
            path: base.join(raw.path.unwrap_or_else(|| PathBuf::from("hookwire.db"))),
            sync: raw.sync,
            max_bytes: raw.max_bytes,
            max_age: max_age?,
            memory_bytes: raw.memory_bytes,
            backend,
        })
    });
    let tls: Option<TlsSettings> = match root.get("tls") {
        None => None,
        Some(_) => section(&mut p, &root, "tls").map(|t: TlsSettings| TlsSettings {
            cert_file: base.join(t.cert_file),
            key_file: base.join(t.key_file),
        }),
    };

    let metrics = match root.get("metrics") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            p.add(
                "metrics",
                "must be true or false",
                Some("write `metrics: true` to serve /metrics in local mode".into()),
            );
            false
        }
    };
    let (tools, tools_declared) = tools::parse(&mut p, root.get("tools"), &base, secrets == Secrets::Read);
    let console: Option<ConsoleSettings> = section(&mut p, &root, "console");
    if let Some(c) = &console {
        if c.max_sessions == 0 || c.session_ttl_secs == 0 {
            p.add(
                if c.max_sessions == 0 {
                    "console.max_sessions"
                } else {
                    "console.session_ttl_secs"
                },
                "must be at least 1",
                Some("to turn the console off, write `console: {enabled: false}`".into()),
            );
        }
    }
    if let Some(ch) = &channel {
        for (i, perm) in ch.permissions.iter().enumerate() {
            let field = format!("channel.permissions[{i}]");
            if !tools::PERMISSIONS.contains(&perm.as_str()) {
                p.add(
                    &field,
                    format!("unknown permission `{perm}`"),
                    Some(format!("valid permissions: {}", tools::PERMISSIONS.join(", "))),
                );
                continue;
            }
            let missing = match tools::needs(perm) {
                Some("github") => !tools_declared.github,
                Some("slack") => !tools_declared.slack,
                _ => false,
            };
            if missing {
                let section = tools::needs(perm).unwrap_or_default();
                p.add(
                    &field,
                    format!("`{perm}` is granted but `tools.{section}` is not configured"),
                    Some(match section {
                        "github" => {
                            "add tools: {github: {token_env: GITHUB_TOKEN, repos: [owner/name]}}".into()
                        }
                        _ => {
                            "add tools: {slack: {bot_token_env: SLACK_BOT_TOKEN, channels: [\"#incidents\"]}}"
                                .into()
                        }
                    }),
                );
            }
        }
    }

    let fetch = fetch_client(&mut p, &root, &base);
    let mut sources = Vec::new();
    // Names declared, even of sources with errors, so one mistake is not reported twice.
    let mut declared: Vec<String> = Vec::new();
    match root.get("sources") {
        None => p.add(
            "",
            "no `sources:` list",
            Some("add at least one source; see config.yaml".into()),
        ),
        Some(Value::Sequence(items)) => {
            for (i, item) in items.iter().enumerate() {
                if let Some(name) = item.get("name").and_then(Value::as_str) {
                    declared.push(name.to_owned());
                }
                let cap = limits.as_ref().and_then(|l| l.max_body_bytes);
                if let Some(s) = source(&mut p, &base, registry, (i, item), (secrets, &fetch), cap) {
                    // Basic auth signs nothing: its password must never cross plain HTTP.
                    if tls.is_none() && s.adapter.verifier().needs_tls() {
                        p.add(
                            &format!("sources[{i}].type"),
                            format!(
                                "source `{}` authenticates with Basic auth, whose password would cross plain HTTP",
                                s.name
                            ),
                            Some(BEHIND_TLS_HINT.into()),
                        );
                    }
                    sources.push(s);
                }
            }
        }
        Some(_) => p.add("sources", "must be a list of sources", None),
    }
    if let Some(items) = root.get("schedules") {
        let Value::Sequence(items) = items else {
            p.add("schedules", "must be a list of schedules", None);
            return Err(p.finish().unwrap_err());
        };
        for (i, item) in items.iter().enumerate() {
            let at = |f: &str| match f {
                "" => format!("schedules[{i}]"),
                f => format!("schedules[{i}].{f}"),
            };
            let entry: schedule::Entry = match serde_norway::from_value(item.clone()) {
                Ok(e) => e,
                Err(e) => {
                    p.add(
                        &at(""),
                        e.to_string(),
                        Some("a schedule has name, cron, and command or url".into()),
                    );
                    continue;
                }
            };
            declared.push(entry.name.clone());
            match entry.validate() {
                Ok(schedule) => sources.push(Source {
                    name: entry.name.clone(),
                    type_name: "schedule".into(),
                    templates: entry.templates.clone().unwrap_or_else(|| "schedule".into()),
                    public_url: None,
                    allow_from: Vec::new(),
                    filter: None,
                    storm: None,
                    headers: Vec::new(),
                    description: "a scheduled job hookwire runs; its output arrives as the event",
                    path: format!("/schedules/{}", entry.name),
                    max_body_bytes: 0,
                    adapter: Box::new(crate::adapter::no_door::NoDoor::new()),
                    schedule: Some(schedule),
                    connect: None,
                }),
                Err(problems) => {
                    for (field, message) in problems {
                        p.add(&at(field), message, None);
                    }
                }
            }
        }
    }

    // Cross-field checks.
    for (i, s) in sources.iter().enumerate() {
        if sources[..i].iter().any(|o| o.name == s.name) {
            p.add(
                &format!("sources[{i}].name"),
                format!("duplicate source name `{}`", s.name),
                None,
            );
        }
        if RESERVED_PATHS.contains(&s.path.as_str()) || s.path.starts_with("/console/") {
            p.add(
                &format!("sources[{i}].path"),
                format!("path `{}` is served by hookwire itself", s.path),
                Some(format!(
                    "give the source another `path:`; reserved: {}",
                    RESERVED_PATHS.join(", ")
                )),
            );
        }
        if sources[..i].iter().any(|o| o.path == s.path) {
            p.add(
                &format!("sources[{i}].path"),
                format!("path `{}` is used by another source", s.path),
                None,
            );
        }
    }
    if let Some(l) = &limits {
        for (i, s) in sources.iter().enumerate().filter(|(_, s)| s.schedule.is_none()) {
            if s.max_body_bytes > l.body_budget_bytes {
                p.add(
                    &format!("sources[{i}]"),
                    format!(
                        "source `{}` accepts bodies of up to {} bytes, more than limits.body_budget_bytes ({})",
                        s.name, s.max_body_bytes, l.body_budget_bytes
                    ),
                    Some("raise limits.body_budget_bytes, or lower the source's max_body_bytes".into()),
                );
            }
        }
    }
    if let Some(ch) = &channel {
        for (i, name) in ch.sources.iter().enumerate() {
            if !declared.contains(name) {
                p.add(
                    &format!("channel.sources[{i}]"),
                    format!("`{name}` is not a configured source"),
                    Some(format!("configured sources: {}", declared.join(", "))),
                );
            }
        }
    }
    p.finish()?;
    Ok(Config {
        path: path.to_owned(),
        listen: listen.expect("checked"),
        channel: channel.expect("checked"),
        limits: limits.expect("checked"),
        templates_dir,
        trusted_proxies,
        sources,
        store: store.expect("checked"),
        tls,
        tools,
        metrics,
        console: console.unwrap_or_default(),
    })
}

/// Header names (lowercase) refused in `headers:` and never stored: they authenticate
/// requests, so a template, a session or the store must never see them.
pub fn carries_credentials(name: &str) -> bool {
    // "authorization" is covered by "auth"; "api-key" and "apikey" by "key". One pass, a
    // word tried only where its first letter is: this runs for every header of every webhook.
    let b = name.as_bytes();
    (0..b.len()).any(|i| {
        let rest = &b[i..];
        match b[i] {
            b'a' => rest.starts_with(b"auth"),
            b'c' => rest.starts_with(b"cookie"),
            b'k' => rest.starts_with(b"key"),
            b't' => rest.starts_with(b"token"),
            b's' => rest.starts_with(b"signature") || rest.starts_with(b"secret"),
            b'h' => rest.starts_with(b"hmac"),
            b'p' => rest.starts_with(b"password"),
            _ => false,
        }
    })
}

/// A list of CIDR networks; each bad entry is reported at its own index.
fn cidrs(p: &mut Problems<'_>, value: Option<&Value>, field: &str) -> Vec<Cidr> {
    let Some(value) = value else { return Vec::new() };
    let Value::Sequence(items) = value else {
        p.add(
            field,
            "must be a list of networks",
            Some("write e.g. [10.0.0.0/8, 192.0.2.7]".into()),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (j, item) in items.iter().enumerate() {
        match item.as_str().map(str::parse::<Cidr>) {
            Some(Ok(c)) => out.push(c),
            Some(Err(e)) => p.add(&format!("{field}[{j}]"), e, None),
            None => p.add(
                &format!("{field}[{j}]"),
                "must be a network such as 10.0.0.0/8",
                None,
            ),
        }
    }
    out
}

/// `store.backend` and `store.nats`, checked together: `nats` needs its section and the
/// section means nothing without it.
fn store_backend(
    p: &mut Problems<'_>,
    base: &Path,
    backend: Option<&str>,
    nats: Option<NatsSettings>,
) -> Option<StoreBackend> {
    match (backend.unwrap_or("sqlite"), nats) {
        ("sqlite", None) => Some(StoreBackend::Sqlite),
        ("sqlite", Some(_)) => {
            p.add(
                "store.nats",
                "is only read with `backend: nats`",
                Some("set `store.backend: nats`, or remove `store.nats`".into()),
            );
            None
        }
        ("nats", None) => {
            p.add(
                "store.nats",
                "`backend: nats` needs a `store.nats` section with `servers`",
                Some(
                    "add `nats: {servers: [nats://n1:4222, nats://n2:4222, nats://n3:4222]}` under `store`"
                        .into(),
                ),
            );
            None
        }
        ("nats", Some(mut n)) => {
            let mut ok = true;
            if n.servers.is_empty() {
                p.add(
                    "store.nats.servers",
                    "needs at least one server URL",
                    Some("e.g. [nats://n1:4222, nats://n2:4222, nats://n3:4222]".into()),
                );
                ok = false;
            }
            if !matches!(n.replicas, 1 | 3 | 5) {
                p.add(
                    "store.nats.replicas",
                    format!("{} is not a JetStream replica count", n.replicas),
                    Some("write 1, 3 or 5 (3 for a three-node cluster)".into()),
                );
                ok = false;
            }
            let name_ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
            if n.prefix.is_empty() || !n.prefix.chars().all(name_ok) {
                p.add(
                    "store.nats.prefix",
                    format!("`{}` cannot name a stream", n.prefix),
                    Some("use letters, digits, `_` and `-` only".into()),
                );
                ok = false;
            }
            n.credentials_file = n.credentials_file.map(|f| base.join(f));
            if let Some(t) = n.tls.as_mut() {
                t.ca_file = t.ca_file.take().map(|f| base.join(f));
            }
            ok.then_some(StoreBackend::Nats(n))
        }
        (other, _) => {
            p.add(
                "store.backend",
                format!("`{other}` is not a store backend"),
                Some(format!("use one of: {}", STORE_BACKENDS.join(", "))),
            );
            None
        }
    }
}

fn section<T: DeserializeOwned>(p: &mut Problems<'_>, root: &Mapping, key: &str) -> Option<T> {
    let value = root.get(key).cloned().unwrap_or(Value::Mapping(Mapping::new()));
    match serde_norway::from_value(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let message = e.to_string();
            let field = match message.split('`').nth(1) {
                Some(f) if message.starts_with("unknown field") => format!("{key}.{f}"),
                _ => key.to_owned(),
            };
            p.add(&field, message, None);
            None
        }
    }
}

/// `fetch:`: the client of the schemes that fetch the vendor's keys ([`crate::fetch`]).
fn fetch_client(p: &mut Problems<'_>, root: &Mapping, base: &Path) -> crate::fetch::Fetch {
    let settings = match root.get("fetch") {
        None => crate::fetch::FetchSettings::default(),
        Some(_) => match section::<crate::fetch::FetchSettings>(p, root, "fetch") {
            Some(mut f) => {
                f.ca_file = f.ca_file.map(|c| base.join(c));
                f
            }
            None => return crate::fetch::Fetch::offline(),
        },
    };
    crate::fetch::Fetch::new(&settings).unwrap_or_else(|e| {
        p.add(
            "fetch.ca_file",
            e,
            Some("a PEM file of CA certificates to trust besides the web PKI roots".into()),
        );
        crate::fetch::Fetch::offline()
    })
}

/// What to do about a Basic auth source without TLS.
pub const BEHIND_TLS_HINT: &str =
    "serve it over HTTPS with `tls:` (hookwire serve), or, when a TLS-terminating proxy is in \
     front, say so with `behind_tls: true` (type basic: `verify: {user: ..., behind_tls: true}`)";

fn source(
    p: &mut Problems<'_>,
    base: &Path,
    registry: &Registry,
    (i, item): (usize, &Value),
    (read, fetch): (Secrets, &crate::fetch::Fetch),
    max_body_cap: Option<usize>,
) -> Option<Source> {
    let at = |f: &str| format!("sources[{i}].{f}");
    let Value::Mapping(map) = item else {
        p.add(
            &format!("sources[{i}]"),
            "a source must be a mapping with name, type and a secret",
            None,
        );
        return None;
    };
    let text = |p: &mut Problems<'_>, key: &str| -> Option<String> {
        match map.get(key) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                p.add(&at(key), "must be a string", None);
                None
            }
        }
    };
    let name = text(p, "name");
    let type_name = text(p, "type");
    let own_max_body = match map.get("max_body_bytes") {
        None => None,
        Some(v) => match v.as_u64().filter(|n| *n > 0) {
            Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            None => {
                p.add(
                    &at("max_body_bytes"),
                    "must be a whole number of bytes greater than 0",
                    Some("e.g. max_body_bytes: 1048576".into()),
                );
                None
            }
        },
    };
    let path = text(p, "path");
    let templates = text(p, "templates");
    let public_url = text(p, "public_url");
    let allow_from = cidrs(p, map.get("allow_from"), &at("allow_from"));
    let mut ok = true;
    let mut headers = Vec::new();
    match map.get("headers") {
        None => {}
        Some(Value::Sequence(items)) => {
            for (j, item) in items.iter().enumerate() {
                let name = item.as_str().unwrap_or_default().to_ascii_lowercase();
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    p.add(&at(&format!("headers[{j}]")), "not a header name", None);
                    ok = false;
                } else if carries_credentials(&name) {
                    p.add(
                        &at(&format!("headers[{j}]")),
                        format!("`{name}` may carry a credential and is never shown to templates"),
                        None,
                    );
                    ok = false;
                } else {
                    headers.push(name);
                }
            }
        }
        Some(_) => {
            p.add(
                &at("headers"),
                "must be a list of header names",
                Some("e.g. headers: [User-Agent, X-GitHub-Hook-ID]".into()),
            );
            ok = false;
        }
    }
    let storm = match map.get("storm").map(storm::StormSpec::from_yaml) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err((field, message))) => {
            let field = match field {
                "" => at("storm"),
                f => at(&format!("storm.{f}")),
            };
            p.add(
                &field,
                message,
                Some("storm takes group: <template>, window_secs: N, max_events: N".into()),
            );
            ok = false;
            None
        }
    };
    let connect = match map.get("connect") {
        None => None,
        Some(v) => match connect::ConnectSettings::from_yaml(v, base, read == Secrets::Read) {
            Ok(c) => Some(c),
            Err((field, message)) => {
                let field = match field {
                    "" => at("connect"),
                    f => at(&format!("connect.{f}")),
                };
                p.add(
                    &field,
                    message,
                    Some(
                        "connect takes repo: OWNER/NAME or org: ORG, token_env or token_file, api_url, \
                         catch_up: true|false, max_redeliveries: N"
                            .into(),
                    ),
                );
                ok = false;
                None
            }
        },
    };
    let filter = match map.get("filter").map(Filter::from_yaml) {
        None => None,
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => {
            let field = match e.field {
                "" => at("filter"),
                f => at(&format!("filter.{f}")),
            };
            p.add(
                &field,
                e.message,
                Some("filter takes events: [..] and when: <CEL expression over body, event, action>".into()),
            );
            ok = false;
            None
        }
    };
    if let Some(u) = &public_url {
        if !(u.starts_with("https://") || u.starts_with("http://")) || u.contains(['?', '#']) {
            p.add(
                &at("public_url"),
                format!("`{u}` is not an http(s) URL without a query"),
                Some(
                    "write the exact URL the vendor posts to, e.g. https://hooks.example.com/hooks/twilio"
                        .into(),
                ),
            );
            ok = false;
        }
    }

    let name = match name {
        Some(n)
            if !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            n
        }
        Some(n) => {
            p.add(
                &at("name"),
                format!("`{n}` is not a valid name"),
                Some("use letters, digits, - and _".into()),
            );
            ok = false;
            n
        }
        None => {
            p.add(&format!("sources[{i}]"), "missing `name`", None);
            return None;
        }
    };
    let path = path.unwrap_or_else(|| format!("/hooks/{name}"));
    if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
        p.add(
            &at("path"),
            format!("`{path}` is not a URL path"),
            Some("write it like /hooks/github".into()),
        );
        ok = false;
    }
    let factory = match type_name.as_deref() {
        None => {
            p.add(
                &format!("sources[{i}]"),
                "missing `type`",
                Some(format!("known types: {}", registry.known().join(", "))),
            );
            None
        }
        Some(t) => match registry.get(t) {
            Some(f) => Some(f.clone()),
            None => {
                p.add(
                    &at("type"),
                    format!("unknown source type `{t}`"),
                    Some(format!("known types: {}", registry.known().join(", "))),
                );
                None
            }
        },
    };

    // Secrets: by reference only, never inline; at least one (fail closed).
    let mut refs = Vec::new();
    for (key, make) in [
        ("secret_env", SecretRef::Env as fn(String) -> SecretRef),
        (
            "secret_file",
            (|s: String| SecretRef::File(s.into())) as fn(String) -> SecretRef,
        ),
    ] {
        if let Some(v) = map.get(key) {
            match serde_norway::from_value::<OneOrMany>(v.clone()) {
                Ok(names) => refs.extend(names.into_vec().into_iter().map(|n| (key, make(n)))),
                Err(_) => p.add(&at(key), "must be a name or a list of names", None),
            }
        }
    }
    if map.contains_key("secret") {
        p.add(
            &at("secret"),
            "secrets are never written in the config file",
            Some("put it in an environment variable (secret_env) or a file (secret_file)".into()),
        );
    }
    // Checked once the adapter is built: a scheme with the vendor's published keys has none.
    let no_secret = refs.is_empty();
    // Skipped, the adapter is built keyless and so fails closed.
    let mut secrets = Vec::new();
    let mut loaded = Vec::new();
    for (key, r) in refs.into_iter().filter(|_| read == Secrets::Read) {
        match r.load(base) {
            Ok(s) => {
                loaded.push((key, r.describe(base), s.expose().len()));
                secrets.push(s);
            }
            Err(e) => {
                p.add(&at(key), e.to_string(), Some(e.hint("secret_file")));
                ok = false;
            }
        }
    }

    let mut options = Mapping::new();
    for (k, v) in map {
        if !k
            .as_str()
            .is_some_and(|k| SOURCE_KEYS.contains(&k) || k == "secret")
        {
            options.insert(k.clone(), v.clone());
        }
    }
    let factory = factory?;
    if connect.is_some() && factory.type_name != "github" {
        p.add(
            &at("connect"),
            format!(
                "`connect:` is for sources of type github, and this one is {}",
                factory.type_name
            ),
            Some("remove it; `hookwire connect gitlab` takes its project on the command line".into()),
        );
        return None;
    }
    let spec = SourceSpec {
        name: &name,
        options: &options,
        secrets: SecretSet::new(secrets),
        public_url: public_url.as_deref(),
        fetch: fetch.clone(),
    };
    let built = (factory.build)(&spec);
    if no_secret && !built.as_ref().is_ok_and(|a| a.verifier().keyless()) {
        p.add(
            &format!("sources[{i}]"),
            format!("source `{name}` has no secret; hookwire refuses unauthenticated sources"),
            Some("add secret_env: SOME_VARIABLE or secret_file: path/to/file".into()),
        );
        ok = false;
    }
    let adapter = match built {
        Ok(a) => a,
        Err(errors) => {
            for e in errors {
                let field = e
                    .field
                    .as_deref()
                    .map(&at)
                    .unwrap_or_else(|| format!("sources[{i}]"));
                // At the top of a source, an unknown key may be a misspelt common key.
                let top = e.field.as_deref().is_none_or(|f| !f.contains('.'));
                let hint = e.hint.or_else(|| {
                    (top && e.message.starts_with("unknown field"))
                        .then(|| format!("the common source keys are valid too: {}", SOURCE_KEYS.join(", ")))
                });
                p.add(
                    &field,
                    format!("{} source: {}", factory.type_name, e.message),
                    hint,
                );
            }
            return None;
        }
    };
    // The adapter knows how short a secret its vendor may issue.
    for (key, what, len) in &loaded {
        if let Err(e) = crate::secret::check_length(*len, adapter.min_secret_bytes(), what) {
            p.add(&at(key), e.to_string(), Some(e.hint("secret_file")));
            ok = false;
        }
    }
    // A header the scheme reads as a credential is never shown, whatever its name.
    let credentials = adapter.verifier().credential_headers();
    for (j, h) in headers.iter().enumerate() {
        if credentials.contains(h) {
            p.add(
                &at(&format!("headers[{j}]")),
                format!("`{h}` carries this source's credential and is never shown to templates"),
                Some("remove it from headers:".into()),
            );
            ok = false;
        }
    }
    let max_body_bytes = own_max_body.unwrap_or(match (adapter.max_body_bytes(), max_body_cap) {
        (Some(vendor), Some(cap)) => vendor.min(cap),
        (Some(vendor), None) => vendor,
        (None, Some(cap)) => cap,
        (None, None) => DEFAULT_MAX_BODY,
    });
    ok.then(|| Source {
        max_body_bytes,
        name,
        type_name: factory.type_name.to_owned(),
        templates: templates.unwrap_or_else(|| factory.type_name.to_owned()),
        public_url,
        allow_from,
        filter,
        storm,
        headers,
        schedule: None,
        connect,
        path,
        adapter,
        description: factory.description,
    })
}

#[cfg(test)]
mod tests {
    use super::carries_credentials;

    #[test]
    fn credential_headers_are_recognised_anywhere_in_the_name() {
        for name in [
            "authorization",
            "proxy-authorization",
            "cookie",
            "set-cookie",
            "x-api-key",
            "dd-apikey",
            "x-hub-signature-256",
            "x-gitlab-token",
            "x-webhook-secret",
            "x-hmac-sha256",
            "x-password",
            "key",
        ] {
            assert!(carries_credentials(name), "{name} should be withheld");
        }
        for name in [
            "content-type",
            "user-agent",
            "x-github-event",
            "x-github-delivery",
            "ke",
            "",
        ] {
            assert!(!carries_credentials(name), "{name} should be kept");
        }
    }
}
