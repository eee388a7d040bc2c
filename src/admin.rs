//! Store administration: `hookwire token`, `hookwire events` and `hookwire replay`.
//!
//! Each loads the config without reading any secret (an admin box need not hold the vendors'
//! secrets), opens the SQLite file `channel` and `serve` use, and closes it before exiting.
//! Running beside them is safe: the file is in WAL mode, and their writer picks up the rows
//! written here (tokens, re-deliveries) within its 200 ms tick.
//!
//! Exit codes: 0 done, 1 the thing asked for is not there (or the store failed), 2 a usage
//! or configuration error.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use hookwire::registry;
use hookwire_core::config::{self, Config};
use hookwire_core::delivery;
use hookwire_core::store::token::{NewToken, PERMISSIONS};
use hookwire_core::store::{ListQuery, Record, Store, StoreError, Stored, TokenStatus};
use serde_json::{json, Value};

/// How long closing the store may take. Nothing of ours is queued: the writer just stops.
const CLOSE_LIMIT: Duration = Duration::from_secs(5);
/// Bytes of a binary payload shown, in hex, by `events show`.
const BINARY_PREVIEW: usize = 32;

/// `--config`, as every administration command takes it.
#[derive(Args)]
pub struct ConfigArg {
    /// The configuration file (its sources' secrets are not read).
    #[arg(long, env = "HOOKWIRE_CONFIG", default_value = "config.yaml")]
    config: PathBuf,
}

/// `hookwire token ...`: the session tokens `hookwire serve` accepts.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once, alone on stdout.
    Create {
        /// Unique name: the subscriber's name in logs and `token list`.
        #[arg(long)]
        name: String,
        /// Sources its sessions receive, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        sources: Vec<String>,
        /// Permissions its sessions are offered, comma-separated: create-issues,
        /// post-comments, add-labels, post-slack-message, read-events. Without it (or with
        /// `''`) the token has none: a one-way session that only receives events.
        #[arg(long, value_delimiter = ',')]
        permissions: Vec<String>,
        /// Lifetime, e.g. 30d or 12h (default: it never expires).
        #[arg(long, value_parser = parse_lifetime)]
        expires: Option<Duration>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List tokens with their scope, status and delivery position (never a secret).
    List {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Revoke a token: hookwire refuses it from now on.
    Revoke {
        /// The token's name.
        name: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// `hookwire events ...`: what the store holds.
#[derive(Subcommand)]
pub enum EventsCommand {
    /// List stored events, newest first.
    List {
        /// Only this source's events.
        #[arg(long)]
        source: Option<String>,
        /// Only events received since then: an RFC 3339 time, or a duration meaning that long
        /// ago (2h, 30m, 7d).
        #[arg(long, value_parser = parse_since)]
        since: Option<i64>,
        /// At most this many.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
        limit: u64,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show one stored event with everything kept about it.
    Show {
        /// The event's id (`42` or `evt_42`) or the vendor's delivery id (newest first).
        id: String,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// `hookwire replay`: re-deliver stored events.
#[derive(Args)]
pub struct ReplayArgs {
    /// The source whose stored events are delivered again, as new events.
    #[arg(long)]
    source: String,
    /// Only events received since then: an RFC 3339 time, or a duration meaning that long ago
    /// (default: every stored event of the source).
    #[arg(long, value_parser = parse_since)]
    since: Option<i64>,
    /// Only to this token's sessions (default: every subscriber of the source).
    #[arg(long)]
    token_name: Option<String>,
    #[command(flatten)]
    config: ConfigArg,
}

/// Why a command failed; decides the exit code.
enum Failure {
    /// A bad argument or configuration: exit 2.
    Usage(String),
    /// What was asked for is not there, or the store failed: exit 1.
    Failed(String),
}

use Failure::{Failed, Usage};

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failed(e.to_string())
    }
}

/// Runs `hookwire token ...`.
pub fn token(cmd: TokenCommand) -> ExitCode {
    match cmd {
        TokenCommand::Create {
            name,
            sources,
            permissions,
            expires,
            config,
        } => finish(
            "token create",
            token_create(&config.config, name, sources, permissions, expires),
        ),
        TokenCommand::List { config } => finish("token list", token_list(&config.config)),
        TokenCommand::Revoke { name, config } => finish("token revoke", token_revoke(&config.config, &name)),
    }
}

/// Runs `hookwire events ...`.
pub fn events(cmd: EventsCommand) -> ExitCode {
    match cmd {
        EventsCommand::List {
            source,
            since,
            limit,
            json,
            config,
        } => {
            let query = ListQuery {
                source,
                since_ms: since,
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            };
            finish("events list", events_list(&config.config, &query, json))
        }
        EventsCommand::Show { id, json, config } => {
            finish("events show", events_show(&config.config, &id, json))
        }
    }
}

/// Runs `hookwire replay`.
pub fn replay(args: ReplayArgs) -> ExitCode {
    finish("replay", run_replay(&args))
}

fn finish(command: &str, result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Usage(m)) => {
            eprintln!("hookwire {command}: {}", m.trim_end());
            ExitCode::from(2)
        }
        Err(Failed(m)) => {
            eprintln!("hookwire {command}: {}", m.trim_end());
            ExitCode::from(1)
        }
    }
}

/// Writes a command's output. A closed pipe (`| head`) is not an error: the reader has all
/// it wanted.
fn emit(out: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failed(format!("cannot write the output: {e}")))
        }
        _ => Ok(()),
    }
}

