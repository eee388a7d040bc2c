//! Black-box tests of the store administration commands: `hookwire token`, `hookwire events`
//! and `hookwire replay`, run as a user runs them (no vendor secret in the environment),
//! against a store filled by a running `hookwire channel` or written directly.

use crate::common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::gateway::{now_ms, store};
use common::{wait_with_deadline, Hookwire, TempDir, DEADLINE};
use hookwire_core::event::{notification_line, Event};
use hookwire_core::store::Store;
use serde_json::{json, Value};

const SECRET: &str = "test-github-secret-admin-77a1";
const PERMISSIONS: &str =
    "create-issues, post-comments, add-labels, post-slack-message, read-events, console, admin";

fn config(dir: &TempDir) -> PathBuf {
    dir.write(
        "config.yaml",
        "channel:
  sources: [github]
sources:
  - name: github
    type: github
    secret_env: T_ADMIN_GITHUB_SECRET
  - name: datadog
    type: datadog
    secret_env: T_ADMIN_DD_TOKEN
",
    )
}

/// One finished command.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `hookwire <args> --config <config>` without any source secret in its environment.
fn hookwire(config: &Path, args: &[&str]) -> Ran {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookwire"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("HOOKWIRE_CONFIG")
        .env_remove("HOOKWIRE_LOG")
        .env_remove("T_ADMIN_GITHUB_SECRET")
        .env_remove("T_ADMIN_DD_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hookwire");
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            pipe.read_to_string(&mut s).unwrap();
            s
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let Some(status) = wait_with_deadline(&mut child, DEADLINE) else {
        let _ = child.kill();
        panic!("hookwire {args:?} did not finish in time");
    };
    Ran {
        code: status.code().expect("exited, not killed"),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Runs a command that must succeed and returns its stdout.
fn ok(config: &Path, args: &[&str]) -> String {
    let r = hookwire(config, args);
    assert_eq!(r.code, 0, "hookwire {args:?} failed: {}", r.stderr);
    r.stdout
}

/// A table's rows (header included), cells split where two or more spaces separate them.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

#[test]
fn tokens_are_created_listed_and_revoked_without_source_secrets() {
    let dir = TempDir::new("admin-tokens");
    let cfg = config(&dir);
    let before = now_ms();
    let r = hookwire(
        &cfg,
        &[
            "token",
            "create",
            "--name",
            "alice",
            "--sources",
            "github,datadog",
            "--permissions",
            "read-events,post-comments",
            "--expires",
            "30d",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The secret alone, on one line, so `$(hookwire token create ...)` is exactly it.
    let secret = r.stdout.strip_suffix('\n').expect("one line");
    assert!(
        secret.starts_with("hwt_")
            && secret.len() == 47
            && secret[4..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{:?}",
        r.stdout
    );
    assert!(r.stderr.contains("created token `alice`"), "{}", r.stderr);
    assert!(
        r.stderr.contains("  sources:     github, datadog\n"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("  permissions: read-events, post-comments\n"),
        "{}",
        r.stderr
    );
    // Where the secret goes: the environment claude starts in, or a file; not .mcp.json.
    assert!(
        r.stderr
            .contains("export HOOKWIRE_TOKEN in the shell that starts claude")
            && r.stderr.contains("--token-file")
            && !r.stderr.contains("${HOOKWIRE_TOKEN}"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains(secret),
        "the secret is printed once, on stdout"
    );

    // What was printed is what the store recognises, with the asked scope and a 30-day life.
    {
        let store = store(&dir);
        let t = store
            .tokens()
            .find(secret)
            .unwrap()
            .expect("the printed secret is the token's");
        assert_eq!(t.name, "alice");
        assert_eq!(t.sources, ["github", "datadog"]);
        assert_eq!(t.permissions, ["read-events", "post-comments"]);
        assert!((before..=now_ms()).contains(&t.created_ms));
        assert_eq!(t.expires_ms, Some(t.created_ms + 30 * 24 * 3600 * 1000));
        store.close(Duration::from_secs(5));
    }

    // A second token without --permissions: a one-way token, with no permission at all.
    let bob = hookwire(&cfg, &["token", "create", "--name", "bob", "--sources", "github"]);
    assert_eq!(bob.code, 0, "no --permissions means none:\n{}", bob.stderr);
    assert!(bob.stderr.contains("  permissions: none\n"), "{}", bob.stderr);
    let bob = bob.stdout;
    // `--permissions ''` says the same explicitly.
    ok(
        &cfg,
        &[
            "token",
            "create",
            "--name",
            "carol",
            "--sources",
            "github",
            "--permissions",
            "",
        ],
    );
    let list = ok(&cfg, &["token", "list"]);
    assert!(!list.contains(secret) && !list.contains(bob.trim()), "{list}");
    let table = rows(&list);
    assert_eq!(
        table[0],
        [
            "NAME",
            "SOURCES",
            "PERMISSIONS",
            "CREATED",
            "EXPIRES",
            "STATUS",
            "ACKED"
        ]
    );
    let row = |name: &str| table.iter().find(|r| r[0] == name).cloned().expect(name);
    let alice = row("alice");
    assert_eq!(alice[1..3], ["github,datadog", "read-events,post-comments"]);
    assert!(alice[3].ends_with('Z') && alice[4].ends_with('Z'), "{alice:?}");
    assert_eq!(alice[5..], ["valid", "0"]);
    assert_eq!(row("bob")[1..3], ["github", "-"]);
    assert_eq!(row("bob")[4..], ["never", "valid", "0"]);
    assert_eq!(row("carol")[1..3], ["github", "-"]);
    assert_eq!(table.len(), 4);

    // A name is never reused, revoked or not.
    let again = hookwire(
        &cfg,
        &[
            "token",
            "create",
            "--name",
            "alice",
            "--sources",
            "github",
            "--permissions",
            "read-events",
        ],
    );
    assert_eq!((again.code, again.stdout.as_str()), (2, ""));
    assert!(
        again.stderr.contains("a token named `alice` exists (valid)"),
        "{}",
        again.stderr
    );

    // Revoke: once, then it is already gone.
    assert_eq!(ok(&cfg, &["token", "revoke", "alice"]), "revoked token `alice`\n");
    let twice = hookwire(&cfg, &["token", "revoke", "alice"]);
    assert_eq!(
        (twice.code, twice.stdout.as_str(), twice.stderr.as_str()),
        (1, "", "hookwire token revoke: token `alice` is already revoked\n")
    );
    let nobody = hookwire(&cfg, &["token", "revoke", "nobody"]);
    assert_eq!(
        (nobody.code, nobody.stderr.as_str()),
        (1, "hookwire token revoke: no token named `nobody`\n")
    );
    let table = rows(&ok(&cfg, &["token", "list"]));
    let alice = table.iter().find(|r| r[0] == "alice").unwrap();
    assert_eq!(alice[5..], ["revoked", "-"], "a revoked token has no position");
    let store = store(&dir);
    assert!(store.tokens().find(secret).unwrap().unwrap().revoked_ms.is_some());
    store.close(Duration::from_secs(5));
}

#[test]
fn bad_token_requests_are_refused_listing_what_is_valid() {
    let dir = TempDir::new("admin-refused");
    let cfg = config(&dir);
    let create = |name: &str, sources: &str, permissions: &str| {
        hookwire(
            &cfg,
            &[
                "token",
                "create",
                "--name",
                name,
                "--sources",
                sources,
                "--permissions",
                permissions,
            ],
        )
    };
    let r = create("a", "github,gitlab", "read-events");
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (
            2,
            "",
            "hookwire token create: no source named `gitlab`; configured: github, datadog\n"
        )
    );
    let r = create("a", "github", "read-events,launch-missiles");
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (
            2,
            "",
            format!("hookwire token create: unknown permission `launch-missiles`; valid: {PERMISSIONS}\n")
                .as_str()
        )
    );
    let r = create("local", "github", "read-events");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("local channel's subscriber"), "{}", r.stderr);
    let r = create("a b", "github", "read-events");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not a valid token name"), "{}", r.stderr);
    let r = hookwire(
        &cfg,
        &[
            "token",
            "create",
            "--name",
            "a",
            "--sources",
            "github",
            "--permissions",
            "read-events",
            "--expires",
            "soon",
        ],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("write e.g. 30d, 12h or 90m"), "{}", r.stderr);
    // Refused before the store was touched.
    assert!(!dir.0.join("hookwire.db").exists());
    let r = hookwire(&cfg, &["token", "list"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no store at"), "{}", r.stderr);

    // A broken config is a usage error too, reported as `check` does.
    let bad = dir.write(
        "bad.yaml",
        "channel: {}\nsources:\n  - name: x\n    type: nope\n    secret_env: X\n",
    );
    let r = hookwire(&bad, &["token", "list"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown source type `nope`"), "{}", r.stderr);
}

/// A small GitHub issues payload (issue 7) carrying `marker`.
fn issue(marker: &str) -> Vec<u8> {
    common::issue_payload(marker, 7, "b")
}

#[test]
fn events_and_replay_work_beside_a_running_channel() {
    let dir = TempDir::new("admin-events");
    let cfg = config(&dir);
    let mut hw = Hookwire::spawn(
        &cfg,
        &[
            ("T_ADMIN_GITHUB_SECRET", SECRET),
            ("T_ADMIN_DD_TOKEN", "admin-datadog-token-3f9e"),
        ],
    );
    hw.handshake();
    for d in ["d-1", "d-2"] {
        assert_eq!(
            hw.post_github("/hooks/github", SECRET, "issues", d, &issue(d))
                .status,
            202
        );
    }
    let first = hw.next_notification();
    assert_eq!(first["params"]["meta"]["delivery_id"], "d-1");
    assert_eq!(hw.next_delivery_id(), "d-2");

    // The list, newest first.
    let table = rows(&ok(&cfg, &["events", "list"]));
    assert_eq!(
        table[0],
        ["ID", "RECEIVED", "SOURCE", "EVENT", "DELIVERY", "FLAGS"]
    );
    assert_eq!(table.len(), 3, "{table:?}");
    assert_eq!(table[1][0], "2");
    assert_eq!(table[1][2..], ["github", "issues.opened", "d-2", "-"]);
    assert_eq!(table[2][0], "1");
    assert_eq!(table[2][4], "d-1");
    let limited = rows(&ok(&cfg, &["events", "list", "--limit", "1"]));
    assert_eq!((limited.len(), limited[1][0].as_str()), (2, "2"));
    let r = hookwire(&cfg, &["events", "list", "--since", "2999-01-01T00:00:00Z"]);
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "", "no stored events match\n")
    );
    let r = hookwire(&cfg, &["events", "list", "--source", "datadog", "--since", "1h"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
    let lines: Vec<Value> = ok(&cfg, &["events", "list", "--json", "--since", "1h"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["id"], 1);
    assert_eq!(lines[1]["delivery_id"], "d-1");
    assert_eq!(lines[1]["replay_of"], Value::Null);
    assert_eq!(lines[1]["folded"], false);

    // One event, by seq, by `evt_` seq or by delivery id: everything kept, no credential.
    let shown = ok(&cfg, &["events", "show", "1"]);
    assert_eq!(ok(&cfg, &["events", "show", "evt_1"]), shown);
    assert_eq!(ok(&cfg, &["events", "show", "d-1"]), shown);
    for line in [
        "id:          1\n",
        "delivery id: d-1\n",
        "  x-github-event: issues\n",
        "\"title\": \"d-1\"",
    ] {
        assert!(shown.contains(line), "{line:?} missing from:\n{shown}");
    }
    assert!(!shown.to_ascii_lowercase().contains("x-hub-signature"), "{shown}");
    let v: Value = serde_json::from_str(&ok(&cfg, &["events", "show", "d-1", "--json"])).unwrap();
    assert_eq!(v["id"], 1);
    assert_eq!(
        v["payload"],
        serde_json::from_slice::<Value>(&issue("d-1")).unwrap()
    );
    assert_eq!(v["payload_format"], "json");
    assert_eq!(
        v["content"], first["params"]["content"],
        "what the session was sent"
    );
    assert_eq!(v["meta"], first["params"]["meta"]);
    assert!(v["headers"]
        .as_array()
        .unwrap()
        .contains(&json!(["x-github-delivery", "d-1"])));
    let missing = hookwire(&cfg, &["events", "show", "d-404"]);
    assert_eq!(
        (missing.code, missing.stderr.as_str()),
        (
            1,
            "hookwire events show: no stored event `d-404` (by id or delivery id)\n"
        )
    );

    // Replay to everyone: the running channel picks the new rows up and delivers them again.
    assert_eq!(
        ok(&cfg, &["replay", "--source", "github"]),
        "queued 2 events of `github` for re-delivery to every subscriber of `github`\n"
    );
    assert_eq!(hw.next_delivery_id(), "d-1");
    assert_eq!(hw.next_delivery_id(), "d-2");
    let table = rows(&ok(&cfg, &["events", "list", "--limit", "2"]));
    assert_eq!(table[1][0], "4");
    assert_eq!(table[1][5], "replay of 2");
    assert_eq!(table[2][5], "replay of 1");

    // Targeted replay: only the token's sessions get it, so the local channel's next event is
    // the one posted after it.
    let bad = hookwire(&cfg, &["replay", "--source", "github", "--token-name", "ci"]);
    assert_eq!(
        (bad.code, bad.stderr.as_str()),
        (2, "hookwire replay: no token named `ci`\n")
    );
    ok(
        &cfg,
        &[
            "token",
            "create",
            "--name",
            "ci",
            "--sources",
            "github",
            "--permissions",
            "read-events",
        ],
    );
    let wrong = hookwire(&cfg, &["replay", "--source", "datadog", "--token-name", "ci"]);
    assert_eq!(wrong.code, 2);
    assert!(
        wrong.stderr.contains("token `ci` does not receive `datadog`"),
        "{}",
        wrong.stderr
    );
    let unknown = hookwire(&cfg, &["replay", "--source", "gitlab"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("configured: github, datadog"),
        "{}",
        unknown.stderr
    );
    assert_eq!(
        ok(
            &cfg,
            &[
                "replay",
                "--source",
                "github",
                "--token-name",
                "ci",
                "--since",
                "1h"
            ]
        ),
        "queued 2 events of `github` for re-delivery to token `ci`\n",
        "originals only, not the earlier replays"
    );
    assert_eq!(
        hw.post_github("/hooks/github", SECRET, "issues", "d-3", &issue("d-3"))
            .status,
        202
    );
    assert_eq!(hw.next_delivery_id(), "d-3");
    let table = rows(&ok(&cfg, &["events", "list", "--limit", "3"]));
    assert_eq!(table[1][4..], ["d-3", "-"]);
    assert_eq!(table[2][4..], ["d-2", "replay of 2, target ci"]);
    assert_eq!(table[3][4..], ["d-1", "replay of 1, target ci"]);
    let _ = hw.close_and_wait();
}

#[test]
fn events_show_keeps_odd_payloads_readable_and_terminal_safe() {
    let dir = TempDir::new("admin-payloads");
    let cfg = config(&dir);
    let now = now_ms();
    let event = |id: &str, payload: &[u8], received_ms: i64| Event {
        source: "datadog".into(),
        event: "alert".into(),
        delivery_id: id.into(),
        line: notification_line("an alert", &[("source".into(), "datadog".into())]),
        received_ms,
        payload: payload.to_vec().into(),
        headers: [("user-agent", "evil\x1b]0;pwned\x07")].into_iter().collect(),
        folded: false,
        ..Default::default()
    };
    {
        let store = store(&dir);
        for e in [
            event("old", b"{}", now - 3 * 3600 * 1000),
            event("text", b"line one\n\x1b[2Jline two", now),
            event("bin", &[0xff, 0x00, 0xfe, 0x01], now),
        ] {
            store.append(e).unwrap().wait_blocking().unwrap();
        }
        store.close(Duration::from_secs(5));
    }
    let recent = rows(&ok(&cfg, &["events", "list", "--since", "2h"]));
    let ids: Vec<&str> = recent[1..].iter().map(|r| r[4].as_str()).collect();
    assert_eq!(ids, ["bin", "text"], "the 3-hour-old event is before --since 2h");

    let text = ok(&cfg, &["events", "show", "text"]);
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    assert!(
        text.contains("  user-agent: evil\\u{1b}]0;pwned\\u{7}\n"),
        "{text}"
    );
    assert!(
        text.contains("\npayload (21 bytes, text):\nline one\n\\u{1b}[2Jline two\n"),
        "{text}"
    );
    assert!(text.contains("\ncontent:\nan alert\n"), "{text}");
    assert!(
        text.contains("\nmeta:\n{\n  \"source\": \"datadog\"\n}\n"),
        "{text}"
    );

    let bin = ok(&cfg, &["events", "show", "bin"]);
    assert!(
        bin.ends_with("\npayload (4 bytes, binary, not shown; first bytes in hex: ff00fe01)\n"),
        "{bin}"
    );
    let v: Value = serde_json::from_str(&ok(&cfg, &["events", "show", "bin", "--json"])).unwrap();
    assert_eq!(
        (&v["payload"], &v["payload_format"], &v["payload_bytes"]),
        (&json!("ff00fe01"), &json!("hex"), &json!(4))
    );
    let v: Value = serde_json::from_str(&ok(&cfg, &["events", "show", "text", "--json"])).unwrap();
    assert_eq!(
        v["payload"], "line one\n\x1b[2Jline two",
        "JSON escapes it itself"
    );
    assert_eq!(v["payload_format"], "text");
}
