//! `hookwire tail`, run as Claude Code's Monitor tool runs it: events posted signed over real
//! HTTP to a running channel (local) or gateway appear as one line each, in order, once; a
//! restarted tail resumes after what it printed; a hostile payload's escape sequences never
//! reach the output.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::gateway::{os, serve, store, token};
use common::{wait_with_deadline, Hookwire, TempDir, DEADLINE};
use hookwire_core::store::Store;

const SECRET: &str = "test-tail-github-secret-9c0e";

fn config(dir: &TempDir) -> std::path::PathBuf {
    dir.write(
        "config.yaml",
        "channel:
  sources: [github]
sources:
  - name: github
    type: github
    secret_env: T_TAIL_GITHUB_SECRET
",
    )
}

/// `hookwire tail <args>`, its lines read as they come.
fn tail(args: &[&str], env: &[(&str, &str)]) -> Hookwire {
    let mut all = vec![os("tail")];
    all.extend(args.iter().map(|a| os(a)));
    Hookwire::spawn_args(&all, env, false)
}

fn tail_local(config: &Path, extra: &[&str]) -> Hookwire {
    let c = config.to_str().unwrap();
    let mut args = vec!["--config", c];
    args.extend_from_slice(extra);
    tail(&args, &[])
}

/// Stops a tail as a monitor does (SIGTERM) and waits for a clean exit.
fn stop(t: &mut Hookwire) {
    let ok = Command::new("kill")
        .args(["-s", "TERM", &t.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = wait_with_deadline(&mut t.child, DEADLINE).expect("tail exits on SIGTERM");
    assert!(status.success(), "{status:?}; stderr:\n{}", t.stderr_text());
}

/// One output line's five tab-separated fields.
fn fields(line: &str) -> Vec<String> {
    let f: Vec<String> = line.split('\t').map(str::to_owned).collect();
    assert_eq!(f.len(), 5, "time, source, event, summary, delivery id: {line:?}");
    f
}

/// Posts issue `number` opened, as delivery `delivery`.
fn post(ch: &Hookwire, delivery: &str, number: u64) {
    let body = common::issue_payload(&format!("title {delivery}"), number, "b");
    let r = ch.post_github("/hooks/github", SECRET, "issues", delivery, &body);
    assert_eq!(r.status, 202, "{}", r.body);
}

#[test]
fn local_events_appear_once_in_order_and_a_restart_resumes() {
    let dir = TempDir::new("tail-local");
    let cfg = config(&dir);
    let ch = Hookwire::spawn(&cfg, &[("T_TAIL_GITHUB_SECRET", SECRET)]);
    for (n, id) in [(1, "tl-1"), (2, "tl-2"), (3, "tl-3")] {
        post(&ch, id, n);
    }
    let mut t = tail_local(&cfg, &["--from-start"]);
    for (n, id) in [(1, "tl-1"), (2, "tl-2"), (3, "tl-3")] {
        let f = fields(&t.next_line());
        assert_eq!(f[1], "github");
        assert_eq!(f[2], "issues.opened");
        assert!(f[3].contains(&format!("issue #{n} opened")), "summary: {f:?}");
        assert_eq!(f[4], id);
        assert!(f[0].ends_with('Z'), "UTC time: {f:?}");
    }
    // Followed as it is committed.
    post(&ch, "tl-4", 4);
    assert_eq!(fields(&t.next_line())[4], "tl-4");
    stop(&mut t);

    // What arrived while tail was stopped comes first, and nothing printed before repeats.
    post(&ch, "tl-5", 5);
    let mut t = tail_local(&cfg, &[]);
    assert_eq!(fields(&t.next_line())[4], "tl-5");
    post(&ch, "tl-6", 6);
    assert_eq!(fields(&t.next_line())[4], "tl-6");
    stop(&mut t);

    // tail acknowledged nothing: no subscriber of its own holds back eviction, and the
    // session's backlog is untouched.
    let db = store(&dir);
    let names: Vec<String> = db.cursors().unwrap().into_iter().map(|c| c.name).collect();
    assert!(!names.iter().any(|n| n.contains("tail")), "{names:?}");
    db.close(std::time::Duration::from_secs(2));
    assert!(dir.0.join("hookwire.db.tail-position").exists());
}

#[test]
fn a_hostile_payload_prints_no_escape_sequence() {
    let dir = TempDir::new("tail-hostile");
    let cfg = config(&dir);
    let ch = Hookwire::spawn(&cfg, &[("T_TAIL_GITHUB_SECRET", SECRET)]);
    let title = "\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[31mred\u{9b}1m\rfake\tline";
    // The summary line names the repository and the author: both hostile here.
    let mut body: serde_json::Value =
        serde_json::from_slice(&common::issue_payload(title, 7, "\u{1b}[8mhidden\u{1b}[0m")).unwrap();
    body["repository"]["full_name"] = title.into();
    body["issue"]["user"]["login"] = "\u{1b}[1;31mmallory\u{1b}[0m".into();
    body["sender"]["login"] = "\u{1b}[1;31mmallory\u{1b}[0m".into();
    let body = serde_json::to_vec(&body).unwrap();
    let r = ch.post_github("/hooks/github", SECRET, "issues", "tl-hostile", &body);
    assert_eq!(r.status, 202, "{}", r.body);
    let mut t = tail_local(&cfg, &["--from-start"]);
    let line = t.next_line();
    let f = fields(&line);
    assert_eq!(f[4], "tl-hostile");
    assert!(f[3].contains("issue #7 opened"), "{line:?}");
    assert!(
        !line.chars().any(|c| c.is_control() && c != '\t'),
        "no control character (ESC, BEL, CSI, CR) reaches the terminal: {line:?}"
    );
    stop(&mut t);
}

#[test]
fn gateway_events_appear_once_in_order_and_a_restart_resumes() {
    let dir = TempDir::new("tail-gw");
    let cfg = config(&dir);
    let gw = serve(&cfg, "127.0.0.1:0", &[("T_TAIL_GITHUB_SECRET", SECRET)]);
    let db = store(&dir);
    let secret = token(&db, "alice-tail", &["github"], &[], None);
    for (n, id) in [(1, "tg-1"), (2, "tg-2"), (3, "tg-3")] {
        post(&gw, id, n);
    }
    let url = format!("http://{}", gw.addr);
    let env = [("HOOKWIRE_TOKEN", secret.as_str())];
    let mut t = tail(&["--gateway", &url], &env);
    for id in ["tg-1", "tg-2", "tg-3"] {
        let f = fields(&t.next_line());
        assert_eq!((f[1].as_str(), f[4].as_str()), ("github", id));
    }
    post(&gw, "tg-4", 4);
    assert_eq!(fields(&t.next_line())[4], "tg-4");
    stop(&mut t);

    post(&gw, "tg-5", 5);
    let mut t = tail(&["--gateway", &url], &env);
    assert_eq!(fields(&t.next_line())[4], "tg-5");
    stop(&mut t);
    assert!(!t.stderr_text().contains(&secret), "the token was logged");
    db.close(std::time::Duration::from_secs(2));
}
