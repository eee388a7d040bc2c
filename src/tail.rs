//! `hookwire tail`: one line per event, for where Claude Code channels are off (Claude Code's
//! Monitor tool and plugin monitors read a command's output lines and need no channel
//! permission).
//!
//! Each line is `time<TAB>source<TAB>event<TAB>summary<TAB>delivery id`: the summary is the
//! first line of the rendered content. Every field goes through [`sanitize::meta_value`], so
//! no byte of a payload reaches the terminal as a control or escape sequence, and no field
//! holds a tab or a line break.
//!
//! **Local** (`--config`): follows the store the config names as its events are committed,
//! as `tail -f` follows a file. Its position is a mark file beside the store
//! (`<store>.tail-position`), not a subscriber of the store: it acknowledges nothing, so the
//! sessions' acknowledgements are untouched, and a tail that is never run again holds back
//! no eviction. It resumes after the mark; the first run starts at the newest event
//! (`--from-start` or `--since` start earlier).
//!
//! **Gateway** (`--gateway URL`, token from `HOOKWIRE_TOKEN` or `--token-file`): the same link
//! a linked channel uses. The gateway keeps one connection per token (a new one supersedes
//! the one before) and one cursor per token, so tail needs a token of its own (`hookwire
//! token create --name alice-tail ...`): with a session's token it would cut that session
//! off and take its events. It acknowledges what it printed and resumes after it, with the
//! link's mark file as a linked channel does.
//! The time is when the line reached tail: the link carries no arrival time.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use hookwire_core::channel::Feed;
use hookwire_core::store::{Store, Subscription};
use hookwire_core::{config, delivery, gateway, link, sanitize};
use serde::Deserialize;

use crate::admin::{parse_since, rfc3339};

/// Events read per batch.
const BATCH: usize = 256;
/// How long a wait for news lasts before the stop flag is looked at again.
const POLL: Duration = Duration::from_millis(250);
/// How long closing the store or the link may take.
const CLOSE_LIMIT: Duration = Duration::from_secs(5);

/// `hookwire tail` arguments.
#[derive(Args)]
pub struct TailArgs {
    /// The configuration file whose store is followed (its sources' secrets are not read).
    #[arg(long, env = "HOOKWIRE_CONFIG", default_value = "config.yaml")]
    config: PathBuf,
    /// Follow a team gateway instead, e.g. https://hooks.example.com, with a token of tail's
    /// own from HOOKWIRE_TOKEN or --token-file (a session's token would cut that session off).
    #[arg(long, value_name = "URL")]
    gateway: Option<String>,
    /// A file holding the token (instead of HOOKWIRE_TOKEN).
    #[arg(long, value_name = "PATH", requires = "gateway")]
    token_file: Option<PathBuf>,
    /// PEM file of the CA certificate(s) to trust for the gateway's TLS.
    #[arg(long, value_name = "PATH", requires = "gateway")]
    ca_file: Option<PathBuf>,
    /// Local: start at the oldest stored event instead of where the last tail stopped.
    #[arg(long, conflicts_with_all = ["gateway", "since"])]
    from_start: bool,
    /// Local: start at the events received since then: an RFC 3339 time, or a duration
    /// meaning that long ago (2h, 30m, 7d).
    #[arg(long, value_parser = parse_since, conflicts_with = "gateway")]
    since: Option<i64>,
}

/// Runs `hookwire tail`: 0 when stopped (signal, or stdout closed), 2 on a usage error, 1
/// when the store or the output fails.
pub fn tail(args: TailArgs) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        runtime.spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) =
                (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
            else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            stop.store(true, Ordering::Release);
        });
    }
    let result = match &args.gateway {
        Some(url) => follow_gateway(&runtime, url, &args, &stop),
        None => follow_store(&args, &stop),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("hookwire tail: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(m)) => {
            eprintln!("hookwire tail: {m}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    Usage(String),
    Failed(String),
}

/// Where the output stands after a write.
enum Wrote {
    Ok,
    /// The reader went away (`| head`, the monitor stopped): a clean end.
    Closed,
}

/// Writes `lines` and flushes them.
fn emit(lines: &str) -> Result<Wrote, Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(lines.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(Wrote::Ok),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Wrote::Closed),
        Err(e) => Err(Failure::Failed(format!("cannot write the output: {e}"))),
    }
}

/// Local mode: the store's events after tail's mark, as they are committed.
fn follow_store(args: &TailArgs, stop: &AtomicBool) -> Result<(), Failure> {
    let cfg = config::load_without_secrets(&args.config, &hookwire::registry())
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let path = cfg.store.path.clone();
    if !path.exists() {
        return Err(Failure::Usage(format!(
            "no store at {} (store.path of {}): start `hookwire channel` or `hookwire serve` with this configuration first",
            path.display(),
            cfg.path.display()
        )));
    }
    let store = crate::run::open_store(&cfg).map_err(Failure::Usage)?;
    let result = follow_open_store(store.as_ref(), &cfg, args, stop);
    store.close(CLOSE_LIMIT);
    result
}

