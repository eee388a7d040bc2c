//! `hookwire serve`: the team gateway. Receives every source's webhooks, keeps every event in
//! its store, and streams each session token's events to `hookwire channel --gateway`
//! processes ([`hookwire_core::gateway`]). SIGHUP reloads the config; SIGTERM and SIGINT stop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hookwire::registry;
use hookwire_core::arc_swap::ArcSwap;
use hookwire_core::gateway::Gateway;
use hookwire_core::pipeline::{self, Keep, Pipeline};
use hookwire_core::store::{Store, StoreSink};
use hookwire_core::{http, ingress, metrics};
use tokio::signal::unix::{signal, SignalKind};

use super::jobs::Jobs;
use super::{connection_limits, open_store, runtime, stored_pipeline, Deadlines, Parts, Shutdown};
use crate::templates;

/// `hookwire serve --config PATH [--listen ADDR]`.
pub fn run(config_path: PathBuf, listen: Option<SocketAddr>) -> ExitCode {
    let (config, templates) = match pipeline::load(&config_path, &registry(), templates::TEMPLATES) {
        Ok(x) => x,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    let addr = listen.unwrap_or(config.listen);
    let tls_settings = config.tls.clone();
    let limits = connection_limits(&config.limits);
    metrics::install();
    let store = match open_store(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hookwire: {e}");
            return ExitCode::from(2);
        }
    };
    // Every webhook source is kept: which session receives it is its token's business.
    let pipeline = match stored_pipeline(config, templates, &store, Keep::Every) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("hookwire: {e}");
            store.close(Duration::from_secs(1));
            return ExitCode::from(2);
        }
    };
    runtime().block_on(async move {
        let shutdown = Shutdown::new(Deadlines::GATEWAY, false);
        let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
        let tls = match &tls_settings {
            Some(t) => match http::tls_acceptor(t) {
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
        let mut jobs = Jobs::start(&pipeline, &store);
        let current: ingress::Current = Arc::new(ArcSwap::new(pipeline));
        let gw = Gateway::new(store.clone(), current.clone());
        let mut server = tokio::spawn(gw.serve(listener, tls, limits, shutdown.stopping()));
        let mut failed = false;
        loop {
            // Biased, shutdown first: the listener ends because shutdown began, and a random
            // pick of its branch would report that clean stop as a failure (exit 1).
            tokio::select! {
                biased;
                _ = shutdown.requested() => break,
                _ = hup.recv() => {
                    if let Some(next) = reload(&config_path, &current, &store) {
                        jobs.stop();
                        jobs = Jobs::start(&next, &store);
                        current.store(next);
                    }
                }
                r = &mut server => {
                    match r {
                        Ok(Err(e)) => tracing::error!(error = %e, "the listener failed"),
                        Err(e) => tracing::error!(error = %e, "the listener task failed"),
                        Ok(Ok(())) => {}
                    }
                    failed = true;
                    shutdown.begin("listener stopped");
                    break;
                }
            }
        }
        tracing::info!(
            reason = shutdown.requested().await,
            "shutting down: no new requests or sessions; finishing those in flight"
        );
        shutdown
            .finish(Parts {
                jobs: Some(jobs),
                listener: (!failed).then_some(server),
                store: Some(store),
                ..Parts::default()
            })
            .await;
        if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    })
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
        || config.store.memory_bytes != running.store.memory_bytes
        || config.store.backend != running.store.backend
    {
        fixed.push("store");
    }
    if config.tls != running.tls {
        fixed.push("tls");
    }
    if config.limits != running.limits {
        fixed.push("limits");
    }
    // The console's router and its sign-in table are built at start.
    if config.console != running.console {
        fixed.push("console");
    }
    if !fixed.is_empty() {
        tracing::warn!(
            sections = %fixed.join(", "),
            "these settings changed but apply only after a restart; the rest is reloaded"
        );
    }
    let next = Pipeline::new(config, templates, Arc::new(StoreSink(store.clone())), Keep::Every)
        .with_replay(old.replay_guard());
    metrics::config_reload(true);
    tracing::info!(sources = next.config().sources.len(), "config reloaded");
    Some(Arc::new(next))
}
