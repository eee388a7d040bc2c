//! The read tools (`get_event`, `list_events`) of a channel linked to a team gateway, black-box:
//! `hookwire serve` and `hookwire channel --gateway URL` as Claude Code spawns it. The channel
//! asks the gateway over `hookwire.v1` (`get_event` / `list_events` / `result` frames); the
//! gateway answers from its store, for the token's sources, only with `read-events`.
//!
//! - with `read-events`, a webhook's event is read back in full (the exact payload, the
//!   headers without credentials) and listed, and the results are exactly what local mode
//!   computes from the same database;
//! - without it the tools are absent and refused by the channel, and the gateway itself
//!   refuses the frames ("permission denied") from a client that sends them anyway;
//! - another source's event is "not found", word for word like a missing one;
//! - while the gateway is away a read fails at once with a clear error;
//! - the audit: an action the linked channel performs (against a fake Slack) is stored by the
//!   gateway with its event, under the token's name, and `get_event` shows it; a raw client's
//!   forged `audit` frames cannot name another subscriber or attach to another source's event.

use crate::common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::fakes::{FakeApis, SLACK_TOKEN};
use common::gateway::{now_ms, os, serve, store, token, upgrade_session, TWO_GITHUB_SOURCES};
use common::{delivery_id, github_signature, issue_with_body, tool_text, Hookwire, TempDir, DEADLINE};
use hookwire_core::store::{SqliteStore, Store};
use hookwire_core::tools::{EventReader, ReadError, StoreReader};
use serde_json::{json, Value};

const SECRET: &str = "test-gateway-tools-github-secret-77c1";

/// Two GitHub-type sources, no `tools:` (the linked channel reads the same file for it).
fn config(dir: &TempDir) -> PathBuf {
    dir.write("config.yaml", TWO_GITHUB_SOURCES)
}

/// `hookwire serve` on a free port.
fn gateway(cfg: &Path) -> Hookwire {
    gateway_at(cfg, "127.0.0.1:0")
}

/// `hookwire serve` listening on `addr`.
fn gateway_at(cfg: &Path, addr: &str) -> Hookwire {
    serve(cfg, addr, &[("T_GITHUB_SECRET", SECRET)])
}

/// `hookwire channel --gateway http://ADDR --config CFG` with the token in the environment.
fn linked(gw: &Hookwire, cfg: &Path, token: &str) -> Hookwire {
    linked_with(gw, cfg, &[("HOOKWIRE_TOKEN", token)])
}

/// [`linked`] with `env` (the token and whatever `tools:` in CFG reads).
fn linked_with(gw: &Hookwire, cfg: &Path, env: &[(&str, &str)]) -> Hookwire {
    common::gateway::linked(gw, &[os("--config"), cfg.as_os_str()], env)
}

/// POSTs a signed GitHub `issues` delivery (with an `Authorization` header too, which must
/// never be stored); returns the body sent. The issue's body has a newline, quotes and a
/// non-ASCII character.
fn post(addr: &str, path: &str, delivery: &str) -> Vec<u8> {
    let body = issue_with_body(delivery, "b\n\"quoted\" é");
    let status = ureq::post(&format!("http://{addr}{path}"))
        .timeout(DEADLINE)
        .set("Content-Type", "application/json")
        .set("X-GitHub-Event", "issues")
        .set("X-GitHub-Delivery", delivery)
        .set("X-Hub-Signature-256", &github_signature(SECRET, &body))
        .set("Authorization", "Bearer not-for-the-store")
        .send_bytes(&body)
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
        .status();
    assert_eq!(status, 202);
    body
}

/// A successful call's JSON.
fn ok(result: &Value) -> Value {
    assert_eq!(result["isError"], false, "{result}");
    serde_json::from_str(tool_text(result)).unwrap()
}

/// A refused or failed call's message.
fn refused(result: &Value) -> &str {
    assert_eq!(result["isError"], true, "{result}");
    tool_text(result)
}

fn listed(hw: &mut Hookwire) -> Value {
    hw.rpc("tools/list", json!({}))
}