fn load(path: &Path) -> Result<Config, Failure> {
    config::load_without_secrets(path, &registry()).map_err(|e| Usage(e.to_string()))
}

/// Opens the configured store, runs `f`, and closes the store whatever `f` returned. Only
/// `create` makes a missing store: elsewhere a missing file means a wrong `--config` or
/// `store.path`, better said than answered with an empty result and a stray file.
fn with_store<T>(
    config: &Config,
    create: bool,
    f: impl FnOnce(&dyn Store) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let path = &config.store.path;
    let sqlite = config.store.backend == hookwire_core::config::StoreBackend::Sqlite;
    if sqlite && !create && !path.exists() {
        return Err(Usage(format!(
            "no store at {} (store.path of {}): nothing has been stored with this configuration",
            path.display(),
            config.path.display()
        )));
    }
    let store = crate::run::open_store(config).map_err(Usage)?;
    let result = f(store.as_ref());
    store.close(CLOSE_LIMIT);
    result
}

fn check_source(config: &Config, name: &str) -> Result<(), Failure> {
    if config.sources.iter().any(|s| s.name == name) {
        return Ok(());
    }
    let known: Vec<_> = config.sources.iter().map(|s| s.name.as_str()).collect();
    Err(Usage(format!(
        "no source named `{name}`; configured: {}",
        known.join(", ")
    )))
}

/// A comma-separated argument's items: trimmed, without blanks and repeats, in order.
fn items(values: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        let v = v.trim();
        if !v.is_empty() && !out.iter().any(|o| o == v) {
            out.push(v.to_owned());
        }
    }
    out
}

fn check_token_name(name: &str) -> Result<(), Failure> {
    // Token names are subscriber names: `local` is the local channel's cursor.
    if name == delivery::LOCAL {
        return Err(Usage(format!(
            "`{name}` is the local channel's subscriber; pick another name"
        )));
    }
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(Usage(format!(
            "`{}` is not a valid token name; use up to 64 letters, digits, -, _ and .",
            clean(name, false)
        )))
    }
}

