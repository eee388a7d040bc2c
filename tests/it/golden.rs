//! Every GitHub fixture payload (`tests/fixtures/payloads/github/`), the Datadog test
//! fixtures, and every fixture payload of the other vendors with templates (GitLab, Stripe,
//! PagerDuty, Sentry, Slack, Grafana, Alertmanager, and Buildkite, CircleCI, Discord, Heroku,
//! Intercom, Linear, Twilio and Zendesk; Bitbucket, Jira, Netlify, Shopify and Vercel publish
//! no payload we could find, see `SOURCES.md`), signed as each vendor signs and POSTed to a
//! running `hookwire channel`; the exact notification lines are compared with `tests/golden/`.
//! Regenerate after an intended template change with `HOOKWIRE_BLESS=1 cargo test --test it golden`
//! and review the diff.

use crate::common;

use std::path::PathBuf;
use std::time::SystemTime;

use common::{Hookwire, TempDir};
use ed25519_dalek::Signer;
use hookwire_core::adapter::{Adapter, SourceSpec};
use hookwire_core::secret::{Secret, SecretSet};
use hookwire_core::verify::Outgoing;

const SECRET: &str = "golden-github-secret";
const DD_TOKEN: &str = "golden-datadog-token";

fn fixtures(dir: PathBuf) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json" || x == "form"))
        // Signature vectors are exact signed bytes for `tests/it/vectors.rs`, not deliveries.
        .filter(|p| !p.to_string_lossy().contains(".signed-vector."))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn check(kind: &str, stem: &str, line: &str, mismatches: &mut Vec<String>) {
    let path = common::root()
        .join("tests/golden")
        .join(kind)
        .join(format!("{stem}.jsonl"));
    let line = format!("{line}\n");
    if std::env::var_os("HOOKWIRE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &line).unwrap();
        return;
    }
    match std::fs::read_to_string(&path) {
        Ok(want) if want == line => {}
        Ok(want) => mismatches.push(format!("{}:\n  want {want}  got  {line}", path.display())),
        Err(_) => mismatches.push(format!(
            "{} is missing (run with HOOKWIRE_BLESS=1)",
            path.display()
        )),
    }
}

