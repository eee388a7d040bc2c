//! The `hookwire` command line. Thin: it registers the adapters, loads the config and hands
//! over to hookwire-core.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hookwire::registry;
use hookwire_core::channel::{self, ServerDescription};
use hookwire_core::filter::Verdict;
use hookwire_core::health::Probes;
use hookwire_core::pipeline::{self, Pipeline};
use hookwire_core::store::sqlite::StoreOptions;
use hookwire_core::store::{SqliteStore, Store, StoreSink, Subscription};
use hookwire_core::{config, delivery, ingress, instructions, sink, telemetry};

// The request path allocates many small strings (the parsed payload, rendered text); glibc
// malloc showed as a quarter of the CPU per event under load, mimalloc a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin;
mod doctor;
mod explain;
mod send;
mod serve;

mod templates {
    include!(concat!(env!("OUT_DIR"), "/templates.rs"));
}

#[derive(Parser)]
#[command(
    name = "hookwire",
    version,
    about = "Vendor webhooks into Claude Code channel sessions"
)]
struct Cli {
    /// Log line format on stderr: `text` (human) or `json` (one object per line).
    #[arg(
        long,
        global = true,
        env = "HOOKWIRE_LOG_FORMAT",
        default_value = "text",
        value_name = "FORMAT"
    )]
    log_format: telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the stdio MCP channel Claude Code spawns; in local mode it also receives webhooks.
    Channel {
        /// The configuration file.
        #[arg(long, env = "HOOKWIRE_CONFIG", default_value = "config.yaml")]
        config: PathBuf,
        /// Webhook listen address (overrides `listen:` in the config); port 0 picks a free port.
        #[arg(long, conflicts_with = "gateway")]
        listen: Option<std::net::SocketAddr>,
        /// Receive events from a team gateway (`hookwire serve`) instead of webhooks, e.g.
        /// https://hooks.example.com. No config, store or listener is used. The session token
        /// comes from HOOKWIRE_TOKEN or --token-file, never the command line.
        #[arg(long, value_name = "URL")]
        gateway: Option<String>,
        /// A file holding the session token (instead of HOOKWIRE_TOKEN).
        #[arg(long, value_name = "PATH", requires = "gateway")]
        token_file: Option<PathBuf>,
        /// PEM file of the CA certificate(s) to trust for the gateway's TLS, instead of the
        /// public web roots (a gateway with a private CA).
        #[arg(long, value_name = "PATH", requires = "gateway")]
        ca_file: Option<PathBuf>,
    },
    /// Run the team gateway: receive every source's webhooks, store them, and stream each
    /// session token's events to `hookwire channel --gateway` processes.
    Serve {
        /// The configuration file.
        #[arg(long, env = "HOOKWIRE_CONFIG", default_value = "config.yaml")]
        config: PathBuf,
        /// Listen address (overrides `listen:` in the config); port 0 picks a free port.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Print the notification a payload would produce (no signature check, so no secret is
    /// read): for writing templates.
    Render {
        /// The configuration file.
        #[arg(long, env = "HOOKWIRE_CONFIG", default_value = "config.yaml")]
        config: PathBuf,
        /// The source name, as in config.yaml.
        source: String,
        /// A file holding the payload, sent as is.
        payload: PathBuf,
        /// The event type header (GitHub: X-GitHub-Event).
        #[arg(long)]
        event: Option<String>,
        /// Extra request headers, `Name: value`.
        #[arg(long = "header", value_name = "NAME:VALUE")]
        headers: Vec<String>,
    },
    /// Sign a payload with a source's own scheme and secret and POST it (end-to-end testing).
    Send {
        /// The configuration file.
        #[arg(long, env = "HOOKWIRE_CONFIG", default_value = "config.yaml")]
        config: PathBuf,
        /// The source name, as in config.yaml.
        source: String,
        /// A file holding the payload, sent byte for byte.
        payload: PathBuf,
        /// The event type, for vendors that name it in a header (GitHub: X-GitHub-Event).
        #[arg(long)]
        event: Option<String>,
        /// Where to POST (default: the source's path on the configured listen address). Also
        /// the URL signed for vendors that sign it.
        #[arg(long)]
        url: Option<String>,
        /// Extra request headers, `Name: value`.
        #[arg(long = "header", value_name = "NAME:VALUE")]
        headers: Vec<String>,
    },
    /// Verification tools.
    Verify {
        #[command(subcommand)]
        command: VerifyCommand,
    },
    /// Validate the configuration and compile every template; report every problem.
    Check {
        /// The configuration file.
        #[arg(long, env = "HOOKWIRE_CONFIG", default_value = "config.yaml")]
        config: PathBuf,
    },
    /// Session tokens for `hookwire serve`: create, list, revoke.
    Token {
        #[command(subcommand)]
        command: admin::TokenCommand,
    },
    /// The stored events: list, show.
    Events {
        #[command(subcommand)]
        command: admin::EventsCommand,
    },
    /// Deliver a source's stored events again, as new events.
    Replay(admin::ReplayArgs),
    /// Check the config, its secrets, the listen address (or, with --gateway, the gateway and
    /// the token), Claude Code and the channel notifications its debug logs say it skipped,
    /// and print the `.mcp.json` entry and `claude` command line for this set-up.
    Doctor(doctor::DoctorArgs),
}

