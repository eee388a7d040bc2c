//! OIDC ID tokens: `Authorization: Bearer <JWT>`, RS256, signed by an identity provider whose
//! keys are published as a JWKS (Google Cloud Pub/Sub push: `https://www.googleapis.com/oauth2/v3/certs`).
//! Checked: the header's `alg` is RS256 and its `kid` a key of the JWKS; the signature; `iss`
//! one of the configured issuers; `aud` the configured audience; `email` the configured
//! service account with `email_verified` true; `exp` not passed and `iat` not in the future,
//! both with [`OidcOptions::leeway_secs`].
//!
//! The token does not cover the body: it proves who pushed, for as long as it lives (Pub/Sub
//! reuses a token for up to an hour), not what. So a request has no signed fingerprint; the
//! delivery id (Pub/Sub's `message.messageId`) deduplicates.
//!
//! Keys come through [`crate::fetch`] and are kept for [`KEYS_TTL`]. A `kid` not among them
//! fetches the JWKS again, at most once per [`REFRESH_EVERY`], so forged `kid`s cannot make
//! every request a fetch.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use super::rsa::{Components, Hash};
use super::timestamp::millis;
use super::{shape, Outgoing, Request, SignError, Verified, VerifyError};
use crate::fetch::Fetch;

/// How long fetched keys are used before the JWKS is fetched again.
pub const KEYS_TTL: Duration = Duration::from_secs(3600);

/// The least time between two fetches caused by an unknown `kid`.
pub const REFRESH_EVERY: Duration = Duration::from_secs(60);

/// The most keys kept from one JWKS.
const MAX_KEYS: usize = 32;

/// The longest token accepted.
const MAX_TOKEN: usize = 8 * 1024;

/// `verify:` of an `oidc-token` source.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcOptions {
    /// The JWKS URL (https).
    pub jwks_url: String,
    /// Accepted `iss` values.
    pub issuers: Vec<String>,
    /// The required `aud`: what the sender was told to put there (Pub/Sub: the push
    /// subscription's audience, by default its push endpoint URL).
    pub audience: String,
    /// The required `email`: the sender's service account.
    pub email: String,
    /// Clock skew allowed on `exp` and `iat`, in seconds (default 60).
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_leeway() -> u64 {
    60
}

/// The scheme with its fetch client and key cache.
#[derive(Debug, Clone)]
pub struct Oidc {
    options: OidcOptions,
    jwks: url::Url,
    fetch: Fetch,
    keys: Arc<Mutex<Keys>>,
}

#[derive(Debug, Default)]
struct Keys {
    by_kid: BTreeMap<String, Components>,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
    refreshed_for_kid: Option<Instant>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<Value>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<Value>,
    #[serde(default)]
    exp: Option<f64>,
    #[serde(default)]
    iat: Option<f64>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    #[serde(default)]
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok()
}

/// The token's three parts, decoded header, and signing input.
struct Token<'a> {
    header: Header,
    claims: &'a str,
    signed: &'a str,
    signature: Vec<u8>,
}

fn bearer<'a>(req: &Request<'a>) -> Result<&'a str, VerifyError> {
    let value = req.header_str("authorization").ok_or(VerifyError::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(VerifyError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.len() > MAX_TOKEN {
        return Err(VerifyError::Malformed);
    }
    Ok(token.trim())
}

fn parse(token: &str) -> Result<Token<'_>, VerifyError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(VerifyError::Malformed);
    };
    let header: Header = b64url(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(VerifyError::Malformed)?;
    if header.alg != "RS256" || header.kid.as_deref().is_none_or(str::is_empty) {
        return Err(VerifyError::Malformed);
    }
    let signature = b64url(s)
        .filter(|s| (256..=1024).contains(&s.len()))
        .ok_or(VerifyError::Malformed)?;
    Ok(Token {
        header,
        claims: c,
        signed: &token[..h.len() + 1 + c.len()],
        signature,
    })
}

impl Oidc {
    /// The scheme for `options`, fetching through `fetch`.
    pub fn new(options: OidcOptions, fetch: Fetch) -> Result<Self, String> {
        let jwks = url::Url::parse(&options.jwks_url)
            .ok()
            .filter(|u| u.scheme() == "https" && u.host_str().is_some())
            .ok_or_else(|| format!("jwks_url `{}` is not an https URL", options.jwks_url))?;
        if options.issuers.is_empty() {
            return Err("list the accepted `iss` values in `issuers`".into());
        }
        if options.audience.is_empty() || options.email.is_empty() {
            return Err("set `audience` and `email` (the sender's service account)".into());
        }
        Ok(Oidc {
            options,
            jwks,
            fetch,
            keys: Arc::new(Mutex::new(Keys::default())),
        })
    }

