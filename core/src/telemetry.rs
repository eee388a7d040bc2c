//! Logging: tracing to stderr only (stdout belongs to the MCP connection), human format or
//! JSON lines, level from `HOOKWIRE_LOG` (default `info`). `HOOKWIRE_LOG_FILE` also appends
//! every line to a file: Claude Code keeps a channel's stderr to itself, and CI greps the
//! whole test run's logs for secrets.

use std::str::FromStr;
use std::sync::Arc;

use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event, span fields as a prefix.
    #[default]
    Text,
    /// One JSON object per line, with the current span's fields (`source`, `event`,
    /// `delivery_id` for a webhook).
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format `{other}`; valid: text, json")),
        }
    }
}

/// Installs the global subscriber with level `info` unless `HOOKWIRE_LOG` says. Call once,
/// first thing.
pub fn init(format: LogFormat) {
    init_with_default("info", format);
}

/// Like [`init`], with another level when `HOOKWIRE_LOG` is unset: the one-shot
/// administration commands use `warn`, so their own output is not interleaved with
/// start-up logs.
pub fn init_with_default(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_env("HOOKWIRE_LOG")
        .unwrap_or_else(|_| EnvFilter::new(level))
        // tungstenite traces the whole upgrade request, the gateway link's bearer token
        // included; it logs nothing at info or above there, so this silences it at any level.
        .add_directive(
            "tungstenite::handshake::client=info"
                .parse()
                .expect("valid directive"),
        )
        // ureq logs every request's URL at debug; a Slack incoming-webhook URL is a secret.
        .add_directive("ureq=warn".parse().expect("valid directive"))
        // handlebars traces every render step with the untrusted payload values it reads.
        .add_directive("handlebars=info".parse().expect("valid directive"))
        // async-nats logs every JetStream API response at debug: key-value records (token
        // hashes, cursors) and stored events would land in the log.
        .add_directive("async_nats=info".parse().expect("valid directive"));
    let file = std::env::var_os("HOOKWIRE_LOG_FILE").and_then(|path| {
        match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
            Ok(f) => Some(Arc::new(f)),
            Err(e) => {
                eprintln!(
                    "hookwire: cannot open HOOKWIRE_LOG_FILE {}: {e}",
                    path.to_string_lossy()
                );
                None
            }
        }
    });
    // A file that cannot be opened logs to stderr alone.
    let writer = match file {
        Some(f) => BoxMakeWriter::new(std::io::stderr.and(f)),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
