//! The two kinds whose keys the vendor publishes, end to end and without outside network:
//! AWS SNS (`aws-sns`: RSA over the canonical string, certificate at `SigningCertURL`) and
//! Google Cloud Pub/Sub push (`google-pubsub`: an RS256 OIDC token, keys from Google's JWKS).
//!
//! A local HTTPS server plays `sns.us-west-2.amazonaws.com` and `www.googleapis.com`:
//! hookwire's `fetch:` section sends those hosts' connections to it (`resolve`) and trusts its
//! CA (`ca_file`), while the URLs, the TLS names and every host check stay AWS's and Google's.
//! The server counts connections and requests, so a test can say what was (not) fetched.
//!
//! Keys are made per run with the `openssl` CLI, which also signs (an implementation
//! independent of the verifier's ring): SHA1withRSA and SHA256withRSA over the canonical
//! strings as AWS builds them, RS256 over `header.claims` as Google does. The last test puts
//! the same inputs to the vendors' own libraries (npm `sns-validator`, `google-auth-library`,
//! through `tests/node/cloud_verify.mjs`) and expects their verdicts.

use crate::common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::{Hookwire, TempDir};
use serde_json::{json, Value};

const TOPIC: &str = "arn:aws:sns:us-west-2:123456789012:MyTopic";
const CERT_PATH: &str = "/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem";
const FOREIGN: &str = "sns.us-west-2.amazonaws.com.evil.example";
const AUDIENCE: &str = "https://hooks.example.com/pubsub";
const ACCOUNT: &str = "pusher@my-project.iam.gserviceaccount.com";

fn openssl(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the openssl CLI (these tests make their RSA keys with it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.unwrap_or_default())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// An RSA key pair in `dir`, as openssl writes it.
struct RsaKey(PathBuf);

impl RsaKey {
    fn new(dir: &TempDir, name: &str) -> RsaKey {
        let path = dir.0.join(name);
        openssl(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                path.to_str().unwrap(),
            ],
            None,
        );
        RsaKey(path)
    }

    /// PKCS#1 v1.5 signature of `message` with `digest` (`-sha1`, `-sha256`).
    fn sign(&self, digest: &str, message: &[u8]) -> Vec<u8> {
        openssl(
            &["dgst", digest, "-sign", self.0.to_str().unwrap()],
            Some(message),
        )
    }

    /// A self-signed certificate for the key, PEM (AWS's validators use only its key).
    fn certificate(&self) -> Vec<u8> {
        openssl(
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                self.0.to_str().unwrap(),
                "-subj",
                "/CN=sns.amazonaws.com",
                "-days",
                "2",
            ],
            None,
        )
    }

    /// The public key as a JWK with `kid`.
    fn jwk(&self, kid: &str) -> Value {
        let text = String::from_utf8(openssl(
            &["rsa", "-in", self.0.to_str().unwrap(), "-noout", "-modulus"],
            None,
        ))
        .unwrap();
        let hex_n = text.trim().strip_prefix("Modulus=").unwrap();
        let n = hex::decode(hex_n).unwrap();
        json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": b64url(&n), "e": "AQAB"})
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// What the local server saw: connections accepted, and `(host, path)` of each request.
#[derive(Default)]
struct Seen {
    connections: usize,
    requests: Vec<(String, String)>,
}

/// The local HTTPS server standing in for AWS and Google.
struct KeyServer {
    port: u16,
    ca: PathBuf,
    seen: Arc<Mutex<Seen>>,
    /// path (without query) → body
    routes: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
}

impl KeyServer {
    fn start(dir: &TempDir) -> KeyServer {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "hookwire test CA (cloud kinds)");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        // The foreign host too: were it ever fetched, TLS would succeed and the request be seen.
        let leaf = CertificateParams::new(vec![
            "sns.us-west-2.amazonaws.com".to_string(),
            "www.googleapis.com".to_string(),
            FOREIGN.to_string(),
        ])
        .unwrap();
        let leaf_cert = leaf
            .signed_by(&leaf_key, &rcgen::Issuer::new(ca, ca_key))
            .unwrap();
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![leaf_cert.der().clone()],
                    rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
                )
                .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let routes: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
        let (s, r) = (seen.clone(), routes.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                s.lock().unwrap().connections += 1;
                let (s, r, config) = (s.clone(), r.clone(), config.clone());
                std::thread::spawn(move || serve(stream, config, &s, &r));
            }
        });
        KeyServer {
            port,
            ca: dir.write("key-server-ca.pem", &ca_cert.pem()),
            seen,
            routes,
        }
    }

    fn route(&self, path: &str, body: &[u8]) {
        self.routes.lock().unwrap().insert(path.into(), body.to_vec());
    }

    fn connections(&self) -> usize {
        self.seen.lock().unwrap().connections
    }

    /// How many requests had a path starting with `prefix`.
    fn requests(&self, prefix: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|(_, p)| p.starts_with(prefix))
            .count()
    }

    fn hosts(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .requests
            .iter()
            .map(|(h, _)| h.clone())
            .collect()
    }

    /// The `fetch:` section pointing AWS's and Google's hosts (and the foreign one) here.
    fn fetch_section(&self) -> String {
        let addr = format!("127.0.0.1:{}", self.port);
        format!(
            "fetch:\n  ca_file: {}\n  resolve:\n    sns.us-west-2.amazonaws.com: {addr}\n    www.googleapis.com: {addr}\n    {FOREIGN}: {addr}\n",
            self.ca.display()
        )
    }
}

