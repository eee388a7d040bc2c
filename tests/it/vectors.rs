//! Every known-answer vector of `tests/fixtures/vectors.json` (156 today), run through the
//! source type a user would configure for that vendor, built by the same registry as the
//! binary: valid ones verify, invalid ones fail with the expected kind of error. The file is
//! read at test time, so new vectors are picked up without code changes (a new *scheme* needs
//! one line in `source_for`).
//!
//! Every valid vector is also checked with a rotation set where the right secret comes second:
//! it must verify, and say that secret #2 matched.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookwire_core::adapter::{Adapter, SourceSpec};
use hookwire_core::axum::http::{HeaderMap, HeaderName, HeaderValue};
use hookwire_core::secret::{Secret, SecretSet};
use hookwire_core::verify::{Request, VerifyError};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The source type and options a user would configure for a vector's scheme.
fn source_for(v: &Value) -> (&'static str, String) {
    let opt = |k: &str| v["options"][k].as_str().map(str::to_owned);
    let kat = |digest: &str| {
        let verify = if digest == "ed25519" {
            "{header: x-mac, encoding: hex}".to_owned()
        } else {
            format!("{{digest: {digest}, header: x-mac, encoding: hex}}")
        };
        format!("{{verify: {verify}, event: {{value: kat}}}}")
    };
    match v["scheme"].as_str().unwrap() {
        "kat-hmac-sha1" => ("hmac", kat("sha1")),
        "kat-hmac-sha256" => ("hmac", kat("sha256")),
        "kat-hmac-sha512" => ("hmac", kat("sha512")),
        "kat-ed25519" => ("ed25519", kat("ed25519")),
        "github-hmac-sha256" => ("github", "{}".into()),
        "github-hmac-sha1" => ("github", "{digest: sha1}".into()),
        "bitbucket-hmac-sha256" => ("bitbucket", "{}".into()),
        "jira-hmac-sha256" => ("jira", "{}".into()),
        "intercom-hmac-sha1" => ("intercom", "{}".into()),
        "vercel-hmac-sha1" => ("vercel", "{}".into()),
        "sentry-hmac-sha256" => ("sentry", "{}".into()),
        "linear-hmac-sha256" => ("linear", "{}".into()),
        "grafana-hmac-sha256" => {
            let mut o = format!("{{signature_header: {}", opt("signature_header").unwrap());
            if let Some(t) = opt("timestamp_header") {
                o += &format!(", timestamp_header: {t}");
            }
            ("grafana", o + "}")
        }
        "pagerduty-v1" => ("pagerduty", "{}".into()),
        "circleci-v1" => ("circleci", "{}".into()),
        "slack-v0" => ("slack", "{}".into()),
        "stripe-v1" => ("stripe", "{}".into()),
        "buildkite-hmac-sha256" => ("buildkite", "{}".into()),
        "shopify-hmac-sha256" => ("shopify", "{}".into()),
        "heroku-hmac-sha256" => ("heroku", "{}".into()),
        "zendesk-hmac-sha256" => ("zendesk", "{}".into()),
        "standard-webhooks-v1" | "standard-webhooks-v1a" => ("standard-webhooks", "{}".into()),
        "discord-ed25519" => ("discord", "{}".into()),
        "netlify-jws" => ("netlify", "{}".into()),
        "gitlab-token" => ("gitlab", "{}".into()),
        "twilio-hmac-sha1" => ("twilio", "{}".into()),
        "azure-devops-basic" => ("azure-devops", "{}".into()),
        "hcp-terraform-hmac-sha512" => ("hcp-terraform", "{}".into()),
        "gitea-hmac-sha256" => ("gitea", "{}".into()),
        "forgejo-hmac-sha256" => ("forgejo", "{}".into()),
        "bitbucket-dc-hmac-sha256" => ("bitbucket-dc", "{}".into()),
        "cursor-hmac-sha256" => ("cursor", "{}".into()),
        "openai-standard-webhooks" => ("openai", "{}".into()),
        "anthropic-standard-webhooks" => ("anthropic", "{}".into()),
        "sendgrid-ecdsa-p256" => ("sendgrid", "{}".into()),
        "mailgun-hmac-sha256" => ("mailgun", "{}".into()),
        other => panic!("vector {}: no source type mapped for scheme {other}", v["id"]),
    }
}

fn build(v: &Value, secrets: Vec<&str>) -> Box<dyn Adapter> {
    build_as(v, source_for(v), secrets)
}

