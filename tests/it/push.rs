//! The `push` source: a team's own system or cron job posts `{content, meta}` with a token, and
//! the session gets that message with those attributes; nothing else gets in.

use crate::common;

use common::{Hookwire, TempDir};

const TOKEN: &str = "push-token-7c1d-9a0b";

#[test]
fn a_pushed_message_reaches_the_session_with_its_meta_and_nothing_else_does() {
    let dir = TempDir::new("push");
    let cfg = dir.write(
        "config.yaml",
        "channel:\n  sources: [jobs]\nsources:\n  - name: jobs\n    type: push\n    secret_env: P_TOKEN\n",
    );
    let mut hw = Hookwire::spawn(&cfg, &[("P_TOKEN", TOKEN)]);
    hw.handshake();
    let bearer = format!("Bearer {TOKEN}");
    let json = ("Content-Type", "application/json");
    let post = |hw: &Hookwire, auth: &str, body: &str| {
        hw.post("/hooks/jobs", &[json, ("Authorization", auth)], body.as_bytes())
    };

    assert_eq!(post(&hw, "Bearer nope", r#"{"content":"forged"}"#).status, 401);
    assert_eq!(
        post(&hw, &bearer, r#"{"meta":{"a":"b"}}"#).status,
        400,
        "no content"
    );
    assert_eq!(
        post(&hw, &bearer, r#"{"content":"x","meta":{"bad-key":"v"}}"#).status,
        400
    );
    assert_eq!(
        post(&hw, &bearer, r#"{"content":"x","meta":{"source":"spoofed"}}"#).status,
        400
    );
    let r = post(
        &hw,
        &bearer,
        r#"{"content":"Daily snapshot: 3 failed builds, p95 latency 212 ms.","event":"daily_snapshot","id":"snap-2026-11-24","meta":{"env":"prod","failed":3}}"#,
    );
    assert_eq!(r.status, 202);
    let n = hw.next_notification();
    assert_eq!(
        n["params"]["content"],
        "Daily snapshot: 3 failed builds, p95 latency 212 ms."
    );
    let meta = &n["params"]["meta"];
    assert_eq!(meta["source_name"], "jobs");
    assert_eq!(meta["event"], "daily_snapshot");
    assert_eq!(meta["delivery_id"], "snap-2026-11-24");
    assert_eq!(meta["env"], "prod");
    assert_eq!(meta["failed"], "3");
    // The token may also come in a header; the same id again is a repeat.
    let again = hw.post(
        "/hooks/jobs",
        &[json, ("X-Hookwire-Token", TOKEN)],
        br#"{"content":"again","id":"snap-2026-11-24"}"#,
    );
    assert_eq!(again.status, 202);
    assert_eq!(post(&hw, &bearer, r#"{"content":"second"}"#).status, 202);
    assert_eq!(hw.next_notification()["params"]["content"], "second");
}
