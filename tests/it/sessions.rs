//! Real use with Claude Code (issue 15): what a user's ordinary next steps must not do to the
//! events, in local and gateway mode.
//!
//! - A health check (`claude mcp list`: full handshake, stdin closed some 20 ms later) eats
//!   nothing: the next real session gets the backlog, once.
//! - A session that reconnects at once (Claude Code restarted) gets nothing the previous
//!   session acknowledged.
//! - A linked channel killed with SIGKILL and started again shows again at most its last
//!   write.
//! - A refused token is said once to the session, and the link stops trying.
//! - A channel that cannot start still completes the handshake and says why, and `doctor`
//!   finds the same problem. One whose store will not open (found after `initialize` is
//!   answered: the store opens meanwhile) says so the same way, and its tools refuse.
//! - Two sessions in one project both get the project's events; when the one that listens
//!   exits, the other listens in its place.

use serde_json::json;

use crate::common::gateway::{linked, serve, store, token, TWO_GITHUB_SOURCES};
use crate::common::{issue, Hookwire, TempDir};
use hookwire_core::store::Store;

const SECRET: &str = "sessions-github-secret-0123456789";

fn local_config(dir: &TempDir) -> std::path::PathBuf {
    dir.write(
        "config.yaml",
        "channel:\n  sources: [github]\nsources:\n  - name: github\n    type: github\n    secret_env: S_GITHUB_SECRET\n",
    )
}

const LOCAL_ENV: &[(&str, &str)] = &[("S_GITHUB_SECRET", SECRET)];

/// What `claude mcp list` does to a server: discover, initialize, initialized, then stdin
/// closed at once (within milliseconds). Returns every line written after the handshake.
fn health_check(hw: &mut Hookwire) -> Vec<String> {
    let id = hw.request("server/discover", json!({}));
    assert_eq!(hw.next_message()["id"], id);
    hw.initialize("2025-11-25");
    hw.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    let (_, rest) = hw.close_and_wait();
    rest
}

fn post(hw: &Hookwire, path: &str, id: &str) {
    let r = hw.post_github(path, SECRET, "issues", id, &issue(id));
    assert_eq!(r.status, 202, "{}", r.body);
}

#[test]
fn health_checks_eat_no_backlog_in_local_mode() {
    let dir = TempDir::new("sessions-health-local");
    let cfg = local_config(&dir);
    let mut hw = Hookwire::spawn(&cfg, LOCAL_ENV);
    for id in ["waiting-1", "waiting-2"] {
        post(&hw, "/hooks/github", id);
    }
    assert_eq!(
        health_check(&mut hw),
        Vec::<String>::new(),
        "a health check was written events"
    );
    for _ in 0..2 {
        let mut check = Hookwire::spawn(&cfg, LOCAL_ENV);
        assert_eq!(health_check(&mut check), Vec::<String>::new());
    }
    let mut session = Hookwire::spawn(&cfg, LOCAL_ENV);
    session.handshake();
    assert_eq!(session.next_delivery_id(), "waiting-1");
    assert_eq!(session.next_delivery_id(), "waiting-2");
    post(&session, "/hooks/github", "after");
    assert_eq!(session.next_delivery_id(), "after", "each event once");
}

#[test]
fn health_checks_eat_no_backlog_in_gateway_mode() {
    let dir = TempDir::new("sessions-health-gateway");
    let cfg = dir.write(
        "config.yaml",
        &format!("channel:\n  sources: []\n{TWO_GITHUB_SOURCES}"),
    );
    let gw = serve(&cfg, "127.0.0.1:0", &[("T_GITHUB_SECRET", SECRET)]);
    let t = token(&store(&dir), "alice", &["github"], &[], None);
    let env = [("HOOKWIRE_TOKEN", t.as_str())];
    // A session that read one event, so the token's cursor exists.
    let mut first = linked(&gw, &[], &env);
    first.handshake();
    post(&gw, "/hooks/github", "seen");
    assert_eq!(first.next_delivery_id(), "seen");
    first.close_and_wait();
    for id in ["waiting-1", "waiting-2"] {
        post(&gw, "/hooks/github", id);
    }
    for _ in 0..3 {
        let mut check = linked(&gw, &[], &env);
        assert_eq!(
            health_check(&mut check),
            Vec::<String>::new(),
            "a health check was written events"
        );
    }
    let mut session = linked(&gw, &[], &env);
    session.handshake();
    assert_eq!(session.next_delivery_id(), "waiting-1");
    assert_eq!(session.next_delivery_id(), "waiting-2");
    post(&gw, "/hooks/github", "after");
    assert_eq!(session.next_delivery_id(), "after", "each event once");
}

