//! The tools' argument schemas, enforced: `tools/list` publishes each tool's `inputSchema`,
//! and every call is checked against that same value before anything else happens, so a
//! limit written there (a length, a count, a pattern, a range) cannot be advertised without
//! being enforced, nor drift from what is. Only the keywords the schemas use are understood: a
//! schema using any other refuses every call (fail closed), and the unit test
//! `every_keyword_of_every_schema_is_enforced` catches it before that.

use serde_json::Value;

/// Keywords [`check`] enforces.
pub(crate) const ENFORCED: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "uniqueItems",
];

/// Keywords that only describe (nothing to enforce).
pub(crate) const ANNOTATIONS: &[&str] = &["description", "default"];

/// Checks `value` against `schema` (a JSON Schema using the [`ENFORCED`] keywords). The error
/// names the argument (`labels[3]`) and the limit it breaks, and never quotes the value.
pub(crate) fn check(schema: &Value, value: &Value) -> Result<(), String> {
    check_at(schema, value, &mut String::new())
}

fn name(path: &str) -> String {
    if path.is_empty() {
        "the arguments".to_owned()
    } else {
        format!("`{path}`")
    }
}

fn limit(schema: &Value, keyword: &str) -> Option<u64> {
    schema.get(keyword).and_then(Value::as_u64)
}

fn check_at(schema: &Value, value: &Value, path: &mut String) -> Result<(), String> {
    if let Some(keyword) = schema.as_object().and_then(|o| {
        o.keys()
            .find(|k| !ENFORCED.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str()))
    }) {
        return Err(format!(
            "the schema of {} uses `{keyword}`, which is not enforced",
            name(path)
        ));
    }
    if let Some(kind) = schema.get("type").and_then(Value::as_str) {
        let fits = match kind {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "number" => value.is_number(),
            // JSON Schema: a number with no fractional part (`1.0` is an integer).
            "integer" => value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0),
            _ => false,
        };
        if !fits {
            return Err(format!("{} must be of type {kind}", name(path)));
        }
    }
    match value {
        Value::String(s) => check_string(schema, s, path),
        Value::Number(n) => {
            let n = n.as_f64().unwrap_or(f64::NAN);
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                if n.is_nan() || n < min {
                    return Err(format!("{} is {n}, less than its minimum of {min}", name(path)));
                }
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                if n.is_nan() || n > max {
                    return Err(format!("{} is {n}, more than its maximum of {max}", name(path)));
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(max) = limit(schema, "maxItems") {
                if n > max {
                    return Err(format!(
                        "{} has {n} items, more than its maxItems of {max}",
                        name(path)
                    ));
                }
            }
            if let Some(min) = limit(schema, "minItems") {
                if n < min {
                    return Err(format!(
                        "{} has {n} items, fewer than its minItems of {min}",
                        name(path)
                    ));
                }
            }
            if schema.get("uniqueItems") == Some(&Value::Bool(true)) {
                // At most maxItems items here when the schema bounds them (checked above).
                if let Some(i) = (1..items.len()).find(|&i| items[..i].contains(&items[i])) {
                    return Err(format!(
                        "{} repeats item {i}: its items must be unique (uniqueItems)",
                        name(path)
                    ));
                }
            }
            if let Some(item) = schema.get("items") {
                let len = path.len();
                for (i, v) in items.iter().enumerate() {
                    path.push_str(&format!("[{i}]"));
                    check_at(item, v, path)?;
                    path.truncate(len);
                }
            }
            Ok(())
        }
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                if let Some(missing) = required
                    .iter()
                    .filter_map(Value::as_str)
                    .find(|r| !map.contains_key(*r))
                {
                    return Err(format!("`{missing}` is required"));
                }
            }
            for (key, v) in map {
                match properties.and_then(|p| p.get(key)) {
                    Some(sub) => {
                        let len = path.len();
                        if !path.is_empty() {
                            path.push('.');
                        }
                        path.push_str(key);
                        check_at(sub, v, path)?;
                        path.truncate(len);
                    }
                    None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        let key: String = key.chars().take(64).collect();
                        return Err(format!("unknown argument `{key}`"));
                    }
                    None => {}
                }
            }
            Ok(())
        }
        Value::Bool(_) | Value::Null => Ok(()),
    }
}