#[test]
fn every_fixture_renders_to_its_golden_notification() {
    let dir = TempDir::new("golden");
    let cfg = dir.write(
        "config.yaml",
        "channel:\n  sources: [github, datadog]\nsources:\n  - name: github\n    type: github\n    secret_env: G_SECRET\n  - name: datadog\n    type: datadog\n    secret_env: G_DD\n",
    );
    let mut hw = Hookwire::spawn(&cfg, &[("G_SECRET", SECRET), ("G_DD", DD_TOKEN)]);
    hw.handshake();
    let mut mismatches = Vec::new();

    let github = fixtures(common::root().join("tests/fixtures/payloads/github"));
    assert!(github.len() >= 10, "expected the GitHub fixtures");
    for (stem, body) in &github {
        let event = stem.split('.').next().unwrap();
        let delivery = format!("golden-{stem}");
        let r = hw.post_github("/hooks/github", SECRET, event, &delivery, body);
        assert_eq!(r.status, 202, "{stem}");
        if event == "ping" {
            continue;
        }
        let line = hw.next_line();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["params"]["meta"]["delivery_id"], delivery.as_str());
        assert!(
            !hw.stderr_text().contains("template failed"),
            "{stem}: a template failed:\n{}",
            hw.stderr_text()
        );
        check("github", stem, &line, &mut mismatches);
    }

    for (stem, body) in fixtures(common::root().join("tests/fixtures/datadog")) {
        let r = hw.post("/hooks/datadog", &[("X-Hookwire-Token", DD_TOKEN)], &body);
        assert_eq!(r.status, 202, "{stem}");
        let line = hw.next_line();
        assert!(
            !hw.stderr_text().contains("template failed"),
            "{stem}:\n{}",
            hw.stderr_text()
        );
        check("datadog", &stem, &line, &mut mismatches);
    }
    assert!(
        mismatches.is_empty(),
        "{} golden mismatch(es):\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// A vendor whose fixtures are posted by [`every_vendor_fixture_renders_to_its_golden_notification`].
struct Vendor {
    /// The source type, also the source name and the fixture folder.
    name: &'static str,
    /// The source's secret (any value works: the same one signs and verifies).
    secret: &'static str,
    /// Whether the adapter takes the delivery id from a request header (then it must be ours).
    delivery_from_header: bool,
    /// How many dot-separated parts of a fixture's file stem name its event (Buildkite's
    /// events, `build.finished`, contain a dot).
    event_parts: usize,
    /// Extra source keys for config.yaml, each line indented as a source key.
    extra: &'static str,
    /// The URL the vendor signs, when it is not the one posted to (Twilio's `public_url`).
    signed_url: Option<&'static str>,
    /// How the vendor signs.
    signing: Signing,
}

/// How a vendor's deliveries are signed in this test.
enum Signing {
    /// With the adapter's own `Verifier::sign`, as `hookwire send` does.
    Adapter,
    /// As Discord signs: Ed25519 over the timestamp and the body, with the private key whose
    /// public half is the source's secret.
    DiscordEd25519,
    /// As SendGrid signs: ECDSA P-256 over the timestamp and the body, DER, base64.
    SendgridEcdsa,
    /// As Mailgun signs: inside the body ([`fresh_body`] re-signs its timestamp and token).
    MailgunBody,
}

/// Defaults for the vendor table.
const V: Vendor = Vendor {
    name: "",
    secret: "",
    delivery_from_header: false,
    event_parts: 1,
    extra: "",
    signed_url: None,
    signing: Signing::Adapter,
};

/// RFC 8032 TEST 1: the public key is the Discord source's secret; the seed signs.
const DISCORD_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const DISCORD_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
/// RFC 6979 A.2.5's P-256 private key signs; its public key (SPKI DER, base64) is the SendGrid
/// source's secret.
const SENDGRID_PRIVATE: &str = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";
const SENDGRID_PUBLIC: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYP7UuiVanTHJYet0xjVtaMBJuJI7Yfps5mliLmDyn7Z5A/4QCLi8maQa6elWKLxk8vGyDC1+n1F3o8KU1EYimQ==";
const TWILIO_URL: &str = "https://hooks.example.com/hooks/twilio";

const VENDORS: &[Vendor] = &[
    Vendor {
        name: "gitlab",
        secret: "golden-gitlab-token",
        delivery_from_header: true,
        ..V
    },
    Vendor {
        name: "stripe",
        secret: "whsec_golden_stripe_secret",
        ..V
    },
    Vendor {
        name: "pagerduty",
        secret: "golden-pagerduty-secret",
        delivery_from_header: true,
        ..V
    },
    Vendor {
        name: "sentry",
        secret: "golden-sentry-secret",
        delivery_from_header: true,
        ..V
    },
    Vendor {
        name: "slack",
        secret: "golden-slack-signing-secret",
        ..V
    },
    Vendor {
        name: "grafana",
        secret: "golden-grafana-secret",
        ..V
    },
    Vendor {
        name: "alertmanager",
        secret: "golden-alertmanager-token",
        ..V
    },
    Vendor {
        name: "buildkite",
        secret: "golden-buildkite-token",
        event_parts: 2,
        ..V
    },
    Vendor {
        name: "circleci",
        secret: "golden-circleci-secret",
        ..V
    },
    Vendor {
        name: "discord",
        secret: DISCORD_PUBLIC,
        signing: Signing::DiscordEd25519,
        ..V
    },
    Vendor {
        name: "heroku",
        secret: "golden-heroku-secret",
        delivery_from_header: true,
        ..V
    },
    Vendor {
        name: "intercom",
        secret: "golden-intercom-client-secret",
        ..V
    },
    Vendor {
        name: "linear",
        secret: "golden-linear-secret",
        delivery_from_header: true,
        ..V
    },
    Vendor {
        name: "twilio",
        secret: "golden-twilio-auth-token",
        extra: "    public_url: https://hooks.example.com/hooks/twilio\n",
        signed_url: Some(TWILIO_URL),
        ..V
    },
    Vendor {
        name: "zendesk",
        secret: "golden-zendesk-secret",
        ..V
    },
    Vendor {
        name: "azure-devops",
        secret: "golden-azure-devops-password",
        event_parts: 2,
        // hookwire channel serves plain HTTP: a Basic auth source must say TLS is in front.
        extra: "    behind_tls: true\n",
        ..V
    },
    Vendor {
        name: "hcp-terraform",
        secret: "golden-hcp-terraform-token",
        ..V
    },
    Vendor {
        name: "gitea",
        secret: "golden-gitea-secret",
        delivery_from_header: true,
        ..V
    },
    Vendor {
        name: "forgejo",
        secret: "golden-forgejo-secret",
        delivery_from_header: true,
        ..V
    },
    Vendor {
        name: "bitbucket-dc",
        secret: "golden-bitbucket-dc-secret",
        delivery_from_header: true,
        ..V
    },
    Vendor {
        name: "anthropic",
        secret: "whsec_Z29sZGVuLWFudGhyb3BpYy13ZWJob29rLXNlY3JldA==",
        ..V
    },
    Vendor {
        name: "openai",
        secret: "whsec_Z29sZGVuLW9wZW5haS13ZWJob29rLXNlY3JldA==",
        delivery_from_header: true,
        ..V
    },
    Vendor {
        name: "sendgrid",
        secret: SENDGRID_PUBLIC,
        signing: Signing::SendgridEcdsa,
        ..V
    },
    Vendor {
        name: "mailgun",
        secret: "golden-mailgun-signing-key",
        signing: Signing::MailgunBody,
        ..V
    },
    Vendor {
        name: "cursor",
        secret: "golden-cursor-webhook-secret",
        delivery_from_header: true,
        ..V
    },
];

/// The vendor's adapter with its default options, built by the binary's own registry.
fn adapter(v: &Vendor) -> Box<dyn Adapter> {
    let registry = hookwire::registry();
    let factory = registry.get(v.name).expect("registered");
    let options = serde_norway::Mapping::new();
    let spec = SourceSpec {
        name: v.name,
        options: &options,
        secrets: SecretSet::new(vec![Secret::new(v.secret.as_bytes().to_vec())]),
        public_url: v.signed_url,
        fetch: hookwire_core::fetch::Fetch::offline(),
    };
    (factory.build)(&spec).unwrap_or_else(|e| panic!("{}: cannot build: {e:?}", v.name))
}

/// `X-Gitlab-Event` as GitLab sends it for an `object_kind` (`Pipeline Hook`, `Job Hook`).
fn gitlab_event_header(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    let kind = v["object_kind"].as_str().unwrap_or("system");
    let name = match kind {
        "build" => "Job".to_owned(),
        other => other
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(" "),
    };
    format!("{name} Hook")
}

/// The event a fixture stands for: the first `parts` dot-separated parts of its file stem.
fn event_of(v: &Vendor, stem: &str) -> String {
    stem.split('.').take(v.event_parts).collect::<Vec<_>>().join(".")
}

/// The body as the vendor would send it now. Linear puts the send time in the signed body and
/// hookwire refuses it a minute later, so a fixture gets a fresh `webhookTimestamp`.
fn fresh_body(v: &Vendor, body: &[u8]) -> Vec<u8> {
    if matches!(v.signing, Signing::MailgunBody) {
        return mailgun_signed(v.secret, body);
    }
    if v.name != "linear" {
        return body.to_vec();
    }
    let mut json: serde_json::Value = serde_json::from_slice(body).unwrap();
    let now_ms = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    json["webhookTimestamp"] = now_ms.into();
    serde_json::to_vec(&json).unwrap()
}

/// A Mailgun body whose `signature.signature` is the HMAC-SHA256 of its timestamp and token
/// under `key`, as Mailgun signs; the rest of the body is left as it is.
fn mailgun_signed(key: &str, body: &[u8]) -> Vec<u8> {
    use hmac::Mac as _;
    let mut json: serde_json::Value = serde_json::from_slice(body).unwrap();
    let sig = &json["signature"];
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(sig["timestamp"].as_str().unwrap().as_bytes());
    mac.update(sig["token"].as_str().unwrap().as_bytes());
    json["signature"]["signature"] = hex::encode(mac.finalize().into_bytes()).into();
    serde_json::to_vec_pretty(&json).unwrap()
}

/// Discord's signature headers: Ed25519 over the timestamp followed by the body.
fn discord_headers(body: &[u8]) -> Vec<(String, String)> {
    let seed: [u8; 32] = hex::decode(DISCORD_SEED).unwrap().try_into().unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let ts = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let mut signed = ts.as_bytes().to_vec();
    signed.extend_from_slice(body);
    vec![
        (
            "X-Signature-Ed25519".into(),
            hex::encode(key.sign(&signed).to_bytes()),
        ),
        ("X-Signature-Timestamp".into(), ts),
    ]
}

/// SendGrid's signature headers: ECDSA P-256 (SHA-256) over the timestamp and the body.
fn sendgrid_headers(body: &[u8]) -> Vec<(String, String)> {
    use base64::Engine as _;
    use p256::ecdsa::signature::Signer as _;
    let key = p256::ecdsa::SigningKey::from_slice(&hex::decode(SENDGRID_PRIVATE).unwrap()).unwrap();
    let ts = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let mut signed = ts.as_bytes().to_vec();
    signed.extend_from_slice(body);
    let sig: p256::ecdsa::Signature = key.sign(&signed);
    vec![
        (
            "X-Twilio-Email-Event-Webhook-Signature".into(),
            base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes()),
        ),
        ("X-Twilio-Email-Event-Webhook-Timestamp".into(), ts),
    ]
}

