//! The team gateway (`hookwire serve`) and a channel linked to it
//! (`hookwire channel --gateway URL`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hookwire::registry;
use hookwire_core::arc_swap::ArcSwap;
use hookwire_core::channel::{self, ServerDescription};
use hookwire_core::gateway::{self, Gateway};
use hookwire_core::pipeline::{self, Pipeline};
use hookwire_core::store::{Store, StoreSink};
use hookwire_core::{ingress, instructions, link, metrics};
use tokio::signal::unix::{signal, SignalKind};

use crate::{
    close_storm_windows, connection_limits, shutdown_signal, start_jobs, stored_pipeline, templates,
};

/// How long a linked channel waits for the gateway's `hello` before answering `initialize`
/// with generic instructions.
const HELLO_WAIT: Duration = Duration::from_secs(5);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Every webhook source is stored: which session receives it is its token's business, not
/// `channel.sources` (that list is the local channel's). `channel.enabled: false` still
/// stores and pushes nothing. Schedules run on this machine, so they stay opt-in.
fn for_gateway(mut config: hookwire_core::Config) -> hookwire_core::Config {
    for src in config.sources.iter_mut().filter(|s| s.schedule.is_none()) {
        src.subscribed = true;
    }
    config
}

/// `hookwire serve`.
pub fn run_serve(config_path: PathBuf, listen: Option<SocketAddr>) -> ExitCode {
    let (config, templates) = match pipeline::load(&config_path, &registry(), templates::TEMPLATES) {
        Ok(x) => x,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    let config = for_gateway(config);
    let addr = listen.unwrap_or(config.listen);
    let tls_settings = config.tls.clone();
    let limits = connection_limits(&config.limits);
    metrics::install();
    let (pipeline, store) = match stored_pipeline(config, templates) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("hookwire: {e}");
            return ExitCode::from(2);
        }
    };
    runtime().block_on(async move {
        let tls = match &tls_settings {
            Some(t) => match hookwire_core::http::tls_acceptor(t) {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("hookwire: {e}");
                    store.close(Duration::from_secs(1));
                    return ExitCode::from(2);
                }
            },
            None => None,
        };
        let listener = match ingress::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot listen");
                store.close(Duration::from_secs(1));
                return ExitCode::FAILURE;
            }
        };
        let bound = listener.local_addr().unwrap_or(addr);
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!("listening on {scheme}://{bound}");
        if tls.is_none() && !bound.ip().is_loopback() {
            tracing::warn!(
                "serving plain HTTP on a network address: session tokens must not cross a network in clear \
                 text; put a TLS-terminating proxy in front or set `tls:` in the config"
            );
        }
        let mut jobs = start_jobs(&pipeline);
        let current: ingress::Current = Arc::new(ArcSwap::new(pipeline));
        let gw = Gateway::new(store.clone(), current.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let mut server = tokio::spawn(gw.serve(listener, tls, limits, async move {
            let _ = stop_rx.await;
        }));
        let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
        let (reason, finished) = loop {
            tokio::select! {
                _ = hup.recv() => {
                    if let Some(next) = reload(&config_path, &current, &store) {
                        jobs.iter().for_each(|j| j.abort());
                        jobs = start_jobs(&next);
                        let old = current.swap(next);
                        close_storm_windows(&old);
                    }
                }
                r = stop_signal() => break (r, false),
                r = &mut server => {
                    match r {
                        Ok(Err(e)) => tracing::error!(error = %e, "the listener failed"),
                        Err(e) => tracing::error!(error = %e, "the listener task failed"),
                        Ok(Ok(())) => {}
                    }
                    break ("listener stopped", true);
                }
            }
        };
        tracing::info!(
            reason,
            "shutting down: no new requests or sessions; finishing those in flight"
        );
        jobs.iter().for_each(|j| j.abort());
        close_storm_windows(&current.load());
        if !finished {
            let _ = stop_tx.send(());
            if tokio::time::timeout(Duration::from_secs(5), &mut server)
                .await
                .is_err()
            {
                tracing::warn!("the listener did not stop in time");
                server.abort();
            }
        }
        store.close(Duration::from_secs(2));
        if finished {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    })
}

