//! Buildkite pipeline webhooks: `X-Buildkite-Signature: timestamp=<unix>,signature=<hex
//! HMAC-SHA256(secret, timestamp + "." + raw body)>` (preferred; 300 s window), or the plain
//! `X-Buildkite-Token` (`verify: token`). The event is in `X-Buildkite-Event`.

use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{Adapter, AdapterFactory, OptionError, Registry, SourceSpec};
use hookwire_core::verify::codec::{Digest, Encoding};
use hookwire_core::verify::signature::Signed;
use hookwire_core::verify::timestamp::TimestampSpec;
use hookwire_core::verify::{Scheme, SignatureScheme, TokenScheme};
use serde::Deserialize;

/// The `type:` name of this adapter.
pub const TYPE: &str = "buildkite";

/// Adds the Buildkite source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description: "Buildkite builds and jobs",
        build,
    });
}

/// How Buildkite authenticates.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Verify {
    /// `X-Buildkite-Signature` (HMAC with a timestamp).
    #[default]
    Signature,
    /// `X-Buildkite-Token` (plain token; the body is not covered).
    Token,
}

/// Buildkite options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// `signature` (default) or `token`.
    #[serde(default)]
    verify: Verify,
    /// Largest accepted distance of the signed timestamp from now, both ways.
    #[serde(default = "default_tolerance")]
    tolerance_secs: u64,
}

fn default_tolerance() -> u64 {
    300
}

/// How Buildkite signs.
fn scheme(o: &Options) -> Scheme {
    match o.verify {
        Verify::Token => Scheme::Token(TokenScheme::header("X-Buildkite-Token")),
        Verify::Signature => Scheme::Signature(SignatureScheme {
            signed: Signed::parse("{timestamp}.{body}").expect("valid template"),
            timestamp: Some(TimestampSpec::list_key("timestamp", o.tolerance_secs)),
            ..SignatureScheme::hmac_body(Digest::Sha256, "X-Buildkite-Signature", "", Encoding::Hex)
                .with_list("signature", ",", "=")
        }),
    }
}

/// Where Buildkite puts the event type. It sends no delivery id, so the body is the key.
fn naming() -> Naming {
    Naming {
        event: vec![
            Locator::header_matching("X-Buildkite-Event", "^[a-z_]{1,32}(\\.[a-z_]{1,64})?$"),
            Locator::json("/event"),
        ],
        action: vec![],
        delivery: vec![],
        acknowledge: vec!["ping".into()],
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
