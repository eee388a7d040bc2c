//! Prometheus Alertmanager `webhook_config`. Alertmanager does not sign, so the source is
//! authenticated by a shared token: `http_config.authorization` (Bearer), `basic_auth` (the
//! password is the token), or a custom header from `http_headers` (default `X-Hookwire-Token`).
//! Alertmanager sends no delivery id: one is derived from the alert group.

use hookwire_core::adapter::alerts::group_delivery_id;
use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{Adapter, AdapterFactory, OptionError, Registry, SourceSpec};
use hookwire_core::verify::{Scheme, TokenScheme};
use serde::Deserialize;

/// The `type:` name of this adapter.
pub const TYPE: &str = "alertmanager";

/// Adds the Alertmanager source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description: "Prometheus Alertmanager notifications (firing and resolved alert groups)",
        build,
    });
}

/// Alertmanager options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Header holding the token when it is sent through `http_headers`.
    #[serde(default = "default_header")]
    token_header: String,
}

fn default_header() -> String {
    "X-Hookwire-Token".into()
}

/// How Alertmanager authenticates.
fn scheme(o: &Options) -> Scheme {
    Scheme::Token(TokenScheme {
        header: Some(o.token_header.to_ascii_lowercase()),
        bearer: true,
        basic: true,
        basic_user: None,
    })
}

/// Where Alertmanager puts the group's status.
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