fn check_string(schema: &Value, s: &str, path: &str) -> Result<(), String> {
    let (min, max) = (limit(schema, "minLength"), limit(schema, "maxLength"));
    if min.is_some() || max.is_some() {
        // JSON Schema counts characters (code points), not bytes.
        let n = s.chars().count() as u64;
        if let Some(max) = max.filter(|&max| n > max) {
            return Err(format!(
                "{} is {n} characters long, more than its maxLength of {max}",
                name(path)
            ));
        }
        if let Some(min) = min.filter(|&min| n < min) {
            return Err(format!(
                "{} is {n} characters long, less than its minLength of {min}",
                name(path)
            ));
        }
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        // The schemas' patterns are anchored; like JSON Schema's, a `$` here is the end of the
        // text (regex has no ECMAScript multiline default to differ on).
        let re = regex::Regex::new(pattern)
            .map_err(|e| format!("the schema's pattern for {}: {e}", name(path)))?;
        if !re.is_match(s) {
            // A pattern says little to whoever broke it: the description says what is meant.
            let meant = schema
                .get("description")
                .and_then(Value::as_str)
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            return Err(format!(
                "{} does not match its pattern {pattern}{meant}",
                name(path)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every keyword of every tool's schema, at any depth, is one `check` enforces or an
    /// annotation; and `uniqueItems` (quadratic) only comes with `maxItems`.
    #[test]
    fn every_keyword_of_every_schema_is_enforced() {
        fn walk(schema: &Value, at: &str) {
            let o = schema
                .as_object()
                .unwrap_or_else(|| panic!("{at}: not an object"));
            for (k, v) in o {
                assert!(
                    ENFORCED.contains(&k.as_str()) || ANNOTATIONS.contains(&k.as_str()),
                    "{at}: `{k}`"
                );
                match k.as_str() {
                    "properties" => v
                        .as_object()
                        .unwrap()
                        .iter()
                        .for_each(|(p, s)| walk(s, &format!("{at}.{p}"))),
                    "items" => walk(v, &format!("{at}[]")),
                    _ => {}
                }
            }
            if o.contains_key("uniqueItems") {
                assert!(o.contains_key("maxItems"), "{at}: uniqueItems without maxItems");
            }
        }
        for t in crate::tools::Tool::ALL {
            walk(&t.definition()["inputSchema"], t.name());
        }
    }

    #[test]
    fn each_keyword_refuses_what_it_should_and_names_the_argument() {
        let schema = json!({
            "type": "object",
            "properties": {
                "s": {"type": "string", "minLength": 2, "maxLength": 3, "pattern": "^[a-z]+$"},
                "n": {"type": "integer", "minimum": 1, "maximum": 5},
                "a": {"type": "array", "items": {"type": "string", "maxLength": 1}, "minItems": 1, "maxItems": 2, "uniqueItems": true},
            },
            "required": ["s"],
            "additionalProperties": false,
        });
        assert_eq!(
            check(&schema, &json!({"s": "ab", "n": 5, "a": ["x", "y"]})),
            Ok(())
        );
        assert_eq!(
            check(&schema, &json!({"s": "ééé"})).map_err(|_| ()),
            Err(()),
            "pattern"
        );
        for (args, needles) in [
            (json!([]), &["the arguments", "object"][..]),
            (json!({}), &["`s`", "required"]),
            (json!({"s": "ab", "x": 1}), &["`x`", "unknown"]),
            (json!({"s": 1}), &["`s`", "string"]),
            (json!({"s": "a"}), &["`s`", "minLength of 2"]),
            (json!({"s": "abcd"}), &["`s`", "maxLength of 3"]),
            (json!({"s": "AB"}), &["`s`", "pattern"]),
            (json!({"s": "ab", "n": 0}), &["`n`", "minimum of 1"]),
            (json!({"s": "ab", "n": 6}), &["`n`", "maximum of 5"]),
            (json!({"s": "ab", "n": 1.5}), &["`n`", "integer"]),
            (json!({"s": "ab", "a": []}), &["`a`", "minItems of 1"]),
            (
                json!({"s": "ab", "a": ["x", "y", "z"]}),
                &["`a`", "maxItems of 2"],
            ),
            (json!({"s": "ab", "a": ["x", "x"]}), &["`a`", "unique"]),
            (
                json!({"s": "ab", "a": ["x", "yy"]}),
                &["`a[1]`", "maxLength of 1"],
            ),
        ] {
            let e = check(&schema, &args).expect_err(&args.to_string());
            for needle in needles {
                assert!(e.contains(needle), "{args}: {e}");
            }
        }
        // A keyword the checker does not know refuses everything.
        let e = check(&json!({"type": "string", "format": "uri"}), &json!("x")).unwrap_err();
        assert!(e.contains("`format`"), "{e}");
    }
}
