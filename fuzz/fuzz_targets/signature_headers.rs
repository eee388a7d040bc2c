//! Fuzzes signature-header parsing and verification: every scheme must reject arbitrary
//! header values and bodies without panicking, and must never accept one (forging an HMAC,
//! an Ed25519 signature or a token by chance is practically impossible, so an `Ok` means a
//! verification bug).
//!
//! Input layout:
//! - byte 0: the scheme (`% SCHEMES.len()`); bit 7 also picks `svix-*` over `webhook-*`
//!   header names for Standard Webhooks;
//! - bytes 1..3: little-endian length of the header region (clamped to what is left);
//! - the header region: up to three fields separated by NUL (`sig\0second\0third`). The
//!   first goes into the scheme's signature header (or `Authorization` for the token
//!   scheme), the others into its timestamp / id / token headers (or, for Twilio, the URL).
//!   A field that is absent leaves its header out; a field `HeaderValue` refuses skips the
//!   input;
//! - the rest: the body.

#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use hookwire_core::axum::http::{HeaderMap, HeaderName, HeaderValue};
use hookwire_core::secret::{Secret, SecretSet};
use hookwire_core::verify::codec::{Digest, Encoding};
use hookwire_core::verify::jws::Jws;
use hookwire_core::verify::signature::{Algorithm, KeyEncoding, SignatureSpec, Signed};
use hookwire_core::verify::timestamp::{TimestampFormat, TimestampSpec};
use hookwire_core::verify::{
    Request, Scheme, SignatureScheme, StandardWebhooks, TokenScheme, Twilio, Verifier,
};
use libfuzzer_sys::fuzz_target;

/// The verifiers, in selector order.
#[derive(Clone, Copy, Debug)]
enum Kind {
    GitHub,
    Stripe,
    Slack,
    PagerDuty,
    StandardWebhooks,
    Zendesk,
    Discord,
    Twilio,
    Netlify,
    Token,
}

const SCHEMES: [Kind; 10] = [
    Kind::GitHub,
    Kind::Stripe,
    Kind::Slack,
    Kind::PagerDuty,
    Kind::StandardWebhooks,
    Kind::Zendesk,
    Kind::Discord,
    Kind::Twilio,
    Kind::Netlify,
    Kind::Token,
];

/// RFC 8032 test 1 public key (Discord-like Ed25519 sources hold the sender's public key).
const ED25519_PUBLIC_HEX: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
/// The same key as a Standard Webhooks `whpk_` key (v1a).
const ED25519_PUBLIC_WHPK: &str = "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
/// The Standard Webhooks specification's example secret.
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TWILIO_URL: &str = "https://example.com/hook?x=1";

fn secrets(list: &[&str]) -> SecretSet {
    SecretSet::new(list.iter().map(|s| Secret::new(s.as_bytes().to_vec())).collect())
}

/// Two secrets where the scheme allows a rotation set, so the key loops run more than once.
fn hmac_secrets() -> SecretSet {
    secrets(&["It's a Secret to Everybody", "rotated-secret-2"])
}

fn build(kind: Kind) -> Verifier {
    let (scheme, set) = match kind {
        Kind::GitHub => (
            Scheme::Signature(SignatureScheme::hmac_body(
                Digest::Sha256,
                "X-Hub-Signature-256",
                "sha256=",
                Encoding::Hex,
            )),
            hmac_secrets(),
        ),
        Kind::Stripe => (
            Scheme::Signature(SignatureScheme {
                signed: Signed::parse("{timestamp}.{body}").expect("valid template"),
                timestamp: Some(TimestampSpec {
                    past_only: true,
                    ..TimestampSpec::list_key("t", 300)
                }),
                ..SignatureScheme::hmac_body(Digest::Sha256, "Stripe-Signature", "", Encoding::Hex)
                    .with_list("v1", ",", "=")
            }),
            hmac_secrets(),
        ),
        Kind::Slack => (
            Scheme::Signature(SignatureScheme {
                signed: Signed::parse("v0:{timestamp}:{body}").expect("valid template"),
                timestamp: Some(TimestampSpec::header("X-Slack-Request-Timestamp", 300)),
                ..SignatureScheme::hmac_body(Digest::Sha256, "X-Slack-Signature", "v0=", Encoding::Hex)
            }),
            hmac_secrets(),
        ),
        Kind::PagerDuty => (
            Scheme::Signature(
                SignatureScheme::hmac_body(Digest::Sha256, "X-PagerDuty-Signature", "", Encoding::Hex)
                    .with_list("v1", ",", "="),
            ),
            hmac_secrets(),
        ),
        Kind::StandardWebhooks => (
            Scheme::StandardWebhooks(StandardWebhooks::default()),
            secrets(&[WHSEC, ED25519_PUBLIC_WHPK]),
        ),
        Kind::Zendesk => (
            Scheme::Signature(SignatureScheme {
                signed: Signed::parse("{timestamp}{body}").expect("valid template"),
                timestamp: Some(TimestampSpec {
                    format: TimestampFormat::Rfc3339,
                    ..TimestampSpec::header("X-Zendesk-Webhook-Signature-Timestamp", 300)
                }),
                ..SignatureScheme::hmac_body(
                    Digest::Sha256,
                    "X-Zendesk-Webhook-Signature",
                    "",
                    Encoding::Base64,
                )
            }),
            hmac_secrets(),
        ),
        Kind::Discord => (
            Scheme::Signature(SignatureScheme {
                algorithm: Algorithm::Ed25519,
                signature: SignatureSpec {
                    header: "x-signature-ed25519".into(),
                    prefix: String::new(),
                    list: None,
                    encoding: Encoding::Hex,
                },
                signed: Signed::parse("{timestamp}{body}").expect("valid template"),
                timestamp: Some(TimestampSpec {
                    tolerance_secs: None,
                    ..TimestampSpec::header("X-Signature-Timestamp", 0)
                }),
                key: KeyEncoding::Hex,
            }),
            secrets(&[ED25519_PUBLIC_HEX]),
        ),
        Kind::Twilio => (Scheme::Twilio(Twilio::default()), secrets(&["twilio-auth-token"])),
        Kind::Netlify => (Scheme::Jws(Jws::default()), secrets(&["netlify-jws-secret"])),
        Kind::Token => (
            Scheme::Token(TokenScheme {
                header: Some("X-Hookwire-Token".into()),
                bearer: true,
                basic: true,
                basic_user: Some("hookwire".into()),
            }),
            secrets(&["token-one", "token-two"]),
        ),
    };
    Verifier::new(scheme, &set).unwrap_or_else(|e| panic!("building the {kind:?} verifier: {e}"))
}

