//! Fuzzes signature-header parsing and verification of every shipped vendor: the verifiers
//! are built from `hookwire_adapters::vendors()` (the same presets and code the registry
//! registers), plus the YAML-declared types, so the fuzzer exercises the shipped
//! schemes, not copies. Every verifier must reject arbitrary header values and bodies without
//! panicking, and must never accept one (forging an HMAC, an Ed25519 signature or a token by
//! chance is practically impossible, so an `Ok` means a verification bug).
//!
//! Input layout:
//! - byte 0: the verifier (`% count`);
//! - bytes 1..3: little-endian length of the header region (clamped to what is left);
//! - the header region: up to three fields separated by NUL (`sig\0second\0third`), placed
//!   in order into the headers the verifier's scheme reads (its signature or token header
//!   first, then its timestamp and signed headers; for Standard Webhooks signature, id and
//!   timestamp, under `svix-*` names when bit 7 of byte 0 is set). A field that is absent
//!   leaves its header out; a field `HeaderValue` refuses skips the input;
//! - the rest: the body.

#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use hookwire_core::adapter::{Registry, SourceSpec};
use hookwire_core::axum::http::{HeaderMap, HeaderName, HeaderValue};
use hookwire_core::secret::{Secret, SecretSet};
use hookwire_core::verify::signature::Part;
use hookwire_core::verify::timestamp::TimestampFrom;
use hookwire_core::verify::{Request, Scheme, Verifier};
use libfuzzer_sys::fuzz_target;

/// RFC 8032 test 1 public key (Ed25519 sources such as Discord hold the sender's public key).
const ED25519_PUBLIC_HEX: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
/// The same key as a Standard Webhooks `whpk_` key (v1a).
const ED25519_PUBLIC_WHPK: &str = "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
/// The Standard Webhooks specification's example secret.
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// SendGrid's published test key (P-256, SPKI DER in base64), for ECDSA sources.
const P256_PUBLIC: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";
/// The public URL every source is given (Twilio signs it).
const PUBLIC_URL: &str = "https://example.com/hook?x=1";

/// Secret sets tried in turn until the scheme accepts one: two HMAC secrets (so the
/// rotation loops run more than once), Standard Webhooks keys (before the hex key, which
/// would also decode as base64), an Ed25519 public key, a P-256 public key.
const SECRET_SETS: &[&[&str]] = &[
    &["It's a Secret to Everybody", "rotated-secret-2"],
    &[WHSEC, ED25519_PUBLIC_WHPK],
    &[ED25519_PUBLIC_HEX],
    &[P256_PUBLIC],
    // The kinds with the vendor's published keys take none (their fetches are offline here).
    &[],
];

/// A shipped verifier and the headers its scheme reads, in placement order.
struct Target {
    name: String,
    verifier: Verifier,
    headers: Vec<String>,
    form: bool,
}

fn secrets(list: &[&str]) -> SecretSet {
    SecretSet::new(list.iter().map(|s| Secret::new(s.as_bytes().to_vec())).collect())
}

/// The headers `scheme` reads, credentials first.
fn headers(scheme: &Scheme) -> Vec<String> {
    let mut out = Vec::new();
    match scheme {
        Scheme::Signature(s) => {
            out.push(s.signature.header.clone());
            if let Some(TimestampFrom::Header(h)) = s.timestamp.as_ref().map(|t| &t.from) {
                out.push(h.clone());
            }
            for part in &s.signed.0 {
                if let Part::Header(h) = part {
                    out.push(h.clone());
                }
            }
        }
        Scheme::Token(t) => {
            out.push("authorization".into());
            out.extend(t.header.clone());
        }
        Scheme::StandardWebhooks(_) => {
            out.extend(["webhook-signature", "webhook-id", "webhook-timestamp"].map(String::from))
        }
        Scheme::Basic(_) => out.push("authorization".into()),
        // The signature is inside the body: the fuzzed body is what it reads.
        Scheme::Mailgun(_) => {}
        Scheme::Twilio(_) => out.push("x-twilio-signature".into()),
        Scheme::Jws(_) => out.push("x-webhook-signature".into()),
        Scheme::Sns(_) => out.extend(["x-amz-sns-message-type", "x-amz-sns-topic-arn"].map(String::from)),
        Scheme::Oidc(_) => out.push("authorization".into()),
    }
    for h in &mut out {
        h.make_ascii_lowercase();
    }
    out.dedup();
    out
}

