//! The configurable signature scheme most vendors fit: a MAC (HMAC-SHA1/256/512), an Ed25519
//! or an ECDSA P-256 signature over a template of the request, carried in a header as one value with a
//! prefix (`sha256=<hex>`) or as a list (`t=..,v1=..,v1=..`), with an optional signed
//! timestamp and window.

use serde::Deserialize;
use sha2::Digest as _;

use super::codec::{Digest, Encoding, KeyedMac};
use super::timestamp::{self, TimestampFrom, TimestampSpec};
use super::{shape, Key, Outgoing, Request, SignError, Verified, VerifyError};
use crate::secret::Secret;

/// At most this many signatures of one header are tried, so a hostile header cannot make a
/// request expensive.
pub const MAX_SIGNATURES: usize = 16;

/// The primitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC with this digest.
    Hmac(Digest),
    /// Ed25519; the configured secret is the sender's public key.
    Ed25519,
    /// ECDSA P-256 with SHA-256; the configured secret is the sender's public key.
    EcdsaP256,
}

/// How a configured secret becomes key bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyEncoding {
    /// The secret's bytes as written (most vendors; also base64-looking ones such as
    /// PagerDuty's and Zendesk's).
    #[default]
    Text,
    /// Base64-decode the secret.
    Base64,
    /// Hex-decode the secret (Ed25519 public keys).
    Hex,
    /// Strip `whsec_` and base64-decode (Standard Webhooks).
    Whsec,
}

/// Where the signature is and how it is written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureSpec {
    /// The header (any case).
    pub header: String,
    /// Text before the signature in a single-value header (`sha256=`).
    #[serde(default)]
    pub prefix: String,
    /// Set when the header holds a list of `tag=value` entries.
    #[serde(default)]
    pub list: Option<ListSpec>,
    /// How the signature bytes are written.
    pub encoding: Encoding,
}

/// A header holding several entries: `t=1,v1=abc,v1=def` (Stripe) or `v1,abc v1,def`
/// (Standard Webhooks).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListSpec {
    /// Between entries.
    #[serde(default = "comma")]
    pub separator: String,
    /// Between an entry's tag and its value.
    #[serde(default = "equals")]
    pub assign: String,
    /// The tag of the entries that are signatures; entries with other tags are ignored
    /// (downgrade protection: `v0` never stands in for `v1`).
    pub tag: String,
}

fn comma() -> String {
    ",".into()
}

fn equals() -> String {
    "=".into()
}

/// One piece of the signed content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Fixed text.
    Literal(Vec<u8>),
    /// The raw body.
    Body,
    /// The timestamp exactly as presented.
    Timestamp,
    /// The HTTP method.
    Method,
    /// The public URL as requested.
    Url,
    /// A header's value (`{header:webhook-id}` for a signed delivery id).
    Header(String),
}

/// What is signed, parsed from a template such as `v0:{timestamp}:{body}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed(pub Vec<Part>);

impl Signed {
    /// The raw body alone.
    pub fn body() -> Self {
        Signed(vec![Part::Body])
    }

    /// Parses a template: `{body}`, `{timestamp}`, `{method}`, `{url}`, `{header:NAME}`, and
    /// literal text between them.
    pub fn parse(template: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest.as_bytes()[..open].to_vec()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in `{template}`"))?;
            let name = &rest[open + 1..open + close];
            parts.push(match name {
                "body" => Part::Body,
                "timestamp" => Part::Timestamp,
                "method" => Part::Method,
                "url" => Part::Url,
                h if h.starts_with("header:") && h.len() > 7 => Part::Header(h[7..].to_ascii_lowercase()),
                other => {
                    return Err(format!(
                        "unknown placeholder `{{{other}}}`; valid: {{body}}, {{timestamp}}, {{method}}, {{url}}, {{header:NAME}}"
                    ))
                }
            });
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.as_bytes().to_vec()));
        }
        if !parts.contains(&Part::Body) {
            return Err("the signed content must include {body}".into());
        }
        Ok(Signed(parts))
    }

    fn needs_timestamp(&self) -> bool {
        self.0.contains(&Part::Timestamp)
    }
}

/// A configured signature scheme.
#[derive(Debug, Clone)]
pub struct SignatureScheme {
    /// The primitive.
    pub algorithm: Algorithm,
    /// Where the signature is.
    pub signature: SignatureSpec,
    /// What is signed.
    pub signed: Signed,
    /// The signed timestamp and its window, if the vendor signs one.
    pub timestamp: Option<TimestampSpec>,
    /// How a configured secret becomes key bytes.
    pub key: KeyEncoding,
}

