//! Netlify deploy notifications: `X-Webhook-Signature` is a compact JWS signed HS256 with the
//! source's secret; its claims must say `iss: netlify` and carry the body's hex SHA-256. Only
//! HS256 is accepted (`alg: none` and every other algorithm are refused).

use base64::Engine as _;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::codec::{Digest, Encoding, KeyedMac};
use super::{sha256_hex, shape, Key, Outgoing, Request, SignError, Verified, VerifyError};
use crate::secret::Secret;

const HEADER: &str = "x-webhook-signature";

/// Netlify's JWS check; no settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jws {}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    sha256: Option<String>,
}

fn b64url_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, VerifyError> {
    let bytes = Encoding::Base64url
        .decode(part.as_bytes())
        .ok_or(VerifyError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)
}

impl Jws {
    /// The token's signature, which covers its claims but not the body: which key signed it,
    /// and the claims. Checked before the body is read.
    fn signed_claims(req: &Request<'_>, keys: &[Key]) -> Result<(usize, Vec<u8>, Claims), VerifyError> {
        let token = req
            .header_str(HEADER)
            .filter(|t| !t.is_empty())
            .ok_or(VerifyError::Missing)?;
        let mut parts = token.split('.');
        let (Some(head), Some(claims), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed);
        };
        let header: Header = b64url_json(head)?;
        if header.alg != "HS256" {
            return Err(VerifyError::Malformed);
        }
        let sig = Encoding::Base64url
            .decode(sig.as_bytes())
            .ok_or(VerifyError::Malformed)?;
        let signing_input = &token[..head.len() + 1 + claims.len()];
        let mut matched = None;
        for (i, key) in keys.iter().enumerate() {
            let Key::Mac(mac) = key else { continue };
            let mut mac = mac.clone();
            mac.update(signing_input.as_bytes());
            if mac.finish().matches(&sig) {
                matched = Some(i);
                break;
            }
        }
        let secret = matched.ok_or(VerifyError::Mismatch)?;
        // Claims are read only once the signature holds.
        Ok((secret, sig, b64url_json(claims)?))
    }

    /// The token alone: signed by a configured secret (the body hash is checked later).
    pub(super) fn precheck(&self, req: &Request<'_>, keys: &[Key]) -> Result<(), VerifyError> {
        Self::signed_claims(req, keys).map(|_| ())
    }

    /// The header that carries the token: never stored or shown.
    pub(super) fn credential_headers(&self) -> Vec<String> {
        vec![HEADER.into()]
    }

    pub(super) fn verify(&self, req: &Request<'_>, keys: &[Key]) -> Result<Verified, VerifyError> {
        let (secret, signature, claims) = Self::signed_claims(req, keys)?;
        let body_hash = sha256_hex(req.body);
        let hash_ok = claims
            .sha256
            .is_some_and(|h| bool::from(h.to_ascii_lowercase().as_bytes().ct_eq(body_hash.as_bytes())));
        if claims.iss.as_deref() != Some("netlify") || !hash_ok {
            return Err(VerifyError::Mismatch);
        }
        Ok(Verified::by(secret).signed(&signature))
    }

    pub(super) fn sign(
        &self,
        out: &Outgoing<'_>,
        secret: &Secret,
    ) -> Result<Vec<(String, String)>, SignError> {
        let enc =
            |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let input = format!(
            "{}.{}",
            enc(serde_json::json!({"alg": "HS256", "typ": "JWT"})),
            enc(serde_json::json!({"iss": "netlify", "sha256": sha256_hex(out.body)}))
        );
        let mut mac = KeyedMac::new(Digest::Sha256, secret.expose());
        mac.update(input.as_bytes());
        let sig = Encoding::Base64url.encode(mac.finish().as_bytes());
        Ok(vec![(HEADER.into(), format!("{input}.{sig}"))])
    }

    pub(super) fn explain(&self, req: &Request<'_>) -> Vec<String> {
        vec![
            "scheme: netlify-jws, HS256 JWS in `X-Webhook-Signature`, claims iss=netlify and sha256=hex(SHA-256(body))"
                .into(),
            format!(
                "token: {}",
                req.header(HEADER).map(shape).unwrap_or_else(|| "absent".into())
            ),
        ]
    }
}
