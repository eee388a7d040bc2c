//! Logging: tracing to stderr only (stdout belongs to the MCP connection), human format,
//! level from `HOOKWIRE_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Call once, first thing.
pub fn init() {
    init_with_default("info");
}

/// Like [`init`], with another level when `HOOKWIRE_LOG` is unset: the one-shot
/// administration commands use `warn`, so their own output is not interleaved with
/// start-up logs.
pub fn init_with_default(level: &str) {
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
        .add_directive("ureq=warn".parse().expect("valid directive"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}
