//! Standard Webhooks (and Svix, which sends the same headers as `svix-*`): `<id>.<timestamp>.
//! <body>` signed with HMAC-SHA256 (`v1,<base64>`, secret `whsec_<base64>`) or Ed25519
//! (`v1a,<base64>`, public key `whpk_<base64>`); several signatures per header, any match wins,
//! unknown versions are skipped; the timestamp must be within the window both ways.

use serde::Deserialize;

use super::codec::{base64_lenient, Digest, Encoding, KeyedMac};
use super::signature::{ed25519_key, ed25519_ok, MAX_SIGNATURES};
use super::timestamp::{self, TimestampSpec};
use super::{shape, Key, Outgoing, Request, SignError, Verified, VerifyError};
use crate::secret::Secret;

/// The header spellings: the spec's and Svix's.
const PREFIXES: [&str; 2] = ["webhook", "svix"];

/// Standard Webhooks settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandardWebhooks {
    /// Largest accepted distance of `webhook-timestamp` from now, both ways (spec: 300 s).
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: u64,
}

fn default_tolerance() -> u64 {
    300
}

impl Default for StandardWebhooks {
    fn default() -> Self {
        StandardWebhooks {
            tolerance_secs: default_tolerance(),
        }
    }
}

/// `whpk_<base64>` is an Ed25519 public key (v1a); `whsec_<base64>` (or bare base64) an
/// HMAC key (v1).
pub(super) fn key(secret: &Secret) -> Result<Key, String> {
    let text = secret.expose().trim_ascii();
    if let Some(public) = text.strip_prefix(b"whpk_") {
        let bytes = base64_lenient(public).ok_or("a whpk_ key must be base64")?;
        return ed25519_key(&bytes);
    }
    if text.starts_with(b"whsk_") {
        return Err("whsk_ is the sender's private key; configure the whpk_ public key".into());
    }
    let bytes = base64_lenient(text.strip_prefix(b"whsec_").unwrap_or(text))
        .ok_or("a Standard Webhooks secret is whsec_ followed by base64")?;
    Ok(Key::Mac(KeyedMac::new(Digest::Sha256, &bytes)))
}

struct Headers<'r> {
    id: &'r str,
    timestamp: &'r str,
    signatures: &'r str,
}

fn headers<'r>(req: &Request<'r>) -> Result<Headers<'r>, VerifyError> {
    for p in PREFIXES {
        if let Some(id) = req.header_str(&format!("{p}-id")) {
            let get = |n: &str| req.header_str(&format!("{p}-{n}")).ok_or(VerifyError::Missing);
            return Ok(Headers {
                id,
                timestamp: get("timestamp")?,
                signatures: get("signature")?,
            });
        }
    }
    Err(VerifyError::Missing)
}

/// The decodable `v1` (HMAC) and `v1a` (Ed25519) signatures of a `webhook-signature` value,
/// at most [`MAX_SIGNATURES`] of each.
fn signatures(value: &str) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut v1 = Vec::new();
    let mut v1a = Vec::new();
    for entry in value.split(' ').filter(|e| !e.is_empty()) {
        let Some((version, sig)) = entry.split_once(',') else {
            continue;
        };
        let list = match version {
            "v1" => &mut v1,
            "v1a" => &mut v1a,
            _ => continue,
        };
        if list.len() < MAX_SIGNATURES {
            if let Some(bytes) = Encoding::Base64.decode(sig.as_bytes()) {
                list.push(bytes);
            }
        }
    }
    (v1, v1a)
}

impl StandardWebhooks {
    fn window(&self) -> TimestampSpec {
        TimestampSpec::header("webhook-timestamp", self.tolerance_secs)
    }

    /// The headers alone: id, timestamp and at least one well-formed signature present.
    pub(super) fn precheck(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        let h = headers(req)?;
        let (v1, v1a) = signatures(h.signatures);
        if v1.is_empty() && v1a.is_empty() {
            return Err(VerifyError::Malformed);
        }
        self.window().parse(h.timestamp).map(|_| ())
    }

    /// The headers that carry signatures: never stored or shown.
    pub(super) fn credential_headers(&self) -> Vec<String> {
        PREFIXES.iter().map(|p| format!("{p}-signature")).collect()
    }

    pub(super) fn verify(&self, req: &Request<'_>, keys: &[Key]) -> Result<Verified, VerifyError> {
        let h = headers(req)?;
        let (v1, v1a) = signatures(h.signatures);
        if v1.is_empty() && v1a.is_empty() {
            return Err(VerifyError::Malformed);
        }
        let mut message = Vec::with_capacity(h.id.len() + h.timestamp.len() + req.body.len() + 2);
        for piece in [h.id.as_bytes(), b".", h.timestamp.as_bytes(), b".", req.body] {
            message.extend_from_slice(piece);
        }
        let mut matched = None;
        for (i, key) in keys.iter().enumerate() {
            let hit = match key {
                Key::Mac(mac) => {
                    let mut mac = mac.clone();
                    mac.update(&message);
                    let tag = mac.finish();
                    v1.iter()
                        .fold(false, |acc, c| acc | tag.matches(c))
                        .then(|| tag.as_bytes().to_vec())
                }
                Key::Ed25519(public) => v1a.iter().find(|c| ed25519_ok(public, &message, c)).cloned(),
                Key::Token(_) | Key::EcdsaP256(_) => None,
            };
            if let Some(signature) = hit {
                matched = Some((i, signature));
                break;
            }
        }
        let (secret, signature) = matched.ok_or(VerifyError::Mismatch)?;
        let spec = self.window();
        let at = spec.parse(h.timestamp)?;
        spec.check(at, req.now)?;
        Ok(Verified {
            signed_at: Some(at),
            ..Verified::by(secret).signed(&signature)
        })
    }

    pub(super) fn sign(
        &self,
        out: &Outgoing<'_>,
        secret: &Secret,
    ) -> Result<Vec<(String, String)>, SignError> {
        let Key::Mac(mac) = key(secret).map_err(SignError)? else {
            return Err(SignError(
                "a whpk_ source holds the sender's public key; only the sender can sign (v1a)".into(),
            ));
        };
        let ts = timestamp::format(timestamp::TimestampFormat::Unix, out.now);
        let mut mac = mac;
        for piece in [out.id.as_bytes(), b".", ts.as_bytes(), b".", out.body] {
            mac.update(piece);
        }
        let sig = Encoding::Base64.encode(mac.finish().as_bytes());
        Ok(vec![
            ("webhook-id".into(), out.id.to_owned()),
            ("webhook-timestamp".into(), ts),
            ("webhook-signature".into(), format!("v1,{sig}")),
        ])
    }

    pub(super) fn explain(&self, req: &Request<'_>) -> Vec<String> {
        let mut lines = vec![format!(
            "scheme: standard-webhooks (webhook-* or svix-* headers), v1 HMAC-SHA256 / v1a Ed25519, window ±{} s",
            self.tolerance_secs
        )];
        match headers(req) {
            Ok(h) => {
                let versions: Vec<&str> = h
                    .signatures
                    .split(' ')
                    .filter_map(|e| e.split_once(',').map(|(v, _)| v))
                    .collect();
                lines.push(format!("signature entries by version: {versions:?}"));
                lines.push(format!(
                    "signed content: id ({}) + \".\" + timestamp {:?} + \".\" + body ({})",
                    shape(h.id.as_bytes()),
                    h.timestamp,
                    shape(req.body)
                ));
            }
            Err(e) => lines.push(format!("headers: {e}")),
        }
        lines
    }
}