fn verifiers() -> &'static [Verifier] {
    static VERIFIERS: OnceLock<Vec<Verifier>> = OnceLock::new();
    VERIFIERS.get_or_init(|| SCHEMES.iter().map(|k| build(*k)).collect())
}

/// Inserts `name: field` when the field is present; `Err` when `HeaderValue` refuses it.
fn put(headers: &mut HeaderMap, name: &'static str, field: Option<&[u8]>) -> Result<(), ()> {
    if let Some(bytes) = field {
        let value = HeaderValue::from_bytes(bytes).map_err(|_| ())?;
        headers.insert(HeaderName::from_static(name), value);
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
    let (f0, f1, f2) = (fields.next(), fields.next(), fields.next());

    let index = usize::from(selector) % SCHEMES.len();
    let kind = SCHEMES[index];
    let verifier = &verifiers()[index];

    let mut headers = HeaderMap::new();
    let mut url = None;
    let placed = match kind {
        Kind::GitHub => put(&mut headers, "x-hub-signature-256", f0),
        Kind::Stripe => put(&mut headers, "stripe-signature", f0),
        Kind::Slack => put(&mut headers, "x-slack-signature", f0)
            .and_then(|_| put(&mut headers, "x-slack-request-timestamp", f1)),
        Kind::PagerDuty => put(&mut headers, "x-pagerduty-signature", f0),
        Kind::StandardWebhooks => {
            let [sig, id, ts] = if selector & 0x80 == 0 {
                ["webhook-signature", "webhook-id", "webhook-timestamp"]
            } else {
                ["svix-signature", "svix-id", "svix-timestamp"]
            };
            put(&mut headers, sig, f0)
                .and_then(|_| put(&mut headers, id, f1))
                .and_then(|_| put(&mut headers, ts, f2))
        }
        Kind::Zendesk => put(&mut headers, "x-zendesk-webhook-signature", f0)
            .and_then(|_| put(&mut headers, "x-zendesk-webhook-signature-timestamp", f1)),
        Kind::Discord => put(&mut headers, "x-signature-ed25519", f0)
            .and_then(|_| put(&mut headers, "x-signature-timestamp", f1)),
        Kind::Twilio => {
            // The configured public URL, or a fuzzed one (URL splitting and port variants).
            url = Some(match f1 {
                Some(u) => match std::str::from_utf8(u) {
                    Ok(u) => u,
                    Err(_) => return,
                },
                None => TWILIO_URL,
            });
            headers.insert(
                HeaderName::from_static("content-type"),
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            put(&mut headers, "x-twilio-signature", f0)
        }
        Kind::Netlify => put(&mut headers, "x-webhook-signature", f0),
        Kind::Token => {
            put(&mut headers, "authorization", f0).and_then(|_| put(&mut headers, "x-hookwire-token", f1))
        }
    };
    if placed.is_err() {
        return;
    }

    let request = Request {
        headers: &headers,
        body,
        method: "POST",
        url,
        now: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    };
    let result = verifier.verify(&request);
    assert!(
        result.is_err(),
        "{kind:?} accepted a fuzzed request: {result:?} (headers {headers:?})"
    );
    // `hookwire verify explain` parses the same untrusted headers; it must not panic either.
    let _ = verifier.explain(&request);
});
