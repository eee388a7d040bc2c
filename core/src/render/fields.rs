//! Which parts of a payload the templates read. Found once, from the compiled templates' syntax
//! trees, so the parser can skip everything else: a 10 KB GitHub payload of which a template
//! reads ten fields then costs a scan, not ten thousand allocations. Conservative: a path that
//! is referenced keeps its whole subtree, and anything the walk cannot follow (partials,
//! decorators, the whole `body`) means "keep everything".

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement};
use handlebars::Path;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The part of a JSON document that is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// The whole value.
    All,
    /// Only these keys of an object, each with its own need; other keys are skipped.
    Fields(BTreeMap<String, Need>),
}

impl Default for Need {
    fn default() -> Self {
        Need::Fields(BTreeMap::new())
    }
}

impl Need {
    /// Marks the subtree at `path` (already split, without the leading `body`) as needed.
    pub fn add(&mut self, path: &[&str]) {
        let Need::Fields(fields) = self else { return };
        match path.split_first() {
            None => *self = Need::All,
            Some((first, rest)) => fields.entry((*first).to_owned()).or_default().add(rest),
        }
    }

    /// Adds a dotted path such as `alert.transition`.
    pub fn add_dotted(&mut self, path: &str) {
        let segs: Vec<&str> = path.split('.').collect();
        self.add(&segs);
    }

    /// Adds every payload path a compiled template reads.
    pub fn add_template(&mut self, t: &Template) {
        for e in &t.elements {
            self.add_element(e);
        }
    }

    fn add_element(&mut self, e: &TemplateElement) {
        match e {
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
            TemplateElement::Expression(h)
            | TemplateElement::HtmlExpression(h)
            | TemplateElement::HelperBlock(h) => self.add_helper(h),
            // Partials and decorators can read anything: keep everything.
            _ => *self = Need::All,
        }
    }

    fn add_helper(&mut self, h: &HelperTemplate) {
        self.add_param(&h.name);
        for p in h.params.iter().chain(h.hash.values()) {
            self.add_param(p);
        }
        for t in h.template.iter().chain(h.inverse.iter()) {
            self.add_template(t);
        }
    }

    fn add_param(&mut self, p: &Parameter) {
        match p {
            Parameter::Name(raw) => self.add_raw(raw),
            Parameter::Path(Path::Relative((_, raw))) => self.add_raw(raw),
            Parameter::Path(Path::Local(_)) | Parameter::Literal(_) => {}
            Parameter::Subexpression(s) => self.add_element(&s.element),
            // A parameter kind added by a later handlebars: keep everything.
            #[allow(unreachable_patterns)]
            _ => *self = Need::All,
        }
    }

    /// A path as written in the template: `body.issue.title`, `../body.x`, `@root.body.x`,
    /// `body.commits.[0].id`. Paths that do not start at `body` are relative to a block
    /// whose own parameter was already added whole, or are facts (`event`, `source`).
    fn add_raw(&mut self, raw: &str) {
        let mut r = raw.trim();
        loop {
            if let Some(rest) = r.strip_prefix("../") {
                r = rest;
            } else if let Some(rest) = r.strip_prefix("@root.").or_else(|| r.strip_prefix("this.")) {
                r = rest;
            } else {
                break;
            }
        }
        if r == "body" || r == "@root" || r == "this" {
            *self = Need::All;
        } else if let Some(rest) = r.strip_prefix("body.").or_else(|| r.strip_prefix("body/")) {
            let segs: Vec<&str> = rest
                .split(['.', '/'])
                .map(|s| s.trim_start_matches('[').trim_end_matches(']'))
                .filter(|s| !s.is_empty())
                .collect();
            self.add(&segs);
        }
    }

    /// Parses `bytes`, keeping only what is needed.
    pub fn parse(&self, bytes: &[u8]) -> serde_json::Result<Value> {
        // One whole-buffer UTF-8 check is much cheaper than serde_json's check per string.
        let text = std::str::from_utf8(bytes)
            .map_err(|_| <serde_json::Error as serde::de::Error>::custom("the body is not valid UTF-8"))?;
        let mut de = serde_json::Deserializer::from_str(text);
        let v = Pruned(self).deserialize(&mut de)?;
        de.end()?;
        Ok(v)
    }
}

struct Pruned<'n>(&'n Need);

impl<'de> DeserializeSeed<'de> for Pruned<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.0 {
            Need::All => Value::deserialize(d),
            Need::Fields(_) => d.deserialize_any(PrunedVisitor(self.0)),
        }
    }
}

struct PrunedVisitor<'n>(&'n Need);

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Visitor<'de> for PrunedVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Need::Fields(fields) = self.0 else {
            unreachable!("All is parsed whole")
        };
        let mut out = Map::new();
        while let Some(Key(k)) = map.next_key()? {
            match fields.get(k.as_ref()) {
                Some(child) => {
                    let v = map.next_value_seed(Pruned(child))?;
                    out.insert(k.into_owned(), v);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }

    // Index paths are rare; an array under a partial need is kept whole.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn need_of(src: &str) -> Need {
        let t = Template::compile(src).unwrap();
        let mut n = Need::default();
        n.add_template(&t);
        n
    }

    #[test]
    fn collects_paths_from_expressions_blocks_helpers_and_subexpressions() {
        let n = need_of(
            "{{body.a.b}} {{#if body.c}}{{../body.d.e}}{{/if}}{{#each body.list}}{{name}}{{/each}}\
             {{fence (default body.f body.g.h) \"x\"}}{{event}}{{@root.body.i}}",
        );
        let mut want = Need::default();
        for p in ["a.b", "c", "d.e", "list", "f", "g.h", "i"] {
            want.add_dotted(p);
        }
        assert_eq!(n, want);
        assert_eq!(need_of("{{json body}}"), Need::All);
        assert_eq!(need_of("{{> partial}}"), Need::All);
    }

    #[test]
    fn pruned_parse_keeps_exactly_the_needed_subtrees() {
        let doc = json!({"a": {"b": 1, "x": 2}, "list": [{"name": "n", "y": [1]}], "skip": {"deep": [1, 2]},
                         "s": "é\"\\u00e9", "k\\u0041": 1});
        let bytes = serde_json::to_vec(&doc).unwrap();
        let mut n = Need::default();
        n.add_dotted("a.b");
        n.add_dotted("list");
        n.add_dotted("s");
        n.add_dotted("missing.field");
        assert_eq!(
            n.parse(&bytes).unwrap(),
            json!({"a": {"b": 1}, "list": [{"name": "n", "y": [1]}], "s": "é\"\\u00e9"})
        );
        assert_eq!(Need::All.parse(&bytes).unwrap(), doc);
        assert!(n.parse(b"{\"a\": }").is_err());
        assert!(n.parse(b"{} trailing").is_err());
    }
}