#[test]
fn read_tools_through_the_gateway_return_what_local_mode_returns() {
    let dir = TempDir::new("gwt-read");
    let cfg = config(&dir);
    let gw = gateway(&cfg);
    let db = store(&dir);
    let alice = token(&db, "alice", &["github"], &["read-events"], None);
    let mut ch = linked(&gw, &cfg, &alice);
    let init = ch.handshake();
    assert_eq!(init["capabilities"]["tools"], json!({}), "{init}");
    let names: Vec<Value> = listed(&mut ch)["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, [json!("get_event"), json!("list_events")]);

    let body = post(&gw.addr, "/hooks/github", "gwt-read-1");
    let n = ch.next_notification();
    let delivery = delivery_id(&n);
    assert_eq!(delivery, "gwt-read-1");
    let record = db.get(&delivery).unwrap().expect("stored by the gateway");
    assert_eq!(record.payload, body, "the gateway stored the exact bytes");
    let seq = record.stored.seq;

    let r = ch.call_tool("get_event", json!({"id": delivery}));
    let ev = ok(&r);
    assert_eq!(ev["id"], seq);
    assert_eq!(ev["source"], "github");
    assert_eq!(ev["delivery_id"], "gwt-read-1");
    assert_eq!(ev["event"], "issues.opened");
    assert_eq!(ev["payload"], serde_json::from_slice::<Value>(&body).unwrap());
    assert_eq!(ev["payload_bytes"], body.len());
    assert_eq!(ev["payload_truncated"], false);
    assert_eq!(ev["notification"], n["params"], "the notification received");
    let headers = ev["headers"].as_object().unwrap();
    assert_eq!(headers["x-github-delivery"], "gwt-read-1", "{headers:?}");
    assert_eq!(headers["x-github-event"], "issues");
    for credential in ["x-hub-signature-256", "authorization"] {
        assert!(
            !headers.contains_key(credential),
            "{credential} must never be stored or shown: {headers:?}"
        );
    }
    assert!(!tool_text(&r).contains("not-for-the-store"), "{r}");
    assert_eq!(ev["actions"], json!([]));

    // Exactly what local mode's reader computes from the same database, byte for byte.
    let local = StoreReader::new(db.clone(), vec!["github".into()]);
    assert_eq!(
        tool_text(&r),
        local.get_event_blocking(&delivery).unwrap().to_string()
    );
    for id in [seq.to_string(), format!("evt_{seq}"), format!("  {delivery} ")] {
        let r = ch.call_tool("get_event", json!({"id": id}));
        assert_eq!(ok(&r), ev, "by {id:?}");
    }

    let r = ch.call_tool("list_events", json!({}));
    let list = ok(&r);
    assert_eq!(list["events"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["events"][0]["id"], seq);
    assert_eq!(list["events"][0]["delivery_id"], "gwt-read-1");
    assert_eq!(
        tool_text(&r),
        local.list_events_blocking(None, None).unwrap().to_string()
    );
    let r = ch.call_tool("list_events", json!({"source": "github", "limit": 1}));
    assert_eq!(ok(&r)["events"][0]["delivery_id"], "gwt-read-1");
    let r = ch.call_tool("list_events", json!({"source": "ops"}));
    assert!(
        refused(&r).contains("`ops` is not one of this session's sources"),
        "{r}"
    );
    let r = ch.call_tool("get_event", json!({"id": "no-such-event"}));
    assert_eq!(
        refused(&r),
        "no event `no-such-event` among this session's sources"
    );
    // A bad argument is refused by the channel, as in local mode.
    let r = ch.call_tool("list_events", json!({"limit": -1}));
    assert!(refused(&r).contains("invalid arguments for list_events"), "{r}");
    assert!(!ch.stderr_text().contains(&alice), "the token was logged");
    db.close(Duration::from_secs(2));
}

#[test]
fn a_token_cannot_read_another_sources_events() {
    let dir = TempDir::new("gwt-scope");
    let cfg = config(&dir);
    let gw = gateway(&cfg);
    let db = store(&dir);
    let ops = token(&db, "opsie", &["ops"], &["read-events"], None);
    let mut ch = linked(&gw, &cfg, &ops);
    ch.handshake();
    post(&gw.addr, "/hooks/github", "gwt-scope-gh");
    post(&gw.addr, "/hooks/ops", "gwt-scope-ops");
    assert_eq!(delivery_id(&ch.next_notification()), "gwt-scope-ops");
    let gh_seq = db.get("gwt-scope-gh").unwrap().expect("stored").stored.seq;
    assert!(db.get("gwt-scope-ops").unwrap().is_some());

    // The github event exists, but for this token it is "not found", like a missing one.
    for id in [
        "gwt-scope-gh".to_owned(),
        gh_seq.to_string(),
        format!("evt_{gh_seq}"),
    ] {
        let r = ch.call_tool("get_event", json!({"id": id}));
        assert_eq!(
            refused(&r),
            format!("no event `{id}` among this session's sources"),
            "{r}"
        );
        assert!(
            !tool_text(&r).contains("forbidden") && !tool_text(&r).contains("github"),
            "{r}"
        );
    }
    let r = ch.call_tool("get_event", json!({"id": "gwt-scope-ops"}));
    assert_eq!(ok(&r)["source"], "ops");
    let r = ch.call_tool("list_events", json!({}));
    let list = ok(&r);
    let ids: Vec<&Value> = list["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["delivery_id"])
        .collect();
    assert_eq!(ids, [&json!("gwt-scope-ops")], "only the token's sources");
    let r = ch.call_tool("list_events", json!({"source": "github"}));
    assert!(
        refused(&r).contains("`github` is not one of this session's sources"),
        "{r}"
    );
    db.close(Duration::from_secs(2));
}

#[test]
fn without_read_events_the_tools_are_absent_and_the_gateway_refuses_the_frames() {
    let dir = TempDir::new("gwt-denied");
    let cfg = config(&dir);
    let gw = gateway(&cfg);
    let db = store(&dir);
    let bob = token(&db, "bob", &["github"], &[], None);
    let mut ch = linked(&gw, &cfg, &bob);
    let init = ch.handshake();
    assert!(init["capabilities"].get("tools").is_none(), "{init}");
    assert_eq!(listed(&mut ch)["error"]["code"], -32601, "no tools to list");
    post(&gw.addr, "/hooks/github", "gwt-denied-1");
    assert_eq!(delivery_id(&ch.next_notification()), "gwt-denied-1");
    for (tool, args) in [
        ("get_event", json!({"id": "gwt-denied-1"})),
        ("list_events", json!({})),
    ] {
        let r = ch.call_tool(tool, args);
        let m = refused(&r);
        assert!(m.starts_with(&format!("{tool} is not allowed")), "{tool}: {m}");
    }

    // A client that sends the frames anyway (the library link, bypassing the channel's own
    // check) gets "permission denied" from the gateway, and nothing of the event.
    let carol = token(&db, "carol", &["github"], &["post-comments"], None);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (mut link, _feed) = hookwire_core::link::start(hookwire_core::link::LinkOptions {
            url: format!("ws://{}/v1/session", gw.addr),
            token: hookwire_core::secret::Secret::new(carol.as_bytes()),
            tls: None,
            mark: None,
        });
        let hello = link.hello(DEADLINE).await.expect("connected");
        assert_eq!(hello.permissions, ["post-comments"]);
        let reader = link.reader();
        for r in [
            reader.get_event("gwt-denied-1".into()).await,
            reader.list_events(None, None).await,
        ] {
            match r {
                Err(ReadError::Refused(m)) => assert!(m.starts_with("permission denied"), "{m}"),
                other => panic!("not refused: {other:?}"),
            }
        }
        link.stop(Duration::from_secs(1)).await;
    });
    gw.wait_stderr("read request refused: the token does not grant read-events");
    db.close(Duration::from_secs(2));
}

#[test]
fn a_read_while_the_gateway_is_away_fails_at_once_with_a_clear_error() {
    let dir = TempDir::new("gwt-down");
    let cfg = config(&dir);
    let mut gw = gateway(&cfg);
    let db = store(&dir);
    let t = token(&db, "dana", &["github"], &["read-events"], None);
    let mut ch = linked(&gw, &cfg, &t);
    ch.handshake();
    post(&gw.addr, "/hooks/github", "gwt-down-1");
    assert_eq!(delivery_id(&ch.next_notification()), "gwt-down-1");
    let r = ch.call_tool("get_event", json!({"id": "gwt-down-1"}));
    assert_eq!(ok(&r)["delivery_id"], "gwt-down-1");

    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    ch.wait_stderr("lost the gateway connection");
    let started = std::time::Instant::now();
    let r = ch.call_tool("get_event", json!({"id": "gwt-down-1"}));
    assert_eq!(refused(&r), "gateway not connected; retry");
    let r = ch.call_tool("list_events", json!({}));
    assert_eq!(refused(&r), "gateway not connected; retry");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at once, not after a timeout: {:?}",
        started.elapsed()
    );
    db.close(Duration::from_secs(2));
}

