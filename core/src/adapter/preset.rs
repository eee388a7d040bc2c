//! Vendor presets: a built-in vendor is data, the same source entry a team writes for a
//! vendor hookwire does not ship (`type: hmac`, `token`, `ed25519`, `standard-webhooks`; see
//! [`super::declared`]), filled in with the vendor's constants, plus:
//!
//! - `description`: one line for `instructions` and error messages;
//! - `max_body_bytes`: the largest body the vendor documents sending (the source's default);
//! - `options`: the few settings a source of this vendor may give, each either a value
//!   written at a path of the preset (`token_header` → `verify.header`) or a choice between
//!   named variants that patch it (`verify: signing_token`).
//!
//! A source of a preset's type gives only the options: `type: github` plus, say,
//! `digest: sha1`. Its keys are checked against the options (an unknown one lists the valid
//! ones), the preset is patched, and the result is built as any declared source. A vendor
//! whose behaviour YAML cannot express (a handshake reply, a scheme of its own) adds code
//! around the adapter built from its preset.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_norway::{Mapping, Value};

use super::declared::{self, Declared};
use super::{Adapter, AdapterFactory, OptionError, Registry, SourceSpec};

/// Code a vendor adds to its preset: given the adapter built from the preset (`None` when the
/// preset has no `type`, its scheme being one YAML cannot declare), the source's adapter.
pub type Code = fn(&SourceSpec<'_>, Option<Declared>) -> Result<Box<dyn Adapter>, Vec<OptionError>>;

/// One built-in vendor: its folder's `preset.yaml`, and its code where it needs some.
#[derive(Clone, Copy)]
pub struct Vendor {
    /// The folder name: the `type:` of its sources and its template folder.
    pub name: &'static str,
    /// The text of its `preset.yaml`.
    pub preset: &'static str,
    /// Its code, for vendors that need some.
    pub code: Option<Code>,
}

impl std::fmt::Debug for Vendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vendor")
            .field("name", &self.name)
            .field("code", &self.code.is_some())
            .finish()
    }
}

/// A parsed preset.
#[derive(Debug, Clone)]
pub struct Preset {
    /// The vendor (folder) name.
    pub name: &'static str,
    /// One line: what these events are.
    pub description: String,
    /// The largest body the vendor documents sending.
    pub max_body_bytes: Option<usize>,
    /// The declared type the preset fills, when YAML can express the vendor's scheme.
    type_name: Option<String>,
    /// The declared source keys (`verify`, `event`, `action`, ...).
    base: Mapping,
    options: BTreeMap<String, PresetOption>,
}

/// One setting a source of the vendor may give.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresetOption {
    /// What it does, for errors and the vendor's README.
    doc: String,
    /// A value written at this dotted path of the preset (`verify.header`).
    #[serde(default)]
    sets: Option<String>,
    /// Named variants, each a mapping deep-merged into the preset.
    #[serde(default)]
    choices: Option<BTreeMap<String, Mapping>>,
    /// With `sets`: a mapping deep-merged into the preset too, when the option is given
    /// (a timestamp header also changes what is signed).
    #[serde(default)]
    with: Option<Mapping>,
}

