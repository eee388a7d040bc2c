//! The team gateway (`hookwire serve`) and a channel linked to it
//! (`hookwire channel --gateway URL`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hookwire::registry;
use hookwire_core::channel::{self, ServerDescription};
use hookwire_core::gateway::{self, Gateway, HEALTH_PATH, SESSION_PATH};
use hookwire_core::pipeline;
use hookwire_core::{ingress, instructions, link};

use crate::{close_storm_windows, shutdown_signal, start_jobs, stored_pipeline, templates};

/// How long a linked channel waits for the gateway's `hello` before answering `initialize`
/// with generic instructions.
const HELLO_WAIT: Duration = Duration::from_secs(5);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `hookwire serve`.
pub fn run_serve(config_path: PathBuf, listen: Option<SocketAddr>) -> ExitCode {
    let (mut config, templates) = match pipeline::load(&config_path, &registry(), templates::TEMPLATES) {
        Ok(x) => x,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    // Every webhook source is stored: which session receives it is its token's business,
    // not `channel.sources` (that list is the local channel's). `channel.enabled: false`
    // still stores and pushes nothing. Schedules run on this machine, so they stay opt-in.
    for src in config.sources.iter_mut().filter(|s| s.schedule.is_none()) {
        src.subscribed = true;
        if src.path == SESSION_PATH || src.path == HEALTH_PATH {
            eprintln!(
                "hookwire: source `{}` uses path {}, which the gateway serves itself; give it another `path:`",
                src.name, src.path
            );
            return ExitCode::from(2);
        }
    }
    let addr = listen.unwrap_or(config.listen);
    let tls_settings = config.tls.clone();
    let (pipeline, store) = match stored_pipeline(config, templates) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("hookwire: {e}");
            return ExitCode::from(2);
        }
    };
    runtime().block_on(async move {
        let tls = match &tls_settings {
            Some(t) => match gateway::tls_config(t).await {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("hookwire: {e}");
                    store.close(Duration::from_secs(1));
                    return ExitCode::from(2);
                }
            },
            None => None,
        };
        let listener = match ingress::bind(addr).await.and_then(|l| l.into_std()) {
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
        start_jobs(&pipeline);
        let gw = Gateway::new(store.clone(), pipeline.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let mut server = tokio::spawn(gw.serve(listener, tls, async move {
            let _ = stop_rx.await;
        }));
        let (reason, finished) = tokio::select! {
            r = shutdown_signal() => (r, false),
            r = &mut server => {
                match r {
                    Ok(Err(e)) => tracing::error!(error = %e, "the listener failed"),
                    Err(e) => tracing::error!(error = %e, "the listener task failed"),
                    Ok(Ok(())) => {}
                }
                ("listener stopped", true)
            }
        };
        tracing::info!(reason, "shutting down");
        close_storm_windows(&pipeline);
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

/// `hookwire channel --gateway URL`: no store, no listener; events come over the link. The
/// tools are those the token's permissions (in `hello`) grant, performed by this process with
/// the credentials of `tools:` in `config` (if that file exists).
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
        let (mut link, feed) = link::start(link::LinkOptions {
            url: url.clone(),
            token,
            tls,
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
            // No store here: the read tools need the gateway's, and are not offered.
            hookwire_core::tools::Toolbox::new(session, &tool_settings, None, tokio::runtime::Handle::current())
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
