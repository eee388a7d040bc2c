//! GitHub webhooks: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`, the
//! event in `X-GitHub-Event`, the delivery id in `X-GitHub-Delivery`, the action in the body.
//! `ping` (sent when a hook is created) is acknowledged and never reaches a session.

use hookwire_core::adapter::{
    Adapter, AdapterFactory, Disposition, IdentifyError, Identity, OptionError, Registry, Request, SourceSpec,
};
use hookwire_core::secret::SecretSet;
use hookwire_core::verify::{self, SecretIndex, VerifyError};
use serde::Deserialize;
use serde_json::Value;

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

/// GitHub has no options beyond the common source keys today.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

fn build(spec: &SourceSpec<'_>) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
    let _: Options = spec.options().map_err(|e| vec![e])?;
    Ok(Box::new(GitHub {
        secrets: spec.secrets.clone(),
    }))
}

/// A configured GitHub source.
#[derive(Debug)]
pub struct GitHub {
    secrets: SecretSet,
}

impl GitHub {
    /// A GitHub adapter over these secrets (any one verifies).
    pub fn new(secrets: SecretSet) -> Self {
        GitHub { secrets }
    }
}

impl Adapter for GitHub {
    fn verify(&self, req: &Request<'_>) -> Result<SecretIndex, VerifyError> {
        verify::hmac_sha256_hex(
            req.body,
            req.header("x-hub-signature-256"),
            b"sha256=",
            &self.secrets,
        )
    }

    fn identify(&self, req: &Request<'_>, body: &Value) -> Result<Identity, IdentifyError> {
        let event = req
            .header_str("x-github-event")
            .filter(|e| !e.is_empty())
            .ok_or_else(|| IdentifyError("missing X-GitHub-Event header".into()))?;
        let delivery_id = req
            .header_str("x-github-delivery")
            .filter(|d| !d.is_empty())
            .ok_or_else(|| IdentifyError("missing X-GitHub-Delivery header".into()))?;
        let action = body
            .get("action")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty());
        Ok(Identity {
            event: event.to_owned(),
            action: action.map(str::to_owned),
            delivery_id: delivery_id.to_owned(),
            disposition: if event == "ping" {
                Disposition::Acknowledge
            } else {
                Disposition::Deliver
            },
        })
    }

    fn identity_fields(&self) -> Option<&'static [&'static str]> {
        Some(&["action"])
    }
}
