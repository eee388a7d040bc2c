//! Templates: `templates/<type>/<event>.hbs`, compiled once at start-up. A template is an
//! optional front matter of `meta` entries (key → template) between `---` lines, then the
//! `content` template. Handlebars runs in strict mode with HTML escaping off; helpers are
//! defined in [`helpers`] and documented in `templates/README.md`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use handlebars::{Context, Handlebars, RenderError, RenderErrorReason};
use serde_json::{Map, Value};

mod direct;
pub mod fields;
mod helpers;

use crate::adapter::Identity;
use crate::diagnostics::Problems;
use crate::sanitize;

/// `meta` keys hookwire sets on every event; templates may not set them.
pub const BUILTIN_META: &[&str] = &["source_name", "event", "delivery_id"];

/// The built-in templates shipped in the binary, as (relative path, text).
pub type EmbeddedTemplates = &'static [(&'static str, &'static str)];

/// The built-in templates the given template folders use: theirs, the folders their partials
/// (`{{> other/_part}}`) name, and the top-level ones (`default`). Compiling only these is
/// most of a local channel's start-up: handlebars' parser costs about 2 ms per vendor.
pub fn used_by<'a>(
    embedded: EmbeddedTemplates,
    folders: impl IntoIterator<Item = &'a str>,
) -> Vec<(&'static str, &'static str)> {
    let folder = |rel: &str| rel.split_once('/').map(|(f, _)| f.to_owned());
    let mut wanted: std::collections::HashSet<String> = folders.into_iter().map(str::to_owned).collect();
    let mut grown = true;
    while grown {
        grown = false;
        for (rel, text) in embedded {
            if !folder(rel).is_some_and(|f| wanted.contains(&f)) {
                continue;
            }
            for part in text.split("{{").skip(1) {
                let name = part.trim_start_matches(['#', '~']).trim_start();
                if let Some(name) = name.strip_prefix('>') {
                    if let Some(f) = folder(name.trim_start()) {
                        grown |= wanted.insert(f);
                    }
                }
            }
        }
    }
    embedded
        .iter()
        .filter(|(rel, _)| folder(rel).is_none_or(|f| wanted.contains(&f)))
        .copied()
        .collect()
}

#[derive(Debug)]
struct Compiled {
    /// The content, lowered for the direct renderer when it is in its subset.
    content: Option<direct::Program>,
    /// The meta entries, in front-matter order.
    meta: Vec<MetaTemplate>,
}

#[derive(Debug)]
struct MetaTemplate {
    key: String,
    /// The registered template name.
    reg: String,
    /// Set when the template is one plain path (`{{body.issue.html_url}}`), the common case:
    /// the value is then read directly, with strict mode's answer for a missing path.
    path: Option<Vec<String>>,
    /// The template lowered for the direct renderer, when it is in its subset.
    program: Option<direct::Program>,
}

/// Top-level names of the render context (see [`Templates::context`]).
const CONTEXT_KEYS: &[&str] = &[
    "body",
    "source",
    "type",
    "event",
    "action",
    "event_name",
    "delivery_id",
    "received_at",
];

/// `{{a.b.c}}` and nothing else, starting at a context key: the path's segments.
fn plain_path(tpl: &str) -> Option<Vec<String>> {
    let inner = tpl.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let segs: Vec<String> = inner.split('.').map(str::to_owned).collect();
    let ident = |s: &String| {
        let mut b = s.bytes();
        matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
            && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
    };
    (segs.iter().all(ident) && CONTEXT_KEYS.contains(&segs[0].as_str())).then_some(segs)
}

/// Every template, compiled.
#[derive(Debug)]
pub struct Templates {
    hb: Handlebars<'static>,
    compiled: HashMap<String, Compiled>,
    /// Template folders `templates_dir` added to or replaced in ("" for the top level).
    customised: HashSet<String>,
}

/// What a template produced, before sanitising.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The event text.
    pub content: String,
    /// Attributes, in template order, empty values already dropped.
    pub meta: Vec<(String, String)>,
}

