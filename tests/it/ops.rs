//! Operating hookwire: `/metrics` counts, `/healthz` and `/readyz`, SIGHUP reload, SIGTERM
//! under load, JSON logs and `hookwire doctor`, all black-box against the real binary.

use crate::common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::gateway::{self, os};
use common::{github_signature, issue, wait_with_deadline, Hookwire, TempDir, DEADLINE};
use hookwire_core::store::sqlite::StoreOptions;
use hookwire_core::store::{SqliteStore, Store};
use serde_json::{json, Value};

const SECRET: &str = "test-ops-github-secret-3e8a";

/// `hookwire serve` on a free port.
fn serve(cfg: &Path) -> Hookwire {
    gateway::serve(cfg, "127.0.0.1:0", &[("T_GH", SECRET)])
}

/// `hookwire channel --gateway http://ADDR` with `token`.
fn linked(gw: &Hookwire, token: &str) -> Hookwire {
    gateway::linked(gw, &[], &[("HOOKWIRE_TOKEN", token)])
}

/// [`gateway::token`] without permissions, on the database file `db`, closed after.
fn token(db: &Path, name: &str, sources: &[&str]) -> String {
    let store = SqliteStore::open(StoreOptions::new(db)).unwrap();
    let t = gateway::token(&store, name, sources, &[], None);
    store.close(Duration::from_secs(1));
    t
}

