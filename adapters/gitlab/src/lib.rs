//! GitLab project, group and system hooks. Classic hooks carry the secret token verbatim in
//! `X-Gitlab-Token` (no MAC: the body is not covered, so keep TLS); hooks with a signing token
//! send Standard Webhooks headers instead (`verify: signing_token`). The event is the body's
//! `object_kind` (`push`, `merge_request`, `pipeline`, ...), the action the object's `action`,
//! the delivery id `Idempotency-Key` (same across retries and resends) or `X-Gitlab-Event-UUID`.

use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{Adapter, AdapterFactory, OptionError, Registry, SourceSpec};
use hookwire_core::verify::{Scheme, StandardWebhooks, TokenScheme};
use serde::Deserialize;

/// The `type:` name of this adapter.
pub const TYPE: &str = "gitlab";

/// Adds the GitLab source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description:
            "GitLab project and group hooks (pushes, merge requests, pipelines, jobs, issues, notes)",
        build,
    });
}

/// How the hook is authenticated.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Verify {
    /// The secret token in `X-Gitlab-Token` (every GitLab version).
    #[default]
    Token,
    /// A signing token: Standard Webhooks headers, secret `whsec_...`.
    SigningToken,
}

/// GitLab options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// `token` (default) or `signing_token`.
    #[serde(default)]
    verify: Verify,
}

/// How GitLab authenticates.
fn scheme(o: &Options) -> Scheme {
    match o.verify {
        Verify::Token => Scheme::Token(TokenScheme::header("X-Gitlab-Token")),
        Verify::SigningToken => Scheme::StandardWebhooks(StandardWebhooks::default()),
    }
}

/// Where GitLab puts the event type, action and delivery id.
fn naming() -> Naming {
    Naming {
        event: vec![
            Locator::json("/object_kind"),
            Locator::header_matching("X-Gitlab-Event", "^[A-Z][A-Za-z ]{0,62}Hook$"),
        ],
        // A merge request's action; a pipeline's status; a job's (GitLab calls jobs builds).
        action: vec![
            Locator::json("/object_attributes/action"),
            Locator::json("/object_attributes/status"),
            Locator::json("/build_status"),
        ],
        delivery: vec![
            Locator::header("Idempotency-Key"),
            Locator::header("X-Gitlab-Event-UUID"),
            Locator::header("webhook-id"),
        ],
        acknowledge: vec![],
        derive_delivery: None,
        split_action: false,
    }
}

fn build(spec: &SourceSpec<'_>) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
    let o: Options = spec.options().map_err(|e| vec![e])?;
    Ok(Box::new(
        Declared::new(Declared::bind(scheme(&o), spec)?, naming())
            // GitLab does not send a payload over 25 MB (GitLab.com settings: "Maximum payload size").
            .with_max_body_bytes(26_214_400),
    ))
}