/// The facts a template sees besides the payload.
#[derive(Debug)]
pub struct Facts<'a> {
    /// The configured source name.
    pub source: &'a str,
    /// The source's adapter type (the template folder).
    pub type_name: &'a str,
    /// The adapter's names for the event.
    pub identity: &'a Identity,
    /// `event.action`, computed once per event by the caller.
    pub event_name: &'a str,
    /// When hookwire received it, RFC 3339.
    pub received_at: &'a str,
    /// The request headers the source exposes to templates (`headers:`), by lowercase name.
    pub headers: Value,
}

impl Templates {
    /// Compiles the embedded templates, then the files of `override_dir` (same layout) on top.
    /// Problems are added to `p`, each naming the template file and line.
    pub fn load(embedded: &[(&str, &str)], override_dir: Option<&Path>, p: &mut Problems<'_>) -> Templates {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        helpers::register(&mut hb);
        let mut t = Templates {
            hb,
            compiled: HashMap::new(),
            customised: HashSet::new(),
        };
        for &(rel, text) in embedded {
            t.add(rel, text, Path::new("templates").join(rel), p);
        }
        if let Some(dir) = override_dir {
            match files_under(dir) {
                Ok(files) => {
                    for (rel, path) in files {
                        t.customised
                            .insert(rel.rsplit_once('/').map_or("", |(f, _)| f).to_owned());
                        match std::fs::read_to_string(&path) {
                            Ok(text) => t.add(&rel, &text, path, p),
                            Err(e) => p.add_at(&path, None, "", format!("cannot read template: {e}")),
                        }
                    }
                }
                Err(e) => p.add(
                    "templates_dir",
                    format!("cannot read {}: {e}", dir.display()),
                    None,
                ),
            }
        }
        // Once every partial a template may include is registered.
        let hb = &t.hb;
        for (name, c) in &mut t.compiled {
            c.content = hb.get_template(name).and_then(|t| direct::lower(t, hb));
            // A plain path is read directly; handlebars renders it when it is a list or object.
            for m in c.meta.iter_mut().filter(|m| m.path.is_none()) {
                m.program = hb.get_template(&m.reg).and_then(|t| direct::lower(t, hb));
            }
        }
        t
    }

    fn add(&mut self, rel: &str, text: &str, file: PathBuf, p: &mut Problems<'_>) {
        let Some(name) = rel.strip_suffix(".hbs") else {
            return;
        };
        let (front, body, body_line) = split_front_matter(text);
        let mut meta = Vec::new();
        if let Some(front) = front {
            match serde_norway::from_str::<serde_norway::Mapping>(front) {
                Ok(map) => {
                    for (k, v) in map {
                        let (Some(key), Some(tpl)) = (k.as_str(), v.as_str()) else {
                            p.add_at(
                                &file,
                                Some(2),
                                "meta",
                                "meta entries must be `key: \"template\"` strings".into(),
                            );
                            continue;
                        };
                        if !sanitize::is_valid_meta_key(key) || key == "source" || BUILTIN_META.contains(&key)
                        {
                            p.add_at(
                                &file,
                                Some(2),
                                "meta",
                                format!(
                                    "meta key `{key}` is not allowed: keys match ^[a-zA-Z_][a-zA-Z0-9_]*$ and may not be `source` or {}",
                                    BUILTIN_META.join(", ")
                                ),
                            );
                            continue;
                        }
                        let reg = format!("{name}#meta.{key}");
                        match self.hb.register_template_string(&reg, tpl) {
                            Ok(()) => meta.push(MetaTemplate {
                                key: key.to_owned(),
                                program: None,
                                reg,
                                path: plain_path(tpl),
                            }),
                            Err(e) => p.add_at(&file, Some(2), &format!("meta.{key}"), e.to_string()),
                        }
                    }
                }
                Err(e) => p.add_at(
                    &file,
                    Some(2),
                    "meta",
                    format!("front matter is not a YAML mapping: {e}"),
                ),
            }
        }
        if let Err(e) = self.hb.register_template_string(name, body) {
            let line = e.pos().map(|(l, _)| l + body_line - 1);
            p.add_at(
                &file,
                line,
                "",
                format!("template does not compile: {}", e.reason()),
            );
            return;
        }
        self.compiled
            .insert(name.to_owned(), Compiled { content: None, meta });
    }