fn follow_open_store(
    store: &dyn Store,
    cfg: &config::Config,
    args: &TailArgs,
    stop: &AtomicBool,
) -> Result<(), Failure> {
    use std::os::unix::fs::FileExt;
    let mark_path = delivery::mark_path(&cfg.store.path, "tail");
    let mark = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&mark_path)
        .map_err(|e| Failure::Failed(format!("cannot open {}: {e}", mark_path.display())))?;
    let mut bytes = [0u8; 8];
    let marked = mark
        .read_exact_at(&mut bytes, 0)
        .ok()
        .map(|()| u64::from_le_bytes(bytes));
    let head = store.head();
    let mut pos = if args.from_start || args.since.is_some() {
        0
    } else {
        // A mark beyond the head belongs to another database file.
        marked.filter(|&m| m <= head).unwrap_or(head)
    };
    // Every source, delivered to a session or not: tail shows what the store holds.
    let sub = Subscription {
        name: "tail".to_owned(),
        sources: cfg.sources.iter().map(|s| s.name.clone()).collect(),
    };
    let wake = store.wake();
    while !stop.load(Ordering::Acquire) {
        let batch = store
            .read_after(&sub, pos, BATCH)
            .map_err(|e| Failure::Failed(format!("cannot read the store: {e}")))?;
        if batch.through == pos {
            // Nothing new: wait for a commit (this process's writer notices other processes'
            // within its tick).
            let _ = wake.recv_timeout(POLL);
            continue;
        }
        let mut out = String::new();
        for e in &batch.events {
            if args.since.is_some_and(|since| e.received_ms < since) {
                continue;
            }
            out.push_str(&format_line(e.received_ms, &e.line));
        }
        if !out.is_empty() {
            if let Wrote::Closed = emit(&out)? {
                return Ok(());
            }
        }
        pos = batch.through;
        if let Err(e) = mark.write_at(&pos.to_le_bytes(), 0) {
            tracing::warn!(error = %e, "cannot write tail's position");
        }
    }
    Ok(())
}

/// Gateway mode: the token's events over the link, acknowledged once printed.
fn follow_gateway(
    runtime: &tokio::runtime::Runtime,
    url: &str,
    args: &TailArgs,
    stop: &AtomicBool,
) -> Result<(), Failure> {
    let url = link::session_url(url).map_err(Failure::Usage)?;
    let token = link::read_token(args.token_file.as_deref()).map_err(Failure::Usage)?;
    let tls = match &args.ca_file {
        Some(path) => Some(link::tls_with_ca(path).map_err(Failure::Usage)?),
        None => {
            gateway::install_crypto_provider();
            None
        }
    };
    let _entered = runtime.enter();
    let mark = link::mark_path(&url, &token);
    let (link, mut feed) = link::start(link::LinkOptions {
        url,
        token,
        tls,
        mark,
    });
    let wake = feed.wake();
    let mut buf = Vec::new();
    let result = loop {
        if stop.load(Ordering::Acquire) {
            break Ok(());
        }
        buf.clear();
        let Some(position) = feed.next(BATCH, &mut buf) else {
            let _ = wake.recv_timeout(POLL);
            continue;
        };
        let now = now_ms();
        let out: String = buf
            .split_inclusive(|&b| b == b'\n')
            .map(|line| format_line(now, line))
            .collect();
        match emit(&out) {
            Ok(Wrote::Ok) => feed.written(position),
            Ok(Wrote::Closed) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    runtime.block_on(link.stop(CLOSE_LIMIT));
    result
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// What tail reads of a notification line.
#[derive(Deserialize, Default)]
struct Notification {
    #[serde(default)]
    params: Params,
}

#[derive(Deserialize, Default)]
struct Params {
    #[serde(default)]
    content: String,
    #[serde(default)]
    meta: std::collections::HashMap<String, serde_json::Value>,
}

/// One output line for a stored notification line received at `received_ms`: every field
/// one line of plain text, `-` where it is missing.
fn format_line(received_ms: i64, line: &[u8]) -> String {
    let n: Notification = serde_json::from_slice(line).unwrap_or_default();
    let meta = |key: &str| {
        n.params
            .meta
            .get(key)
            .and_then(serde_json::Value::as_str)
            .and_then(sanitize::meta_value)
            .unwrap_or_else(|| "-".to_owned())
    };
    let summary = n
        .params
        .content
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .and_then(sanitize::meta_value)
        .unwrap_or_else(|| "-".to_owned());
    format!(
        "{}\t{}\t{}\t{}\t{}\n",
        rfc3339(received_ms),
        meta("source_name"),
        meta("event"),
        summary,
        meta("delivery_id")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_five_plain_fields() {
        let line = hookwire_core::event::notification_line(
            "\u{1b}]0;owned\u{7}**Issue #1** opened\u{1b}[2J\nsecond line",
            &[
                ("source_name".into(), "github".into()),
                ("event".into(), "issues.opened".into()),
                ("delivery_id".into(), "d-1\u{1b}[31m".into()),
            ],
        );
        let out = format_line(1000, &line);
        assert_eq!(out.matches('\n').count(), 1, "{out:?}");
        assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
        let fields: Vec<&str> = out.trim_end().split('\t').collect();
        assert_eq!(fields.len(), 5, "{out:?}");
        assert_eq!(fields[0], "1970-01-01T00:00:01Z");
        assert_eq!(&fields[1..3], ["github", "issues.opened"]);
        assert!(
            fields[3].contains("**Issue #1** opened") && !fields[3].contains("second"),
            "{out:?}"
        );
    }

    #[test]
    fn garbage_is_one_line_of_dashes() {
        assert_eq!(
            format_line(0, b"not json\n"),
            "1970-01-01T00:00:00Z\t-\t-\t-\t-\n"
        );
    }
}
