//! Datadog's code: the event is always `alert`; its action is the alert's transition
//! (lower case, spaces as `_`), and its delivery id `<id>-<transition>`, since Datadog retries
//! with the same `$ID` while a recovery of the same alert is a new event.

use hookwire_core::adapter::declared::Declared;
use hookwire_core::adapter::{Adapter, IdentifyError, Identity, OptionError, Request, SourceSpec};
use hookwire_core::verify::{self, Verifier};
use serde_json::Value;

/// Wraps the adapter built from the preset.
pub(crate) fn build(
    _spec: &SourceSpec<'_>,
    declared: Option<Declared>,
) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
    let declared = declared.expect("the datadog preset declares its type");
    Ok(Box::new(Datadog(declared)))
}

/// A string field that Datadog actually filled in (an unset `$VARIABLE` stays literal).
fn filled(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty() && !s.starts_with('$'))
}

/// A configured Datadog source.
#[derive(Debug)]
struct Datadog(Declared);

impl Adapter for Datadog {
    fn verifier(&self) -> &Verifier {
        self.0.verifier()
    }

    fn identify(&self, req: &Request<'_>, body: &Value) -> Result<Identity, IdentifyError> {
        let mut identity = self.0.identify(req, body)?;
        let transition = filled(body.pointer("/alert/transition"))
            .or_else(|| filled(body.get("alert_transition")))
            .map(|t| t.to_ascii_lowercase().replace(' ', "_"));
        identity.delivery_id = match (filled(body.get("id")), &transition) {
            (Some(id), Some(t)) => format!("{id}-{t}"),
            (Some(id), None) => id.to_owned(),
            _ => verify::sha256_hex(req.body),
        };
        identity.action = transition;
        Ok(identity)
    }

    fn identity_fields(&self) -> Option<Vec<String>> {
        Some(vec![
            "id".into(),
            "alert.transition".into(),
            "alert_transition".into(),
        ])
    }

    fn max_body_bytes(&self) -> Option<usize> {
        self.0.max_body_bytes()
    }

    fn naming_headers(&self, _event: Option<&str>, _delivery_id: &str) -> Vec<(String, String)> {
        Vec::new()
    }
}
