//! The direct renderer: a template whose every construct is in the subset below is also
//! lowered, at start-up, from handlebars' parsed form into a [`Program`] whose helpers are
//! resolved to an enum and whose paths are split once. Rendering walks that program over the
//! borrowed payload, without handlebars' per-call `Helper` values, name lookups and cloned
//! parameters: the render was a fifth of an event's CPU, two thirds of it that dispatch.
//!
//! Handlebars stays the reference. The subset is text, `{{path}}` (with `../` to an
//! enclosing `each` or `with`), `@first`/`@last`/`@index`/`@key`, literals, `if`, `unless`,
//! `each`, `with`, inline and registered partials, `fence` (both forms) and the helpers of
//! `Call`, with the argument counts the shipped templates use. Anything else (hashes, block
//! parameters, `@root`, a partial with arguments) leaves the template to handlebars. And whenever
//! handlebars would fail or do something the subset does not model (a missing field in
//! strict mode, a list rendered as text, a wrong argument type, the output cap or the time
//! budget reached), rendering stops with [`Fallback`] and the caller renders the template
//! with handlebars, which then gives its own answer and error. So a program's output, when
//! it has one, is handlebars' output: `direct_and_handlebars_agree` holds that over every
//! fixture and damaged variants of them.

use handlebars::template::{Parameter, Template, TemplateElement};
use handlebars::{Handlebars, JsonTruthy, Path, PathSeg};
use std::cmp::Ordering;

use serde_json::Value;
use smallvec::SmallVec;

use super::helpers;

/// A template lowered for the direct renderer.
#[derive(Debug)]
pub(super) struct Program {
    body: Block,
    /// The partials it includes, inline (`{{#*inline}}`) or registered, by index.
    partials: Vec<Block>,
}

#[derive(Debug, Default)]
struct Block(Vec<Node>);

#[derive(Debug)]
enum Node {
    Text(String),
    /// `{{> name}}`: a partial, rendered in the same context.
    Partial(usize),
    /// `{{expr}}`: a value or a helper's result, as text.
    Value(Expr),
    /// `{{#if}}` (`when` true) or `{{#unless}}`; an `{{else if}}` chain is an `If` in `otherwise`.
    If {
        cond: Expr,
        when: bool,
        then: Block,
        otherwise: Option<Block>,
    },
    /// `{{#each path}}`: its body once per element, with the element as `this`.
    Each {
        list: PathRef,
        body: Block,
        otherwise: Option<Block>,
    },
    /// `{{#with path}}`: its body with the value as `this`, when the value is truthy.
    With {
        value: PathRef,
        body: Block,
        otherwise: Option<Block>,
    },
    /// `{{#fence label [max]}}body{{/fence}}`.
    Fence {
        body: Block,
        label: Expr,
        max: Option<Expr>,
    },
}

/// A path: `up` levels of `../` (each an enclosing `each` or `with`), then keys; no keys for
/// `this`.
#[derive(Debug)]
struct PathRef {
    up: usize,
    segs: Vec<String>,
}

#[derive(Debug)]
enum Expr {
    /// A path from the current element (the root outside `each` and `with`).
    Path(PathRef),
    Local(Local),
    Literal(Value),
    Call(Call, Vec<Expr>),
}

/// The loop's own variables.
#[derive(Debug, Clone, Copy)]
enum Local {
    First,
    Last,
    Index,
    Key,
}

/// The helpers the subset has, each with the argument counts it is lowered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Word,
    Default,
    Lower,
    Upper,
    Truncate,
    ShortSha,
    FirstLine,
    StripPrefix,
    EpochMs,
    Join,
    Json,
    Coalesce,
    Pluralize,
    Date,
    Base64Text,
    Eq,
    Ne,
    Lt,
    Gt,
    And,
    Or,
    Not,
    Len,
    Fence,
}

impl Call {
    fn named(name: &str, args: usize) -> Option<Call> {
        let (call, min, max) = match name {
            "word" => (Call::Word, 1, 2),
            "default" => (Call::Default, 1, usize::MAX),
            "lower" => (Call::Lower, 1, 1),
            "upper" => (Call::Upper, 1, 1),
            "truncate" => (Call::Truncate, 2, 2),
            "short_sha" => (Call::ShortSha, 1, 1),
            "first_line" => (Call::FirstLine, 1, 1),
            "strip_prefix" => (Call::StripPrefix, 2, 2),
            "epoch_ms" => (Call::EpochMs, 1, 1),
            "join" => (Call::Join, 2, 2),
            "json" => (Call::Json, 1, 1),
            "coalesce" => (Call::Coalesce, 1, usize::MAX),
            "pluralize" => (Call::Pluralize, 2, 3),
            "date" => (Call::Date, 1, 2),
            "base64_text" => (Call::Base64Text, 1, 2),
            "eq" => (Call::Eq, 2, 2),
            "lt" => (Call::Lt, 2, 2),
            "gt" => (Call::Gt, 2, 2),
            "ne" => (Call::Ne, 2, 2),
            "and" => (Call::And, 1, usize::MAX),
            "or" => (Call::Or, 1, usize::MAX),
            "not" => (Call::Not, 1, 1),
            "len" => (Call::Len, 1, 1),
            "fence" => (Call::Fence, 1, 3),
            _ => return None,
        };
        (min..=max).contains(&args).then_some(call)
    }
}

