//! hookwire's built-in vendors. Each is a folder: `preset.yaml` (the same source entry a team
//! writes in config.yaml for a vendor hookwire does not ship, with the vendor's constants and
//! the options a source may give; see `hookwire_core::adapter::preset`), `README.md` (how to
//! set the vendor up), and a Rust module only where the vendor needs code that YAML cannot
//! express: a handshake reply (Discord, Slack), names taken from the payload by rules
//! (Datadog, Twilio, push), or a scheme of its own (Netlify, Twilio).
//!
//! [`vendors`] is the one list: the registry, the vector tests and the fuzz targets iterate
//! it. `build.rs` embeds every folder that holds a `preset.yaml`, so a vendor with a standard
//! scheme is added with a folder alone.

use hookwire_core::adapter::preset::{self, Code, Vendor};
use hookwire_core::Registry;

#[path = "datadog/datadog.rs"]
mod datadog;
#[path = "discord/discord.rs"]
mod discord;
#[path = "netlify/netlify.rs"]
mod netlify;
#[path = "push/push.rs"]
mod push;
#[path = "slack/slack.rs"]
mod slack;
#[path = "twilio/twilio.rs"]
mod twilio;

include!(concat!(env!("OUT_DIR"), "/presets.rs"));

/// The vendors that add code to their preset, by folder name.
const CODE: &[(&str, Code)] = &[
    ("datadog", datadog::build),
    ("discord", discord::build),
    ("netlify", netlify::build),
    ("push", push::build),
    ("slack", slack::build),
    ("twilio", twilio::build),
];

/// Every built-in vendor, sorted by name.
pub fn vendors() -> Vec<Vendor> {
    PRESETS
        .iter()
        .map(|&(name, preset)| Vendor {
            name,
            preset,
            code: CODE.iter().find(|(n, _)| *n == name).map(|&(_, code)| code),
        })
        .collect()
}

/// Registers every built-in vendor.
pub fn register(registry: &mut Registry) {
    preset::register(registry, &vendors());
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookwire_core::adapter::preset::Preset;

    #[test]
    fn every_vendor_has_a_preset_that_parses_and_a_readme() {
        let vendors = vendors();
        assert!(vendors.len() >= 32, "{} vendors", vendors.len());
        for v in &vendors {
            let parsed = Preset::parse(v).unwrap_or_else(|e| panic!("{e}"));
            // What the registry reads without parsing is what parsing reads.
            assert_eq!(
                hookwire_core::adapter::preset::first_line_description(v.preset),
                Some(parsed.description.as_str()),
                "{}",
                v.name
            );
            let readme = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(v.name)
                .join("README.md");
            assert!(readme.is_file(), "{} has no README", v.name);
        }
        for (name, _) in CODE {
            assert!(
                vendors.iter().any(|v| v.name == *name),
                "code for `{name}` without a preset folder"
            );
        }
    }
}