/// Every shipped vendor with its default options, and each YAML-declared type with a
/// representative scheme, in registry order.
fn targets() -> &'static [Target] {
    static TARGETS: OnceLock<Vec<Target>> = OnceLock::new();
    TARGETS.get_or_init(|| {
        let mut registry = Registry::new();
        hookwire_core::adapter::declared::register(&mut registry);
        hookwire_adapters::register(&mut registry);
        let declared: [(&str, &str); 11] = [
            (
                "hmac",
                "verify: {digest: sha256, header: X-Sig, prefix: \"sha256=\", encoding: hex, signed: \"{timestamp}.{body}\", timestamp: {from: {header: X-Ts}, tolerance_secs: 300}}\nevent: {header: X-Event}\n",
            ),
            (
                "ed25519",
                "verify: {header: X-Sig, encoding: hex, signed: \"{timestamp}{body}\", timestamp: {from: {header: X-Ts}}}\nevent: {header: X-Event}\n",
            ),
            (
                "ecdsa-p256",
                "verify: {header: X-Sig, encoding: base64, signed: \"{timestamp}{body}\", timestamp: {from: {header: X-Ts}, tolerance_secs: 300}}\nevent: {header: X-Event}\n",
            ),
            ("token", "verify: {header: X-Relay-Pass}\nevent: {value: relay}\n"),
            ("basic", "verify: {user: hookwire, behind_tls: true}\nevent: {value: basic}\n"),
            ("mailgun-signature", "verify: {}\nevent: {json: /event}\n"),
            ("standard-webhooks", "event: {value: sw}\n"),
            (
                "aws-sns-signature",
                "verify: {topics: [\"arn:aws:sns:us-east-1:123456789012:T\"]}\n",
            ),
            ("aws-sns", "topics: [\"arn:aws:sns:us-east-1:123456789012:T\"]\n"),
            (
                "oidc-token",
                "verify: {jwks_url: \"https://www.googleapis.com/oauth2/v3/certs\", issuers: [\"https://accounts.google.com\"], audience: \"https://example.com/hook\", email: \"a@b.iam.gserviceaccount.com\"}\nevent: {value: m}\n",
            ),
            (
                "google-pubsub",
                "audience: \"https://example.com/hook\"\nservice_account: \"a@b.iam.gserviceaccount.com\"\n",
            ),
        ];
        let mut out = Vec::new();
        for type_name in registry.known() {
            let factory = registry.get(type_name).expect("a known type");
            let yaml = declared.iter().find(|(t, _)| *t == type_name).map_or("", |(_, y)| *y);
            let options: serde_norway::Mapping = serde_norway::from_str(yaml).unwrap_or_default();
            let adapter = SECRET_SETS.iter().find_map(|set| {
                let spec = SourceSpec {
                    name: type_name,
                    options: &options,
                    secrets: secrets(set),
                    public_url: Some(PUBLIC_URL),
                    fetch: hookwire_core::fetch::Fetch::offline(),
                };
                (factory.build)(&spec).ok()
            });
            let adapter = adapter.unwrap_or_else(|| panic!("no test secret builds `{type_name}`"));
            let verifier = adapter.verifier().clone();
            out.push(Target {
                name: type_name.to_owned(),
                headers: headers(verifier.scheme()),
                form: matches!(verifier.scheme(), Scheme::Twilio(_)),
                verifier,
            });
        }
        assert!(out.len() >= 39, "{} verifiers", out.len());
        out
    })
}

fn put(headers: &mut HeaderMap, name: &str, field: Option<&[u8]>) -> Result<(), ()> {
    if let Some(bytes) = field {
        let value = HeaderValue::from_bytes(bytes).map_err(|_| ())?;
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| ())?;
        headers.insert(name, value);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if rest.len() < 2 {
        return;
    }
    let header_len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
    let rest = &rest[2..];
    let (region, body) = rest.split_at(header_len.min(rest.len()));
    let mut fields = region.splitn(3, |b| *b == 0);
    let fields = [fields.next(), fields.next(), fields.next()];

    let targets = targets();
    let target = &targets[usize::from(selector & 0x7f) % targets.len()];
    let mut headers = HeaderMap::new();
    for (name, field) in target.headers.iter().zip(fields) {
        let name = match name.strip_prefix("webhook-") {
            Some(rest) if selector & 0x80 != 0 => format!("svix-{rest}"),
            _ => name.clone(),
        };
        if put(&mut headers, &name, field).is_err() {
            return;
        }
    }
    if target.form {
        headers.insert(
            HeaderName::from_static("content-type"),
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }

    let request = Request {
        headers: &headers,
        body,
        method: "POST",
        url: Some(PUBLIC_URL),
        now: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    };
    let _ = target.verifier.precheck(&request);
    let result = target.verifier.verify(&request);
    assert!(
        result.is_err(),
        "{} accepted a fuzzed request: {result:?} (headers {headers:?})",
        target.name
    );
    // `hookwire verify explain` parses the same untrusted headers; it must not panic either.
    let _ = target.verifier.explain(&request);
});
