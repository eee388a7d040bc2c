//! The `hookwire` binary's shared part: which source types it ships. Kept in a library so the
//! integration tests build sources exactly as the binary does.

use hookwire_core::Registry;

/// Every source type hookwire ships, registered explicitly: the YAML-declared types, then one
/// crate per vendor.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    // hmac, ed25519, token, standard-webhooks: declared entirely in config.yaml.
    hookwire_core::adapter::declared::register(&mut r);
    hookwire_adapter_alertmanager::register(&mut r);
    hookwire_adapter_bitbucket::register(&mut r);
    hookwire_adapter_buildkite::register(&mut r);
    hookwire_adapter_circleci::register(&mut r);
    hookwire_adapter_datadog::register(&mut r);
    hookwire_adapter_discord::register(&mut r);
    hookwire_adapter_github::register(&mut r);
    hookwire_adapter_gitlab::register(&mut r);
    hookwire_adapter_grafana::register(&mut r);
    hookwire_adapter_heroku::register(&mut r);
    hookwire_adapter_intercom::register(&mut r);
    hookwire_adapter_jira::register(&mut r);
    hookwire_adapter_linear::register(&mut r);
    hookwire_adapter_netlify::register(&mut r);
    hookwire_adapter_pagerduty::register(&mut r);
    hookwire_adapter_push::register(&mut r);
    hookwire_adapter_sentry::register(&mut r);
    hookwire_adapter_shopify::register(&mut r);
    hookwire_adapter_slack::register(&mut r);
    hookwire_adapter_stripe::register(&mut r);
    hookwire_adapter_twilio::register(&mut r);
    hookwire_adapter_vercel::register(&mut r);
    hookwire_adapter_zendesk::register(&mut r);
    r
}