/// The developer's own config for a linked channel: only `tools:` is read, here Slack pointing
/// at the fake API (the gateway holds no Slack credentials).
fn slack_tools_config(dir: &TempDir, apis: &FakeApis) -> PathBuf {
    dir.write(
        "channel.yaml",
        &format!(
            r##"tools:
  slack:
    bot_token_env: T_SLACK_TOKEN
    api_url: {}/api
    channels: ["#incidents"]
"##,
            apis.url()
        ),
    )
}

/// One row of the gateway's `audit` table.
#[derive(Debug)]
struct AuditRow {
    by: String,
    tool: String,
    event_ref: Option<String>,
    event_seq: Option<i64>,
    outcome: String,
    detail: String,
}

/// Every audit row of the gateway's database, in insertion order. Read with SQLite directly,
/// to see the rows attached to no event too (`Store::audit_for` lists one event's).
/// A gateway, and a linked channel whose token `name` grants `post-slack-message` and
/// `read-events`, with `tools.slack` pointed at a fake Slack; the handshake done.
struct SlackSession {
    apis: FakeApis,
    dir: TempDir,
    gw: Hookwire,
    db: Arc<SqliteStore>,
    ch: Hookwire,
}

fn slack_session(tag: &str, name: &str) -> SlackSession {
    let apis = FakeApis::start();
    let dir = TempDir::new(tag);
    let gw = gateway(&config(&dir));
    let db = store(&dir);
    let secret = token(
        &db,
        name,
        &["github"],
        &["post-slack-message", "read-events"],
        None,
    );
    let tools_cfg = slack_tools_config(&dir, &apis);
    let mut ch = linked_with(
        &gw,
        &tools_cfg,
        &[("HOOKWIRE_TOKEN", &secret), ("T_SLACK_TOKEN", SLACK_TOKEN)],
    );
    ch.handshake();
    SlackSession {
        apis,
        dir,
        gw,
        db,
        ch,
    }
}

