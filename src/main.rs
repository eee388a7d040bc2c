//! The `hookwire` command line. Thin: it registers the adapters, loads the config and hands
//! over to hookwire-core.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use hookwire::registry;
use hookwire_core::filter::Verdict;
use hookwire_core::pipeline::{self, Pipeline};
use hookwire_core::{config, render, sink, telemetry};

// The request path allocates many small strings (the parsed payload, rendered text); glibc
// malloc showed as a quarter of the CPU per event under load, mimalloc a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin;
mod catchup;
mod connect;
mod doctor;
mod explain;
mod run;
mod send;
mod tail;

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
    /// Print one line per event (time, source, event, summary, delivery id) as events arrive,
    /// from the local store or a gateway, resuming where the last tail stopped: for Claude
    /// Code's Monitor tool where channels are off.
    Tail(tail::TailArgs),
    /// Create, update or remove a source's webhook through the vendor's API (GitHub, GitLab), with a
    /// fresh secret written to the source's secret_file.
    Connect {
        #[command(subcommand)]
        command: connect::ConnectCommand,
    },
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
    Ok(Pipeline::new(
        config,
        templates,
        Arc::new(queue),
        pipeline::Keep::ChannelSources,
    ))
}

/// [`offline_pipeline`] without reading any secret, for `render`, which verifies nothing:
/// its sources' adapters hold no key.
fn keyless_pipeline(path: &std::path::Path) -> Result<Pipeline, String> {
    let config = config::load_without_secrets(path, &registry()).map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut p = hookwire_core::diagnostics::Problems::new(path, &text);
    let used = render::used_by(
        templates::TEMPLATES,
        config.sources.iter().map(|s| s.templates.as_str()),
    );
    let templates = render::Templates::load(&used, config.templates_dir.as_deref(), &mut p);
    p.finish().map_err(|e| e.to_string())?;
    let (queue, _events) = sink::memory_queue(1);
    Ok(Pipeline::new(
        config,
        templates,
        Arc::new(queue),
        pipeline::Keep::ChannelSources,
    ))
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
        Command::Token { .. }
        | Command::Events { .. }
        | Command::Replay(_)
        | Command::Doctor(_)
        | Command::Tail(_)
        | Command::Connect { .. } => telemetry::init_with_default("warn", cli.log_format),
        _ => telemetry::init(cli.log_format),
    }
    match cli.command {
        Command::Token { command } => admin::token(command),
        Command::Events { command } => admin::events(command),
        Command::Replay(args) => admin::replay(args),
        Command::Doctor(args) => doctor::doctor(args),
        Command::Tail(args) => tail::tail(args),
        Command::Connect { command } => connect::connect(command),
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
            Some(url) => run::linked::run(&url, token_file, ca_file, &config),
            None => run::local::run(config, listen),
        },
        Command::Serve { config, listen } => run::gateway::run(config, listen),
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
    let body: bytes::Bytes = std::fs::read(payload)
        .map_err(|e| format!("cannot read {}: {e}", payload.display()))?
        .into();
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