/// The request values a signature covers, gathered once per request.
struct Gathered<'r> {
    candidates: Vec<Vec<u8>>,
    timestamp: Option<&'r str>,
}

impl SignatureScheme {
    /// The common case: `header: <prefix><encoded HMAC(digest, secret, body)>`.
    pub fn hmac_body(digest: Digest, header: &str, prefix: &str, encoding: Encoding) -> Self {
        SignatureScheme {
            algorithm: Algorithm::Hmac(digest),
            signature: SignatureSpec {
                header: header.to_ascii_lowercase(),
                prefix: prefix.into(),
                list: None,
                encoding,
            },
            signed: Signed::body(),
            timestamp: None,
            key: KeyEncoding::Text,
        }
    }

    /// The header holds a list: `tag<assign>value` entries separated by `separator`.
    pub fn with_list(mut self, tag: &str, separator: &str, assign: &str) -> Self {
        self.signature.list = Some(ListSpec {
            separator: separator.into(),
            assign: assign.into(),
            tag: tag.into(),
        });
        self
    }

    /// Checks that the parts fit together; called when a source is built.
    pub fn validate(mut self) -> Result<Self, String> {
        self.signature.header = self.signature.header.to_ascii_lowercase();
        if let Some(t) = &mut self.timestamp {
            if let TimestampFrom::Header(h) = &mut t.from {
                *h = h.to_ascii_lowercase();
            }
            if matches!(t.from, TimestampFrom::ListKey(_)) && self.signature.list.is_none() {
                return Err("timestamp.from.list_key needs a signature list (signature.list)".into());
            }
            if matches!(t.from, TimestampFrom::Json(_)) && self.signed.needs_timestamp() {
                return Err(
                    "a timestamp inside the body is already signed; drop {timestamp} from `signed`".into(),
                );
            }
        } else if self.signed.needs_timestamp() {
            return Err("`signed` uses {timestamp} but no `timestamp` is configured".into());
        }
        if let Some(l) = &self.signature.list {
            if l.separator.is_empty() || l.assign.is_empty() || l.tag.is_empty() {
                return Err("signature.list needs a separator, an assign string and a tag".into());
            }
        }
        if self.algorithm == Algorithm::Ed25519 && self.key == KeyEncoding::Text {
            self.key = KeyEncoding::Hex;
        }
        if self.algorithm == Algorithm::EcdsaP256 && self.key == KeyEncoding::Text {
            self.key = KeyEncoding::Base64;
        }
        Ok(self)
    }

