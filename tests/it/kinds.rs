//! The verification kinds added for vendors without an HMAC header, end to end against a
//! running `hookwire channel`: a valid request is delivered, a forged, wrong-key or stale
//! one is answered 401 and never reaches the session (the next line the session reads is
//! the next valid event), and a misconfigured source is reported with file, line and field.
//!
//! - Basic auth (`type: basic`, and the `azure-devops` preset built on it): user and password
//!   both checked; refused at start-up unless served over TLS or `behind_tls: true`.
//! - ECDSA P-256 (`type: ecdsa-p256`, and the `sendgrid` preset): signed here with a fixed
//!   test key pair as SendGrid signs; another key, a stale or changed timestamp and a changed
//!   body are refused.
//! - The signature inside the body (`type: mailgun-signature`, and the `mailgun` preset): the
//!   HMAC of the body's timestamp and token; its token is the delivery id, so a body replayed
//!   with a captured signature is a repeat, never delivered twice.

use crate::common;

use std::process::Command;

use base64::Engine as _;
use common::{Hookwire, TempDir};

const PASSWORD: &str = "kinds-basic-password-0123456789";

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// `hookwire <args>`: success and everything it printed.
fn hookwire(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookwire"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run hookwire");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A request that must be refused: what it is, its headers and its body.
type Refused<'a> = (&'a str, Vec<(String, String)>, Vec<u8>);

