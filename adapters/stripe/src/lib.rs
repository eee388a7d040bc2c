//! Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`, HMAC-SHA256 over `<t>.<raw body>`
//! keyed with the whole `whsec_...` endpoint secret as text (not decoded). Only `v1` counts
//! (`v0` and unknown schemes are ignored: downgrade protection); during a secret roll both
//! signatures are sent and either matches. The timestamp may be at most 300 s old (the SDKs
//! check the past only). Event type and id (`evt_...`) are in the body.

use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{Adapter, AdapterFactory, OptionError, Registry, SourceSpec};
use hookwire_core::verify::codec::{Digest, Encoding};
use hookwire_core::verify::signature::Signed;
use hookwire_core::verify::timestamp::TimestampSpec;
use hookwire_core::verify::{Scheme, SignatureScheme};
use serde::Deserialize;

/// The `type:` name of this adapter.
pub const TYPE: &str = "stripe";

/// Adds the Stripe source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description: "Stripe events (payments, invoices, subscriptions, disputes, payouts)",
        build,
    });
}

/// Stripe options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Largest accepted age of `t=` (the SDKs' default is 300 s).
    #[serde(default = "default_tolerance")]
    tolerance_secs: u64,
}

fn default_tolerance() -> u64 {
    300
}

/// How Stripe signs.
fn scheme(o: &Options) -> Scheme {
    Scheme::Signature(SignatureScheme {
        signed: Signed::parse("{timestamp}.{body}").expect("valid template"),
        timestamp: Some(TimestampSpec {
            past_only: true,
            ..TimestampSpec::list_key("t", o.tolerance_secs)
        }),
        ..SignatureScheme::hmac_body(Digest::Sha256, "Stripe-Signature", "", Encoding::Hex)
            .with_list("v1", ",", "=")
    })
}

/// Where Stripe puts the event type and id.
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
