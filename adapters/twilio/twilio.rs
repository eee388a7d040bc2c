//! Twilio's code: its scheme, which YAML does not declare, and its names. `X-Twilio-Signature`
//! = base64 HMAC-SHA1 (key: the Auth Token) over the exact URL Twilio requested followed by the
//! sorted form parameters (JSON bodies: `bodySHA256` in the URL). The source must set
//! `public_url` to the URL configured at Twilio: behind a proxy the inner request's scheme and
//! host are not what Twilio signed. Calls and messages are named from their form fields.

use hookwire_core::adapter::declared::{Declared, Naming};
use hookwire_core::adapter::{Adapter, IdentifyError, Identity, OptionError, Request, SourceSpec};
use hookwire_core::verify::{self, Scheme, Twilio, Verifier};
use serde_json::Value;

/// Builds a Twilio source (its preset has no declared type).
pub(crate) fn build(
    spec: &SourceSpec<'_>,
    _declared: Option<Declared>,
) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
    if spec.public_url.is_none() {
        return Err(vec![OptionError {
            field: Some("public_url".into()),
            message: "Twilio signs the URL it posts to; hookwire must be told it".into(),
            hint: Some(
                "add public_url: the exact webhook URL configured at Twilio, without the query".into(),
            ),
        }]);
    }
    let verifier = Declared::bind(Scheme::Twilio(Twilio::default()), spec)?;
    Ok(Box::new(TwilioSource(Declared::new(verifier, Naming::default()))))
}

/// A configured Twilio source.
#[derive(Debug)]
struct TwilioSource(Declared);

fn field<'v>(body: &'v Value, name: &str) -> Option<&'v str> {
    body.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

impl Adapter for TwilioSource {
    fn verifier(&self) -> &Verifier {
        self.0.verifier()
    }

    fn identify(&self, req: &Request<'_>, body: &Value) -> Result<Identity, IdentifyError> {
        let (event, sid, status) = if let Some(sid) = field(body, "CallSid") {
            ("call", Some(sid), field(body, "CallStatus"))
        } else if let Some(sid) = field(body, "MessageSid").or_else(|| field(body, "SmsSid")) {
            let status = field(body, "MessageStatus").or_else(|| field(body, "SmsStatus"));
            ("message", Some(sid), status)
        } else {
            ("request", None, None)
        };
        let delivery_id = match (req.header_str("i-twilio-idempotency-token"), sid, status) {
            // Unsigned: held to what a declared adapter takes from a header (`SAFE_ID`).
            (Some(token), _, _) if token.len() > 256 || token.bytes().any(|b| !b.is_ascii_graphic()) => {
                return Err(IdentifyError(
                    "I-Twilio-Idempotency-Token must be 1 to 256 visible ASCII characters".into(),
                ));
            }
            (Some(token), _, _) if !token.is_empty() => token.to_owned(),
            // Each status callback of a call or message is a distinct event.
            (_, Some(sid), Some(status)) => format!("{sid}-{status}"),
            _ => verify::sha256_hex(req.body),
        };
        Ok(Identity {
            event: event.to_owned(),
            action: status.map(|s| s.to_ascii_lowercase()),
            delivery_id,
            disposition: hookwire_core::adapter::Disposition::Deliver,
            // Twilio reads a reply as TwiML instructions; an empty 202 means "do nothing".
            reply: None,
            meta: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use hookwire_core::axum::http::{HeaderMap, HeaderValue};
    use hookwire_core::secret::{Secret, SecretSet};
    use serde_json::json;

    use super::*;

    fn identify(token: &str) -> Result<Identity, IdentifyError> {
        let options = serde_norway::Mapping::new();
        let spec = SourceSpec {
            name: "twilio",
            options: &options,
            secrets: SecretSet::new(vec![Secret::new(b"0123456789abcdef0123456789abcdef".to_vec())]),
            public_url: Some("https://example.com/twilio"),
            fetch: hookwire_core::fetch::Fetch::offline(),
        };
        let adapter = build(&spec, None).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "i-twilio-idempotency-token",
            HeaderValue::from_str(token).unwrap(),
        );
        let req = Request {
            headers: &headers,
            body: b"",
            method: "POST",
            url: None,
            now: SystemTime::now(),
        };
        adapter.identify(&req, &json!({"MessageSid": "SM1", "MessageStatus": "sent"}))
    }

    #[test]
    fn the_unsigned_idempotency_token_is_held_to_a_safe_id() {
        assert_eq!(
            identify("0c9a1a76-retry-1").unwrap().delivery_id,
            "0c9a1a76-retry-1"
        );
        for bad in ["two words", &"x".repeat(257), "tab\there"] {
            assert!(identify(bad).is_err(), "{bad:?} was taken as a delivery id");
        }
    }
}
