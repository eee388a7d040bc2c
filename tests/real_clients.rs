//! Real clients we did not write, against the built binary:
//! - the official MCP TypeScript SDK client (`@modelcontextprotocol/sdk`) spawns
//!   `hookwire channel` over stdio, completes the handshake, and receives exactly the channel
//!   notification of a signed GitHub webhook (a forged one before it gets 401 and nothing);
//! - the real Claude Code CLI (`@anthropic-ai/claude-code`) registers hookwire as a user MCP
//!   server and reports it connected, which requires our handshake to satisfy its client.
//!
//! Both need `npm ci --prefix tests/node` (`.ci/run` does it); without it they fail and say so.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "real-client-test-secret-7d1e";

fn node_dir() -> PathBuf {
    common::root().join("tests/node")
}

fn require_node_modules() {
    assert!(
        node_dir().join("node_modules").is_dir(),
        "tests/node/node_modules is missing: run `npm ci --prefix tests/node` (.ci/run does)"
    );
}

/// Runs `cmd` to completion, failing the test if it takes longer than `limit`.
fn run(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let end = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "timed out after {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn official_mcp_sdk_client_receives_signed_github_event() {
    require_node_modules();
    let mut cmd = Command::new("node");
    cmd.current_dir(common::root())
        .arg(node_dir().join("sdk_client.mjs"))
        .arg(env!("CARGO_BIN_EXE_hookwire"))
        .arg(node_dir().join("config.yaml"))
        .arg(common::root().join("../shared/fixtures/payloads/github/issues.opened.json"))
        .env("HOOKWIRE_TEST_GITHUB_SECRET", SECRET);
    let out = run(cmd, Duration::from_secs(60));
    assert!(out.status.success(), "the SDK client failed:\n{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sdk_client: OK"),
        "{}",
        describe(&out)
    );
}

#[test]
fn claude_code_cli_reports_hookwire_connected() {
    require_node_modules();
    let claude = node_dir().join("node_modules/.bin/claude");
    let home = common::TempDir::new("claude-home");
    let server = serde_json::json!({
        "type": "stdio",
        "command": env!("CARGO_BIN_EXE_hookwire"),
        "args": ["channel", "--config", node_dir().join("config.yaml"), "--listen", "127.0.0.1:0"],
        "env": {"HOOKWIRE_TEST_GITHUB_SECRET": SECRET},
    });
    let claude_cmd = |args: &[&str], home: &Path| {
        let mut c = Command::new(&claude);
        c.args(args)
            .current_dir(home)
            // A throwaway HOME: the CLI's config, cache and logs stay out of the real one.
            .env("HOME", home)
            .env("DISABLE_AUTOUPDATER", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("DISABLE_TELEMETRY", "1");
        c
    };
    let add = run(
        claude_cmd(
            &[
                "mcp",
                "add-json",
                "--scope",
                "user",
                "hookwire",
                &server.to_string(),
            ],
            &home.0,
        ),
        Duration::from_secs(60),
    );
    assert!(
        add.status.success(),
        "claude mcp add-json failed:\n{}",
        describe(&add)
    );
    let get = run(
        claude_cmd(&["mcp", "get", "hookwire"], &home.0),
        Duration::from_secs(90),
    );
    let text = String::from_utf8_lossy(&get.stdout);
    assert!(get.status.success(), "claude mcp get failed:\n{}", describe(&get));
    // The CLI spawns hookwire, runs its MCP handshake and prints "Status: ✔ Connected".
    assert!(
        text.contains("Connected") && !text.contains("Failed"),
        "not connected:\n{}",
        describe(&get)
    );
}
