//! The gateway as a remote channel (`/mcp` on `hookwire serve`, MCP over Streamable HTTP),
//! driven by real clients only: the official MCP TypeScript SDK client
//! (`tests/node/sdk_http.mjs`, one JSON command per line, as `sdk_tools.mjs`) and the real
//! Claude Code CLI. Tokens are created through the store API on the gateway's database, as
//! `hookwire token create` does.
//!
//! * handshake (the channel capability, the token's sources in the instructions, a session
//!   id), events in order (a backlog first, then live ones), tools by permission, the streams
//!   in the metrics, and DELETE;
//! * action tools performed by the gateway with its own `tools:` credentials, audited under
//!   the token's name;
//! * a stream cut after two events (as a proxy dropping the connection would): the SDK
//!   reconnects with `Last-Event-ID` and gets the rest with no gap and no repeat, and the
//!   token's cursor reaches the last event;
//! * a health-check-like session (handshake, stream opened, closed at once) consumes nothing;
//! * an unknown token is 401, unknown, revoked and expired read the same, and a token revoked
//!   during a session ends its stream (the reconnection is refused);
//! * hostile requests: the token before the body, body size and type, batches, requests
//!   before `initialize`, eight sessions per token, a session only for its own token;
//! * `hookwire doctor --remote URL`: the channel found, the tools listed, nothing read; a
//!   revoked token and a wrong URL fail;
//! * Claude Code's own health checks (`claude mcp list`, `get`) of an `"type": "http"` server:
//!   connected, and the backlog still whole for the next session.
//!
//! Every wait is on a condition with a deadline.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common;
use crate::real_clients::{
    claude_command, manifest_dir, node_modules, run_with_timeout, SdkTools, TempHome, CLAUDE_TIMEOUT,
    NPM_HINT,
};

use common::gateway::{now_ms, serve, store, token, TWO_GITHUB_SOURCES};
use common::{delivery_id, github_signature, issue, Hookwire, TempDir, DEADLINE};
use hookwire_core::store::{SqliteStore, Store, Subscription};
use serde_json::{json, Value};

const SECRET: &str = "test-mcp-http-github-secret-8b40";

fn gateway(dir: &TempDir) -> Hookwire {
    gateway_with(dir, "")
}

/// `hookwire serve` with `head` (a `tls:` section, say) before the sources.
fn gateway_with(dir: &TempDir, head: &str) -> Hookwire {
    let cfg = dir.write("config.yaml", &format!("{head}{TWO_GITHUB_SOURCES}"));
    serve(
        &cfg,
        "127.0.0.1:0",
        &[("T_GITHUB_SECRET", SECRET), ("HOOKWIRE_LOG", "info")],
    )
}

fn url(gw: &Hookwire) -> String {
    format!("http://{}/mcp", gw.addr)
}

/// POSTs a signed GitHub `issues` delivery to `/hooks/github`; must be accepted.
fn post(gw: &Hookwire, delivery: &str) {
    post_signed(gw, SECRET, delivery)
}

/// [`post`], signed with `secret`.
fn post_signed(gw: &Hookwire, secret: &str, delivery: &str) {
    let body = issue(delivery);
    let r = ureq::post(&format!("http://{}/hooks/github", gw.addr))
        .timeout(DEADLINE)
        .set("Content-Type", "application/json")
        .set("X-GitHub-Event", "issues")
        .set("X-GitHub-Delivery", delivery)
        .set("X-Hub-Signature-256", &github_signature(secret, &body))
        .send_bytes(&body);
    assert_eq!(r.map(|r| r.status()).ok(), Some(202), "POST {delivery}");
}

/// The SDK client script, holding any number of named sessions.
fn sdk() -> SdkTools {
    let mut cmd = Command::new("node");
    cmd.current_dir(manifest_dir()).arg("tests/node/sdk_http.mjs");
    SdkTools::spawn(cmd)
}

