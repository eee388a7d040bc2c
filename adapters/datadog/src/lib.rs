//! Datadog webhooks. Datadog does not sign webhooks, so a source is authenticated by a shared
//! secret token: in a custom header (default `X-Hookwire-Token`) or as the password of HTTP
//! Basic auth, compared in constant time. The payload is the JSON template configured in
//! Datadog's Webhooks integration (see this crate's README for the one hookwire expects).

use hookwire_core::adapter::{
    Adapter, AdapterFactory, Disposition, IdentifyError, Identity, OptionError, Registry, Request, SourceSpec,
};
use hookwire_core::secret::SecretSet;
use hookwire_core::verify::{self, SecretIndex, VerifyError};
use serde::Deserialize;
use serde_json::Value;
use subtle::ConstantTimeEq;

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

fn build(spec: &SourceSpec<'_>) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
    let o: Options = spec.options().map_err(|e| vec![e])?;
    if header_name_is_invalid(&o.token_header) {
        return Err(vec![OptionError {
            field: Some("token_header".into()),
            message: format!("`{}` is not a valid header name", o.token_header),
            hint: Some("use letters, digits and -, e.g. X-Hookwire-Token".into()),
        }]);
    }
    Ok(Box::new(Datadog {
        secrets: spec.secrets.clone(),
        token_header: o.token_header.to_ascii_lowercase(),
        basic_auth_user: o.basic_auth_user,
    }))
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
pub struct Datadog {
    secrets: SecretSet,
    token_header: String,
    basic_auth_user: Option<String>,
}

impl Adapter for Datadog {
    fn verify(&self, req: &Request<'_>) -> Result<SecretIndex, VerifyError> {
        if let Some(token) = req.header(&self.token_header) {
            return verify::token(Some(token), &self.secrets);
        }
        let Some(auth) = req.header("authorization") else {
            return if self.secrets.is_empty() {
                Err(VerifyError::NoSecret)
            } else {
                Err(VerifyError::Missing)
            };
        };
        let (user, password) = verify::basic_credentials(auth).ok_or(VerifyError::Malformed)?;
        let matched = verify::token(Some(&password), &self.secrets)?;
        match &self.basic_auth_user {
            Some(want) if !bool::from(want.as_bytes().ct_eq(&user)) => Err(VerifyError::Mismatch),
            _ => Ok(matched),
        }
    }

    fn identify(&self, req: &Request<'_>, body: &Value) -> Result<Identity, IdentifyError> {
        let transition =
            filled(body.pointer("/alert/transition")).or_else(|| filled(body.get("alert_transition")));
        let id = filled(body.get("id"));
        let delivery_id = match (id, transition) {
            (Some(id), Some(t)) => format!("{id}-{}", t.to_ascii_lowercase().replace(' ', "_")),
            (Some(id), None) => id.to_owned(),
            // No id in the payload: the body itself identifies the delivery.
            _ => verify::sha256_hex(req.body),
        };
        Ok(Identity {
            event: "alert".to_owned(),
            action: transition.map(|t| t.to_ascii_lowercase().replace(' ', "_")),
            delivery_id,
            disposition: Disposition::Deliver,
        })
    }

    fn identity_fields(&self) -> Option<&'static [&'static str]> {
        Some(&["id", "alert.transition", "alert_transition"])
    }
}
