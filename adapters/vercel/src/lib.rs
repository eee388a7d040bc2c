//! Vercel webhooks: `x-vercel-signature: <hex HMAC-SHA1(secret, raw body)>`; event type and id in
//! the body.

use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{Adapter, AdapterFactory, OptionError, Registry, SourceSpec};
use hookwire_core::verify::codec::{Digest, Encoding};
use hookwire_core::verify::{Scheme, SignatureScheme};
use serde::Deserialize;

/// The `type:` name of this adapter.
pub const TYPE: &str = "vercel";

/// Adds the Vercel source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description: "Vercel deployments, projects and domains",
        build,
    });
}

/// Vercel has no options beyond the common source keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

/// How Vercel signs.
fn scheme(_o: &Options) -> Scheme {
    Scheme::Signature(SignatureScheme::hmac_body(
        Digest::Sha1,
        "x-vercel-signature",
        "",
        Encoding::Hex,
    ))
}

/// Where Vercel puts the event type, action and delivery id.
fn naming() -> Naming {
    Naming {
        event: vec![Locator::json("/type")],
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
    Ok(Box::new(Declared::new(
        Declared::bind(scheme(&o), spec)?,
        naming(),
    )))
}
