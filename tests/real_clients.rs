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
//!
//! Both clients come from `tests/node/node_modules`, pinned by `tests/node/package-lock.json`.
//! Install them with `npm ci --prefix tests/node` (CI does); the tests fail, rather than skip,
//! when they are missing. Nothing here needs network access or credentials.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Test-only webhook secret, handed to hookwire through `HOOKWIRE_TEST_GITHUB_SECRET`.
const TEST_SECRET: &str = "hwtest-7f3a91c2e05b4d68a1c9f2e7b3d04a56";

/// Upper bound for the Node SDK run (the script has its own 30 s overall timeout).
const NODE_TIMEOUT: Duration = Duration::from_secs(90);

/// Upper bound for each Claude Code CLI invocation (`mcp get` itself gives up after 30 s).
const CLAUDE_TIMEOUT: Duration = Duration::from_secs(60);

const NPM_HINT: &str = "run `npm ci --prefix tests/node` in the repository root first (CI does this)";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn canonical(path: PathBuf) -> PathBuf {
    path.canonicalize()
        .unwrap_or_else(|e| panic!("cannot resolve {}: {e}", path.display()))
}

fn hookwire_bin() -> PathBuf {
    canonical(PathBuf::from(env!("CARGO_BIN_EXE_hookwire")))
}

fn config_path() -> PathBuf {
    canonical(manifest_dir().join("tests/node/config.yaml"))
}

fn payload_path() -> PathBuf {
    canonical(manifest_dir().join("../shared/fixtures/payloads/github/issues.opened.json"))
}

/// `tests/node/node_modules`, or a failure telling the reader how to install it.
fn node_modules() -> PathBuf {
    let dir = manifest_dir().join("tests/node/node_modules");
    assert!(dir.is_dir(), "{} is missing: {NPM_HINT}", dir.display());
    dir
}

fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("path is not UTF-8: {}", path.display()))
}

/// What a finished child printed.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn transcript(&self, what: &str) -> String {
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
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(format!("-{}", child.id()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `cmd` with stdin closed and output captured; fails the test if it outlives `timeout`.
fn run_with_timeout(mut cmd: Command, what: &str, timeout: Duration) -> Finished {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        // Own process group, so a timeout can take down the whole tree.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
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
    let mut cmd = Command::new("node");
    cmd.current_dir(manifest_dir())
        .arg("tests/node/sdk_client.mjs")
        .arg(hookwire_bin())
        .arg(config_path())
        .arg(payload_path())
        .env("HOOKWIRE_TEST_GITHUB_SECRET", TEST_SECRET);
    let run = run_with_timeout(cmd, &format!("node {}", script.display()), NODE_TIMEOUT);
    let transcript = run.transcript("official MCP SDK client");
    assert!(run.status.success(), "{transcript}");
    println!("{transcript}");
}

/// A throwaway `HOME` for the Claude Code CLI, removed on drop (also when the test fails).
struct TempHome(PathBuf);

impl TempHome {
    fn new() -> Self {
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
fn claude_command(claude: &Path, home: &Path) -> Command {
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

/// Minimal JSON string literal (the test uses std only).
fn json_string(s: &str) -> String {
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
fn mcp_logs(dir: &Path) -> Vec<(PathBuf, String)> {
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
        json_string(path_str(&config_path())),
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