/// The headers the vendor would send with `body`: the adapter's naming headers, the signature
/// (or token) made by the same code as `hookwire send` (Discord's by its key pair), the content
/// type, and the vendor's own delivery headers the adapter does not name.
fn vendor_headers(
    v: &Vendor,
    adapter: &dyn Adapter,
    stem: &str,
    delivery: &str,
    url: &str,
    body: &[u8],
) -> Vec<(String, String)> {
    let event = event_of(v, stem);
    let mut headers = adapter.naming_headers(Some(&event), delivery);
    match v.signing {
        Signing::Adapter => {
            let out = Outgoing {
                body,
                method: "POST",
                url: v.signed_url.unwrap_or(url),
                id: delivery,
                now: SystemTime::now(),
            };
            headers.extend(
                adapter
                    .verifier()
                    .sign(&out, 0)
                    .unwrap_or_else(|e| panic!("{}: cannot sign: {e}", v.name)),
            );
        }
        Signing::DiscordEd25519 => headers.extend(discord_headers(body)),
        Signing::SendgridEcdsa => headers.extend(sendgrid_headers(body)),
        Signing::MailgunBody => {}
    }
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        let json = serde_json::from_slice::<serde_json::Value>(body).is_ok();
        let content_type = if json {
            "application/json"
        } else {
            "application/x-www-form-urlencoded"
        };
        headers.push(("Content-Type".into(), content_type.into()));
    }
    if v.name == "gitlab" {
        headers.push(("X-Gitlab-Event".into(), gitlab_event_header(body)));
        headers.push(("X-Gitlab-Event-UUID".into(), delivery.into()));
    }
    headers
}