#[derive(Subcommand)]
enum VerifyCommand {
    /// Explain why a captured request does or does not verify (no secret material printed).
    Explain {
        /// The configuration file.
        #[arg(long, env = "HOOKWIRE_CONFIG", default_value = "config.yaml")]
        config: PathBuf,
        /// The source name, as in config.yaml.
        source: String,
        /// The request's headers, one `Name: value` per line: as GitHub's Recent Deliveries
        /// shows them (`Request URL:` and `Request method:` lines, then the headers), after an
        /// HTTP request line, or as `curl -v` prints them.
        #[arg(long)]
        headers: PathBuf,
        /// The request's exact body bytes.
        #[arg(long)]
        body: PathBuf,
        /// Judge timestamps as of this Unix time (seconds) instead of now.
        #[arg(long)]
        now: Option<u64>,
    },
}

/// Loads the config and builds a pipeline that queues nowhere: for the one-shot commands.
fn offline_pipeline(config: &std::path::Path) -> Result<Pipeline, String> {
    let (config, templates) =
        pipeline::load(config, &registry(), templates::TEMPLATES).map_err(|e| e.to_string())?;
    let (queue, _events) = sink::memory_queue(1);
    Ok(Pipeline::new(config, templates, Arc::new(queue)))
}

/// [`offline_pipeline`] without reading any secret, for `render`, which verifies nothing:
/// its sources' adapters hold no key.
fn keyless_pipeline(path: &std::path::Path) -> Result<Pipeline, String> {
    let config = config::load_without_secrets(path, &registry()).map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut p = config::Problems::new(path, &text);
    let templates =
        hookwire_core::render::Templates::load(templates::TEMPLATES, config.templates_dir.as_deref(), &mut p);
    p.finish().map_err(|e| e.to_string())?;
    let (queue, _events) = sink::memory_queue(1);
    Ok(Pipeline::new(config, templates, Arc::new(queue)))
}

