//! Zendesk webhooks: `X-Zendesk-Webhook-Signature: <base64 HMAC-SHA256(secret, timestamp + raw
//! body)>` with the ISO-8601 timestamp in `X-Zendesk-Webhook-Signature-Timestamp`; the secret is
//! used as text although it looks like base64. Zendesk documents no window; hookwire holds 300 s.

use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{Adapter, AdapterFactory, OptionError, Registry, SourceSpec};
use hookwire_core::verify::codec::{Digest, Encoding};
use hookwire_core::verify::signature::Signed;
use hookwire_core::verify::timestamp::{TimestampFormat, TimestampSpec};
use hookwire_core::verify::{Scheme, SignatureScheme};
use serde::Deserialize;

/// The `type:` name of this adapter.
pub const TYPE: &str = "zendesk";

/// Adds the Zendesk source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description: "Zendesk tickets, users and organisations",
        build,
    });
}

/// Zendesk options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Largest accepted distance of the signed timestamp from now, both ways.
    #[serde(default = "default_tolerance")]
    tolerance_secs: u64,
}

fn default_tolerance() -> u64 {
    300
}

/// How Zendesk signs.
fn scheme(o: &Options) -> Scheme {
    Scheme::Signature(SignatureScheme {
        signed: Signed::parse("{timestamp}{body}").expect("valid template"),
        timestamp: Some(TimestampSpec {
            format: TimestampFormat::Rfc3339,
            ..TimestampSpec::header("X-Zendesk-Webhook-Signature-Timestamp", o.tolerance_secs)
        }),
        ..SignatureScheme::hmac_body(
            Digest::Sha256,
            "X-Zendesk-Webhook-Signature",
            "",
            Encoding::Base64,
        )
    })
}

/// Where Zendesk puts the event type, action and delivery id.
fn naming() -> Naming {
    Naming {
        event: vec![Locator::json("/type")],
        action: vec![],
        delivery: vec![Locator::json("/id")],
        acknowledge: vec![],
        derive_delivery: None,
        split_action: false,
    }
}

fn build(spec: &SourceSpec<'_>) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
    let o: Options = spec.options().map_err(|e| vec![e])?;
    Ok(Box::new(
        Declared::new(Declared::bind(scheme(&o), spec)?, naming())
            // Zendesk: request payloads must be under 256 KB.
            .with_max_body_bytes(262_144),
    ))
}
