//! Grafana Alerting webhook contact points with HMAC (Grafana 12+): bare-hex HMAC-SHA256 of the
//! raw body in `X-Grafana-Alerting-Signature` (configurable: an earlier signer used
//! `X-Grafana-Alert-Signature`); with a timestamp header configured, the signed content is
//! `"<unix seconds>:" + body` and hookwire holds a 300 s window. Grafana sends no delivery id:
//! one is derived from the alert group.

use hookwire_core::adapter::alerts::group_delivery_id;
use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{Adapter, AdapterFactory, OptionError, Registry, SourceSpec};
use hookwire_core::verify::codec::{Digest, Encoding};
use hookwire_core::verify::signature::Signed;
use hookwire_core::verify::timestamp::TimestampSpec;
use hookwire_core::verify::{Scheme, SignatureScheme};
use serde::Deserialize;

/// The `type:` name of this adapter.
pub const TYPE: &str = "grafana";

/// Adds the Grafana source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description: "Grafana Alerting notifications (firing and resolved alert groups)",
        build,
    });
}

/// Grafana options: the contact point's `hmacConfig` header names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// The signature header (`hmacConfig.header`).
    #[serde(default = "default_signature_header")]
    signature_header: String,
    /// The timestamp header (`hmacConfig.timestampHeader`); it has no default in Grafana.
    #[serde(default)]
    timestamp_header: Option<String>,
    /// Largest accepted distance of the signed timestamp from now, both ways.
    #[serde(default = "default_tolerance")]
    tolerance_secs: u64,
}

fn default_signature_header() -> String {
    "X-Grafana-Alerting-Signature".into()
}

fn default_tolerance() -> u64 {
    300
}

/// How Grafana signs.
fn scheme(o: &Options) -> Scheme {
    let base = SignatureScheme::hmac_body(Digest::Sha256, &o.signature_header, "", Encoding::Hex);
    Scheme::Signature(match &o.timestamp_header {
        None => base,
        Some(h) => SignatureScheme {
            signed: Signed::parse("{timestamp}:{body}").expect("valid template"),
            timestamp: Some(TimestampSpec::header(h, o.tolerance_secs)),
            ..base
        },
    })
}

/// Where Grafana puts the alert group's status.
fn naming() -> Naming {
    Naming {
        event: vec![Locator::value("alert")],
        action: vec![Locator::json("/status")],
        delivery: vec![],
        acknowledge: vec![],
        derive_delivery: Some(group_delivery_id),
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