    /// Every payload path the templates of one source type read (their content and meta),
    /// so ingest can skip the rest of the payload. The global `default` is not included:
    /// rendering with it re-parses the payload whole.
    pub fn need_for_type(&self, type_name: &str) -> fields::NeedBuilder {
        let mut need = fields::NeedBuilder::new();
        let prefix = format!("{type_name}/");
        for (name, compiled) in &self.compiled {
            if !name.starts_with(&prefix) {
                continue;
            }
            for reg in std::iter::once(name).chain(compiled.meta.iter().map(|m| &m.reg)) {
                if let Some(t) = self.hb.get_template(reg) {
                    need.add_template(t);
                }
            }
        }
        need
    }

    /// Whether every template a source of `type_name` may render is a shipped one: none of
    /// its folder, of the top level (`default`) or of the folders its partials name comes
    /// from `templates_dir`. Shipped templates take time linear in the payload, so the
    /// pipeline may render them without a pool thread.
    pub fn shipped(&self, type_name: &str) -> bool {
        if self.customised.is_empty() {
            return true;
        }
        // The folders it may render from: its own, the top level, and those their partials
        // name, transitively.
        let mut folders = HashSet::from([type_name.to_owned(), String::new()]);
        let mut todo: Vec<String> = folders.iter().cloned().collect();
        while let Some(folder) = todo.pop() {
            let mut found = HashSet::new();
            for (name, compiled) in &self.compiled {
                // A folder holds its subfolders' templates (`shopify/orders/create`).
                let in_folder = match name.rsplit_once('/') {
                    Some((f, _)) => {
                        !folder.is_empty()
                            && f.strip_prefix(folder.as_str())
                                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                    }
                    None => folder.is_empty(),
                };
                if !in_folder {
                    continue;
                }
                for reg in std::iter::once(name).chain(compiled.meta.iter().map(|m| &m.reg)) {
                    if let Some(t) = self.hb.get_template(reg) {
                        partial_folders(t, &mut found);
                    }
                }
            }
            for f in found {
                if folders.insert(f.clone()) {
                    todo.push(f);
                }
            }
        }
        if folders.contains(ANY_FOLDER) {
            return false;
        }
        // A folder under a customised one (`shopify/orders`) is customised too.
        !self.customised.iter().any(|c| {
            folders
                .iter()
                .any(|f| f == c || f.starts_with(&format!("{c}/")) || c.starts_with(&format!("{f}/")))
        })
    }

    /// Whether a template exists under this name (`github/issues`).
    pub fn has(&self, name: &str) -> bool {
        self.compiled.contains_key(name)
    }

    /// The templates to try for an event, most specific first: `<type>/<event>.<action>`,
    /// `<type>/<event>`, `<type>/default`, `default`. Only those that exist.
    pub fn candidates(&self, type_name: &str, identity: &Identity) -> Vec<String> {
        let mut candidates = Vec::with_capacity(4);
        if let Some(a) = &identity.action {
            candidates.push(format!("{type_name}/{}.{a}", identity.event));
        }
        candidates.push(format!("{type_name}/{}", identity.event));
        candidates.push(format!("{type_name}/default"));
        candidates.push("default".to_owned());
        candidates.retain(|c| self.has(c));
        candidates
    }

    /// The render context: the payload as `body` plus the facts. Built once per event and
    /// shared by every template tried (no copy of the payload).
    pub fn context(body: Value, facts: &Facts<'_>) -> Context {
        let mut ctx = Map::with_capacity(9);
        ctx.insert("body".into(), body);
        ctx.insert("source".into(), facts.source.into());
        ctx.insert("type".into(), facts.type_name.into());
        ctx.insert("event".into(), facts.identity.event.clone().into());
        ctx.insert(
            "action".into(),
            facts
                .identity
                .action
                .clone()
                .map(Value::from)
                .unwrap_or(Value::Null),
        );
        ctx.insert("event_name".into(), facts.event_name.into());
        ctx.insert("delivery_id".into(), facts.identity.delivery_id.clone().into());
        ctx.insert("received_at".into(), facts.received_at.into());
        ctx.insert("headers".into(), facts.headers.clone());
        Context::from(Value::Object(ctx))
    }