    /// `hmac-sha256`, `ed25519`.
    pub fn name(&self) -> &'static str {
        match self.algorithm {
            Algorithm::Hmac(Digest::Sha1) => "hmac-sha1",
            Algorithm::Hmac(Digest::Sha256) => "hmac-sha256",
            Algorithm::Hmac(Digest::Sha512) => "hmac-sha512",
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256 => "ecdsa-p256",
        }
    }

    pub(super) fn key(&self, secret: &Secret) -> Result<Key, String> {
        let bytes = decode_key(self.key, secret.expose())?;
        match self.algorithm {
            Algorithm::Hmac(d) => Ok(Key::Mac(KeyedMac::new(d, &bytes))),
            Algorithm::Ed25519 => ed25519_key(&bytes),
            Algorithm::EcdsaP256 => super::ecdsa::key(&bytes),
        }
    }

    /// Whether a decoded signature has a length this algorithm produces.
    fn sig_len_ok(&self, len: usize) -> bool {
        match self.algorithm {
            Algorithm::Hmac(d) => len == d.output_len(),
            Algorithm::Ed25519 => len == 64,
            Algorithm::EcdsaP256 => super::ecdsa::plausible_len(len),
        }
    }

    fn gather<'r>(&self, req: &Request<'r>) -> Result<Gathered<'r>, VerifyError> {
        let spec = &self.signature;
        let value = req
            .header_str(&spec.header)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| match req.header(&spec.header) {
                Some(_) => VerifyError::Malformed,
                None => VerifyError::Missing,
            })?;
        let mut candidates = Vec::new();
        let mut list_ts = None;
        match &spec.list {
            None => {
                let encoded = value
                    .strip_prefix(spec.prefix.as_str())
                    .ok_or(VerifyError::Malformed)?;
                candidates.push(
                    spec.encoding
                        .decode(encoded.as_bytes())
                        .ok_or(VerifyError::Malformed)?,
                );
            }
            Some(list) => {
                let ts_key = match self.timestamp.as_ref().map(|t| &t.from) {
                    Some(TimestampFrom::ListKey(k)) => Some(k.as_str()),
                    _ => None,
                };
                for entry in value.split(list.separator.as_str()).map(str::trim) {
                    let Some((tag, v)) = entry.split_once(list.assign.as_str()) else {
                        continue;
                    };
                    let tag = tag.trim();
                    if Some(tag) == ts_key {
                        if list_ts.replace(v.trim()).is_some() {
                            // Two timestamps: ambiguous, refuse rather than pick one.
                            return Err(VerifyError::Malformed);
                        }
                    } else if tag == list.tag && candidates.len() < MAX_SIGNATURES {
                        // An undecodable entry is skipped: another may still match.
                        if let Some(sig) = spec.encoding.decode(v.trim().as_bytes()) {
                            candidates.push(sig);
                        }
                    }
                }
                if candidates.is_empty() {
                    return Err(VerifyError::Malformed);
                }
            }
        }
        candidates.retain(|c| self.sig_len_ok(c.len()));
        if candidates.is_empty() {
            return Err(VerifyError::Malformed);
        }
        let timestamp = match self.timestamp.as_ref().map(|t| &t.from) {
            Some(TimestampFrom::Header(h)) => req.header_str(h).map(str::trim),
            Some(TimestampFrom::ListKey(_)) => list_ts,
            _ => None,
        };
        if self.signed.needs_timestamp() && timestamp.is_none() {
            return Err(VerifyError::Missing);
        }
        Ok(Gathered {
            candidates,
            timestamp,
        })
    }

    fn feed(
        &self,
        req: &Request<'_>,
        ts: Option<&str>,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<(), VerifyError> {
        for part in &self.signed.0 {
            match part {
                Part::Literal(b) => sink(b),
                Part::Body => sink(req.body),
                Part::Timestamp => sink(ts.unwrap_or_default().as_bytes()),
                Part::Method => sink(req.method.as_bytes()),
                Part::Url => sink(req.url.ok_or(VerifyError::Unconfigured("public_url"))?.as_bytes()),
                Part::Header(h) => sink(req.header(h).ok_or(VerifyError::Missing)?),
            }
        }
        Ok(())
    }

    /// What can be checked from the headers alone, before the body is read: the signature
    /// header is there and well formed, the signed timestamp (when in a header) and every
    /// signed header are present.
    pub(super) fn precheck(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        let g = self.gather(req)?;
        if let Some(spec) = &self.timestamp {
            if !matches!(spec.from, TimestampFrom::Json(_)) {
                match g.timestamp {
                    Some(t) => {
                        spec.parse(t)?;
                    }
                    None if spec.required => return Err(VerifyError::Missing),
                    None => {}
                }
            }
        }
        for part in &self.signed.0 {
            match part {
                Part::Header(h) if req.header(h).is_none() => return Err(VerifyError::Missing),
                Part::Url if req.url.is_none() => return Err(VerifyError::Unconfigured("public_url")),
                _ => {}
            }
        }
        Ok(())
    }

    /// The headers that carry the signature: never stored or shown.
    pub(super) fn credential_headers(&self) -> Vec<String> {
        vec![self.signature.header.clone()]
    }

    pub(super) fn verify(&self, req: &Request<'_>, keys: &[Key]) -> Result<Verified, VerifyError> {
        let g = self.gather(req)?;
        let mut matched = None;
        match self.algorithm {
            Algorithm::Hmac(_) => {
                for (i, key) in keys.iter().enumerate() {
                    let Key::Mac(mac) = key else { continue };
                    let mut mac = mac.clone();
                    self.feed(req, g.timestamp, |b| mac.update(b))?;
                    let tag = mac.finish();
                    // Every candidate is compared, so timing does not tell which one matched.
                    let hit = g.candidates.iter().fold(false, |acc, c| acc | tag.matches(c));
                    if hit {
                        matched = Some((i, tag.as_bytes().to_vec()));
                        break;
                    }
                }
            }
            Algorithm::Ed25519 => {
                let mut message = Vec::with_capacity(req.body.len() + 64);
                self.feed(req, g.timestamp, |b| message.extend_from_slice(b))?;
                'keys: for (i, key) in keys.iter().enumerate() {
                    let Key::Ed25519(public) = key else { continue };
                    for c in &g.candidates {
                        if ed25519_ok(public, &message, c) {
                            matched = Some((i, c.clone()));
                            break 'keys;
                        }
                    }
                }
            }
            Algorithm::EcdsaP256 => {
                let mut message = Vec::with_capacity(req.body.len() + 64);
                self.feed(req, g.timestamp, |b| message.extend_from_slice(b))?;
                'keys: for (i, key) in keys.iter().enumerate() {
                    let Key::EcdsaP256(public) = key else { continue };
                    for c in &g.candidates {
                        if super::ecdsa::verify(public, &message, c) {
                            // Malleable and randomised: the fingerprint is of what was signed.
                            matched = Some((i, sha2::Sha256::digest(&message).to_vec()));
                            break 'keys;
                        }
                    }
                }
            }
        }
        let (secret, signature) = matched.ok_or(VerifyError::Mismatch)?;
        let signed_at = match &self.timestamp {
            Some(spec) => check_timestamp(spec, g.timestamp, req)?,
            None => None,
        };
        Ok(Verified {
            signed_at,
            ..Verified::by(secret).signed(&signature)
        })
    }

    pub(super) fn sign(
        &self,
        out: &Outgoing<'_>,
        secret: &Secret,
    ) -> Result<Vec<(String, String)>, SignError> {
        let Algorithm::Hmac(digest) = self.algorithm else {
            return Err(SignError(
                "Ed25519 and ECDSA sources hold the sender's public key; only the sender can sign".into(),
            ));
        };
        let key = decode_key(self.key, secret.expose()).map_err(SignError)?;
        let ts = self
            .timestamp
            .as_ref()
            .filter(|t| !matches!(t.from, TimestampFrom::Json(_)))
            .map(|t| timestamp::format(t.format, out.now));
        let mut mac = KeyedMac::new(digest, &key);
        let mut headers = Vec::new();
        for part in &self.signed.0 {
            match part {
                Part::Literal(b) => mac.update(b),
                Part::Body => mac.update(out.body),
                Part::Timestamp => mac.update(ts.as_deref().unwrap_or_default().as_bytes()),
                Part::Method => mac.update(out.method.as_bytes()),
                Part::Url => mac.update(out.url.as_bytes()),
                Part::Header(h) => {
                    // A signed header is the delivery id in every scheme we know.
                    mac.update(out.id.as_bytes());
                    headers.push((h.clone(), out.id.to_owned()));
                }
            }
        }
        let sig = self.signature.encoding.encode(mac.finish().as_bytes());
        let value = match &self.signature.list {
            None => format!("{}{sig}", self.signature.prefix),
            Some(l) => {
                let entry = format!("{}{}{sig}", l.tag, l.assign);
                match (&self.timestamp, &ts) {
                    (
                        Some(TimestampSpec {
                            from: TimestampFrom::ListKey(k),
                            ..
                        }),
                        Some(ts),
                    ) => {
                        format!("{k}{}{ts}{}{entry}", l.assign, l.separator)
                    }
                    _ => entry,
                }
            }
        };
        headers.push((self.signature.header.clone(), value));
        if let (
            Some(TimestampSpec {
                from: TimestampFrom::Header(h),
                ..
            }),
            Some(ts),
        ) = (&self.timestamp, ts)
        {
            headers.push((h.clone(), ts));
        }
        Ok(headers)
    }

    pub(super) fn explain(&self, req: &Request<'_>) -> Vec<String> {
        let spec = &self.signature;
        let mut lines = vec![format!(
            "scheme: {} in header `{}`, {} encoded{}",
            self.name(),
            spec.header,
            spec.encoding.name(),
            match &spec.list {
                None if spec.prefix.is_empty() => String::new(),
                None => format!(", prefix `{}`", spec.prefix),
                Some(l) => format!(
                    ", list of `{}{}<sig>` entries separated by `{}`",
                    l.tag, l.assign, l.separator
                ),
            }
        )];
        let ts = match self.gather(req) {
            Ok(g) => {
                lines.push(format!(
                    "signatures found: {} of the expected length ({})",
                    g.candidates.len(),
                    match self.algorithm {
                        Algorithm::Hmac(d) => format!("{} bytes each", d.output_len()),
                        Algorithm::Ed25519 => "64 bytes each".to_owned(),
                        Algorithm::EcdsaP256 => "DER, or 64 bytes r || s".to_owned(),
                    }
                ));
                g.timestamp
            }
            Err(e) => {
                lines.push(format!("signature header: {e}"));
                None
            }
        };
        let mut signed = Vec::new();
        for part in &self.signed.0 {
            signed.push(match part {
                Part::Literal(b) => format!("literal {:?}", String::from_utf8_lossy(b)),
                Part::Body => format!("body ({})", shape(req.body)),
                Part::Timestamp => format!("timestamp {:?}", ts.unwrap_or("<absent>")),
                Part::Method => format!("method {:?}", req.method),
                Part::Url => format!("url {:?}", req.url.unwrap_or("<public_url not configured>")),
                Part::Header(h) => format!(
                    "header `{h}` ({})",
                    req.header(h).map(shape).unwrap_or_else(|| "absent".into())
                ),
            });
        }
        lines.push(format!("signed content: {}", signed.join(" + ")));
        if let Some(t) = &self.timestamp {
            let from = match &t.from {
                TimestampFrom::Header(h) => format!("header `{h}`"),
                TimestampFrom::ListKey(k) => format!("signature list key `{k}`"),
                TimestampFrom::Json(p) => format!("body field {p}"),
            };
            let format = match t.format {
                timestamp::TimestampFormat::Unix => "Unix seconds",
                timestamp::TimestampFormat::UnixMs => "Unix milliseconds",
                timestamp::TimestampFormat::Rfc3339 => "RFC 3339",
            };
            lines.push(format!(
                "timestamp: {from}, {format}, window {}{}",
                t.tolerance_secs
                    .map(|s| format!("{s} s"))
                    .unwrap_or_else(|| "none".into()),
                if t.past_only { " (past only)" } else { "" }
            ));
        }
        lines
    }
}

