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
    /// Part of it: scalars are always kept; of an object, the listed keys (each with its own
    /// need) and, when `each` is set, every other key too with that need; of an array, every
    /// element with the `each` need (the whole array when `each` is unset).
    Part {
        /// Needed keys.
        fields: BTreeMap<String, Need>,
        /// The need of every element or value, when all of them are needed (iteration,
        /// `len`, entering with `with`): it keeps lengths and keys exactly.
        each: Option<Box<Need>>,
        /// Only whether it is empty matters (`if`, `unless`, `and`, `or`, `not`): a non-empty
        /// object keeps at least one key (its value as null) so it stays truthy.
        nonempty: bool,
    },
}

impl Default for Need {
    fn default() -> Self {
        Need::Part {
            fields: BTreeMap::new(),
            each: None,
            nonempty: false,
        }
    }
}

impl Need {
    /// The union of two needs.
    pub fn merge(self, other: Need) -> Need {
        match (self, other) {
            (Need::All, _) | (_, Need::All) => Need::All,
            (
                Need::Part {
                    fields: mut a,
                    each: ea,
                    nonempty: na,
                },
                Need::Part {
                    fields: b,
                    each: eb,
                    nonempty: nb,
                },
            ) => {
                for (k, v) in b {
                    let merged = match a.remove(&k) {
                        Some(old) => old.merge(v),
                        None => v,
                    };
                    a.insert(k, merged);
                }
                let each = match (ea, eb) {
                    (Some(x), Some(y)) => Some(Box::new(x.merge(*y))),
                    (x, y) => x.or(y),
                };
                Need::Part {
                    fields: a,
                    each,
                    nonempty: na || nb,
                }
            }
        }
    }

