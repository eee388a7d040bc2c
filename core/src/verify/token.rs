//! Shared-secret tokens for vendors that do not sign (GitLab classic, Datadog, Alertmanager,
//! Honeycomb, ...): the secret in a header, as a Bearer token, or as HTTP Basic auth.

use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::{shape, Key, Request, SignError, Verified, VerifyError};
use crate::secret::Secret;

/// Where the token may be presented; any configured form is accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenScheme {
    /// A header carrying the token verbatim (`X-Gitlab-Token`).
    #[serde(default)]
    pub header: Option<String>,
    /// Accept `Authorization: Bearer <token>`.
    #[serde(default)]
    pub bearer: bool,
    /// Accept HTTP Basic auth whose password is the token.
    #[serde(default)]
    pub basic: bool,
    /// With `basic`, the user name required (any when unset).
    #[serde(default)]
    pub basic_user: Option<String>,
}

impl TokenScheme {
    /// The token verbatim in one header.
    pub fn header(name: &str) -> Self {
        TokenScheme {
            header: Some(name.to_ascii_lowercase()),
            ..Default::default()
        }
    }

    /// Checks that at least one form is enabled; lowercases the header name.
    pub fn validate(mut self) -> Result<Self, String> {
        if self.header.is_none() && !self.bearer && !self.basic {
            return Err("a token scheme needs `header`, `bearer: true` or `basic: true`".into());
        }
        if self.basic_user.is_some() && !self.basic {
            return Err("`basic_user` needs `basic: true`".into());
        }
        if let Some(h) = &mut self.header {
            if h.is_empty()
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!(
                    "`{h}` is not a valid header name: use letters, digits and -"
                ));
            }
            *h = h.to_ascii_lowercase();
        }
        Ok(self)
    }

    /// The headers that can carry the token: never stored or shown.
    pub(super) fn credential_headers(&self) -> Vec<String> {
        let mut headers: Vec<String> = self.header.iter().cloned().collect();
        if self.bearer || self.basic {
            headers.push("authorization".into());
        }
        headers
    }

    pub(super) fn verify(&self, req: &Request<'_>, keys: &[Key]) -> Result<Verified, VerifyError> {
        if let Some(value) = self.header.as_deref().and_then(|h| req.header(h)) {
            return token(value, keys).map(Verified::by);
        }
        let auth = req.header("authorization").ok_or(VerifyError::Missing)?;
        let (scheme, rest) = auth
            .iter()
            .position(|b| *b == b' ')
            .map(|i| (&auth[..i], auth[i + 1..].trim_ascii()))
            .ok_or(VerifyError::Malformed)?;
        if self.bearer && scheme.eq_ignore_ascii_case(b"bearer") {
            return token(rest, keys).map(Verified::by);
        }
        if self.basic && scheme.eq_ignore_ascii_case(b"basic") {
            let (user, password) = basic_credentials(rest).ok_or(VerifyError::Malformed)?;
            let matched = token(&password, keys)?;
            return match &self.basic_user {
                Some(want) if !bool::from(Sha256::digest(want).ct_eq(&Sha256::digest(&user))) => {
                    Err(VerifyError::Mismatch)
                }
                _ => Ok(Verified::by(matched)),
            };
        }
        Err(VerifyError::Missing)
    }

    pub(super) fn sign(&self, secret: &Secret) -> Result<Vec<(String, String)>, SignError> {
        let text = std::str::from_utf8(secret.expose())
            .map_err(|_| SignError("the token is not text and cannot be sent in a header".into()))?;
        Ok(vec![match (&self.header, self.bearer) {
            (Some(h), _) => (h.clone(), text.to_owned()),
            (None, true) => ("authorization".into(), format!("Bearer {text}")),
            (None, false) => {
                let user = self.basic_user.as_deref().unwrap_or("hookwire");
                let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{text}"));
                ("authorization".into(), format!("Basic {pair}"))
            }
        }])
    }

    pub(super) fn explain(&self, req: &Request<'_>) -> Vec<String> {
        let mut forms = Vec::new();
        if let Some(h) = &self.header {
            forms.push(format!(
                "header `{h}` ({})",
                req.header(h).map(shape).unwrap_or_else(|| "absent".into())
            ));
        }
        if self.bearer {
            forms.push("Authorization: Bearer".into());
        }
        if self.basic {
            forms.push(format!(
                "Authorization: Basic (user {})",
                self.basic_user.as_deref().unwrap_or("any")
            ));
        }
        vec![
            format!("scheme: token, accepted as {}", forms.join(" or ")),
            format!(
                "authorization header: {}",
                req.header("authorization")
                    .map(shape)
                    .unwrap_or_else(|| "absent".into())
            ),
        ]
    }
}

