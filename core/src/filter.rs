//! Per-source filters: which verified events reach the session. An event-type allowlist plus
//! an optional condition over the payload written in CEL (the Common Expression Language, as
//! used by Kubernetes and Google APIs; evaluated by the `cel` crate), for example
//! `body.workflow_run.conclusion == "failure"`. A filtered-out event is answered 2xx and
//! counted, never delivered.

use std::fmt;

use cel::common::value::Val;
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
    /// The `events:` allowlist as written (empty: every type): `hookwire connect` subscribes
    /// the vendor's webhook to these.
    pub fn events(&self) -> &[String] {
        &self.events
    }

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
                let depth = comprehension_depth(program.expression());
                if depth > MAX_NESTED_LOOPS {
                    return Err(FilterError {
                        field: "when",
                        message: format!(
                            "loops nested {depth} deep (all, exists, exists_one, map, filter inside one another); at most {MAX_NESTED_LOOPS} are allowed, as each level multiplies the work by the payload's size"
                        ),
                    });
                }
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
        let vars: [(&'static str, Value); 6] = [
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
        let mut bound = Vec::with_capacity(vars.len());
        for (name, value) in vars {
            let value = cel::objects::TryIntoValue::try_into_value(value).map(Box::<dyn Val>::try_from);
            match value {
                Ok(Ok(v)) => bound.push((name, v)),
                Ok(Err(e)) => {
                    tracing::warn!(%source, error = ?e, "filter: cannot bind `{name}`; delivering");
                    return Verdict::Pass;
                }
                Err(e) => {
                    tracing::warn!(%source, error = %e, "filter: cannot bind `{name}`; delivering");
                    return Verdict::Pass;
                }
            }
        }
        let resolver = Budgeted(bound);
        let mut ctx = cel::Context::default();
        ctx.set_variable_resolver(&resolver);
        if crate::budget::exceeded() {
            tracing::warn!(%source, event = %full, "filter.when not evaluated: no time left in the budget; delivering");
            return Verdict::Pass;
        }
        match program.execute(&ctx) {
            Ok(cel::Value::Bool(true)) => Verdict::Pass,
            Ok(cel::Value::Bool(false)) => Verdict::Blocked(format!("filter.when is false: {text}")),
            Ok(other) => {
                tracing::warn!(%source, event = %full, "filter.when gave {other:?}, not a boolean; delivering");
                Verdict::Pass
            }
            Err(_) if crate::budget::exceeded() => {
                tracing::warn!(%source, event = %full, "filter.when ran past its time budget (limits.render_budget_ms); delivering");
                Verdict::Pass
            }
            Err(e) => {
                tracing::warn!(%source, event = %full, error = %e, "filter.when failed; delivering");
                Verdict::Pass
            }
        }
    }
}

/// Loops (CEL's comprehension macros) nested inside one another, at most: each level can
/// multiply the work by the size of a list in the payload, which the sender chooses.
const MAX_NESTED_LOOPS: usize = 2;

/// How deep comprehensions nest in `e`.
fn comprehension_depth(e: &cel::IdedExpr) -> usize {
    use cel::common::ast::{EntryExpr, Expr};
    let max = |it: &mut dyn Iterator<Item = &cel::IdedExpr>| it.map(comprehension_depth).max().unwrap_or(0);
    match &e.expr {
        Expr::Comprehension(c) => {
            let inside = [&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result];
            // The range is evaluated once, outside the loop; the rest runs per element.
            comprehension_depth(&c.iter_range).max(1 + max(&mut inside[1..].iter().copied()))
        }
        Expr::Call(call) => max(&mut call.target.iter().map(|t| &**t).chain(call.args.iter())),
        Expr::List(list) => max(&mut list.elements.iter()),
        Expr::Map(map) => max(&mut map.entries.iter().flat_map(|entry| match &entry.expr {
            EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
            EntryExpr::StructField(f) => vec![&f.value],
        })),
        Expr::Struct(st) => max(&mut st.entries.iter().flat_map(|entry| match &entry.expr {
            EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
            EntryExpr::StructField(f) => vec![&f.value],
        })),
        Expr::Select(sel) => comprehension_depth(&sel.operand),
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => 0,
    }
}

/// The filter's variables, looked up through the time budget: every reference to `body`
/// inside a loop checks it, so a condition that multiplies work over a large payload stops
/// (its evaluation fails, and the event is delivered as with any failing condition).
struct Budgeted(Vec<(&'static str, Box<dyn Val>)>);

impl cel::context::VariableResolver for Budgeted {
    fn resolve<'b>(&'b self, variable: &str) -> Option<cel::common::value::CowVal<'b, 'b>> {
        if crate::budget::exceeded() {
            return None;
        }
        let (_, v) = self.0.iter().find(|(name, _)| *name == variable)?;
        Some(cel::common::value::CowVal::Borrowed(v.as_ref()))
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
