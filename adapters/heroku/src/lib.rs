//! Heroku app webhooks: `Heroku-Webhook-Hmac-SHA256: <base64 HMAC-SHA256(secret, raw body)>`; the
//! resource and action in the body, the delivery id in `Heroku-Webhook-Id`.

use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{Adapter, AdapterFactory, OptionError, Registry, SourceSpec};
use hookwire_core::verify::codec::{Digest, Encoding};
use hookwire_core::verify::{Scheme, SignatureScheme};
use serde::Deserialize;

/// The `type:` name of this adapter.
pub const TYPE: &str = "heroku";

/// Adds the Heroku source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description: "Heroku app events (builds, releases, dynos, add-ons)",
        build,
    });
}

/// Heroku has no options beyond the common source keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

/// How Heroku signs.
fn scheme(_o: &Options) -> Scheme {
    Scheme::Signature(SignatureScheme::hmac_body(
        Digest::Sha256,
        "Heroku-Webhook-Hmac-SHA256",
        "",
        Encoding::Base64,
    ))
}

/// Where Heroku puts the event type, action and delivery id.
fn naming() -> Naming {
    Naming {
        event: vec![Locator::json("/resource")],
        action: vec![Locator::json("/action")],
        delivery: vec![Locator::header("Heroku-Webhook-Id"), Locator::json("/id")],
        acknowledge: vec![],
        derive_delivery: None,
        split_action: false,
    }
}

fn build(spec: &SourceSpec<'_>) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
    let o: Options = spec.options().map_err(|e| vec![e])?;
    Ok(Box::new(Declared::new(
        Declared::bind(scheme(&o), spec)?,
        naming(),
    )))
}
