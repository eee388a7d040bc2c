//! Black-box tests of what keeps forged, replayed and unwanted requests out of a session:
//! delivery-id dedup, signed-timestamp windows (in a header, and Linear's inside the body),
//! unknown paths, network allowlists behind a proxy, and vendor handshakes that are answered
//! but never delivered.

use crate::common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{Hookwire, TempDir};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

const GH: &str = "protect-github-secret";
const SLACK: &str = "protect-slack-signing-secret";
const LINEAR: &str = "protect-linear-signing-secret";
/// RFC 8032 TEST 1: the public key is the source's secret; the seed signs like Discord.
const DISCORD_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const DISCORD_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

fn start() -> (TempDir, Hookwire) {
    let dir = TempDir::new("protection");
    let cfg = dir.write(
        "config.yaml",
        "channel:
  sources: [github, slack, fenced, discord, linear]
trusted_proxies: [127.0.0.1/32]
sources:
  - name: github
    type: github
    secret_env: P_GH
  - name: slack
    type: slack
    secret_env: P_SLACK
  - name: fenced
    type: github
    secret_env: P_GH
    allow_from: [192.0.2.0/24, 2001:db8::/32]
  - name: discord
    type: discord
    secret_env: P_DISCORD
  - name: linear
    type: linear
    secret_env: P_LINEAR
",
    );
    let mut hw = Hookwire::spawn(
        &cfg,
        &[
            ("P_GH", GH),
            ("P_SLACK", SLACK),
            ("P_DISCORD", DISCORD_PUBLIC),
            ("P_LINEAR", LINEAR),
        ],
    );
    hw.handshake();
    (dir, hw)
}

fn issue(marker: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "action": "opened",
        "issue": {"number": 7, "title": marker, "html_url": "https://github.com/o/r/issues/7", "user": {"login": "u"}},
        "repository": {"full_name": "o/r"}, "sender": {"login": "u"}
    }))
    .unwrap()
}

/// Posts a fresh delivery and asserts it is the next notification: nothing refused or
/// deduplicated before it slipped into the session.
fn next_is(hw: &mut Hookwire, delivery: &str) {
    assert_eq!(
        hw.post_github("/hooks/github", GH, "issues", delivery, &issue(delivery))
            .status,
        202
    );
    let n = hw.next_notification();
    assert_eq!(
        n["params"]["meta"]["delivery_id"], delivery,
        "something else reached the session: {n}"
    );
}

