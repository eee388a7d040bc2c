//! Verification: is this request really from the vendor, unmodified and fresh? Every scheme is
//! a pure function over the raw request (body bytes, headers, method, public URL, now) and the
//! source's keys. Comparisons are constant-time on decoded bytes, any key of the rotation set
//! may match, and errors never carry secret material.
//!
//! The schemes: [`signature`] (configurable HMAC, Ed25519 or ECDSA P-256 ([`ecdsa`]) over a
//! template of the request),
//! [`token`] (shared secret in a header, Bearer or Basic auth), [`basic`] (Basic auth with a
//! fixed user, TLS required), [`mailgun`] (the signature inside the JSON body),
//! [`standard_webhooks`],
//! [`twilio`] (URL + sorted form parameters), [`jws`] (Netlify's signed JWT), and two whose
//! keys the vendor holds and hookwire fetches ([`crate::fetch`]): [`sns`] (AWS SNS, RSA with
//! the certificate at the message's `SigningCertURL`) and [`oidc`] (an RS256 ID token with
//! keys from a JWKS: Google Cloud Pub/Sub push). Those two take no secret.

pub mod basic;
pub mod codec;
pub mod ecdsa;
pub mod jws;
pub mod mailgun;
pub mod oidc;
pub mod rsa;
pub mod signature;
pub mod sns;
pub mod standard_webhooks;
pub mod timestamp;
pub mod token;
pub mod twilio;

use std::fmt;
use std::time::SystemTime;

use axum::http::HeaderMap;
use sha2::Digest as _;

use crate::secret::{Secret, SecretSet};

pub use basic::BasicAuth;
pub use mailgun::Mailgun;
pub use oidc::Oidc;
pub use signature::SignatureScheme;
pub use sns::Sns;
pub use standard_webhooks::StandardWebhooks;
pub use token::TokenScheme;
pub use twilio::Twilio;

/// One incoming webhook as verification and identification see it: raw bytes, never a
/// re-serialised body.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Request headers (names are case-insensitive).
    pub headers: &'a HeaderMap,
    /// The raw body, exactly as received.
    pub body: &'a [u8],
    /// The HTTP method.
    pub method: &'a str,
    /// The URL as the sender requested it (the source's `public_url` plus the query as
    /// received), for schemes that sign it. `None` when no public URL is configured.
    pub url: Option<&'a str>,
    /// The time the request arrived, for timestamp windows.
    pub now: SystemTime,
}

impl<'a> Request<'a> {
    /// A header's raw bytes.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers.get(name).map(|v| v.as_bytes())
    }

    /// A header as text, when it is valid visible ASCII.
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// True when the body is `application/x-www-form-urlencoded`.
    pub fn is_form(&self) -> bool {
        self.header_str("content-type").is_some_and(|c| {
            c.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
        })
    }
}

/// Why a request failed verification. The vendor only ever sees a uniform 401; the kind is
/// for logs, metrics and `hookwire verify explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The source has no usable secret: fail closed.
    #[error("no secret configured")]
    NoSecret,
    /// The signature, credentials or signed timestamp are absent.
    #[error("missing signature or credentials")]
    Missing,
    /// Present but not of the expected shape (prefix, encoding, length, algorithm).
    #[error("malformed signature")]
    Malformed,
    /// Well-formed, but no configured secret produces it.
    #[error("signature does not match")]
    Mismatch,
    /// The signature is good but its signed timestamp is outside the window: a replay or a
    /// badly skewed clock.
    #[error("signed timestamp outside the allowed window")]
    Stale,
    /// The request lacks something the scheme needs that only configuration can give (the
    /// public URL for Twilio).
    #[error("the source is not configured for this scheme: {0}")]
    Unconfigured(&'static str),
    /// Signed, or claiming to be, by someone the source does not trust: an SNS topic it does
    /// not list, a certificate URL off AWS's hosts, a token's issuer, audience or account.
    #[error("not from a sender the source trusts: {0}")]
    Untrusted(&'static str),
    /// The vendor's keys (SNS certificate, JWKS) could not be fetched.
    #[error("the vendor's signing keys could not be fetched")]
    KeysUnavailable,
}

/// A request that verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Index of the secret (in configuration order) that matched.
    pub secret: usize,
    /// The signed timestamp, Unix milliseconds, when the scheme has one.
    pub signed_at: Option<i64>,
    /// A fingerprint of what was signed: the first 16 bytes of the matching signature (a MAC,
    /// or an Ed25519 signature checked strictly, so either is determined by the signed bytes
    /// and the key). The same signed bytes sent again have the same fingerprint, whatever
    /// unsigned headers come with them. `None` for a token: it proves the sender, not the
    /// bytes (whoever can replay it can also write a new body), so two deliveries of the same
    /// body under two ids are two events.
    pub fingerprint: Option<[u8; 16]>,
}

