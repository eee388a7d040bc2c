//! The adapter seam: how a source verifies and names an event, and the registry of source
//! types: the YAML-declared ones ([`declared`]) and the built-in vendors, each a preset of
//! one of them ([`preset`]; the list is the `adapters` folder), filled in explicitly by the
//! binary.

pub mod alerts;
pub mod declared;
pub mod no_door;
pub mod preset;

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::secret::{SecretSet, MIN_SECRET_BYTES};
pub use crate::verify::Request;
use crate::verify::Verifier;

/// What happens to a verified, identified event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Render it and deliver it to the sessions subscribed to the source.
    Deliver,
    /// Answer 2xx and stop: a vendor housekeeping event such as GitHub's `ping`.
    Acknowledge,
    /// Answer 200 with this body and stop: a handshake the vendor waits for (Slack's
    /// `url_verification` challenge, Discord's PING).
    Reply(Reply),
}

/// A response body a vendor handshake requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Its media type.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

/// The names an adapter gives a verified event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The vendor's event type (`issues`, `workflow_run`, `alert`).
    pub event: String,
    /// The sub-type where the vendor has one (`opened`, `completed`, `Triggered`).
    pub action: Option<String>,
    /// The vendor's delivery id, or a hash of the body where it sends none. Also the key a
    /// repeat is recognised by.
    pub delivery_id: String,
    /// Deliver, only acknowledge, or answer a handshake.
    pub disposition: Disposition,
    /// For a delivered event, the body the vendor expects back instead of a bare 202 (a
    /// Discord interaction or a Slack command must be answered, or the user sees a failure).
    pub reply: Option<Reply>,
    /// Meta attributes the sender chose (the `push` source); sanitised like every meta
    /// value, after the template's own, which win on a clash.
    pub meta: Vec<(String, String)>,
}

impl Identity {
    /// `event.action`, or `event` alone: the event name shown to Claude and used to pick a
    /// template.
    pub fn full_name(&self) -> String {
        match &self.action {
            Some(a) => format!("{}.{}", self.event, a),
            None => self.event.clone(),
        }
    }
}

/// Why a verified request cannot be named; the vendor gets 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdentifyError(pub String);

/// A vendor's behaviour for one configured source.
pub trait Adapter: Send + Sync + fmt::Debug {
    /// The source's verification scheme with its keys.
    fn verifier(&self) -> &Verifier;

    /// Names the event and its delivery id. Called only after verification succeeded, with
    /// the parsed body (a form body arrives as an object of its fields).
    fn identify(&self, req: &Request<'_>, body: &Value) -> Result<Identity, IdentifyError>;

    /// The body fields (dotted paths) `identify` reads, so the parser may skip the others.
    /// `None`, the default, means it may read anything and the body is parsed whole.
    fn identity_fields(&self) -> Option<Vec<String>> {
        None
    }

    /// The largest body the vendor documents sending, when it documents one: the source's
    /// default body limit. `None`: `limits.max_body_bytes`, else [`crate::config::DEFAULT_MAX_BODY`].
    fn max_body_bytes(&self) -> Option<usize> {
        None
    }

    /// The shortest secret this source type accepts: [`MIN_SECRET_BYTES`] unless the vendor
    /// itself issues shorter secrets, which its adapter then declares here. `hookwire check`
    /// and every start refuse a configured secret shorter than this.
    fn min_secret_bytes(&self) -> usize {
        MIN_SECRET_BYTES
    }

    /// The headers that name an event, for `hookwire send` (`X-GitHub-Event: issues`,
    /// `X-GitHub-Delivery: <id>`).
    fn naming_headers(&self, event: Option<&str>, delivery_id: &str) -> Vec<(String, String)> {
        let _ = (event, delivery_id);
        Vec::new()
    }
}

/// A problem with a source's adapter-specific options, reported with the rest of the config
/// errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    /// The option's name, when the problem is one option.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

/// What a factory gets to build an adapter for one configured source.
pub struct SourceSpec<'a> {
    /// The source's configured name.
    pub name: &'a str,
    /// The adapter-specific options (every key of the source that is not a common field).
    pub options: &'a serde_norway::Mapping,
    /// The source's loaded secrets.
    pub secrets: SecretSet,
    /// The source's `public_url`, for schemes that sign the URL.
    pub public_url: Option<&'a str>,
    /// The outbound client for schemes whose keys the vendor publishes (`fetch:`).
    pub fetch: crate::fetch::Fetch,
}

impl SourceSpec<'_> {
    /// Deserialises the adapter's options struct. Use `#[serde(deny_unknown_fields)]` on it so a
    /// misspelt option is reported with the list of valid ones.
    pub fn options<T: DeserializeOwned>(&self) -> Result<T, OptionError> {
        let value = serde_norway::Value::Mapping(self.options.clone());
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let message = e.inner().to_string();
            // The path already ends in an unknown key; at the top it is empty and the message
            // names the key ("unknown field `x`, expected ...").
            let unknown = message
                .strip_prefix("unknown field `")
                .and_then(|m| m.split('`').next());
            let field = match path.as_str() {
                "." | "" => unknown.map(str::to_owned),
                p => Some(p.to_owned()),
            };
            OptionError {
                field,
                message,
                hint: None,
            }
        })
    }
}

/// Builds an adapter for one source.
pub type BuildFn =
    std::sync::Arc<dyn Fn(&SourceSpec<'_>) -> Result<Box<dyn Adapter>, Vec<OptionError>> + Send + Sync>;

/// A source type: a declared type (`hmac`, ...) or a built-in vendor's preset.
#[derive(Clone)]
pub struct AdapterFactory {
    /// The `type:` value in config.yaml, also the default template folder name.
    pub type_name: &'static str,
    /// One line for `instructions` and error messages: what these events are.
    pub description: &'static str,
    /// Builds the adapter.
    pub build: BuildFn,
}

impl fmt::Debug for AdapterFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdapterFactory")
            .field("type_name", &self.type_name)
            .finish()
    }
}

/// The known source types. Filled explicitly by the binary, one call per vendor crate.
#[derive(Debug, Default)]
pub struct Registry {
    factories: BTreeMap<&'static str, AdapterFactory>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a source type. A second registration of the same name is a programming error.
    pub fn register(&mut self, factory: AdapterFactory) {
        let name = factory.type_name;
        let previous = self.factories.insert(name, factory);
        assert!(previous.is_none(), "adapter type {name} registered twice");
    }

    /// The factory for a `type:` value.
    pub fn get(&self, type_name: &str) -> Option<&AdapterFactory> {
        self.factories.get(type_name)
    }

    /// Every known type name, sorted: listed in "unknown type" errors.
    pub fn known(&self) -> Vec<&'static str> {
        self.factories.keys().copied().collect()
    }
}