    /// Folds `each` into every listed field, so the parser picks one need per key.
    fn normalise(self) -> Need {
        match self {
            Need::All => Need::All,
            Need::Part {
                fields,
                each,
                nonempty,
            } => {
                let each = each.map(|e| Box::new(e.normalise()));

                let fields = fields
                    .into_iter()
                    .map(|(k, v)| {
                        let v = match &each {
                            Some(e) => v.merge((**e).clone()),
                            None => v,
                        };
                        (k, v.normalise())
                    })
                    .collect();
                Need::Part {
                    fields,
                    each,
                    nonempty,
                }
            }
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

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Each,
}

#[derive(Debug, Clone, Copy)]
enum Use {
    /// The value itself is rendered or compared: keep it whole.
    Value,
    /// Its length or keys matter: keep every element shallowly.
    Shape,
    /// Only its truthiness matters.
    Truthy,
}

/// Collects the payload paths that templates read, from their syntax trees.
#[derive(Debug, Default)]
pub struct NeedBuilder {
    uses: Vec<(Vec<Seg>, Use)>,
    /// Context paths of the enclosing `each` / `with` blocks; empty means the root.
    scopes: Vec<Vec<Seg>>,
    /// Inline partials (`{{#*inline "name"}}`) whose bodies were walked at the root.
    inline: Vec<String>,
}

impl NeedBuilder {
    /// A builder with nothing needed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks a payload path (dotted, without the leading `body`) as read whole.
    pub fn add_dotted(&mut self, path: &str) {
        let mut segs = vec![Seg::Key("body".into())];
        segs.extend(path.split('.').map(|s| Seg::Key(s.to_owned())));
        self.uses.push((segs, Use::Value));
    }

    /// Adds every payload path a compiled template reads.
    pub fn add_template(&mut self, t: &Template) {
        for e in &t.elements {
            self.element(e);
        }
    }

    /// The payload's need (the context's `body`).
    pub fn build(&self) -> Need {
        let mut root = Need::default();
        for (segs, u) in &self.uses {
            insert(&mut root, segs, *u);
        }
        match root {
            Need::All => Need::All,
            Need::Part { mut fields, each, .. } => {
                if each.is_some() {
                    return Need::All;
                }
                fields.remove("body").unwrap_or_default().normalise()
            }
        }
    }

    fn element(&mut self, e: &TemplateElement) {
        match e {
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
            TemplateElement::Expression(h)
            | TemplateElement::HtmlExpression(h)
            | TemplateElement::HelperBlock(h) => self.helper(h),
            // An inline partial defined at the root: its body reads what it names, where it
            // is used; only uses at the root (same context) are followed.
            TemplateElement::DecoratorBlock(d)
                if self.scopes.is_empty() && matches!(&d.name, Parameter::Name(n) if n == "inline") =>
            {
                match (d.params.first(), &d.template) {
                    (Some(Parameter::Literal(Value::String(name))), Some(t)) => {
                        self.inline.push(name.clone());
                        self.add_template(t);
                    }
                    _ => self.uses.push((Vec::new(), Use::Value)),
                }
            }
            TemplateElement::PartialExpression(d)
                if self.scopes.is_empty()
                    && d.params.is_empty()
                    && d.hash.is_empty()
                    && matches!(&d.name, Parameter::Name(n) | Parameter::Path(Path::Relative((_, n))) if self.inline.contains(n)) =>
                {}
            // Other partials and decorators can read anything: keep everything.
            _ => self.uses.push((Vec::new(), Use::Value)),
        }
    }

    fn helper(&mut self, h: &HelperTemplate) {
        let name = match &h.name {
            Parameter::Name(n) => Some(n.as_str()),
            _ => None,
        };
        let simple = h.params.is_empty() && h.hash.is_empty() && h.template.is_none();
        if name.is_none() || simple {
            // `{{path}}`: the value is rendered.
            self.param(&h.name, Use::Value);
        }
        let name = name.unwrap_or("");
        let scoped = matches!(name, "each" | "with") && h.block_param.is_none();
        let truthy = matches!(name, "if" | "unless" | "and" | "or" | "not");
        for (i, p) in h.params.iter().enumerate() {
            // Iterating or entering a value depends on its shape; what is read inside is
            // collected in its own scope below.
            let u = if truthy {
                Use::Truthy
            } else if name == "len" || (scoped && i == 0) {
                Use::Shape
            } else {
                Use::Value
            };
            self.param(p, u);
        }

        for p in h.hash.values() {
            self.param(p, Use::Value);
        }
        match (scoped, h.params.first()) {
            (true, Some(Parameter::Path(Path::Relative((_, raw))))) => {
                let Some(mut scope) = self.resolve(raw) else {
                    return;
                };
                if name == "each" {
                    scope.push(Seg::Each);
                }
                self.scopes.push(scope);
                if let Some(t) = &h.template {
                    self.add_template(t);
                }
                self.scopes.pop();
            }
            _ => {
                if matches!(name, "each" | "with") {
                    // Block parameters or a computed list: keep what it iterates whole.
                    if let Some(p) = h.params.first() {
                        self.param(p, Use::Value);
                    }
                }
                if let Some(t) = &h.template {
                    self.add_template(t);
                }
            }
        }
        if let Some(t) = &h.inverse {
            self.add_template(t);
        }
    }

    fn param(&mut self, p: &Parameter, u: Use) {
        match p {
            Parameter::Name(raw) | Parameter::Path(Path::Relative((_, raw))) => {
                if let Some(segs) = self.resolve(raw) {
                    self.uses.push((segs, u));
                }
            }
            Parameter::Path(Path::Local(_)) | Parameter::Literal(_) => {}
            Parameter::Subexpression(s) => self.element(&s.element),
            // A parameter kind added by a later handlebars: keep everything.
            #[allow(unreachable_patterns)]
            _ => self.uses.push((Vec::new(), Use::Value)),
        }
    }

    /// A path as written (`body.issue.title`, `name` inside `each`, `../x`, `@root.body.x`,
    /// `this`, `body.commits.[0].id`) as a context path; `None` for `@index` and the like.
    fn resolve(&self, raw: &str) -> Option<Vec<Seg>> {
        let mut r = raw.trim();
        if r.starts_with('@') && !r.starts_with("@root") {
            return None;
        }
        let mut depth = self.scopes.len();
        let mut base = None;
        loop {
            if let Some(rest) = r.strip_prefix("../") {
                depth = depth.saturating_sub(1);
                r = rest;
            } else if let Some(rest) = r.strip_prefix("@root") {
                base = Some(Vec::new());
                r = rest.trim_start_matches(['.', '/']);
            } else if let Some(rest) = r.strip_prefix("this") {
                r = rest.trim_start_matches(['.', '/']);
            } else if let Some(rest) = r.strip_prefix("./") {
                r = rest;
            } else {
                break;
            }
        }
        let mut segs = match base {
            Some(b) => b,
            None if depth == 0 => Vec::new(),
            None => self.scopes[depth - 1].clone(),
        };
        segs.extend(
            r.split(['.', '/'])
                .map(|s| s.trim_start_matches('[').trim_end_matches(']'))
                .filter(|s| !s.is_empty())
                .map(|s| Seg::Key(s.to_owned())),
        );
        Some(segs)
    }
}

fn insert(node: &mut Need, segs: &[Seg], u: Use) {
    let Need::Part {
        fields,
        each,
        nonempty,
    } = node
    else {
        return;
    };
    match segs.split_first() {
        None => match u {
            Use::Value => *node = Need::All,
            Use::Shape => {
                each.get_or_insert_with(Box::default);
            }
            Use::Truthy => *nonempty = true,
        },

        Some((Seg::Key(k), rest)) => insert(fields.entry(k.clone()).or_default(), rest, u),
        Some((Seg::Each, rest)) => insert(each.get_or_insert_with(Box::default), rest, u),
    }
}

/// The need of key `k`: templates read a few keys of an object that may hold a hundred, so
/// most keys are compared with a handful of names, by length first, rather than searched (a
/// search compares whole keys at each step).
fn field<'n>(fields: &'n BTreeMap<String, Need>, k: &str) -> Option<&'n Need> {
    if fields.len() <= 32 {
        fields
            .iter()
            .find(|(f, _)| super::direct::same_key(f, k))
            .map(|(_, n)| n)
    } else {
        fields.get(k)
    }
}