    /// Renders one template (content and meta) over a context. The content may grow to
    /// `max_output` bytes: a template that writes more (a loop over a hostile payload) stops
    /// there with an error, as it does when the thread's [`crate::budget`] is spent.
    pub fn render(&self, template: &str, ctx: &Context, max_output: usize) -> Result<Rendered, RenderError> {
        let compiled = self
            .compiled
            .get(template)
            .ok_or_else(|| RenderError::from(RenderErrorReason::TemplateNotFound(template.to_owned())))?;
        let direct = compiled
            .content
            .as_ref()
            .and_then(|p| p.render(ctx.data(), max_output).ok());
        let content = match direct {
            Some(content) => content,
            None => {
                let mut out = Capped::new(max_output);
                if let Err(e) = self.hb.render_with_context_to_write(template, ctx, &mut out) {
                    return Err(match out.stopped {
                        Some(why) => RenderErrorReason::Other(why.to_owned()).into(),
                        None => e,
                    });
                }
                out.into_string()
            }
        };
        let mut meta = Vec::with_capacity(compiled.meta.len());
        for m in &compiled.meta {
            let value = match m.path.as_deref().map(|p| lookup(ctx.data(), p)) {
                Some(Ok(Some(v))) => v,
                Some(Err(missing)) => return Err(RenderErrorReason::MissingVariable(Some(missing)).into()),
                // Not a plain path, or an array/object.
                None | Some(Ok(None)) => match m
                    .program
                    .as_ref()
                    .and_then(|p| p.render(ctx.data(), usize::MAX).ok())
                {
                    Some(v) => v,
                    None => self.hb.render_with_context(&m.reg, ctx)?,
                },
            };
            if let Some(v) = sanitize::meta_value(value) {
                meta.push((m.key.clone(), v));
            }
        }
        Ok(Rendered { content, meta })
    }
}

/// Stands for any folder: a partial whose name is computed.
const ANY_FOLDER: &str = "*";

/// The folders of the partials `t` names (`{{> gitea/_push}}`: `gitea`; a name without a
/// folder: the top level, ""; a computed name: [`ANY_FOLDER`]).
fn partial_folders(t: &handlebars::template::Template, out: &mut HashSet<String>) {
    use handlebars::template::{Parameter, TemplateElement};
    for e in &t.elements {
        let nested = match e {
            TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                let folder = match &d.name {
                    Parameter::Name(n) => n.rsplit_once('/').map_or("", |(f, _)| f),
                    _ => ANY_FOLDER,
                };
                out.insert(folder.to_owned());
                [d.template.as_ref(), None]
            }
            TemplateElement::HelperBlock(h) => [h.template.as_ref(), h.inverse.as_ref()],
            TemplateElement::DecoratorBlock(d) => [d.template.as_ref(), None],
            _ => [None, None],
        };
        for t in nested.into_iter().flatten() {
            partial_folders(t, out);
        }
    }
}

/// Where a template writes its content: stops the render once `max` bytes are written or the
/// thread's time budget is spent, so a template over a hostile payload can neither fill
/// memory nor hold a pool thread.
struct Capped {
    buf: Vec<u8>,
    max: usize,
    stopped: Option<&'static str>,
}

impl Capped {
    fn new(max: usize) -> Self {
        Capped {
            buf: Vec::with_capacity(max.min(4096)),
            max,
            stopped: None,
        }
    }

