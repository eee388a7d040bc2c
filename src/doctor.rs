//! `hookwire doctor`: is this machine ready to run hookwire with this config, and exactly
//! what to paste into Claude Code. Each check prints one line: `ok`, `warn` (works, but
//! look) or `FAIL` (will not work); the exit code is 1 when any check failed.
//!
//! Local mode checks the config, its secrets, the listen address and the store's folder (or,
//! with `store.backend: nats`, the JetStream cluster: `doctor/nats.rs`);
//! `--gateway URL` connects to the gateway as the linked channel would and reports the
//! token's subscriber, sources and permissions (or why it cannot); `--remote URL` checks the
//! gateway's remote channel (`/mcp`) with the token (`doctor/remote.rs`). Both check Claude Code's
//! version and read the tail of its newest debug logs for `Channel notifications skipped`,
//! the only trace Claude Code leaves when it drops a channel's events.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

use hookwire::registry;
use hookwire_core::{config, gateway, link, link_protocol, pipeline, render};

use crate::templates;

mod nats;
mod remote;

/// The oldest Claude Code with channels.
const MIN_CLAUDE: (u64, u64, u64) = (2, 1, 80);

/// How long `claude --version` may take.
const CLAUDE_WAIT: Duration = Duration::from_secs(15);

/// How long the gateway may take to connect, and then to send `hello`.
const GATEWAY_WAIT: Duration = Duration::from_secs(10);

/// Claude Code's debug logs read: the newest this many files...
const DEBUG_LOGS: usize = 5;
/// ...and of each, at most its last this many bytes.
const DEBUG_LOG_TAIL: u64 = 1 << 20;

/// What Claude Code writes to its debug log when it connects a server without delivering its
/// channel events (`MCP server "NAME": Channel notifications skipped: REASON`).
const SKIPPED: &str = "Channel notifications skipped: ";

/// The command's arguments.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("link").args(["gateway", "remote"])))]
pub struct DoctorArgs {
    /// The configuration file.
    #[arg(long, env = "HOOKWIRE_CONFIG", default_value = "config.yaml")]
    config: PathBuf,
    /// Check and print the set-up for a channel linked to this gateway instead of local
    /// mode: connect with the session token (HOOKWIRE_TOKEN or --token-file) and report its
    /// sources and permissions. The config is then only read for `tools:`. While doctor is
    /// connected, a live session with the same token is taken over (it reconnects).
    #[arg(long, value_name = "URL")]
    gateway: Option<String>,
    /// Check and print the set-up for the gateway as a remote channel (`/mcp`, no hookwire
    /// on this machine): the discover probe, `initialize` with the session token, the tools
    /// offered, then the session is ended. Reads no event.
    #[arg(long, value_name = "URL")]
    remote: Option<String>,
    /// A file holding the session token (instead of HOOKWIRE_TOKEN).
    #[arg(long, value_name = "PATH", requires = "link")]
    token_file: Option<PathBuf>,
    /// PEM file of the CA certificate(s) that signed the gateway's certificate.
    #[arg(long, value_name = "PATH", requires = "link")]
    ca_file: Option<PathBuf>,
}

#[derive(Default)]
struct Report {
    failed: bool,
}

impl Report {
    fn ok(&mut self, what: &str, detail: impl AsRef<str>) {
        println!("ok    {what}: {}", detail.as_ref());
    }
    fn warn(&mut self, what: &str, detail: impl AsRef<str>) {
        println!("warn  {what}: {}", detail.as_ref());
    }
    fn fail(&mut self, what: &str, detail: impl AsRef<str>) {
        self.failed = true;
        println!("FAIL  {what}: {}", detail.as_ref());
    }
}

