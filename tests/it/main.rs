//! The black-box tests, in one binary so `cargo test` links the crate graph once. Each module
//! spawns `hookwire` as Claude Code or a vendor would and checks what comes out; `common` is
//! the fake Claude Code, the webhook signer and the gateway helpers they share.

mod common;

mod admin;
mod cloud_kinds;
mod connect;
mod console;
mod declared;
mod durability;
mod filters;
mod gateway;
mod gateway_tools;
mod golden;
mod hostile;
mod kinds;
mod log_secrets;
mod mcp_http;
mod nats;
mod ops;
mod protection;
mod push;
mod real_clients;
mod schedules;
mod secrets;
mod sessions;
mod storm;
mod tail;
mod tools;
mod vectors;
mod vendor_libs;
mod webhooks;
