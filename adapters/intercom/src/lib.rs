//! Intercom webhooks: `X-Hub-Signature: sha1=<hex HMAC-SHA1(client secret, raw body)>` (SHA-1 under
//! the same header Bitbucket uses for SHA-256: the parser is chosen by vendor, never by header).
//! Topic and id in the body.

use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{Adapter, AdapterFactory, OptionError, Registry, SourceSpec};
use hookwire_core::verify::codec::{Digest, Encoding};
use hookwire_core::verify::{Scheme, SignatureScheme};
use serde::Deserialize;

/// The `type:` name of this adapter.
pub const TYPE: &str = "intercom";

/// Adds the Intercom source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description: "Intercom conversations, contacts and tickets",
        build,
    });
}

/// Intercom has no options beyond the common source keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

/// How Intercom signs.
fn scheme(_o: &Options) -> Scheme {
    Scheme::Signature(SignatureScheme::hmac_body(
        Digest::Sha1,
        "X-Hub-Signature",
        "sha1=",
        Encoding::Hex,
    ))
}

/// Where Intercom puts the event type, action and delivery id.
fn naming() -> Naming {
    Naming {
        event: vec![Locator::json("/topic")],
        action: vec![],
        delivery: vec![Locator::json("/id")],
        acknowledge: vec![],
        // `invoice.paid` → `invoice` + `paid`: one template per family.
        derive_delivery: None,
        split_action: true,
    }
}

fn build(spec: &SourceSpec<'_>) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
    let o: Options = spec.options().map_err(|e| vec![e])?;
    Ok(Box::new(
        Declared::new(Declared::bind(scheme(&o), spec)?, naming())
            // Intercom documents no maximum; conversations carry up to 500 parts.
            .with_max_body_bytes(2_097_152),
    ))
}
