//! GitHub webhooks: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`, the
//! event in `X-GitHub-Event`, the delivery id in `X-GitHub-Delivery`, the action in the body.
//! `ping` (sent when a hook is created) is acknowledged and never reaches a session.

use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{Adapter, AdapterFactory, OptionError, Registry, SourceSpec};
use hookwire_core::verify::codec::{Digest, Encoding};
use hookwire_core::verify::{Scheme, SignatureScheme};
use serde::Deserialize;

/// The `type:` name of this adapter.
pub const TYPE: &str = "github";

/// Adds the GitHub source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description:
            "GitHub repository and organisation webhooks (issues, pull requests, comments, pushes, releases, \
Actions workflow runs and jobs, checks)",
        build,
    });
}

/// GitHub options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// `sha256` (default, `X-Hub-Signature-256`) or `sha1` (the legacy `X-Hub-Signature`, for
    /// old GitHub Enterprise Server releases only).
    #[serde(default)]
    digest: Option<Digest>,
}

/// How GitHub signs.
fn scheme(o: &Options) -> Result<Scheme, OptionError> {
    let (digest, header, prefix) = match o.digest.unwrap_or(Digest::Sha256) {
        Digest::Sha256 => (Digest::Sha256, "X-Hub-Signature-256", "sha256="),
        Digest::Sha1 => (Digest::Sha1, "X-Hub-Signature", "sha1="),
        Digest::Sha512 => {
            return Err(OptionError {
                field: Some("digest".into()),
                message: "GitHub signs with sha256 (or legacy sha1), never sha512".into(),
                hint: Some("valid: sha256, sha1".into()),
            })
        }
    };
    Ok(Scheme::Signature(SignatureScheme::hmac_body(
        digest,
        header,
        prefix,
        Encoding::Hex,
    )))
}

/// Where GitHub puts the event type, action and delivery id.
fn naming() -> Naming {
    Naming {
        event: vec![Locator::header_matching("X-GitHub-Event", "^[a-z_]{1,64}$")],
        action: vec![Locator::json("/action")],
        delivery: vec![Locator::header("X-GitHub-Delivery")],
        acknowledge: vec!["ping".into()],
        derive_delivery: None,
        split_action: false,
    }
}

fn build(spec: &SourceSpec<'_>) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
    let o: Options = spec.options().map_err(|e| vec![e])?;
    let scheme = scheme(&o).map_err(|e| vec![e])?;
    Ok(Box::new(
        Declared::new(Declared::bind(scheme, spec)?, naming())
            // GitHub caps payloads at 25 MB (docs: "Webhook events and payloads").
            .with_max_body_bytes(26_214_400),
    ))
}