impl Verified {
    /// Verified by secret `i`, no timestamp, no fingerprint (a token).
    pub fn by(secret: usize) -> Self {
        Verified {
            secret,
            signed_at: None,
            fingerprint: None,
        }
    }

    /// The same, with the matching signature's fingerprint.
    pub fn signed(mut self, signature: &[u8]) -> Self {
        self.fingerprint = fingerprint(signature);
        self
    }
}

/// The first 16 bytes of a signature, when it has that many.
fn fingerprint(signature: &[u8]) -> Option<[u8; 16]> {
    signature.get(..16).and_then(|b| b.try_into().ok())
}

/// What `hookwire send` needs to sign a request the way the vendor would.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The body to send.
    pub body: &'a [u8],
    /// The HTTP method.
    pub method: &'a str,
    /// The URL the request goes to (the one the vendor would sign).
    pub url: &'a str,
    /// A fresh delivery id, for schemes that sign one.
    pub id: &'a str,
    /// The signing time.
    pub now: SystemTime,
}

/// Why `hookwire send` cannot sign for a source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SignError(pub String);

/// A verification scheme as configured, before its keys are bound.
#[derive(Debug, Clone)]
pub enum Scheme {
    /// HMAC or Ed25519 over a template of the request, signature in a header.
    Signature(SignatureScheme),
    /// A shared secret presented as is.
    Token(TokenScheme),
    /// HTTP Basic auth: a fixed user and the secret as the password.
    Basic(BasicAuth),
    /// Standard Webhooks (`webhook-*` / `svix-*` headers, v1 HMAC and v1a Ed25519).
    StandardWebhooks(StandardWebhooks),
    /// Twilio: HMAC-SHA1 over the public URL and the sorted form parameters.
    Twilio(Twilio),
    /// Netlify: an HS256 JWS whose claims pin the issuer and the body's SHA-256.
    Jws(jws::Jws),
    /// Mailgun: HMAC-SHA256 of the body's `signature.timestamp` and `signature.token`.
    Mailgun(Mailgun),
    /// AWS SNS: RSA over the message's canonical fields, key from AWS's certificate.
    Sns(Sns),
    /// An RS256 OIDC token in `Authorization: Bearer`, keys from a JWKS (Pub/Sub push).
    Oidc(Oidc),
}

/// A key derived from one configured secret, in the form its scheme uses.
// A few per source, built once at start-up: boxing the pre-keyed MAC to shrink the enum would
// add an indirection to every request instead.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Key {
    /// A pre-keyed HMAC.
    Mac(codec::KeyedMac),
    /// An Ed25519 public key.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// A P-256 public key (ECDSA with SHA-256).
    EcdsaP256(p256::ecdsa::VerifyingKey),
    /// The secret compared or used as is (tokens).
    Token(Secret),
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Key::Mac(_) => "Key::Mac(<redacted>)",
            Key::Ed25519(_) => "Key::Ed25519(<public key>)",
            Key::EcdsaP256(_) => "Key::EcdsaP256(<public key>)",
            Key::Token(_) => "Key::Token(<redacted>)",
        })
    }
}

/// A scheme with its keys: what a source verifies with.
#[derive(Debug, Clone)]
pub struct Verifier {
    scheme: Scheme,
    keys: Vec<Key>,
    secrets: SecretSet,
}

