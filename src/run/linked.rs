//! `hookwire channel --gateway URL`: a channel linked to a team gateway. No config, store or
//! listener of its own: events come over the link ([`hookwire_core::link`]). The tools are
//! those the token's permissions (in `hello`) grant: actions performed by this process with
//! the credentials of `tools:` in its `--config` file (if that file exists), reads
//! (`get_event`, `list_events`) answered by the gateway over the link.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use hookwire_core::{channel, gateway, instructions, link};

use super::{runtime, server, unservable, Deadlines, Parts, Shutdown, HELLO_WAIT};

/// `hookwire channel --gateway URL [--token-file PATH] [--ca-file PEM]`.
pub fn run(
    gateway_url: &str,
    token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    config: &Path,
) -> ExitCode {
    let tool_settings = match hookwire_core::config::load_tools(config) {
        Ok(t) => t,
        Err(e) => {
            return unservable(
                &e.to_string(),
                &format!("correct the `tools:` section of {}", config.display()),
            )
        }
    };
    let url = match link::session_url(gateway_url) {
        Ok(u) => u,
        Err(e) => {
            return unservable(
                &e,
                "give --gateway the gateway's URL, e.g. https://hooks.example.com",
            )
        }
    };
    let token = match link::read_token(token_file.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            return unservable(
                &e,
                "export HOOKWIRE_TOKEN in the shell that starts claude (or pass --token-file); ask the gateway's \
                 admin for a token (`hookwire token create`)",
            )
        }
    };
    let tls = match ca_file {
        Some(path) => match link::tls_with_ca(&path) {
            Ok(c) => Some(c),
            Err(e) => {
                return unservable(
                    &e,
                    "point --ca-file at the PEM file of the CA that signed the gateway's certificate",
                )
            }
        },
        None => {
            gateway::install_crypto_provider();
            None
        }
    };
    runtime().block_on(async move {
        let shutdown = Shutdown::new(Deadlines::CHANNEL, true);
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
            _ = shutdown.requested() => None,
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
        let granted = toolbox.as_ref().map(|t| t.granted().to_vec()).unwrap_or_default();
        let toolbox = toolbox.map(|t| Arc::new(t) as Arc<dyn channel::Tools>);
        let chan = channel::start_with_tools(
            std::io::stdin(),
            std::io::stdout(),
            Box::new(feed),
            server(instructions::with_tools(&instructions, &granted)),
            toolbox,
        );
        tokio::select! {
            _ = chan.closed() => shutdown.begin("client closed the connection"),
            _ = shutdown.requested() => {}
        }
        tracing::info!(reason = shutdown.requested().await, "shutting down");
        shutdown
            .finish(Parts {
                link: Some(link),
                channel: Some(chan),
                ..Parts::default()
            })
            .await;
        ExitCode::SUCCESS
    })
    // The stdin reader thread may still be blocked in read(2); exiting ends it.
}
