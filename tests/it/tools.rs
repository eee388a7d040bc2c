//! Reply and action tools (issue 6), black-box: `hookwire channel` is driven as Claude Code
//! drives it, while a fake GitHub API and a fake Slack Web API (`common::fakes`: axum servers
//! in the test, pointed at by `tools.*.api_url`) record every request they get. The same
//! flows driven by the official MCP TypeScript SDK client are in tests/it/real_clients.rs.
//!
//! - the permission matrix: a tool without its permission is absent from `tools/list` and
//!   refused by `tools/call`; a granted tool outside its allowlist is refused and nothing is
//!   sent; a granted, in-scope call reaches the fake API exactly once, byte for byte as
//!   expected;
//! - the Channels overview's example end to end: a Datadog alert (5xx rate on /api/checkout)
//!   reaches the session, the client reads it with `get_event` and posts to "#incidents"
//!   with `slack_post_message`; the fake Slack receives it and the audit shows it;
//! - configuration errors: a granted permission without its `tools:` section, an inline
//!   secret, an unknown permission.

use crate::common;

use common::fakes::{tools_config, FakeApis, DD_TOKEN, ENV, GITHUB_TOKEN, SLACK_TOKEN};
use common::{tool_text, Hookwire, TempDir};
use serde_json::{json, Value};

fn start(apis: &FakeApis, permissions: &[&str]) -> (TempDir, Hookwire, Value) {
    let dir = TempDir::new("tools");
    let cfg = tools_config(&dir, apis, permissions);
    let mut hw = Hookwire::spawn(&cfg, ENV);
    let init = hw.handshake();
    (dir, hw, init)
}

fn listed(hw: &mut Hookwire) -> Vec<String> {
    let r = hw.rpc("tools/list", json!({}));
    r["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {r}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// An in-scope call of every tool, with the request the fake API must get for it.
fn sample_calls() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "create-issues",
            "github_create_issue",
            json!({"repo": "acme/web", "title": "t", "body": "b"}),
        ),
        (
            "post-comments",
            "github_comment",
            json!({"repo": "acme/web", "number": 1, "body": "b"}),
        ),
        (
            "add-labels",
            "github_add_labels",
            json!({"repo": "acme/web", "number": 1, "labels": ["bug"]}),
        ),
        (
            "post-slack-message",
            "slack_post_message",
            json!({"channel": "#incidents", "text": "x"}),
        ),
        ("read-events", "get_event", json!({"id": "1"})),
        ("read-events", "list_events", json!({})),
    ]
}

#[test]
fn without_permissions_there_are_no_tools_and_calls_are_refused() {
    let apis = FakeApis::start();
    let (_d, mut hw, init) = start(&apis, &[]);
    assert_eq!(
        init["capabilities"],
        json!({"experimental": {"claude/channel": {}}}),
        "no tools capability without a granted tool"
    );
    assert!(
        init["instructions"].as_str().unwrap().contains("one-way"),
        "{init}"
    );
    let r = hw.rpc("tools/list", json!({}));
    assert_eq!(r["error"]["code"], -32601, "{r}");
    for (_, tool, args) in sample_calls() {
        let r = hw.call_tool(tool, args);
        assert_eq!(r["isError"], true, "{tool}: {r}");
        assert!(tool_text(&r).contains("not allowed"), "{tool}: {r}");
    }
    // A made-up name reads the same with or without granted tools.
    let r = hw.call_tool("nope", json!({}));
    assert_eq!(tool_text(&r), "unknown tool `nope`; nothing was done", "{r}");
    assert!(apis.seen().is_empty(), "nothing may be sent: {:?}", apis.seen());
}