/// Rendering left the subset: render the template with handlebars instead.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Fallback;

/// How deep registered partials may include each other before the template is left to
/// handlebars (which refuses a partial that includes itself).
const PARTIAL_DEPTH: usize = 8;

/// `t` as a program, or `None` when it uses anything outside the subset. `hb` holds the
/// registered partials it may include.
pub(super) fn lower(t: &Template, hb: &Handlebars<'_>) -> Option<Program> {
    let mut l = Lowering {
        hb,
        partials: Vec::new(),
        depth: 0,
    };
    let body = l.block(t, Scope::default(), &mut Vec::new(), true)?;
    Some(Program {
        body,
        partials: l.partials,
    })
}

/// Where an element is lowered: inside how many `each` (the loop variables exist only inside
/// one) and how many `each` or `with` (what `../` climbs), and whether inside a partial
/// (handlebars gives a partial a context level of its own, which `../` would count).
#[derive(Clone, Copy, Default)]
struct Scope {
    loops: usize,
    blocks: usize,
    partial: bool,
}

struct Lowering<'h> {
    hb: &'h Handlebars<'h>,
    partials: Vec<Block>,
    depth: usize,
}

impl Lowering<'_> {
    /// `inlines`: the inline partials defined so far, by name. `top`: whether `t` is a
    /// template's or a partial's top level, the only place an inline partial is lowered.
    fn block(
        &mut self,
        t: &Template,
        scope: Scope,
        inlines: &mut Vec<(String, usize)>,
        top: bool,
    ) -> Option<Block> {
        let mut nodes = Vec::with_capacity(t.elements.len());
        for e in &t.elements {
            match e {
                TemplateElement::RawString(s) => nodes.push(Node::Text(s.clone())),
                TemplateElement::Comment(_) => {}
                TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                    if !h.hash.is_empty() || h.block_param.is_some() {
                        return None;
                    }
                    let expr = match (&h.name, h.params.is_empty()) {
                        // A bare name that is a helper's is a call without arguments.
                        (Parameter::Path(p), true) if !helpers::NAMES.contains(&p_raw(p)) => {
                            lower_path(p, scope)?
                        }
                        (Parameter::Name(name), false) => lower_call(name, &h.params, scope)?,
                        _ => return None,
                    };
                    nodes.push(Node::Value(expr));
                }
                TemplateElement::HelperBlock(h) => {
                    let Parameter::Name(name) = &h.name else {
                        return None;
                    };
                    if !h.hash.is_empty() || h.block_param.is_some() {
                        return None;
                    }
                    let node = match (name.as_str(), h.params.as_slice()) {
                        ("if" | "unless", [cond]) => Node::If {
                            cond: lower_param(cond, scope)?,
                            when: name == "if",
                            then: match &h.template {
                                Some(t) => self.block(t, scope, inlines, false)?,
                                None => Block::default(),
                            },
                            otherwise: self.optional(h.inverse.as_ref(), scope, inlines)?,
                        },
                        // Both give their body a value as `this`; `each` also loops.
                        ("each" | "with", [Parameter::Path(p @ Path::Relative(_))]) => {
                            let Expr::Path(path) = lower_path(p, scope)? else {
                                return None;
                            };
                            let each = name == "each";
                            let inner = Scope {
                                loops: scope.loops + usize::from(each),
                                blocks: scope.blocks + 1,
                                ..scope
                            };
                            let body = self.block(h.template.as_ref()?, inner, inlines, false)?;
                            let otherwise = self.optional(h.inverse.as_ref(), scope, inlines)?;
                            if each {
                                Node::Each {
                                    list: path,
                                    body,
                                    otherwise,
                                }
                            } else {
                                Node::With {
                                    value: path,
                                    body,
                                    otherwise,
                                }
                            }
                        }
                        ("fence", [label, rest @ ..]) if rest.len() <= 1 => Node::Fence {
                            body: self.block(h.template.as_ref()?, scope, inlines, false)?,
                            label: lower_param(label, scope)?,
                            max: optional(rest.first().map(|m| lower_param(m, scope)))?,
                        },
                        _ => return None,
                    };
                    nodes.push(node);
                }
                // `{{#*inline "name"}}`: defined once, at the top level.
                TemplateElement::DecoratorBlock(d) if top => {
                    let (Parameter::Name(kind), [Parameter::Literal(Value::String(name))]) =
                        (&d.name, d.params.as_slice())
                    else {
                        return None;
                    };
                    if kind != "inline" || !d.hash.is_empty() || inlines.iter().any(|(n, _)| n == name) {
                        return None;
                    }
                    let inner = Scope {
                        partial: true,
                        ..scope
                    };
                    let body = self.block(d.template.as_ref()?, inner, &mut inlines.clone(), true)?;
                    self.partials.push(body);
                    inlines.push((name.clone(), self.partials.len() - 1));
                }
                // `{{> name}}`, inline or registered, without arguments.
                TemplateElement::PartialExpression(d) => {
                    let Parameter::Name(name) = &d.name else {
                        return None;
                    };
                    if !d.params.is_empty() || !d.hash.is_empty() || d.template.is_some() {
                        return None;
                    }
                    let index = match inlines.iter().rev().find(|(n, _)| n == name) {
                        Some((_, i)) => *i,
                        None => {
                            let t = self.hb.get_template(name)?;
                            if self.depth == PARTIAL_DEPTH {
                                return None;
                            }
                            self.depth += 1;
                            let inner = Scope {
                                partial: true,
                                ..scope
                            };
                            let body = self.block(t, inner, &mut inlines.clone(), true);
                            self.depth -= 1;
                            self.partials.push(body?);
                            self.partials.len() - 1
                        }
                    };
                    // Handlebars indents the lines a partial writes by the spaces before its
                    // tag. Lowered only where that changes nothing: the tag follows text on
                    // its line (not standalone), and the partial writes no line break of
                    // its own (see `writes_no_line`).
                    if d.indent.is_some() {
                        let after_text =
                            matches!(nodes.last(), Some(Node::Text(t)) if t.ends_with([' ', '\t']));
                        if !after_text || !self.writes_no_line(&self.partials[index]) {
                            return None;
                        }
                    }
                    nodes.push(Node::Partial(index));
                }
                _ => return None,
            }
        }
        Some(Block(nodes))
    }

    /// Whether `b` writes no line break through handlebars' indenting writer: its text has
    /// none and it writes no field as is (`{{path}}`). Helpers' output bypasses that writer,
    /// so under an indented partial tag such a block renders as without one.
    fn writes_no_line(&self, b: &Block) -> bool {
        b.0.iter().all(|n| match n {
            Node::Text(t) => !t.contains(['\n', '\r']),
            Node::Partial(i) => self.writes_no_line(&self.partials[*i]),
            Node::Value(e) => matches!(e, Expr::Call(..) | Expr::Literal(_)),
            Node::If { then, otherwise, .. } => {
                self.writes_no_line(then) && otherwise.as_ref().is_none_or(|o| self.writes_no_line(o))
            }
            Node::Each { body, otherwise, .. } | Node::With { body, otherwise, .. } => {
                self.writes_no_line(body) && otherwise.as_ref().is_none_or(|o| self.writes_no_line(o))
            }
            // The helper writes the fenced text itself, but renders the body through the
            // indenting writer first.
            Node::Fence { body, .. } => self.writes_no_line(body),
        })
    }

    /// An `{{else}}` part: lowered, absent, or (`None`) outside the subset.
    fn optional(
        &mut self,
        t: Option<&Template>,
        scope: Scope,
        inlines: &mut Vec<(String, usize)>,
    ) -> Option<Option<Block>> {
        optional(t.map(|t| self.block(t, scope, inlines, false)))
    }
}

