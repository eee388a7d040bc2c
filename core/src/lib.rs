//! hookwire-core: everything between a vendor's HTTP request and a line on a Claude Code
//! session's stdin, except the vendor-specific parts, which live in `adapters/<vendor>`.
//!
//! The path of one webhook (see `ARCHITECTURE.md`):
//! [`ingress`] (route, [`network`] allowlist, limits) → [`verify`] → [`adapter::Adapter::identify`]
//! → [`replay`] (dedup by delivery id) → [`render`] → [`sanitize`] → [`sink::EventSink`] ([`store`]:
//! committed before 2xx)
//! → [`channel`] (one `notifications/claude/channel` line per event).

pub mod adapter;
pub mod budget;
pub mod channel;
pub mod config;
pub mod console;
pub mod delivery;
pub mod diagnostics;
pub mod event;
pub mod fetch;
pub mod filter;
pub mod gateway;
pub mod health;
pub mod http;
pub mod ingress;
pub mod instructions;
pub mod link;
pub mod link_protocol;
pub mod metrics;
pub mod network;
pub mod pipeline;
pub mod render;
pub mod replay;
pub mod sanitize;
pub mod schedule;
pub mod secret;
pub mod sink;
pub mod store;
pub mod storm;
pub mod telemetry;
pub mod tools;
pub mod verify;

pub use adapter::{Adapter, AdapterFactory, Registry};
/// Re-exported so adapters and the binary use the same HTTP types.
pub use arc_swap;
pub use axum;
pub use config::Config;
