//! Bitbucket Cloud webhooks: `X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>` (SHA-256
//! under the header name GitHub uses for SHA-1), the event in `X-Event-Key`, the delivery id in
//! `X-Request-UUID`.

use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{Adapter, AdapterFactory, OptionError, Registry, SourceSpec};
use hookwire_core::verify::codec::{Digest, Encoding};
use hookwire_core::verify::{Scheme, SignatureScheme};
use serde::Deserialize;

/// The `type:` name of this adapter.
pub const TYPE: &str = "bitbucket";

/// Adds the Bitbucket Cloud source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description: "Bitbucket Cloud repository webhooks (pushes, pull requests, comments, builds)",
        build,
    });
}

/// Bitbucket Cloud has no options beyond the common source keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

/// How Bitbucket Cloud signs.
fn scheme(_o: &Options) -> Scheme {
    Scheme::Signature(SignatureScheme::hmac_body(
        Digest::Sha256,
        "X-Hub-Signature",
        "sha256=",
        Encoding::Hex,
    ))
}

/// Where Bitbucket Cloud puts the event type, action and delivery id.
fn naming() -> Naming {
    Naming {
        event: vec![Locator::header_matching(
            "X-Event-Key",
            "^[a-z_]{1,32}:[a-z_]{1,64}$",
        )],
        action: vec![],
        // Not X-Hook-UUID: it names the webhook, the same for every delivery.
        delivery: vec![Locator::header("X-Request-UUID")],
        acknowledge: vec![],
        derive_delivery: None,
        split_action: false,
    }
}

fn build(spec: &SourceSpec<'_>) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
    let o: Options = spec.options().map_err(|e| vec![e])?;
    Ok(Box::new(
        Declared::new(Declared::bind(scheme(&o), spec)?, naming())
            // Bitbucket Cloud: "Webhook payload is limited to 256 KB".
            .with_max_body_bytes(262_144),
    ))
}