fn build_as(v: &Value, (type_name, options): (&str, String), secrets: Vec<&str>) -> Box<dyn Adapter> {
    let registry = hookwire::registry();
    let factory = registry.get(type_name).expect("registered");
    let options: serde_norway::Mapping = serde_norway::from_str(&options).unwrap();
    let spec = SourceSpec {
        name: "vector",
        options: &options,
        secrets: SecretSet::new(
            secrets
                .into_iter()
                .map(|s| Secret::new(s.as_bytes().to_vec()))
                .collect(),
        ),
        public_url: v["url"].as_str(),
        fetch: hookwire_core::fetch::Fetch::offline(),
    };
    (factory.build)(&spec).unwrap_or_else(|e| panic!("vector {}: cannot build: {e:?}", v["id"]))
}

fn headers(v: &Value) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, val) in v["headers"].as_object().unwrap() {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(val.as_str().unwrap()).unwrap(),
        );
    }
    // The `rfc` primitive vectors carry the expected output in `mac`.
    if let Some(mac) = v["mac"].as_str() {
        h.insert("x-mac", HeaderValue::from_str(mac).unwrap());
    }
    h
}

fn body(v: &Value) -> Vec<u8> {
    match (v["body"].as_str(), v["body_file"].as_str()) {
        (Some(b), _) => b.as_bytes().to_vec(),
        (None, Some(f)) => std::fs::read(fixtures().join(f)).unwrap(),
        _ => panic!("vector {} has no body", v["id"]),
    }
}

/// Another valid secret of the same form, to put first in a rotation set.
fn decoy(secret: &str) -> &'static str {
    // RFC 8032 TEST 2's public key: a real key, not the one that signed.
    const OTHER_KEY_HEX: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
    // A P-256 public key (SPKI DER, base64): SendGrid's "bad key" from its SDK's tests.
    const OTHER_P256: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==";
    if secret.starts_with("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE") {
        return OTHER_P256;
    }
    if secret.starts_with("whpk_") {
        "whpk_PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw="
    } else if secret.starts_with("whsec_") {
        "whsec_bm90LXRoZS1zZWNyZXQtYnV0LWJhc2U2NA=="
    } else if secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        OTHER_KEY_HEX
    } else {
        "not-the-secret-0123456789"
    }
}

/// The kind of failure a negative vector must produce.
fn expected_failure(id: &str, got: VerifyError) -> bool {
    if id.contains("stale") || id.contains("future") {
        got == VerifyError::Stale
    } else if id.contains("missing-header")
        || id.contains("missing-token")
        || id.contains("missing-timestamp")
    {
        got == VerifyError::Missing
    } else {
        matches!(got, VerifyError::Mismatch | VerifyError::Malformed)
    }
}

fn vectors() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("vectors.json")).expect("tests/fixtures/vectors.json");
    serde_json::from_str(&text).unwrap()
}

fn request<'a>(v: &'a Value, h: &'a HeaderMap, b: &'a [u8]) -> Request<'a> {
    let now = v["now"]
        .as_u64()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
        .unwrap_or_else(SystemTime::now);
    Request {
        headers: h,
        body: b,
        method: v["method"].as_str().unwrap_or("POST"),
        url: v["url"].as_str(),
        now,
    }
}

/// The same vendors declared in YAML (`type: hmac`), as a team would write them without
/// Rust: GitHub (both digests), Slack (header timestamp), Stripe (list with a timestamp key,
/// past-only window), Zendesk (RFC 3339 timestamp, base64), Linear (timestamp inside the
/// body), PagerDuty (`v1=` list).
fn declared_yaml(scheme: &str) -> Option<String> {
    let verify = match scheme {
        "github-hmac-sha256" => "{digest: sha256, header: X-Hub-Signature-256, prefix: \"sha256=\", encoding: hex}",
        "github-hmac-sha1" => "{digest: sha1, header: X-Hub-Signature, prefix: \"sha1=\", encoding: hex}",
        "slack-v0" => {
            "{digest: sha256, header: X-Slack-Signature, prefix: \"v0=\", encoding: hex, \
             signed: \"v0:{timestamp}:{body}\", timestamp: {from: {header: X-Slack-Request-Timestamp}}}"
        }
        "stripe-v1" => {
            "{digest: sha256, header: Stripe-Signature, list: {tag: v1}, encoding: hex, \
             signed: \"{timestamp}.{body}\", timestamp: {from: {list_key: t}, past_only: true}}"
        }
        "zendesk-hmac-sha256" => {
            "{digest: sha256, header: X-Zendesk-Webhook-Signature, encoding: base64, signed: \"{timestamp}{body}\", \
             timestamp: {from: {header: X-Zendesk-Webhook-Signature-Timestamp}, format: rfc3339}}"
        }
        "linear-hmac-sha256" => {
            "{digest: sha256, header: Linear-Signature, encoding: hex, \
             timestamp: {from: {json: /webhookTimestamp}, format: unix_ms, tolerance_secs: 60}}"
        }
        "pagerduty-v1" => "{digest: sha256, header: X-PagerDuty-Signature, list: {tag: v1}, encoding: hex}",
        _ => return None,
    };
    Some(format!("{{verify: {verify}, event: {{value: e}}}}"))
}

