//! The team gateway, black-box: `hookwire serve`, channels linked to it
//! (`hookwire channel --gateway URL`) and tokens created through the store API on the
//! gateway's database file (SQLite in WAL mode is shared across processes), as
//! `hookwire token create` does.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hookwire_core::store::sqlite::StoreOptions;
use hookwire_core::store::{NewToken, SqliteStore, Store};

use super::{Hookwire, TempDir, DEADLINE};

/// The `sources:` of a gateway's config: two GitHub-type sources, `github` (at
/// `/hooks/github`) and `ops` (at `/hooks/ops`), both verified with `T_GITHUB_SECRET`.
pub const TWO_GITHUB_SOURCES: &str = "sources:
  - name: github
    type: github
    secret_env: T_GITHUB_SECRET
  - name: ops
    type: github
    path: /hooks/ops
    secret_env: T_GITHUB_SECRET
";

/// An argument for [`Hookwire::spawn_args`].
pub fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// `hookwire serve --config <cfg> --listen <addr>` with `env`; waits until it listens.
pub fn serve(cfg: &Path, addr: &str, env: &[(&str, &str)]) -> Hookwire {
    Hookwire::spawn_args(
        &[
            os("serve"),
            os("--config"),
            cfg.as_os_str(),
            os("--listen"),
            os(addr),
        ],
        env,
        true,
    )
}

/// `hookwire channel --gateway http://ADDR <extra_args>` linked to `gw`, with `env` (the
/// token goes in `HOOKWIRE_TOKEN`).
pub fn linked(gw: &Hookwire, extra_args: &[&OsStr], env: &[(&str, &str)]) -> Hookwire {
    let url = format!("http://{}", gw.addr);
    let mut args = vec![os("channel"), os("--gateway"), os(&url)];
    args.extend_from_slice(extra_args);
    Hookwire::spawn_args(&args, env, false)
}

/// The gateway's database (`hookwire.db` in `dir`), opened beside it (what `hookwire token`
/// does).
pub fn store(dir: &TempDir) -> Arc<SqliteStore> {
    SqliteStore::open(StoreOptions::new(dir.0.join("hookwire.db"))).unwrap()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Creates a token named `name` for `sources` with `permissions`, expiring at `expires_ms`
/// (never with `None`); returns its secret.
pub fn token(
    store: &SqliteStore,
    name: &str,
    sources: &[&str],
    permissions: &[&str],
    expires_ms: Option<i64>,
) -> String {
    store
        .tokens()
        .create(
            &NewToken {
                name: name.into(),
                sources: sources.iter().map(|s| s.to_string()).collect(),
                permissions: permissions.iter().map(|s| s.to_string()).collect(),
                expires_ms,
            },
            now_ms(),
        )
        .unwrap()
        .0
}

/// A WebSocket upgrade of `/v1/session` on `addr` over a raw socket, with the bearer `token`
/// and the subprotocol `protocol` when given: the socket, and the response head through its
/// blank line.
pub fn upgrade_session(addr: &str, token: Option<&str>, protocol: Option<&str>) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut req = format!(
        "GET /v1/session HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(p) = protocol {
        req.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    (s, String::from_utf8(head).unwrap())
}
