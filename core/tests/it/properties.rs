//! Property tests of every verification scheme, through the same sign and verify code the
//! binary runs (`hookwire send` signs with `Verifier::sign`):
//! - whatever the body and whichever secret of the rotation set signed, the request verifies
//!   and names that secret;
//! - flipping any one byte of the body, of a signature-bearing header or of the signed
//!   timestamp makes it fail;
//! - arbitrary signature headers never verify and never panic (the stable-Rust companion of the
//!   cargo-fuzz target in `fuzz/`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookwire_core::axum::http::{HeaderMap, HeaderName, HeaderValue};
use hookwire_core::secret::{Secret, SecretSet};
use hookwire_core::verify::codec::{Digest, Encoding};
use hookwire_core::verify::jws::Jws;
use hookwire_core::verify::signature::Signed;
use hookwire_core::verify::timestamp::{TimestampFormat, TimestampSpec};
use hookwire_core::verify::{
    Outgoing, Request, Scheme, SignatureScheme, StandardWebhooks, TokenScheme, Twilio, Verifier,
};
use proptest::prelude::*;

const URL: &str = "https://hooks.example.com/hooks/x";

/// The schemes under test, and the header holding the timestamp when it is a header of its own.
fn schemes() -> Vec<(&'static str, Scheme, Option<&'static str>)> {
    let sig = Scheme::Signature;
    vec![
        (
            "github",
            sig(SignatureScheme::hmac_body(
                Digest::Sha256,
                "X-Hub-Signature-256",
                "sha256=",
                Encoding::Hex,
            )),
            None,
        ),
        (
            "intercom-sha1",
            sig(SignatureScheme::hmac_body(
                Digest::Sha1,
                "X-Hub-Signature",
                "sha1=",
                Encoding::Hex,
            )),
            None,
        ),
        (
            "sha512-base64",
            sig(SignatureScheme::hmac_body(
                Digest::Sha512,
                "X-Sig",
                "",
                Encoding::Base64,
            )),
            None,
        ),
        (
            "stripe",
            sig(SignatureScheme {
                signed: Signed::parse("{timestamp}.{body}").unwrap(),
                timestamp: Some(TimestampSpec {
                    past_only: true,
                    ..TimestampSpec::list_key("t", 300)
                }),
                ..SignatureScheme::hmac_body(Digest::Sha256, "Stripe-Signature", "", Encoding::Hex)
                    .with_list("v1", ",", "=")
            }),
            None,
        ),
        (
            "slack",
            sig(SignatureScheme {
                signed: Signed::parse("v0:{timestamp}:{body}").unwrap(),
                timestamp: Some(TimestampSpec::header("X-Slack-Request-Timestamp", 300)),
                ..SignatureScheme::hmac_body(Digest::Sha256, "X-Slack-Signature", "v0=", Encoding::Hex)
            }),
            Some("x-slack-request-timestamp"),
        ),
        (
            "zendesk",
            sig(SignatureScheme {
                signed: Signed::parse("{timestamp}{body}").unwrap(),
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
            Some("x-zendesk-webhook-signature-timestamp"),
        ),
        (
            "url-and-method",
            sig(SignatureScheme {
                signed: Signed::parse("{method} {url}\n{body}").unwrap(),
                ..SignatureScheme::hmac_body(Digest::Sha256, "X-Sig", "", Encoding::Hex)
            }),
            None,
        ),
        (
            "standard-webhooks",
            Scheme::StandardWebhooks(StandardWebhooks::default()),
            Some("webhook-timestamp"),
        ),
        ("twilio", Scheme::Twilio(Twilio::default()), None),
        ("netlify", Scheme::Jws(Jws::default()), None),
        ("token", Scheme::Token(TokenScheme::header("X-Token")), None),
    ]
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Distinct secrets by construction (the index is part of each), in the scheme's format.
fn secret_set(name: &str, seeds: &[Vec<u8>]) -> SecretSet {
    use base64::Engine as _;
    SecretSet::new(
        seeds
            .iter()
            .enumerate()
            .map(|(i, seed)| {
                let mut bytes = vec![i as u8];
                bytes.extend_from_slice(seed);
                let text = match name {
                    "standard-webhooks" => {
                        format!(
                            "whsec_{}",
                            base64::engine::general_purpose::STANDARD.encode(&bytes)
                        )
                    }
                    _ => format!("s{i}-{}", hex(&bytes)),
                };
                Secret::new(text.into_bytes())
            })
            .collect(),
    )
}

/// A signed request: its headers and body.
struct Sent {
    headers: HeaderMap,
    body: Vec<u8>,
}

fn sign(v: &Verifier, name: &str, body: &[u8], index: usize, now: SystemTime) -> Sent {
    // Twilio signs form parameters; give it a form body.
    let body = if name == "twilio" {
        format!("Body={}&From=%2B1555", hex(body)).into_bytes()
    } else {
        body.to_vec()
    };
    let out = Outgoing {
        body: &body,
        method: "POST",
        url: URL,
        id: "msg_2Kx7Vq",
        now,
    };
    let mut headers = HeaderMap::new();
    for (n, val) in v.sign(&out, index).unwrap() {
        headers.insert(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(&val).unwrap(),
        );
    }
    Sent { headers, body }
}

fn request<'a>(headers: &'a HeaderMap, body: &'a [u8], now: SystemTime) -> Request<'a> {
    Request {
        headers,
        body,
        method: "POST",
        url: Some(URL),
        now,
    }
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

proptest! {
    // Failing inputs are printed, not written next to the sources.
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_secret_of_the_rotation_set_verifies_and_any_flipped_byte_fails(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        seeds in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 8..24), 1..4),
        pick in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        // Bits 0-4: bit 5 only changes the case of a hex letter, which decodes the same.
        bit in 0u8..5,
        now in 1_600_000_000u64..1_900_000_000,
    ) {
        for (name, scheme, ts_header) in schemes() {
            let v = Verifier::new(scheme, &secret_set(name, &seeds)).unwrap();
            let index = pick.index(seeds.len());
            let s = sign(&v, name, &body, index, at(now));
            let verified = v.verify(&request(&s.headers, &s.body, at(now)));
            prop_assert_eq!(verified.map(|x| x.secret), Ok(index), "{}: signed with secret {}", name, index);

            // One byte of the body (a token does not cover the body).
            if name != "token" && !s.body.is_empty() {
                let mut tampered = s.body.clone();
                let i = flip.index(tampered.len());
                tampered[i] ^= 1 << bit;
                prop_assert!(
                    v.verify(&request(&s.headers, &tampered, at(now))).is_err(),
                    "{}: body byte {} flipped", name, i
                );
            }

            // One byte of each header the scheme sent.
            for (hname, value) in s.headers.iter() {
                if hname == "content-type" {
                    continue;
                }
                let mut bytes = value.as_bytes().to_vec();
                let i = flip.index(bytes.len());
                bytes[i] ^= 1 << bit;
                let Ok(changed) = HeaderValue::from_bytes(&bytes) else { continue };
                let mut headers = s.headers.clone();
                headers.insert(hname.clone(), changed);
                prop_assert!(
                    v.verify(&request(&headers, &s.body, at(now))).is_err(),
                    "{}: header {} byte {} flipped", name, hname, i
                );
            }

            // The timestamp moved by one second no longer matches what was signed.
            if let Some(h) = ts_header {
                let moved = if name == "zendesk" {
                    humantime::format_rfc3339_seconds(at(now + 1)).to_string()
                } else {
                    (now + 1).to_string()
                };
                let mut headers = s.headers.clone();
                headers.insert(HeaderName::from_static(h), HeaderValue::from_str(&moved).unwrap());
                prop_assert!(
                    v.verify(&request(&headers, &s.body, at(now))).is_err(),
                    "{}: timestamp moved", name
                );
            }
        }
    }

    #[test]
    fn arbitrary_signature_headers_never_verify_and_never_panic(
        value in proptest::collection::vec(any::<u8>(), 0..200),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let Ok(value) = HeaderValue::from_bytes(&value) else { return Ok(()) };
        for (name, scheme, _) in schemes() {
            let v = Verifier::new(scheme, &secret_set(name, &[b"seed-bytes".to_vec()])).unwrap();
            let mut headers = HeaderMap::new();
            for h in [
                "x-hub-signature-256", "x-hub-signature", "x-sig", "stripe-signature", "x-slack-signature",
                "x-slack-request-timestamp", "x-zendesk-webhook-signature", "webhook-signature",
                "webhook-timestamp", "x-twilio-signature", "x-webhook-signature", "x-token", "authorization",
            ] {
                headers.insert(HeaderName::from_static(h), value.clone());
            }
            headers.insert("webhook-id", HeaderValue::from_static("msg_1"));
            prop_assert!(
                v.verify(&request(&headers, &body, at(1_700_000_000))).is_err(),
                "{}: a random header verified", name
            );
        }
    }
}