fn signal(hw: &Hookwire, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &hw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// The value of the series `name{labels}` in a Prometheus page (labels as rendered).
fn series(page: &str, name_and_labels: &str) -> Option<f64> {
    page.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(name_and_labels)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Polls `/metrics` until `done` holds for the page; fails with the last page after the deadline.
fn metrics_until(hw: &Hookwire, done: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + DEADLINE;
    loop {
        let page = hw.call("GET", "/metrics");
        assert_eq!(page.status, 200);
        if done(&page.body) {
            return page.body;
        }
        assert!(
            Instant::now() < end,
            "metrics never reached the condition:\n{}",
            page.body
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn metrics_count_a_scripted_mix_of_webhooks_exactly() {
    let dir = TempDir::new("ops-metrics");
    let cfg = dir.write(
        "config.yaml",
        "limits:\n  max_body_bytes: 65536\nsources:\n  - name: github\n    type: github\n    secret_env: T_GH\n    filter:\n      events: [issues.opened]\n",
    );
    let gw = serve(&cfg);
    let alice = token(&dir.0.join("hookwire.db"), "alice", &["github"]);
    let mut session = linked(&gw, &alice);
    session.handshake();
    gw.wait_stderr("session connected");

    // 3 good, 1 repeat, 2 forged, 1 filtered, 1 ping, 1 oversized, 1 not POST, 1 not JSON.
    for d in ["d-1", "d-2", "d-3"] {
        assert_eq!(
            gw.post_github("/hooks/github", SECRET, "issues", d, &issue(d))
                .status,
            202
        );
    }
    assert_eq!(
        gw.post_github("/hooks/github", SECRET, "issues", "d-1", &issue("d-1"))
            .status,
        202
    );
    for d in ["f-1", "f-2"] {
        assert_eq!(
            gw.post_github("/hooks/github", "wrong", "issues", d, &issue(d))
                .status,
            401
        );
    }
    let run = common::payload("github/workflow_run.completed.json");
    assert_eq!(
        gw.post_github("/hooks/github", SECRET, "workflow_run", "w-1", &run)
            .status,
        202
    );
    let ping = common::payload("github/ping.json");
    assert_eq!(
        gw.post_github("/hooks/github", SECRET, "ping", "p-1", &ping)
            .status,
        202
    );
    let big = vec![b' '; 70_000];
    let sig = github_signature(SECRET, &big);
    let headers = [
        ("X-GitHub-Event", "issues"),
        ("X-GitHub-Delivery", "b-1"),
        ("X-Hub-Signature-256", sig.as_str()),
    ];
    assert_eq!(gw.post_status_raw("/hooks/github", &headers, &big, false), 413);
    assert_eq!(gw.call("GET", "/hooks/github").status, 405);
    assert_eq!(
        gw.post_github("/hooks/github", SECRET, "issues", "j-1", b"{not json")
            .status,
        400
    );
    assert_eq!(gw.call("POST", "/nowhere").status, 404);

    for _ in 0..3 {
        session.next_notification();
    }
    // Acknowledged by the session: the backlog drains to zero.
    let page = metrics_until(&gw, |p| {
        series(p, r#"hookwire_store_backlog_events{subscriber="alice"}"#) == Some(0.0)
    });
    let count = |outcome: &str| {
        series(
            &page,
            &format!(r#"hookwire_webhooks_total{{source="github",outcome="{outcome}"}}"#),
        )
    };
    let expected = [
        ("accepted", 3.0),
        ("replay", 1.0),
        ("bad_signature", 2.0),
        ("filtered", 1.0),
        ("acknowledged", 1.0),
        ("too_large", 1.0),
        ("bad_request", 2.0),
        ("throttled", 0.0),
        ("forbidden", 0.0),
        ("failed", 0.0),
        ("folded", 0.0),
        ("timeout", 0.0),
    ];
    for (outcome, n) in expected {
        assert_eq!(count(outcome), Some(n), "outcome {outcome} in:\n{page}");
    }
    // Every request that reached verification, and only the stored ones rendered and committed.
    assert_eq!(
        series(&page, r#"hookwire_verify_seconds_count{source="github"}"#),
        Some(9.0),
        "{page}"
    );
    assert_eq!(
        series(&page, r#"hookwire_render_seconds_count{source="github"}"#),
        Some(3.0),
        "{page}"
    );
    assert_eq!(
        series(&page, r#"hookwire_commit_seconds_count{source="github"}"#),
        Some(3.0),
        "{page}"
    );
    assert_eq!(series(&page, "hookwire_sessions_connected"), Some(1.0), "{page}");
    assert_eq!(
        series(
            &page,
            r#"hookwire_store_oldest_unacked_age_seconds{subscriber="alice"}"#
        ),
        Some(0.0)
    );

    let _ = session.child.kill();
    let _ = session.child.wait();
    metrics_until(&gw, |p| series(p, "hookwire_sessions_connected") == Some(0.0));
}

#[test]
fn local_mode_reports_the_backlog_until_the_session_initializes() {
    let dir = TempDir::new("ops-local");
    let cfg = dir.write(
        "config.yaml",
        "metrics: true\nchannel:\n  sources: [github]\nsources:\n  - name: github\n    type: github\n    secret_env: T_GH\n",
    );
    let mut hw = Hookwire::spawn(&cfg, &[("T_GH", SECRET)]);
    assert_eq!(hw.call("GET", "/healthz").status, 200);
    assert_eq!(hw.call("GET", "/readyz").status, 200);
    for d in ["l-1", "l-2"] {
        assert_eq!(
            hw.post_github("/hooks/github", SECRET, "issues", d, &issue(d))
                .status,
            202
        );
    }
    // Held until `notifications/initialized`: both wait in the store, the oldest aging.
    let page = metrics_until(&hw, |p| {
        series(
            p,
            r#"hookwire_store_oldest_unacked_age_seconds{subscriber="local"}"#,
        )
        .is_some_and(|a| a > 0.0)
    });
    assert_eq!(
        series(&page, r#"hookwire_store_backlog_events{subscriber="local"}"#),
        Some(2.0),
        "{page}"
    );
    hw.handshake();
    hw.next_notification();
    hw.next_notification();
    metrics_until(&hw, |p| {
        series(p, r#"hookwire_store_backlog_events{subscriber="local"}"#) == Some(0.0)
    });
}

#[test]
fn metrics_are_off_in_local_mode_unless_asked() {
    let dir = TempDir::new("ops-nometrics");
    let cfg = dir.write(
        "config.yaml",
        "sources:\n  - name: github\n    type: github\n    secret_env: T_GH\n",
    );
    let hw = Hookwire::spawn(&cfg, &[("T_GH", SECRET)]);
    assert_eq!(hw.call("GET", "/healthz").status, 200);
    // No route, so the webhook fallback answers: no source there.
    assert_eq!(hw.call("GET", "/metrics").status, 404);
}

#[test]
fn readiness_flips_while_the_store_cannot_take_writes() {
    let dir = TempDir::new("ops-ready");
    let cfg = dir.write(
        "config.yaml",
        "sources:\n  - name: github\n    type: github\n    secret_env: T_GH\n",
    );
    let gw = serve(&cfg);
    let ready = gw.call("GET", "/readyz");
    assert_eq!((ready.status, ready.body.lines().next()), (200, Some("ready")));

    // Another process holds the database's write lock, as a stuck writer or a full disk
    // would leave it unable to commit.
    let other = rusqlite::Connection::open(dir.0.join("hookwire.db")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let blocked = gw.call("GET", "/readyz");
    assert_eq!(blocked.status, 503, "{}", blocked.body);
    assert!(blocked.body.contains("store: "), "{}", blocked.body);
    assert_eq!(gw.call("GET", "/healthz").status, 200, "alive all the same");

    other.execute_batch("ROLLBACK").unwrap();
    let again = gw.call("GET", "/readyz");
    assert_eq!(again.status, 200, "{}", again.body);
}

#[test]
fn sighup_keeps_the_old_config_when_the_new_one_is_broken_and_applies_a_good_one() {
    let dir = TempDir::new("ops-reload");
    let good = "sources:\n  - name: github\n    type: github\n    secret_env: T_GH\n";
    let cfg = dir.write("config.yaml", good);
    let gw = serve(&cfg);
    let alice = token(&dir.0.join("hookwire.db"), "alice", &["github", "ops"]);
    let mut session = linked(&gw, &alice);
    session.handshake();
    gw.wait_stderr("session connected");
    assert_eq!(
        gw.post_github("/hooks/ops", SECRET, "issues", "r-0", &issue("r-0"))
            .status,
        404
    );

    dir.write(
        "config.yaml",
        "sources:\n  - name: github\n    type: gitbub\n    secret_env: T_GH\n    colour: red\n",
    );
    signal(&gw, "-HUP");
    gw.wait_stderr("config reload refused");
    let log = gw.stderr_text();
    assert!(
        log.contains("config.yaml:3") && log.contains("unknown source type `gitbub`"),
        "{log}"
    );
    // Still serving the old config, to the same session.
    assert_eq!(
        gw.post_github("/hooks/github", SECRET, "issues", "r-1", &issue("r-1"))
            .status,
        202
    );
    assert_eq!(
        session.next_notification()["params"]["meta"]["delivery_id"],
        "r-1"
    );

    dir.write(
        "config.yaml",
        &format!(
            "{good}  - name: ops\n    type: github\n    path: /hooks/ops\n    secret_env: T_GH\n\
             console:\n  max_sessions: 3\n"
        ),
    );
    signal(&gw, "-HUP");
    gw.wait_stderr("config reloaded");
    let log = gw.stderr_text();
    assert!(
        log.contains("sections=console") && log.contains("apply only after a restart"),
        "a console change is named as waiting for a restart: {log}"
    );
    assert_eq!(
        gw.post_github("/hooks/ops", SECRET, "issues", "r-2", &issue("r-2"))
            .status,
        202
    );
    assert_eq!(
        session.next_notification()["params"]["meta"]["delivery_id"],
        "r-2"
    );
    // The repeat of a delivery accepted before the reload is still a repeat.
    assert_eq!(
        gw.post_github("/hooks/github", SECRET, "issues", "r-1", &issue("r-1"))
            .status,
        202
    );
    assert_eq!(
        gw.post_github("/hooks/github", SECRET, "issues", "r-3", &issue("r-3"))
            .status,
        202
    );
    assert_eq!(
        session.next_notification()["params"]["meta"]["delivery_id"],
        "r-3"
    );

    let log = gw.stderr_text();
    assert_eq!(
        log.matches("session connected").count(),
        1,
        "the session was never dropped:\n{log}"
    );
    let page = gw.call("GET", "/metrics").body;
    assert_eq!(
        series(&page, r#"hookwire_config_reloads_total{result="failed"}"#),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        series(&page, r#"hookwire_config_reloads_total{result="ok"}"#),
        Some(1.0),
        "{page}"
    );
}

#[test]
fn sigterm_under_load_keeps_every_event_it_answered_2xx() {
    let dir = TempDir::new("ops-term");
    let cfg = dir.write(
        "config.yaml",
        "sources:\n  - name: github\n    type: github\n    secret_env: T_GH\n",
    );
    let mut gw = serve(&cfg);
    let addr = gw.addr.clone();
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (addr, accepted, sent, stop) = (addr.clone(), accepted.clone(), sent.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let id = format!("t-{w}-{i}");
                    let body = issue(&id);
                    let sig = github_signature(SECRET, &body);
                    sent.fetch_add(1, Ordering::Relaxed);
                    let r = agent
                        .post(&format!("http://{addr}/hooks/github"))
                        .set("X-GitHub-Event", "issues")
                        .set("X-GitHub-Delivery", &id)
                        .set("X-Hub-Signature-256", &sig)
                        .send_bytes(&body);
                    match r {
                        Ok(resp) if resp.status() / 100 == 2 => accepted.lock().unwrap().push(id),
                        Ok(_) | Err(ureq::Error::Status(..)) => {}
                        // Refused or cut: the listener is gone.
                        Err(ureq::Error::Transport(_)) => return,
                    }
                }
            })
        })
        .collect();
    while accepted.lock().unwrap().len() < 300 {
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(&gw, "-TERM");
    let status = wait_with_deadline(&mut gw.child, DEADLINE).expect("the gateway did not exit after SIGTERM");
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert!(status.success(), "exit status {status:?}");
    gw.wait_stderr("store closed");

    let accepted = accepted.lock().unwrap().clone();
    let store = SqliteStore::open(StoreOptions::new(dir.0.join("hookwire.db"))).unwrap();
    let stored: HashSet<String> = store
        .list(&hookwire_core::store::ListQuery {
            limit: 1_000_000,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|e| e.delivery_id)
        .collect();
    store.close(Duration::from_secs(1));
    let missing: Vec<_> = accepted.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered 2xx are not in the store: {missing:?}",
        missing.len(),
        accepted.len()
    );
    assert!(accepted.len() >= 300 && sent.load(Ordering::Relaxed) >= accepted.len());
}

#[test]
fn json_logs_carry_the_webhook_span() {
    let dir = TempDir::new("ops-json");
    let cfg = dir.write(
        "config.yaml",
        "channel:\n  sources: [github]\nsources:\n  - name: github\n    type: github\n    secret_env: T_GH\n",
    );
    let mut hw = Hookwire::spawn_args(
        &[
            os("--log-format"),
            os("json"),
            os("channel"),
            os("--config"),
            cfg.as_os_str(),
            os("--listen"),
            os("127.0.0.1:0"),
        ],
        &[("T_GH", SECRET)],
        true,
    );
    hw.handshake();
    assert_eq!(
        hw.post_github("/hooks/github", SECRET, "issues", "j-7", &issue("j-7"))
            .status,
        202
    );
    hw.next_notification();
    hw.wait_stderr("\"stored\"");
    let lines: Vec<Value> = hw
        .stderr
        .lock()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let stored = lines
        .iter()
        .find(|l| l["fields"]["message"] == "stored")
        .expect("a `stored` line");
    assert_eq!(stored["span"]["name"], "webhook");
    assert_eq!(stored["span"]["source"], "github");
    assert_eq!(stored["span"]["event"], "issues");
    assert_eq!(stored["span"]["delivery_id"], "j-7");
    assert_eq!(stored["level"], "DEBUG");
}

fn doctor(cfg: &Path, env: &[(&str, &str)], path: Option<PathBuf>) -> (i32, String) {
    let home = TempDir::new("ops-doctor-home");
    doctor_at_home(cfg, &home.0, env, path)
}

/// [`doctor`] with `home` as HOME (and no CLAUDE_CONFIG_DIR unless `env` sets it).
fn doctor_at_home(cfg: &Path, home: &Path, env: &[(&str, &str)], path: Option<PathBuf>) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookwire"));
    cmd.args(["doctor", "--config"])
        .arg(cfg)
        .env("HOME", home)
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("HOOKWIRE_LOG");
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn doctor_finds_what_is_missing_and_prints_the_setup() {
    let dir = TempDir::new("ops-doctor");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let cfg = dir.write(
        "config.yaml",
        &format!(
            "listen: 127.0.0.1:{port}\nsources:\n  - name: github\n    type: github\n    secret_env: T_GH\n  - name: datadog\n    type: datadog\n    secret_env: T_DD\n"
        ),
    );
    // The real Claude Code CLI from tests/node (npm ci), first on PATH.
    let bin = common::root().join("tests/node/node_modules/.bin");
    assert!(
        bin.join("claude").exists(),
        "run `npm ci --prefix tests/node` first (CI does)"
    );
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let (code, out) = doctor(&cfg, &[("T_GH", "doctor-github-secret-x1")], Some(path.into()));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ok    config:"), "{out}");
    assert!(
        out.contains("FAIL  secrets:") && out.contains("environment variable T_DD is not set"),
        "{out}"
    );
    assert!(!out.contains("T_GH is not set"), "{out}");
    assert!(
        out.contains(&format!("FAIL  listen: 127.0.0.1:{port} is in use")),
        "{out}"
    );
    assert!(out.contains("ok    store:"), "{out}");
    assert!(out.contains("ok    claude: Claude Code 2.1.331"), "{out}");
    assert!(
        out.contains("claude --dangerously-load-development-channels server:hookwire"),
        "{out}"
    );
    let json_start = out.find("{\n").expect("a JSON entry");
    let json_end = out[json_start..].find("\n}\n").expect("its end") + json_start + 2;
    let entry: Value = serde_json::from_str(&out[json_start..json_end]).unwrap();
    let server = &entry["mcpServers"]["hookwire"];
    assert_eq!(
        server["args"],
        json!(["channel", "--config", cfg.canonicalize().unwrap()])
    );
    // No secret and no `${VAR}` in the entry: the channel inherits them from the shell that
    // starts claude, and an unset `${VAR}` would be passed as its literal text.
    assert!(server.get("env").is_none(), "{server}");
    assert!(
        out.contains("Export in the shell you start claude from") && out.contains("\n  T_DD T_GH\n"),
        "{out}"
    );
    assert!(
        !out.contains("doctor-github-secret"),
        "a secret's value was printed:\n{out}"
    );

    drop(busy);
    let (code, out) = doctor(
        &cfg,
        &[
            ("T_GH", "doctor-github-secret-x1"),
            ("T_DD", "doctor-datadog-token-y2"),
        ],
        None,
    );
    assert!(out.contains("ok    secrets:") && out.contains("is free"), "{out}");
    // Without claude on PATH this is a warning, not a failure.
    let claude_found = out.contains("ok    claude:");
    assert!(claude_found || out.contains("warn  claude:"), "{out}");
    assert_eq!(code, 0, "{out}");
}

/// A Claude Code debug log line as Claude Code 2.1.331 writes it (`<ISO time> [DEBUG]
/// MCP server "<name>": <message>`), for a message of its channel gate.
fn skipped(at: &str, server: &str, reason: &str) -> String {
    format!("{at} [DEBUG] MCP server \"{server}\": Channel notifications skipped: {reason}\n")
}

/// Writes `<dir>/debug/<name>` with `lines`, last modified `age` ago.
fn debug_log(dir: &Path, name: &str, lines: &[String], age: Duration) {
    let debug = dir.join("debug");
    std::fs::create_dir_all(&debug).unwrap();
    let path = debug.join(name);
    let mut text = String::from("2026-12-03T09:14:01.002Z [DEBUG] [STARTUP] MCP configs resolved in 12 ms\n");
    text.extend(lines.iter().cloned());
    std::fs::write(&path, text).unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(std::time::SystemTime::now() - age).unwrap();
}

#[test]
fn doctor_reports_the_channel_notifications_claude_code_skipped() {
    let dir = TempDir::new("ops-doctor-logs");
    let cfg = dir.write(
        "config.yaml",
        "listen: 127.0.0.1:0\nsources:\n  - name: github\n    type: github\n    secret_env: T_GH\n",
    );
    let env = [("T_GH", "doctor-github-secret-x1")];
    let home = TempDir::new("ops-doctor-logs-home");
    let claude = home.0.join(".claude");
    let hour = Duration::from_secs(3600);
    // Six logs: only the newest five are read, so the oldest one's reason is not reported.
    debug_log(
        &claude,
        "0a6c1f52-0000-4000-8000-000000000001.txt",
        &[skipped(
            "2026-12-01T08:00:00.000Z",
            "hookwire",
            "channels feature is not currently available",
        )],
        6 * hour,
    );
    for (i, age) in [5, 4, 3].into_iter().enumerate() {
        debug_log(&claude, &format!("filler-{i}.txt"), &[], age * hour);
    }
    debug_log(
        &claude,
        "0a6c1f52-0000-4000-8000-000000000005.txt",
        &[
            skipped(
                "2026-12-03T09:14:02.118Z",
                "hookwire",
                "server hookwire not in --channels list for this session",
            ),
            // Every MCP server goes through the gate: one that is no channel is not news.
            skipped(
                "2026-12-03T09:14:02.120Z",
                "github",
                "server did not declare claude/channel capability",
            ),
        ],
        2 * hour,
    );
    debug_log(
        &claude,
        "0a6c1f52-0000-4000-8000-000000000006.txt",
        &[
            skipped("2026-12-03T10:01:44.501Z", "hookwire", "server hookwire not in --channels list for this session"),
            skipped(
                "2026-12-03T10:01:45.002Z",
                "hookwire",
                "channels not enabled by org policy (set channelsEnabled: true in managed settings)",
            ),
            "2026-12-03T10:01:45.010Z [DEBUG] MCP server \"hookwire\": notifications/claude/channel (312 chars)\n".into(),
        ],
        hour,
    );
    std::os::unix::fs::symlink(
        claude.join("debug/0a6c1f52-0000-4000-8000-000000000006.txt"),
        claude.join("debug/latest"),
    )
    .unwrap();

    let (code, out) = doctor_at_home(&cfg, &home.0, &env, Some("/nonexistent".into()));
    assert_eq!(code, 1, "skips in the latest session fail:\n{out}");
    assert!(
        out.contains(&format!(
            "FAIL  channel events: Claude Code skipped channel notifications 3 time(s) in the newest 5 debug log(s) in {}",
            claude.join("debug").display()
        )),
        "{out}"
    );
    assert!(
        out.contains("- \"hookwire\": server hookwire not in --channels list for this session (2 time(s), newest 2026-12-03T10:01:44.501Z, in the latest session)\n          fix: start claude with `--dangerously-load-development-channels server:hookwire`"),
        "{out}"
    );
    assert!(
        out.contains("- \"hookwire\": channels not enabled by org policy (set channelsEnabled: true in managed settings) (1 time(s), newest 2026-12-03T10:01:45.002Z, in the latest session)\n          fix: an Owner of your organisation must turn channels on"),
        "{out}"
    );
    assert!(!out.contains("did not declare"), "{out}");
    assert!(
        !out.contains("feature is not currently available"),
        "only the newest 5 logs:\n{out}"
    );

    // CLAUDE_CONFIG_DIR moves the logs, as it moves the rest of Claude Code's files. Skips
    // only in an older session are a warning: the latest session may have fixed them.
    let moved = TempDir::new("ops-doctor-logs-config");
    debug_log(
        &moved.0,
        "a.txt",
        &[skipped(
            "2026-12-02T17:30:00.000Z",
            "plugin:hookwire:hookwire",
            "plugin hookwire@acme-tools is not on the approved channels allowlist (use --dangerously-load-development-channels for local dev)",
        )],
        2 * hour,
    );
    debug_log(&moved.0, "b.txt", &[], hour);
    let config_dir = moved.0.to_str().unwrap();
    let (code, out) = doctor_at_home(
        &cfg,
        &home.0,
        &[env[0], ("CLAUDE_CONFIG_DIR", config_dir)],
        Some("/nonexistent".into()),
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "warn  channel events: Claude Code skipped channel notifications 1 time(s) in the newest 2 debug log(s) in {}",
            moved.0.join("debug").display()
        )),
        "{out}"
    );
    assert!(
        out.contains("fix: launch with `--dangerously-load-development-channels plugin:hookwire@<marketplace>` instead of --channels"),
        "{out}"
    );

    // No debug logs at all: nothing to report.
    let empty = TempDir::new("ops-doctor-logs-none");
    let (code, out) = doctor_at_home(&cfg, &empty.0, &env, Some("/nonexistent".into()));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok    channel events: no Claude Code debug logs in"),
        "{out}"
    );
}
