//! Netlify's code: its scheme, which YAML does not declare. `X-Webhook-Signature` is an HS256
//! JWS whose claims are `iss: netlify` and the body's hex SHA-256. The event is `deploy` and
//! its state the action; the deploy id repeats across states, so the delivery id is the body's
//! hash.

use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{Adapter, OptionError, SourceSpec};
use hookwire_core::verify::jws::Jws;
use hookwire_core::verify::Scheme;

/// Builds a Netlify source (its preset has no declared type).
pub(crate) fn build(
    spec: &SourceSpec<'_>,
    _declared: Option<Declared>,
) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
    let naming = Naming {
        event: vec![Locator::value("deploy")],
        action: vec![Locator::json("/state")],
        ..Naming::default()
    };
    Ok(Box::new(Declared::new(
        Declared::bind(Scheme::Jws(Jws::default()), spec)?,
        naming,
    )))
}
