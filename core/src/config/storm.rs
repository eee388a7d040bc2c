//! `storm:` of a source: the group key, the window and how many events of a group pass
//! before folding starts, checked at load. The folding itself is [`crate::storm`].

use std::time::Duration;

use handlebars::Handlebars;
use serde::Deserialize;

/// `storm:` of a source as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    /// The group key, a handlebars template over the event (`body`, `event`, `type`,
    /// `action`, `source`); default: the event name.
    #[serde(default = "default_group")]
    group: String,
    /// The window, in seconds.
    #[serde(default = "default_window")]
    window_secs: u64,
    /// Events of one group let through per window before folding starts.
    #[serde(default = "one")]
    max_events: usize,
}

fn default_group() -> String {
    "{{event}}".into()
}

fn default_window() -> u64 {
    60
}

fn one() -> usize {
    1
}

/// A source's storm settings, compiled.
#[derive(Debug)]
pub struct StormSpec {
    /// The group key template.
    pub(crate) template: String,
    /// The window.
    pub(crate) window: Duration,
    /// Events of one group let through per window.
    pub(crate) max_events: usize,
}

impl StormSpec {
    /// Parses and checks a `storm:` block; `(field, message)` on error.
    pub fn from_yaml(value: &serde_norway::Value) -> Result<StormSpec, (&'static str, String)> {
        let spec: Spec = serde_norway::from_value(value.clone()).map_err(|e| ("", e.to_string()))?;
        if spec.window_secs == 0 {
            return Err(("window_secs", "must be greater than 0".into()));
        }
        if spec.max_events == 0 {
            return Err((
                "max_events",
                "must be at least 1 (the first event of a group always passes)".into(),
            ));
        }
        let mut hb = Handlebars::new();
        hb.register_template_string("group", &spec.group)
            .map_err(|e| ("group", format!("not a valid template: {e}")))?;
        Ok(StormSpec {
            template: spec.group,
            window: Duration::from_secs(spec.window_secs),
            max_events: spec.max_events,
        })
    }
}