#[test]
fn every_vendor_fixture_renders_to_its_golden_notification() {
    let dir = TempDir::new("golden-vendors");
    let names: Vec<&str> = VENDORS.iter().map(|v| v.name).collect();
    let mut cfg = format!("channel:\n  sources: [{}]\nsources:\n", names.join(", "));
    let env_names: Vec<String> = VENDORS
        .iter()
        .map(|v| format!("G_{}", v.name.to_uppercase().replace('-', "_")))
        .collect();
    for (v, env) in VENDORS.iter().zip(&env_names) {
        cfg += &format!(
            "  - name: {0}\n    type: {0}\n    secret_env: {env}\n{1}",
            v.name, v.extra
        );
    }
    let cfg = dir.write("config.yaml", &cfg);
    let env: Vec<(&str, &str)> = env_names
        .iter()
        .zip(VENDORS)
        .map(|(e, v)| (e.as_str(), v.secret))
        .collect();
    let mut hw = Hookwire::spawn(&cfg, &env);
    hw.handshake();
    let mut mismatches = Vec::new();

    for v in VENDORS {
        let adapter = adapter(v);
        let files = fixtures(common::root().join("tests/fixtures/payloads").join(v.name));
        assert!(!files.is_empty(), "expected fixtures for {}", v.name);
        let path = format!("/hooks/{}", v.name);
        let url = format!("http://{}{path}", hw.addr);
        for (stem, body) in &files {
            let delivery = format!("golden-{}-{stem}", v.name);
            let body = fresh_body(v, body);
            let headers = vendor_headers(v, adapter.as_ref(), stem, &delivery, &url, &body);
            let headers: Vec<(&str, &str)> = headers.iter().map(|(n, x)| (n.as_str(), x.as_str())).collect();
            let r = hw.post(&path, &headers, &body);
            // 202, or 200 with the body a vendor expects back (Slack commands and interactions).
            assert!(
                matches!(r.status, 200 | 202),
                "{}/{stem}: {} {}",
                v.name,
                r.status,
                r.body
            );
            let line = hw.next_line();
            let n: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(n["params"]["meta"]["source_name"], v.name, "{stem}: {line}");
            if v.delivery_from_header {
                assert_eq!(n["params"]["meta"]["delivery_id"], delivery.as_str(), "{stem}");
            }
            assert!(
                !hw.stderr_text().contains("template failed"),
                "{}/{stem}: a template failed:\n{}",
                v.name,
                hw.stderr_text()
            );
            check(v.name, stem, &line, &mut mismatches);
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} golden mismatch(es):\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