struct Pruned<'n>(&'n Need);

impl<'de> DeserializeSeed<'de> for Pruned<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.0 {
            Need::All => Value::deserialize(d),
            Need::Part { .. } => d.deserialize_any(PrunedVisitor(self.0)),
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
        let Need::Part {
            fields,
            each,
            nonempty,
        } = self.0
        else {
            unreachable!("All is parsed whole")
        };
        // Sized for the keys it may keep: growing an index map rehashes every key.
        let mut out = Map::with_capacity(if each.is_some() { 8 } else { fields.len() });
        let mut marker = None;
        while let Some(Key(k)) = map.next_key()? {
            match field(fields, &k).or(each.as_deref()) {
                Some(child) => {
                    let v = map.next_value_seed(Pruned(child))?;
                    out.insert(k.into_owned(), v);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                    if *nonempty && marker.is_none() {
                        marker = Some(k.into_owned());
                    }
                }
            }
        }
        // Keeps a non-empty object truthy when none of its needed keys is present.
        if let (true, Some(k)) = (out.is_empty(), marker) {
            out.insert(k, Value::Null);
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        match self.0 {
            Need::Part { each: Some(each), .. } => {
                while let Some(v) = seq.next_element_seed(Pruned(each))? {
                    out.push(v);
                }
            }
            // Only index paths (`list.[0].x`), which are rare: keep the array whole.
            _ => {
                while let Some(v) = seq.next_element::<Value>()? {
                    out.push(v);
                }
            }
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
        let mut b = NeedBuilder::new();
        b.add_template(&Template::compile(src).unwrap());
        b.build()
    }

    fn part(fields: &[(&str, Need)], each: Option<Need>) -> Need {
        Need::Part {
            fields: fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
            each: each.map(Box::new),
            nonempty: false,
        }
    }

    #[test]
    fn collects_values_shapes_and_scoped_paths() {
        let n = need_of(
            "{{body.a.b}} {{#if body.c}}{{../body.d}}{{/if}}{{#each body.list}}{{name}}{{@index}}{{/each}}\
             {{fence (default body.f body.g.h) \"x\"}}{{event}}{{@root.body.i}}{{len body.k}}",
        );
        let shape = || part(&[], Some(Need::default()));
        let truthy = Need::Part {
            fields: BTreeMap::new(),
            each: None,
            nonempty: true,
        };
        let want = part(
            &[
                ("a", part(&[("b", Need::All)], None)),
                ("c", truthy),
                ("d", Need::All),
                ("list", part(&[], Some(part(&[("name", Need::All)], None)))),
                ("f", Need::All),
                ("g", part(&[("h", Need::All)], None)),
                ("i", Need::All),
                ("k", shape()),
            ],
            None,
        );
        assert_eq!(n, want);
        assert_eq!(need_of("{{json body}}"), Need::All);
        assert_eq!(need_of("{{> partial}}"), Need::All);
        let inline = need_of("{{#*inline \"w\"}}{{body.a}}{{/inline}}{{> w}}{{body.b}}");
        assert_eq!(inline, part(&[("a", Need::All), ("b", Need::All)], None));
        assert_eq!(
            need_of("{{#*inline \"w\"}}{{x}}{{/inline}}{{#each body.l}}{{> w}}{{/each}}"),
            Need::All
        );
        assert_eq!(
            need_of("{{#each body.l as |x|}}{{x.y}}{{/each}}"),
            part(&[("l", Need::All)], None)
        );
    }

    #[test]
    fn pruned_parse_keeps_exactly_the_needed_subtrees() {
        let doc = json!({"a": {"b": 1, "x": 2}, "list": [{"name": "n", "y": [1]}, {"name": "m"}],
                         "skip": {"deep": [1, 2]}, "s": "é\"\\u00e9", "o": {"p": {"q": 1}, "r": 2}});
        let bytes = serde_json::to_vec(&doc).unwrap();
        let n = need_of("{{body.a.b}}{{#each body.list}}{{name}}{{/each}}{{body.s}}{{#if body.o}}y{{/if}}{{body.missing.field}}");
        assert_eq!(
            n.parse(&bytes).unwrap(),
            json!({"a": {"b": 1}, "list": [{"name": "n"}, {"name": "m"}], "s": "é\"\\u00e9", "o": {"p": null}})
        );
        assert_eq!(Need::All.parse(&bytes).unwrap(), doc);
        assert!(n.parse(b"{\"a\": }").is_err());
        assert!(n.parse(b"{} trailing").is_err());
        assert!(n.parse(b"{\"s\": \"\xff\"}").is_err());
    }
}