impl Verifier {
    /// Binds a scheme to a source's secrets, decoding each the way the scheme needs. An error
    /// names the secret by position, never by content.
    pub fn new(scheme: Scheme, secrets: &SecretSet) -> Result<Self, String> {
        let scheme = match scheme {
            Scheme::Signature(s) => Scheme::Signature(s.validate()?),
            Scheme::Token(t) => Scheme::Token(t.validate()?),
            Scheme::Basic(b) => Scheme::Basic(b.validate()?),
            other => other,
        };
        if scheme.keyless() && !secrets.is_empty() {
            return Err(format!(
                "a {} source verifies with the vendor's published keys and takes no secret; remove secret_env / secret_file",
                scheme.name()
            ));
        }
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                scheme
                    .key(s)
                    .map_err(|e| format!("secret {} of the rotation set: {e}", i + 1))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Verifier {
            scheme,
            keys,
            secrets: secrets.clone(),
        })
    }

    /// The scheme.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// Verifies a request: which key matched and the signed time, or why not. The webhook
    /// path's call: a scheme may act on what it verified (SNS confirms a subscription when the
    /// source opts in). [`Verifier::check`] verifies without acting.
    pub fn verify(&self, req: &Request<'_>) -> Result<Verified, VerifyError> {
        self.verify_with(req, true)
    }

    /// Verifies a request without acting on it: for `hookwire verify explain`.
    pub fn check(&self, req: &Request<'_>) -> Result<Verified, VerifyError> {
        self.verify_with(req, false)
    }

    /// True when the scheme verifies with keys the vendor publishes, so the source has no
    /// secret (SNS, OIDC tokens).
    pub fn keyless(&self) -> bool {
        self.scheme.keyless()
    }

    fn verify_with(&self, req: &Request<'_>, effects: bool) -> Result<Verified, VerifyError> {
        if self.keys.is_empty() && !self.scheme.keyless() {
            return Err(VerifyError::NoSecret);
        }
        let verified = match &self.scheme {
            Scheme::Signature(s) => s.verify(req, &self.keys),
            Scheme::Token(s) => s.verify(req, &self.keys),
            Scheme::Basic(s) => s.verify(req, &self.keys),
            Scheme::StandardWebhooks(s) => s.verify(req, &self.keys),
            Scheme::Twilio(s) => s.verify(req, &self.keys),
            Scheme::Jws(s) => s.verify(req, &self.keys),
            Scheme::Mailgun(s) => s.verify(req, &self.keys),
            Scheme::Sns(s) => s.verify(req, effects),
            Scheme::Oidc(s) => s.verify(req),
        }?;
        Ok(verified)
    }

    /// True when the scheme's credentials would cross plain HTTP unprotected: Basic auth,
    /// unless the source says a TLS proxy is in front. Config loading refuses such a source
    /// when hookwire does not serve TLS itself.
    pub fn needs_tls(&self) -> bool {
        matches!(&self.scheme, Scheme::Basic(b) if b.needs_tls())
    }

    /// What can be checked before the body is read, from the headers alone: a request that
    /// fails here is answered 401 without its body ever being buffered. Token schemes (and
    /// Netlify's JWS, whose signature covers its claims) are verified whole; signature schemes
    /// check that the signature, its signed timestamp and the signed headers are present and
    /// well formed.
    pub fn precheck(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        if self.keys.is_empty() && !self.scheme.keyless() {
            return Err(VerifyError::NoSecret);
        }
        match &self.scheme {
            Scheme::Signature(s) => s.precheck(req),
            Scheme::Token(s) => s.verify(req, &self.keys).map(|_| ()),
            Scheme::Basic(s) => s.verify(req, &self.keys).map(|_| ()),
            Scheme::StandardWebhooks(s) => s.precheck(req),
            Scheme::Twilio(s) => s.precheck(req),
            Scheme::Jws(s) => s.precheck(req, &self.keys),
            Scheme::Mailgun(s) => s.precheck(req),
            Scheme::Sns(s) => s.precheck(req),
            Scheme::Oidc(s) => s.precheck(req),
        }
    }

    /// The request headers this scheme reads as credentials (lowercase): whatever their
    /// names, they are never stored, shown to templates or returned by a tool.
    pub fn credential_headers(&self) -> Vec<String> {
        match &self.scheme {
            Scheme::Signature(s) => s.credential_headers(),
            Scheme::Token(s) => s.credential_headers(),
            Scheme::Basic(s) => s.credential_headers(),
            Scheme::StandardWebhooks(s) => s.credential_headers(),
            Scheme::Twilio(s) => s.credential_headers(),
            Scheme::Jws(s) => s.credential_headers(),
            Scheme::Mailgun(s) => s.credential_headers(),
            Scheme::Sns(_) => Vec::new(),
            Scheme::Oidc(s) => s.credential_headers(),
        }
    }

    /// The headers a vendor would send for `out`, signed with secret `index`.
    pub fn sign(&self, out: &Outgoing<'_>, index: usize) -> Result<Vec<(String, String)>, SignError> {
        match &self.scheme {
            Scheme::Sns(s) => return s.sign(out),
            Scheme::Oidc(s) => return s.sign(out),
            _ => {}
        }
        let secret = self
            .secrets
            .iter()
            .nth(index)
            .ok_or_else(|| SignError(format!("the source has no secret number {}", index + 1)))?;
        match &self.scheme {
            Scheme::Signature(s) => s.sign(out, secret),
            Scheme::Token(s) => s.sign(secret),
            Scheme::Basic(s) => s.sign(secret),
            Scheme::StandardWebhooks(s) => s.sign(out, secret),
            Scheme::Twilio(s) => s.sign(out, secret),
            Scheme::Jws(s) => s.sign(out, secret),
            Scheme::Mailgun(s) => s.sign(out, secret),
            Scheme::Sns(s) => s.sign(out),
            Scheme::Oidc(s) => s.sign(out),
        }
    }

    /// What the scheme checks and what it would sign for this request, without secret
    /// material: the lines `hookwire verify explain` prints before the verdict.
    pub fn explain(&self, req: &Request<'_>) -> Vec<String> {
        let mut lines = match &self.scheme {
            Scheme::Signature(s) => s.explain(req),
            Scheme::Token(s) => s.explain(req),
            Scheme::Basic(s) => s.explain(req),
            Scheme::StandardWebhooks(s) => s.explain(req),
            Scheme::Twilio(s) => s.explain(req),
            Scheme::Jws(s) => s.explain(req),
            Scheme::Mailgun(s) => s.explain(req),
            Scheme::Sns(s) => s.explain(req),
            Scheme::Oidc(s) => s.explain(req),
        };
        if !self.scheme.keyless() {
            lines.push(format!("secrets in the rotation set: {}", self.keys.len()));
        }
        lines
    }
}