fn p_raw(p: &Path) -> &str {
    match p {
        Path::Relative((_, raw)) | Path::Local((_, _, raw)) => raw,
    }
}

fn lower_path(p: &Path, scope: Scope) -> Option<Expr> {
    match p {
        Path::Relative((segs, raw)) => {
            // Leading `../`s; `@root` and the like also parse as rules before the keys.
            let up = segs
                .iter()
                .take_while(|s| !matches!(s, PathSeg::Named(_)))
                .count();
            if up > 0 && (scope.partial || up > scope.blocks || !raw.starts_with(&"../".repeat(up))) {
                return None;
            }
            let segs = segs[up..]
                .iter()
                .map(|s| match s {
                    PathSeg::Named(n) => Some(n.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?;
            Some(Expr::Path(PathRef { up, segs }))
        }
        Path::Local((0, name, _)) if scope.loops > 0 => Some(Expr::Local(match name.as_str() {
            "first" => Local::First,
            "last" => Local::Last,
            "index" => Local::Index,
            "key" => Local::Key,
            _ => return None,
        })),
        Path::Local(_) => None,
    }
}

fn lower_param(p: &Parameter, scope: Scope) -> Option<Expr> {
    match p {
        Parameter::Path(path) => lower_path(path, scope),
        Parameter::Literal(v) => Some(Expr::Literal(v.clone())),
        Parameter::Subexpression(s) => match s.as_element() {
            TemplateElement::Expression(h) if h.hash.is_empty() && h.block_param.is_none() => {
                let Parameter::Name(name) = &h.name else {
                    return None;
                };
                lower_call(name, &h.params, scope)
            }
            _ => None,
        },
        _ => None,
    }
}

/// An optional part that lowered (`Some(Some)`) or was absent (`Some(None)`); `None` when it
/// was there and did not lower.
fn optional<T>(part: Option<Option<T>>) -> Option<Option<T>> {
    match part {
        None => Some(None),
        Some(lowered) => lowered.map(Some),
    }
}

fn lower_call(name: &str, params: &[Parameter], scope: Scope) -> Option<Expr> {
    let call = Call::named(name, params.len())?;
    let args = params
        .iter()
        .map(|p| lower_param(p, scope))
        .collect::<Option<Vec<_>>>()?;
    Some(Expr::Call(call, args))
}

/// An argument's value: a field of the payload, or one a helper or the loop computed.
enum Arg<'a> {
    Missing,
    Field(&'a Value),
    Made(Value),
}

impl Arg<'_> {
    /// What handlebars hands a helper: a missing field reads as null.
    fn value(&self) -> &Value {
        match self {
            Arg::Missing => &Value::Null,
            Arg::Field(v) => v,
            Arg::Made(v) => v,
        }
    }
    fn present(&self) -> Result<&Value, Fallback> {
        match self {
            Arg::Missing => Err(Fallback),
            _ => Ok(self.value()),
        }
    }
}

/// The value `this` stands for inside an `each` or a `with`, and the loop's variables.
struct Element<'a> {
    this: &'a Value,
    /// The innermost loop's element: index, length, key (for an object's members).
    at: Option<(usize, usize, Option<&'a str>)>,
}

/// Where a program renders: the payload's root, the loops around, the output so far.
struct Run<'a> {
    root: &'a Value,
    loops: Vec<Element<'a>>,
    out: String,
    max: usize,
}

impl Program {
    /// The program's text over `root` (the render context), at most `max` bytes.
    pub(super) fn render(&self, root: &Value, max: usize) -> Result<String, Fallback> {
        if crate::budget::exceeded() {
            return Err(Fallback);
        }
        let mut run = Run {
            root,
            loops: Vec::new(),
            out: String::with_capacity(max.min(4096)),
            max,
        };
        run.block(&self.body, self)?;
        if run.out.len() > max || crate::budget::exceeded() {
            return Err(Fallback);
        }
        Ok(run.out)
    }
}

impl<'a> Run<'a> {
    fn block(&mut self, b: &'a Block, p: &'a Program) -> Result<(), Fallback> {
        for node in &b.0 {
            match node {
                Node::Text(s) => self.out.push_str(s),
                Node::Partial(i) => self.block(&p.partials[*i], p)?,
                // The two helpers every shipped template calls most write into the output
                // instead of returning a string that is then copied there.
                Node::Value(Expr::Call(call @ (Call::Word | Call::Fence), args)) => {
                    let mut values = SmallVec::new();
                    self.args(args, &mut values)?;
                    write_text(&mut self.out, *call, &values)?;
                }
                Node::Value(e) => {
                    let v = self.eval(e)?;
                    write_value(&mut self.out, v.present()?)?;
                }
                Node::If {
                    cond,
                    when,
                    then,
                    otherwise,
                } => {
                    if self.eval(cond)?.value().is_truthy(false) == *when {
                        self.block(then, p)?;
                    } else if let Some(o) = otherwise {
                        self.block(o, p)?;
                    }
                }
                Node::Each {
                    list,
                    body,
                    otherwise,
                } => {
                    // Element by element, without collecting them: a payload's list may be long.
                    match self.path(list)? {
                        Arg::Field(Value::Array(l)) if !l.is_empty() || otherwise.is_none() => {
                            for (index, this) in l.iter().enumerate() {
                                self.element(body, p, this, (index, l.len(), None))?;
                            }
                        }
                        Arg::Field(Value::Object(m)) if !m.is_empty() || otherwise.is_none() => {
                            for (index, (key, this)) in m.iter().enumerate() {
                                self.element(body, p, this, (index, m.len(), Some(key.as_str())))?;
                            }
                        }
                        _ => match otherwise {
                            Some(o) => self.block(o, p)?,
                            // Strict mode's error.
                            None => return Err(Fallback),
                        },
                    }
                }
                Node::With {
                    value,
                    body,
                    otherwise,
                } => match self.path(value)? {
                    Arg::Field(this) if this.is_truthy(false) => {
                        // A `with` keeps the enclosing loop's variables.
                        let at = self.loops.last().and_then(|el| el.at);
                        self.within(body, p, Element { this, at })?;
                    }
                    _ => match otherwise {
                        Some(o) => self.block(o, p)?,
                        // Strict mode's error.
                        None => return Err(Fallback),
                    },
                },
                Node::Fence { body, label, max } => {
                    let start = self.out.len();
                    self.block(body, p)?;
                    let text = self.out.split_off(start);
                    let label = self.eval(label)?;
                    let max = max.as_ref().map(|m| self.eval(m)).transpose()?;
                    fence(&mut self.out, &text, Some(&label), max.as_ref());
                }
            }
        }
        Ok(())
    }

    /// One pass of an `each`: stopped by the time budget or the output cap, as handlebars'
    /// loop and writer would stop it.
    fn element(
        &mut self,
        body: &'a Block,
        p: &'a Program,
        this: &'a Value,
        at: (usize, usize, Option<&'a str>),
    ) -> Result<(), Fallback> {
        if crate::budget::exceeded() || self.out.len() > self.max {
            return Err(Fallback);
        }
        self.within(body, p, Element { this, at: Some(at) })
    }

    /// `body` rendered with `el` as `this`.
    fn within(&mut self, body: &'a Block, p: &'a Program, el: Element<'a>) -> Result<(), Fallback> {
        self.loops.push(el);
        let r = self.block(body, p);
        self.loops.pop();
        r
    }

    fn eval(&self, e: &'a Expr) -> Result<Arg<'a>, Fallback> {
        Ok(match e {
            Expr::Path(p) => self.path(p)?,
            Expr::Local(l) => {
                let Some((index, len, key)) = self.loops.last().and_then(|el| el.at) else {
                    return Ok(Arg::Missing);
                };
                Arg::Made(match l {
                    Local::First => Value::Bool(index == 0),
                    Local::Last => Value::Bool(index + 1 == len),
                    Local::Index => Value::from(index),
                    Local::Key => match key {
                        Some(k) => Value::from(k),
                        None => return Ok(Arg::Missing),
                    },
                })
            }
            Expr::Literal(v) => Arg::Field(v),
            Expr::Call(call, args) => {
                let mut values = SmallVec::new();
                self.args(args, &mut values)?;
                Arg::Made(self.call(*call, &values)?)
            }
        })
    }

    /// A call's arguments, evaluated into `out`, where the caller keeps them: an argument
    /// holds a `Value` (72 bytes), and returning the list, or collecting it through a
    /// `Result`, copied it more than once per call, which cost more than evaluating it on
    /// the shipped templates (their calls are many and small).
    fn args(&self, args: &'a [Expr], out: &mut SmallVec<[Arg<'a>; 4]>) -> Result<(), Fallback> {
        for a in args {
            out.push(self.eval(a)?);
        }
        Ok(())
    }

    /// Handlebars' lookup: an object's key, a list's index; a key that is not a number on a
    /// list is its error. `../` climbs to the element of an enclosing `each` or `with`, or
    /// the root.
    fn path(&self, p: &PathRef) -> Result<Arg<'a>, Fallback> {
        let depth = self.loops.len();
        let mut v = match depth.checked_sub(p.up + 1) {
            Some(at) => self.loops[at].this,
            // Lowering allows no more `../` than there are levels.
            None => self.root,
        };
        for seg in &p.segs {
            let next = match v {
                Value::Object(m) => member(m, seg),
                Value::Array(l) => l.get(seg.parse::<usize>().map_err(|_| Fallback)?),
                _ => None,
            };
            match next {
                Some(n) => v = n,
                None => return Ok(Arg::Missing),
            }
        }
        Ok(Arg::Field(v))
    }

    /// A helper's value, as handlebars computes it (for `default` and `fence`, which only
    /// write, their text).
    fn call(&self, call: Call, args: &[Arg<'_>]) -> Result<Value, Fallback> {
        let first = || args[0].present();
        Ok(match call {
            Call::Word | Call::Fence => {
                let mut text = String::new();
                write_text(&mut text, call, args)?;
                Value::String(text)
            }
            Call::Default => Value::String(
                args.iter()
                    .find(|a| !matches!(a.value(), Value::Null) && a.value().as_str() != Some(""))
                    .map_or_else(String::new, |a| helpers::as_text(a.value())),
            ),
            Call::Lower => Value::String(helpers::as_text(first()?).to_lowercase()),
            Call::Upper => Value::String(helpers::as_text(first()?).to_uppercase()),
            Call::Truncate => {
                let n = args[1].present()?.as_u64().ok_or(Fallback)?;
                Value::String(helpers::truncate_text(
                    helpers::as_text(first()?),
                    usize::try_from(n).unwrap_or(usize::MAX),
                ))
            }
            Call::ShortSha => Value::String(helpers::short_sha_text(first()?)),
            Call::FirstLine => Value::String(helpers::first_line_text(first()?)),
            Call::StripPrefix => {
                let prefix = args[1].present()?.as_str().ok_or(Fallback)?;
                Value::String(helpers::strip_prefix_text(first()?, prefix))
            }
            Call::EpochMs => Value::String(helpers::epoch_ms_text(first()?)),
            Call::Join => {
                let sep = args[1].present()?.as_str().ok_or(Fallback)?;
                Value::String(helpers::join_text(first()?, sep))
            }
            Call::Json => Value::String(first()?.to_string()),
            Call::Coalesce => args
                .iter()
                .map(Arg::value)
                .find(|v| !helpers::is_blank(v))
                .map_or(Value::Null, Value::clone),
            Call::Pluralize => {
                let (text, one) = helpers::count_of(first()?).ok_or(Fallback)?;
                let word = |a: &Arg<'_>| a.present().ok().and_then(Value::as_str).map(str::to_owned);
                let singular = word(&args[1]).ok_or(Fallback)?;
                let plural = match args.get(2) {
                    Some(p) => Some(word(p).ok_or(Fallback)?),
                    None => None,
                };
                Value::String(helpers::counted(&text, one, &singular, plural.as_deref()))
            }
            Call::Date => {
                let format = match args.get(1) {
                    None => helpers::DATE_FORMAT,
                    Some(f) => f.value().as_str().ok_or(Fallback)?,
                };
                match first()? {
                    Value::Null => Value::Null,
                    v => {
                        let ts = helpers::parse_time(v).ok_or(Fallback)?;
                        Value::String(helpers::utc_text(ts, format).map_err(|_| Fallback)?)
                    }
                }
            }
            Call::Base64Text => {
                let max = match args.get(1) {
                    None => 3000,
                    Some(m) => length(m)?,
                };
                Value::String(helpers::base64_text_of(first()?, max))
            }
            Call::Eq => Value::Bool(first()? == args[1].present()?),
            Call::Lt => Value::Bool(order(first()?, args[1].present()?)? == Ordering::Less),
            Call::Gt => Value::Bool(order(first()?, args[1].present()?)? == Ordering::Greater),
            Call::Ne => Value::Bool(first()? != args[1].present()?),
            Call::And => Value::Bool(args.iter().all(|a| a.value().is_truthy(false))),
            Call::Or => Value::Bool(args.iter().any(|a| a.value().is_truthy(false))),
            Call::Not => Value::Bool(!first()?.is_truthy(false)),
            Call::Len => Value::from(match first()? {
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::String(s) => s.len(),
                _ => 0,
            }),
        })
    }
}

/// `m[key]`. The objects templates read are small (the parse keeps only the keys they use;
/// the context's root has nine), and comparing a few keys is cheaper than hashing one with
/// the map's SipHash.
pub(super) fn member<'v>(m: &'v serde_json::Map<String, Value>, key: &str) -> Option<&'v Value> {
    if m.len() <= 16 {
        m.iter().find(|(k, _)| same_key(k, key)).map(|(_, v)| v)
    } else {
        m.get(key)
    }
}