    fn into_string(self) -> String {
        // Handlebars writes only `&str` pieces, and nothing is cut mid-piece.
        String::from_utf8(self.buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

impl std::io::Write for Capped {
    fn write(&mut self, piece: &[u8]) -> std::io::Result<usize> {
        if crate::budget::exceeded() {
            self.stopped = Some(helpers::OVER_BUDGET);
        } else if self.buf.len() + piece.len() > self.max {
            self.stopped = Some("the template wrote more than its output cap (4 x limits.max_content_bytes)");
        }
        if let Some(why) = self.stopped {
            return Err(std::io::Error::other(why));
        }
        self.buf.extend_from_slice(piece);
        Ok(piece.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The text of a scalar at `path`, as handlebars would render it; `Ok(None)` for arrays
/// and objects; `Err(path)` when the path does not exist (strict mode's error).
fn lookup(root: &Value, path: &[String]) -> Result<Option<String>, String> {
    let mut v = root;
    for seg in path {
        v = match v {
            Value::Object(m) => direct::member(m, seg),
            _ => None,
        }
        .ok_or_else(|| path.join("."))?;
    }
    Ok(match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        Value::Array(_) | Value::Object(_) => None,
    })
}

/// Splits `---\n<yaml>\n---\n<body>`; returns (front matter, body, 1-based line of the body).
fn split_front_matter(text: &str) -> (Option<&str>, &str, usize) {
    let Some(rest) = text.strip_prefix("---\n") else {
        return (None, text, 1);
    };
    if let Some(body) = rest.strip_prefix("---\n") {
        return (Some(""), body, 3);
    }
    let Some(end) = rest.find("\n---\n") else {
        return (None, text, 1);
    };
    let front = &rest[..end];
    let body = &rest[end + 5..];
    (Some(front), body, front.lines().count() + 3)
}

fn files_under(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if path.is_dir() {
            let prefix = entry.file_name().to_string_lossy().into_owned();
            for (rel, p) in files_under(&path)? {
                out.push((format!("{prefix}/{rel}"), p));
            }
        } else if path.extension().is_some_and(|e| e == "hbs") {
            out.push((entry.file_name().to_string_lossy().into_owned(), path));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::Disposition;
    use serde_json::json;

    fn templates(files: EmbeddedTemplates) -> (Templates, Result<(), crate::diagnostics::ConfigErrors>) {
        let path = Path::new("test.yaml");
        let mut p = Problems::new(path, "");
        let t = Templates::load(files, None, &mut p);
        (t, p.finish())
    }

    #[test]
    fn only_sources_whose_templates_and_partials_are_all_shipped_count_as_shipped() {
        const SHIPPED: EmbeddedTemplates = &[
            ("default.hbs", "{{event}}"),
            ("github/issues.hbs", "{{body.a}}"),
            ("gitea/_push.hbs", "{{body.b}} {{> common/_footer}}"),
            ("common/_footer.hbs", "{{body.d}}"),
            ("forgejo/push.hbs", "{{> gitea/_push}}"),
            ("shopify/orders/create.hbs", "{{> shopify/_order}}"),
            ("shopify/_order.hbs", "{{body.c}}"),
            ("shopify/orders/paid.hbs", "{{body.c}} {{> common/_footer}}"),
        ];
        let dir = std::env::temp_dir().join(format!("hookwire-shipped-{}", std::process::id()));
        let load = |overrides: &[&str]| {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            for rel in overrides {
                let file = dir.join(rel);
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(file, "{{body.x}}").unwrap();
            }
            let mut p = Problems::new(Path::new("test.yaml"), "");
            let t = Templates::load(SHIPPED, Some(&dir), &mut p);
            p.finish().unwrap();
            t
        };
        let shipped = |t: &Templates| {
            ["github", "gitea", "forgejo", "shopify", "mine"]
                .into_iter()
                .filter(|ty| t.shipped(ty))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            shipped(&load(&[])),
            ["github", "gitea", "forgejo", "shopify", "mine"]
        );
        // A partial another type uses; a folder inside a type's; a type of the user's own.
        assert_eq!(
            shipped(&load(&[
                "gitea/_push.hbs",
                "shopify/orders/refunded.hbs",
                "mine/issues.hbs"
            ])),
            ["github"]
        );
        // A partial of a partial.
        assert_eq!(shipped(&load(&["common/_footer.hbs"])), ["github", "mine"]);
        // The top level (`default`) is every type's last candidate.
        assert!(shipped(&load(&["default.hbs"])).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn identity() -> Identity {
        Identity {
            event: "issues".into(),
            action: Some("opened".into()),
            delivery_id: "d-1".into(),
            disposition: Disposition::Deliver,
            reply: None,
            meta: Vec::new(),
        }
    }

    fn facts(id: &Identity) -> Facts<'_> {
        Facts {
            source: "gh",
            type_name: "github",
            identity: id,
            event_name: "issues.opened",
            received_at: "2026-01-01T00:00:00Z",
            headers: Value::Object(Default::default()),
        }
    }

    #[test]
    fn front_matter_meta_and_strict_mode() {
        let (t, r) = templates(&[(
            "github/issues.hbs",
            "---\nrepo: \"{{body.repo}}\"\nmissing: \"{{default body.nope}}\"\n---\n{{event_name}} in {{body.repo}}{{#if body.nope}}x{{/if}}",
        )]);
        r.unwrap();
        let id = identity();
        let name = t.candidates("github", &id).remove(0);
        assert_eq!(name, "github/issues");
        let out = t
            .render(
                &name,
                &Templates::context(json!({"repo": "a/b"}), &facts(&id)),
                1 << 20,
            )
            .unwrap();
        assert_eq!(out.content, "issues.opened in a/b");
        assert_eq!(out.meta, vec![("repo".to_owned(), "a/b".to_owned())]);
        // Strict mode: a plain reference to a missing field is an error.
        let (t, _) = templates(&[("github/default.hbs", "{{body.nope}}")]);
        assert!(t
            .render(
                "github/default",
                &Templates::context(json!({}), &facts(&id)),
                1 << 20
            )
            .is_err());
    }

    #[test]
    fn bad_meta_keys_and_syntax_are_reported_with_file_and_line() {
        let (_, r) = templates(&[
            (
                "github/a.hbs",
                "---\nsource: \"x\"\n9bad: \"y\"\nevent: \"z\"\n---\nok",
            ),
            ("github/b.hbs", "line1\n{{#if x}}\nno close"),
        ]);
        let errs = r.unwrap_err().0;
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs
            .iter()
            .any(|e| e.file.ends_with("github/b.hbs") && e.message.contains("does not compile")));
    }

    #[test]
    fn plain_path_meta_matches_handlebars() {
        let files: EmbeddedTemplates = &[
            ("x/fast.hbs", "---\na: \"{{body.s}}\"\nb: \"{{body.n}}\"\nc: \"{{body.t}}\"\nd: \"{{body.z}}\"\ne: \"{{event}}\"\n---\n."),
            ("x/missing.hbs", "---\na: \"{{body.nope}}\"\n---\n."),
        ];
        let (t, r) = templates(files);
        r.unwrap();
        let id = identity();
        let ctx = Templates::context(json!({"s": "str", "n": 12.5, "t": true, "z": null}), &facts(&id));
        assert!(t.compiled["x/fast"].meta.iter().all(|m| m.path.is_some()));
        let fast = t.render("x/fast", &ctx, 1 << 20).unwrap();
        assert_eq!(
            fast.meta,
            vec![
                ("a".into(), "str".into()),
                ("b".into(), "12.5".into()),
                ("c".into(), "true".into()),
                ("e".into(), "issues".into())
            ]
        );
        for (path, (_, got)) in ["body.s", "body.n", "body.t", "event"].iter().zip(&fast.meta) {
            let by_handlebars =
                t.hb.render_template(&format!("{{{{{path}}}}}"), ctx.data())
                    .unwrap();
            assert_eq!(&by_handlebars, got, "{path}");
        }
        assert_eq!(
            t.hb.render_template("{{body.z}}", ctx.data()).unwrap(),
            "",
            "null renders empty"
        );
        assert!(
            t.render("x/missing", &ctx, 1 << 20).is_err(),
            "a missing path stays a strict-mode error"
        );
    }

    /// Renders every template of each type over every fixture payload of that vendor, from the
    /// pruned parse and from the full parse, and requires the same result (or both failing).
    /// Returns how many renderings were compared and how many of them succeeded.
    fn compare_pruned_with_full(t: &Templates, cases: &[(&str, PathBuf, &str)]) -> (usize, usize) {
        let (mut compared, mut rendered) = (0, 0);
        for (type_name, dir, identity_field) in cases {
            let mut builder = t.need_for_type(type_name);
            builder.add_dotted(identity_field);
            let need = builder.build();
            assert_ne!(need, fields::Need::All, "{type_name}: expected a partial need");
            let mut files: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .collect();
            files.retain(|f| f.extension().is_some_and(|x| x == "json"));
            files.sort();
            for file in files {
                let raw = std::fs::read(&file).unwrap();
                let full: Value = serde_json::from_slice(&raw).unwrap();
                let pruned = need.parse(&raw).unwrap();
                let id = identity();
                let f = facts(&id);
                let (a, b) = (Templates::context(pruned, &f), Templates::context(full, &f));
                for name in t
                    .compiled
                    .keys()
                    .filter(|n| n.starts_with(&format!("{type_name}/")))
                {
                    let (x, y) = (t.render(name, &a, 1 << 20), t.render(name, &b, 1 << 20));
                    match (&x, &y) {
                        (Ok(x), Ok(y)) => {
                            assert_eq!(x, y, "{name} on {}", file.display());
                            rendered += 1;
                        }
                        (Err(_), Err(_)) => {}
                        _ => panic!("{name} on {}: pruned {x:?} vs full {y:?}", file.display()),
                    }
                    compared += 1;
                }
            }
        }
        (compared, rendered)
    }

    fn repo_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// Every shipped template of a type, over every fixture payload of that vendor, renders the
    /// same from the pruned parse as from the full parse (or fails the same way).
    #[test]
    fn pruned_parsing_never_changes_what_a_template_renders() {
        let root = repo_root();
        let mut p = Problems::new(Path::new("t.yaml"), "");
        let t = Templates::load(&[], Some(&root.join("templates")), &mut p);
        p.finish().unwrap();
        let cases = [
            ("github", root.join("tests/fixtures/payloads/github"), "action"),
            ("datadog", root.join("tests/fixtures/datadog"), "alert.transition"),
        ];
        let (compared, _) = compare_pruned_with_full(&t, &cases);
        assert!(compared > 100, "{compared}");
    }

    /// The same for templates using the helpers that take values whole (`pointer`, `coalesce`,
    /// `contains`, `pluralize`, `date`, `ago`), including `pointer` and `coalesce` inside `each`
    /// and `with`.
    #[test]
    fn pruned_parsing_keeps_what_value_helpers_read() {
        let files: EmbeddedTemplates = &[
            (
                "github/issues.hbs",
                "---\nlogin: '{{#if body.issue}}{{pointer body.issue \"/user/login\"}}{{/if}}'\n---\n\
                 {{#if body.issue}}{{truncate (coalesce body.issue.body body.issue.title) 40}}|\
                 {{default (pointer body.issue \"/assignee/login\") \"?\"}}|\
                 {{#if (contains body.issue.labels \"x\")}}x{{/if}}{{pluralize body.issue.labels \"label\"}}|\
                 {{date body.issue.created_at \"%F %R\"}}|{{ago body.issue.updated_at}}|\
                 {{#each (coalesce body.issue.assignees body.issue.labels)}}{{default login name}},{{/each}}{{/if}}\
                 {{#if body.repository}}{{date body.repository.pushed_at}} {{ago body.repository.created_at}} \
                 {{pointer body.repository \"/owner/login\"}} {{contains body.repository.topics \"rust\"}}{{/if}}",
            ),
            (
                "github/push.hbs",
                "{{pluralize body.commits \"commit\"}} to {{#with body.repository}}{{pointer this \"/owner/login\"}} \
                 {{contains this \"private\"}}{{/with}}{{#each body.commits}} {{date (pointer this \"/timestamp\")}}{{/each}}",
            ),
        ];
        let (t, r) = templates(files);
        r.unwrap();
        let cases = [(
            "github",
            repo_root().join("tests/fixtures/payloads/github"),
            "action",
        )];
        let (compared, rendered) = compare_pruned_with_full(&t, &cases);
        assert!(rendered > 5, "{rendered} of {compared}");
    }
}