#[test]
fn each_permission_offers_exactly_its_tools() {
    let apis = FakeApis::start();
    let groups: [(&str, &[&str]); 5] = [
        ("create-issues", &["github_create_issue"]),
        ("post-comments", &["github_comment"]),
        ("add-labels", &["github_add_labels"]),
        ("post-slack-message", &["slack_post_message"]),
        ("read-events", &["get_event", "list_events"]),
    ];
    for (permission, tools) in groups {
        let (_d, mut hw, init) = start(&apis, &[permission]);
        assert_eq!(init["capabilities"]["tools"], json!({}), "{permission}");
        assert!(
            init["capabilities"]["experimental"]
                .get("claude/channel/permission")
                .is_none(),
            "permission relay is never declared"
        );
        assert_eq!(listed(&mut hw), tools, "{permission}");
        let instructions = init["instructions"].as_str().unwrap();
        assert!(!instructions.contains("one-way"), "{instructions}");
        assert!(
            instructions.contains(tools[0]),
            "the instructions name the tools: {instructions}"
        );
        let before = apis.seen().len();
        for (needs, tool, args) in sample_calls() {
            if needs == permission {
                continue;
            }
            let r = hw.call_tool(tool, args);
            assert_eq!(r["isError"], true, "{permission} → {tool}: {r}");
            assert!(
                tool_text(&r).contains(&format!("`{needs}`")),
                "the refusal names the missing permission: {r}"
            );
        }
        let r = hw.call_tool("nope", json!({}));
        assert_eq!(tool_text(&r), "unknown tool `nope`; nothing was done", "{r}");
        assert_eq!(
            apis.seen().len(),
            before,
            "{permission}: a refused call sent something"
        );
    }
}