/// The index of a named source, or an error listing the configured ones.
fn source_index(pipeline: &Pipeline, source: &str) -> Result<usize, String> {
    pipeline.source_index(source).ok_or_else(|| {
        let known: Vec<_> = pipeline
            .config()
            .sources
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        format!("no source named `{source}`; configured: {}", known.join(", "))
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        // One-shot administration: their output is the point, start-up logs would be noise.
        Command::Token { .. } | Command::Events { .. } | Command::Replay(_) | Command::Doctor(_) => {
            telemetry::init_with_default("warn", cli.log_format)
        }
        _ => telemetry::init(cli.log_format),
    }
    match cli.command {
        Command::Token { command } => admin::token(command),
        Command::Events { command } => admin::events(command),
        Command::Replay(args) => admin::replay(args),
        Command::Doctor(args) => doctor::doctor(args),
        Command::Check { config } => match pipeline::load(&config, &registry(), templates::TEMPLATES) {
            Ok((c, _)) => {
                eprintln!(
                    "{}: ok ({} source{}, {} built-in templates)",
                    config.display(),
                    c.sources.len(),
                    if c.sources.len() == 1 { "" } else { "s" },
                    templates::TEMPLATES.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprint!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Channel {
            config,
            listen,
            gateway,
            token_file,
            ca_file,
        } => match gateway {
            Some(url) => serve::run_link(&url, token_file, ca_file, &config),
            None => run_channel(config, listen),
        },
        Command::Serve { config, listen } => serve::run_serve(config, listen),
        Command::Send {
            config,
            source,
            payload,
            event,
            url,
            headers,
        } => {
            let args = send::SendArgs {
                source: &source,
                payload: &payload,
                event: event.as_deref(),
                url: url.as_deref(),
                headers: &headers,
            };
            match offline_pipeline(&config).and_then(|p| send::send(&p, &args)) {
                Ok(sent) => {
                    println!("{}", sent.report);
                    if sent.accepted {
                        ExitCode::SUCCESS
                    } else {
                        eprintln!("hookwire send: the endpoint did not accept the webhook");
                        if let Some(h) = sent.hint {
                            eprintln!("hint: {h}");
                        }
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("hookwire send: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Verify {
            command:
                VerifyCommand::Explain {
                    config,
                    source,
                    headers,
                    body,
                    now,
                },
        } => {
            match offline_pipeline(&config).and_then(|p| explain::explain(&p, &source, &headers, &body, now))
            {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("hookwire verify explain: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Render {
            config,
            source,
            payload,
            event,
            headers,
        } => match render(&config, &source, &payload, event, &headers) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hookwire render: {e}");
                ExitCode::from(2)
            }
        },
    }
}

fn render(
    config_path: &std::path::Path,
    source: &str,
    payload: &std::path::Path,
    event: Option<String>,
    extra: &[String],
) -> Result<(), String> {
    use hookwire_core::axum::http::{HeaderMap, HeaderName, HeaderValue};
    let pipeline = keyless_pipeline(config_path)?;
    let body = std::fs::read(payload).map_err(|e| format!("cannot read {}: {e}", payload.display()))?;
    let index = source_index(&pipeline, source)?;
    let mut headers = HeaderMap::new();
    let mut put = |name: &str, value: &str| -> Result<(), String> {
        let n = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("bad header name `{name}`"))?;
        let v = HeaderValue::from_str(value.trim()).map_err(|_| format!("bad value for header `{name}`"))?;
        headers.insert(n, v);
        Ok(())
    };
    let adapter = &pipeline.config().sources[index].adapter;
    for (n, v) in adapter.naming_headers(event.as_deref(), "00000000-0000-0000-0000-000000000000") {
        put(&n, &v)?;
    }
    for h in extra {
        let (n, v) = h
            .split_once(':')
            .ok_or_else(|| format!("--header `{h}` is not NAME:VALUE"))?;
        put(n, v)?;
    }
    // A body that is not JSON is previewed as a form post (Slack commands, Twilio).
    let typed = extra
        .iter()
        .any(|h| h.trim().to_ascii_lowercase().starts_with("content-type"));
    if !typed && serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
        put("content-type", "application/x-www-form-urlencoded")?;
    }
    let incoming = hookwire_core::pipeline::Incoming::post(&headers, &body);
    match pipeline
        .filter_unverified(index, &incoming)
        .map_err(|e| e.to_string())?
    {
        Some(Verdict::Blocked(why)) => {
            eprintln!("filter: blocked ({why}); this event would not be delivered")
        }
        Some(Verdict::Pass) if pipeline.config().sources[index].filter.is_some() => {
            eprintln!("filter: passes")
        }
        _ => {}
    }
    match pipeline.render_unverified(index, &incoming) {
        Ok(Some(ev)) => {
            use std::io::Write;
            std::io::stdout().write_all(&ev.line).map_err(|e| e.to_string())
        }
        Ok(None) => {
            eprintln!("acknowledged only: this event never reaches a session");
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Starts the pipeline's own jobs on the current runtime: each schedule, and the storm-control
/// flusher that queues digests as windows close.
/// Returns their tasks, for a config reload to stop.
pub(crate) fn start_jobs(pipeline: &Arc<Pipeline>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut jobs = Vec::new();
    for (i, src) in pipeline.config().sources.iter().enumerate() {
        if src.schedule.is_some() {
            jobs.push(tokio::spawn(hookwire_core::schedule::run(pipeline.clone(), i)));
        }
    }
    if pipeline.has_storm_control() {
        let flusher = pipeline.clone();
        jobs.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                flusher.flush_storms(std::time::SystemTime::now());
            }
        }));
    }
    jobs
}

/// At shutdown: closes every storm window early so no folded event goes unnamed.
pub(crate) fn close_storm_windows(pipeline: &Pipeline) {
    pipeline.flush_storms(std::time::SystemTime::now() + Duration::from_secs(366 * 24 * 3600));
}

/// The pipeline over the durable store: every event is committed to it before 2xx, and
/// replay protection is re-seeded from what it accepted within the dedup window.
pub(crate) fn stored_pipeline(
    config: hookwire_core::Config,
    templates: hookwire_core::render::Templates,
) -> Result<(Arc<Pipeline>, Arc<dyn Store>), String> {
    let store = open_store(&config)?;
    let pipeline = Pipeline::new(config, templates, Arc::new(StoreSink(store.clone())));
    if let Err(e) = pipeline.seed_replay(store.as_ref(), std::time::SystemTime::now()) {
        store.close(Duration::from_secs(1));
        return Err(e.to_string());
    }
    Ok((Arc::new(pipeline), store))
}

/// The listener's connection limits: the config's, with the connection cap lowered to what
/// the open-file limit (raised to its hard limit first) leaves room for.
pub(crate) fn connection_limits(
    limits: &hookwire_core::config::Limits,
) -> hookwire_core::http::ConnectionLimits {
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

/// Opens the configured store (the file beside config.yaml unless `store.path` says).
pub(crate) fn open_store(config: &hookwire_core::Config) -> Result<Arc<dyn Store>, String> {
    let s = &config.store;
    let opts = StoreOptions {
        path: s.path.clone(),
        sync: s.sync,
        max_bytes: s.max_bytes,
        max_age: s.max_age,
        queue: config.limits.queue_capacity,
        ..StoreOptions::new(&s.path)
    };
    Ok(SqliteStore::open(opts).map_err(|e| e.to_string())?)
}

fn run_channel(config_path: PathBuf, listen: Option<std::net::SocketAddr>) -> ExitCode {
    let (config, templates) = match pipeline::load(&config_path, &registry(), templates::TEMPLATES) {
        Ok(x) => x,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    let addr = listen.unwrap_or(config.listen);
    let metrics_on = config.metrics;
    if metrics_on {
        hookwire_core::metrics::install();
    }
    let mut server = ServerDescription {
        name: "hookwire".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        instructions: instructions::generate(&config),
    };
    let subscription = Subscription {
        name: delivery::LOCAL.into(),
        sources: config.channel.sources.clone(),
    };
    let mark = delivery::mark_path(&config.store.path);
    // Local mode: the tools are those `channel.permissions` grants, with `tools:` credentials.
    let tool_settings = config.tools.clone();
    let session = hookwire_core::tools::Session {
        subscriber: delivery::LOCAL.into(),
        sources: config.channel.sources.clone(),
        permissions: config.channel.permissions.clone(),
    };
    let (pipeline, store) = match stored_pipeline(config, templates) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("hookwire: {e}");
            return ExitCode::from(2);
        }
    };
    let feed = match delivery::StoreFeed::open(store.clone(), subscription, Some(&mark)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("hookwire: {e}");
            store.close(Duration::from_secs(1));
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = match ingress::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot listen for webhooks");
                return ExitCode::FAILURE;
            }
        };
        let bound = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| addr.to_string());
        tracing::info!("listening on http://{bound}");
        let toolbox = hookwire_core::tools::Toolbox::new(
            session,
            &tool_settings,
            Some(store.clone()),
            tokio::runtime::Handle::current(),
        );
        server.instructions = instructions::with_tools(&server.instructions, toolbox.granted());
        let chan = channel::start_with_tools(
            std::io::stdin(),
            std::io::stdout(),
            Box::new(feed),
            server,
            Some(Arc::new(toolbox)),
        );
        let _jobs = start_jobs(&pipeline);
        let storms = pipeline.clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let local = Subscription {
            name: delivery::LOCAL.into(),
            sources: pipeline.config().channel.sources.clone(),
        };
        let probes = Probes::new(store.clone(), Box::new(move |_| vec![local.clone()]), metrics_on);
        let pipeline_limits = pipeline.config().limits.clone();
        let app = ingress::router(pipeline).merge(probes.router());
        let limits = connection_limits(&pipeline_limits);
        let mut http = tokio::spawn(hookwire_core::http::serve(
            listener,
            None,
            app,
            limits,
            async move {
                let _ = stop_rx.await;
            },
            Duration::from_millis(500),
        ));
        let reason = tokio::select! {
            _ = chan.closed() => "client closed the connection",
            r = shutdown_signal() => r,
            r = &mut http => {
                if let Ok(Err(e)) = r { tracing::error!(error = %e, "webhook listener failed"); }
                "webhook listener stopped"
            }
        };
        tracing::info!(reason, "shutting down");
        close_storm_windows(&storms);
        // Stop accepting; requests in flight finish while the store still commits. Bounded:
        // Claude Code escalates to SIGKILL soon after closing stdin.
        let _ = stop_tx.send(());
        if !http.is_finished()
            && tokio::time::timeout(Duration::from_millis(500), &mut http)
                .await
                .is_err()
        {
            http.abort();
        }
        chan.stop(Duration::from_millis(500));
        store.close(Duration::from_millis(1000));
        ExitCode::SUCCESS
    })
    // The stdin reader thread may still be blocked in read(2); exiting ends it.
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = hup.recv() => "SIGHUP",
        _ = int.recv() => "SIGINT",
    }
}
