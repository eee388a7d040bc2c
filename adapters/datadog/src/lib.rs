//! Datadog webhooks. Datadog does not sign webhooks, so a source is authenticated by a shared
//! secret token: in a custom header (default `X-Hookwire-Token`), as a Bearer token (Datadog's
//! OAuth2 "Auth Methods"), or as the password of HTTP Basic auth, compared in constant time. The
//! payload is the JSON template configured in Datadog's Webhooks integration (see this crate's
//! README for the one hookwire expects).

use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{
    Adapter, AdapterFactory, IdentifyError, Identity, OptionError, Registry, Request, SourceSpec,
};
use hookwire_core::verify::{self, Scheme, TokenScheme, Verifier};
use serde::Deserialize;
use serde_json::Value;

/// The `type:` name of this adapter.
pub const TYPE: &str = "datadog";

/// Header that carries the token unless `token_header` says otherwise.
pub const DEFAULT_TOKEN_HEADER: &str = "X-Hookwire-Token";

/// Adds the Datadog source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description:
            "Datadog monitor alerts from the Webhooks integration (triggered, warning, recovered, ...)",
        build,
    });
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Header holding the shared token (set as a custom header in Datadog).
    #[serde(default = "default_header")]
    token_header: String,
    /// When set, Basic auth must use this user name (the password is the secret).
    #[serde(default)]
    basic_auth_user: Option<String>,
}

fn default_header() -> String {
    DEFAULT_TOKEN_HEADER.to_owned()
}

/// How Datadog authenticates: a token in a header, Bearer, or Basic auth.
fn scheme(o: &Options) -> Result<Scheme, OptionError> {
    if header_name_is_invalid(&o.token_header) {
        return Err(OptionError {
            field: Some("token_header".into()),
            message: format!("`{}` is not a valid header name", o.token_header),
            hint: Some("use letters, digits and -, e.g. X-Hookwire-Token".into()),
        });
    }
    Ok(Scheme::Token(TokenScheme {
        header: Some(o.token_header.to_ascii_lowercase()),
        bearer: true,
        basic: true,
        basic_user: o.basic_auth_user.clone(),
    }))
}

/// Where the payload hookwire documents puts the event's names. The identity itself is
/// computed in [`Datadog::identify`], which normalises the transition.
fn naming() -> Naming {
    Naming {
        event: vec![Locator::value("alert")],
        ..Naming::default()
    }
}

fn build(spec: &SourceSpec<'_>) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
    let o: Options = spec.options().map_err(|e| vec![e])?;
    let scheme = scheme(&o).map_err(|e| vec![e])?;
    Ok(Box::new(Datadog(Declared::new(
        Declared::bind(scheme, spec)?,
        naming(),
    ))))
}

/// A string field that Datadog actually filled in (an unset `$VARIABLE` stays literal).
fn filled(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty() && !s.starts_with('$'))
}

fn header_name_is_invalid(name: &str) -> bool {
    name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A configured Datadog source.
#[derive(Debug)]
struct Datadog(Declared);

impl Adapter for Datadog {
    fn verifier(&self) -> &Verifier {
        self.0.verifier()
    }

    fn identify(&self, req: &Request<'_>, body: &Value) -> Result<Identity, IdentifyError> {
        let mut identity = self.0.identify(req, body)?;
        let transition = filled(body.pointer("/alert/transition"))
            .or_else(|| filled(body.get("alert_transition")))
            .map(|t| t.to_ascii_lowercase().replace(' ', "_"));
        identity.delivery_id = match (filled(body.get("id")), &transition) {
            // Datadog retries with the same $ID; a recovery of the same alert is a new event.
            (Some(id), Some(t)) => format!("{id}-{t}"),
            (Some(id), None) => id.to_owned(),
            _ => verify::sha256_hex(req.body),
        };
        identity.action = transition;
        Ok(identity)
    }

    fn identity_fields(&self) -> Option<Vec<String>> {
        Some(vec![
            "id".into(),
            "alert.transition".into(),
            "alert_transition".into(),
        ])
    }

    fn naming_headers(&self, _event: Option<&str>, _delivery_id: &str) -> Vec<(String, String)> {
        Vec::new()
    }
}