/// Checks the signed timestamp's window; returns it in Unix milliseconds.
pub(super) fn check_timestamp(
    spec: &TimestampSpec,
    presented: Option<&str>,
    req: &Request<'_>,
) -> Result<Option<i64>, VerifyError> {
    let at = match &spec.from {
        TimestampFrom::Json(pointer) => json_timestamp(req.body, pointer, spec)?,
        _ => presented.map(|t| spec.parse(t)).transpose()?,
    };
    match at {
        Some(at) => {
            spec.check(at, req.now)?;
            Ok(Some(at))
        }
        None if spec.required => Err(VerifyError::Missing),
        None => Ok(None),
    }
}

fn json_timestamp(body: &[u8], pointer: &str, spec: &TimestampSpec) -> Result<Option<i64>, VerifyError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| VerifyError::Malformed)?;
    match value.pointer(pointer) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => {
            let n = n.as_i64().ok_or(VerifyError::Malformed)?;
            spec.parse(&n.to_string()).map(Some)
        }
        Some(serde_json::Value::String(s)) => spec.parse(s).map(Some),
        Some(_) => Err(VerifyError::Malformed),
    }
}

/// Decodes a configured secret into key bytes.
pub fn decode_key(encoding: KeyEncoding, secret: &[u8]) -> Result<Vec<u8>, String> {
    let trimmed = secret.trim_ascii();
    match encoding {
        KeyEncoding::Text => Ok(secret.to_vec()),
        KeyEncoding::Hex => hex::decode(trimmed).map_err(|_| "not hex".to_owned()),
        KeyEncoding::Base64 => super::codec::base64_lenient(trimmed).ok_or_else(|| "not base64".to_owned()),
        KeyEncoding::Whsec => trimmed
            .strip_prefix(b"whsec_")
            .and_then(super::codec::base64_lenient)
            .ok_or_else(|| "not a whsec_<base64> secret".to_owned()),
    }
}

/// An Ed25519 public key from its 32 bytes.
pub(super) fn ed25519_key(bytes: &[u8]) -> Result<Key, String> {
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "an Ed25519 public key is 32 bytes".to_owned())?;
    ed25519_dalek::VerifyingKey::from_bytes(&array)
        .map(Key::Ed25519)
        .map_err(|_| "not a valid Ed25519 public key".to_owned())
}

/// Strict Ed25519 verification (rejects malleable and small-order signatures, like libsodium).
pub(super) fn ed25519_ok(public: &ed25519_dalek::VerifyingKey, message: &[u8], sig: &[u8]) -> bool {
    let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
        return false;
    };
    public.verify_strict(message, &sig).is_ok()
}
