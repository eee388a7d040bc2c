//! A fake Claude Code for black-box tests: spawns `hookwire channel` exactly as Claude Code
//! does (stdin/stdout pipes, stderr for logs), speaks newline-delimited JSON-RPC to it, and
//! POSTs signed webhooks to its listener. Every wait is on a condition with a deadline.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// How long any single expected thing may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/fixtures/payloads/<rel>`.
pub fn payload(rel: &str) -> Vec<u8> {
    let p = root().join("tests/fixtures/payloads").join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// `body` (a JSON object) with one more field holding `id`, so deliveries of one fixture
/// differ: hookwire treats the same signed bytes under a new delivery id as a replay.
pub fn distinct(body: &[u8], id: &str) -> Vec<u8> {
    let end = body
        .iter()
        .rposition(|b| *b == b'}')
        .expect("a JSON object payload");
    let mut out = body[..end].to_vec();
    out.extend_from_slice(format!(",\"hookwire_test_delivery\":{}", serde_json::json!(id)).as_bytes());
    out.extend_from_slice(&body[end..]);
    out
}

/// A small valid GitHub `issues` payload whose title is `marker`, so a test can tell events
/// apart.
pub fn issue(marker: &str) -> Vec<u8> {
    issue_payload(marker, 1, "b")
}

/// [`issue`] with the issue body `body`.
pub fn issue_with_body(marker: &str, body: &str) -> Vec<u8> {
    issue_payload(marker, 1, body)
}

/// [`issue`] for issue `number`, with the issue body `body`.
pub fn issue_payload(marker: &str, number: u64, body: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "action": "opened",
        "issue": {"number": number, "title": marker, "body": body,
                  "html_url": format!("https://github.com/o/r/issues/{number}"),
                  "user": {"login": "u"}, "labels": [], "state": "open", "comments": 0},
        "repository": {"full_name": "o/r", "html_url": "https://github.com/o/r"},
        "sender": {"login": "u"}
    }))
    .unwrap()
}

/// `X-Hub-Signature-256` for `body`.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The `delivery_id` meta of a `notifications/claude/channel` message.
pub fn delivery_id(n: &Value) -> String {
    n["params"]["meta"]["delivery_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no delivery_id in {n}"))
        .to_owned()
}

/// A temporary folder removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("hookwire-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// Writes a file in the folder and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary under test: this build's, or the one `HOOKWIRE_TEST_BIN` names (to see a new
/// test fail on an older build before its fix).
pub fn bin() -> PathBuf {
    std::env::var_os("HOOKWIRE_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_hookwire")))
}