fn connect(sdk: &mut SdkTools, name: &str, gw: &Hookwire, token: &str) -> Value {
    sdk.ok(json!({"op": "connect", "name": name, "url": url(gw), "token": token}))
}

/// The delivery id of `name`'s next channel notification.
fn next(sdk: &mut SdkTools, name: &str) -> String {
    let n = sdk.ok(json!({"op": "next_notification", "name": name}));
    assert_eq!(n["notification"]["method"], "notifications/claude/channel", "{n}");
    delivery_id(&n["notification"])
}

fn status(sdk: &mut SdkTools, name: &str) -> Value {
    sdk.ok(json!({"op": "status", "name": name}))
}

/// Waits until `f` holds, failing with `what` after [`DEADLINE`].
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !f() {
        assert!(Instant::now() < end, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn backlog(db: &SqliteStore, name: &str) -> u64 {
    db.backlog(&Subscription {
        name: name.into(),
        sources: vec!["github".into()],
    })
    .unwrap()
    .events
}

fn seq(db: &SqliteStore, delivery: &str) -> u64 {
    db.get(delivery).unwrap().expect("stored").stored.seq
}

#[test]
fn sdk_client_handshake_events_in_order_tools_by_permission_and_delete() {
    let dir = TempDir::new("mcp-basic");
    let gw = gateway(&dir);
    let db = store(&dir);
    let alice = token(&db, "alice", &["github"], &["read-events"], None);
    let bob = token(&db, "bob", &["github"], &[], None);
    post(&gw, "m-1");
    let mut sdk = sdk();

    let init = connect(&mut sdk, "alice", &gw, &alice);
    assert_eq!(
        init["capabilities"]["experimental"]["claude/channel"],
        json!({}),
        "{init}"
    );
    assert_eq!(init["capabilities"]["tools"], json!({}), "{init}");
    assert!(
        init["capabilities"]["experimental"]
            .get("claude/channel/permission")
            .is_none(),
        "{init}"
    );
    let instructions = init["instructions"].as_str().unwrap();
    assert!(instructions.contains("- github (github)"), "{instructions}");
    assert!(!instructions.contains("- ops"), "not the token's: {instructions}");
    assert!(instructions.contains("get_event"), "{instructions}");
    assert!(
        init["sessionId"].as_str().is_some_and(|s| s.len() == 32),
        "{init}"
    );

    // The backlog first, then live events, in order, each once.
    post(&gw, "m-2");
    post(&gw, "m-3");
    for want in ["m-1", "m-2", "m-3"] {
        assert_eq!(next(&mut sdk, "alice"), want, "{}", gw.stderr_text());
    }
    let listed = sdk.ok(json!({"op": "list_tools", "name": "alice"}));
    let mut names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["get_event", "list_events"]);
    let read =
        sdk.ok(json!({"op": "call_tool", "name": "alice", "tool": "get_event", "arguments": {"id": "m-2"}}));
    assert_eq!(read["result"]["isError"], false, "{read}");
    assert!(common::tool_text(&read["result"]).contains("m-2"), "{read}");

    // Without a permission: no tools capability, tools/list is "method not found".
    let init = connect(&mut sdk, "bob", &gw, &bob);
    assert!(init["capabilities"].get("tools").is_none(), "{init}");
    assert!(
        init["instructions"].as_str().unwrap().contains("one-way"),
        "{init}"
    );
    let refused = sdk.step(json!({"op": "list_tools", "name": "bob"}));
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"]["code"], -32601, "{refused}");
    assert_eq!(next(&mut sdk, "bob"), "m-1", "bob's token was created before m-1");

    // Both streams are counted as connected sessions, and alice's backlog is gauged.
    let metrics = || {
        ureq::get(&format!("http://{}/metrics", gw.addr))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    };
    wait_until("two remote streams in hookwire_sessions_connected", || {
        metrics().contains("hookwire_sessions_connected 2")
    });
    assert!(
        metrics().contains("hookwire_store_backlog_events{subscriber=\"alice\"}"),
        "{}",
        metrics()
    );

    let s = status(&mut sdk, "alice");
    assert_eq!(s["channelNotifications"], 3, "{s}");
    assert_eq!(s["protocolErrors"], json!([]), "{s}");

    // DELETE ends the session: its id is then unknown.
    let sid = connect(&mut sdk, "gone", &gw, &alice)["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    sdk.ok(json!({"op": "terminate", "name": "gone"}));
    let r = ureq::post(&url(&gw))
        .set("Authorization", &format!("Bearer {alice}"))
        .set("Mcp-Session-Id", &sid)
        .set("Content-Type", "application/json")
        .send_string(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
    assert!(matches!(r, Err(ureq::Error::Status(404, _))), "{r:?}");

    assert!(
        !gw.stderr_text().contains(&alice),
        "the token was logged by the gateway"
    );
    db.close(Duration::from_secs(2));
}

#[test]
fn a_dropped_stream_resumes_with_last_event_id_without_gap_or_repeat() {
    let dir = TempDir::new("mcp-resume");
    let gw = gateway(&dir);
    let db = store(&dir);
    let alice = token(&db, "alice", &["github"], &[], None);
    for i in 1..=5 {
        post(&gw, &format!("r-{i}"));
    }
    let mut sdk = sdk();
    sdk.ok(json!({"op": "connect", "name": "a", "url": url(&gw), "token": alice, "cutAfter": 2}));
    for i in 1..=5 {
        assert_eq!(next(&mut sdk, "a"), format!("r-{i}"), "{}", gw.stderr_text());
    }
    post(&gw, "r-6");
    assert_eq!(next(&mut sdk, "a"), "r-6");

    let s = status(&mut sdk, "a");
    assert_eq!(s["channelNotifications"], 6, "no repeats: {s}");
    let gets = s["gets"].as_array().unwrap();
    assert!(gets.len() >= 2, "the SDK reopened the stream: {s}");
    assert_eq!(gets[0]["lastEventId"], Value::Null, "{s}");
    assert_eq!(
        gets[1]["lastEventId"],
        json!(seq(&db, "r-2").to_string()),
        "the SSE id is the event's store id, and the SDK resumed from it: {s}"
    );
    assert_eq!(gets[1]["status"], 200, "{s}");
    // Delivered: the stream stayed open past the last event, so the token's cursor moved.
    let last = seq(&db, "r-6");
    wait_until("alice's cursor reaches r-6", || {
        db.cursor("alice", 0).unwrap() >= last
    });
    db.close(Duration::from_secs(2));
}

#[test]
fn a_health_check_like_session_consumes_nothing() {
    let dir = TempDir::new("mcp-health");
    let gw = gateway(&dir);
    let db = store(&dir);
    let alice = token(&db, "alice", &["github"], &[], None);
    post(&gw, "h-1");
    post(&gw, "h-2");
    let mut sdk = sdk();
    // Claude Code's health check: the handshake, the GET stream opened, dropped at once.
    connect(&mut sdk, "check", &gw, &alice);
    sdk.ok(json!({"op": "wait_stream", "name": "check"}));
    sdk.ok(json!({"op": "close", "name": "check"}));
    wait_until("the health check's stream ends", || {
        gw.stderr_text()
            .contains("remote channel stream closed by the client")
    });
    assert_eq!(backlog(&db, "alice"), 2, "a health check ate the backlog");
    // The session Claude Code opens next gets both, once.
    connect(&mut sdk, "real", &gw, &alice);
    assert_eq!(next(&mut sdk, "real"), "h-1", "{}", gw.stderr_text());
    assert_eq!(next(&mut sdk, "real"), "h-2");
    post(&gw, "h-3");
    assert_eq!(next(&mut sdk, "real"), "h-3");
    assert_eq!(status(&mut sdk, "real")["channelNotifications"], 3);
    db.close(Duration::from_secs(2));
}

/// A POST of `initialize` with `Authorization: Bearer <secret>`: status and body.
fn raw_initialize(gw: &Hookwire, secret: &str) -> (u16, String) {
    let r = ureq::post(&url(gw))
        .set("Authorization", &format!("Bearer {secret}"))
        .set("Content-Type", "application/json")
        .send_string(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#);
    match r {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_wrong_token_is_401_without_detail_and_a_revoked_one_ends_the_session() {
    let dir = TempDir::new("mcp-auth");
    let gw = gateway(&dir);
    let db = store(&dir);
    let alice = token(&db, "alice", &["github"], &[], None);
    let old = token(&db, "old", &["github"], &[], Some(now_ms() - 1000));
    let gone = token(&db, "gone", &["github"], &[], None);
    db.tokens().revoke("gone", now_ms()).unwrap();

    let mut sdk = sdk();
    let wrong = sdk.step(json!({"op": "connect", "name": "x", "url": url(&gw), "token": "hwt_not-a-token"}));
    assert_eq!(wrong["ok"], false, "{wrong}");
    assert_eq!(wrong["error"]["code"], 401, "{wrong}");
    // Unknown, expired and revoked read the same.
    let unknown = raw_initialize(&gw, "hwt_not-a-token");
    assert_eq!(unknown.0, 401);
    assert_eq!(raw_initialize(&gw, &old), unknown);
    assert_eq!(raw_initialize(&gw, &gone), unknown);

    connect(&mut sdk, "a", &gw, &alice);
    post(&gw, "v-1");
    assert_eq!(next(&mut sdk, "a"), "v-1");
    db.tokens().revoke("alice", now_ms()).unwrap();
    // The gateway ends the stream; the SDK reopens it at once and is refused.
    wait_until("the revoked session's stream is ended and refused", || {
        status(&mut sdk, "a")["gets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["status"] == 401)
    });
    let ping = sdk.step(json!({"op": "ping", "name": "a"}));
    assert_eq!(ping["ok"], false, "{ping}");
    assert!(gw
        .stderr_text()
        .contains("remote channel session ended: token no longer valid"));
    for t in [&alice, &old, &gone] {
        assert!(
            !gw.stderr_text().contains(t.as_str()),
            "a token was logged by the gateway"
        );
    }
    db.close(Duration::from_secs(2));
}

/// Claude Code's health checks of a remote (`"type": "http"`) hookwire: connected, and the
/// events waiting for the session are all still there for it. The CLI opens the GET stream
/// and drops it (channel-contract §10c), which the gateway's log shows.
#[test]
fn claude_code_health_checks_of_the_remote_channel_leave_the_backlog() {
    let claude = node_modules().join(".bin/claude");
    assert!(claude.exists(), "{} is missing: {NPM_HINT}", claude.display());
    let dir = TempDir::new("mcp-claude");
    let gw = gateway(&dir);
    let db = store(&dir);
    let alice = token(&db, "alice", &["github"], &[], None);
    post(&gw, "c-1");
    post(&gw, "c-2");

    let home = TempHome::new();
    // The README's entry: the token from the environment, never in the file.
    let server = json!({
        "type": "http",
        "url": url(&gw),
        "headers": {"Authorization": "Bearer ${HOOKWIRE_TOKEN}"},
    })
    .to_string();
    let claude_cmd = |args: &[&str]| {
        let mut c = claude_command(&claude, &home.0);
        c.env("HOOKWIRE_TOKEN", &alice).args(args);
        c
    };
    let added = run_with_timeout(
        claude_cmd(&["mcp", "add-json", "--scope", "user", "hookwire", &server]),
        "claude mcp add-json",
        CLAUDE_TIMEOUT,
    );
    assert!(
        added.status.success(),
        "{}",
        added.transcript("claude mcp add-json")
    );
    for args in [
        &["mcp", "list"][..],
        &["mcp", "get", "hookwire"],
        &["mcp", "list"],
    ] {
        let what = format!("claude {}", args.join(" "));
        let done = run_with_timeout(claude_cmd(args), &what, CLAUDE_TIMEOUT);
        let transcript = done.transcript(&what).replace(&alice, "<token>");
        assert!(done.status.success(), "{transcript}");
        assert!(
            done.stdout.contains("Connected") && !done.stdout.contains("Failed"),
            "Claude Code does not report the remote hookwire connected\n{transcript}\n{}",
            gw.stderr_text()
        );
    }
    let log = gw.stderr_text();
    assert!(
        log.contains("remote channel stream opened"),
        "the health checks never opened the stream, so they prove nothing here:\n{log}"
    );
    assert_eq!(backlog(&db, "alice"), 2, "a health check ate the backlog\n{log}");
    let mut sdk = sdk();
    connect(&mut sdk, "session", &gw, &alice);
    assert_eq!(next(&mut sdk, "session"), "c-1", "{}", gw.stderr_text());
    assert_eq!(next(&mut sdk, "session"), "c-2");
    assert_eq!(status(&mut sdk, "session")["channelNotifications"], 2);
    assert!(
        !gw.stderr_text().contains(&alice),
        "the token was logged by the gateway"
    );
    db.close(Duration::from_secs(2));
}

/// A POST to `/mcp` with `headers`: status and body.
fn raw_post(gw: &Hookwire, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut req = ureq::post(&url(gw)).timeout(DEADLINE);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    match req.send_bytes(body) {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn hostile_requests_are_bounded_before_and_after_the_token() {
    let dir = TempDir::new("mcp-bounds");
    let gw = gateway(&dir);
    let db = store(&dir);
    let alice = token(&db, "alice", &["github"], &[], None);
    let bearer = format!("Bearer {alice}");
    let json_type = ("Content-Type", "application/json");
    // The token is checked before a byte of the body is read.
    assert_eq!(gw.status_before_body("/mcp", &[json_type], 65 * 1024), 401);
    // Over the cap: refused from the declared length before a byte is read, or once it passes
    // the cap when the length is not declared.
    let authorized = [("Authorization", bearer.as_str()), json_type];
    assert_eq!(gw.status_before_body("/mcp", &authorized, 65 * 1024), 413);
    let big = vec![b' '; 65 * 1024];
    assert_eq!(gw.post_status_raw("/mcp", &authorized, &big, true), 413);
    assert_eq!(
        raw_post(
            &gw,
            &[("Authorization", &bearer), ("Content-Type", "text/plain")],
            b"{}"
        )
        .0,
        415
    );
    let (status, body) = raw_post(&gw, &[("Authorization", &bearer), json_type], b"[{}]");
    assert_eq!((status, body.contains("-32600")), (400, true), "{body}");
    // Before `initialize` only the discover probe and ping are answered.
    let discover = br#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#;
    let (status, body) = raw_post(&gw, &[("Authorization", &bearer), json_type], discover);
    assert_eq!((status, body.contains("-32601")), (200, true), "{body}");
    let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    assert_eq!(
        raw_post(&gw, &[("Authorization", &bearer), json_type], list).0,
        400
    );

    // A token holds at most 8 sessions: the ninth ends the least recently used.
    let session = || {
        let r = ureq::post(&url(&gw))
            .set("Authorization", &bearer)
            .set("Content-Type", "application/json")
            .send_string(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#)
            .unwrap();
        r.header("Mcp-Session-Id").unwrap().to_owned()
    };
    let ids: Vec<String> = (0..9).map(|_| session()).collect();
    let ping = br#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    let ping_in = |sid: &str| {
        raw_post(
            &gw,
            &[("Authorization", &bearer), json_type, ("Mcp-Session-Id", sid)],
            ping,
        )
        .0
    };
    assert_eq!(ping_in(&ids[0]), 404, "the oldest session was ended");
    for sid in &ids[1..] {
        assert_eq!(ping_in(sid), 200);
    }
    // Another token cannot use a session it does not own.
    let bob = token(&db, "bob", &["github"], &[], None);
    let bob_bearer = format!("Bearer {bob}");
    assert_eq!(
        raw_post(
            &gw,
            &[
                ("Authorization", &bob_bearer),
                json_type,
                ("Mcp-Session-Id", &ids[1])
            ],
            ping
        )
        .0,
        404
    );
    db.close(Duration::from_secs(2));
}

/// `hookwire doctor --remote URL <extra>` with `env`, no Claude Code on PATH: exit code and
/// output.
fn doctor_remote(url: &str, extra: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let extra: Vec<&std::ffi::OsStr> = extra.iter().map(std::ffi::OsStr::new).collect();
    crate::gateway::doctor_against("--remote", url, &extra, env)
}

#[test]
fn doctor_checks_the_remote_channel_end_to_end_and_reads_nothing() {
    let dir = TempDir::new("mcp-doctor");
    let gw = gateway(&dir);
    let db = store(&dir);
    let reader = token(&db, "alice", &["github"], &["read-events"], None);
    let gone = token(&db, "gone", &["github"], &[], None);
    db.tokens().revoke("gone", now_ms()).unwrap();
    post(&gw, "doc-1");
    let base = format!("http://{}", gw.addr);

    let (code, out) = doctor_remote(&base, &[], &[("HOOKWIRE_TOKEN", &reader)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok    token: read from HOOKWIRE_TOKEN"), "{out}");
    assert!(
        out.contains(&format!(
            "ok    remote: {base}/mcp: a channel on protocol 2025-11-25"
        )),
        "{out}"
    );
    assert!(
        out.contains("ok    tools: get_event, list_events (performed by the gateway)"),
        "{out}"
    );
    assert!(
        out.contains("ok    remote: session ended; no event was read"),
        "{out}"
    );
    assert!(
        out.contains(r#""type": "http""#) && out.contains("Bearer ${HOOKWIRE_TOKEN}"),
        "{out}"
    );
    assert!(
        out.contains("claude --dangerously-load-development-channels server:hookwire"),
        "{out}"
    );
    assert!(!out.contains(&reader), "doctor printed the token");
    assert_eq!(backlog(&db, "alice"), 1, "doctor consumed an event");

    let (code, out) = doctor_remote(&base, &[], &[("HOOKWIRE_TOKEN", &gone)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  remote:") && out.contains("401"), "{out}");
    let (code, out) = doctor_remote(
        &format!("http://{}/nothing", gw.addr),
        &[],
        &[("HOOKWIRE_TOKEN", &reader)],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("404"), "{out}");
    db.close(Duration::from_secs(2));
}

#[test]
fn the_remote_channel_over_tls_with_the_gateways_own_certificate() {
    let dir = TempDir::new("mcp-tls");
    let (ca, cert, key) = crate::gateway::certificates(&dir);
    let gw = gateway_with(
        &dir,
        &format!(
            "tls:\n  cert_file: {}\n  key_file: {}\n",
            cert.display(),
            key.display()
        ),
    );
    gw.wait_stderr("listening on https://");
    let db = store(&dir);
    let alice = token(&db, "alice", &["github"], &[], None);
    let base = format!("https://{}", gw.addr);

    let ca_arg = ca.to_str().unwrap();
    let (code, out) = doctor_remote(&base, &["--ca-file", ca_arg], &[("HOOKWIRE_TOKEN", &alice)]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("ok    remote: {base}/mcp: a channel on protocol")),
        "{out}"
    );
    let (code, out) = doctor_remote(&base, &[], &[("HOOKWIRE_TOKEN", &alice)]);
    assert_eq!(code, 1, "without the CA the certificate is not trusted: {out}");

    // The SDK client (Node trusting the CA), and a webhook over TLS to it.
    let mut cmd = Command::new("node");
    cmd.current_dir(manifest_dir())
        .arg("tests/node/sdk_http.mjs")
        .env("NODE_EXTRA_CA_CERTS", &ca);
    let mut sdk = SdkTools::spawn(cmd);
    sdk.ok(json!({"op": "connect", "name": "a", "url": format!("{base}/mcp"), "token": alice}));
    let body = issue("tls-1");
    let status = crate::gateway::trusting(&ca)
        .post(&format!("{base}/hooks/github"))
        .timeout(DEADLINE)
        .set("Content-Type", "application/json")
        .set("X-GitHub-Event", "issues")
        .set("X-GitHub-Delivery", "tls-1")
        .set("X-Hub-Signature-256", &github_signature(SECRET, &body))
        .send_bytes(&body)
        .unwrap()
        .status();
    assert_eq!(status, 202);
    assert_eq!(next(&mut sdk, "a"), "tls-1", "{}", gw.stderr_text());
    db.close(Duration::from_secs(2));
}

/// The action tools run in the gateway, with the credentials of the gateway's own `tools:`,
/// and are audited under the token's name.
#[test]
fn action_tools_are_performed_by_the_gateway_and_audited_under_the_token() {
    use common::fakes::{tools_config, FakeApis, ENV, GH_SECRET, GITHUB_TOKEN};
    let apis = FakeApis::start();
    let dir = TempDir::new("mcp-actions");
    let cfg = tools_config(&dir, &apis, &[]);
    let mut env = ENV.to_vec();
    env.push(("HOOKWIRE_LOG", "info"));
    let gw = serve(&cfg, "127.0.0.1:0", &env);
    let db = store(&dir);
    let alice = token(&db, "alice", &["github"], &["post-comments", "read-events"], None);
    post_signed(&gw, GH_SECRET, "act-1");
    let mut sdk = sdk();
    connect(&mut sdk, "a", &gw, &alice);
    assert_eq!(next(&mut sdk, "a"), "act-1");
    let listed = sdk.ok(json!({"op": "list_tools", "name": "a"}));
    let mut names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["get_event", "github_comment", "list_events"]);

    let args = json!({"repo": "acme/web", "number": 7, "body": "on it", "event_id": "act-1"});
    let done = sdk.ok(json!({"op": "call_tool", "name": "a", "tool": "github_comment", "arguments": args}));
    assert_eq!(done["result"]["isError"], false, "{done}");
    let seen = apis.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/repos/acme/web/issues/7/comments")
    );
    assert!(
        seen[0]
            .authorization
            .as_deref()
            .is_some_and(|a| a.contains(GITHUB_TOKEN)),
        "the gateway's credentials: {seen:?}"
    );
    assert_eq!(seen[0].body, json!({"body": "on it"}));
    // Outside the gateway's allowlist: refused, nothing sent.
    let args = json!({"repo": "other/repo", "number": 1, "body": "x"});
    let refused =
        sdk.ok(json!({"op": "call_tool", "name": "a", "tool": "github_comment", "arguments": args}));
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    assert_eq!(apis.seen().len(), 1);
    // The gateway's store keeps the call with the event, under the token's name.
    let read =
        sdk.ok(json!({"op": "call_tool", "name": "a", "tool": "get_event", "arguments": {"id": "act-1"}}));
    let event: Value = serde_json::from_str(common::tool_text(&read["result"])).unwrap();
    let actions = event["actions"].as_array().unwrap();
    assert!(
        actions
            .iter()
            .any(|a| a["tool"] == "github_comment" && a["by"] == "alice" && a["outcome"] == "ok"),
        "{event}"
    );
    assert!(
        !gw.stderr_text().contains(GITHUB_TOKEN),
        "the GitHub token was logged"
    );
    db.close(Duration::from_secs(2));
}