fn token_create(
    config_path: &Path,
    name: String,
    sources: Vec<String>,
    permissions: Vec<String>,
    expires: Option<Duration>,
) -> Result<(), Failure> {
    check_token_name(&name)?;
    let permissions = items(permissions);
    if let Some(bad) = permissions.iter().find(|p| !PERMISSIONS.contains(&p.as_str())) {
        return Err(Usage(format!(
            "unknown permission `{}`; valid: {}",
            clean(bad, false),
            PERMISSIONS.join(", ")
        )));
    }
    let sources = items(sources);
    if sources.is_empty() {
        return Err(Usage("--sources needs at least one source".into()));
    }
    let config = load(config_path)?;
    for s in &sources {
        check_source(&config, s)?;
    }
    let now = now_ms();
    let new = NewToken {
        name,
        sources,
        permissions,
        expires_ms: expires.map(|d| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
    };
    with_store(&config, true, |store| {
        let tokens = store.tokens();
        // Revoked tokens keep their name, so `token list` still explains them.
        if let Some(old) = tokens.get(&new.name)? {
            return Err(Usage(format!(
                "a token named `{}` exists ({}); names are not reused, pick another",
                new.name,
                old.status(now)
            )));
        }
        let secret = tokens.create(&new, now)?;
        // Alone on stdout, so `HOOKWIRE_TOKEN=$(hookwire token create ...)` captures exactly it.
        let printed = {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{}", secret.0).and_then(|()| stdout.flush())
        };
        if let Err(e) = printed {
            // Nobody will ever hold this secret: a live token nobody has is only a liability.
            tokens.revoke(&new.name, now)?;
            return Err(Failed(format!(
                "cannot print the secret ({e}); token `{}` was revoked",
                new.name
            )));
        }
        eprintln!(
            "created token `{}`\n  sources:     {}\n  permissions: {}\n  expires:     {}\n\
             The secret above is shown only this once (hookwire keeps its hash). Give it to the\n\
             session: export HOOKWIRE_TOKEN in the shell that starts claude (the channel\n\
             inherits that environment; .mcp.json needs no env entry), or save it in a file\n\
             readable only by you and pass --token-file PATH to `hookwire channel`.",
            new.name,
            new.sources.join(", "),
            if new.permissions.is_empty() {
                "none".to_owned()
            } else {
                new.permissions.join(", ")
            },
            new.expires_ms.map_or_else(|| "never".to_owned(), rfc3339),
        );
        Ok(())
    })
}

fn token_list(config_path: &Path) -> Result<(), Failure> {
    let config = load(config_path)?;
    let (tokens, cursors) = with_store(&config, false, |store| {
        Ok((store.tokens().list()?, store.cursors()?))
    })?;
    if tokens.is_empty() {
        eprintln!("no tokens; create one with `hookwire token create`");
        return Ok(());
    }
    let acked: HashMap<String, u64> = cursors.into_iter().map(|c| (c.name, c.acked)).collect();
    let now = now_ms();
    let mut rows = vec![[
        "NAME",
        "SOURCES",
        "PERMISSIONS",
        "CREATED",
        "EXPIRES",
        "STATUS",
        "ACKED",
    ]
    .map(String::from)];
    for t in tokens {
        rows.push([
            clean(&t.name, false).into_owned(),
            clean(&t.sources.join(","), false).into_owned(),
            or_dash(clean(&t.permissions.join(","), false).into_owned()),
            rfc3339(t.created_ms),
            t.expires_ms.map_or_else(|| "never".to_owned(), rfc3339),
            t.status(now).to_string(),
            // A revoked token's position is dropped with it.
            acked.get(&t.name).map_or_else(|| "-".to_owned(), u64::to_string),
        ]);
    }
    emit(&table(&rows))
}

fn token_revoke(config_path: &Path, name: &str) -> Result<(), Failure> {
    let config = load(config_path)?;
    with_store(&config, false, |store| {
        let tokens = store.tokens();
        match tokens.get(name)? {
            None => Err(Failed(format!("no token named `{}`", clean(name, false)))),
            Some(t) if t.status(now_ms()) == TokenStatus::Revoked => {
                Err(Failed(format!("token `{name}` is already revoked")))
            }
            Some(_) if tokens.revoke(name, now_ms())? => emit(&format!("revoked token `{name}`\n")),
            // Revoked by someone else between the two calls.
            Some(_) => Err(Failed(format!("token `{name}` is already revoked"))),
        }
    })
}

/// `folded`, `replay of N`, `target NAME`, comma-separated; `-` for none.
fn flags(e: &Stored, replay_of: Option<u64>) -> String {
    let mut f = Vec::new();
    if e.folded {
        f.push("folded".to_owned());
    }
    if let Some(of) = replay_of {
        f.push(format!("replay of {of}"));
    }
    if let Some(t) = &e.target {
        f.push(format!("target {}", clean(t, false)));
    }
    or_dash(f.join(", "))
}

fn events_list(config_path: &Path, query: &ListQuery, as_json: bool) -> Result<(), Failure> {
    let config = load(config_path)?;
    if let Some(s) = &query.source {
        if check_source(&config, s).is_err() {
            // The store may still hold events of a source since removed from the config.
            eprintln!(
                "note: `{}` is not a configured source; listing what the store holds for it",
                clean(s, false)
            );
        }
    }
    let (events, origins) = with_store(&config, false, |store| {
        let events = store.list(query)?;
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        Ok((events, store.replay_origins(&seqs)?))
    })?;
    if events.is_empty() {
        eprintln!("no stored events match");
        return Ok(());
    }
    if as_json {
        let mut out = String::new();
        for e in &events {
            out.push_str(&event_json(e, origins.get(&e.seq).copied()).to_string());
            out.push('\n');
        }
        return emit(&out);
    }
    let mut rows = vec![["ID", "RECEIVED", "SOURCE", "EVENT", "DELIVERY", "FLAGS"].map(String::from)];
    for e in &events {
        rows.push([
            e.seq.to_string(),
            rfc3339(e.received_ms),
            clean(&e.source, false).into_owned(),
            clean(&e.event, false).into_owned(),
            or_dash(clean(&e.delivery_id, false).into_owned()),
            flags(e, origins.get(&e.seq).copied()),
        ]);
    }
    emit(&table(&rows))
}

/// The fields of an event every JSON output has.
fn event_json(e: &Stored, replay_of: Option<u64>) -> Value {
    json!({
        "id": e.seq,
        "received": rfc3339(e.received_ms),
        "received_ms": e.received_ms,
        "source": e.source,
        "event": e.event,
        "delivery_id": e.delivery_id,
        "folded": e.folded,
        "replay_of": replay_of,
        "target": e.target,
    })
}

/// A stored payload, as best it can be shown.
enum Payload {
    Empty,
    Json(Value),
    Text(String),
    Binary,
}

impl Payload {
    fn of(bytes: &[u8]) -> Payload {
        if bytes.is_empty() {
            Payload::Empty
        } else if let Ok(v) = serde_json::from_slice(bytes) {
            Payload::Json(v)
        } else if let Ok(t) = std::str::from_utf8(bytes) {
            Payload::Text(t.to_owned())
        } else {
            Payload::Binary
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn events_show(config_path: &Path, id: &str, as_json: bool) -> Result<(), Failure> {
    let config = load(config_path)?;
    let record = with_store(&config, false, |store| Ok(store.get(id)?))?;
    let Some(Record {
        stored: e,
        payload,
        headers,
        replay_of,
    }) = record
    else {
        return Err(Failed(format!(
            "no stored event `{}` (by id or delivery id)",
            clean(id, false)
        )));
    };
    let notification: Value = serde_json::from_slice(&e.line).unwrap_or(Value::Null);
    let content = notification["params"]["content"].as_str();
    let meta = &notification["params"]["meta"];
    let body = Payload::of(&payload);
    if as_json {
        let mut v = event_json(&e, replay_of);
        let (format, value) = match body {
            Payload::Empty => ("empty", Value::String(String::new())),
            Payload::Json(v) => ("json", v),
            Payload::Text(t) => ("text", Value::String(t)),
            Payload::Binary => ("hex", Value::String(hex(&payload))),
        };
        v["headers"] = json!(headers);
        v["content"] = json!(content);
        v["meta"] = meta.clone();
        v["payload"] = value;
        v["payload_format"] = json!(format);
        v["payload_bytes"] = json!(payload.len());
        return emit(&format!("{v}\n"));
    }
    let mut out = format!(
        "id:          {}\nsource:      {}\nevent:       {}\ndelivery id: {}\nreceived:    {}\nflags:       {}\n",
        e.seq,
        clean(&e.source, false),
        clean(&e.event, false),
        or_dash(clean(&e.delivery_id, false).into_owned()),
        rfc3339(e.received_ms),
        flags(&e, replay_of),
    );
    if headers.is_empty() {
        out.push_str("\nheaders: none\n");
    } else {
        out.push_str("\nheaders:\n");
        for (k, v) in &headers {
            out.push_str(&format!("  {}: {}\n", clean(k, false), clean(v, false)));
        }
    }
    match content {
        Some(c) => out.push_str(&format!("\ncontent:\n{}\n", clean(c, true).trim_end())),
        // Not expected: every stored line is a notification hookwire wrote.
        None => out.push_str(&format!(
            "\nnotification (not parsed):\n{}\n",
            clean(&String::from_utf8_lossy(&e.line), true).trim_end()
        )),
    }
    if !meta.is_null() {
        let pretty = serde_json::to_string_pretty(meta).unwrap_or_default();
        out.push_str(&format!("\nmeta:\n{pretty}\n"));
    }
    let n = payload.len();
    match body {
        Payload::Empty => out.push_str("\npayload: empty\n"),
        Payload::Json(v) => {
            let pretty = serde_json::to_string_pretty(&v).unwrap_or_default();
            out.push_str(&format!("\npayload ({n} bytes, JSON):\n{pretty}\n"));
        }
        Payload::Text(t) => out.push_str(&format!(
            "\npayload ({n} bytes, text):\n{}\n",
            clean(&t, true).trim_end()
        )),
        Payload::Binary => out.push_str(&format!(
            "\npayload ({n} bytes, binary, not shown; first bytes in hex: {}{})\n",
            hex(&payload[..n.min(BINARY_PREVIEW)]),
            if n > BINARY_PREVIEW { "..." } else { "" }
        )),
    }
    emit(&out)
}

fn run_replay(args: &ReplayArgs) -> Result<(), Failure> {
    let config = load(&args.config.config)?;
    check_source(&config, &args.source)?;
    let source = &args.source;
    with_store(&config, false, |store| {
        let tokens = store.tokens();
        let now = now_ms();
        let to = match &args.token_name {
            Some(name) => {
                let Some(t) = tokens.get(name)? else {
                    return Err(Usage(format!("no token named `{}`", clean(name, false))));
                };
                let status = t.status(now);
                if status != TokenStatus::Valid {
                    return Err(Usage(format!(
                        "token `{name}` is {status}: nothing would reach it"
                    )));
                }
                if !t.sources.contains(source) {
                    return Err(Usage(format!(
                        "token `{name}` does not receive `{source}` (its sources: {})",
                        t.sources.join(", ")
                    )));
                }
                format!("token `{name}`")
            }
            None => {
                let local = config.channel.sources.contains(source);
                let token = tokens
                    .list()?
                    .iter()
                    .any(|t| t.status(now) == TokenStatus::Valid && t.sources.contains(source));
                if !local && !token {
                    eprintln!(
                        "note: no subscriber receives `{source}` (it is not in channel.sources and no \
                         valid token has it): the events are stored, not delivered"
                    );
                }
                format!("every subscriber of `{source}`")
            }
        };
        let n = store.replay(source, args.since, args.token_name.as_deref())?;
        emit(&format!(
            "queued {n} event{} of `{source}` for re-delivery to {to}\n",
            if n == 1 { "" } else { "s" }
        ))
    })
}

/// Rows as left-aligned columns two spaces apart; the last column is not padded.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < N {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn or_dash(s: String) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s
    }
}

/// `s` safe for a terminal: control characters (escape sequences from a vendor's payload or
/// header) escaped; newlines and tabs kept only for multi-line text.
fn clean(s: &str, multiline: bool) -> Cow<'_, str> {
    let bad = |c: char| c.is_control() && !(multiline && (c == '\n' || c == '\t'));
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if bad(c) {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Unix milliseconds as RFC 3339 UTC, to the second.
pub(crate) fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `--expires`: a positive duration.
fn parse_lifetime(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err("not a duration; write e.g. 30d, 12h or 90m".into()),
    }
}

/// `--since`: an RFC 3339 time, or a duration meaning that long ago; Unix milliseconds.
pub(crate) fn parse_since(s: &str) -> Result<i64, String> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_millisecond());
    }
    match humantime::parse_duration(s) {
        Ok(d) => Ok(now_ms().saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
        Err(_) => Err("neither an RFC 3339 time (2025-06-01T12:00:00Z) nor a duration (2h, 30m, 7d)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_a_duration_ago() {
        assert_eq!(parse_since("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_since("1970-01-01T02:00:01+02:00"), Ok(1000));
        let two_hours_ago = parse_since("2h").unwrap();
        let expected = now_ms() - 2 * 3600 * 1000;
        assert!(
            (expected - 5000..=expected).contains(&two_hours_ago),
            "{two_hours_ago}"
        );
        assert!(parse_since("yesterday").is_err());
    }

    #[test]
    fn lifetimes_are_positive_durations() {
        assert_eq!(parse_lifetime("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert!(parse_lifetime("0s").is_err());
        assert!(parse_lifetime("soon").is_err());
    }

    #[test]
    fn tables_align_and_cells_are_terminal_safe() {
        let rows = [
            ["A".to_owned(), "B".to_owned()],
            ["long".to_owned(), "x".to_owned()],
        ];
        assert_eq!(table(&rows), "A     B\nlong  x\n");
        assert_eq!(clean("a\x1b[2Jb\nc", false), "a\\u{1b}[2Jb\\nc");
        assert_eq!(clean("a\nb\tc", true), "a\nb\tc");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn token_names_exclude_the_local_subscriber() {
        assert!(check_token_name("ci-bot.prod_1").is_ok());
        assert!(check_token_name("local").is_err());
        assert!(check_token_name("").is_err());
        assert!(check_token_name("a b").is_err());
    }
}