/// `hookwire doctor`.
pub fn doctor(args: DoctorArgs) -> ExitCode {
    let mut r = Report::default();
    let config_path = args.config.canonicalize().unwrap_or_else(|_| args.config.clone());
    let text = std::fs::read_to_string(&config_path);
    let env_names = text.as_deref().map(env_references).unwrap_or_default();
    match (&args.gateway, &args.remote) {
        (Some(url), _) => check_gateway(&mut r, url, &args, &config_path),
        (None, Some(url)) => remote::check(&mut r, url, &args),
        (None, None) => check_local(&mut r, &config_path),
    }
    check_claude(&mut r);
    check_claude_logs(&mut r, &claude_config_dir());
    match &args.remote {
        Some(url) => remote::print_setup(url),
        None => print_setup(&config_path, &args, &env_names),
    }
    if r.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The config, its secrets, the listen address and the store's folder.
fn check_local(r: &mut Report, path: &Path) {
    // Shape and templates first, so missing secrets are told apart from mistakes.
    let shape = config::load_without_secrets(path, &registry()).and_then(|c| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut p = hookwire_core::diagnostics::Problems::new(path, &text);
        let used = render::used_by(
            templates::TEMPLATES,
            c.sources.iter().map(|s| s.templates.as_str()),
        );
        render::Templates::load(&used, c.templates_dir.as_deref(), &mut p);
        p.finish().map(|_| c)
    });
    let config = match shape {
        Ok(c) => {
            r.ok(
                "config",
                format!(
                    "{} ({} sources, templates compile)",
                    path.display(),
                    c.sources.len()
                ),
            );
            c
        }
        Err(e) => {
            r.fail("config", format!("{} problem(s):\n{e}", e.0.len()));
            return;
        }
    };
    match pipeline::load(path, &registry(), templates::TEMPLATES) {
        Ok(_) => r.ok("secrets", "every referenced secret is set"),
        Err(e) => r.fail("secrets", format!("not all set:\n{e}")),
    }
    match std::net::TcpListener::bind(config.listen) {
        Ok(_) => r.ok("listen", format!("{} is free", config.listen)),
        // Another session of this project listening is how several sessions share one port.
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && project_listens(&config.store.path) => r.ok(
            "listen",
            format!(
                "{} is held by another hookwire session of this project, which listens for all of them",
                config.listen
            ),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => r.fail(
            "listen",
            format!(
                "{} is in use by another program; stop it, or set `listen:` / pass --listen",
                config.listen
            ),
        ),
        Err(e) => r.fail("listen", format!("cannot bind {}: {e}", config.listen)),
    }
    if let config::StoreBackend::Nats(settings) = &config.store.backend {
        nats::check(r, settings);
        return;
    }
    let dir = config
        .store
        .path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match writable_dir(dir) {
        Ok(()) => r.ok(
            "store",
            format!("{} (folder writable)", config.store.path.display()),
        ),
        Err(e) => r.fail(
            "store",
            format!("cannot write in {}: {e}; set `store.path:`", dir.display()),
        ),
    }
}

/// Creates and removes a probe file: permissions alone do not tell (read-only mounts, ACLs).
fn writable_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".hookwire-doctor-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

/// Connects to the gateway as `hookwire channel --gateway` does and reports what its `hello`
/// says about the token.
fn check_gateway(r: &mut Report, gateway_url: &str, args: &DoctorArgs, config_path: &Path) {
    // The linked channel reads `tools:` of its --config and refuses to start on an error.
    let tools = match config::load_tools(config_path) {
        Ok(t) if config_path.exists() => {
            r.ok("config", format!("{} (tools: only)", config_path.display()));
            Some(t)
        }
        Ok(_) => None,
        Err(e) => {
            r.fail("config", format!("{} problem(s):\n{e}", e.0.len()));
            None
        }
    };
    let url = match link::session_url(gateway_url) {
        Ok(u) => u,
        Err(e) => return r.fail("gateway", e),
    };
    let from = match &args.token_file {
        Some(f) => format!("--token-file {}", f.display()),
        None => link::TOKEN_ENV.to_owned(),
    };
    let token = match link::read_token(args.token_file.as_deref()) {
        Ok(t) => {
            r.ok("token", format!("read from {from}"));
            t
        }
        Err(e) => return r.fail("token", e),
    };
    let tls = match &args.ca_file {
        Some(path) => match link::tls_with_ca(path) {
            Ok(c) => Some(c),
            Err(e) => return r.fail("gateway", e),
        },
        None => {
            gateway::install_crypto_provider();
            None
        }
    };
    if url.starts_with("ws://") && !is_loopback(&url) {
        r.warn(
            "gateway",
            format!("{url}: the token crosses the network unencrypted; use https://"),
        );
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return r.fail("gateway", format!("cannot start: {e}")),
    };
    // A probe writes nothing to a session, so it keeps no position.
    let opts = link::LinkOptions {
        url: url.clone(),
        token,
        tls,
        mark: None,
    };
    let hello = match runtime.block_on(link::probe(&opts, GATEWAY_WAIT)) {
        Ok(h) => h,
        Err(e) => {
            let hint = if e.starts_with("401") {
                if e.contains("(unknown)") {
                    "; the gateway knows no such token: check it was copied whole, or ask its admin for one (`hookwire token create`)"
                } else {
                    "; ask the gateway's admin for a new token (`hookwire token create`)"
                }
            } else {
                ""
            };
            return r.fail("gateway", format!("{url}: {e}{hint}"));
        }
    };
    if hello.protocol != link_protocol::PROTOCOL_VERSION {
        return r.fail(
            "gateway",
            format!(
                "{url} speaks protocol {} and this hookwire {}: use the same hookwire release on both sides",
                hello.protocol,
                link_protocol::PROTOCOL_VERSION
            ),
        );
    }
    r.ok(
        "gateway",
        format!("{url}: connected as `{}`, then closed", hello.subscriber),
    );
    let list = |v: &[String], none: &str| {
        if v.is_empty() {
            none.to_owned()
        } else {
            v.join(", ")
        }
    };
    if hello.sources.is_empty() {
        r.warn("sources", "none: this session will receive no events");
    } else {
        r.ok("sources", list(&hello.sources, ""));
    }
    r.ok(
        "permissions",
        list(&hello.permissions, "none (one-way: events only, no tools)"),
    );
    // A granted action tool runs on this machine with the credentials of `tools:` here.
    let Some(tools) = tools else { return };
    for perm in &hello.permissions {
        let missing = match hookwire_core::tools::needs(perm) {
            Some("github") => tools.github.is_none(),
            Some("slack") => tools.slack.is_none(),
            _ => false,
        };
        if missing {
            let section = hookwire_core::tools::needs(perm).unwrap_or_default();
            r.warn(
                "tools",
                format!(
                    "the token grants `{perm}`, but {} has no usable tools.{section}: that tool will not be offered",
                    config_path.display()
                ),
            );
        }
    }
}

fn is_loopback(url: &str) -> bool {
    let host = url
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(rest))
        .unwrap_or(url);
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `claude --version`, if `claude` is on PATH.
fn check_claude(r: &mut Report) {
    let child = Command::new("claude")
        .arg("--version")
        .env("DISABLE_AUTOUPDATER", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            r.warn(
                "claude",
                "not on PATH; channels need Claude Code >= 2.1.80 where the session runs",
            );
            return;
        }
        Err(e) => {
            r.warn("claude", format!("cannot run `claude --version`: {e}"));
            return;
        }
    };
    let deadline = Instant::now() + CLAUDE_WAIT;
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            r.warn("claude", "`claude --version` did not answer in time");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
    }
    match parse_version(&out) {
        Some(v) if v >= MIN_CLAUDE => r.ok("claude", format!("Claude Code {}.{}.{}", v.0, v.1, v.2)),
        Some(v) => r.fail(
            "claude",
            format!(
                "Claude Code {}.{}.{} has no channels; update to >= {}.{}.{} (`claude update`)",
                v.0, v.1, v.2, MIN_CLAUDE.0, MIN_CLAUDE.1, MIN_CLAUDE.2
            ),
        ),
        None => r.warn("claude", format!("cannot read a version in {:?}", out.trim())),
    }
}