#[test]
fn a_quick_reconnect_gets_nothing_the_last_session_acknowledged() {
    let dir = TempDir::new("sessions-reconnect");
    let cfg = dir.write(
        "config.yaml",
        &format!("channel:\n  sources: []\n{TWO_GITHUB_SOURCES}"),
    );
    let gw = serve(&cfg, "127.0.0.1:0", &[("T_GITHUB_SECRET", SECRET)]);
    let t = token(&store(&dir), "bob", &["github"], &[], None);
    // Restarts in a row: each is a chance for the new session to read the token's cursor
    // before the gateway has recorded the last ack of the one before (it waits for that).
    const RESTARTS: usize = 5;
    // Each session keeps its position in a folder of its own: what is tested here is the
    // gateway's record of acknowledgements, not the channel's.
    let states: Vec<TempDir> = (0..RESTARTS + 2)
        .map(|i| TempDir::new(&format!("sessions-state-{i}")))
        .collect();
    let env = |i: usize| {
        [
            ("HOOKWIRE_TOKEN", t.clone()),
            ("XDG_STATE_HOME", states[i].0.to_string_lossy().into_owned()),
        ]
    };
    let spawn = |i: usize| {
        let env = env(i);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        linked(&gw, &[], &env)
    };
    let mut a = spawn(0);
    a.handshake();
    for i in 0..20 {
        let id = format!("shown-{i:02}");
        post(&gw, "/hooks/github", &id);
        assert_eq!(a.next_delivery_id(), id);
    }
    // Claude Code restarted: the old process exits, the new one connects at once.
    for n in 1..=RESTARTS {
        a.close_and_wait();
        a = spawn(n);
        a.handshake();
        let id = format!("new-{n}");
        post(&gw, "/hooks/github", &id);
        assert_eq!(
            a.next_delivery_id(),
            id,
            "restart {n}: a session got again what the last one acknowledged"
        );
    }
    // A takeover with the same token while the last one is connected: the same holds.
    let mut c = spawn(RESTARTS + 1);
    c.handshake();
    post(&gw, "/hooks/github", "taken-over");
    assert_eq!(c.next_delivery_id(), "taken-over");
    drop(a);
}

#[test]
fn a_killed_linked_channel_shows_again_at_most_its_last_write() {
    let dir = TempDir::new("sessions-kill-linked");
    let cfg = dir.write(
        "config.yaml",
        &format!("channel:\n  sources: []\n{TWO_GITHUB_SOURCES}"),
    );
    let gw = serve(&cfg, "127.0.0.1:0", &[("T_GITHUB_SECRET", SECRET)]);
    let t = token(&store(&dir), "carol", &["github"], &[], None);
    let state = TempDir::new("sessions-kill-state");
    let state_dir = state.0.to_string_lossy().into_owned();
    let env = [
        ("HOOKWIRE_TOKEN", t.as_str()),
        ("XDG_STATE_HOME", state_dir.as_str()),
    ];
    for round in 0..3 {
        let mut ch = linked(&gw, &[], &env);
        ch.handshake();
        // One event per write: each is read before the next is posted.
        let mut last = String::new();
        for i in 0..30 {
            last = format!("r{round}-{i:02}");
            post(&gw, "/hooks/github", &last);
            assert_eq!(ch.next_delivery_id(), last);
        }
        ch.child.kill().expect("SIGKILL");
        ch.child.wait().expect("reaped");
        let mut again = linked(&gw, &[], &env);
        again.handshake();
        let marker = format!("r{round}-marker");
        post(&gw, "/hooks/github", &marker);
        let mut repeated = Vec::new();
        loop {
            let id = again.next_delivery_id();
            if id == marker {
                break;
            }
            repeated.push(id);
        }
        assert!(
            repeated.is_empty() || repeated == [last.clone()],
            "after a SIGKILL, shown again: {repeated:?} (at most the last write, `{last}`)"
        );
        again.close_and_wait();
    }
}

#[test]
fn a_refused_token_is_said_once_and_the_link_stops_trying() {
    let dir = TempDir::new("sessions-refused");
    let cfg = dir.write(
        "config.yaml",
        &format!("channel:\n  sources: []\n{TWO_GITHUB_SOURCES}"),
    );
    let gw = serve(&cfg, "127.0.0.1:0", &[("T_GITHUB_SECRET", SECRET)]);
    let db = store(&dir);
    let t = token(&db, "dave", &["github"], &["read-events"], None);
    assert!(db
        .tokens()
        .revoke("dave", crate::common::gateway::now_ms())
        .unwrap());
    let mut ch = linked(&gw, &[], &[("HOOKWIRE_TOKEN", t.as_str())]);
    ch.handshake();
    let notice = ch.next_notification();
    assert_eq!(notice["params"]["meta"]["event"], "hookwire.token_refused");
    assert_eq!(notice["params"]["meta"]["reason"], "revoked");
    ch.wait_stderr("the link does not retry");
    // Asking again does not reconnect: the answer names the reason at once.
    let id = ch.request("ping", json!({}));
    assert_eq!(ch.next_message()["id"], id);
    assert!(ch.child.try_wait().unwrap().is_none(), "the channel exited");
    let (_, rest) = ch.close_and_wait();
    assert!(rest.is_empty(), "said more than once: {rest:?}");
    // The gateway saw one attempt: the link did not try again.
    assert_eq!(
        gw.stderr_text().matches("session refused: token revoked").count(),
        1
    );
}