#[test]
fn tool_definitions_are_precise() {
    let apis = FakeApis::start();
    let (_d, mut hw, _) = start(
        &apis,
        &[
            "create-issues",
            "post-comments",
            "add-labels",
            "post-slack-message",
            "read-events",
        ],
    );
    let r = hw.rpc("tools/list", json!({}));
    let tools = r["result"]["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 6);
    for t in tools {
        let schema = &t["inputSchema"];
        assert_eq!(schema["type"], "object", "{t}");
        assert_eq!(schema["additionalProperties"], false, "{t}");
        assert!(t["description"].as_str().unwrap().len() > 40, "{t}");
        for (name, prop) in schema["properties"].as_object().unwrap() {
            assert!(
                prop["description"].is_string(),
                "{}: {name} has no description",
                t["name"]
            );
        }
    }
    let issue = tools.iter().find(|t| t["name"] == "github_create_issue").unwrap();
    assert_eq!(issue["inputSchema"]["required"], json!(["repo", "title", "body"]));
    let slack = tools.iter().find(|t| t["name"] == "slack_post_message").unwrap();
    assert_eq!(slack["inputSchema"]["required"], json!(["channel", "text"]));
    // An argument the schema does not declare is refused, naming it.
    let r = hw.call_tool(
        "github_comment",
        json!({"repo": "acme/web", "number": 1, "body": "b", "url": "x"}),
    );
    assert_eq!(r["isError"], true);
    assert!(tool_text(&r).contains("url"), "{r}");
    let r = hw.call_tool(
        "github_comment",
        json!({"repo": "acme/web", "number": "one", "body": "b"}),
    );
    assert_eq!(r["isError"], true);
    assert!(tool_text(&r).contains("number"), "{r}");
    assert!(apis.seen().is_empty());
}

#[test]
fn calls_outside_the_allowlist_are_refused_and_send_nothing() {
    let apis = FakeApis::start();
    let (_d, mut hw, _) = start(
        &apis,
        &[
            "create-issues",
            "post-comments",
            "add-labels",
            "post-slack-message",
        ],
    );
    for (tool, args, needle) in [
        (
            "github_create_issue",
            json!({"repo": "evil/web", "title": "t", "body": "b"}),
            "allowlist",
        ),
        (
            "github_comment",
            json!({"repo": "acme/other", "number": 3, "body": "b"}),
            "allowlist",
        ),
        (
            "github_add_labels",
            json!({"repo": "acme-ops", "number": 3, "labels": ["x"]}),
            "owner/name",
        ),
        (
            "github_comment",
            json!({"repo": "acme/web/../../x", "number": 3, "body": "b"}),
            "owner/name",
        ),
        (
            "slack_post_message",
            json!({"channel": "#general", "text": "hi"}),
            "allowlist",
        ),
        (
            "slack_post_message",
            json!({"channel": "C9999", "text": "hi"}),
            "allowlist",
        ),
    ] {
        let r = hw.call_tool(tool, args.clone());
        assert_eq!(r["isError"], true, "{tool} {args}: {r}");
        assert!(tool_text(&r).contains(needle), "{tool} {args}: {r}");
    }
    assert!(apis.seen().is_empty(), "nothing may be sent: {:?}", apis.seen());
}

#[test]
fn in_scope_calls_reach_the_api_exactly_once_as_expected() {
    let apis = FakeApis::start();
    let (_d, mut hw, _) = start(
        &apis,
        &[
            "create-issues",
            "post-comments",
            "add-labels",
            "post-slack-message",
        ],
    );
    let gh_auth = format!("Bearer {GITHUB_TOKEN}");
    let slack_auth = format!("Bearer {SLACK_TOKEN}");

    let r = hw.call_tool("github_create_issue",
        json!({"repo": "acme/web", "title": "Checkout 5xx", "body": "Root cause: ...", "labels": ["bug", "p1"]}),
    );
    assert_eq!(r["isError"], false, "{r}");
    let out: Value = serde_json::from_str(tool_text(&r)).unwrap();
    assert_eq!(
        out,
        json!({"number": 42, "url": "https://github.com/acme/web/issues/42"})
    );

    let r = hw.call_tool(
        "github_comment",
        json!({"repo": "Acme-Ops/infra", "number": 847, "body": "Recommend rollback."}),
    );
    assert_eq!(r["isError"], false, "{r}");

    let r = hw.call_tool(
        "github_add_labels",
        json!({"repo": "acme/web", "number": 312, "labels": ["bug", "authentication"]}),
    );
    assert_eq!(r["isError"], false, "{r}");
    let out: Value = serde_json::from_str(tool_text(&r)).unwrap();
    assert_eq!(out["labels"], json!(["existing", "bug", "authentication"]));

    let r = hw.call_tool(
        "slack_post_message",
        json!({"channel": "#incidents", "text": "Root cause identified.", "thread_ts": "1764000000.000200"}),
    );
    assert_eq!(r["isError"], false, "{r}");

    let seen = apis.seen();
    assert_eq!(seen.len(), 4, "exactly one request per call: {seen:?}");
    let expect = [
        (
            "/repos/acme/web/issues",
            &gh_auth,
            json!({"title": "Checkout 5xx", "body": "Root cause: ...", "labels": ["bug", "p1"]}),
        ),
        (
            "/repos/Acme-Ops/infra/issues/847/comments",
            &gh_auth,
            json!({"body": "Recommend rollback."}),
        ),
        (
            "/repos/acme/web/issues/312/labels",
            &gh_auth,
            json!({"labels": ["bug", "authentication"]}),
        ),
        (
            "/api/chat.postMessage",
            &slack_auth,
            json!({"channel": "#incidents", "text": "Root cause identified.", "thread_ts": "1764000000.000200"}),
        ),
    ];
    for (s, (path, auth, body)) in seen.iter().zip(expect) {
        assert_eq!(s.method, "POST", "{s:?}");
        assert_eq!(s.path, path, "{s:?}");
        assert_eq!(s.authorization.as_deref(), Some(auth.as_str()), "{s:?}");
        assert!(
            s.content_type
                .as_deref()
                .unwrap_or("")
                .starts_with("application/json"),
            "{s:?}"
        );
        assert_eq!(s.body, body, "{s:?}");
    }
    // Tokens never reach the logs.
    let log = hw.stderr_text();
    assert!(
        !log.contains(GITHUB_TOKEN) && !log.contains(SLACK_TOKEN),
        "a token was logged"
    );
    assert!(log.contains("tool call"), "calls are audited in the log");
}

#[test]
fn api_failures_are_tool_errors() {
    let apis = FakeApis::start();
    let (_d, mut hw, _) = start(&apis, &["post-comments"]);
    let r = hw.call_tool(
        "github_comment",
        json!({"repo": "acme/gone", "number": 1, "body": "b"}),
    );
    assert_eq!(r["isError"], true, "{r}");
    assert!(tool_text(&r).contains("404"), "{r}");
    assert!(!tool_text(&r).contains(GITHUB_TOKEN));
    assert_eq!(apis.seen().len(), 1);
}

/// The Channels overview's full example: a Datadog alert reaches the session; Claude reads it
/// with `get_event` and posts a summary to #incidents; the audit shows the post.
#[test]
fn datadog_alert_to_incident_summary() {
    let apis = FakeApis::start();
    let (_d, mut hw, _) = start(&apis, &["read-events", "post-slack-message"]);
    let alert = std::fs::read(common::root().join("tests/fixtures/datadog/alert.triggered.json")).unwrap();
    let r = hw.post("/hooks/datadog", &[("X-Hookwire-Token", DD_TOKEN)], &alert);
    assert_eq!(r.status, 202, "{}", r.body);
    let n = hw.next_notification();
    let content = n["params"]["content"].as_str().unwrap();
    assert!(content.contains("/api/checkout"), "{content}");
    let delivery = n["params"]["meta"]["delivery_id"].as_str().unwrap().to_owned();

    // 1. Read the full event, as Claude would from the tag's delivery_id.
    let r = hw.call_tool("get_event", json!({"id": delivery}));
    assert_eq!(r["isError"], false, "{r}");
    let ev: Value = serde_json::from_str(tool_text(&r)).unwrap();
    assert_eq!(ev["source"], "datadog");
    assert_eq!(ev["delivery_id"], delivery.as_str());
    assert_eq!(
        ev["payload"]["alert"]["title"],
        "5xx error rate is high on /api/checkout"
    );
    assert!(
        ev["headers"].get("x-hookwire-token").is_none(),
        "credentials are never stored"
    );
    assert_eq!(ev["notification"]["content"], content);
    assert!(ev["received"].as_str().unwrap().ends_with('Z'));
    assert_eq!(ev["actions"], json!([]));

    // 2. Recent events of the session's sources.
    let r = hw.call_tool("list_events", json!({"source": "datadog", "limit": 5}));
    let list: Value = serde_json::from_str(tool_text(&r)).unwrap();
    assert_eq!(list["events"][0]["delivery_id"], delivery.as_str());
    let r = hw.call_tool("list_events", json!({"source": "stripe"}));
    assert_eq!(r["isError"], true, "only the session's sources: {r}");

    // 3. Post the summary to #incidents.
    let summary = "Root cause identified: PaymentService.processCharge() null pointer on non-US addresses. \
                   Introduced in a3f9b2 (14 min ago). PR #847 ready. Recommend rollback while PR is reviewed.";
    let r = hw.call_tool(
        "slack_post_message",
        json!({"channel": "#incidents", "text": summary, "event_id": delivery}),
    );
    assert_eq!(r["isError"], false, "{r}");
    let seen = apis.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/api/chat.postMessage");
    assert_eq!(seen[0].body, json!({"channel": "#incidents", "text": summary}));

    // 4. The audit is stored with the event it answered.
    let r = hw.call_tool("get_event", json!({"id": delivery}));
    let ev: Value = serde_json::from_str(tool_text(&r)).unwrap();
    let actions = ev["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{ev}");
    assert_eq!(actions[0]["tool"], "slack_post_message");
    assert_eq!(actions[0]["by"], "local");
    assert_eq!(actions[0]["outcome"], "ok");
    assert_eq!(actions[0]["arguments"]["channel"], "#incidents");

    // 5. Every call is counted by tool and outcome.
    let page = hw.call("GET", "/metrics").body;
    for (tool, outcome, n) in [
        ("get_event", "ok", 2),
        ("list_events", "ok", 1),
        ("list_events", "refused", 1),
        ("slack_post_message", "ok", 1),
    ] {
        let series = format!(r#"hookwire_tool_calls_total{{tool="{tool}",outcome="{outcome}"}} {n}"#);
        assert!(page.lines().any(|l| l == series), "no `{series}` in:\n{page}");
    }
}

#[test]
fn check_reports_tool_configuration_errors() {
    let dir = TempDir::new("tools-check");
    let run = |text: &str| {
        let cfg = dir.write("config.yaml", text);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookwire"))
            .args(["check", "--config"])
            .arg(&cfg)
            .env("T_DD_TOKEN", DD_TOKEN)
            .env("T_SLACK_TOKEN", SLACK_TOKEN)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let base = "sources:\n  - name: datadog\n    type: datadog\n    secret_env: T_DD_TOKEN\n";

    let (code, err) = run(&format!(
        "channel:\n  sources: [datadog]\n  permissions: [create-issues, read-logs]\n{base}"
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("channel.permissions[0]") && err.contains("tools.github"),
        "{err}"
    );
    assert!(err.contains("unknown permission `read-logs`"), "{err}");

    let (code, err) = run(&format!(
        "channel:\n  sources: [datadog]\n  permissions: [post-slack-message]\n{base}tools:\n  slack:\n    bot_token: xoxb-inline\n    channels: [\"#incidents\"]\n"
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("tools.slack.bot_token") && err.contains("never written"),
        "{err}"
    );
    assert!(!err.contains("xoxb-inline"), "{err}");

    let (code, err) = run(&format!(
        "channel:\n  sources: [datadog]\n{base}tools:\n  github:\n    token_env: T_UNSET_GITHUB_TOKEN\n    repos: [acme]\n    repo: [x]\n"
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("tools.github.repo"), "{err}");

    // Entries are sent exactly as written, so each must be the one spelling Slack reads as
    // the channel meant: `incidents` is a name without its `#`, `c0123abcd` not an id.
    let (code, err) = run(&format!(
        "channel:\n  sources: [datadog]\n  permissions: [post-slack-message]\n{base}tools:\n  slack:\n    bot_token_env: T_SLACK_TOKEN\n    channels: [incidents, c0123abcd]\n"
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("tools.slack.channels[0]") && err.contains("write \"#incidents\""),
        "{err}"
    );
    assert!(err.contains("tools.slack.channels[1]"), "{err}");

    let (code, err) = run(&format!(
        "channel:\n  sources: [datadog]\n  permissions: [post-slack-message]\n{base}tools:\n  slack:\n    bot_token_env: T_SLACK_TOKEN\n    channels: [\"#incidents\"]\n"
    ));
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn slack_incoming_webhook_posts_without_leaking_the_url() {
    let apis = FakeApis::start();
    let dir = TempDir::new("tools-webhook");
    let cfg = dir.write(
        "config.yaml",
        "channel:\n  sources: [datadog]\n  permissions: [post-slack-message]\nsources:\n  - name: datadog\n    type: datadog\n    secret_env: T_DD_TOKEN\ntools:\n  slack:\n    webhook_url_env: T_SLACK_WEBHOOK\n    channels: [\"#incidents\"]\n",
    );
    for (hook, ok) in [("good", true), ("revoked", false)] {
        let url = format!("{}/services/T0/B0/{hook}", apis.url());
        let mut hw = Hookwire::spawn(&cfg, &[("T_DD_TOKEN", DD_TOKEN), ("T_SLACK_WEBHOOK", &url)]);
        hw.handshake();
        let r = hw.call_tool(
            "slack_post_message",
            json!({"channel": "#incidents", "text": "hello"}),
        );
        assert_eq!(r["isError"], !ok, "{r}");
        assert!(!tool_text(&r).contains(hook), "the webhook URL is a secret: {r}");
        assert!(!hw.stderr_text().contains(&url), "the webhook URL was logged");
    }
    let seen = apis.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].path, "/services/T0/B0/good");
    assert_eq!(seen[0].authorization, None);
    assert_eq!(seen[0].body, json!({"text": "hello"}));
}

/// The count of `tool` calls with `outcome` on `/metrics` (0 when the series is absent).
fn tool_calls(hw: &mut Hookwire, tool: &str, outcome: &str) -> u64 {
    let page = hw.call("GET", "/metrics").body;
    let series = format!(r#"hookwire_tool_calls_total{{tool="{tool}",outcome="{outcome}"}} "#);
    page.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// Issue 14, item 8: the allowlist is matched exactly and what is sent is what was checked.
/// An allowlisted id (`C0123ABCD`) used to admit `#c0123abcd`, a channel *name* anyone can
/// create, because the check ran on a lower-cased, `#`-stripped copy and the raw value was
/// sent.
#[test]
fn slack_channels_match_exactly_and_what_is_sent_is_what_was_checked() {
    let apis = FakeApis::start();
    let (_d, mut hw, _) = start(&apis, &["post-slack-message"]);
    let refused = [
        "#c0123abcd",
        "c0123abcd",
        "#C0123ABCD",
        "C0123ABCD ",
        " C0123ABCD",
        "incidents",
        "#Incidents",
        "#incidents\u{200b}",
        "\u{ff03}incidents",
        "#incidents\n",
    ];
    for channel in refused {
        let r = hw.call_tool("slack_post_message", json!({"channel": channel, "text": "hi"}));
        assert_eq!(r["isError"], true, "{channel:?}: {r}");
        assert!(tool_text(&r).contains("allowlist"), "{channel:?}: {r}");
    }
    assert!(apis.seen().is_empty(), "nothing may be sent: {:?}", apis.seen());
    assert_eq!(
        tool_calls(&mut hw, "slack_post_message", "refused"),
        refused.len() as u64
    );
    for channel in ["C0123ABCD", "#incidents"] {
        let r = hw.call_tool("slack_post_message", json!({"channel": channel, "text": "hi"}));
        assert_eq!(r["isError"], false, "{channel:?}: {r}");
    }
    let sent: Vec<Value> = apis.seen().iter().map(|s| s.body["channel"].clone()).collect();
    assert_eq!(sent, [json!("C0123ABCD"), json!("#incidents")]);
}

/// The GitHub allowlist is case-insensitive because GitHub's names are: every casing of
/// `acme/web` is the one repository, so the raw value is sent. Anything else that would
/// normalise to an allowed repository (spaces, invisible or full-width characters, a `.git`
/// suffix, an encoded slash) is refused before anything is sent.
#[test]
fn github_repositories_match_as_github_resolves_them() {
    let apis = FakeApis::start();
    let (_d, mut hw, _) = start(&apis, &["post-comments"]);
    for repo in [
        "acme/web ",
        " acme/web",
        "acme/web\u{200b}",
        "acme/\u{ff57}eb",
        "acme/w\u{435}b",
        "acme/web/",
        "acme%2Fweb",
        "acme/web.git",
        "acme/we",
        "acme/.",
        "acme/web/../x",
    ] {
        let r = hw.call_tool("github_comment", json!({"repo": repo, "number": 1, "body": "b"}));
        assert_eq!(r["isError"], true, "{repo:?}: {r}");
    }
    assert!(apis.seen().is_empty(), "nothing may be sent: {:?}", apis.seen());
    let r = hw.call_tool(
        "github_comment",
        json!({"repo": "ACME/Web", "number": 1, "body": "b"}),
    );
    assert_eq!(r["isError"], false, "{r}");
    let seen = apis.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/repos/ACME/Web/issues/1/comments");
}

/// Issue 14, item 10: every limit the tools' input schemas declare is enforced before
/// anything is sent (a 5 MiB Slack message, 500 labels and a 101-event list used to pass):
/// the call is a tool error naming the argument and the limit, audited as `refused`.
#[test]
fn argument_limits_are_enforced_before_anything_is_sent() {
    let apis = FakeApis::start();
    let (_d, mut hw, _) = start(
        &apis,
        &[
            "create-issues",
            "post-comments",
            "add-labels",
            "post-slack-message",
            "read-events",
        ],
    );
    let many: Vec<String> = (0..500).map(|i| format!("l{i}")).collect();
    let cases = [
        (
            "slack_post_message",
            json!({"channel": "#incidents", "text": "x".repeat(5 << 20)}),
            &["`text`", "40000"][..],
        ),
        (
            "slack_post_message",
            json!({"channel": "#incidents", "text": "é".repeat(40_001)}),
            &["`text`", "40000"],
        ),
        (
            "slack_post_message",
            json!({"channel": "#incidents", "text": "x", "thread_ts": "1.2; DROP"}),
            &["`thread_ts`", "pattern"],
        ),
        (
            "github_create_issue",
            json!({"repo": "acme/web", "title": "t", "body": "b", "labels": many}),
            &["`labels`", "20"],
        ),
        (
            "github_create_issue",
            json!({"repo": "acme/web", "title": "t".repeat(257), "body": "b"}),
            &["`title`", "256"],
        ),
        (
            "github_create_issue",
            json!({"repo": "acme/web", "title": "t", "body": "b".repeat(65_537)}),
            &["`body`", "65536"],
        ),
        (
            "github_create_issue",
            json!({"repo": "acme/web", "title": "t", "body": "b", "labels": ["bug", "bug"]}),
            &["`labels`", "unique"],
        ),
        (
            "github_add_labels",
            json!({"repo": "acme/web", "number": 1, "labels": ["x".repeat(51)]}),
            &["`labels[0]`", "50"],
        ),
        (
            "github_add_labels",
            json!({"repo": "acme/web", "number": 1, "labels": []}),
            &["`labels`", "1"],
        ),
        (
            "github_comment",
            json!({"repo": "acme/web", "number": 1, "body": ""}),
            &["`body`", "1"],
        ),
        (
            "github_comment",
            json!({"repo": "acme/web/x", "number": 1, "body": "b"}),
            &["`repo`", "pattern"],
        ),
        ("list_events", json!({"limit": 101}), &["`limit`", "100"]),
        ("list_events", json!({"limit": 0}), &["`limit`", "1"]),
        ("get_event", json!({"id": "e".repeat(257)}), &["`id`", "256"]),
    ];
    for (tool, args, needles) in &cases {
        let r = hw.call_tool(tool, args.clone());
        assert_eq!(r["isError"], true, "{tool}: {r}");
        let text = tool_text(&r);
        assert!(text.len() < 2000, "{tool}: the error is short: {}", text.len());
        for needle in *needles {
            assert!(text.contains(needle), "{tool}: no {needle} in {text}");
        }
    }
    assert!(apis.seen().is_empty(), "nothing may be sent: {:?}", apis.seen());
    for tool in [
        "slack_post_message",
        "github_create_issue",
        "github_add_labels",
        "github_comment",
        "list_events",
        "get_event",
    ] {
        let n = cases.iter().filter(|(t, _, _)| *t == tool).count() as u64;
        assert_eq!(tool_calls(&mut hw, tool, "refused"), n, "{tool}");
    }
}
