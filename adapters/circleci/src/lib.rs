//! CircleCI outbound webhooks: `circleci-signature: v1=<hex HMAC-SHA256(secret, raw body)>` (a
//! comma list; unknown versions are ignored), the event in `circleci-event-type`, the id in the
//! body.

use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{Adapter, AdapterFactory, OptionError, Registry, SourceSpec};
use hookwire_core::verify::codec::{Digest, Encoding};
use hookwire_core::verify::{Scheme, SignatureScheme};
use serde::Deserialize;

/// The `type:` name of this adapter.
pub const TYPE: &str = "circleci";

/// Adds the CircleCI source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description: "CircleCI workflow and job completions",
        build,
    });
}

/// CircleCI has no options beyond the common source keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

/// How CircleCI signs.
fn scheme(_o: &Options) -> Scheme {
    Scheme::Signature(
        SignatureScheme::hmac_body(Digest::Sha256, "circleci-signature", "", Encoding::Hex)
            .with_list("v1", ",", "="),
    )
}

/// Where CircleCI puts the event type, action and delivery id.
fn naming() -> Naming {
    Naming {
        event: vec![
            Locator::header_matching("circleci-event-type", "^[a-z]{1,32}(-[a-z]{1,32}){0,4}$"),
            Locator::json("/type"),
        ],
        action: vec![],
        delivery: vec![Locator::json("/id")],
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
