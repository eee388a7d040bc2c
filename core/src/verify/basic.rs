//! HTTP Basic auth for vendors that offer nothing else (Azure DevOps service hooks): the
//! sender presents a fixed user name and the source's secret as the password. Nothing about
//! the body is signed, so the credentials are only as safe as the transport: a source of
//! this kind is refused at start-up unless hookwire serves it over TLS itself (`tls:`) or the
//! source says a TLS-terminating proxy is in front of it (`behind_tls: true`).

use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::token::basic_credentials;
use super::{shape, Key, Request, SignError, Verified, VerifyError};
use crate::secret::Secret;

/// `verify:` of a `basic` source.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name the sender must present (compared in constant time, like the password).
    pub user: String,
    /// The source is reached through a TLS-terminating proxy: plain HTTP to hookwire itself
    /// is then acceptable.
    #[serde(default)]
    pub behind_tls: bool,
}

impl BasicAuth {
    /// Checks the user name: Basic auth cannot carry a `:` in it, and an empty one is a typo.
    pub fn validate(self) -> Result<Self, String> {
        if self.user.is_empty() || self.user.contains(':') || self.user.chars().any(char::is_control) {
            return Err(format!(
                "`{}` cannot be a Basic auth user name: it must be non-empty, without `:` or control characters",
                self.user
            ));
        }
        Ok(self)
    }

    /// True when the credentials would cross plain HTTP unless hookwire serves TLS itself.
    pub fn needs_tls(&self) -> bool {
        !self.behind_tls
    }

    pub(super) fn credential_headers(&self) -> Vec<String> {
        vec!["authorization".into()]
    }

    /// Both the user and the password are compared as SHA-256 digests in constant time, and
    /// both comparisons always run, so timing says nothing about which was wrong.
    pub(super) fn verify(&self, req: &Request<'_>, keys: &[Key]) -> Result<Verified, VerifyError> {
        let auth = req.header("authorization").ok_or(VerifyError::Missing)?;
        let (scheme, rest) = auth
            .iter()
            .position(|b| *b == b' ')
            .map(|i| (&auth[..i], auth[i + 1..].trim_ascii()))
            .ok_or(VerifyError::Malformed)?;
        if !scheme.eq_ignore_ascii_case(b"basic") {
            return Err(VerifyError::Missing);
        }
        let (user, password) = basic_credentials(rest).ok_or(VerifyError::Malformed)?;
        if password.is_empty() {
            return Err(VerifyError::Missing);
        }
        let user_ok = Sha256::digest(self.user.as_bytes()).ct_eq(&Sha256::digest(&user));
        let given = Sha256::digest(&password);
        let mut found = None;
        for (i, key) in keys.iter().enumerate() {
            let Key::Token(secret) = key else { continue };
            let ok = Sha256::digest(secret.expose()).ct_eq(&given) & user_ok;
            if bool::from(ok) && found.is_none() {
                found = Some(i);
            }
        }
        found.map(Verified::by).ok_or(VerifyError::Mismatch)
    }

    pub(super) fn sign(&self, secret: &Secret) -> Result<Vec<(String, String)>, SignError> {
        let text = std::str::from_utf8(secret.expose())
            .map_err(|_| SignError("the password is not text and cannot be sent in Basic auth".into()))?;
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{}:{text}", self.user));
        Ok(vec![("authorization".into(), format!("Basic {pair}"))])
    }

    pub(super) fn explain(&self, req: &Request<'_>) -> Vec<String> {
        vec![
            format!(
                "scheme: basic, Authorization: Basic with user `{}` and the secret as the password (nothing is signed; {})",
                self.user,
                if self.behind_tls {
                    "the source says a TLS proxy is in front"
                } else {
                    "served only over hookwire's own TLS"
                }
            ),
            format!(
                "authorization header: {}",
                req.header("authorization")
                    .map(shape)
                    .unwrap_or_else(|| "absent".into())
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn scheme() -> BasicAuth {
        BasicAuth {
            user: "azure-devops".into(),
            behind_tls: false,
        }
    }

    fn keys(secrets: &[&str]) -> Vec<Key> {
        secrets
            .iter()
            .map(|s| Key::Token(Secret::new(s.as_bytes().to_vec())))
            .collect()
    }

    fn check(authorization: Option<&str>) -> Result<Verified, VerifyError> {
        let mut h = HeaderMap::new();
        if let Some(a) = authorization {
            h.insert("authorization", a.parse().unwrap());
        }
        let req = Request {
            headers: &h,
            body: b"{}",
            method: "POST",
            url: None,
            now: std::time::SystemTime::now(),
        };
        scheme().verify(&req, &keys(&["first-password-0001", "second-password-002"]))
    }

    fn basic(pair: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    }

    #[test]
    fn user_and_password_must_both_match() {
        assert_eq!(
            check(Some(&basic("azure-devops:second-password-002"))),
            Ok(Verified::by(1))
        );
        assert_eq!(
            check(Some(&basic("azure-devops:first-password-0001"))),
            Ok(Verified::by(0))
        );
        // Right password, wrong user; right user, wrong password; the user's case matters.
        assert_eq!(
            check(Some(&basic("someone:first-password-0001"))),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            check(Some(&basic("azure-devops:first-password-0002"))),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            check(Some(&basic("Azure-DevOps:first-password-0001"))),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(check(Some(&basic("azure-devops:"))), Err(VerifyError::Missing));
        assert_eq!(
            check(Some("Bearer first-password-0001")),
            Err(VerifyError::Missing)
        );
        assert_eq!(check(Some("Basic !!!")), Err(VerifyError::Malformed));
        assert_eq!(check(None), Err(VerifyError::Missing));
    }

    #[test]
    fn signing_produces_what_verifies() {
        let headers = scheme()
            .sign(&Secret::new(b"second-password-002".to_vec()))
            .unwrap();
        assert_eq!(check(Some(&headers[0].1)), Ok(Verified::by(1)));
    }

    #[test]
    fn a_user_name_basic_auth_cannot_carry_is_refused() {
        for bad in ["", "a:b", "a\nb"] {
            assert!(BasicAuth {
                user: bad.into(),
                behind_tls: false
            }
            .validate()
            .is_err());
        }
    }
}