/// Compares a presented token with each key in constant time. Both sides are hashed first so
/// the comparison takes the same time whatever the lengths.
fn token(presented: &[u8], keys: &[Key]) -> Result<usize, VerifyError> {
    if presented.is_empty() {
        return Err(VerifyError::Missing);
    }
    let given = Sha256::digest(presented);
    let mut found = None;
    for (i, key) in keys.iter().enumerate() {
        let Key::Token(secret) = key else { continue };
        let want = Sha256::digest(secret.expose());
        if bool::from(want.ct_eq(&given)) && found.is_none() {
            found = Some(i);
        }
    }
    found.ok_or(VerifyError::Mismatch)
}

/// Splits the base64 part of `Authorization: Basic <base64 user:password>`. `None` when it
/// does not decode.
pub fn basic_credentials(encoded: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn keys(secrets: &[&str]) -> Vec<Key> {
        secrets
            .iter()
            .map(|s| Key::Token(Secret::new(s.as_bytes().to_vec())))
            .collect()
    }

    fn req(headers: &HeaderMap) -> Request<'_> {
        Request {
            headers,
            body: b"{}",
            method: "POST",
            url: None,
            now: std::time::SystemTime::now(),
        }
    }

    #[test]
    fn any_form_and_any_key_of_the_set() {
        let scheme = TokenScheme {
            header: Some("x-token".into()),
            bearer: true,
            basic: true,
            basic_user: Some("dd".into()),
        };
        let k = keys(&["a-token", "b-token"]);
        let mut h = HeaderMap::new();
        h.insert("x-token", "b-token".parse().unwrap());
        assert_eq!(scheme.verify(&req(&h), &k), Ok(Verified::by(1)));
        h.clear();
        h.insert("authorization", "Bearer a-token".parse().unwrap());
        assert_eq!(scheme.verify(&req(&h), &k), Ok(Verified::by(0)));
        // "dd:b-token"
        h.insert("authorization", "Basic ZGQ6Yi10b2tlbg==".parse().unwrap());
        assert_eq!(scheme.verify(&req(&h), &k), Ok(Verified::by(1)));
        // "xx:b-token": right password, wrong user.
        h.insert("authorization", "Basic eHg6Yi10b2tlbg==".parse().unwrap());
        assert_eq!(scheme.verify(&req(&h), &k), Err(VerifyError::Mismatch));
        h.insert("authorization", "Bearer b-toke".parse().unwrap());
        assert_eq!(scheme.verify(&req(&h), &k), Err(VerifyError::Mismatch));
        h.clear();
        assert_eq!(scheme.verify(&req(&h), &k), Err(VerifyError::Missing));
        h.insert("x-token", "".parse().unwrap());
        assert_eq!(scheme.verify(&req(&h), &k), Err(VerifyError::Missing));
    }

    #[test]
    fn basic_auth_parses() {
        // "user:pa:ss": the password may contain a colon.
        assert_eq!(
            basic_credentials(b"dXNlcjpwYTpzcw=="),
            Some((b"user".to_vec(), b"pa:ss".to_vec()))
        );
        assert_eq!(basic_credentials(b"!!!"), None);
    }
}
