//! The adapter of a source without an HTTP door (a schedule): it holds no key, so its path
//! refuses everyone and it identifies nothing.

use serde_json::Value;

use crate::adapter::{Adapter, IdentifyError, Identity, Request};
use crate::secret::SecretSet;
use crate::verify::{Scheme, TokenScheme, Verifier};

/// The adapter of a schedule's source: no key, so its HTTP path refuses everyone.
#[derive(Debug)]
pub struct NoDoor(Verifier);

impl NoDoor {
    /// The closed door.
    pub fn new() -> Self {
        NoDoor(
            Verifier::new(
                Scheme::Token(TokenScheme::header("x-hookwire-schedule")),
                &SecretSet::default(),
            )
            .expect("a token scheme without secrets binds"),
        )
    }
}

impl Default for NoDoor {
    fn default() -> Self {
        Self::new()
    }
}

impl Adapter for NoDoor {
    fn verifier(&self) -> &Verifier {
        &self.0
    }

    fn identify(&self, _: &Request<'_>, _: &Value) -> Result<Identity, IdentifyError> {
        Err(IdentifyError("a schedule takes no requests".into()))
    }
}