impl Preset {
    /// Parses `vendor`'s preset. An error is a bug in the shipped preset, named by its file.
    pub fn parse(vendor: &Vendor) -> Result<Preset, String> {
        let file = format!("adapters/{}/preset.yaml", vendor.name);
        let root: Value = serde_norway::from_str(vendor.preset).map_err(|e| format!("{file}: {e}"))?;
        let Value::Mapping(mut map) = root else {
            return Err(format!("{file}: a preset is a mapping"));
        };
        let text = |map: &mut Mapping, key: &str| -> Result<Option<String>, String> {
            match map.remove(key) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(format!("{file}: `{key}` must be text")),
            }
        };
        let description =
            text(&mut map, "description")?.ok_or_else(|| format!("{file}: no `description`"))?;
        let type_name = text(&mut map, "type")?;
        let max_body_bytes = match map.remove("max_body_bytes") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| format!("{file}: `max_body_bytes` must be a number of bytes"))?,
            ),
        };
        let options: BTreeMap<String, PresetOption> = match map.remove("options") {
            None => BTreeMap::new(),
            Some(v) => serde_norway::from_value(v).map_err(|e| format!("{file}: options: {e}"))?,
        };
        for (name, o) in &options {
            if o.sets.is_some() == o.choices.is_some() {
                return Err(format!(
                    "{file}: option `{name}` needs exactly one of `sets` and `choices`"
                ));
            }
        }
        Ok(Preset {
            name: vendor.name,
            description,
            max_body_bytes,
            type_name,
            base: map,
            options,
        })
    }

    /// The declared type and options for a source's own `options`: the preset, with each
    /// option the source gives applied. A choice that names another `type` replaces `verify`
    /// whole (the other type's keys differ); any other choice is deep-merged. Every problem is
    /// reported, worded as serde words them for the declared types' own keys.
    pub fn resolve(&self, given: &Mapping) -> Result<(Option<String>, Mapping), Vec<OptionError>> {
        let mut type_name = self.type_name.clone();
        let mut out = self.base.clone();
        let mut errors = Vec::new();
        for (k, v) in given {
            let key = k.as_str().unwrap_or("?");
            let Some(option) = self.options.get(key) else {
                errors.push(OptionError {
                    field: Some(key.to_owned()),
                    message: format!("unknown field `{key}`, {}", expected(self.options.keys())),
                    hint: None,
                });
                continue;
            };
            if let Some(path) = &option.sets {
                set_path(&mut out, path, v.clone());
                if let Some(with) = &option.with {
                    merge(&mut out, with);
                }
            } else if let Some(choices) = &option.choices {
                match v.as_str().and_then(|c| choices.get(c)) {
                    Some(patch) => {
                        let mut patch = patch.clone();
                        if let Some(Value::String(t)) = patch.remove("type") {
                            type_name = Some(t);
                            out.remove("verify");
                        }
                        merge(&mut out, &patch);
                    }
                    None => errors.push(OptionError {
                        field: Some(key.to_owned()),
                        message: format!("unknown variant {}, {}", describe(v), expected(choices.keys())),
                        hint: Some(option.doc.clone()),
                    }),
                }
            }
        }
        if errors.is_empty() {
            Ok((type_name, out))
        } else {
            Err(errors)
        }
    }

    /// The option a declared key's path came from, so an error names what the user wrote.
    fn option_at(&self, field: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(_, o)| o.sets.as_deref() == Some(field))
            .map(|(name, _)| name.as_str())
    }

    /// Builds a source's adapter: the preset resolved with its options, built as its declared
    /// type, with the vendor's documented body maximum; then the vendor's code, if any.
    pub fn build(
        &self,
        spec: &SourceSpec<'_>,
        code: Option<Code>,
    ) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
        let (type_name, resolved) = self.resolve(spec.options)?;
        let declared = match &type_name {
            Some(t) => {
                let inner = SourceSpec {
                    name: spec.name,
                    options: &resolved,
                    secrets: spec.secrets.clone(),
                    public_url: spec.public_url,
                    fetch: spec.fetch.clone(),
                };
                let mut d = declared::build_declared(t, &inner).map_err(|errors| {
                    // Name the option the user gave, not the preset's key it set.
                    errors
                        .into_iter()
                        .map(|e| OptionError {
                            field: e
                                .field
                                .as_deref()
                                .map(|f| self.option_at(f).unwrap_or(f).to_owned()),
                            ..e
                        })
                        .collect::<Vec<_>>()
                })?;
                if let Some(n) = self.max_body_bytes {
                    d = d.with_max_body_bytes(n);
                }
                Some(d)
            }
            None => None,
        };
        match (code, declared) {
            (Some(code), d) => code(spec, d),
            (None, Some(d)) => Ok(Box::new(d)),
            (None, None) => Err(vec![OptionError {
                field: None,
                message: format!("the {} preset has no `type` and no code", self.name),
                hint: None,
            }]),
        }
    }
}

/// serde's words for the valid keys or variants after an unknown one.
fn expected<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    match names.as_slice() {
        [] => "there are no fields".into(),
        [one] => format!("expected {one}"),
        many => format!("expected one of {}", many.join(", ")),
    }
}

/// How a YAML value reads in a message.
fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        other => format!("{other:?}"),
    }
}

/// Writes `value` at a dotted path, creating mappings on the way.
fn set_path(map: &mut Mapping, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut at = map;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            at.insert(Value::String(part.into()), value);
            return;
        }
        let entry = at
            .entry(Value::String(part.into()))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if !entry.is_mapping() {
            *entry = Value::Mapping(Mapping::new());
        }
        at = entry.as_mapping_mut().expect("made a mapping");
    }
}

