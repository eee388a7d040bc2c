//! Interoperability of `hookwire channel` with real, unmodified MCP clients.
//!
//! The unit and golden tests prove hookwire speaks the channel contract as *we* read it. These
//! tests prove that the clients that matter accept it:
//!
//! * `official_mcp_sdk_client_receives_signed_github_event`: the official MCP TypeScript SDK
//!   client (`@modelcontextprotocol/sdk`, driven by `tests/node/sdk_client.mjs`) spawns
//!   `hookwire channel`, completes the handshake, sees `experimental["claude/channel"]`, and
//!   receives exactly one `notifications/claude/channel` for a correctly signed GitHub
//!   `issues.opened` webhook (the real fixture, signed byte for byte), while a badly signed one
//!   is answered 401 and produces nothing.
//! * `claude_code_cli_reports_hookwire_connected`: the real Claude Code CLI
//!   (`@anthropic-ai/claude-code`) registers hookwire as a user-scoped stdio server and its
//!   health check (`claude mcp get`) reports it connected. Claude Code probes with
//!   `server/discover` (protocol 2026-07-28) first, so this also proves the legacy fallback.
//! * `claude_code_health_checks_leave_the_backlog_for_the_session`: two events wait in the
//!   store; `claude mcp list`, `claude mcp get` and `claude mcp list` again each run their
//!   health check of hookwire (the full handshake, then stdin closed at once); the next
//!   session still gets both, once.
//! * `official_mcp_sdk_client_drives_the_tools` and
//!   `official_mcp_sdk_client_runs_the_incident_example`: the reply and action tools (issue 6)
//!   driven by the same SDK client, step by step, through `tests/node/sdk_tools.mjs` (one JSON
//!   command per line on its stdin, one JSON answer per line on its stdout), while the fake
//!   GitHub and Slack APIs of `common::fakes` record every request hookwire makes. The first
//!   is the permission matrix in three sessions (no permission; `create-issues` +
//!   `post-slack-message`; `post-comments` + `add-labels` + `read-events`): a tool without
//!   its permission is absent from `tools/list` (with none, there is no `tools` capability
//!   and `tools/list` is method-not-found) and its `tools/call` is a tool error naming the
//!   missing permission; a granted tool called outside its allowlist of repositories or
//!   channels is a tool error and sends nothing; a granted, in-scope call reaches the fake
//!   API exactly once, with the exact method, path, `Authorization`, content type and JSON
//!   body. The second is the Channels overview's example: a Datadog alert webhook (5xx rate
//!   on /api/checkout, `tests/fixtures/datadog/alert.triggered.json`, authenticated with
//!   `X-Hookwire-Token`) is pushed to the session as one `notifications/claude/channel`; the
//!   client reads it back with `get_event` (by the notification's `delivery_id`), posts a
//!   summary to "#incidents" with `slack_post_message`, the fake Slack receives exactly that
//!   `chat.postMessage`, and `get_event` then lists the action. Both also check that the
//!   SDK saw no protocol error and that no token reached hookwire's log.
//!
//! The clients come from `tests/node/node_modules`, pinned by `tests/node/package-lock.json`.
//! Install them with `npm ci --prefix tests/node` (CI does); the tests fail, rather than skip,
//! when they are missing. Nothing here needs network access or credentials. Every wait is on a
//! condition with a deadline.

use crate::common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::fakes::{tools_config, FakeApis, Seen, DD_TOKEN, ENV, GITHUB_TOKEN, SLACK_TOKEN};
use common::{tool_text, TempDir};
use serde_json::{json, Value};

/// Test-only webhook secret, handed to hookwire through `HOOKWIRE_TEST_GITHUB_SECRET`.
const TEST_SECRET: &str = "hwtest-7f3a91c2e05b4d68a1c9f2e7b3d04a56";

/// Upper bound for the Node SDK run (the script has its own 30 s overall timeout).
const NODE_TIMEOUT: Duration = Duration::from_secs(90);

/// Upper bound for each step of `tests/node/sdk_tools.mjs` (the first includes starting Node,
/// loading the SDK and spawning hookwire).
const SDK_STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Upper bound for each Claude Code CLI invocation (`mcp get` itself gives up after 30 s).
pub(crate) const CLAUDE_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) const NPM_HINT: &str =
    "run `npm ci --prefix tests/node` in the repository root first (CI does this)";

pub(crate) fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn canonical(path: PathBuf) -> PathBuf {
    path.canonicalize()
        .unwrap_or_else(|e| panic!("cannot resolve {}: {e}", path.display()))
}

pub(crate) fn hookwire_bin() -> PathBuf {
    canonical(common::bin())
}

