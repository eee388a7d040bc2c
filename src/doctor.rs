//! `hookwire doctor`: is this machine ready to run hookwire with this config, and exactly
//! what to paste into Claude Code. Each check prints one line: `ok`, `warn` (works, but
//! look) or `FAIL` (will not work); the exit code is 1 when any check failed.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use hookwire::registry;
use hookwire_core::{config, pipeline};

use crate::templates;

/// The oldest Claude Code with channels.
const MIN_CLAUDE: (u64, u64, u64) = (2, 1, 80);

/// How long `claude --version` may take.
const CLAUDE_WAIT: Duration = Duration::from_secs(15);

/// The command's arguments.
#[derive(clap::Args)]
pub struct DoctorArgs {
    /// The configuration file.
    #[arg(long, env = "HOOKWIRE_CONFIG", default_value = "config.yaml")]
    config: PathBuf,
    /// Check and print the set-up for a channel linked to this gateway instead of local
    /// mode (the config is then only read for `tools:`).
    #[arg(long, value_name = "URL")]
    gateway: Option<String>,
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
    if args.gateway.is_none() {
        check_local(&mut r, &config_path);
    }
    check_claude(&mut r);
    print_setup(&config_path, args.gateway.as_deref(), &env_names);
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
        let mut p = config::Problems::new(path, &text);
        hookwire_core::render::Templates::load(templates::TEMPLATES, c.templates_dir.as_deref(), &mut p);
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
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => r.fail(
            "listen",
            format!(
                "{} is in use (another hookwire?); stop it, or set `listen:` / pass --listen",
                config.listen
            ),
        ),
        Err(e) => r.fail("listen", format!("cannot bind {}: {e}", config.listen)),
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

/// The `.mcp.json` entry and the `claude` command line for this set-up.
fn print_setup(config: &Path, gateway: Option<&str>, env_names: &[String]) {
    let command = std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_owned))
        .unwrap_or_else(|| "hookwire".into());
    let config = config.display().to_string();
    let (args, env): (Vec<&str>, Vec<&str>) = match gateway {
        Some(url) => (vec!["channel", "--gateway", url], vec!["HOOKWIRE_TOKEN"]),
        None => (
            vec!["channel", "--config", &config],
            env_names.iter().map(String::as_str).collect(),
        ),
    };
    let env: serde_json::Map<String, serde_json::Value> = env
        .iter()
        .map(|n| (n.to_string(), serde_json::Value::String(format!("${{{n}}}"))))
        .collect();
    let entry = serde_json::json!({
        "mcpServers": { "hookwire": { "command": command, "args": args, "env": env } }
    });
    println!(
        "\nAdd to the project's .mcp.json (values come from your environment, never the file):\n{}",
        serde_json::to_string_pretty(&entry).expect("plain JSON")
    );
    println!("\nThen start Claude Code with the channel:\n  claude --dangerously-load-development-channels server:hookwire");
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
