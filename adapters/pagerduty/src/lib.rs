//! PagerDuty v3 webhook subscriptions: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]`, HMAC-SHA256
//! of the raw body with the subscription secret used as text (not base64-decoded); any `v1`
//! entry may match during a rotation. The event type is in the body, the delivery id in
//! `X-Webhook-Id`.

use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{Adapter, AdapterFactory, OptionError, Registry, SourceSpec};
use hookwire_core::verify::codec::{Digest, Encoding};
use hookwire_core::verify::{Scheme, SignatureScheme};
use serde::Deserialize;

/// The `type:` name of this adapter.
pub const TYPE: &str = "pagerduty";

/// Adds the PagerDuty source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description: "PagerDuty incidents and services (v3 webhook subscriptions)",
        build,
    });
}

/// PagerDuty has no options beyond the common source keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

/// How PagerDuty signs.
fn scheme(_o: &Options) -> Scheme {
    Scheme::Signature(
        SignatureScheme::hmac_body(Digest::Sha256, "X-PagerDuty-Signature", "", Encoding::Hex)
            .with_list("v1", ",", "="),
    )
}

/// Where PagerDuty puts the event type, action and delivery id.
fn naming() -> Naming {
    Naming {
        event: vec![Locator::json("/event/event_type")],
        action: vec![],
        delivery: vec![Locator::header("X-Webhook-Id"), Locator::json("/event/id")],
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
            // PagerDuty drops webhooks over 256 KB (v3 webhook behavior).
            .with_max_body_bytes(262_144),
    ))
}