fn slack_headers(ts: u64, body: &[u8]) -> (String, String) {
    let mut mac = Hmac::<Sha256>::new_from_slice(SLACK.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:").as_bytes());
    mac.update(body);
    (
        ts.to_string(),
        format!("v0={}", hex::encode(mac.finalize().into_bytes())),
    )
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn a_replayed_delivery_is_acknowledged_and_delivered_once() {
    let (_d, mut hw) = start();
    let body = issue("first");
    for _ in 0..3 {
        // The vendor (or an attacker with a captured request) sends the same delivery again.
        let r = hw.post_github("/hooks/github", GH, "issues", "dup-1", &body);
        assert_eq!(
            r.status, 202,
            "a repeat is acknowledged so the vendor stops retrying"
        );
    }
    assert_eq!(hw.next_notification()["params"]["meta"]["delivery_id"], "dup-1");
    next_is(&mut hw, "after-dup");
    assert!(hw.stderr_text().contains("repeat of an accepted delivery"));
}

#[test]
fn a_stale_or_future_signed_timestamp_is_refused() {
    let (_d, mut hw) = start();
    let event = |id: &str| {
        serde_json::to_vec(&json!({"type": "event_callback", "event_id": id,
            "event": {"type": "app_mention", "text": "hi", "user": "U1", "channel": "C1"}}))
        .unwrap()
    };
    for (skew, id) in [(-600i64, "Ev-stale"), (600, "Ev-future")] {
        let body = event(id);
        let (ts, sig) = slack_headers((unix_now() as i64 + skew) as u64, &body);
        let r = hw.post(
            "/hooks/slack",
            &[
                ("Content-Type", "application/json"),
                ("X-Slack-Request-Timestamp", &ts),
                ("X-Slack-Signature", &sig),
            ],
            &body,
        );
        assert_eq!(
            r.status, 401,
            "{id}: a correctly signed but stale request is a replay"
        );
    }
    let body = event("Ev-fresh");
    let (ts, sig) = slack_headers(unix_now(), &body);
    let r = hw.post(
        "/hooks/slack",
        &[
            ("Content-Type", "application/json"),
            ("X-Slack-Request-Timestamp", &ts),
            ("X-Slack-Signature", &sig),
        ],
        &body,
    );
    assert_eq!(r.status, 202);
    let n = hw.next_notification();
    assert_eq!(n["params"]["meta"]["delivery_id"], "Ev-fresh", "{n}");
    assert_eq!(n["params"]["meta"]["event"], "app_mention");
}

/// Linear's published `Comment.create` example, with `webhookTimestamp` set to `at_ms` or
/// removed (`None`), signed as Linear signs: hex HMAC-SHA256 of the raw body.
fn linear_delivery(at_ms: Option<i64>) -> (Vec<u8>, String) {
    let mut v: serde_json::Value =
        serde_json::from_slice(&common::payload("linear/Comment.create.json")).unwrap();
    match at_ms {
        Some(ms) => v["webhookTimestamp"] = json!(ms),
        None => {
            v.as_object_mut().unwrap().remove("webhookTimestamp");
        }
    }
    let body = serde_json::to_vec(&v).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(LINEAR.as_bytes()).unwrap();
    mac.update(&body);
    (body, hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn linear_needs_a_fresh_webhook_timestamp_in_its_signed_body() {
    let (_d, mut hw) = start();
    let now_ms = unix_now() as i64 * 1000;
    let post = |hw: &Hookwire, at_ms: Option<i64>, delivery: &str| {
        let (body, sig) = linear_delivery(at_ms);
        hw.post(
            "/hooks/linear",
            &[
                ("Content-Type", "application/json"),
                ("Linear-Signature", &sig),
                ("Linear-Event", "Comment"),
                ("Linear-Delivery", delivery),
            ],
            &body,
        )
        .status
    };
    // Correctly signed, so only the timestamp rule can refuse these (Linear: a minute).
    assert_eq!(post(&hw, Some(now_ms - 120_000), "lin-stale"), 401, "stale");
    assert_eq!(post(&hw, Some(now_ms + 120_000), "lin-future"), 401, "future");
    assert_eq!(
        post(&hw, None, "lin-missing"),
        401,
        "a body without webhookTimestamp fails closed"
    );
    assert_eq!(post(&hw, Some(now_ms), "lin-fresh"), 202);
    let n = hw.next_notification();
    assert_eq!(n["params"]["meta"]["delivery_id"], "lin-fresh", "{n}");
    assert_eq!(n["params"]["meta"]["event"], "Comment.create");
}

#[test]
fn unknown_paths_are_404_and_reach_nothing() {
    let (_d, mut hw) = start();
    for path in ["/hooks/nope", "/hooks/github/extra", "/", "/hooks/GITHUB"] {
        let body = issue("x");
        assert_eq!(
            hw.post_github(path, GH, "issues", "lost", &body).status,
            404,
            "{path}"
        );
    }
    next_is(&mut hw, "after-404");
}

#[test]
fn allow_from_trusts_forwarded_for_only_from_configured_proxies() {
    let (_d, mut hw) = start();
    let post = |hw: &Hookwire, xff: Option<&str>, delivery: &str| {
        let body = issue(delivery);
        let sig = common::github_signature(GH, &body);
        let mut h = vec![
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "issues"),
            ("X-GitHub-Delivery", delivery),
            ("X-Hub-Signature-256", sig.as_str()),
        ];
        if let Some(x) = xff {
            h.push(("X-Forwarded-For", x));
        }
        hw.post("/hooks/fenced", &h, &body).status
    };
    // The test connects from 127.0.0.1, a trusted proxy, so X-Forwarded-For names the client.
    assert_eq!(
        post(&hw, None, "f-direct"),
        403,
        "the proxy itself is not in allow_from"
    );
    assert_eq!(post(&hw, Some("198.51.100.7"), "f-outside"), 403);
    assert_eq!(
        post(&hw, Some("192.0.2.9, 198.51.100.7"), "f-spoofed"),
        403,
        "a client-supplied left-most entry must not win"
    );
    assert_eq!(post(&hw, Some("not-an-address"), "f-garbage"), 403);
    assert_eq!(post(&hw, Some("192.0.2.9"), "f-inside"), 202);
    assert_eq!(
        hw.next_notification()["params"]["meta"]["delivery_id"],
        "f-inside"
    );
    assert_eq!(post(&hw, Some("2001:db8::5"), "f-inside-v6"), 202);
    assert_eq!(
        hw.next_notification()["params"]["meta"]["delivery_id"],
        "f-inside-v6"
    );
}

#[test]
fn vendor_handshakes_are_answered_and_never_delivered() {
    let (_d, mut hw) = start();
    let body = br#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let (ts, sig) = slack_headers(unix_now(), body);
    let r = hw.post(
        "/hooks/slack",
        &[
            ("Content-Type", "application/json"),
            ("X-Slack-Request-Timestamp", &ts),
            ("X-Slack-Signature", &sig),
        ],
        body,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");
    // A forged challenge gets nothing back.
    let r = hw.post(
        "/hooks/slack",
        &[
            ("Content-Type", "application/json"),
            ("X-Slack-Request-Timestamp", &ts),
            ("X-Slack-Signature", "v0=00"),
        ],
        body,
    );
    assert_eq!(r.status, 401);
    assert!(!r.body.contains("3eZb"));
    // GitHub's ping is acknowledged only.
    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    assert_eq!(
        hw.post_github("/hooks/github", GH, "ping", "ping-1", ping).status,
        202
    );
    next_is(&mut hw, "after-handshakes");
}

#[test]
fn slack_slash_commands_arrive_as_form_bodies_verified_as_received() {
    let (_d, mut hw) = start();
    // A slash command, percent-encoded exactly as Slack sends it.
    let body = b"token=x&team_id=T1&channel_name=ops&user_name=ada&command=%2Fdeploy&text=api+to+prod&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1&trigger_id=13345224609.738474920.8088930838d88f008e0";
    let (ts, sig) = slack_headers(unix_now(), body);
    let headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("X-Slack-Request-Timestamp", ts.as_str()),
        ("X-Slack-Signature", sig.as_str()),
    ];
    let r = hw.post("/hooks/slack", &headers, body);
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "Sent to the Claude Code session."),
        "the user sees this"
    );
    let n = hw.next_notification();
    assert_eq!(n["params"]["meta"]["event"], "slash_command.deploy", "{n}");
    assert_eq!(
        n["params"]["meta"]["delivery_id"],
        "13345224609.738474920.8088930838d88f008e0"
    );
    assert!(
        n["params"]["content"].as_str().unwrap().contains("api to prod"),
        "{n}"
    );
}

#[test]
fn discord_interactions_are_answered_as_discord_requires() {
    use ed25519_dalek::Signer;
    let (_d, mut hw) = start();
    let key = ed25519_dalek::SigningKey::from_bytes(&hex::decode(DISCORD_SEED).unwrap().try_into().unwrap());
    let post = |hw: &Hookwire, body: &[u8], tamper: bool| {
        let ts = unix_now().to_string();
        let mut signed = ts.as_bytes().to_vec();
        signed.extend_from_slice(body);
        let sig = hex::encode(key.sign(&signed).to_bytes());
        let mut sent = body.to_vec();
        if tamper {
            sent[2] ^= 1;
        }
        hw.post(
            "/hooks/discord",
            &[
                ("Content-Type", "application/json"),
                ("X-Signature-Ed25519", &sig),
                ("X-Signature-Timestamp", &ts),
            ],
            &sent,
        )
    };
    // Discord probes a new endpoint with bad signatures and expects 401.
    assert_eq!(post(&hw, br#"{"type":1,"id":"p0"}"#, true).status, 401);
    let ping = post(&hw, br#"{"type":1,"id":"p1"}"#, false);
    assert_eq!((ping.status, ping.body.as_str()), (200, r#"{"type":1}"#));
    let command = br#"{"type":2,"id":"i-42","data":{"name":"deploy","options":[{"name":"env","value":"prod"}]},"member":{"user":{"username":"ada"}}}"#;
    let r = post(&hw, command, false);
    assert_eq!(r.status, 200);
    let answer: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        answer["type"], 4,
        "a channel message, or Discord shows the interaction as failed"
    );
    assert_eq!(answer["data"]["flags"], 64, "only the user who asked sees it");
    let n = hw.next_notification();
    assert_eq!(
        n["params"]["meta"]["event"], "interaction.application_command",
        "{n}"
    );
    assert_eq!(n["params"]["meta"]["delivery_id"], "i-42");
}

#[test]
fn a_slack_apps_own_posts_are_not_delivered_back_to_it() {
    let (_d, mut hw) = start();
    let post = |hw: &Hookwire, id: &str, app: &str| {
        let body = serde_json::to_vec(
            &json!({"type": "event_callback", "api_app_id": "A1", "event_id": id,
            "event": {"type": "message", "text": "done", "channel": "C1", "app_id": app, "bot_id": "B1"}}),
        )
        .unwrap();
        let (ts, sig) = slack_headers(unix_now(), &body);
        let h = [
            ("Content-Type", "application/json"),
            ("X-Slack-Request-Timestamp", ts.as_str()),
            ("X-Slack-Signature", sig.as_str()),
        ];
        hw.post("/hooks/slack", &h, &body).status
    };
    assert_eq!(
        post(&hw, "Ev-own", "A1"),
        202,
        "acknowledged so Slack does not retry"
    );
    // Another app's bot (a CI bot posting a failure) is worth delivering.
    assert_eq!(post(&hw, "Ev-other", "A2"), 202);
    assert_eq!(
        hw.next_notification()["params"]["meta"]["delivery_id"],
        "Ev-other"
    );
}
