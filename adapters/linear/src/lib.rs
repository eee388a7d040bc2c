//! Linear webhooks: `Linear-Signature: <hex HMAC-SHA256(secret, raw body)>`; the body must carry
//! `webhookTimestamp` (Unix ms, inside the signed bytes) within 60 s of now, as Linear's docs
//! recommend; a body without it is refused. Event in `Linear-Event`, action in the body,
//! delivery id in `Linear-Delivery`.

use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{Adapter, AdapterFactory, OptionError, Registry, SourceSpec};
use hookwire_core::verify::codec::{Digest, Encoding};
use hookwire_core::verify::timestamp::{TimestampFormat, TimestampFrom, TimestampSpec};
use hookwire_core::verify::{Scheme, SignatureScheme};
use serde::Deserialize;

/// The `type:` name of this adapter.
pub const TYPE: &str = "linear";

/// Adds the Linear source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description: "Linear issues, comments, projects and cycles",
        build,
    });
}

/// Linear options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Largest accepted distance of `webhookTimestamp` from now (Linear recommends a minute).
    #[serde(default = "default_tolerance")]
    tolerance_secs: u64,
}

fn default_tolerance() -> u64 {
    60
}

/// How Linear signs.
fn scheme(o: &Options) -> Scheme {
    Scheme::Signature(SignatureScheme {
        timestamp: Some(TimestampSpec {
            from: TimestampFrom::Json("/webhookTimestamp".into()),
            format: TimestampFormat::UnixMs,
            tolerance_secs: Some(o.tolerance_secs),
            past_only: false,
            // Fail closed: Linear puts it in every delivery, so a body without it is either not
            // from Linear or a capture that would otherwise verify forever.
            required: true,
        }),
        ..SignatureScheme::hmac_body(Digest::Sha256, "Linear-Signature", "", Encoding::Hex)
    })
}

/// Where Linear puts the event type, action and delivery id.
fn naming() -> Naming {
    Naming {
        event: vec![
            Locator::header_matching("Linear-Event", "^[A-Z][A-Za-z]{0,63}$"),
            Locator::json("/type"),
        ],
        action: vec![Locator::json("/action")],
        delivery: vec![Locator::header("Linear-Delivery")],
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