fn serve(
    stream: std::net::TcpStream,
    config: Arc<rustls::ServerConfig>,
    seen: &Mutex<Seen>,
    routes: &Mutex<BTreeMap<String, Vec<u8>>>,
) {
    let conn = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, stream);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tls.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
    let host = head
        .lines()
        .find_map(|l| l.strip_prefix("Host: ").or_else(|| l.strip_prefix("host: ")))
        .unwrap_or("")
        .to_owned();
    seen.lock().unwrap().requests.push((host, target.clone()));
    let path = target.split('?').next().unwrap_or("");
    let body = routes.lock().unwrap().get(path).cloned();
    let (status, body) = match body {
        Some(b) => ("200 OK", b),
        None => ("404 Not Found", b"not found".to_vec()),
    };
    let _ = write!(
        tls,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = tls.write_all(&body);
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

fn now_rfc3339(offset_secs: i64) -> String {
    let t = if offset_secs >= 0 {
        SystemTime::now() + Duration::from_secs(offset_secs as u64)
    } else {
        SystemTime::now() - Duration::from_secs(offset_secs.unsigned_abs())
    };
    humantime::format_rfc3339_millis(t).to_string()
}

/// AWS's example message `fixture` with a fresh `Timestamp`, the given id, signed with `key`
/// as AWS signs (`version` 1: SHA1withRSA, 2: SHA256withRSA).
fn sns_message(fixture: &str, id: &str, key: &RsaKey, version: u8, edit: impl Fn(&mut Value)) -> Value {
    let mut m: Value = serde_json::from_slice(&common::payload(&format!("aws-sns/{fixture}.json"))).unwrap();
    m["MessageId"] = json!(id);
    m["Timestamp"] = json!(now_rfc3339(0));
    m["SignatureVersion"] = json!(version.to_string());
    edit(&mut m);
    let fields: &[&str] = if m["Type"] == "Notification" {
        &["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let mut canonical = String::new();
    for f in fields {
        if let Some(v) = m[f].as_str() {
            canonical.push_str(&format!("{f}\n{v}\n"));
        }
    }
    let digest = if version == 1 { "-sha1" } else { "-sha256" };
    m["Signature"] = json!(b64(&key.sign(digest, canonical.as_bytes())));
    m
}

fn post_sns(hw: &Hookwire, path: &str, m: &Value) -> u16 {
    let kind = m["Type"].as_str().unwrap().to_owned();
    let topic = m["TopicArn"].as_str().unwrap().to_owned();
    hw.post(
        path,
        &[
            ("x-amz-sns-message-type", &kind),
            ("x-amz-sns-topic-arn", &topic),
            ("Content-Type", "text/plain; charset=UTF-8"),
        ],
        m.to_string().as_bytes(),
    )
    .status
}

fn sns_config(dir: &TempDir, server: &KeyServer) -> PathBuf {
    dir.write(
        "config.yaml",
        &format!(
            "{}channel:\n  sources: [sns, sns-confirm]\nsources:\n  - name: sns\n    type: aws-sns\n    topics: [{TOPIC}]\n  - name: sns-confirm\n    type: aws-sns\n    topics: [{TOPIC}]\n    confirm_subscription: true\n",
            server.fetch_section()
        ),
    )
}

#[test]
fn sns_messages_verify_with_the_fetched_certificate_render_and_dedup() {
    let dir = TempDir::new("sns-ok");
    let server = KeyServer::start(&dir);
    let key = RsaKey::new(&dir, "sns.pem");
    server.route(CERT_PATH, &key.certificate());
    let mut hw = Hookwire::spawn(&sns_config(&dir, &server), &[]);
    hw.handshake();

    let v1 = sns_message(
        "Notification",
        "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        &key,
        1,
        |_| {},
    );
    assert_eq!(post_sns(&hw, "/hooks/sns", &v1), 202);
    let n = hw.next_notification();
    let content = n["params"]["content"].as_str().unwrap();
    assert!(
        content.contains("AWS SNS notification on arn:aws:sns:us-west-2:123456789012:MyTopic"),
        "{content}"
    );
    assert!(
        content.contains("Hello world!") && content.contains("My First Message"),
        "{content}"
    );
    assert_eq!(common::delivery_id(&n), "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324");
    assert_eq!(n["params"]["meta"]["topic"], TOPIC, "{n}");

    // SNS's retry of the same message: accepted, not delivered again.
    assert_eq!(post_sns(&hw, "/hooks/sns", &v1), 202);
    // SignatureVersion 2, without a Subject (so none in the signed string).
    let v2 = sns_message("Notification", "second-message", &key, 2, |m| {
        m.as_object_mut().unwrap().remove("Subject");
    });
    assert_eq!(post_sns(&hw, "/hooks/sns", &v2), 202);
    assert_eq!(hw.next_delivery_id(), "second-message");
    // One certificate URL, fetched once.
    assert_eq!(server.requests(CERT_PATH), 1);

    let unsub = sns_message("UnsubscribeConfirmation", "unsub-1", &key, 2, |_| {});
    assert_eq!(post_sns(&hw, "/hooks/sns", &unsub), 202);
    let n = hw.next_notification();
    assert!(
        n["params"]["content"].as_str().unwrap().contains("UNSUBSCRIBED"),
        "{n}"
    );
    assert_eq!(
        server.requests("/?Action"),
        0,
        "an unsubscribe confirmation is never acted on"
    );
}

#[test]
fn sns_forged_tampered_stale_wrong_key_and_foreign_messages_are_refused() {
    let dir = TempDir::new("sns-bad");
    let server = KeyServer::start(&dir);
    let key = RsaKey::new(&dir, "sns.pem");
    let other = RsaKey::new(&dir, "other.pem");
    server.route(CERT_PATH, &key.certificate());
    let hw = Hookwire::spawn(&sns_config(&dir, &server), &[]);

    let good = sns_message("Notification", "m-good", &key, 1, |_| {});
    let mut tampered = good.clone();
    tampered["Message"] = json!("Hello world?");
    assert_eq!(post_sns(&hw, "/hooks/sns", &tampered), 401, "tampered");
    let mut forged = good.clone();
    forged["Signature"] = json!(b64(&[7u8; 256]));
    assert_eq!(post_sns(&hw, "/hooks/sns", &forged), 401, "forged");
    let wrong_key = sns_message("Notification", "m-wrong-key", &other, 1, |_| {});
    assert_eq!(post_sns(&hw, "/hooks/sns", &wrong_key), 401, "wrong key");
    let stale = sns_message("Notification", "m-stale", &key, 1, |m| {
        m["Timestamp"] = json!(now_rfc3339(-2 * 3600));
    });
    assert_eq!(post_sns(&hw, "/hooks/sns", &stale), 401, "stale");
    // Version 1 signed, claiming version 2: the hash differs.
    let mut relabelled = good.clone();
    relabelled["SignatureVersion"] = json!("2");
    assert_eq!(
        post_sns(&hw, "/hooks/sns", &relabelled),
        401,
        "version relabelled"
    );
    // A topic the source does not list, correctly signed: refused from its headers.
    let foreign_topic = sns_message("Notification", "m-topic", &key, 1, |m| {
        m["TopicArn"] = json!("arn:aws:sns:us-west-2:999999999999:Other");
    });
    assert_eq!(post_sns(&hw, "/hooks/sns", &foreign_topic), 401, "topic");
    assert_eq!(server.requests(CERT_PATH), 1, "the certificate was fetched once");

    // A certificate URL on a foreign host: refused, and no connection is ever made to it.
    let before = server.connections();
    for url in [
        format!("https://{FOREIGN}{CERT_PATH}"),
        format!("https://sns.us-east-1.amazonaws.com{CERT_PATH}"), // not the topic's region
        format!("http://sns.us-west-2.amazonaws.com{CERT_PATH}"),
        "https://sns.us-west-2.amazonaws.com/other.pem".to_string(),
    ] {
        let m = sns_message("Notification", "m-foreign", &key, 1, |m| {
            m["SigningCertURL"] = json!(url)
        });
        assert_eq!(post_sns(&hw, "/hooks/sns", &m), 401, "{url}");
    }
    assert_eq!(
        server.connections(),
        before,
        "a refused certificate URL must never be fetched"
    );
    assert!(
        !server.hosts().iter().any(|h| h.contains("evil")),
        "{:?}",
        server.hosts()
    );

    // An AWS certificate URL that cannot be fetched: nothing was judged, so 503 for SNS to
    // retry (it retries only 5xx); the failure is remembered, not fetched again at once.
    let missing = "/SimpleNotificationService-0123456789abcdef.pem";
    for id in ["m-missing-1", "m-missing-2"] {
        let m = sns_message("Notification", id, &key, 1, |m| {
            m["SigningCertURL"] = json!(format!("https://sns.us-west-2.amazonaws.com{missing}"))
        });
        assert_eq!(post_sns(&hw, "/hooks/sns", &m), 503, "{id}");
    }
    assert_eq!(
        server.requests(missing),
        1,
        "a failed fetch is not retried at once"
    );

    // The good one still verifies after all that.
    assert_eq!(post_sns(&hw, "/hooks/sns", &good), 202);
}

#[test]
fn sns_subscription_confirmation_is_confirmed_only_when_the_source_opts_in() {
    let dir = TempDir::new("sns-confirm");
    let server = KeyServer::start(&dir);
    let key = RsaKey::new(&dir, "sns.pem");
    server.route(CERT_PATH, &key.certificate());
    server.route("/", b"<ConfirmSubscriptionResponse/>");
    let mut hw = Hookwire::spawn(&sns_config(&dir, &server), &[]);
    hw.handshake();

    let ask = sns_message("SubscriptionConfirmation", "confirm-1", &key, 1, |_| {});
    assert_eq!(post_sns(&hw, "/hooks/sns", &ask), 202);
    let n = hw.next_notification();
    let content = n["params"]["content"].as_str().unwrap();
    assert!(
        content.contains("asks to confirm") && content.contains("Action=ConfirmSubscription"),
        "{content}"
    );
    assert_eq!(
        server.requests("/?Action=ConfirmSubscription"),
        0,
        "opted out: never confirmed"
    );

    let ask = sns_message("SubscriptionConfirmation", "confirm-2", &key, 1, |_| {});
    assert_eq!(post_sns(&hw, "/hooks/sns-confirm", &ask), 202);
    hw.next_notification();
    assert_eq!(
        server.requests("/?Action=ConfirmSubscription"),
        1,
        "opted in: confirmed once"
    );
    hw.wait_stderr("SNS subscription confirmed");
}

#[test]
fn hookwire_check_accepts_sns_and_pubsub_sources_without_a_secret_and_refuses_one_with() {
    let dir = TempDir::new("cloud-check");
    let cfg = dir.write(
        "config.yaml",
        &format!(
            "sources:\n  - name: sns\n    type: aws-sns\n    topics: [{TOPIC}]\n  - name: pubsub\n    type: google-pubsub\n    audience: {AUDIENCE}\n    service_account: {ACCOUNT}\n"
        ),
    );
    let out = Command::new(common::bin())
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg = dir.write(
        "bad.yaml",
        &format!("sources:\n  - name: sns\n    type: aws-sns\n    topics: [{TOPIC}]\n    secret_env: X\n  - name: pubsub\n    type: google-pubsub\n    audience: {AUDIENCE}\n"),
    );
    let out = Command::new(common::bin())
        .args(["check", "--config"])
        .arg(&cfg)
        .env("X", "0123456789abcdef0123")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("takes no secret"), "{text}");
    assert!(text.contains("audience") && text.contains("email"), "{text}");
}

/// A Pub/Sub push token as Google makes it, signed by `key` under `kid`.
fn token(key: &RsaKey, kid: &str, edit: impl Fn(&mut Value)) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut claims = json!({
        "aud": AUDIENCE,
        "azp": "113774264463038321964",
        "email": ACCOUNT,
        "email_verified": true,
        "exp": now + 3600,
        "iat": now,
        "iss": "https://accounts.google.com",
        "sub": "113774264463038321964"
    });
    edit(&mut claims);
    let header = json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
    let signed = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = key.sign("-sha256", signed.as_bytes());
    format!("{signed}.{}", b64url(&sig))
}

fn push(hw: &Hookwire, token: &str, id: &str) -> u16 {
    let mut body: Value = serde_json::from_slice(&common::payload("google-pubsub/message.json")).unwrap();
    body["message"]["messageId"] = json!(id);
    body["message"]["message_id"] = json!(id);
    hw.post(
        "/hooks/pubsub",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
    .status
}

fn pubsub_config(dir: &TempDir, server: &KeyServer) -> PathBuf {
    dir.write(
        "config.yaml",
        &format!(
            "{}channel:\n  sources: [pubsub]\nsources:\n  - name: pubsub\n    type: google-pubsub\n    audience: {AUDIENCE}\n    service_account: {ACCOUNT}\n",
            server.fetch_section()
        ),
    )
}

const JWKS_PATH: &str = "/oauth2/v3/certs";

fn jwks(keys: &[Value]) -> Vec<u8> {
    json!({ "keys": keys }).to_string().into_bytes()
}

#[test]
fn pubsub_push_tokens_verify_against_the_jwks_and_every_claim_is_checked() {
    let dir = TempDir::new("pubsub");
    let server = KeyServer::start(&dir);
    let key = RsaKey::new(&dir, "google.pem");
    let other = RsaKey::new(&dir, "other.pem");
    server.route(JWKS_PATH, &jwks(&[key.jwk("k1")]));
    let mut hw = Hookwire::spawn(&pubsub_config(&dir, &server), &[]);
    hw.handshake();

    assert_eq!(push(&hw, &token(&key, "k1", |_| {}), "2070443601311540"), 202);
    let n = hw.next_notification();
    let content = n["params"]["content"].as_str().unwrap();
    assert!(
        content.contains("Hello Cloud Pub/Sub! Here is my message!"),
        "{content}"
    );
    assert!(
        content.contains("projects/myproject/subscriptions/mysubscription"),
        "{content}"
    );
    assert_eq!(common::delivery_id(&n), "2070443601311540");
    // Pub/Sub reuses a token: the same token on another message is another event.
    let t = token(&key, "k1", |_| {});
    assert_eq!(push(&hw, &t, "m-2"), 202);
    assert_eq!(push(&hw, &t, "m-3"), 202);
    assert_eq!(hw.next_delivery_id(), "m-2");
    assert_eq!(hw.next_delivery_id(), "m-3");

    for (what, bad) in [
        (
            "expired",
            token(&key, "k1", |c| {
                c["exp"] = json!(c["iat"].as_u64().unwrap() - 600);
                c["iat"] = json!(c["iat"].as_u64().unwrap() - 4200);
            }),
        ),
        (
            "issued in the future",
            token(&key, "k1", |c| c["iat"] = json!(c["iat"].as_u64().unwrap() + 600)),
        ),
        (
            "another audience",
            token(&key, "k1", |c| c["aud"] = json!("https://other.example.com/")),
        ),
        (
            "another account",
            token(&key, "k1", |c| {
                c["email"] = json!("someone@else.iam.gserviceaccount.com")
            }),
        ),
        (
            "email not verified",
            token(&key, "k1", |c| c["email_verified"] = json!(false)),
        ),
        (
            "another issuer",
            token(&key, "k1", |c| c["iss"] = json!("https://evil.example.com")),
        ),
        ("wrong key under the right kid", token(&other, "k1", |_| {})),
    ] {
        assert_eq!(push(&hw, &bad, "m-bad"), 401, "{what}");
    }
    let good = token(&key, "k1", |_| {});
    let (h, rest) = good.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let tampered = format!("{h}.{}.{sig}", b64url(json!({"aud": AUDIENCE, "email": ACCOUNT, "email_verified": true, "iss": "https://accounts.google.com", "exp": 9_999_999_999u64, "iat": 0}).to_string().as_bytes()));
    assert_eq!(push(&hw, &tampered, "m-tampered"), 401, "tampered claims");
    assert_eq!(push(&hw, "not-a-jwt", "m-garbage"), 401);
    assert_eq!(server.requests(JWKS_PATH), 1, "one JWKS fetch so far");
}

#[test]
fn an_unknown_kid_refetches_the_jwks_once_and_forged_kids_do_not_refetch_again() {
    let dir = TempDir::new("pubsub-kid");
    let server = KeyServer::start(&dir);
    let old = RsaKey::new(&dir, "old.pem");
    let new = RsaKey::new(&dir, "new.pem");
    server.route(JWKS_PATH, &jwks(&[old.jwk("old")]));
    let mut hw = Hookwire::spawn(&pubsub_config(&dir, &server), &[]);
    hw.handshake();

    assert_eq!(push(&hw, &token(&old, "old", |_| {}), "k-1"), 202);
    assert_eq!(server.requests(JWKS_PATH), 1);
    // Google rotates: the new key is published, and a token signed with it arrives.
    server.route(JWKS_PATH, &jwks(&[old.jwk("old"), new.jwk("new")]));
    assert_eq!(push(&hw, &token(&new, "new", |_| {}), "k-2"), 202);
    assert_eq!(
        server.requests(JWKS_PATH),
        2,
        "the unknown kid fetched the JWKS exactly once"
    );
    assert_eq!(hw.next_delivery_id(), "k-1");
    assert_eq!(hw.next_delivery_id(), "k-2");
    // Forged kids, one after another: refused, and no more fetches within the interval.
    for kid in ["forged-1", "forged-2", "forged-3"] {
        assert_eq!(push(&hw, &token(&new, kid, |_| {}), "k-forged"), 401, "{kid}");
    }
    assert_eq!(
        server.requests(JWKS_PATH),
        2,
        "forged kids must not make every request a fetch"
    );
}

#[test]
fn verify_explain_describes_both_kinds_and_never_confirms() {
    let dir = TempDir::new("cloud-explain");
    let server = KeyServer::start(&dir);
    let key = RsaKey::new(&dir, "sns.pem");
    server.route(CERT_PATH, &key.certificate());
    let cfg = sns_config(&dir, &server);
    let ask = sns_message("SubscriptionConfirmation", "explain-1", &key, 2, |_| {});
    let headers = dir.write(
        "headers.txt",
        &format!("POST /hooks/sns-confirm HTTP/1.1\nx-amz-sns-message-type: SubscriptionConfirmation\nx-amz-sns-topic-arn: {TOPIC}\n"),
    );
    let body = dir.write("body.json", &ask.to_string());
    let out = explain(&cfg, "sns-confirm", &headers, &body);
    assert!(
        out.contains("aws-sns-signature") && out.contains("SubscribeURL, Timestamp, Token"),
        "{out}"
    );
    assert!(
        out.contains("verdict: verified with the vendor's published key"),
        "{out}"
    );
    assert_eq!(
        server.requests("/?Action"),
        0,
        "explaining a confirmation must not confirm it"
    );

    let m = sns_message("Notification", "explain-2", &key, 2, |m| {
        m["SigningCertURL"] = json!(format!("https://{FOREIGN}{CERT_PATH}"))
    });
    std::fs::write(&body, m.to_string()).unwrap();
    let out = explain(&cfg, "sns", &headers, &body);
    assert!(
        out.contains("refused, never fetched") && out.contains("NOT verified"),
        "{out}"
    );

    let g = RsaKey::new(&dir, "google.pem");
    server.route(JWKS_PATH, &jwks(&[g.jwk("k1")]));
    let cfg = pubsub_config(&dir, &server);
    let headers = dir.write(
        "push-headers.txt",
        &format!(
            "POST /hooks/pubsub HTTP/1.1\nAuthorization: Bearer {}\n",
            token(&g, "k1", |c| c["aud"] = json!("https://wrong.example.com/"))
        ),
    );
    std::fs::write(&body, common::payload("google-pubsub/message.json")).unwrap();
    let out = explain(&cfg, "pubsub", &headers, &body);
    assert!(
        out.contains("oidc-token") && out.contains("https://wrong.example.com/"),
        "{out}"
    );
    assert!(out.contains("NOT verified") && out.contains("audience"), "{out}");
}

fn explain(cfg: &Path, source: &str, headers: &Path, body: &Path) -> String {
    let out = Command::new(common::bin())
        .args(["verify", "explain", "--config"])
        .arg(cfg)
        .arg(source)
        .arg("--headers")
        .arg(headers)
        .arg("--body")
        .arg(body)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The verdict of the vendor's own library on the same input (`tests/node/cloud_verify.mjs`):
/// true for `valid`.
fn vendor_says_valid(args: &[&str]) -> bool {
    let node = common::root().join("tests/node");
    for pkg in ["sns-validator", "google-auth-library"] {
        assert!(
            node.join("node_modules").join(pkg).join("package.json").is_file(),
            "npm package {pkg} is not installed: run `.ci/run`, or `npm ci --prefix tests/node`"
        );
    }
    let out = Command::new("node")
        .arg(node.join("cloud_verify.mjs"))
        .args(args)
        .output()
        .expect("node");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && (text == "valid" || text.starts_with("invalid")),
        "cloud_verify.mjs {args:?}: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text == "valid"
}

#[test]
fn aws_and_google_libraries_reach_the_same_verdicts_as_hookwire() {
    let dir = TempDir::new("cloud-vendor-libs");
    let server = KeyServer::start(&dir);
    let key = RsaKey::new(&dir, "sns.pem");
    let other = RsaKey::new(&dir, "other.pem");
    let cert = dir.write("sns-cert.pem", &String::from_utf8(key.certificate()).unwrap());
    server.route(CERT_PATH, &std::fs::read(&cert).unwrap());
    server.route(JWKS_PATH, &jwks(&[key.jwk("k1")]));
    let cfg = dir.write(
        "config.yaml",
        &format!(
            "{}channel:\n  sources: [sns, pubsub]\nsources:\n  - name: sns\n    type: aws-sns\n    topics: [{TOPIC}]\n  - name: pubsub\n    type: google-pubsub\n    audience: {AUDIENCE}\n    service_account: {ACCOUNT}\n",
            server.fetch_section()
        ),
    );
    let hw = Hookwire::spawn(&cfg, &[]);
    let file = dir.0.join("input");
    let cert_arg = cert.to_str().unwrap();

    let mut tampered = sns_message("Notification", "lib-3", &key, 1, |_| {});
    tampered["Message"] = json!("Hello world?");
    let sns_cases = [
        ("v1", sns_message("Notification", "lib-1", &key, 1, |_| {})),
        (
            "v2 without Subject",
            sns_message("Notification", "lib-2", &key, 2, |m| {
                m.as_object_mut().unwrap().remove("Subject");
            }),
        ),
        ("tampered", tampered),
        (
            "wrong key",
            sns_message("Notification", "lib-4", &other, 2, |_| {}),
        ),
        (
            "subscription confirmation",
            sns_message("SubscriptionConfirmation", "lib-5", &key, 1, |_| {}),
        ),
    ];
    for (what, m) in &sns_cases {
        std::fs::write(&file, m.to_string()).unwrap();
        let theirs = vendor_says_valid(&["sns", file.to_str().unwrap(), cert_arg]);
        let ours = post_sns(&hw, "/hooks/sns", m) == 202;
        assert_eq!(ours, theirs, "{what}: hookwire {ours}, sns-validator {theirs}");
    }
    assert!(
        vendor_says_valid(&["sns", file.to_str().unwrap(), cert_arg]),
        "the confirmation is valid"
    );
    // sns-validator 0.3.5 signs an UnsubscribeConfirmation with the notification keys (no
    // Token), against AWS's documentation and AWS's PHP and Java validators, which hookwire
    // follows: the one place the two disagree.
    let unsub = sns_message("UnsubscribeConfirmation", "lib-6", &key, 1, |_| {});
    std::fs::write(&file, unsub.to_string()).unwrap();
    assert!(!vendor_says_valid(&["sns", file.to_str().unwrap(), cert_arg]));
    assert_eq!(post_sns(&hw, "/hooks/sns", &unsub), 202);

    let good = token(&key, "k1", |_| {});
    let (h, rest) = good.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let forged_claims = b64url(json!({"aud": AUDIENCE, "email": ACCOUNT, "email_verified": true, "iss": "https://accounts.google.com", "exp": 9_999_999_999u64, "iat": 0}).to_string().as_bytes());
    let token_cases = [
        ("valid", good.clone()),
        (
            "another audience",
            token(&key, "k1", |c| c["aud"] = json!("https://other.example.com/")),
        ),
        (
            "another issuer",
            token(&key, "k1", |c| c["iss"] = json!("https://evil.example.com")),
        ),
        (
            "expired",
            token(&key, "k1", |c| {
                c["exp"] = json!(c["iat"].as_u64().unwrap() - 600);
                c["iat"] = json!(c["iat"].as_u64().unwrap() - 4200);
            }),
        ),
        ("wrong key", token(&other, "k1", |_| {})),
        ("tampered claims", format!("{h}.{forged_claims}.{sig}")),
    ];
    for (i, (what, t)) in token_cases.iter().enumerate() {
        std::fs::write(&file, t).unwrap();
        let theirs = vendor_says_valid(&["google", file.to_str().unwrap(), cert_arg, "k1", AUDIENCE]);
        let ours = push(&hw, t, &format!("lib-token-{i}")) == 202;
        assert_eq!(
            ours, theirs,
            "{what}: hookwire {ours}, google-auth-library {theirs}"
        );
    }
}
