//! Netlify deploy notifications signed with a JWS secret token: `X-Webhook-Signature` is an HS256
//! JWT whose claims are `iss: netlify` and the body's hex SHA-256. The deploy state is the action.

use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{Adapter, AdapterFactory, OptionError, Registry, SourceSpec};
use hookwire_core::verify::jws::Jws;
use hookwire_core::verify::Scheme;
use serde::Deserialize;

/// The `type:` name of this adapter.
pub const TYPE: &str = "netlify";

/// Adds the Netlify source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description: "Netlify deploy notifications (started, succeeded, failed, locked)",
        build,
    });
}

/// Netlify has no options beyond the common source keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

/// How Netlify signs.
fn scheme(_o: &Options) -> Scheme {
    Scheme::Jws(Jws::default())
}

/// Where Netlify puts the event type, action and delivery id.
fn naming() -> Naming {
    Naming {
        event: vec![Locator::value("deploy")],
        action: vec![Locator::json("/state")],
        // The deploy id repeats across its states, so a delivery is the body itself.
        delivery: vec![],
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