/// A loopback address no one listens on now.
fn free_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn channel_on(cfg: &std::path::Path, addr: &str) -> Hookwire {
    use crate::common::gateway::os;
    Hookwire::spawn_args(
        &[
            os("channel"),
            os("--config"),
            cfg.as_os_str(),
            os("--listen"),
            os(addr),
        ],
        LOCAL_ENV,
        false,
    )
}

#[test]
fn a_port_held_by_another_program_is_said_to_the_session_and_by_doctor() {
    let dir = TempDir::new("sessions-port");
    let cfg = local_config(&dir);
    let foreign = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = foreign.local_addr().unwrap().to_string();
    let mut ch = channel_on(&cfg, &addr);
    let (notice, code) = ch.unservable_notice();
    assert!(
        notice.contains(&format!("cannot listen for webhooks on {addr}")),
        "{notice}"
    );
    assert!(notice.contains("listen:"), "the fix is named: {notice}");
    assert_eq!(code, Some(2));
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("listen: {addr}\n{text}")).unwrap();
    let out = std::process::Command::new(crate::common::bin())
        .args(["doctor", "--config"])
        .arg(&cfg)
        .envs(LOCAL_ENV.iter().copied())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("FAIL") && report.contains(&addr), "{report}");
    drop(foreign);
}

#[test]
fn a_store_that_will_not_open_is_said_after_the_handshake_and_its_tools_refuse() {
    let dir = TempDir::new("sessions-store");
    // A folder where the database file should be: SQLite cannot open it.
    std::fs::create_dir_all(dir.0.join("events.db")).unwrap();
    let cfg = dir.write(
        "config.yaml",
        "store:\n  path: events.db\nchannel:\n  sources: [github]\n  permissions: [read-events]\n\
         sources:\n  - name: github\n    type: github\n    secret_env: S_GITHUB_SECRET\n",
    );
    let mut ch = channel_on(&cfg, &free_address());
    let result = ch.handshake();
    assert!(
        result["capabilities"]["experimental"]["claude/channel"].is_object(),
        "{result}"
    );
    let notice = ch.next_notification();
    assert_eq!(
        notice["params"]["meta"]["event"], "hookwire.not_started",
        "{notice}"
    );
    let content = notice["params"]["content"].as_str().unwrap();
    assert!(content.contains("events.db"), "the store is named: {content}");
    assert!(content.contains("store.path"), "the fix is named: {content}");
    // The tools were offered with the handshake; a call now says why it cannot run.
    let listed = ch.rpc("tools/list", json!({}));
    assert!(listed.to_string().contains("list_events"), "{listed}");
    let r = ch.call_tool("list_events", json!({}));
    assert_eq!(r["isError"], true, "{r}");
    assert!(r.to_string().contains("could not open its event store"), "{r}");
    ch.close_and_wait();
    assert_eq!(ch.child.try_wait().unwrap().and_then(|s| s.code()), Some(2));
}

#[test]
fn two_sessions_of_one_project_both_get_its_events_and_one_takes_the_listener_over() {
    let dir = TempDir::new("sessions-two");
    let cfg = local_config(&dir);
    let addr = free_address();
    let mut first = channel_on(&cfg, &addr);
    first.wait_stderr("listening on http://");
    first.handshake();
    let mut second = channel_on(&cfg, &addr);
    second.wait_stderr("another session of this project listens");
    second.handshake();
    // `doctor` takes the port held by this project's own session for what it is.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("listen: {addr}\n{text}")).unwrap();
    let out = std::process::Command::new(crate::common::bin())
        .args(["doctor", "--config"])
        .arg(&cfg)
        .envs(LOCAL_ENV.iter().copied())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("held by another hookwire session of this project"),
        "{report}"
    );
    let url = |addr: &str| format!("http://{addr}/hooks/github");
    let send = |id: &str| {
        let body = issue(id);
        let sig = crate::common::github_signature(SECRET, &body);
        let r = ureq::post(&url(&addr))
            .timeout(crate::common::DEADLINE)
            .set("X-GitHub-Event", "issues")
            .set("X-GitHub-Delivery", id)
            .set("X-Hub-Signature-256", &sig)
            .send_bytes(&body)
            .expect("accepted");
        assert_eq!(r.status(), 202);
    };
    for id in ["both-1", "both-2"] {
        send(id);
    }
    for hw in [&mut first, &mut second] {
        assert_eq!(hw.next_delivery_id(), "both-1");
        assert_eq!(hw.next_delivery_id(), "both-2");
    }
    // The session that listens exits; the other takes its address over.
    first.close_and_wait();
    second.wait_stderr("took the webhook listener over");
    send("after-takeover");
    assert_eq!(second.next_delivery_id(), "after-takeover");
    // A session started now takes the first seat back: it gets what arrived while that seat
    // was empty, then what arrives, as the other session does.
    let mut third = channel_on(&cfg, &addr);
    third.wait_stderr("another session of this project listens");
    third.handshake();
    assert_eq!(third.next_delivery_id(), "after-takeover");
    send("all-again");
    assert_eq!(second.next_delivery_id(), "all-again");
    assert_eq!(third.next_delivery_id(), "all-again");
}