/// Whether two keys are equal, by length and first byte before the rest: most keys compared
/// differ there, and a call to `memcmp` costs more than that check.
pub(super) fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
}

/// `lt` and `gt`'s order for the values it is plain for: two strings, two booleans, two
/// integers that both fit an `i64` or both a `u64`. Handlebars also compares numbers of mixed kinds and numbers with
/// numeric strings; those are left to it.
fn order(a: &Value, b: &Value) -> Result<Ordering, Fallback> {
    match (a, b) {
        (Value::String(a), Value::String(b)) => Ok(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Ok(a.cmp(b)),
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
            (Some(a), Some(b), _, _) => Ok(a.cmp(&b)),
            (_, _, Some(a), Some(b)) => Ok(a.cmp(&b)),
            _ => Err(Fallback),
        },
        _ => Err(Fallback),
    }
}

/// The text of `word` or `fence` (the helpers that only write), appended to `out`.
fn write_text(out: &mut String, call: Call, args: &[Arg<'_>]) -> Result<(), Fallback> {
    match call {
        Call::Word => {
            let max = match args.get(1) {
                None => helpers::WORD_MAX,
                Some(m) => length(m)?,
            };
            helpers::word_into(out, args[0].present()?, max);
        }
        Call::Fence => fence(out, &helpers::text_of(args[0].value()), args.get(1), args.get(2)),
        _ => unreachable!("only word and fence write text"),
    }
    Ok(())
}

/// `fence`'s text, with its label and length as the helper reads them, appended to `out`.
fn fence(out: &mut String, text: &str, label: Option<&Arg<'_>>, max: Option<&Arg<'_>>) {
    let label = label.map_or(std::borrow::Cow::Borrowed("text"), |l| {
        helpers::text_of(l.value())
    });
    let max = max.and_then(|m| m.value().as_u64()).unwrap_or(2000) as usize;
    helpers::fence_into(out, text, &label, max)
}

/// A length argument (`word`'s): a number that fits, else the helper's error.
fn length(a: &Arg<'_>) -> Result<usize, Fallback> {
    a.value()
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(Fallback)
}

/// A value as `{{...}}` writes it; a list or an object (`[a, b]`, `[object]`) is left to
/// handlebars.
fn write_value(out: &mut String, v: &Value) -> Result<(), Fallback> {
    use std::fmt::Write as _;
    match v {
        Value::String(s) => out.push_str(s),
        Value::Null => {}
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Array(_) | Value::Object(_) => return Err(Fallback),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Problems;
    use crate::render::Templates;
    use handlebars::Context;
    use serde_json::json;
    use std::path::{Path as FsPath, PathBuf};

    fn repo() -> PathBuf {
        FsPath::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// The fixture payloads of each vendor folder, as (folder, file stem, payload).
    fn payloads() -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        let mut dirs = vec![("datadog".to_owned(), repo().join("tests/fixtures/datadog"))];
        for e in std::fs::read_dir(repo().join("tests/fixtures/payloads"))
            .unwrap()
            .flatten()
        {
            if e.path().is_dir() {
                dirs.push((e.file_name().to_string_lossy().into_owned(), e.path()));
            }
        }
        for (vendor, dir) in dirs {
            for f in std::fs::read_dir(dir).unwrap().flatten() {
                let path = f.path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let Some(stem) = name.strip_suffix(".json") else {
                    continue;
                };
                if let Ok(v) = serde_json::from_slice::<Value>(&std::fs::read(&path).unwrap()) {
                    out.push((vendor.clone(), stem.to_owned(), v));
                }
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }

    /// A payload damaged the way hostile or odd senders do: fields removed, emptied, nulled,
    /// retyped, or holding fence-breaking text; which ones is drawn from `seed`.
    fn damaged(v: &Value, seed: &mut u64) -> Value {
        let mut draw = |n: u64| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed % n
        };
        fn walk(v: &Value, draw: &mut dyn FnMut(u64) -> u64) -> Option<Value> {
            let replaced = match draw(12) {
                0 => return None,
                1 => Value::Null,
                2 => json!(""),
                3 => json!([]),
                4 => json!(0),
                5 => json!("a\n``` b ````\u{202e}c"),
                6 => json!({"name": "x", "login": "y", "number": 2.5}),
                _ => match v {
                    Value::Object(m) => Value::Object(
                        m.iter()
                            .filter_map(|(k, v)| walk(v, draw).map(|v| (k.clone(), v)))
                            .collect(),
                    ),
                    Value::Array(l) => Value::Array(l.iter().filter_map(|v| walk(v, draw)).collect()),
                    other => other.clone(),
                },
            };
            Some(replaced)
        }
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter_map(|(k, v)| walk(v, &mut draw).map(|v| (k.clone(), v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn context(body: Value, vendor: &str, stem: &str) -> Context {
        let (event, action) = stem.split_once('.').unwrap_or((stem, ""));
        Context::from(json!({
            "body": body,
            "source": "src",
            "type": vendor,
            "event": event,
            "action": if action.is_empty() { Value::Null } else { json!(action) },
            "event_name": stem,
            "delivery_id": "d-1",
            "received_at": "2026-12-04T12:00:00Z",
            "headers": {},
        }))
    }

    #[test]
    fn direct_and_handlebars_agree() {
        let mut p = Problems::new(FsPath::new("test.yaml"), "");
        let t = Templates::load(&[], Some(&repo().join("templates")), &mut p);
        p.finish().unwrap();
        // Every template and meta entry with a program, by registered name.
        let mut programs: Vec<(&str, &Program)> = Vec::new();
        for (name, c) in &t.compiled {
            programs.extend(c.content.as_ref().map(|p| (name.as_str(), p)));
            programs.extend(
                c.meta
                    .iter()
                    .filter_map(|m| m.program.as_ref().map(|p| (m.reg.as_str(), p))),
            );
        }
        for lowered in [
            "github/issues",
            "github/push",
            "github/pull_request",
            "datadog/default",
            "jira/_issue",
        ] {
            assert!(
                programs.iter().any(|(n, _)| *n == lowered),
                "{lowered} is not lowered"
            );
        }
        let (mut same, mut fell_back) = (0, 0);
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for (vendor, stem, payload) in payloads() {
            let mut bodies = vec![payload.clone()];
            bodies.extend((0..12).map(|_| damaged(&payload, &mut seed)));
            for body in bodies {
                let ctx = context(body, &vendor, &stem);
                for (name, program) in &programs {
                    if !(name.starts_with(&format!("{vendor}/")) || name.starts_with("default")) {
                        continue;
                    }
                    let hb = t.hb.render_with_context(name, &ctx);
                    match program.render(ctx.data(), usize::MAX) {
                        Ok(direct) => {
                            assert_eq!(
                                hb.as_deref().map_err(|e| e.to_string()),
                                Ok(direct.as_str()),
                                "{name} over {vendor}/{stem}: {}",
                                ctx.data()["body"]
                            );
                            same += 1;
                        }
                        Err(Fallback) => fell_back += 1,
                    }
                }
            }
        }
        // Damaged payloads fall back often (strict mode's missing fields); whole ones rarely.
        assert!(
            same > 5 * fell_back / 4,
            "{same} rendered directly, {fell_back} fell back"
        );
    }

    /// Constructs whose handlebars behaviour is easy to get wrong, each rendered both ways.
    #[test]
    fn direct_and_handlebars_agree_on_the_subtle_cases() {
        let data = json!({
            "n": 3, "f": 2.5, "neg": -4, "s": "x", "empty": "", "zero": 0, "list": [{"a": 1}, {"a": 2}],
            "obj": {"k1": "v1", "k2": "v2"}, "text": "line one\nline two", "t": true, "nothing": null,
        });
        let cases = [
            // (template, whether it lowers and renders directly: `None` not lowered, `Some(false)`
            // lowered but left to handlebars for this data).
            (
                "{{#if zero}}y{{else if empty}}e{{else if s}}s{{else}}n{{/if}}",
                Some(true),
            ),
            (
                "{{#each obj}}{{@key}}={{this}}{{#unless @last}}, {{/unless}}{{/each}}",
                Some(true),
            ),
            (
                "{{#each list}}{{#with this}}{{@index}}:{{a}}{{/with}}{{/each}}",
                Some(true),
            ),
            (
                "{{#each missing}}x{{else}}none{{/each}}|{{#each list}}{{a}}{{/each}}",
                Some(true),
            ),
            ("{{#*inline \"p\"}}{{word s}}{{/inline}}a {{> p}} b", Some(true)),
            ("{{#*inline \"p\"}}{{text}}{{/inline}}a {{> p}} b", None),
            ("{{lt n 5}} {{gt neg n}} {{lt f 3}}", Some(false)),
            ("{{lt n 5}} {{gt neg n}} {{lt s \"y\"}}", Some(true)),
            (
                "{{f}} {{neg}} {{t}} {{len obj}} {{len s}} {{coalesce empty zero s}}",
                Some(true),
            ),
            (
                "{{pluralize n \"box\"}} {{pluralize list \"item\" \"items!\"}} {{pluralize \"1\" \"x\"}}",
                Some(true),
            ),
            (
                "{{date \"2026-01-02T03:04:05+01:00\" \"%Y-%m-%d %H:%M\"}} {{date n}}|{{date nothing}}|",
                Some(true),
            ),
            ("{{pluralize s \"x\"}}", Some(false)),
            (
                "{{#each list}}{{../n}}{{#with this}}{{../../s}}{{a}}{{../a}}{{/with}}{{/each}}",
                Some(true),
            ),
            ("{{../n}}", None),
            (
                "{{#*inline \"p\"}}{{#each list}}{{../n}}{{/each}}{{/inline}}x {{> p}}",
                None,
            ),
            (
                "{{base64_text \"aMOpbGxv\" 3}}|{{base64_text s}}|{{base64_text nothing}}",
                Some(true),
            ),
            ("{{list}}", Some(false)),
            ("{{missing}}", Some(false)),
            ("{{word missing}}", Some(false)),
            (
                "{{default missing empty \"d\"}} {{fence text \"T\" 4}}{{#fence \"B\"}}{{s}}{{/fence}}",
                Some(true),
            ),
        ];
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        helpers::register(&mut hb);
        for (i, (tpl, direct)) in cases.iter().enumerate() {
            let name = format!("t{i}");
            hb.register_template_string(&name, *tpl).unwrap();
            let program = lower(hb.get_template(&name).unwrap(), &hb);
            assert_eq!(program.is_some(), direct.is_some(), "{tpl}");
            let Some(program) = program else { continue };
            let want = hb.render(&name, &data).map_err(|e| e.to_string());
            match program.render(&data, usize::MAX) {
                Ok(got) => assert_eq!(want.as_deref(), Ok(got.as_str()), "{tpl}"),
                Err(Fallback) => {
                    assert_eq!(*direct, Some(false), "{tpl} fell back; handlebars gives {want:?}")
                }
            }
            assert_eq!(
                program.render(&data, usize::MAX).is_ok(),
                *direct == Some(true),
                "{tpl}"
            );
        }
    }
}