/// The first `X.Y.Z` in `claude --version`'s output (`2.1.331 (Claude Code)`).
fn parse_version(out: &str) -> Option<(u64, u64, u64)> {
    out.split(|c: char| c.is_whitespace() || c == '(' || c == 'v')
        .find_map(|word| {
            let mut parts = word.split('.');
            let v = (
                parts.next()?.parse().ok()?,
                parts.next()?.parse().ok()?,
                parts.next()?.split(['-', '+']).next()?.parse().ok()?,
            );
            parts.next().is_none().then_some(v)
        })
}

/// Claude Code's configuration folder: `CLAUDE_CONFIG_DIR`, else `~/.claude`.
fn claude_config_dir() -> PathBuf {
    match std::env::var_os("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".claude"),
    }
}

/// One `Channel notifications skipped` reason of one server, as found in the logs.
struct Skipped {
    count: usize,
    /// The newest line's timestamp, as Claude Code wrote it.
    newest: String,
    /// Whether it is in the newest debug log (the latest session).
    latest: bool,
}

/// Reads the tail of the newest debug logs in `<config dir>/debug/` for `Channel
/// notifications skipped` lines and reports each reason once, with what to do.
fn check_claude_logs(r: &mut Report, config_dir: &Path) {
    let dir = config_dir.join("debug");
    let mut logs: Vec<(SystemTime, PathBuf)> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            // Regular files only: Claude Code also keeps a `latest` link to one of them.
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| e.path().extension().is_some_and(|x| x == "txt"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect(),
        Err(_) => {
            r.ok(
                "channel events",
                format!("no Claude Code debug logs in {} yet", dir.display()),
            );
            return;
        }
    };
    logs.sort_by_key(|l| std::cmp::Reverse(l.0));
    logs.truncate(DEBUG_LOGS);
    let mut found: BTreeMap<(String, String), Skipped> = BTreeMap::new();
    let mut registered = Vec::new();
    for (i, (_, path)) in logs.iter().enumerate() {
        let Ok(text) = read_tail(path, DEBUG_LOG_TAIL) else {
            continue;
        };
        for line in text.lines() {
            if i == 0 && line.contains("Channel notifications registered") {
                if let Some((_, server, _)) = parse_log_line(line, "Channel notifications registered") {
                    registered.push(server);
                }
            }
            let Some((at, server, reason)) = parse_log_line(line, SKIPPED) else {
                continue;
            };
            // Every MCP server is put through the channel gate; one that is not a channel
            // at all is noise unless it is hookwire's.
            if reason.starts_with("server did not declare claude/channel capability")
                && !server.contains("hookwire")
            {
                continue;
            }
            let entry = found.entry((server, reason)).or_insert(Skipped {
                count: 0,
                newest: String::new(),
                latest: false,
            });
            entry.count += 1;
            entry.latest |= i == 0;
            if at > entry.newest {
                entry.newest = at;
            }
        }
    }
    registered.sort();
    registered.dedup();
    if found.is_empty() {
        let also = if registered.is_empty() {
            String::new()
        } else {
            format!(
                "; the latest session registered channel notifications of {}",
                registered.join(", ")
            )
        };
        r.ok(
            "channel events",
            format!(
                "no `Channel notifications skipped` line in the newest {} debug log(s) in {}{also}",
                logs.len(),
                dir.display()
            ),
        );
        return;
    }
    let total: usize = found.values().map(|s| s.count).sum();
    let mut detail = format!(
        "Claude Code skipped channel notifications {total} time(s) in the newest {} debug log(s) in {}: it drops those servers' events",
        logs.len(),
        dir.display()
    );
    for ((server, reason), s) in &found {
        detail += &format!(
            "\n        - \"{server}\": {reason} ({} time(s), newest {}{})\n          fix: {}",
            s.count,
            s.newest,
            if s.latest { ", in the latest session" } else { "" },
            skip_fix(server, reason)
        );
    }
    if found.values().any(|s| s.latest) {
        r.fail("channel events", detail);
    } else {
        r.warn("channel events", detail);
    }
}

