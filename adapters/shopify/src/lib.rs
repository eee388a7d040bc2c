//! Shopify webhooks: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(client secret, raw body)>`, the
//! topic in `X-Shopify-Topic`, the delivery id in `X-Shopify-Webhook-Id`. After a secret rotation
//! Shopify may sign with the old secret for up to an hour: list both.

use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{Adapter, AdapterFactory, OptionError, Registry, SourceSpec};
use hookwire_core::verify::codec::{Digest, Encoding};
use hookwire_core::verify::{Scheme, SignatureScheme};
use serde::Deserialize;

/// The `type:` name of this adapter.
pub const TYPE: &str = "shopify";

/// Adds the Shopify source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description: "Shopify store events (orders, products, customers, fulfilments)",
        build,
    });
}

/// Shopify has no options beyond the common source keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

/// How Shopify signs.
fn scheme(_o: &Options) -> Scheme {
    Scheme::Signature(SignatureScheme::hmac_body(
        Digest::Sha256,
        "X-Shopify-Hmac-Sha256",
        "",
        Encoding::Base64,
    ))
}

/// Where Shopify puts the event type, action and delivery id.
fn naming() -> Naming {
    Naming {
        event: vec![Locator::header_matching(
            "X-Shopify-Topic",
            "^[a-z_]{1,64}(/[a-z_]{1,64}){1,3}$",
        )],
        action: vec![],
        delivery: vec![
            Locator::header("X-Shopify-Webhook-Id"),
            Locator::header("X-Shopify-Event-Id"),
        ],
        acknowledge: vec![],
        derive_delivery: None,
        split_action: false,
    }
}

fn build(spec: &SourceSpec<'_>) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
    let o: Options = spec.options().map_err(|e| vec![e])?;
    Ok(Box::new(
        Declared::new(Declared::bind(scheme(&o), spec)?, naming())
            // Shopify documents no maximum; its staff report bodies "upwards of a megabyte".
            .with_max_body_bytes(5_242_880),
    ))
}
