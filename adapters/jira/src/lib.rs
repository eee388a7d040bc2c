//! Jira Cloud admin webhooks with a secret: `X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, raw
//! body)>`; the event in the body (`webhookEvent`), the delivery id in
//! `X-Atlassian-Webhook-Identifier` (stable across retries).

use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{Adapter, AdapterFactory, OptionError, Registry, SourceSpec};
use hookwire_core::verify::codec::{Digest, Encoding};
use hookwire_core::verify::{Scheme, SignatureScheme};
use serde::Deserialize;

/// The `type:` name of this adapter.
pub const TYPE: &str = "jira";

/// Adds the Jira source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description: "Jira issues, comments, sprints and projects",
        build,
    });
}

/// Jira has no options beyond the common source keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

/// How Jira signs.
fn scheme(_o: &Options) -> Scheme {
    Scheme::Signature(SignatureScheme::hmac_body(
        Digest::Sha256,
        "X-Hub-Signature",
        "sha256=",
        Encoding::Hex,
    ))
}

/// Where Jira puts the event type, action and delivery id.
fn naming() -> Naming {
    Naming {
        event: vec![Locator::json("/webhookEvent")],
        action: vec![],
        delivery: vec![Locator::header("X-Atlassian-Webhook-Identifier")],
        acknowledge: vec![],
        derive_delivery: None,
        split_action: false,
    }
}

fn build(spec: &SourceSpec<'_>) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
    let o: Options = spec.options().map_err(|e| vec![e])?;
    Ok(Box::new(
        Declared::new(Declared::bind(scheme(&o), spec)?, naming())
            // Atlassian limits webhook payloads to 25 MB (webhooks "known issues").
            .with_max_body_bytes(26_214_400),
    ))
}
