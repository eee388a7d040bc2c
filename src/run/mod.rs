//! The wiring of each long-running mode: what runs, in which order it starts, and the one
//! [`Shutdown`] that stops it in order within its deadlines. This is the top layer: it puts
//! hookwire-core's pieces together and nothing below knows it exists.
//!
//! | mode | command | module |
//! |---|---|---|
//! | local (the embedded default) | `hookwire channel` | [`local`] |
//! | team gateway | `hookwire serve` | [`gateway`] |
//! | a channel linked to a gateway | `hookwire channel --gateway URL` | [`linked`] |
//!
//! A channel that cannot serve (a config error, a missing secret or token, a store that will
//! not open, a port another program holds) still completes the MCP handshake and tells each
//! session what is wrong and how to fix it ([`unservable`]): Claude Code would otherwise show
//! only a closed connection, and cache that for minutes.

pub mod gateway;
mod jobs;
pub mod linked;
pub mod local;
mod shutdown;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hookwire_core::channel::{self, ServerDescription};
use hookwire_core::config::{Config, Limits, StoreBackend};
use hookwire_core::delivery::NoticeFeed;
use hookwire_core::pipeline::{Keep, Pipeline};
use hookwire_core::render::Templates;
use hookwire_core::store::nats::{NatsOptions, NatsStore};
use hookwire_core::store::sqlite::StoreOptions;
use hookwire_core::store::{SqliteStore, Store, StoreSink};

pub use shutdown::{Deadlines, Parts, Shutdown};

/// The multi-threaded runtime every mode runs on.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Opens the configured store: the SQLite file (beside config.yaml unless `store.path`
/// says) or, with `store.backend: nats`, JetStream.
pub(crate) fn open_store(config: &Config) -> Result<Arc<dyn Store>, String> {
    let s = &config.store;
    if let StoreBackend::Nats(settings) = &s.backend {
        let opts = NatsOptions {
            settings: settings.clone(),
            max_bytes: s.max_bytes,
            max_age: s.max_age,
            dedup_window: Duration::from_secs(config.limits.dedup_window_secs),
        };
        return Ok(Arc::new(NatsStore::open(opts).map_err(|e| e.to_string())?));
    }
    let opts = StoreOptions {
        path: s.path.clone(),
        sync: s.sync,
        max_bytes: s.max_bytes,
        max_age: s.max_age,
        queue: config.limits.queue_capacity,
        ring_bytes: s.memory_bytes,
    };
    Ok(SqliteStore::open(opts).map_err(|e| e.to_string())?)
}

/// The pipeline over `store`: every event is committed to it before 2xx, and replay
/// protection is seeded from what it accepted within the dedup window.
fn stored_pipeline(
    config: Config,
    templates: Templates,
    store: &Arc<dyn Store>,
    keep: Keep,
) -> Result<Arc<Pipeline>, String> {
    let pipeline = Pipeline::new(config, templates, Arc::new(StoreSink(store.clone())), keep);
    pipeline
        .seed_replay(store.as_ref(), std::time::SystemTime::now())
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(pipeline))
}

/// The listener's connection limits: the config's, with the connection cap lowered to what
/// the open-file limit (raised to its hard limit first) leaves room for.
fn connection_limits(limits: &Limits) -> hookwire_core::http::ConnectionLimits {
    let mut l = hookwire_core::http::ConnectionLimits::from_config(limits);
    if let Some(room) = hookwire_core::http::raise_descriptor_limit() {
        let room = usize::try_from(room).unwrap_or(usize::MAX).max(1);
        if room < l.max_connections {
            tracing::info!(
                configured = l.max_connections,
                allowed = room,
                "limits.max_connections lowered to what the open-file limit allows"
            );
            l.max_connections = room;
        }
    }
    l.max_connections_per_client = l.max_connections_per_client.min(l.max_connections);
    l
}

/// What this server says about itself in `initialize`.
fn server(instructions: String) -> ServerDescription {
    ServerDescription {
        name: "hookwire".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        instructions,
    }
}

/// A channel that cannot serve its configuration. Run by hand (stdin a terminal), it prints
/// the problem and exits 2. Spawned by Claude Code, it completes the MCP handshake, says in
/// its instructions and, once per session, in a notification of its own what is wrong and
/// how to fix it, answers pings until the client goes, then exits 2.
pub fn unservable(problem: &str, fix: &str) -> ExitCode {
    let instructions = format!(
        "hookwire (webhooks into this session) could not start and delivers no events. The problem:\n{}\n\
         Fix: {fix}",
        problem.trim_end()
    );
    let rt = runtime();
    let chan = channel::start(
        std::io::stdin(),
        std::io::stdout(),
        Box::new(channel::NoEvents),
        server(instructions),
    );
    not_started(&rt, chan, problem, fix)
}

/// What [`unservable`] does once the channel is answering: for a local channel whose store or
/// templates failed after `initialize` was answered with its usual instructions, the
/// notification is what tells the session.
pub fn not_started(
    rt: &tokio::runtime::Runtime,
    chan: channel::ChannelHandle,
    problem: &str,
    fix: &str,
) -> ExitCode {
    eprintln!("hookwire: {}", problem.trim_end());
    eprintln!("    fix: {fix}");
    if std::io::stdin().is_terminal() {
        return ExitCode::from(2);
    }
    tracing::error!("cannot serve this configuration; telling the session why");
    let content = format!(
        "hookwire is running but cannot deliver events: it could not start.\n{}\nTo fix it: {fix}\n\
         Then reconnect the server (/mcp, then Reconnect) or restart the session. `hookwire doctor` checks the \
         same things. This message comes from hookwire itself, not from a vendor.",
        problem.trim_end()
    );
    let meta = [
        ("source_name".to_owned(), "hookwire".to_owned()),
        ("event".to_owned(), "hookwire.not_started".to_owned()),
    ];
    chan.feed(Box::new(NoticeFeed::new(
        hookwire_core::event::notification_line(&content, &meta),
    )));
    rt.block_on(async move {
        let shutdown = Shutdown::new(Deadlines::CHANNEL, true);
        tokio::select! {
            _ = chan.closed() => shutdown.begin("client closed the connection"),
            _ = shutdown.requested() => {}
        }
        shutdown
            .finish(Parts {
                channel: Some(chan),
                ..Parts::default()
            })
            .await;
        ExitCode::from(2)
    })
    // The stdin reader thread may still be blocked in read(2); exiting ends it.
}

/// How long a linked channel waits for the gateway's `hello` before answering `initialize`
/// with generic instructions.
const HELLO_WAIT: Duration = Duration::from_secs(5);
