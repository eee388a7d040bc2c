//! The `hookwire` binary's shared part: which source types it ships. Kept in a library so the
//! integration tests build sources exactly as the binary does.

use hookwire_core::Registry;

/// Every source type hookwire ships, registered explicitly: the YAML-declared types, then
/// every built-in vendor (a preset folder of `adapters/` each).
pub fn registry() -> Registry {
    let mut r = Registry::new();
    // hmac, ed25519, token, standard-webhooks: declared entirely in config.yaml.
    hookwire_core::adapter::declared::register(&mut r);
    hookwire_adapters::register(&mut r);
    r
}