/// Deep-merges `patch` into `map`: mappings merge key by key, anything else replaces.
fn merge(map: &mut Mapping, patch: &Mapping) {
    for (k, v) in patch {
        match (map.get_mut(k), v) {
            (Some(Value::Mapping(have)), Value::Mapping(p)) => merge(have, p),
            _ => {
                map.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Registers every vendor of `vendors`. A preset that does not parse is a bug in the
/// shipped files: it panics when a source of its type is first built, and the vendors' test
/// catches it first.
pub fn register(registry: &mut Registry, vendors: &[Vendor]) {
    for &v in vendors {
        let description = match first_line_description(v.preset) {
            Some(d) => d,
            None => {
                let parsed = Preset::parse(&v).unwrap_or_else(|e| panic!("{e}"));
                Box::leak(parsed.description.into_boxed_str())
            }
        };
        // Parsed when a source of the type is built: a start reads only the presets its config
        // uses, not every vendor's.
        let preset = std::sync::OnceLock::new();
        registry.register(AdapterFactory {
            type_name: v.name,
            description,
            build: std::sync::Arc::new(move |spec: &SourceSpec<'_>| {
                preset
                    .get_or_init(|| Preset::parse(&v).unwrap_or_else(|e| panic!("{e}")))
                    .build(spec, v.code)
            }),
        });
    }
}

/// A preset's `description:`, read without parsing it when it is a plain one-line value at the
/// top level (every shipped preset's; a test holds each to what parsing reads).
pub fn first_line_description(preset: &'static str) -> Option<&'static str> {
    let value = preset
        .lines()
        .find_map(|l| l.strip_prefix("description:"))?
        .trim();
    let plain = !value.is_empty()
        && !value.starts_with(['"', '\'', '|', '>', '&', '*', '!', '[', '{'])
        && !value.contains(" #");
    plain.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRESET: &str = "description: Acme deploys
type: hmac
max_body_bytes: 1000
verify: {digest: sha256, header: X-Acme-Signature, encoding: hex}
event: {header: X-Acme-Event}
options:
  signature_header:
    doc: the header Acme puts the signature in
    sets: verify.header
  digest:
    doc: the digest the account uses
    choices:
      sha256: {}
      sha512: {verify: {digest: sha512}}
";

    fn preset() -> Preset {
        Preset::parse(&Vendor {
            name: "acme",
            preset: PRESET,
            code: None,
        })
        .unwrap()
    }

    fn yaml(s: &str) -> Mapping {
        serde_norway::from_str(s).unwrap()
    }

    #[test]
    fn options_set_values_and_choose_variants() {
        let p = preset();
        assert_eq!(p.max_body_bytes, Some(1000));
        let (t, r) = p
            .resolve(&yaml("{signature_header: X-Other, digest: sha512}"))
            .unwrap();
        assert_eq!(t.as_deref(), Some("hmac"));
        assert_eq!(
            r,
            yaml("{verify: {digest: sha512, header: X-Other, encoding: hex}, event: {header: X-Acme-Event}}")
        );
        assert_eq!(p.resolve(&Mapping::new()).unwrap().1, p.base);
    }

    #[test]
    fn a_choice_of_another_type_replaces_verify_whole() {
        let mut p = preset();
        let mut choices = BTreeMap::new();
        choices.insert("signature".to_owned(), Mapping::new());
        choices.insert(
            "token".to_owned(),
            yaml("{type: token, verify: {header: X-Acme-Token}}"),
        );
        p.options.insert(
            "verify".into(),
            PresetOption {
                doc: "how Acme authenticates".into(),
                sets: None,
                choices: Some(choices),
                with: None,
            },
        );
        let (t, r) = p.resolve(&yaml("{verify: token}")).unwrap();
        assert_eq!(t.as_deref(), Some("token"));
        assert_eq!(
            r,
            yaml("{verify: {header: X-Acme-Token}, event: {header: X-Acme-Event}}")
        );
    }

    #[test]
    fn unknown_options_and_choices_are_worded_as_serde_words_them() {
        let errors = preset()
            .resolve(&yaml("{digets: sha1, digest: md5}"))
            .unwrap_err();
        assert_eq!(errors.len(), 2);
        let unknown = errors
            .iter()
            .find(|e| e.field.as_deref() == Some("digets"))
            .unwrap();
        assert_eq!(
            unknown.message,
            "unknown field `digets`, expected one of `digest`, `signature_header`"
        );
        let choice = errors
            .iter()
            .find(|e| e.field.as_deref() == Some("digest"))
            .unwrap();
        assert_eq!(
            choice.message,
            "unknown variant `md5`, expected one of `sha256`, `sha512`"
        );
    }
}
