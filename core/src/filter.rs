//! Per-source filters: which verified events reach the session. An event-type allowlist plus
//! an optional condition over the payload written in CEL (the Common Expression Language, as
//! used by Kubernetes and Google APIs; evaluated by the `cel` crate), for example
//! `body.workflow_run.conclusion == "failure"`. A filtered-out event is answered 2xx and
//! counted, never delivered.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::adapter::Identity;

/// `filter:` of a source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    /// Event names let through: a full name (`issues.opened`), an event type (`issues`,
    /// meaning every action), or a prefix (`incident.*`). Empty lets every type through.
    #[serde(default)]
    events: Vec<String>,
    /// A CEL condition that must be true.
    #[serde(default)]
    when: Option<String>,
}

/// A compiled filter.
pub struct Filter {
    events: Vec<String>,
    when: Option<(String, cel::Program)>,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("events", &self.events)
            .field("when", &self.when.as_ref().map(|(s, _)| s))
            .finish()
    }
}

/// A problem in a `filter:` block: the field under `filter` and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// `events`, `when`, or empty for the block.
    pub field: &'static str,
    /// What is wrong, with the position in the expression for a CEL error.
    pub message: String,
}

/// Why an event did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver it.
    Pass,
    /// Not delivered, and why.
    Blocked(String),
}

impl Filter {
    /// Parses and compiles a `filter:` block.
    pub fn from_yaml(value: &serde_norway::Value) -> Result<Filter, FilterError> {
        let spec: Spec = serde_norway::from_value(value.clone()).map_err(|e| FilterError {
            field: "",
            message: e.to_string(),
        })?;
        if spec.events.iter().any(|e| e.is_empty()) {
            return Err(FilterError {
                field: "events",
                message: "an empty event name matches nothing".into(),
            });
        }
        let when = match spec.when {
            None => None,
            Some(source) => {
                let program = cel::Program::compile(&source).map_err(|errors| FilterError {
                    field: "when",
                    message: errors
                        .errors
                        .iter()
                        .map(|e| format!("CEL, line {} column {}: {}", e.pos.0, e.pos.1, e.msg))
                        .collect::<Vec<_>>()
                        .join("; "),
                })?;
                Some((source, program))
            }
        };
        Ok(Filter {
            events: spec.events,
            when,
        })
    }

    /// Whether the condition reads the payload (then the whole body is parsed for it).
    pub fn reads_body(&self) -> bool {
        self.when.is_some()
    }

    fn event_allowed(&self, identity: &Identity, full: &str) -> bool {
        self.events.is_empty()
            || self.events.iter().any(|e| {
                e == full
                    || *e == identity.event
                    || e.strip_suffix(".*")
                        .is_some_and(|prefix| full.strip_prefix(prefix).is_some_and(|r| r.starts_with('.')))
            })
    }

    /// Decides for one identified event. A condition that cannot be evaluated (a field the
    /// payload lacks, a type mismatch) lets the event through with a warning: a verified
    /// event is never lost to a filter bug; write `has(body.x) && ...` to be strict.
    pub fn check(&self, source: &str, identity: &Identity, body: &Value) -> Verdict {
        let full = identity.full_name();
        if !self.event_allowed(identity, &full) {
            return Verdict::Blocked(format!("event {full} is not in filter.events"));
        }
        let Some((text, program)) = &self.when else {
            return Verdict::Pass;
        };
        let mut ctx = cel::Context::default();
        let vars: [(&str, Value); 6] = [
            ("body", body.clone()),
            ("event", Value::String(full.clone())),
            ("type", Value::String(identity.event.clone())),
            (
                "action",
                identity.action.clone().map(Value::String).unwrap_or(Value::Null),
            ),
            ("source", Value::String(source.to_owned())),
            ("delivery_id", Value::String(identity.delivery_id.clone())),
        ];
        for (name, value) in vars {
            if let Err(e) = ctx.add_variable(name, value) {
                tracing::warn!(%source, error = %e, "filter: cannot bind `{name}`; delivering");
                return Verdict::Pass;
            }
        }
        match program.execute(&ctx) {
            Ok(cel::Value::Bool(true)) => Verdict::Pass,
            Ok(cel::Value::Bool(false)) => Verdict::Blocked(format!("filter.when is false: {text}")),
            Ok(other) => {
                tracing::warn!(%source, event = %full, "filter.when gave {other:?}, not a boolean; delivering");
                Verdict::Pass
            }
            Err(e) => {
                tracing::warn!(%source, event = %full, error = %e, "filter.when failed; delivering");
                Verdict::Pass
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::Disposition;
    use serde_json::json;

    fn filter(yaml: &str) -> Result<Filter, FilterError> {
        Filter::from_yaml(&serde_norway::from_str(yaml).unwrap())
    }

    fn id(event: &str, action: Option<&str>) -> Identity {
        Identity {
            event: event.into(),
            action: action.map(Into::into),
            delivery_id: "d".into(),
            disposition: Disposition::Deliver,
            reply: None,
            meta: Vec::new(),
        }
    }

    #[test]
    fn events_match_by_full_name_type_or_prefix() {
        let f = filter("events: [issues.opened, push, 'incident.*']").unwrap();
        let body = json!({});
        assert_eq!(f.check("s", &id("issues", Some("opened")), &body), Verdict::Pass);
        assert!(matches!(
            f.check("s", &id("issues", Some("closed")), &body),
            Verdict::Blocked(_)
        ));
        assert_eq!(f.check("s", &id("push", None), &body), Verdict::Pass);
        assert_eq!(
            f.check("s", &id("incident", Some("triggered")), &body),
            Verdict::Pass
        );
        assert!(matches!(
            f.check("s", &id("incidental", None), &body),
            Verdict::Blocked(_)
        ));
    }

    #[test]
    fn conditions_see_body_event_and_action() {
        let f =
            filter("when: 'body.workflow_run.conclusion == \"failure\" && action == \"completed\"'").unwrap();
        let run = |c: &str| json!({"workflow_run": {"conclusion": c}});
        assert_eq!(
            f.check("s", &id("workflow_run", Some("completed")), &run("failure")),
            Verdict::Pass
        );
        assert!(matches!(
            f.check("s", &id("workflow_run", Some("completed")), &run("success")),
            Verdict::Blocked(_)
        ));
        // A missing field cannot be evaluated: delivered, not lost.
        assert_eq!(
            f.check("s", &id("workflow_run", Some("completed")), &json!({})),
            Verdict::Pass
        );
        let f = filter("when: 'body.repository.full_name in [\"o/x\", \"o/y\"]'").unwrap();
        assert_eq!(
            f.check(
                "s",
                &id("issues", None),
                &json!({"repository": {"full_name": "o/y"}})
            ),
            Verdict::Pass
        );
        assert!(matches!(
            f.check(
                "s",
                &id("issues", None),
                &json!({"repository": {"full_name": "o/z"}})
            ),
            Verdict::Blocked(_)
        ));
    }

    #[test]
    fn a_bad_expression_is_a_config_error_with_its_position() {
        let e = filter("when: 'body.x == '").unwrap_err();
        assert_eq!(e.field, "when");
        assert!(
            e.message.starts_with("CEL, line 1 column 11: Syntax error"),
            "{}",
            e.message
        );
        assert!(filter("event: [x]").is_err(), "misspelt key");
    }
}