/// Vendors declared in YAML reach the same verdict as their adapters on every one of their
/// vectors.
#[test]
fn vendors_declared_in_yaml_agree_with_their_adapters_on_every_vector() {
    let mut checked = 0;
    for v in vectors().iter() {
        let Some(yaml) = declared_yaml(v["scheme"].as_str().unwrap()) else {
            continue;
        };
        let secret = v["secret"].as_str().unwrap();
        let (h, b) = (headers(v), body(v));
        let req = request(v, &h, &b);
        let declared = build_as(v, ("hmac", yaml), vec![secret]).verifier().verify(&req);
        let adapter = build(v, vec![secret]).verifier().verify(&req);
        assert_eq!(declared, adapter, "{}", v["id"]);
        checked += 1;
    }
    assert!(
        checked >= 30,
        "expected the vectors of seven schemes, checked {checked}"
    );
}

#[test]
fn every_vector_gets_its_expected_verdict() {
    let vectors = vectors();
    assert!(
        vectors.len() >= 111,
        "expected the vectors, found {}",
        vectors.len()
    );
    let mut failures = Vec::new();
    let (mut valid, mut invalid) = (0, 0);
    for v in &vectors {
        let id = v["id"].as_str().unwrap();
        let secret = v["secret"].as_str().unwrap();
        let (h, b) = (headers(v), body(v));
        let req = request(v, &h, &b);
        let got = build(v, vec![secret]).verifier().verify(&req);
        match (v["expect"].as_str().unwrap(), got) {
            ("valid", Ok(verified)) => {
                valid += 1;
                assert_eq!(verified.secret, 0, "{id}");
                // Rotation: the right secret second in the set still verifies, as #2.
                let rotated = build(v, vec![decoy(secret), secret]).verifier().verify(&req);
                if rotated.map(|r| r.secret) != Ok(1) {
                    failures.push(format!(
                        "{id}: with the secret second in the rotation set: {rotated:?}"
                    ));
                }
            }
            ("invalid", Err(e)) if expected_failure(id, e) => invalid += 1,
            (expect, got) => failures.push(format!("{id}: expected {expect}, got {got:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} vector(s) wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{valid} valid and {invalid} invalid vectors checked");
}

/// The one vendor list (`hookwire_adapters::vendors()`, what the registry and the fuzz
/// target iterate) against the vectors: a vendor that signs and has no known-answer vector
/// fails here, so a new preset comes with its vectors. Token vendors compare the secret
/// verbatim and have nothing to compute.
#[test]
fn every_vendor_that_signs_has_known_answer_vectors() {
    let covered: std::collections::BTreeSet<&str> = vectors().iter().map(|v| source_for(v).0).collect();
    let registry = hookwire::registry();
    let options = serde_norway::Mapping::new();
    let mut missing = Vec::new();
    for vendor in hookwire_adapters::vendors() {
        // Keyless kinds verify with keys served by a local server: tests/it/cloud_kinds.rs.
        if covered.contains(vendor.name) || ["aws-sns", "google-pubsub"].contains(&vendor.name) {
            continue;
        }
        // Any secret that builds: what matters is the scheme.
        let built = [
            "0123456789abcdef0123456789abcdef",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ]
        .iter()
        .find_map(|s| {
            let spec = SourceSpec {
                name: vendor.name,
                options: &options,
                secrets: SecretSet::new(vec![Secret::new(s.as_bytes().to_vec())]),
                public_url: Some("https://example.com/hook"),
                fetch: hookwire_core::fetch::Fetch::offline(),
            };
            (registry.get(vendor.name).expect("registered").build)(&spec).ok()
        })
        .unwrap_or_else(|| panic!("{} builds with no test secret", vendor.name));
        if !matches!(built.verifier().scheme(), hookwire_core::verify::Scheme::Token(_)) {
            missing.push(vendor.name);
        }
    }
    assert!(
        missing.is_empty(),
        "vendors that sign but have no vector in tests/fixtures/vectors.json: {missing:?}"
    );
    assert!(covered.len() >= 20, "{covered:?}");
}