/// `hookwire channel --config <config> --listen 127.0.0.1:0` with `env`, logging at debug.
fn channel_command(config: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(["channel", "--config"])
        .arg(config)
        .args(["--listen", "127.0.0.1:0"])
        .env("HOOKWIRE_LOG", "debug");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A running `hookwire channel` child.
pub struct Hookwire {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Option<String>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
    pub addr: String,
    next_id: u64,
}

/// A response to an HTTP request: status and body.
pub struct HttpReply {
    pub status: u16,
    pub body: String,
}

impl Hookwire {
    /// Spawns `hookwire channel --config <config> --listen 127.0.0.1:0` with `env`, and waits
    /// until it says where it listens.
    pub fn spawn(config: &Path, env: &[(&str, &str)]) -> Hookwire {
        Self::launch(channel_command(config, env), None, true)
    }

    /// [`Hookwire::spawn`] with its open-file limit (soft and hard) at `nofile`, as on a
    /// machine that keeps the usual 1024 (through util-linux `prlimit`).
    pub fn spawn_with_nofile(config: &Path, env: &[(&str, &str)], nofile: u64) -> Hookwire {
        let inner = channel_command(config, env);
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={nofile}:{nofile}"))
            .arg(inner.get_program())
            .args(inner.get_args());
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        Self::launch(cmd, None, true)
    }

    /// The pid of the process under test (behind any launcher such as `prlimit`, which
    /// execs it, so the same).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `cmd` with stdio piped as Claude Code does: one thread reads stdout lines (behind
    /// `gate`, if any), one collects stderr. With `listens`, waits until it says where it
    /// listens (`listening on http://` or `https://`) and records the address; else `addr`
    /// is empty.
    fn launch(mut cmd: Command, gate: Option<Arc<StdoutGate>>, listens: bool) -> Hookwire {
        // A linked channel keeps its written position in the user's state folder: the tests'
        // go to one folder of their own, not the developer's.
        if !cmd.get_envs().any(|(k, _)| k == "XDG_STATE_HOME") {
            cmd.env("XDG_STATE_HOME", std::env::temp_dir().join("hookwire-test-state"));
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn hookwire");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                if let Some(g) = &gate {
                    g.take();
                }
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if line.ends_with('\n') {
                            line.pop();
                        }
                        if tx.send(Some(line)).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(None);
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        {
            let stderr_lines = stderr.clone();
            let err = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    let at = line
                        .split("listening on http://")
                        .nth(1)
                        .or_else(|| line.split("listening on https://").nth(1));
                    if let Some(rest) = at {
                        // Up to a space, or the closing quote of a JSON log line.
                        let addr = rest.split(|c: char| c.is_whitespace() || c == '"').next();
                        let _ = addr_tx.send(addr.unwrap_or("").to_owned());
                    }
                    stderr_lines.lock().unwrap().push(line);
                }
            });
        }
        let stdin = child.stdin.take();
        let addr = if listens {
            match addr_rx.recv_timeout(DEADLINE) {
                Ok(a) => a,
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "hookwire never said where it listens; stderr:\n{}",
                        stderr.lock().unwrap().join("\n")
                    );
                }
            }
        } else {
            String::new()
        };
        Hookwire {
            child,
            stdin,
            lines,
            stderr,
            addr,
            next_id: 100,
        }
    }

    /// Takes the server's stdin, to write from another thread (one that may block).
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("stdin open")
    }

    /// Writes one raw line to the server's stdin.
    pub fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Sends a JSON-RPC message.
    pub fn send(&mut self, msg: Value) {
        self.send_raw(&serde_json::to_string(&msg).unwrap());
    }

    /// Sends a request and returns its id.
    pub fn request(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    /// The next stdout line, raw. Fails the test after [`DEADLINE`] or at EOF.
    pub fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(DEADLINE) {
            Ok(Some(l)) => l,
            Ok(None) => panic!("stdout closed; stderr:\n{}", self.stderr_text()),
            Err(RecvTimeoutError::Timeout) => {
                panic!("no stdout line in time; stderr:\n{}", self.stderr_text())
            }
            Err(RecvTimeoutError::Disconnected) => panic!("stdout reader gone"),
        }
    }

    /// The next stdout message, checked to be one line of JSON.
    pub fn next_message(&mut self) -> Value {
        let line = self.next_line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}"))
    }

    /// The next channel notification (fails on anything else).
    /// The next notification's `delivery_id`.
    pub fn next_delivery_id(&mut self) -> String {
        delivery_id(&self.next_notification())
    }

    pub fn next_notification(&mut self) -> Value {
        let m = self.next_message();
        assert_eq!(
            m["method"], "notifications/claude/channel",
            "expected a channel notification, got {m}"
        );
        m
    }

    /// The whole discover → initialize → initialized handshake, as Claude Code 2.1.328 does it.
    pub fn handshake(&mut self) -> Value {
        let id = self.request("server/discover", json!({}));
        let r = self.next_message();
        assert_eq!(r["id"], id);
        assert_eq!(
            r["error"]["code"], -32601,
            "server/discover must be method-not-found: {r}"
        );
        let result = self.initialize("2025-11-25");
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        result
    }

    /// Sends a request and returns its response, skipping channel notifications.
    pub fn rpc(&mut self, method: &str, params: Value) -> Value {
        let id = self.request(method, params);
        loop {
            let m = self.next_message();
            if m["id"] == id {
                return m;
            }
            assert_eq!(
                m["method"], "notifications/claude/channel",
                "unexpected message {m}"
            );
        }
    }

    /// `tools/call` → its result (a `CallToolResult`).
    pub fn call_tool(&mut self, name: &str, arguments: Value) -> Value {
        let r = self.rpc("tools/call", json!({"name": name, "arguments": arguments}));
        assert!(r.get("error").is_none(), "tools/call must answer a result: {r}");
        r["result"].clone()
    }

    /// Sends `initialize` and returns its result.
    pub fn initialize(&mut self, version: &str) -> Value {
        let id = self.request(
            "initialize",
            json!({"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "fake-claude", "version": "1"}}),
        );
        let r = self.next_message();
        assert_eq!(r["id"], id, "{r}");
        r["result"].clone()
    }

    /// POSTs `body` to `path` with `headers`.
    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpReply {
        let mut req = ureq::post(&format!("http://{}{}", self.addr, path)).timeout(DEADLINE);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        reply(req.send_bytes(body))
    }

    /// POSTs over a raw socket and reads the status even if the server answers (and stops
    /// reading) before the body is fully written, as it does for an oversized body.
    /// With `chunked`, the length is not declared up front.
    pub fn post_status_raw(&self, path: &str, headers: &[(&str, &str)], body: &[u8], chunked: bool) -> u16 {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let length = if chunked {
            "Transfer-Encoding: chunked".to_owned()
        } else {
            format!("Content-Length: {}", body.len())
        };
        let mut wire = self
            .post_head(path, &length, headers, "Connection: close\r\n")
            .into_bytes();
        if chunked {
            for c in body.chunks(8192) {
                wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                wire.extend_from_slice(c);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
        } else {
            wire.extend_from_slice(body);
        }
        let _ = s.write_all(&wire);
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        status_code(&resp)
    }

    /// The status the server answers a POST to `path` announcing a `len`-byte body with
    /// `headers`, read before a byte of that body is sent: the server must refuse from the
    /// head alone (a client still writing a body the server refused unread could see a broken
    /// pipe instead of the answer).
    pub fn status_before_body(&self, path: &str, headers: &[(&str, &str)], len: usize) -> u16 {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let head = self.post_head(path, &format!("Content-Length: {len}"), headers, "");
        s.write_all(head.as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while !got.windows(2).any(|w| w == b"\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed without an answer");
            got.extend_from_slice(&buf[..n]);
        }
        status_code(&got)
    }

    /// A POST's head for the raw-socket helpers: `length` says how the body is framed, `extra`
    /// is more header lines, each ending in CRLF.
    fn post_head(&self, path: &str, length: &str, headers: &[(&str, &str)], extra: &str) -> String {
        let mut head = format!("POST {path} HTTP/1.1\r\nHost: {}\r\n{length}\r\n", self.addr);
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(extra);
        head.push_str("\r\n");
        head
    }

    /// Any method to any path.
    pub fn call(&self, method: &str, path: &str) -> HttpReply {
        reply(
            ureq::request(method, &format!("http://{}{}", self.addr, path))
                .timeout(DEADLINE)
                .call(),
        )
    }

    /// POSTs a GitHub delivery signed with `secret`.
    pub fn post_github(
        &self,
        path: &str,
        secret: &str,
        event: &str,
        delivery: &str,
        body: &[u8],
    ) -> HttpReply {
        let sig = github_signature(secret, body);
        self.post(
            path,
            &[
                ("Content-Type", "application/json"),
                ("X-GitHub-Event", event),
                ("X-GitHub-Delivery", delivery),
                ("X-Hub-Signature-256", &sig),
            ],
            body,
        )
    }

    /// Closes stdin (what Claude Code does first at shutdown) and waits for exit; returns the
    /// time it took and every stdout line written after the ones already read.
    pub fn close_and_wait(&mut self) -> (Duration, Vec<String>) {
        let start = Instant::now();
        drop(self.stdin.take());
        let status = wait_with_deadline(&mut self.child, DEADLINE);
        let took = start.elapsed();
        assert!(status.is_some(), "hookwire did not exit after stdin closed");
        let mut rest = Vec::new();
        while let Ok(Some(l)) = self.lines.recv_timeout(DEADLINE) {
            rest.push(l);
        }
        (took, rest)
    }

    /// For a channel that cannot serve its configuration: completes the handshake, returns
    /// the one notification it then writes (what is wrong and how to fix it), closes stdin
    /// and returns the exit code too.
    pub fn unservable_notice(&mut self) -> (String, Option<i32>) {
        let result = self.handshake();
        let notice = self.next_notification();
        assert_eq!(
            notice["params"]["meta"]["event"], "hookwire.not_started",
            "{notice}"
        );
        let content = notice["params"]["content"].as_str().unwrap().to_owned();
        assert!(
            result["instructions"]
                .as_str()
                .unwrap()
                .contains("could not start"),
            "{result}"
        );
        drop(self.stdin.take());
        let status = wait_with_deadline(&mut self.child, DEADLINE).expect("exits once the client has gone");
        (content, status.code())
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Hookwire {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reply(r: Result<ureq::Response, ureq::Error>) -> HttpReply {
    match r {
        Ok(resp) => HttpReply {
            status: resp.status(),
            body: resp.into_string().unwrap_or_default(),
        },
        Err(ureq::Error::Status(code, resp)) => HttpReply {
            status: code,
            body: resp.into_string().unwrap_or_default(),
        },
        Err(e) => panic!("HTTP transport error: {e}"),
    }
}

/// The text of a `CallToolResult`'s first content block (empty without one).
pub fn tool_text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or("")
}

/// Polls `child` until it exits or `limit` passes.
pub fn wait_with_deadline(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Helpers for tests that kill the process and read what it wrote (tests/it/durability.rs).
impl Hookwire {
    /// The next stdout line, or `None` once stdout reached EOF (the process exited or was
    /// killed). Fails the test after [`DEADLINE`] without either. At a kill, the last line
    /// may be a fragment (no newline was written): the caller decides what it means.
    pub fn next_line_or_eof(&mut self) -> Option<String> {
        match self.lines.recv_timeout(DEADLINE) {
            Ok(Some(l)) => Some(l),
            Ok(None) | Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                panic!("no stdout line or EOF in time; stderr:\n{}", self.stderr_text())
            }
        }
    }

    /// The next stdout line within `limit` (for waits that may be longer than [`DEADLINE`],
    /// such as a gateway link's reconnect backoff), or `None` at EOF.
    pub fn next_line_within(&mut self, limit: Duration) -> Option<String> {
        match self.lines.recv_timeout(limit) {
            Ok(Some(l)) => Some(l),
            Ok(None) | Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                panic!("no stdout line in {limit:?}; stderr:\n{}", self.stderr_text())
            }
        }
    }

    /// The process's resident set size in bytes (`VmRSS` of `/proc/PID/status`).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {status}"));
        kb * 1024
    }
}

/// Lets a test stop reading a child's stdout, as a busy client does: while closed, the reader
/// thread makes no `read(2)`, so the pipe fills and the server's writes block.
#[derive(Default)]
pub struct StdoutGate {
    /// Lines the reader may still take; `None` = no limit.
    budget: Mutex<Option<usize>>,
    changed: std::sync::Condvar,
}

impl StdoutGate {
    /// Stops reading (after the line being read; what the reader already buffered stays
    /// there).
    pub fn close(&self) {
        *self.budget.lock().unwrap() = Some(0);
    }

    /// Reads again, without limit.
    pub fn open(&self) {
        *self.budget.lock().unwrap() = None;
        self.changed.notify_all();
    }

    /// Reads `n` more lines, then stops again.
    pub fn allow(&self, n: usize) {
        *self.budget.lock().unwrap() = Some(n);
        self.changed.notify_all();
    }

    /// Waits until a line may be read, and counts it.
    fn take(&self) {
        let mut budget = self.budget.lock().unwrap();
        while *budget == Some(0) {
            budget = self.changed.wait(budget).unwrap();
        }
        if let Some(n) = budget.as_mut() {
            *n -= 1;
        }
    }
}

impl Hookwire {
    /// [`Hookwire::spawn`], with the stdout reader thread behind `gate`.
    pub fn spawn_gated(config: &Path, env: &[(&str, &str)], gate: Arc<StdoutGate>) -> Hookwire {
        Self::launch(channel_command(config, env), Some(gate), true)
    }
}

/// Spawning with any arguments (tests/it/gateway.rs: `hookwire serve`, `hookwire channel --gateway`).
impl Hookwire {
    /// Spawns `hookwire <args>` with `env` (and without any inherited `HOOKWIRE_TOKEN`), stdio
    /// piped as Claude Code does. With `listens`, waits until it says where it listens
    /// (`listening on http://` or `https://`) and records the address; else `addr` is empty.
    pub fn spawn_args(args: &[&std::ffi::OsStr], env: &[(&str, &str)], listens: bool) -> Hookwire {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env("HOOKWIRE_LOG", "debug")
            .env_remove("HOOKWIRE_TOKEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::launch(cmd, None, listens)
    }

    /// Waits until a stderr line contains `needle`; fails the test after [`DEADLINE`].
    pub fn wait_stderr(&self, needle: &str) {
        let end = Instant::now() + DEADLINE;
        while Instant::now() < end {
            if self.stderr.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "no stderr line with {needle:?} in time; stderr:\n{}",
            self.stderr_text()
        );
    }
}
pub mod fakes;
pub mod gateway;
pub mod nats;

/// The status code of a raw HTTP answer (its status line, at least).
fn status_code(answer: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}