/// The last `max` bytes of a file, from its first whole line.
fn read_tail(path: &Path, max: u64) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(max);
    f.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity((len - start) as usize);
    f.take(max).read_to_end(&mut bytes)?;
    if start > 0 {
        let cut = bytes
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |p| p + 1);
        bytes.drain(..cut);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `2026-12-03T10:01:44.501Z [DEBUG] MCP server "hookwire": <marker><reason>` → (time,
/// server, reason), each cleaned for the terminal and bounded.
fn parse_log_line(line: &str, marker: &str) -> Option<(String, String, String)> {
    let (head, reason) = line.split_once(marker)?;
    let at = head.split_whitespace().next().unwrap_or_default();
    let server = head
        .split_once("MCP server \"")
        .and_then(|(_, rest)| rest.rsplit_once("\": "))
        .map_or("?", |(name, _)| name);
    let clean =
        |s: &str, max: usize| -> String { s.trim().chars().filter(|c| !c.is_control()).take(max).collect() };
    Some((clean(at, 40), clean(server, 100), clean(reason, 300)))
}

/// What to do about one reason Claude Code gives for skipping a server's channel events.
fn skip_fix(server: &str, reason: &str) -> String {
    let launch = match server.strip_prefix("plugin:") {
        Some(rest) => format!("plugin:{}@<marketplace>", rest.split(':').next().unwrap_or(rest)),
        None => format!("server:{server}"),
    };
    if reason.contains("not in --channels list") {
        format!("start claude with `--dangerously-load-development-channels {launch}` (the server must be named in the launch flag)")
    } else if reason.contains("not enabled by org policy") {
        "an Owner of your organisation must turn channels on (claude.ai Team or Enterprise: the Channels setting of the organisation; managed settings: channelsEnabled: true)".into()
    } else if reason.contains("third-party providers") {
        "channels need a claude.ai or Console login; they are unavailable on Bedrock, Vertex and Foundry (unset CLAUDE_CODE_USE_BEDROCK, CLAUDE_CODE_USE_VERTEX or CLAUDE_CODE_USE_FOUNDRY, then /login)".into()
    } else if reason.contains("feature is not currently available") {
        "channels are not available to this account now: log in with a claude.ai or Console account (/login) and update Claude Code (`claude update`)".into()
    } else if reason.contains("approved channels allowlist") {
        format!("launch with `--dangerously-load-development-channels {launch}` instead of --channels (hookwire is not on Anthropic's allowlist)")
    } else if reason.contains("approved channels list") {
        format!("ask an admin to add the plugin to allowedChannelPlugins in managed settings, or launch with `--dangerously-load-development-channels {launch}`")
    } else if reason.contains("you asked for plugin:") {
        "the installed plugin comes from another marketplace than the launch flag names: install it from that marketplace, or change the flag".into()
    } else if reason.contains("did not declare claude/channel capability") {
        format!("`{server}` is not a channel server: its command must be `hookwire channel` (`claude mcp get {server}` shows it)")
    } else if reason.contains("modern protocol revision") {
        "update hookwire: this one negotiated a protocol revision without channel delivery".into()
    } else {
        "see the Channels requirements in hookwire's README (Add it to Claude Code)".into()
    }
}

/// Every `*_env` value in the config (secret_env, token_env, ...): the variables the
/// channel process needs from Claude Code's environment.
fn env_references(text: &str) -> Vec<String> {
    fn walk(v: &serde_norway::Value, out: &mut Vec<String>) {
        match v {
            serde_norway::Value::Mapping(m) => {
                for (k, v) in m {
                    let is_env = k.as_str().is_some_and(|k| k.ends_with("_env"));
                    match v {
                        serde_norway::Value::String(s) if is_env => out.push(s.clone()),
                        serde_norway::Value::Sequence(items) if is_env => {
                            out.extend(items.iter().filter_map(|i| i.as_str().map(str::to_owned)))
                        }
                        other => walk(other, out),
                    }
                }
            }
            serde_norway::Value::Sequence(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(doc) = serde_norway::from_str::<serde_norway::Value>(text) {
        walk(&doc, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

/// The `.mcp.json` entry and the `claude` command line for this set-up. The entry passes no
/// secret: the channel inherits Claude Code's environment, and an `env` entry whose variable
/// is not exported would pass its literal `${...}` text instead.
fn print_setup(config: &Path, args: &DoctorArgs, env_names: &[String]) {
    let command = std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_owned))
        .unwrap_or_else(|| "hookwire".into());
    let absolute = |p: &Path| {
        p.canonicalize()
            .unwrap_or_else(|_| p.to_owned())
            .display()
            .to_string()
    };
    let (cmd_args, exports): (Vec<String>, Vec<String>) = match &args.gateway {
        Some(url) => {
            let mut a = vec!["channel".to_owned(), "--gateway".to_owned(), url.clone()];
            let mut exports = Vec::new();
            match &args.token_file {
                Some(f) => a.extend(["--token-file".to_owned(), absolute(f)]),
                None => exports.push(link::TOKEN_ENV.to_owned()),
            }
            if let Some(ca) = &args.ca_file {
                a.extend(["--ca-file".to_owned(), absolute(ca)]);
            }
            if config.exists() {
                a.extend(["--config".to_owned(), config.display().to_string()]);
            }
            (a, exports.into_iter().chain(env_names.iter().cloned()).collect())
        }
        None => (
            vec![
                "channel".to_owned(),
                "--config".to_owned(),
                config.display().to_string(),
            ],
            env_names.to_vec(),
        ),
    };
    let entry = serde_json::json!({
        "mcpServers": { "hookwire": { "command": command, "args": cmd_args } }
    });
    println!(
        "\nAdd to the project's .mcp.json (no secret in it):\n{}",
        serde_json::to_string_pretty(&entry).expect("plain JSON")
    );
    if !exports.is_empty() {
        println!(
            "\nExport in the shell you start claude from (the channel inherits that environment; an\n\
             \"env\" entry in .mcp.json would pass the literal ${{...}} text when one is unset):\n  {}",
            exports.join(" ")
        );
    }
    println!(
        "\nThen start Claude Code with the channel (needs Claude Code >= 2.1.80, a claude.ai or\n\
         Console login, and on Team and Enterprise plans channels turned on by an Owner):\n  \
         claude --dangerously-load-development-channels server:hookwire\n\
         On the first launch in a project, answer \"Yes, I trust this folder\" and, at \"New MCP\n\
         server found in this project\", \"Use this MCP server\": Enter on either default\n\
         exits, or starts the session without hookwire."
    );
}

/// Whether a hookwire session of the project whose store is `store` holds its listener lock.
/// The lock file exists once a session has listened; only then is it worth probing.
fn project_listens(store: &Path) -> bool {
    let mut lock = store.as_os_str().to_owned();
    lock.push(".listener.lock");
    Path::new(&lock).exists() && matches!(hookwire_core::delivery::ListenerLock::try_take(store), Ok(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_claude_versions() {
        assert_eq!(parse_version("2.1.331 (Claude Code)\n"), Some((2, 1, 331)));
        assert_eq!(parse_version("v2.1.80"), Some((2, 1, 80)));
        assert_eq!(parse_version("Claude Code 2.0.9-beta"), Some((2, 0, 9)));
        assert_eq!(parse_version("claude: command failed"), None);
        assert!(parse_version("2.1.79").unwrap() < MIN_CLAUDE);
        assert!(parse_version("2.1.80").unwrap() >= MIN_CLAUDE);
        assert!(parse_version("2.2.0").unwrap() >= MIN_CLAUDE);
    }

    #[test]
    fn finds_every_env_reference() {
        let text = "sources:\n  - name: gh\n    secret_env: [A, B]\n  - name: dd\n    secret_env: C\n    secret_file: x\ntools:\n  github:\n    token_env: D\n";
        assert_eq!(env_references(text), ["A", "B", "C", "D"]);
    }
}