impl Scheme {
    fn key(&self, secret: &Secret) -> Result<Key, String> {
        match self {
            Scheme::Signature(s) => s.key(secret),
            Scheme::StandardWebhooks(_) => standard_webhooks::key(secret),
            Scheme::Twilio(_) => Ok(Key::Mac(codec::KeyedMac::new(
                codec::Digest::Sha1,
                secret.expose(),
            ))),
            Scheme::Jws(_) => Ok(Key::Mac(codec::KeyedMac::new(
                codec::Digest::Sha256,
                secret.expose(),
            ))),
            Scheme::Token(_) | Scheme::Basic(_) => Ok(Key::Token(secret.clone())),
            Scheme::Mailgun(_) => Ok(Mailgun::key(secret)),
            Scheme::Sns(_) | Scheme::Oidc(_) => Err("this scheme takes no secret".into()),
        }
    }

    /// True for the schemes that verify with the vendor's published keys and take no secret.
    pub fn keyless(&self) -> bool {
        matches!(self, Scheme::Sns(_) | Scheme::Oidc(_))
    }

    /// A short name for logs and `verify explain`.
    pub fn name(&self) -> &'static str {
        match self {
            Scheme::Signature(s) => s.name(),
            Scheme::Token(_) => "token",
            Scheme::Basic(_) => "basic",
            Scheme::StandardWebhooks(_) => "standard-webhooks",
            Scheme::Twilio(_) => "twilio",
            Scheme::Jws(_) => "netlify-jws",
            Scheme::Mailgun(_) => "mailgun-signature",
            Scheme::Sns(_) => "aws-sns-signature",
            Scheme::Oidc(_) => "oidc-token",
        }
    }
}

/// Hex SHA-256 of `bytes`: the delivery id of a vendor that sends none.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Describes a presented value for `verify explain` by shape only.
pub(crate) fn shape(bytes: &[u8]) -> String {
    format!("{} bytes", bytes.len())
}