/// Posts each refused request, then one valid one, and checks that the session's next line
/// is the valid one: nothing refused was stored or pushed.
fn refused_then_valid(
    hw: &mut Hookwire,
    path: &str,
    refused: &[Refused<'_>],
    valid: (Vec<(String, String)>, Vec<u8>, &str),
) {
    for (what, headers, body) in refused {
        let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let r = hw.post(path, &h, body);
        assert_eq!(r.status, 401, "{what}: {}", r.body);
    }
    let h: Vec<(&str, &str)> = valid.0.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let r = hw.post(path, &h, &valid.1);
    assert_eq!(r.status, 202, "valid: {}", r.body);
    let line = hw.next_line();
    assert!(
        line.contains(valid.2),
        "the next event is not the valid one: {line}"
    );
}

fn json_headers(auth: &str) -> Vec<(String, String)> {
    vec![
        ("Content-Type".into(), "application/json".into()),
        ("Authorization".into(), auth.into()),
    ]
}

#[test]
fn azure_devops_basic_auth_accepts_its_credentials_and_refuses_any_other() {
    let dir = TempDir::new("kinds-basic");
    let cfg = dir.write(
        "config.yaml",
        "channel:\n  sources: [azure-devops, declared]\nsources:\n  - name: azure-devops\n    type: azure-devops\n    secret_env: K_PASSWORD\n    behind_tls: true\n  - name: declared\n    type: basic\n    secret_env: K_PASSWORD\n    verify: {user: ci-bot, behind_tls: true}\n    event: {json: /kind}\n",
    );
    let mut hw = Hookwire::spawn(&cfg, &[("K_PASSWORD", PASSWORD)]);
    hw.handshake();
    let push = common::payload("azure-devops/git.push.json");
    let tampered = String::from_utf8(push.clone())
        .unwrap()
        .replace("8fda2152", "00000000")
        .into_bytes();
    refused_then_valid(
        &mut hw,
        "/hooks/azure-devops",
        &[
            (
                "no credentials",
                vec![("Content-Type".into(), "application/json".into())],
                push.clone(),
            ),
            (
                "wrong password",
                json_headers(&basic("azure-devops", "kinds-basic-password-0123456788")),
                push.clone(),
            ),
            (
                "wrong user",
                json_headers(&basic("someone-else", PASSWORD)),
                tampered.clone(),
            ),
            (
                "bearer instead of basic",
                json_headers(&format!("Bearer {PASSWORD}")),
                push.clone(),
            ),
            ("not base64", json_headers("Basic %%%"), push.clone()),
        ],
        (
            json_headers(&basic("azure-devops", PASSWORD)),
            push,
            "8fda2152-0de0-4031-9127-98a472f586e0",
        ),
    );
    refused_then_valid(
        &mut hw,
        "/hooks/declared",
        &[(
            "the preset's user",
            json_headers(&basic("azure-devops", PASSWORD)),
            br#"{"kind":"forged"}"#.to_vec(),
        )],
        (
            json_headers(&basic("ci-bot", PASSWORD)),
            br#"{"kind":"deploy"}"#.to_vec(),
            r#""event":"deploy""#,
        ),
    );
    assert!(!hw.stderr_text().contains(PASSWORD), "the password was logged");
}

#[test]
fn a_basic_auth_source_over_plain_http_is_refused_with_file_line_and_field() {
    let dir = TempDir::new("kinds-basic-tls");
    let cfg = dir.write(
        "config.yaml",
        "channel:
  sources: [azure-devops]
sources:
  - name: azure-devops
    type: azure-devops
    secret_env: K_PASSWORD
  - name: declared
    type: basic
    secret_env: K_PASSWORD
    verify: {user: \"a:b\", behind_tls: true}
    event: {value: e}
",
    );
    let (ok, out) = hookwire(
        &["check", "--config", cfg.to_str().unwrap()],
        &[("K_PASSWORD", PASSWORD)],
    );
    assert!(!ok, "{out}");
    let file = cfg.display().to_string();
    for want in [
        format!("{file}:5: sources[0].type: source `azure-devops` authenticates with Basic auth, whose password would cross plain HTTP"),
        "behind_tls: true".to_owned(),
        format!("{file}:10: sources[1].verify.user: basic source: `a:b` cannot be a Basic auth user name"),
    ] {
        assert!(out.contains(&want), "missing {want:?} in:\n{out}");
    }
    assert!(!out.contains(PASSWORD), "{out}");
}

#[test]
fn verify_explain_describes_basic_auth_without_the_password() {
    let dir = TempDir::new("kinds-basic-explain");
    let cfg = dir.write(
        "config.yaml",
        "channel:\n  sources: [azure-devops]\nsources:\n  - name: azure-devops\n    type: azure-devops\n    secret_env: K_PASSWORD\n    behind_tls: true\n",
    );
    let headers = dir.write(
        "headers.txt",
        &format!(
            "POST /hooks/azure-devops HTTP/1.1\nAuthorization: {}\n",
            basic("azure-devops", PASSWORD)
        ),
    );
    let body = dir.write("body.json", r#"{"id":"x","eventType":"git.push"}"#);
    let (ok, out) = hookwire(
        &[
            "verify",
            "explain",
            "--config",
            cfg.to_str().unwrap(),
            "azure-devops",
            "--headers",
            headers.to_str().unwrap(),
            "--body",
            body.to_str().unwrap(),
        ],
        &[("K_PASSWORD", PASSWORD)],
    );
    assert!(ok, "{out}");
    assert!(out.contains("scheme: basic"), "{out}");
    assert!(out.contains("user `azure-devops`"), "{out}");
    assert!(out.contains("verified by secret #1"), "{out}");
    assert!(!out.contains(PASSWORD), "{out}");
}

/// RFC 6979 A.2.5's P-256 private key, and its public key as SendGrid shows one (SPKI DER,
/// base64): the test signs as SendGrid would, the source holds the public half.
const P256_PRIVATE: &str = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";
const P256_PUBLIC: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYP7UuiVanTHJYet0xjVtaMBJuJI7Yfps5mliLmDyn7Z5A/4QCLi8maQa6elWKLxk8vGyDC1+n1F3o8KU1EYimQ==";
/// Another valid P-256 key pair's private half (the one that must not verify).
const P256_OTHER_PRIVATE: &str = "0f56db78ca460b055c500064824bed999a25aaf48ebb519ac201537b85479813";

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// SendGrid's headers: base64 DER ECDSA P-256 over `<timestamp><body>`.
fn sendgrid_headers(private: &str, ts: u64, body: &[u8]) -> Vec<(String, String)> {
    use p256::ecdsa::signature::Signer as _;
    let key = p256::ecdsa::SigningKey::from_slice(&hex::decode(private).unwrap()).unwrap();
    let mut signed = ts.to_string().into_bytes();
    signed.extend_from_slice(body);
    let sig: p256::ecdsa::Signature = key.sign(&signed);
    vec![
        ("Content-Type".into(), "application/json".into()),
        (
            "X-Twilio-Email-Event-Webhook-Signature".into(),
            base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes()),
        ),
        ("X-Twilio-Email-Event-Webhook-Timestamp".into(), ts.to_string()),
    ]
}

#[test]
fn sendgrid_ecdsa_accepts_its_key_and_refuses_forged_stale_and_tampered() {
    let dir = TempDir::new("kinds-ecdsa");
    let cfg = dir.write(
        "config.yaml",
        "channel:\n  sources: [sendgrid, declared]\nsources:\n  - name: sendgrid\n    type: sendgrid\n    secret_env: K_P256\n  - name: declared\n    type: ecdsa-p256\n    secret_env: K_P256\n    verify: {header: X-Sig, encoding: base64}\n    event: {json: /kind}\n",
    );
    let mut hw = Hookwire::spawn(&cfg, &[("K_P256", P256_PUBLIC)]);
    hw.handshake();
    let body = common::payload("sendgrid/events.json");
    let now = now_secs();
    let good = sendgrid_headers(P256_PRIVATE, now, &body);
    let mut swapped_ts = good.clone();
    swapped_ts[2].1 = (now - 1).to_string();
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("dropped", "deliver")
        .into_bytes();
    refused_then_valid(
        &mut hw,
        "/hooks/sendgrid",
        &[
            (
                "another key",
                sendgrid_headers(P256_OTHER_PRIVATE, now, &body),
                body.clone(),
            ),
            (
                "stale",
                sendgrid_headers(P256_PRIVATE, now - 600, &body),
                body.clone(),
            ),
            ("tampered body", good.clone(), tampered),
            ("timestamp changed", swapped_ts, body.clone()),
            (
                "no signature",
                vec![good[0].clone(), good[2].clone()],
                body.clone(),
            ),
        ],
        (good, body, "\"event\":\"events\""),
    );

    // The declared type: the raw body alone, no timestamp.
    let sign_body = |private: &str, body: &[u8]| {
        use p256::ecdsa::signature::Signer as _;
        let key = p256::ecdsa::SigningKey::from_slice(&hex::decode(private).unwrap()).unwrap();
        let sig: p256::ecdsa::Signature = key.sign(body);
        vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            (
                "X-Sig".to_owned(),
                base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes()),
            ),
        ]
    };
    let ok = br#"{"kind":"signed-by-p256"}"#.to_vec();
    refused_then_valid(
        &mut hw,
        "/hooks/declared",
        &[("another key", sign_body(P256_OTHER_PRIVATE, &ok), ok.clone())],
        (sign_body(P256_PRIVATE, &ok), ok, r#""event":"signed-by-p256""#),
    );
}

#[test]
fn a_bad_ecdsa_source_is_reported_with_line_and_field() {
    let dir = TempDir::new("kinds-ecdsa-errors");
    let cfg = dir.write(
        "config.yaml",
        "channel:
  sources: [a]
sources:
  - name: a
    type: ecdsa-p256
    secret_env: K_P256
    verify: {digest: sha256, header: X-Sig, encoding: base64}
    event: {value: e}
  - name: b
    type: sendgrid
    secret_env: K_NOT_A_KEY
",
    );
    let (ok, out) = hookwire(
        &["check", "--config", cfg.to_str().unwrap()],
        &[
            ("K_P256", P256_PUBLIC),
            ("K_NOT_A_KEY", "this-is-not-a-p256-public-key"),
        ],
    );
    assert!(!ok, "{out}");
    let file = cfg.display().to_string();
    for want in [
        format!("{file}:7: sources[0].verify.digest: ecdsa-p256 source: an ecdsa-p256 source always hashes with SHA-256"),
        format!("{file}:9: sources[1]: sendgrid source: secret 1 of the rotation set: not"),
    ] {
        assert!(out.contains(&want), "missing {want:?} in:\n{out}");
    }
    assert!(!out.contains("this-is-not-a-p256-public-key"), "{out}");
}

#[test]
fn verify_explain_describes_sendgrid_without_secrets() {
    let dir = TempDir::new("kinds-ecdsa-explain");
    let cfg = dir.write(
        "config.yaml",
        "channel:\n  sources: [sendgrid]\nsources:\n  - name: sendgrid\n    type: sendgrid\n    secret_env: K_P256\n",
    );
    let body = common::payload("sendgrid/events.json");
    let headers: String = sendgrid_headers(P256_PRIVATE, now_secs(), &body)
        .iter()
        .map(|(n, v)| format!("{n}: {v}\n"))
        .collect();
    let headers = dir.write(
        "headers.txt",
        &format!("POST /hooks/sendgrid HTTP/1.1\n{headers}"),
    );
    let body_file = dir.write("body.json", std::str::from_utf8(&body).unwrap());
    let (ok, out) = hookwire(
        &[
            "verify",
            "explain",
            "--config",
            cfg.to_str().unwrap(),
            "sendgrid",
            "--headers",
            headers.to_str().unwrap(),
            "--body",
            body_file.to_str().unwrap(),
        ],
        &[("K_P256", P256_PUBLIC)],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("scheme: ecdsa-p256 in header `x-twilio-email-event-webhook-signature`"),
        "{out}"
    );
    assert!(out.contains("verified by secret #1"), "{out}");
}

/// A Mailgun body signed with `key`: HMAC-SHA256 of `<timestamp><token>`, inside the body.
fn mailgun_body(key: &str, timestamp: &str, token: &str, event: &str) -> Vec<u8> {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    serde_json::json!({
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": {"event": event, "id": format!("evt-{token}"), "recipient": "alice@example.com"},
    })
    .to_string()
    .into_bytes()
}

const MAILGUN_KEY: &str = "kinds-mailgun-signing-key-0123";

#[test]
fn mailgun_signature_in_the_body_is_checked_and_its_token_used_once() {
    let dir = TempDir::new("kinds-mailgun");
    let cfg = dir.write(
        "config.yaml",
        "channel:\n  sources: [mailgun, windowed]\nsources:\n  - name: mailgun\n    type: mailgun\n    secret_env: K_MG\n  - name: windowed\n    type: mailgun-signature\n    secret_env: K_MG\n    verify: {tolerance_secs: 300}\n    event: {json: /event-data/event}\n    delivery: {json: /signature/token}\n",
    );
    let mut hw = Hookwire::spawn(&cfg, &[("K_MG", MAILGUN_KEY)]);
    hw.handshake();
    let json = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    let now = now_secs().to_string();
    let token = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0";
    let good = mailgun_body(MAILGUN_KEY, &now, token, "delivered");
    let tampered_token = String::from_utf8(good.clone())
        .unwrap()
        .replace(token, "b8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0")
        .into_bytes();
    refused_then_valid(
        &mut hw,
        "/hooks/mailgun",
        &[
            (
                "another key",
                json.clone(),
                mailgun_body("not-the-mailgun-key-0123456", &now, token, "delivered"),
            ),
            ("token changed", json.clone(), tampered_token),
            (
                "no signature",
                json.clone(),
                br#"{"event-data":{"event":"delivered"}}"#.to_vec(),
            ),
            ("not json", json.clone(), b"signature=1".to_vec()),
        ],
        (json.clone(), good.clone(), "evt-a8ce0edb"),
    );
    // The event data is not signed: a captured signature with another body is the same token,
    // a repeat, answered 202 and never delivered.
    let replayed = String::from_utf8(good.clone())
        .unwrap()
        .replace("delivered", "complained")
        .into_bytes();
    let h: Vec<(&str, &str)> = json.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(hw.post("/hooks/mailgun", &h, &replayed).status, 202);
    let stale = mailgun_body(MAILGUN_KEY, &(now_secs() - 600).to_string(), "f00d", "failed");
    let fresh = mailgun_body(MAILGUN_KEY, &now, "beef", "failed");
    refused_then_valid(
        &mut hw,
        "/hooks/windowed",
        &[("stale with a window", json.clone(), stale)],
        (json.clone(), fresh, r#""delivery_id":"beef""#),
    );
    // The replayed body never reached the session: the line after the first delivery was
    // the windowed source's.
}

#[test]
fn verify_explain_describes_mailgun_without_the_key() {
    let dir = TempDir::new("kinds-mailgun-explain");
    let cfg = dir.write(
        "config.yaml",
        "channel:\n  sources: [mailgun]\nsources:\n  - name: mailgun\n    type: mailgun\n    secret_env: K_MG\n",
    );
    let headers = dir.write(
        "headers.txt",
        "POST /hooks/mailgun HTTP/1.1\nContent-Type: application/json\n",
    );
    let body = mailgun_body(MAILGUN_KEY, "1529006854", "a8ce0edb", "delivered");
    let body_file = dir.write("body.json", std::str::from_utf8(&body).unwrap());
    let (ok, out) = hookwire(
        &[
            "verify",
            "explain",
            "--config",
            cfg.to_str().unwrap(),
            "mailgun",
            "--headers",
            headers.to_str().unwrap(),
            "--body",
            body_file.to_str().unwrap(),
        ],
        &[("K_MG", MAILGUN_KEY)],
    );
    assert!(ok, "{out}");
    assert!(out.contains("scheme: mailgun"), "{out}");
    assert!(out.contains("the event data is not signed"), "{out}");
    assert!(out.contains("verified by secret #1"), "{out}");
    assert!(!out.contains(MAILGUN_KEY), "{out}");
}
