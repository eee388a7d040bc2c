//! `push`: your own systems, cron jobs and scripts send a message straight into the session:
//! `POST {"content": "...", "meta": {...}, "event": "...", "id": "..."}` with the source's token
//! as `Authorization: Bearer <token>` or `X-Hookwire-Token: <token>`. `content` is the message;
//! `meta` keys become attributes of the `<channel>` tag (same rules as template meta).

use hookwire_core::adapter::declared::{Declared, Locator, Naming};
use hookwire_core::adapter::{
    Adapter, AdapterFactory, IdentifyError, Identity, OptionError, Registry, Request, SourceSpec,
};
use hookwire_core::sanitize::is_valid_meta_key;
use hookwire_core::verify::{Scheme, TokenScheme, Verifier};
use serde::Deserialize;
use serde_json::Value;

/// The `type:` name of this adapter.
pub const TYPE: &str = "push";

/// Adds the push source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description: "messages pushed by the team's own systems and scheduled jobs",
        build,
    });
}

/// Push has no options beyond the common source keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

/// How a pusher authenticates: Bearer, or the token in a header.
fn scheme() -> Scheme {
    Scheme::Token(TokenScheme {
        header: Some("x-hookwire-token".into()),
        bearer: true,
        basic: false,
        basic_user: None,
    })
}

/// Where the body names the event and its id; `Idempotency-Key` also works for the id.
fn naming() -> Naming {
    Naming {
        event: vec![Locator::json("/event"), Locator::value("message")],
        action: vec![],
        delivery: vec![Locator::json("/id"), Locator::header("Idempotency-Key")],
        acknowledge: vec![],
        derive_delivery: None,
        split_action: false,
    }
}

fn build(spec: &SourceSpec<'_>) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
    let _: Options = spec.options().map_err(|e| vec![e])?;
    Ok(Box::new(Push(Declared::new(
        Declared::bind(scheme(), spec)?,
        naming(),
    ))))
}

/// A configured push source.
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