/// SIGTERM or SIGINT: the gateway's SIGHUP reloads instead.
async fn stop_signal() -> &'static str {
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// Loads the config again for SIGHUP. A config with any problem is reported in full and the
/// running one kept. Sessions, the store and the listener carry on; replay protection is
/// carried over so a retry across the reload is still a repeat.
fn reload(path: &Path, current: &ingress::Current, store: &Arc<dyn Store>) -> Option<Arc<Pipeline>> {
    let (config, templates) = match pipeline::load(path, &registry(), templates::TEMPLATES) {
        Ok(x) => x,
        Err(e) => {
            metrics::config_reload(false);
            tracing::error!("config reload refused, still serving the previous config:\n{e}");
            return None;
        }
    };
    let config = for_gateway(config);
    let old = current.load();
    let running = old.config();
    let mut fixed = Vec::new();
    if config.listen != running.listen {
        fixed.push("listen");
    }
    if config.store.path != running.store.path
        || config.store.sync != running.store.sync
        || config.store.max_bytes != running.store.max_bytes
        || config.store.max_age != running.store.max_age
    {
        fixed.push("store");
    }
    if config.tls != running.tls {
        fixed.push("tls");
    }
    if config.limits != running.limits {
        fixed.push("limits");
    }
    if !fixed.is_empty() {
        tracing::warn!(
            sections = %fixed.join(", "),
            "these settings changed but apply only after a restart; the rest is reloaded"
        );
    }
    let next =
        Pipeline::new(config, templates, Arc::new(StoreSink(store.clone()))).with_replay(old.replay_guard());
    metrics::config_reload(true);
    tracing::info!(sources = next.config().sources.len(), "config reloaded");
    Some(Arc::new(next))
}

/// `hookwire channel --gateway URL`: no store, no listener; events come over the link. The
/// tools are those the token's permissions (in `hello`) grant: actions performed by this
/// process with the credentials of `tools:` in `config` (if that file exists), reads
/// (`get_event`, `list_events`) answered by the gateway over the link.
pub fn run_link(
    gateway_url: &str,
    token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    config: &std::path::Path,
) -> ExitCode {
    let tool_settings = match hookwire_core::config::load_tools(config) {
        Ok(t) => t,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    let url = match link::session_url(gateway_url) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("hookwire: {e}");
            return ExitCode::from(2);
        }
    };
    let token = match link::read_token(token_file.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("hookwire: {e}");
            return ExitCode::from(2);
        }
    };
    let tls = match ca_file {
        Some(path) => match link::tls_with_ca(&path) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("hookwire: {e}");
                return ExitCode::from(2);
            }
        },
        None => {
            gateway::install_crypto_provider();
            None
        }
    };
    runtime().block_on(async move {
        let mark = link::mark_path(&url, &token);
        let (mut link, feed) = link::start(link::LinkOptions {
            url: url.clone(),
            token,
            tls,
            mark,
        });
        // `initialize` carries the instructions, which the gateway sends: give it a moment.
        let hello = tokio::select! {
            h = link.hello(HELLO_WAIT) => h,
            r = shutdown_signal() => {
                tracing::info!(reason = r, "shutting down");
                link.stop(Duration::from_millis(500)).await;
                return ExitCode::SUCCESS;
            }
        };
        let toolbox = hello.as_ref().map(|h| {
            let session = hookwire_core::tools::Session {
                subscriber: h.subscriber.clone(),
                sources: h.sources.clone(),
                permissions: h.permissions.clone(),
            };
            let rt = tokio::runtime::Handle::current();
            // No store here: the read tools (offered with `read-events`) ask the gateway over
            // the link, which answers from its store for the token's sources; a gateway from
            // before read requests gets none (the read tools are not offered).
            let reader = h
                .reads
                .then(|| Arc::new(link.reader()) as Arc<dyn hookwire_core::tools::EventReader>);
            // Each call's audit entry goes to the gateway, which stores it with the event
            // (the link drops them, logged, if a later connection's gateway does not).
            let audit = h
                .audit
                .then(|| Arc::new(link.audit()) as Arc<dyn hookwire_core::tools::AuditSink>);
            if audit.is_none() {
                tracing::info!(gateway = %url, "this gateway does not store tool calls: the audit is only logged here");
            }
            hookwire_core::tools::Toolbox::linked(session, &tool_settings, reader, audit, rt)
        });
        let instructions = match hello {
            Some(h) => h.instructions.clone(),
            None => {
                tracing::warn!(gateway = %url, "no hello from the gateway in {} s; starting with generic instructions", HELLO_WAIT.as_secs());
                instructions::gateway_fallback(gateway_url)
            }
        };
        let granted = toolbox.as_ref().map(|t| t.granted()).unwrap_or_default();
        let server = ServerDescription {
            name: "hookwire".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            instructions: instructions::with_tools(&instructions, granted),
        };
        let toolbox = toolbox.map(|t| Arc::new(t) as Arc<dyn channel::Tools>);
        let chan = channel::start_with_tools(std::io::stdin(), std::io::stdout(), Box::new(feed), server, toolbox);
        let reason = tokio::select! {
            _ = chan.closed() => "client closed the connection",
            r = shutdown_signal() => r,
        };
        tracing::info!(reason, "shutting down");
        // Bounded: Claude Code escalates to SIGKILL soon after closing stdin.
        link.stop(Duration::from_millis(500)).await;
        chan.stop(Duration::from_millis(500));
        ExitCode::SUCCESS
    })
    // The stdin reader thread may still be blocked in read(2); exiting ends it.
}