    /// The options.
    pub fn options(&self) -> &OidcOptions {
        &self.options
    }

    /// The bearer token is present and shaped like an RS256 JWT with a `kid`.
    pub(super) fn precheck(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        parse(bearer(req)?).map(|_| ())
    }

    /// The Authorization header carries the credential.
    pub(super) fn credential_headers(&self) -> Vec<String> {
        vec!["authorization".into()]
    }

    pub(super) fn verify(&self, req: &Request<'_>) -> Result<Verified, VerifyError> {
        let token = parse(bearer(req)?)?;
        let kid = token.header.kid.as_deref().unwrap_or_default();
        let key = self.key(kid)?;
        if !key.verifies(Hash::Sha256, token.signed.as_bytes(), &token.signature) {
            return Err(VerifyError::Mismatch);
        }
        let claims: Claims = b64url(token.claims)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(VerifyError::Malformed)?;
        let o = &self.options;
        if !claims.iss.as_ref().is_some_and(|i| o.issuers.contains(i)) {
            return Err(VerifyError::Untrusted("iss is not one of the source's issuers"));
        }
        let aud_ok = match &claims.aud {
            Some(Value::String(a)) => *a == o.audience,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(&o.audience)),
            _ => false,
        };
        if !aud_ok {
            return Err(VerifyError::Untrusted("aud is not the source's audience"));
        }
        let verified = matches!(claims.email_verified, Some(Value::Bool(true)))
            || matches!(&claims.email_verified, Some(Value::String(s)) if s == "true");
        if claims.email.as_deref() != Some(o.email.as_str()) || !verified {
            return Err(VerifyError::Untrusted(
                "email is not the source's service account (or not verified)",
            ));
        }
        let now = millis(req.now) as f64 / 1000.0;
        let leeway = o.leeway_secs as f64;
        let (exp, iat) = match (claims.exp, claims.iat) {
            (Some(exp), Some(iat)) => (exp, iat),
            _ => return Err(VerifyError::Malformed),
        };
        if exp + leeway < now || iat - leeway > now {
            return Err(VerifyError::Stale);
        }
        Ok(Verified {
            signed_at: Some((iat * 1000.0) as i64),
            ..Verified::by(0)
        })
    }

    /// The key named `kid`: cached, else fetched (see the module's note on refreshes).
    fn key(&self, kid: &str) -> Result<Components, VerifyError> {
        let now = Instant::now();
        let mut keys = self.keys.lock().expect("jwks cache");
        let fresh = keys.fetched.is_some_and(|at| now.duration_since(at) < KEYS_TTL);
        let failed_lately = keys
            .attempted
            .is_some_and(|at| now.duration_since(at) < REFRESH_EVERY);
        let mut fetched_now = false;
        if !fresh && !failed_lately {
            self.refresh(&mut keys, now);
            fetched_now = true;
        }
        if let Some(k) = keys.by_kid.get(kid) {
            return Ok(k.clone());
        }
        let may_refresh = !fetched_now
            && keys
                .refreshed_for_kid
                .is_none_or(|at| now.duration_since(at) >= REFRESH_EVERY);
        if may_refresh {
            keys.refreshed_for_kid = Some(now);
            if self.refresh(&mut keys, now) {
                tracing::info!(url = %self.jwks, "JWKS fetched again for an unknown kid");
            }
            if let Some(k) = keys.by_kid.get(kid) {
                return Ok(k.clone());
            }
        }
        if keys.by_kid.is_empty() {
            Err(VerifyError::KeysUnavailable)
        } else {
            Err(VerifyError::Mismatch)
        }
    }

    /// Fetches the JWKS into `keys`; on failure the keys held are kept. Runs under the cache's
    /// lock, so concurrent requests wait for one fetch rather than each making their own.
    fn refresh(&self, keys: &mut Keys, now: Instant) -> bool {
        keys.attempted = Some(now);
        let parsed = self
            .fetch
            .get(&self.jwks)
            .map_err(|e| e.to_string())
            .and_then(|body| serde_json::from_slice::<Jwks>(&body).map_err(|_| "not a JWKS".to_owned()));
        match parsed {
            Ok(jwks) => {
                keys.by_kid = jwks
                    .keys
                    .into_iter()
                    .filter(|k| k.kty == "RSA" && k.alg.as_deref().is_none_or(|a| a == "RS256"))
                    .filter(|k| k.usage.as_deref().is_none_or(|u| u == "sig"))
                    .filter_map(|k| {
                        let n = b64url(k.n.as_deref()?)?;
                        let e = b64url(k.e.as_deref()?)?;
                        Some((k.kid?, Components::new(n, e)))
                    })
                    .take(MAX_KEYS)
                    .collect();
                keys.fetched = Some(now);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, url = %self.jwks, "cannot fetch the JWKS");
                false
            }
        }
    }

    /// The identity provider signs; `send` cannot.
    pub(super) fn sign(&self, _out: &Outgoing<'_>) -> Result<Vec<(String, String)>, SignError> {
        Err(SignError(
            "an OIDC token is signed by the identity provider (Google for Pub/Sub); publish a message to the topic instead".into(),
        ))
    }

    pub(super) fn explain(&self, req: &Request<'_>) -> Vec<String> {
        let o = &self.options;
        let mut lines = vec![
            format!("scheme: oidc-token, Authorization: Bearer <JWT>, RS256 with a key of {}", o.jwks_url),
            format!(
                "required claims: iss one of [{}], aud {:?}, email {:?} with email_verified, exp/iat within ±{} s",
                o.issuers.join(", "),
                o.audience,
                o.email,
                o.leeway_secs
            ),
        ];
        lines.push(match bearer(req).map(|t| (t, parse(t))) {
            Err(_) => "Authorization: absent or not `Bearer <token>`".into(),
            Ok((t, Err(_))) => format!(
                "Authorization: Bearer token ({}), not an RS256 JWT with a kid",
                shape(t.as_bytes())
            ),
            Ok((t, Ok(p))) => {
                let claims = b64url(p.claims)
                    .and_then(|b| serde_json::from_slice::<Claims>(&b).ok())
                    .map(|c| {
                        format!(
                            "iss {:?}, aud {}, email {:?}, exp {:?}, iat {:?}",
                            c.iss.unwrap_or_default(),
                            c.aud.map(|a| a.to_string()).unwrap_or_default(),
                            c.email.unwrap_or_default(),
                            c.exp,
                            c.iat
                        )
                    })
                    .unwrap_or_else(|| "claims unreadable".into());
                format!(
                    "Authorization: Bearer JWT ({}), kid {:?}; claims (before verification): {claims}",
                    shape(t.as_bytes()),
                    p.header.kid.unwrap_or_default()
                )
            }
        });
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn req(headers: &HeaderMap) -> Request<'_> {
        Request {
            headers,
            body: b"{}",
            method: "POST",
            url: None,
            now: std::time::SystemTime::UNIX_EPOCH,
        }
    }

    fn scheme() -> Oidc {
        Oidc::new(
            OidcOptions {
                jwks_url: "https://www.googleapis.com/oauth2/v3/certs".into(),
                issuers: vec!["https://accounts.google.com".into()],
                audience: "https://hooks.example.com/pubsub".into(),
                email: "pusher@project.iam.gserviceaccount.com".into(),
                leeway_secs: 60,
            },
            Fetch::offline(),
        )
        .unwrap()
    }

    #[test]
    fn precheck_wants_a_bearer_rs256_jwt_with_a_kid() {
        let s = scheme();
        let mut h = HeaderMap::new();
        assert_eq!(s.precheck(&req(&h)), Err(VerifyError::Missing));
        h.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(s.precheck(&req(&h)), Err(VerifyError::Malformed));
        let b = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let sig = b(&"x".repeat(256));
        for header in [
            r#"{"alg":"HS256","kid":"k"}"#,
            r#"{"alg":"RS256"}"#,
            r#"{"alg":"none","kid":"k"}"#,
        ] {
            let token = format!("Bearer {}.{}.{sig}", b(header), b("{}"));
            h.insert("authorization", HeaderValue::from_str(&token).unwrap());
            assert_eq!(s.precheck(&req(&h)), Err(VerifyError::Malformed), "{header}");
        }
        let token = format!("Bearer {}.{}.{sig}", b(r#"{"alg":"RS256","kid":"k"}"#), b("{}"));
        h.insert("authorization", HeaderValue::from_str(&token).unwrap());
        assert_eq!(s.precheck(&req(&h)), Ok(()));
        // Offline: no key can be had, which is not a mismatch.
        assert_eq!(s.verify(&req(&h)), Err(VerifyError::KeysUnavailable));
    }

    #[test]
    fn options_are_checked() {
        let mut o = scheme().options().clone();
        o.jwks_url = "http://www.googleapis.com/oauth2/v3/certs".into();
        assert!(Oidc::new(o.clone(), Fetch::offline()).is_err());
        o.jwks_url = "https://www.googleapis.com/oauth2/v3/certs".into();
        o.email = String::new();
        assert!(Oidc::new(o, Fetch::offline()).is_err());
    }
}