/// `tests/node/config.yaml`, copied into `dir`: the store is created beside the config, and
/// tests running at once must not share one.
fn config_in(dir: &Path) -> PathBuf {
    let to = dir.join("config.yaml");
    fs::copy(manifest_dir().join("tests/node/config.yaml"), &to).expect("copy tests/node/config.yaml");
    canonical(to)
}

fn payload_path() -> PathBuf {
    canonical(manifest_dir().join("tests/fixtures/payloads/github/issues.opened.json"))
}

/// `tests/node/node_modules`, or a failure telling the reader how to install it.
pub(crate) fn node_modules() -> PathBuf {
    let dir = manifest_dir().join("tests/node/node_modules");
    assert!(dir.is_dir(), "{} is missing: {NPM_HINT}", dir.display());
    dir
}

fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("path is not UTF-8: {}", path.display()))
}

/// What a finished child printed.
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    stderr: String,
}

impl Finished {
    pub(crate) fn transcript(&self, what: &str) -> String {
        format!(
            "{what}: {}\n---- stdout ----\n{}\n---- stderr ----\n{}\n---- end ----",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Reads a pipe to the end on its own thread, so a chatty child can never block on a full pipe.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    rx
}

fn collect(rx: &mpsc::Receiver<String>) -> String {
    // A grandchild that outlived its parent could keep the pipe open; do not wait for it forever.
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| "<output unavailable: pipe still held open after exit>".to_owned())
}

/// Kills the child and, on Unix, everything in its process group (e.g. the hookwire it spawned).
fn kill_tree(child: &mut Child) {
    #[cfg(unix)]
    {
        // `-s KILL --` spelled out: procps-ng 4's `kill -KILL -PGID` signals pid -1, which
        // is every process the user may signal.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--"])
            .arg(format!("-{}", child.id()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Sets `stdin`, pipes stdout and stderr and, on Unix, puts the child in its own process
/// group, so that [`kill_tree`] (at a timeout or a drop) takes down the whole tree: the
/// client and the hookwire it spawned.
fn own_group(cmd: &mut Command, stdin: Stdio) {
    cmd.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
}

/// Runs `cmd` with stdin closed and output captured; fails the test if it outlives `timeout`.
pub(crate) fn run_with_timeout(mut cmd: Command, what: &str, timeout: Duration) -> Finished {
    own_group(&mut cmd, Stdio::null());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} ({:?}): {e}", cmd.get_program()));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    };
    let Some(status) = status else {
        kill_tree(&mut child);
        panic!(
            "{what} did not finish within {timeout:?} and was killed\n---- stdout ----\n{}\n---- stderr ----\n{}",
            collect(&stdout),
            collect(&stderr)
        );
    };
    Finished {
        status,
        stdout: collect(&stdout),
        stderr: collect(&stderr),
    }
}

#[test]
fn official_mcp_sdk_client_receives_signed_github_event() {
    node_modules();
    let script = manifest_dir().join("tests/node/sdk_client.mjs");
    let dir = common::TempDir::new("rc-sdk");
    let mut cmd = Command::new("node");
    cmd.current_dir(manifest_dir())
        .arg("tests/node/sdk_client.mjs")
        .arg(hookwire_bin())
        .arg(config_in(&dir.0))
        .arg(payload_path())
        .env("HOOKWIRE_TEST_GITHUB_SECRET", TEST_SECRET);
    let run = run_with_timeout(cmd, &format!("node {}", script.display()), NODE_TIMEOUT);
    let transcript = run.transcript("official MCP SDK client");
    assert!(run.status.success(), "{transcript}");
    println!("{transcript}");
}

/// A throwaway `HOME` for the Claude Code CLI, removed on drop (also when the test fails).
pub(crate) struct TempHome(pub(crate) PathBuf);

impl TempHome {
    pub(crate) fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("hookwire-claude-home-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        Self(dir)
    }
}

impl Drop for TempHome {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A hermetic `claude` invocation.
///
/// Observed with Claude Code 2.1.331 (no network, no login):
/// * `claude mcp add-json` / `claude mcp get` need no login, no API key, no onboarding and no
///   trust dialog: with stdin closed they print their result and exit. No extra flag is needed.
/// * `mcp get` exits 0 even when the health check fails, so the output must be inspected:
///   success is `Status: ✔ Connected` (U+2714; not ✓), failure `Status: ✘ Failed to connect`
///   plus an `Issue:` line.
/// * Without `DISABLE_TELEMETRY` / `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC` it tries to send
///   telemetry and spools the failures into `~/.claude/telemetry/`; `DISABLE_AUTOUPDATER` keeps
///   it from looking for updates.
/// * State goes to `$HOME/.claude.json` and `$HOME/.claude/` unless `CLAUDE_CONFIG_DIR` points
///   elsewhere, and per-server connection logs to
///   `$XDG_CACHE_HOME/claude-cli-nodejs/<cwd>/mcp-logs-<server>/*.jsonl` (default
///   `$HOME/.cache`). Hence the cleared environment, with everything pointed into the temp home,
///   and the temp home as working directory (no repository `.mcp.json` or `.claude/` is read).
pub(crate) fn claude_command(claude: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(claude);
    cmd.current_dir(home)
        .env_clear()
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_STATE_HOME", home.join(".local/state"))
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_TELEMETRY", "1");
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd
}

/// Minimal JSON string literal.
pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The contents of Claude Code's connection logs for the `hookwire` server, if any were written.
pub(crate) fn mcp_logs(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(mcp_logs(&path));
        } else if path
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|name| name == "mcp-logs-hookwire")
        {
            let text = fs::read_to_string(&path).unwrap_or_default();
            found.push((path, text));
        }
    }
    found
}

#[test]
fn claude_code_cli_reports_hookwire_connected() {
    let claude = node_modules().join(".bin/claude");
    assert!(claude.exists(), "{} is missing: {NPM_HINT}", claude.display());
    let home = TempHome::new();

    let mut version = claude_command(&claude, &home.0);
    version.arg("--version");
    let version = run_with_timeout(version, "claude --version", CLAUDE_TIMEOUT);
    assert!(
        version.status.success(),
        "{}",
        version.transcript("claude --version")
    );
    println!("Claude Code CLI: {}", version.stdout.trim());

    let server = format!(
        r#"{{"type":"stdio","command":{},"args":["channel","--config",{},"--listen","127.0.0.1:0"],"env":{{"HOOKWIRE_TEST_GITHUB_SECRET":{}}}}}"#,
        json_string(path_str(&hookwire_bin())),
        json_string(path_str(&config_in(&home.0))),
        json_string(TEST_SECRET),
    );
    let mut add = claude_command(&claude, &home.0);
    add.args(["mcp", "add-json", "--scope", "user", "hookwire", &server]);
    let added = run_with_timeout(add, "claude mcp add-json", CLAUDE_TIMEOUT);
    let transcript = added.transcript("claude mcp add-json");
    assert!(
        added.status.success() && added.stdout.contains("hookwire"),
        "{transcript}"
    );

    let mut get = claude_command(&claude, &home.0);
    get.args(["mcp", "get", "hookwire"]);
    let got = run_with_timeout(get, "claude mcp get hookwire", CLAUDE_TIMEOUT);
    let logs = mcp_logs(&home.0);
    let log_text: String = logs
        .iter()
        .map(|(path, text)| format!("---- {} ----\n{text}", path.display()))
        .collect();
    let transcript = format!(
        "{}\n{}",
        got.transcript("claude mcp get hookwire"),
        if log_text.is_empty() {
            "(no Claude Code MCP connection log found)".to_owned()
        } else {
            log_text.clone()
        }
    );
    println!("{transcript}");

    assert!(got.status.success(), "{transcript}");
    // Expected: `  Status: ✔ Connected`. Match the stable words, not the glyph.
    let status = got
        .stdout
        .lines()
        .find(|line| line.trim_start().starts_with("Status:"))
        .unwrap_or_else(|| panic!("no `Status:` line in `claude mcp get` output\n{transcript}"));
    assert!(
        status.contains("Connected") && !status.contains("Failed"),
        "Claude Code does not report hookwire connected: {status:?}\n{transcript}"
    );

    // The connection log (an internal format, so only checked when present) names the protocol
    // era; a "modern" (2026-07-28) connection would mean Claude Code never registers the channel.
    for line in log_text.lines().filter(|line| line.contains("protocolEra")) {
        assert!(
            line.contains("legacy"),
            "Claude Code negotiated a non-legacy protocol era with hookwire: {line}\n{transcript}"
        );
    }
}

/// Claude Code's own health checks (`claude mcp list`, `claude mcp get`) run the full
/// handshake and close at once: the events waiting for a session must still be there for the
/// next real session, which gets each once.
#[test]
fn claude_code_health_checks_leave_the_backlog_for_the_session() {
    let claude = node_modules().join(".bin/claude");
    assert!(claude.exists(), "{} is missing: {NPM_HINT}", claude.display());
    let home = TempHome::new();
    let config = config_in(&home.0);
    let env = [("HOOKWIRE_TEST_GITHUB_SECRET", TEST_SECRET)];
    // Two events arrive while no session is open.
    {
        let hw = common::Hookwire::spawn(&config, &env);
        for id in ["backlog-1", "backlog-2"] {
            let r = hw.post_github("/hooks/github", TEST_SECRET, "issues", id, &common::issue(id));
            assert_eq!(r.status, 202, "{}", r.body);
        }
    }
    let server = format!(
        r#"{{"type":"stdio","command":{},"args":["channel","--config",{},"--listen","127.0.0.1:0"],"env":{{"HOOKWIRE_TEST_GITHUB_SECRET":{}}}}}"#,
        json_string(path_str(&hookwire_bin())),
        json_string(path_str(&config)),
        json_string(TEST_SECRET),
    );
    let mut add = claude_command(&claude, &home.0);
    add.args(["mcp", "add-json", "--scope", "user", "hookwire", &server]);
    let added = run_with_timeout(add, "claude mcp add-json", CLAUDE_TIMEOUT);
    assert!(
        added.status.success(),
        "{}",
        added.transcript("claude mcp add-json")
    );
    for args in [
        ["mcp", "list", ""],
        ["mcp", "get", "hookwire"],
        ["mcp", "list", ""],
    ] {
        let mut check = claude_command(&claude, &home.0);
        check.args(args.iter().filter(|a| !a.is_empty()));
        let what = format!("claude {}", args.join(" ").trim());
        let done = run_with_timeout(check, &what, CLAUDE_TIMEOUT);
        let transcript = done.transcript(&what);
        assert!(done.status.success(), "{transcript}");
        assert!(
            done.stdout.contains("Connected") && !done.stdout.contains("Failed"),
            "Claude Code does not report hookwire connected\n{transcript}"
        );
    }
    // The session Claude Code would open next.
    let mut session = common::Hookwire::spawn(&config, &env);
    session.handshake();
    assert_eq!(
        session.next_delivery_id(),
        "backlog-1",
        "a health check ate the backlog"
    );
    assert_eq!(session.next_delivery_id(), "backlog-2");
    let r = session.post_github(
        "/hooks/github",
        TEST_SECRET,
        "issues",
        "live",
        &common::issue("live"),
    );
    assert_eq!(r.status, 202);
    assert_eq!(session.next_delivery_id(), "live", "each event once");
}

// ---------------------------------------------------------------------------------------
// The reply and action tools (issue 6), driven by the official SDK client.

/// `node tests/node/sdk_tools.mjs <hookwire> <config>`: the official SDK client with
/// `hookwire channel --config <config>` as its stdio server, answering each JSON command
/// written to its stdin with one JSON line on its stdout. Killed, with hookwire, on drop.
pub(crate) struct SdkTools {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// The script's stderr, which carries hookwire's.
    stderr: Arc<Mutex<String>>,
}

impl SdkTools {
    /// Starts the script; hookwire gets the secrets of [`ENV`] and logs at info (the audit).
    fn start(config: &Path) -> SdkTools {
        node_modules();
        let mut env = serde_json::Map::new();
        for (k, v) in ENV.iter().chain(&[("HOOKWIRE_LOG", "info")]) {
            env.insert((*k).to_owned(), json!(v));
        }
        let mut cmd = Command::new("node");
        cmd.current_dir(manifest_dir())
            .arg("tests/node/sdk_tools.mjs")
            .arg(hookwire_bin())
            .arg(canonical(config.to_path_buf()))
            .env("HOOKWIRE_SDK_CHILD_ENV", Value::Object(env).to_string());
        SdkTools::spawn(cmd)
    }

    /// Starts `cmd`, a script of `tests/node` answering one JSON line per command (as
    /// `sdk_tools.mjs` does), killed with its children on drop.
    pub(crate) fn spawn(mut cmd: Command) -> SdkTools {
        node_modules();
        own_group(&mut cmd, Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node {:?}: {e}", cmd.get_args().collect::<Vec<_>>()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdin = child.stdin.take();
        SdkTools {
            child,
            stdin,
            lines,
            stderr,
        }
    }

    /// The script's and hookwire's stderr so far.
    pub(crate) fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub(crate) fn transcript(&self) -> String {
        format!(
            "---- SDK client and hookwire stderr ----\n{}\n---- end ----",
            self.log()
        )
    }

    /// Sends one command and returns the script's answer to it (`ok` true or false).
    pub(crate) fn step(&mut self, cmd: Value) -> Value {
        let line = cmd.to_string();
        let stdin = self.stdin.as_mut().expect("stdin open");
        if let Err(e) = writeln!(stdin, "{line}").and_then(|()| stdin.flush()) {
            panic!("cannot send {line} to the SDK client: {e}\n{}", self.transcript());
        }
        let answer = match self.lines.recv_timeout(SDK_STEP_TIMEOUT) {
            Ok(answer) => answer,
            Err(RecvTimeoutError::Timeout) => panic!(
                "the SDK client did not answer {line} within {SDK_STEP_TIMEOUT:?}\n{}",
                self.transcript()
            ),
            Err(RecvTimeoutError::Disconnected) => panic!(
                "the SDK client exited before answering {line}\n{}",
                self.transcript()
            ),
        };
        let answer: Value = serde_json::from_str(&answer).unwrap_or_else(|e| {
            panic!(
                "the SDK client's answer is not JSON ({e}): {answer:?}\n{}",
                self.transcript()
            )
        });
        assert_eq!(answer["op"], cmd["op"], "answer to {line}: {answer}");
        answer
    }

    /// [`SdkTools::step`], which must succeed.
    pub(crate) fn ok(&mut self, cmd: Value) -> Value {
        let answer = self.step(cmd.clone());
        assert_eq!(
            answer["ok"],
            true,
            "{cmd} failed in the SDK client: {answer}\n{}",
            self.transcript()
        );
        answer
    }

    /// `client.callTool(...)` → its `CallToolResult`, checked to be one text block.
    fn call(&mut self, name: &str, arguments: Value) -> Value {
        let answer = self.ok(json!({"op": "call_tool", "name": name, "arguments": arguments}));
        let result = answer["result"].clone();
        assert_eq!(
            result["content"].as_array().map(Vec::len),
            Some(1),
            "{name}: {result}"
        );
        assert_eq!(result["content"][0]["type"], "text", "{name}: {result}");
        result
    }

    /// `client.listTools()` → the tool names, sorted.
    fn listed(&mut self) -> Vec<String> {
        let answer = self.ok(json!({"op": "list_tools"}));
        let tools = answer["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("no tools in {answer}"));
        let mut names: Vec<String> = tools
            .iter()
            .map(|t| {
                assert_eq!(t["inputSchema"]["type"], "object", "{t}");
                t["name"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no name: {t}"))
                    .to_owned()
            })
            .collect();
        names.sort();
        names
    }

    /// Closes the client (stdin EOF to hookwire, as the SDK does) and waits for the script to
    /// exit 0; checks the SDK saw no transport or protocol error. Returns the final status.
    fn close(&mut self) -> Value {
        let answer = self.ok(json!({"op": "close"}));
        assert_eq!(
            answer["protocolErrors"],
            json!([]),
            "the SDK client saw transport or protocol errors\n{}",
            self.transcript()
        );
        drop(self.stdin.take());
        let status = common::wait_with_deadline(&mut self.child, SDK_STEP_TIMEOUT);
        assert!(
            status.is_some_and(|s| s.success()),
            "the SDK client did not exit cleanly: {status:?}\n{}",
            self.transcript()
        );
        println!(
            "SDK client closed hookwire in {} ms\n{}",
            answer["closeMs"].as_u64().unwrap_or(0),
            self.transcript()
        );
        answer
    }
}

impl Drop for SdkTools {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            kill_tree(&mut self.child);
        }
    }
}

/// A successful tool result's text, parsed as JSON.
fn answer_of(tool: &str, result: &Value) -> Value {
    assert_eq!(result["isError"], false, "{tool}: {result}");
    serde_json::from_str(tool_text(result))
        .unwrap_or_else(|e| panic!("{tool}: the result text is not JSON ({e}): {result}"))
}

/// Asserts `seen` is exactly the request an action must make: one JSON POST to `path`.
fn assert_request(seen: &Seen, path: &str, authorization: &str, body: &Value) {
    assert_eq!(seen.method, "POST", "{seen:?}");
    assert_eq!(seen.path, path, "{seen:?}");
    assert_eq!(seen.authorization.as_deref(), Some(authorization), "{seen:?}");
    assert!(
        seen.content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/json")),
        "{seen:?}"
    );
    assert_eq!(&seen.body, body, "{seen:?}");
}

/// One tool of the permission matrix.
struct ToolCase {
    permission: &'static str,
    tool: &'static str,
    /// A call inside the allowlists.
    in_scope: Value,
    /// Its result: the answer (the text, as JSON), or a word of its tool error.
    answer: Result<Value, &'static str>,
    /// The one request it must make (path, `Authorization`, JSON body); `None` for reads.
    request: Option<(&'static str, String, Value)>,
    /// Calls outside the allowlists, with a word their refusal must contain.
    outside: Vec<(Value, &'static str)>,
}

fn tool_cases() -> Vec<ToolCase> {
    let gh = format!("Bearer {GITHUB_TOKEN}");
    let slack = format!("Bearer {SLACK_TOKEN}");
    vec![
        ToolCase {
            permission: "create-issues",
            tool: "github_create_issue",
            in_scope: json!({"repo": "acme/web", "title": "Checkout 5xx", "body": "Root cause: ...", "labels": ["bug", "p1"]}),
            answer: Ok(json!({"number": 42, "url": "https://github.com/acme/web/issues/42"})),
            request: Some((
                "/repos/acme/web/issues",
                gh.clone(),
                json!({"title": "Checkout 5xx", "body": "Root cause: ...", "labels": ["bug", "p1"]}),
            )),
            outside: vec![
                (
                    json!({"repo": "evil/web", "title": "t", "body": "b"}),
                    "allowlist",
                ),
                (
                    json!({"repo": "acme/web/../../x", "title": "t", "body": "b"}),
                    "owner/name",
                ),
            ],
        },
        ToolCase {
            permission: "post-comments",
            tool: "github_comment",
            in_scope: json!({"repo": "Acme-Ops/infra", "number": 847, "body": "Recommend rollback."}),
            answer: Ok(
                json!({"id": 99, "url": "https://github.com/Acme-Ops/infra/issues/847#issuecomment-99"}),
            ),
            request: Some((
                "/repos/Acme-Ops/infra/issues/847/comments",
                gh.clone(),
                json!({"body": "Recommend rollback."}),
            )),
            outside: vec![(
                json!({"repo": "acme/other", "number": 3, "body": "b"}),
                "allowlist",
            )],
        },
        ToolCase {
            permission: "add-labels",
            tool: "github_add_labels",
            in_scope: json!({"repo": "acme/web", "number": 312, "labels": ["bug", "authentication"]}),
            answer: Ok(json!({"labels": ["existing", "bug", "authentication"]})),
            request: Some((
                "/repos/acme/web/issues/312/labels",
                gh,
                json!({"labels": ["bug", "authentication"]}),
            )),
            outside: vec![
                (
                    json!({"repo": "evil-ops/web", "number": 3, "labels": ["x"]}),
                    "allowlist",
                ),
                (
                    json!({"repo": "acme-ops", "number": 3, "labels": ["x"]}),
                    "owner/name",
                ),
            ],
        },
        ToolCase {
            permission: "post-slack-message",
            tool: "slack_post_message",
            in_scope: json!({"channel": "#incidents", "text": "Root cause identified.", "thread_ts": "1764000000.000200"}),
            answer: Ok(json!({"channel": "C0INCIDENTS", "ts": "1764000900.000100"})),
            request: Some((
                "/api/chat.postMessage",
                slack,
                json!({"channel": "#incidents", "text": "Root cause identified.", "thread_ts": "1764000000.000200"}),
            )),
            outside: vec![
                (json!({"channel": "#general", "text": "hi"}), "allowlist"),
                (json!({"channel": "C9999", "text": "hi"}), "allowlist"),
            ],
        },
        ToolCase {
            permission: "read-events",
            tool: "get_event",
            in_scope: json!({"id": "1"}),
            answer: Err("no event `1`"),
            request: None,
            outside: vec![],
        },
        ToolCase {
            permission: "read-events",
            tool: "list_events",
            in_scope: json!({"limit": 5}),
            answer: Ok(json!({"events": []})),
            request: None,
            outside: vec![(json!({"source": "stripe"}), "not one of this session's sources")],
        },
    ]
}

/// One SDK session with `permissions` granted, through the whole permission matrix.
fn run_permission_matrix(permissions: &[&str]) {
    let apis = FakeApis::start();
    let dir = TempDir::new("sdk-tools");
    let cfg = tools_config(&dir, &apis, permissions);
    let mut sdk = SdkTools::start(&cfg);
    let conn = sdk.ok(json!({"op": "connect"}));
    let cases = tool_cases();
    let (granted, absent): (Vec<&ToolCase>, Vec<&ToolCase>) =
        cases.iter().partition(|c| permissions.contains(&c.permission));
    let instructions = conn["instructions"].as_str().unwrap_or_else(|| panic!("{conn}"));
    let what = format!("permissions {permissions:?}");

    // Absent: not listed (no `tools` capability at all without any tool).
    if granted.is_empty() {
        assert_eq!(
            conn["capabilities"],
            json!({"experimental": {"claude/channel": {}}}),
            "{what}: {conn}"
        );
        assert!(instructions.contains("one-way"), "{what}: {instructions}");
        let r = sdk.step(json!({"op": "list_tools"}));
        assert_eq!(r["ok"], false, "{what}: tools/list must fail: {r}");
        assert_eq!(r["error"]["code"], -32601, "{what}: {r}");
    } else {
        assert_eq!(
            conn["capabilities"],
            json!({"experimental": {"claude/channel": {}}, "tools": {}}),
            "{what}: {conn}"
        );
        assert!(!instructions.contains("one-way"), "{what}: {instructions}");
        let mut expected: Vec<String> = granted.iter().map(|c| c.tool.to_owned()).collect();
        expected.sort();
        assert_eq!(sdk.listed(), expected, "{what}");
        for c in &granted {
            assert!(
                instructions.contains(c.tool),
                "{what}: the instructions do not name {}: {instructions}",
                c.tool
            );
        }
    }

    // Absent: refused, naming the missing permission; nothing sent.
    for c in &absent {
        let r = sdk.call(c.tool, c.in_scope.clone());
        assert_eq!(r["isError"], true, "{what} → {}: {r}", c.tool);
        assert!(tool_text(&r).contains("not allowed"), "{what} → {}: {r}", c.tool);
        if !granted.is_empty() {
            assert!(
                tool_text(&r).contains(&format!("`{}`", c.permission)),
                "{what} → {}: the refusal must name `{}`: {r}",
                c.tool,
                c.permission
            );
        }
    }
    assert!(
        apis.seen().is_empty(),
        "{what}: a refused call sent something: {:?}",
        apis.seen()
    );

    // Granted, outside the allowlists: refused; nothing sent.
    for c in &granted {
        for (args, needle) in &c.outside {
            let r = sdk.call(c.tool, args.clone());
            assert_eq!(r["isError"], true, "{what} → {} {args}: {r}", c.tool);
            assert!(tool_text(&r).contains(needle), "{what} → {} {args}: {r}", c.tool);
        }
    }
    assert!(
        apis.seen().is_empty(),
        "{what}: a call outside the allowlist sent something: {:?}",
        apis.seen()
    );

    // Granted, in scope: exactly one request each, exactly as expected.
    for c in &granted {
        let before = apis.seen().len();
        let r = sdk.call(c.tool, c.in_scope.clone());
        match &c.answer {
            Ok(answer) => assert_eq!(&answer_of(c.tool, &r), answer, "{what} → {}", c.tool),
            Err(needle) => {
                assert_eq!(r["isError"], true, "{what} → {}: {r}", c.tool);
                assert!(tool_text(&r).contains(needle), "{what} → {}: {r}", c.tool);
            }
        }
        let seen = apis.seen();
        match &c.request {
            Some((path, auth, body)) => {
                assert_eq!(
                    seen.len(),
                    before + 1,
                    "{what} → {}: exactly one request: {seen:?}",
                    c.tool
                );
                assert_request(&seen[before], path, auth, body);
            }
            None => assert_eq!(seen.len(), before, "{what} → {}: {seen:?}", c.tool),
        }
    }

    let status = sdk.close();
    assert_eq!(status["channelNotifications"], 0, "{what}: {status}");
    let log = sdk.log();
    assert!(
        !log.contains(GITHUB_TOKEN) && !log.contains(SLACK_TOKEN),
        "{what}: a token reached the log\n{}",
        sdk.transcript()
    );
    if granted.iter().any(|c| c.request.is_some()) {
        assert!(log.contains("tool call"), "{what}: calls are audited in the log");
    }
}

#[test]
fn official_mcp_sdk_client_drives_the_tools() {
    node_modules();
    // Between them, the two partial sets grant and withhold every tool once.
    run_permission_matrix(&[]);
    run_permission_matrix(&["create-issues", "post-slack-message"]);
    run_permission_matrix(&["post-comments", "add-labels", "read-events"]);
}

/// POSTs `body` to the Datadog source with `token` as its `X-Hookwire-Token`.
fn post_datadog(addr: &str, token: &str, body: &[u8]) -> (u16, String) {
    let r = ureq::post(&format!("http://{addr}/hooks/datadog"))
        .timeout(common::DEADLINE)
        .set("Content-Type", "application/json")
        .set("X-Hookwire-Token", token)
        .send_bytes(body);
    match r {
        Ok(resp) => (resp.status(), resp.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap_or_default()),
        Err(e) => panic!("POST to hookwire's listener at {addr}: {e}"),
    }
}

/// The Channels overview's example with the official SDK client: a Datadog alert reaches the
/// session, the client reads it with `get_event` and posts a summary to #incidents.
#[test]
fn official_mcp_sdk_client_runs_the_incident_example() {
    node_modules();
    let apis = FakeApis::start();
    let dir = TempDir::new("sdk-incident");
    let cfg = tools_config(&dir, &apis, &["read-events", "post-slack-message"]);
    let mut sdk = SdkTools::start(&cfg);
    let conn = sdk.ok(json!({"op": "connect"}));
    let addr = conn["addr"]
        .as_str()
        .unwrap_or_else(|| panic!("no addr: {conn}"))
        .to_owned();
    assert_eq!(
        sdk.listed(),
        ["get_event", "list_events", "slack_post_message"],
        "{conn}"
    );

    // 0. A wrong token is refused and produces nothing (checked by the count at the end).
    let alert = fs::read(manifest_dir().join("tests/fixtures/datadog/alert.triggered.json"))
        .expect("the Datadog alert fixture");
    let (status, body) = post_datadog(&addr, "not-the-token", &alert);
    assert_eq!(status, 401, "{body}");

    // 1. The alert webhook is pushed to the session.
    let (status, body) = post_datadog(&addr, DD_TOKEN, &alert);
    assert_eq!(status, 202, "{body}\n{}", sdk.transcript());
    let n = sdk.ok(json!({"op": "next_notification"}))["notification"].clone();
    assert_eq!(n["method"], "notifications/claude/channel", "{n}");
    let content = n["params"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("{n}"))
        .to_owned();
    assert!(
        content.contains("/api/checkout") && content.contains("5xx"),
        "{content}"
    );
    let meta = n["params"]["meta"].as_object().unwrap_or_else(|| panic!("{n}"));
    assert!(
        meta.values().all(Value::is_string),
        "Claude Code drops an event with a non-string meta value: {n}"
    );
    let delivery = meta
        .get("delivery_id")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| panic!("no delivery_id: {n}"))
        .to_owned();

    // 2. Claude reads the full event by the tag's delivery_id.
    let r = sdk.call("get_event", json!({"id": delivery}));
    let ev = answer_of("get_event", &r);
    assert_eq!(ev["source"], "datadog", "{ev}");
    assert_eq!(ev["delivery_id"], delivery.as_str(), "{ev}");
    assert_eq!(
        ev["payload"]["alert"]["title"], "5xx error rate is high on /api/checkout",
        "{ev}"
    );
    assert!(
        ev["headers"].get("x-hookwire-token").is_none(),
        "credentials are never stored: {ev}"
    );
    assert_eq!(ev["notification"]["content"], content.as_str(), "{ev}");
    assert_eq!(ev["actions"], json!([]), "{ev}");
    assert!(apis.seen().is_empty(), "a read sent something: {:?}", apis.seen());

    // 3. It posts the summary to #incidents, answering the event.
    let summary = "Root cause identified: PaymentService.processCharge() null pointer on non-US addresses. \
                   Introduced in a3f9b2 (14 min ago). PR #847 ready. Recommend rollback while PR is reviewed.";
    let r = sdk.call(
        "slack_post_message",
        json!({"channel": "#incidents", "text": summary, "event_id": delivery}),
    );
    assert_eq!(
        answer_of("slack_post_message", &r),
        json!({"channel": "C0INCIDENTS", "ts": "1764000900.000100"})
    );
    let seen = apis.seen();
    assert_eq!(seen.len(), 1, "exactly one request: {seen:?}");
    assert_request(
        &seen[0],
        "/api/chat.postMessage",
        &format!("Bearer {SLACK_TOKEN}"),
        &json!({"channel": "#incidents", "text": summary}),
    );

    // 4. The action is stored with the event it answered.
    let r = sdk.call("get_event", json!({"id": delivery}));
    let ev = answer_of("get_event", &r);
    let actions = ev["actions"].as_array().unwrap_or_else(|| panic!("{ev}"));
    assert_eq!(actions.len(), 1, "{ev}");
    assert_eq!(actions[0]["tool"], "slack_post_message", "{ev}");
    assert_eq!(actions[0]["outcome"], "ok", "{ev}");
    assert_eq!(actions[0]["arguments"]["channel"], "#incidents", "{ev}");

    // One webhook, one notification: the refused one produced none.
    let status = sdk.close();
    assert_eq!(status["channelNotifications"], 1, "{status}");
    assert_eq!(apis.seen().len(), 1, "{:?}", apis.seen());
    let log = sdk.log();
    assert!(
        !log.contains(SLACK_TOKEN) && !log.contains(DD_TOKEN),
        "a token reached the log\n{}",
        sdk.transcript()
    );
}