fn audit_rows(dir: &TempDir) -> Vec<AuditRow> {
    let conn = rusqlite::Connection::open_with_flags(
        dir.0.join("hookwire.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.busy_timeout(DEADLINE).unwrap();
    let mut stmt = conn
        .prepare("SELECT subscriber, tool, event_ref, event_seq, outcome, detail FROM audit ORDER BY id")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok(AuditRow {
                by: r.get(0)?,
                tool: r.get(1)?,
                event_ref: r.get(2)?,
                event_seq: r.get(3)?,
                outcome: r.get(4)?,
                detail: r.get(5)?,
            })
        })
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

#[test]
fn an_action_of_a_linked_channel_is_stored_with_its_event_on_the_gateway() {
    let SlackSession {
        apis,
        dir,
        gw,
        db,
        mut ch,
    } = slack_session("gwt-audit", "erin");
    let names: Vec<Value> = listed(&mut ch)["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(
        names,
        [
            json!("slack_post_message"),
            json!("get_event"),
            json!("list_events")
        ]
    );

    post(&gw.addr, "/hooks/github", "gwt-audit-1");
    let delivery = delivery_id(&ch.next_notification());
    assert_eq!(delivery, "gwt-audit-1");
    let seq = db
        .get(&delivery)
        .unwrap()
        .expect("stored by the gateway")
        .stored
        .seq;
    let r = ch.call_tool("get_event", json!({"id": delivery}));
    assert_eq!(ok(&r)["actions"], json!([]), "nothing done yet");

    // The channel posts with its own credentials: the fake Slack receives it.
    let arguments = json!({"channel": "#incidents", "text": "Rolled back a3f9b2.", "event_id": delivery});
    let r = ch.call_tool("slack_post_message", arguments.clone());
    let posted = ok(&r);
    assert_eq!(posted["ts"], "1764000900.000100", "{posted}");
    let seen = apis.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/api/chat.postMessage");
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(format!("Bearer {SLACK_TOKEN}").as_str())
    );

    // `get_event` through the gateway shows the action, by the token's name.
    let r = ch.call_tool("get_event", json!({"id": delivery}));
    let ev = ok(&r);
    let actions = ev["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{ev}");
    assert_eq!(actions[0]["by"], "erin");
    assert_eq!(actions[0]["tool"], "slack_post_message");
    assert_eq!(actions[0]["outcome"], "ok");
    assert_eq!(actions[0]["arguments"], arguments);
    assert!(
        actions[0]["detail"]
            .as_str()
            .unwrap()
            .contains("1764000900.000100"),
        "{ev}"
    );
    assert!(actions[0]["at"].as_str().unwrap().ends_with('Z'), "{ev}");

    // The gateway's store has the row, attached to the event.
    let stored = db.audit_for(seq).unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let a = &stored[0];
    assert_eq!(
        (a.subscriber.as_str(), a.tool.as_str(), a.outcome.as_str()),
        ("erin", "slack_post_message", "ok")
    );
    assert_eq!(a.event_ref.as_deref(), Some("gwt-audit-1"));
    assert_eq!(a.event_seq, Some(seq));
    assert_eq!(serde_json::from_str::<Value>(&a.arguments).unwrap(), arguments);
    assert!(
        (now_ms() - a.at_ms).abs() < 600_000,
        "the call's time: {}",
        a.at_ms
    );

    // A refused call is audited too, and nothing is sent.
    let r = ch.call_tool(
        "slack_post_message",
        json!({"channel": "#general", "text": "x", "event_id": delivery}),
    );
    assert!(refused(&r).contains("#general"), "{r}");
    assert_eq!(apis.seen().len(), 1, "nothing sent");
    let r = ch.call_tool("get_event", json!({"id": seq.to_string()}));
    let ev = ok(&r);
    let outcomes: Vec<(&Value, &Value)> = ev["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (&a["tool"], &a["outcome"]))
        .collect();
    assert_eq!(
        outcomes,
        [
            (&json!("slack_post_message"), &json!("ok")),
            (&json!("slack_post_message"), &json!("refused"))
        ],
        "{ev}"
    );

    // Reads are audited as in local mode, attached to no event (they have no event_id).
    // This read goes after the audit frames of the calls before it.
    let r = ch.call_tool("list_events", json!({"limit": 1}));
    assert_eq!(ok(&r)["events"][0]["delivery_id"], "gwt-audit-1");
    let rows = audit_rows(&dir);
    let summary = rows
        .iter()
        .map(|r| (r.by.as_str(), r.tool.as_str(), r.event_seq, r.outcome.as_str()))
        .collect::<Vec<_>>();
    let seq = seq as i64;
    assert_eq!(
        summary[..5],
        [
            ("erin", "get_event", None, "ok"),
            ("erin", "slack_post_message", Some(seq), "ok"),
            ("erin", "get_event", None, "ok"),
            ("erin", "slack_post_message", Some(seq), "refused"),
            ("erin", "get_event", None, "ok"),
        ],
        "{rows:?}"
    );
    assert!(
        summary.len() <= 6,
        "the list_events call's row, at most: {rows:?}"
    );
    gw.wait_stderr("tool call");
    // The gateway's /metrics counts its sessions' calls as they are stored.
    let page = gw.call("GET", "/metrics").body;
    for series in [
        r#"hookwire_tool_calls_total{tool="slack_post_message",outcome="ok"} 1"#,
        r#"hookwire_tool_calls_total{tool="slack_post_message",outcome="refused"} 1"#,
    ] {
        assert!(page.lines().any(|l| l == series), "no `{series}` in:\n{page}");
    }
    assert!(
        !gw.stderr_text().contains(SLACK_TOKEN),
        "the Slack token never reaches the gateway"
    );
    assert!(!ch.stderr_text().contains(SLACK_TOKEN), "nor the logs");
    db.close(Duration::from_secs(2));
}

#[test]
fn an_action_taken_while_the_gateway_is_away_is_stored_when_the_link_is_back() {
    let SlackSession {
        apis,
        dir,
        mut gw,
        db,
        mut ch,
    } = slack_session("gwt-audit-away", "fay");
    let addr = gw.addr.clone();
    post(&gw.addr, "/hooks/github", "gwt-away-1");
    let delivery = delivery_id(&ch.next_notification());
    let seq = db.get(&delivery).unwrap().expect("stored").stored.seq;

    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    ch.wait_stderr("lost the gateway connection");
    // Slack does not need the gateway: the action is taken, its audit entry waits.
    let r = ch.call_tool(
        "slack_post_message",
        json!({"channel": "#incidents", "text": "while away", "event_id": delivery}),
    );
    assert_eq!(ok(&r)["ts"], "1764000900.000100", "{r}");
    assert_eq!(apis.seen().len(), 1);
    assert_eq!(db.audit_for(seq).unwrap(), vec![], "not stored yet");

    // The same gateway (same database) comes back; the link reconnects and sends it.
    let _gw = gateway_at(&dir.0.join("config.yaml"), &addr);
    let end = std::time::Instant::now() + DEADLINE * 3;
    let stored = loop {
        let rows = db.audit_for(seq).unwrap();
        if !rows.is_empty() {
            break rows;
        }
        assert!(
            std::time::Instant::now() < end,
            "the queued audit entry never reached the gateway; channel stderr:\n{}",
            ch.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        (
            stored[0].subscriber.as_str(),
            stored[0].tool.as_str(),
            stored[0].outcome.as_str()
        ),
        ("fay", "slack_post_message", "ok")
    );
    let r = ch.call_tool("get_event", json!({"id": delivery}));
    let ev = ok(&r);
    assert_eq!(ev["actions"].as_array().unwrap().len(), 1, "{ev}");
    assert_eq!(ev["actions"][0]["arguments"]["text"], "while away");
    db.close(Duration::from_secs(2));
}

/// A WebSocket client over a raw socket, speaking `hookwire.v1` by hand: what a client that
/// does not use hookwire's link could send.
struct RawSession {
    s: std::net::TcpStream,
}

impl RawSession {
    fn connect(addr: &str, token: &str) -> RawSession {
        let (s, head) = upgrade_session(addr, Some(token), Some("hookwire.v1"));
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        RawSession { s }
    }

    /// Sends one text frame (masked, as a client must).
    fn send(&mut self, text: &str) {
        self.frame(0x81, text.as_bytes());
    }

    /// Sends a close frame, code 1000.
    fn close(&mut self) {
        self.frame(0x88, &1000u16.to_be_bytes());
    }

    fn frame(&mut self, first: u8, payload: &[u8]) {
        let mut frame = vec![first];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x37u8, 0xfa, 0x21, 0x3d];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.s.write_all(&frame).unwrap();
    }

    /// The next text message (pings and pongs skipped; a close fails the test).
    fn recv(&mut self) -> String {
        let mut message = Vec::new();
        loop {
            let mut h = [0u8; 2];
            self.s.read_exact(&mut h).unwrap();
            let (fin, opcode) = (h[0] & 0x80 != 0, h[0] & 0x0f);
            let len = match h[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.s.read_exact(&mut b).unwrap();
                    u16::from_be_bytes(b) as usize
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.s.read_exact(&mut b).unwrap();
                    u64::from_be_bytes(b) as usize
                }
                n => n as usize,
            };
            let mut payload = vec![0u8; len];
            self.s.read_exact(&mut payload).unwrap();
            match opcode {
                0x8 => panic!("the gateway closed the session: {payload:?}"),
                0x9 | 0xa => continue,
                _ => message.extend_from_slice(&payload),
            }
            if fin {
                return String::from_utf8(message).unwrap();
            }
        }
    }

    /// The next frame of type `kind`, skipping others (events).
    fn recv_type(&mut self, kind: &str) -> Value {
        let end = std::time::Instant::now() + DEADLINE;
        loop {
            assert!(std::time::Instant::now() < end, "no {kind} frame in time");
            let v: Value = serde_json::from_str(&self.recv()).unwrap();
            if v["type"] == kind {
                return v;
            }
        }
    }
}

