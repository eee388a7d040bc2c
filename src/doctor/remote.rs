//! `hookwire doctor --remote URL`: checks the gateway's remote channel (`/mcp`) end to end as
//! Claude Code would use it (the `server/discover` probe, `initialize` with the token,
//! `notifications/initialized`, `tools/list`), then ends the session with `DELETE`. It never
//! opens the event stream, so it consumes nothing.

use std::time::Duration;

use hookwire_core::{gateway, link};
use serde_json::{json, Value};

use super::{is_loopback, DoctorArgs, Report};

/// How long each request may take.
const WAIT: Duration = Duration::from_secs(10);

/// The endpoint for what a user writes: `/mcp` appended unless there.
pub(super) fn mcp_url(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!("{url}: give an http:// or https:// URL"));
    }
    Ok(if url.ends_with("/mcp") {
        url.to_owned()
    } else {
        format!("{url}/mcp")
    })
}

/// One request's answer: status, `Mcp-Session-Id`, body.
struct Answer {
    status: u16,
    session: Option<String>,
    body: Value,
}

struct Client {
    agent: ureq::Agent,
    url: String,
    bearer: String,
    session: Option<String>,
}

impl Client {
    fn send(&self, method: &str, body: Option<&Value>) -> Result<Answer, String> {
        let mut req = self
            .agent
            .request(method, &self.url)
            .timeout(WAIT)
            .set("Authorization", &self.bearer)
            .set("Accept", "application/json, text/event-stream");
        if let Some(s) = &self.session {
            req = req.set("Mcp-Session-Id", s);
        }
        let r = match body {
            Some(b) => req
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        let resp = match r {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => return Err(t.to_string()),
        };
        let status = resp.status();
        let session = resp.header("mcp-session-id").map(str::to_owned);
        let text = resp.into_string().unwrap_or_default();
        Ok(Answer {
            status,
            session,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        })
    }
}

/// The checks, each one line of `r`.
pub(super) fn check(r: &mut Report, remote: &str, args: &DoctorArgs) {
    let url = match mcp_url(remote) {
        Ok(u) => u,
        Err(e) => return r.fail("remote", e),
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
    let mut agent = ureq::AgentBuilder::new();
    match &args.ca_file {
        Some(path) => match link::tls_with_ca(path) {
            Ok(c) => agent = agent.tls_config(c),
            Err(e) => return r.fail("remote", e),
        },
        None => gateway::install_crypto_provider(),
    }
    if url.starts_with("http://") && !is_loopback(&url) {
        r.warn(
            "remote",
            format!("{url}: the token crosses the network unencrypted; use https://"),
        );
    }
    let mut c = Client {
        agent: agent.build(),
        url: url.clone(),
        bearer: format!("Bearer {}", String::from_utf8_lossy(token.expose())),
        session: None,
    };
    let discover = json!({"jsonrpc": "2.0", "id": 0, "method": "server/discover"});
    match c.send("POST", Some(&discover)) {
        Err(e) => return r.fail("remote", format!("{url}: cannot reach it: {e}")),
        Ok(a) if a.status == 401 => {
            return r.fail(
                "remote",
                format!("{url}: 401: the token is unknown, revoked or expired; ask the gateway's admin (`hookwire token list`)"),
            )
        }
        Ok(a) if a.status == 404 => {
            return r.fail("remote", format!("{url}: 404: no remote channel here (a gateway serves it at /mcp)"))
        }
        Ok(a) if a.body.pointer("/error/code") != Some(&json!(-32601)) => r.warn(
            "remote",
            format!("{url}: `server/discover` was not answered -32601 (HTTP {}): Claude Code may not register the channel", a.status),
        ),
        Ok(_) => {}
    }
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "hookwire-doctor", "version": env!("CARGO_PKG_VERSION")}}});
    let a = match c.send("POST", Some(&init)) {
        Ok(a) => a,
        Err(e) => return r.fail("remote", format!("{url}: {e}")),
    };
    let result = &a.body["result"];
    if a.status != 200 || !result["capabilities"]["experimental"]["claude/channel"].is_object() {
        return r.fail(
            "remote",
            format!(
                "{url}: `initialize` answered HTTP {} without the claude/channel capability: {}",
                a.status, a.body
            ),
        );
    }
    let Some(session) = a.session else {
        return r.fail(
            "remote",
            format!("{url}: no Mcp-Session-Id in the `initialize` answer"),
        );
    };
    c.session = Some(session);
    r.ok(
        "remote",
        format!(
            "{url}: a channel on protocol {}",
            result["protocolVersion"].as_str().unwrap_or("?")
        ),
    );
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    if let Ok(a) = c.send("POST", Some(&initialized)) {
        if a.status != 202 {
            r.warn(
                "remote",
                format!("`notifications/initialized` answered HTTP {}", a.status),
            );
        }
    }
    if result["capabilities"]["tools"].is_object() {
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        match c.send("POST", Some(&list)) {
            Ok(a) => {
                let names: Vec<&str> = a.body["result"]["tools"]
                    .as_array()
                    .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
                    .unwrap_or_default();
                r.ok(
                    "tools",
                    format!("{} (performed by the gateway)", names.join(", ")),
                );
            }
            Err(e) => r.warn("tools", format!("tools/list: {e}")),
        }
    } else {
        r.ok("tools", "none (one-way: events only)");
    }
    match c.send("DELETE", None) {
        Ok(a) if a.status < 300 => r.ok("remote", "session ended; no event was read"),
        Ok(a) => r.warn("remote", format!("DELETE answered HTTP {}", a.status)),
        Err(e) => r.warn("remote", format!("DELETE: {e}")),
    }
}

/// The `.mcp.json` entry, the `claude mcp add` line and the launch line.
pub(super) fn print_setup(remote: &str) {
    let url = mcp_url(remote).unwrap_or_else(|_| remote.to_owned());
    let entry = json!({"mcpServers": {"hookwire": {
        "type": "http",
        "url": url,
        "headers": {"Authorization": "Bearer ${HOOKWIRE_TOKEN}"},
    }}});
    println!(
        "\nAdd to the project's .mcp.json (Claude Code expands ${{HOOKWIRE_TOKEN}} when it connects):\n{}",
        serde_json::to_string_pretty(&entry).expect("plain JSON")
    );
    println!(
        "\nor for your user:\n  claude mcp add --transport http --scope user hookwire {url} --header 'Authorization: Bearer ${{HOOKWIRE_TOKEN}}'\n\
         \nExport HOOKWIRE_TOKEN in the shell you start claude from, then:\n  \
         claude --dangerously-load-development-channels server:hookwire"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_found_from_what_a_user_writes() {
        assert_eq!(mcp_url("https://h.example").unwrap(), "https://h.example/mcp");
        assert_eq!(mcp_url("https://h.example/").unwrap(), "https://h.example/mcp");
        assert_eq!(
            mcp_url("http://127.0.0.1:8788/mcp").unwrap(),
            "http://127.0.0.1:8788/mcp"
        );
        assert!(mcp_url("wss://h.example").is_err());
    }
}
