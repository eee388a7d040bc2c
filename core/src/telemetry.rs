//! Logging: tracing to stderr only (stdout belongs to the MCP connection), human format,
//! level from `HOOKWIRE_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Call once, first thing.
pub fn init() {
    let filter = EnvFilter::try_from_env("HOOKWIRE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}