#[test]
fn forged_audit_frames_cannot_speak_for_another_subscriber_or_source() {
    let dir = TempDir::new("gwt-forge");
    let cfg = config(&dir);
    let gw = gateway(&cfg);
    let db = store(&dir);
    let mallory = token(&db, "mallory", &["ops"], &["read-events"], None);
    post(&gw.addr, "/hooks/github", "gwt-forge-gh");
    post(&gw.addr, "/hooks/ops", "gwt-forge-ops");
    let gh_seq = db.get("gwt-forge-gh").unwrap().expect("stored").stored.seq;
    let ops_seq = db.get("gwt-forge-ops").unwrap().expect("stored").stored.seq;

    let mut ws = RawSession::connect(&gw.addr, &mallory);
    let hello = ws.recv_type("hello");
    assert_eq!(hello["subscriber"], "mallory");
    assert_eq!(
        hello["audit"], true,
        "the gateway says it stores audit frames: {hello}"
    );
    let forged = |tool: &str, event_ref: &str, outcome: &str, detail: &str| {
        json!({
            "type": "audit", "tool": tool, "event_ref": event_ref, "outcome": outcome,
            "detail": detail, "arguments": {"id": event_ref}, "at_ms": now_ms(),
            "subscriber": "alice", "by": "alice", "event_seq": gh_seq,
        })
        .to_string()
    };
    // Another source's event, by delivery id and by store id: stored, attached to none.
    ws.send(&forged("get_event", "gwt-forge-gh", "refused", "forged 1"));
    ws.send(&forged(
        "get_event",
        &format!("evt_{gh_seq}"),
        "refused",
        "forged 2",
    ));
    // An action this token does not grant cannot have succeeded: ignored.
    ws.send(&forged("slack_post_message", "gwt-forge-ops", "ok", "forged 3"));
    // An unknown tool and an unknown outcome: ignored.
    ws.send(&forged("drop_tables", "gwt-forge-ops", "refused", "forged 4"));
    ws.send(&forged("get_event", "gwt-forge-ops", "yes", "forged 5"));
    // The token's own event: attached, by the token's name, the detail cut as in local mode.
    ws.send(&forged("get_event", "gwt-forge-ops", "ok", &"x".repeat(5000)));
    // Frames are handled in order: once this read is answered, the ones above are stored.
    ws.send(r#"{"type":"get_event","req":1,"id":"gwt-forge-ops"}"#);
    let result = ws.recv_type("result");
    assert_eq!(result["req"], 1, "{result}");
    let actions = result["ok"]["actions"].as_array().expect("the event").clone();
    assert_eq!(actions.len(), 1, "{result}");
    assert_eq!(actions[0]["by"], "mallory");
    assert_eq!(actions[0]["tool"], "get_event");
    assert_eq!(actions[0]["detail"].as_str().unwrap().chars().count(), 501);

    let rows = audit_rows(&dir);
    let summary = rows
        .iter()
        .map(|r| {
            (
                r.by.as_str(),
                r.tool.as_str(),
                r.event_ref.as_deref(),
                r.event_seq,
                r.outcome.as_str(),
            )
        })
        .collect::<Vec<_>>();
    let gh_ref = format!("evt_{gh_seq}");
    assert_eq!(
        summary,
        [
            ("mallory", "get_event", Some("gwt-forge-gh"), None, "refused"),
            ("mallory", "get_event", Some(gh_ref.as_str()), None, "refused"),
            (
                "mallory",
                "get_event",
                Some("gwt-forge-ops"),
                Some(ops_seq as i64),
                "ok"
            ),
        ],
        "{rows:?}"
    );
    assert_eq!(rows[0].detail, "forged 1");
    assert_eq!(
        db.audit_for(gh_seq).unwrap(),
        vec![],
        "nothing reaches the github event"
    );
    assert_eq!(db.audit_for(ops_seq).unwrap().len(), 1);

    // Frames received just before the client closes are all stored, not cut off with the
    // session (well within the token's burst of 256).
    for i in 0..100 {
        ws.send(&forged(
            "list_events",
            "gwt-forge-ops",
            "ok",
            &format!("last words {i}"),
        ));
    }
    ws.close();
    let end = std::time::Instant::now() + DEADLINE;
    while db.audit_for(ops_seq).unwrap().len() < 101 {
        assert!(
            std::time::Instant::now() < end,
            "not all the last frames were stored: {} of 100",
            db.audit_for(ops_seq).unwrap().len() - 1
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let last = audit_rows(&dir).pop().unwrap();
    assert_eq!(
        (last.by.as_str(), last.detail.as_str()),
        ("mallory", "last words 99")
    );
    db.close(Duration::from_secs(2));
}
