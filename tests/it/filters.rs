//! Per-source filters, one test per example of the issue: GitHub workflow runs that failed,
//! Datadog alerts that trigger, issues opened in chosen repositories. A filtered-out event is
//! answered 2xx and never reaches the session; the next passing event is the next thing the
//! session sees. `hookwire render` says whether a payload passes.

use crate::common;

use std::process::Command;

use common::{Hookwire, TempDir};
use serde_json::Value;

const GH: &str = "filter-github-secret";
const DD: &str = "filter-datadog-token";

fn start() -> (TempDir, Hookwire) {
    let dir = TempDir::new("filters");
    let cfg = dir.write(
        "config.yaml",
        r#"channel:
  sources: [ci, issues, datadog]
sources:
  - name: ci
    type: github
    secret_env: F_GH
    filter:
      events: [workflow_run]
      when: 'body.workflow_run.conclusion == "failure"'
  - name: issues
    type: github
    secret_env: F_GH
    filter:
      events: [issues.opened]
      when: 'body.repository.full_name in ["Codertocat/Hello-World", "o/y"]'
  - name: datadog
    type: datadog
    secret_env: F_DD
    filter:
      when: 'action == "triggered"'
"#,
    );
    let mut hw = Hookwire::spawn(&cfg, &[("F_GH", GH), ("F_DD", DD)]);
    hw.handshake();
    (dir, hw)
}

fn fixture(name: &str) -> Value {
    serde_json::from_slice(&common::payload(name)).unwrap()
}

fn post(hw: &Hookwire, path: &str, event: &str, delivery: &str, body: &Value) -> u16 {
    hw.post_github(path, GH, event, delivery, &serde_json::to_vec(body).unwrap())
        .status
}

#[test]
fn only_failed_workflow_runs_reach_the_session() {
    let (_d, mut hw) = start();
    let mut run = fixture("github/workflow_run.completed.json");
    assert_eq!(
        post(&hw, "/hooks/ci", "workflow_run", "run-ok", &run),
        202,
        "filtered is still accepted"
    );
    // Another event type is not in filter.events.
    assert_eq!(
        post(
            &hw,
            "/hooks/ci",
            "issues",
            "not-a-run",
            &fixture("github/issues.opened.json")
        ),
        202
    );
    run["workflow_run"]["conclusion"] = "failure".into();
    assert_eq!(post(&hw, "/hooks/ci", "workflow_run", "run-failed", &run), 202);
    assert_eq!(hw.next_delivery_id(), "run-failed");
}

#[test]
fn only_issues_opened_in_the_chosen_repositories_reach_the_session() {
    let (_d, mut hw) = start();
    let mut issue = fixture("github/issues.opened.json");
    issue["repository"]["full_name"] = "o/elsewhere".into();
    assert_eq!(post(&hw, "/hooks/issues", "issues", "other-repo", &issue), 202);
    let mut closed = fixture("github/issues.opened.json");
    closed["action"] = "closed".into();
    assert_eq!(post(&hw, "/hooks/issues", "issues", "closed", &closed), 202);
    assert_eq!(
        post(
            &hw,
            "/hooks/issues",
            "issues",
            "chosen",
            &fixture("github/issues.opened.json")
        ),
        202
    );
    assert_eq!(hw.next_delivery_id(), "chosen");
}

#[test]
fn only_datadog_alerts_that_trigger_reach_the_session() {
    let (_d, mut hw) = start();
    let dir = common::root().join("tests/fixtures/datadog");
    for file in ["alert.recovered.json", "alert.triggered.json"] {
        let body = std::fs::read(dir.join(file)).unwrap();
        assert_eq!(
            hw.post("/hooks/datadog", &[("X-Hookwire-Token", DD)], &body)
                .status,
            202,
            "{file}"
        );
    }
    let n = hw.next_notification();
    assert_eq!(
        n["params"]["meta"]["event"], "alert.triggered",
        "the recovery was filtered: {n}"
    );
}

#[test]
fn render_says_whether_a_payload_passes_and_check_reports_bad_expressions() {
    let (dir, _hw) = start();
    let cfg = dir.0.join("config.yaml");
    let run = common::root().join("tests/fixtures/payloads/github/workflow_run.completed.json");
    let out = Command::new(env!("CARGO_BIN_EXE_hookwire"))
        .args([
            "render",
            "--config",
            cfg.to_str().unwrap(),
            "ci",
            run.to_str().unwrap(),
            "--event",
            "workflow_run",
        ])
        .env("F_GH", GH)
        .env("F_DD", DD)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("filter: blocked (filter.when is false"), "{err}");
    let bad = dir.write(
        "bad.yaml",
        "channel:\n  sources: [ci]\nsources:\n  - name: ci\n    type: github\n    secret_env: F_GH\n    filter:\n      when: 'body.x =='\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_hookwire"))
        .args(["check", "--config", bad.to_str().unwrap()])
        .env("F_GH", GH)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("bad.yaml:8: sources[0].filter.when: CEL, line 1 column 10: Syntax error"),
        "{err}"
    );
}
