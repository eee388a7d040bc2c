//! Sentry integration-platform webhooks: `Sentry-Hook-Signature: <hex HMAC-SHA256(client secret,
//! raw body)>` (bare hex), the resource in `Sentry-Hook-Resource`, the action in the body, the
//! delivery id in `Request-ID`. `Sentry-Hook-Timestamp` is not signed, so it is not trusted.

use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{Adapter, AdapterFactory, OptionError, Registry, SourceSpec};
use hookwire_core::verify::codec::{Digest, Encoding};
use hookwire_core::verify::{Scheme, SignatureScheme};
use serde::Deserialize;

/// The `type:` name of this adapter.
pub const TYPE: &str = "sentry";

/// Adds the Sentry source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description: "Sentry issues, errors, alerts and comments from an internal integration",
        build,
    });
}

/// Sentry has no options beyond the common source keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

/// How Sentry signs.
fn scheme(_o: &Options) -> Scheme {
    Scheme::Signature(SignatureScheme::hmac_body(
        Digest::Sha256,
        "Sentry-Hook-Signature",
        "",
        Encoding::Hex,
    ))
}

/// Where Sentry puts the event type, action and delivery id.
fn naming() -> Naming {
    Naming {
        event: vec![Locator::header_matching("Sentry-Hook-Resource", "^[a-z_]{1,64}$")],
        action: vec![Locator::json("/action")],
        delivery: vec![Locator::header("Request-ID")],
        acknowledge: vec![],
        derive_delivery: None,
        split_action: false,
    }
}

fn build(spec: &SourceSpec<'_>) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
    let o: Options = spec.options().map_err(|e| vec![e])?;
    Ok(Box::new(
        Declared::new(Declared::bind(scheme(&o), spec)?, naming())
            // Sentry documents no maximum; events embed error payloads of up to 1 MB.
            .with_max_body_bytes(2_097_152),
    ))
}
