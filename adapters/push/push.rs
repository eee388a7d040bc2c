//! The push source's code: the body is `{"content": ..., "meta": {...}}`, from the team's own
//! systems. `content` must be there; `meta` becomes the event's attributes (its keys checked
//! as template meta keys are, `source` refused), sanitised like every meta value.

use hookwire_core::adapter::declared::Declared;
use hookwire_core::adapter::{Adapter, IdentifyError, Identity, OptionError, Request, SourceSpec};
use hookwire_core::sanitize::is_valid_meta_key;
use hookwire_core::verify::Verifier;
use serde_json::Value;

/// Wraps the adapter built from the preset.
pub(crate) fn build(
    _spec: &SourceSpec<'_>,
    declared: Option<Declared>,
) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
    let declared = declared.expect("the push preset declares its type");
    Ok(Box::new(Push(declared)))
}

#[derive(Debug)]
struct Push(Declared);

impl Adapter for Push {
    fn verifier(&self) -> &Verifier {
        self.0.verifier()
    }

    fn identify(&self, req: &Request<'_>, body: &Value) -> Result<Identity, IdentifyError> {
        let content = body.get("content").and_then(Value::as_str).unwrap_or_default();
        if content.trim().is_empty() {
            return Err(IdentifyError(
                "a push body is {\"content\": \"<the message>\", \"meta\": {...}}; content is missing or empty".into(),
            ));
        }
        let mut identity = self.0.identify(req, body)?;
        if let Some(meta) = body.get("meta") {
            let Value::Object(map) = meta else {
                return Err(IdentifyError("`meta` must be an object of strings".into()));
            };
            for (k, v) in map {
                if !is_valid_meta_key(k) || k == "source" {
                    return Err(IdentifyError(format!(
                        "meta key `{k}` is not allowed: keys match ^[a-zA-Z_][a-zA-Z0-9_]*$ and `source` is reserved"
                    )));
                }
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(_) | Value::Bool(_) => v.to_string(),
                    _ => {
                        return Err(IdentifyError(format!(
                            "meta `{k}` must be a string, number or boolean"
                        )))
                    }
                };
                identity.meta.push((k.clone(), text));
            }
        }
        Ok(identity)
    }
}
