//! Mailgun webhooks: the signature is inside the JSON body, not in a header:
//! `{"signature": {"timestamp": "...", "token": "...", "signature": "<hex>"}, "event-data": {...}}`
//! where `signature` is the hex HMAC-SHA256 of `<timestamp><token>` keyed with the webhook
//! signing key. Only the timestamp and the token are signed, never the event data: the
//! token is unique per delivery, so the adapter makes it the delivery id and a token seen
//! before is a repeat (Mailgun's own advice against replays). A timestamp window is optional
//! (`tolerance_secs`), because Mailgun does not document whether a retry is signed afresh.
//!
//! Nothing can be checked before the body is read: [`Mailgun::precheck`] accepts every request,
//! and the body limit bounds what is read.

use serde::Deserialize;

use super::codec::{Digest, Encoding, KeyedMac};
use super::timestamp::TimestampSpec;
use super::{shape, Key, Outgoing, Request, SignError, Verified, VerifyError};
use crate::secret::Secret;

/// `verify:` of a Mailgun source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mailgun {
    /// Largest accepted distance of `signature.timestamp` from now, both ways; none by default.
    #[serde(default)]
    pub tolerance_secs: Option<u64>,
}

/// The `signature` object of a Mailgun body.
#[derive(Deserialize)]
struct Signed<'a> {
    #[serde(borrow)]
    timestamp: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    token: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    signature: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    signature: Option<Signed<'a>>,
}

/// The longest token accepted (Mailgun's are 50 hex characters).
const MAX_TOKEN: usize = 256;

impl Mailgun {
    /// The signing key as an HMAC-SHA256 key.
    pub(super) fn key(secret: &Secret) -> Key {
        Key::Mac(KeyedMac::new(Digest::Sha256, secret.expose()))
    }

    /// Everything Mailgun signs is in the body.
    pub(super) fn precheck(&self, _req: &Request<'_>) -> Result<(), VerifyError> {
        Ok(())
    }

    /// No header carries a credential.
    pub(super) fn credential_headers(&self) -> Vec<String> {
        Vec::new()
    }

    pub(super) fn verify(&self, req: &Request<'_>, keys: &[Key]) -> Result<Verified, VerifyError> {
        let envelope: Envelope<'_> = serde_json::from_slice(req.body).map_err(|_| VerifyError::Missing)?;
        let s = envelope.signature.ok_or(VerifyError::Missing)?;
        if s.token.is_empty() || s.token.len() > MAX_TOKEN || !s.token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(VerifyError::Malformed);
        }
        if s.timestamp.is_empty() || !s.timestamp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(VerifyError::Malformed);
        }
        let given = Encoding::Hex
            .decode(s.signature.as_bytes())
            .filter(|g| g.len() == Digest::Sha256.output_len())
            .ok_or(VerifyError::Malformed)?;
        let mut matched = None;
        for (i, key) in keys.iter().enumerate() {
            let Key::Mac(mac) = key else { continue };
            let mut mac = mac.clone();
            mac.update(s.timestamp.as_bytes());
            mac.update(s.token.as_bytes());
            let tag = mac.finish();
            if tag.matches(&given) {
                matched = Some((i, tag.as_bytes().to_vec()));
                break;
            }
        }
        let (secret, tag) = matched.ok_or(VerifyError::Mismatch)?;
        let spec = TimestampSpec::header("signature.timestamp", self.tolerance_secs.unwrap_or(0));
        let at = spec.parse(&s.timestamp)?;
        if self.tolerance_secs.is_some() {
            spec.check(at, req.now)?;
        }
        Ok(Verified {
            signed_at: Some(at),
            ..Verified::by(secret).signed(&tag)
        })
    }

    /// Mailgun signs inside the body, which `send` does not rewrite.
    pub(super) fn sign(
        &self,
        _out: &Outgoing<'_>,
        _secret: &Secret,
    ) -> Result<Vec<(String, String)>, SignError> {
        Err(SignError(
            "Mailgun puts its signature inside the body (signature.timestamp, token, signature); \
             sign the body yourself or use Mailgun's \"Test webhook\" button"
                .into(),
        ))
    }

    pub(super) fn explain(&self, req: &Request<'_>) -> Vec<String> {
        let found = match serde_json::from_slice::<Envelope<'_>>(req.body) {
            Ok(Envelope { signature: Some(s) }) => format!(
                "timestamp {:?}, token ({}), signature ({})",
                s.timestamp.as_ref(),
                shape(s.token.as_bytes()),
                shape(s.signature.as_bytes())
            ),
            Ok(_) => "no `signature` object in the body".into(),
            Err(_) => "the body is not JSON".into(),
        };
        vec![
            "scheme: mailgun, hex HMAC-SHA256 of <signature.timestamp><signature.token> from the body (the event data is not signed)".into(),
            format!("signature in the body: {found}"),
            match self.tolerance_secs {
                Some(t) => format!("timestamp window: ±{t} s"),
                None => "timestamp window: none (the token is the delivery id, so a repeat is dropped)".into(),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;
    use std::time::{Duration, UNIX_EPOCH};

    /// Computed with Python's hmac: HMAC-SHA256("mailgun-signing-key-0123456789", "1529006854" +
    /// "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0").
    const SIG: &str = "8bb42775519b195d8e9098d4e1c6a91ec89daceb2840fa66012a769a4422c877";

    fn check(m: &Mailgun, body: &str, now: u64) -> Result<Verified, VerifyError> {
        let h = HeaderMap::new();
        let req = Request {
            headers: &h,
            body: body.as_bytes(),
            method: "POST",
            url: None,
            now: UNIX_EPOCH + Duration::from_secs(now),
        };
        m.verify(
            &req,
            &[Mailgun::key(&Secret::new(
                b"mailgun-signing-key-0123456789".to_vec(),
            ))],
        )
    }

    fn body(sig: &str) -> String {
        format!(
            r#"{{"signature":{{"timestamp":"1529006854","token":"a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0","signature":"{sig}"}},"event-data":{{"event":"delivered"}}}}"#
        )
    }

    #[test]
    fn malformed_and_missing_signatures_are_refused() {
        let m = Mailgun::default();
        assert_eq!(check(&m, "not json", 0), Err(VerifyError::Missing));
        assert_eq!(check(&m, r#"{"event-data":{}}"#, 0), Err(VerifyError::Missing));
        assert_eq!(check(&m, &body("zz"), 0), Err(VerifyError::Malformed));
        assert_eq!(check(&m, &body(&"0".repeat(64)), 0), Err(VerifyError::Mismatch));
    }

    #[test]
    fn the_known_answer_verifies_and_the_window_applies_only_when_set() {
        let at = 1_529_006_854;
        let v = check(&Mailgun::default(), &body(SIG), at + 86_400).unwrap();
        assert_eq!((v.secret, v.signed_at), (0, Some(at as i64 * 1000)));
        let windowed = Mailgun {
            tolerance_secs: Some(300),
        };
        assert!(check(&windowed, &body(SIG), at + 10).is_ok());
        assert_eq!(check(&windowed, &body(SIG), at + 600), Err(VerifyError::Stale));
        // The token is signed: another token with the same signature fails.
        let other = body(SIG).replace("a8ce0edb", "a8ce0edc");
        assert_eq!(check(&Mailgun::default(), &other, at), Err(VerifyError::Mismatch));
    }
}
