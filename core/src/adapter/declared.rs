//! Adapters declared as data: a verification scheme plus where the event type, action and
//! delivery id are found (a header, a JSON pointer into the body, or a fixed value). Most
//! vendor crates are one of these with their constants filled in, and the `hmac`, `ed25519`,
//! `token`, `basic` and `standard-webhooks` source types let a team declare a vendor hookwire does
//! not ship entirely in config.yaml.

use serde::Deserialize;
use serde_json::Value;

use super::{
    Adapter, AdapterFactory, Disposition, IdentifyError, Identity, OptionError, Registry, Request, SourceSpec,
};
use crate::verify::codec::{Digest, Encoding};
use crate::verify::signature::{Algorithm, KeyEncoding, ListSpec, SignatureSpec, Signed};
use crate::verify::timestamp::TimestampSpec;
use crate::verify::{
    self, BasicAuth, Mailgun, Oidc, Scheme, SignatureScheme, Sns, StandardWebhooks, TokenScheme, Verifier,
};

/// Where one value of a request is found. Exactly one of `header`, `json`, `value` is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locator {
    /// A request header (any case).
    #[serde(default)]
    pub header: Option<String>,
    /// A JSON pointer into the body (`/action`, `/event/type`); a form body is an object of
    /// its fields.
    #[serde(default)]
    pub json: Option<String>,
    /// A fixed value.
    #[serde(default)]
    pub value: Option<String>,
    /// For a header: the pattern its value must match (the vendor's event names, e.g.
    /// `^[a-z_]+$`). A header is not covered by the signature, so a value that does not match
    /// refuses the request (400); without a pattern, [`SAFE_NAME`] applies.
    #[serde(default)]
    pub pattern: Option<Pattern>,
}

/// What a name taken from an unsigned header must look like when its locator gives no
/// pattern: a letter or digit, then letters, digits, space and `_ . : / -`, at most 128 in
/// all. No line break, no markup: such a value reaches meta and template lookup.
pub const SAFE_NAME: &str = "^[A-Za-z0-9][A-Za-z0-9 _.:/-]{0,127}$";

/// A compiled regular expression, compared by its text.
#[derive(Debug, Clone)]
pub struct Pattern(regex::Regex);

impl Pattern {
    /// Compiles `text`; anchor it (`^...$`) to match whole values.
    pub fn new(text: &str) -> Result<Self, String> {
        regex::Regex::new(text)
            .map(Pattern)
            .map_err(|e| format!("`{text}` is not a regular expression: {e}"))
    }

    fn is_match(&self, value: &str) -> bool {
        self.0.is_match(value)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Pattern {}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Pattern::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// What a delivery id taken from an unsigned header must look like when its locator gives
/// no pattern: visible ASCII, no space, at most 256.
pub const SAFE_ID: &str = "^[!-~]{1,256}$";

fn safe_name() -> &'static Pattern {
    static SAFE: std::sync::OnceLock<Pattern> = std::sync::OnceLock::new();
    SAFE.get_or_init(|| Pattern::new(SAFE_NAME).expect("valid pattern"))
}

fn safe_id() -> &'static Pattern {
    static SAFE: std::sync::OnceLock<Pattern> = std::sync::OnceLock::new();
    SAFE.get_or_init(|| Pattern::new(SAFE_ID).expect("valid pattern"))
}

impl Locator {
    /// A header.
    pub fn header(name: &str) -> Self {
        Locator {
            header: Some(name.to_ascii_lowercase()),
            ..Default::default()
        }
    }

    /// A header whose values must match `pattern` (a vendor's event names).
    pub fn header_matching(name: &str, pattern: &str) -> Self {
        Locator {
            pattern: Some(Pattern::new(pattern).expect("a vendor's pattern compiles")),
            ..Locator::header(name)
        }
    }

    /// A JSON pointer.
    pub fn json(pointer: &str) -> Self {
        Locator {
            json: Some(pointer.into()),
            ..Default::default()
        }
    }

    /// A fixed value.
    pub fn value(v: &str) -> Self {
        Locator {
            value: Some(v.into()),
            ..Default::default()
        }
    }

    fn validate(mut self, field: &str) -> Result<Self, OptionError> {
        let set = [&self.header, &self.json, &self.value]
            .iter()
            .filter(|v| v.is_some())
            .count();
        let bad = |message: String| OptionError {
            field: Some(field.into()),
            message,
            hint: Some("write one of {header: NAME}, {json: /pointer}, {value: TEXT}".into()),
        };
        if set != 1 {
            return Err(bad("set exactly one of header, json, value".into()));
        }
        if let Some(p) = &self.json {
            if !p.starts_with('/') {
                return Err(bad(format!("`{p}` is not a JSON pointer (it starts with /)")));
            }
        }
        if self.pattern.is_some() && self.header.is_none() {
            return Err(bad("`pattern` applies to a header's value only".into()));
        }
        if let Some(h) = &mut self.header {
            *h = h.to_ascii_lowercase();
        }
        Ok(self)
    }

    /// The value in this request, when present and non-empty. Numbers and booleans are
    /// written as text. A header's value that does not match its pattern is an error: the
    /// header is not signed, so the request is refused rather than named by it.
    pub fn find(&self, req: &Request<'_>, body: &Value) -> Result<Option<String>, IdentifyError> {
        self.find_as(req, body, safe_name())
    }

    /// [`Locator::find`], with `default` for a header without a pattern of its own.
    fn find_as(
        &self,
        req: &Request<'_>,
        body: &Value,
        default: &Pattern,
    ) -> Result<Option<String>, IdentifyError> {
        if let Some(h) = &self.header {
            let Some(v) = req.header(h) else { return Ok(None) };
            let v = std::str::from_utf8(v).unwrap_or("\u{FFFD}").trim();
            if v.is_empty() {
                return Ok(None);
            }
            let pattern = self.pattern.as_ref().unwrap_or(default);
            if !pattern.is_match(v) {
                return Err(IdentifyError(format!(
                    "header {h} does not hold a name this source accepts (it must match {})",
                    pattern.0.as_str()
                )));
            }
            return Ok(Some(v.to_owned()));
        }
        Ok(self.find_unsigned_free(body))
    }

    /// A body field's or a fixed value.
    fn find_unsigned_free(&self, body: &Value) -> Option<String> {
        let found = if let Some(p) = &self.json {
            match body.pointer(p)? {
                Value::String(s) => Some(s.clone()),
                v @ (Value::Number(_) | Value::Bool(_)) => Some(v.to_string()),
                _ => None,
            }
        } else {
            self.value.clone()
        };
        found.filter(|s| !s.is_empty())
    }

    /// The body field this locator reads, as a dotted path; `Err` when it cannot be expressed
    /// that way (array indices, escapes), so the body must be parsed whole.
    fn dotted(&self) -> Result<Option<String>, ()> {
        let Some(p) = &self.json else { return Ok(None) };
        let segments: Vec<&str> = p[1..].split('/').collect();
        if segments
            .iter()
            .any(|s| s.is_empty() || s.contains(['~', '.']) || s.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(());
        }
        Ok(Some(segments.join(".")))
    }

    fn describe(&self) -> String {
        match (&self.header, &self.json, &self.value) {
            (Some(h), _, _) => format!("header {h}"),
            (_, Some(p), _) => format!("body {p}"),
            (_, _, Some(v)) => format!("value {v}"),
            _ => "nothing".into(),
        }
    }
}

/// One locator or several tried in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locators {
    /// One place.
    One(Locator),
    /// Places tried in order; the first that has a value wins.
    Many(Vec<Locator>),
}

/// Written by hand rather than `untagged`, whose error ("did not match any variant") does not
/// say what to write.
impl<'de> Deserialize<'de> for Locators {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        const SHAPE: &str =
            "write {header: NAME} (with pattern: REGEX if you like), {json: /pointer}, {value: TEXT}, or a list of them";
        let one = |v: serde_norway::Value| -> Result<Locator, D::Error> {
            if let serde_norway::Value::Mapping(m) = &v {
                for k in m.keys() {
                    let k = k.as_str().unwrap_or("?");
                    if !["header", "json", "value", "pattern"].contains(&k) {
                        return Err(D::Error::custom(format!("unknown key `{k}`; {SHAPE}")));
                    }
                }
            }
            serde_norway::from_value(v).map_err(|e| {
                let e = e.to_string();
                // A bad pattern says what is wrong with it; any other shape, what to write.
                D::Error::custom(if e.contains("regular expression") {
                    e
                } else {
                    SHAPE.into()
                })
            })
        };
        match serde_norway::Value::deserialize(d)? {
            serde_norway::Value::Sequence(items) => items
                .into_iter()
                .map(one)
                .collect::<Result<_, _>>()
                .map(Locators::Many),
            v => one(v).map(Locators::One),
        }
    }
}

impl Locators {
    fn into_vec(self) -> Vec<Locator> {
        match self {
            Locators::One(l) => vec![l],
            Locators::Many(v) => v,
        }
    }
}

fn full(event: &str, action: &Option<String>) -> String {
    match action {
        Some(a) => format!("{event}.{a}"),
        None => event.to_owned(),
    }
}

fn first(locators: &[Locator], req: &Request<'_>, body: &Value) -> Result<Option<String>, IdentifyError> {
    first_as(locators, req, body, safe_name())
}

fn first_as(
    locators: &[Locator],
    req: &Request<'_>,
    body: &Value,
    default: &Pattern,
) -> Result<Option<String>, IdentifyError> {
    for l in locators {
        if let Some(v) = l.find_as(req, body, default)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// How a declared adapter names events.
#[derive(Debug, Clone, Default)]
pub struct Naming {
    /// The event type, tried in order; required.
    pub event: Vec<Locator>,
    /// The action (sub-type), tried in order; optional.
    pub action: Vec<Locator>,
    /// The delivery id, tried in order; when none is present the body's SHA-256 is used.
    pub delivery: Vec<Locator>,
    /// Event types answered 2xx and never delivered (`ping`).
    pub acknowledge: Vec<String>,
    /// When no delivery locator has a value, derive the id from the payload (alert groups,
    /// see [`super::alerts`]) before falling back to the body's hash.
    pub derive_delivery: Option<fn(&Value) -> Option<String>>,
    /// When no action is found, split a dotted event type at its last dot
    /// (`charge.dispute.created` → `charge.dispute` + `created`), so one template can serve a
    /// family. The full name Claude sees is unchanged.
    pub split_action: bool,
}

/// An adapter made of a verifier and a [`Naming`].
#[derive(Debug)]
pub struct Declared {
    verifier: Verifier,
    naming: Naming,
    max_body_bytes: Option<usize>,
}

impl Declared {
    /// An adapter from its parts.
    pub fn new(verifier: Verifier, naming: Naming) -> Self {
        Declared {
            verifier,
            naming,
            max_body_bytes: None,
        }
    }

    /// The largest body the vendor documents sending.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = Some(bytes);
        self
    }

    /// Builds the verifier over the source's secrets; the error is ready for the config report.
    pub fn bind(scheme: Scheme, spec: &SourceSpec<'_>) -> Result<Verifier, Vec<OptionError>> {
        Verifier::new(scheme, &spec.secrets).map_err(|message| {
            vec![OptionError {
                field: None,
                message,
                hint: None,
            }]
        })
    }
}

impl Adapter for Declared {
    fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    fn identify(&self, req: &Request<'_>, body: &Value) -> Result<Identity, IdentifyError> {
        let n = &self.naming;
        let event = first(&n.event, req, body)?.ok_or_else(|| {
            let places: Vec<String> = n.event.iter().map(Locator::describe).collect();
            IdentifyError(format!("no event type at {}", places.join(" or ")))
        })?;
        let mut event = event;
        let mut action = first(&n.action, req, body)?;
        if action.is_none() && n.split_action {
            if let Some((family, last)) = event
                .rsplit_once('.')
                .filter(|(f, l)| !f.is_empty() && !l.is_empty())
            {
                action = Some(last.to_owned());
                event = family.to_owned();
            }
        }
        let delivery_id = first_as(&n.delivery, req, body, safe_id())?
            .or_else(|| n.derive_delivery.and_then(|derive| derive(body)))
            .unwrap_or_else(|| verify::sha256_hex(req.body));
        let disposition = if n.acknowledge.contains(&event) || n.acknowledge.contains(&full(&event, &action))
        {
            Disposition::Acknowledge
        } else {
            Disposition::Deliver
        };
        Ok(Identity {
            event,
            action,
            delivery_id,
            disposition,
            reply: None,
            meta: Vec::new(),
        })
    }

    fn max_body_bytes(&self) -> Option<usize> {
        self.max_body_bytes
    }

    fn identity_fields(&self) -> Option<Vec<String>> {
        let n = &self.naming;
        // A derived delivery id may read anything.
        if n.derive_delivery.is_some() {
            return None;
        }
        let mut fields = Vec::new();
        for l in n.event.iter().chain(&n.action).chain(&n.delivery) {
            if let Some(f) = l.dotted().ok()? {
                fields.push(f);
            }
        }
        Some(fields)
    }

    fn naming_headers(&self, event: Option<&str>, delivery_id: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let (Some(e), Some(h)) = (event, self.naming.event.first().and_then(|l| l.header.clone())) {
            out.push((h, e.to_owned()));
        }
        if let Some(h) = self.naming.delivery.first().and_then(|l| l.header.clone()) {
            out.push((h, delivery_id.to_owned()));
        }
        out
    }
}

/// The YAML-declared source types, with what each is.
const TYPES: &[(&str, &str)] = &[
    ("hmac", "webhooks signed with an HMAC declared in config.yaml"),
    ("ed25519", "webhooks signed with Ed25519 declared in config.yaml"),
    (
        "ecdsa-p256",
        "webhooks signed with ECDSA P-256 (SHA-256) declared in config.yaml",
    ),
    (
        "token",
        "webhooks authenticated by a shared token declared in config.yaml",
    ),
    (
        "mailgun-signature",
        "webhooks whose JSON body carries signature.timestamp, token and an HMAC-SHA256 of them (Mailgun's scheme)",
    ),
    (
        "aws-sns-signature",
        "AWS SNS messages: RSA signature over the canonical fields, key from AWS's certificate (no secret)",
    ),
    (
        "oidc-token",
        "requests carrying an RS256 OIDC token (Authorization: Bearer) whose keys are in a JWKS (no secret)",
    ),
    (
        "basic",
        "webhooks authenticated by HTTP Basic auth (a fixed user, the secret as the password), over TLS only",
    ),
    (
        "standard-webhooks",
        "Standard Webhooks senders (Svix and others): webhook-id, webhook-timestamp, webhook-signature",
    ),
];

/// Registers the YAML-declared source types: `hmac`, `ed25519`, `ecdsa-p256`, `token`, `basic`,
/// `mailgun-signature`, `aws-sns-signature`, `oidc-token`, `standard-webhooks`.
pub fn register(registry: &mut Registry) {
    for &(type_name, description) in TYPES {
        registry.register(AdapterFactory {
            type_name,
            description,
            build: std::sync::Arc::new(move |spec: &SourceSpec<'_>| {
                build_declared(type_name, spec).map(|d| Box::new(d) as Box<dyn super::Adapter>)
            }),
        });
    }
}

/// Builds a source of declared type `type_name` from its options (what a vendor's preset
/// resolves to, too).
pub fn build_declared(type_name: &str, spec: &SourceSpec<'_>) -> Result<Declared, Vec<OptionError>> {
    match type_name {
        "hmac" => build_hmac(spec),
        "ed25519" => build_ed25519(spec),
        "ecdsa-p256" => build_ecdsa_p256(spec),
        "token" => build_token(spec),
        "basic" => build_basic(spec),
        "mailgun-signature" => build_mailgun(spec),
        "aws-sns-signature" => build_sns(spec),
        "oidc-token" => build_oidc(spec),
        "standard-webhooks" => build_standard_webhooks(spec),
        other => Err(vec![OptionError {
            field: Some("type".into()),
            message: format!("`{other}` is not a declared type"),
            hint: Some(format!(
                "declared types: {}",
                TYPES.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(", ")
            )),
        }]),
    }
}

/// A delivery id derived from the payload, for senders that send none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Derive {
    /// An Alertmanager-format alert group's id ([`super::alerts::group_delivery_id`]).
    AlertGroup,
}

/// The keys every declared type shares: `verify` plus the naming.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options<V> {
    verify: V,
    event: Locators,
    #[serde(default)]
    action: Option<Locators>,
    #[serde(default)]
    delivery: Option<Locators>,
    #[serde(default)]
    acknowledge: Vec<String>,
    /// When no action is found, split a dotted event type at its last dot.
    #[serde(default)]
    split_action: bool,
    /// When no delivery locator has a value, derive the id from the payload.
    #[serde(default)]
    derive_delivery: Option<Derive>,
}

/// `verify:` of an `hmac` or `ed25519` source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureOptions {
    #[serde(default)]
    digest: Option<Digest>,
    header: String,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    list: Option<ListSpec>,
    encoding: Encoding,
    #[serde(default)]
    signed: Option<String>,
    #[serde(default)]
    key: Option<KeyEncoding>,
    #[serde(default)]
    timestamp: Option<TimestampSpec>,
}

fn naming<V>(o: &Options<V>) -> Result<Naming, Vec<OptionError>> {
    let mut errors = Vec::new();
    let mut take = |ls: Option<&Locators>, field: &str| -> Vec<Locator> {
        ls.cloned()
            .map(Locators::into_vec)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|l| l.validate(field).map_err(|e| errors.push(e)).ok())
            .collect()
    };
    let n = Naming {
        event: take(Some(&o.event), "event"),
        action: take(o.action.as_ref(), "action"),
        delivery: take(o.delivery.as_ref(), "delivery"),
        acknowledge: o.acknowledge.clone(),
        derive_delivery: o.derive_delivery.map(|d| match d {
            Derive::AlertGroup => super::alerts::group_delivery_id as fn(&Value) -> Option<String>,
        }),
        split_action: o.split_action,
    };
    if errors.is_empty() {
        Ok(n)
    } else {
        Err(errors)
    }
}

fn option_error(field: &str, message: String) -> Vec<OptionError> {
    vec![OptionError {
        field: Some(field.into()),
        message,
        hint: None,
    }]
}

fn signature_scheme(v: SignatureOptions, algorithm: Algorithm) -> Result<Scheme, Vec<OptionError>> {
    let signed = match &v.signed {
        Some(t) => Signed::parse(t).map_err(|e| option_error("verify.signed", e))?,
        None => Signed::body(),
    };
    let scheme = SignatureScheme {
        algorithm,
        signature: SignatureSpec {
            header: v.header,
            prefix: v.prefix,
            list: v.list,
            encoding: v.encoding,
        },
        signed,
        timestamp: v.timestamp,
        key: v.key.unwrap_or(match algorithm {
            Algorithm::Ed25519 => KeyEncoding::Hex,
            Algorithm::EcdsaP256 => KeyEncoding::Base64,
            Algorithm::Hmac(_) => KeyEncoding::Text,
        }),
    }
    .validate()
    .map_err(|e| option_error("verify", e))?;
    Ok(Scheme::Signature(scheme))
}

fn build_hmac(spec: &SourceSpec<'_>) -> Result<Declared, Vec<OptionError>> {
    let o: Options<SignatureOptions> = spec.options().map_err(|e| vec![e])?;
    let n = naming(&o)?;
    let Some(digest) = o.verify.digest else {
        return Err(option_error(
            "verify.digest",
            "an hmac source needs `digest`: sha1, sha256 or sha512".into(),
        ));
    };
    let scheme = signature_scheme(o.verify, Algorithm::Hmac(digest))?;
    Ok(Declared::new(Declared::bind(scheme, spec)?, n))
}

fn build_ed25519(spec: &SourceSpec<'_>) -> Result<Declared, Vec<OptionError>> {
    let o: Options<SignatureOptions> = spec.options().map_err(|e| vec![e])?;
    let n = naming(&o)?;
    if o.verify.digest.is_some() {
        return Err(option_error(
            "verify.digest",
            "an ed25519 source has no digest; remove it".into(),
        ));
    }
    let scheme = signature_scheme(o.verify, Algorithm::Ed25519)?;
    Ok(Declared::new(Declared::bind(scheme, spec)?, n))
}

fn build_ecdsa_p256(spec: &SourceSpec<'_>) -> Result<Declared, Vec<OptionError>> {
    let o: Options<SignatureOptions> = spec.options().map_err(|e| vec![e])?;
    let n = naming(&o)?;
    if o.verify.digest.is_some() {
        return Err(option_error(
            "verify.digest",
            "an ecdsa-p256 source always hashes with SHA-256; remove `digest`".into(),
        ));
    }
    let scheme = signature_scheme(o.verify, Algorithm::EcdsaP256)?;
    Ok(Declared::new(Declared::bind(scheme, spec)?, n))
}

fn build_token(spec: &SourceSpec<'_>) -> Result<Declared, Vec<OptionError>> {
    let o: Options<TokenScheme> = spec.options().map_err(|e| vec![e])?;
    let n = naming(&o)?;
    let scheme = o.verify.validate().map_err(|e| option_error("verify", e))?;
    Ok(Declared::new(Declared::bind(Scheme::Token(scheme), spec)?, n))
}

fn build_mailgun(spec: &SourceSpec<'_>) -> Result<Declared, Vec<OptionError>> {
    let o: Options<Mailgun> = spec.options().map_err(|e| vec![e])?;
    let n = naming(&o)?;
    Ok(Declared::new(Declared::bind(Scheme::Mailgun(o.verify), spec)?, n))
}

fn build_oidc(spec: &SourceSpec<'_>) -> Result<Declared, Vec<OptionError>> {
    let o: Options<verify::oidc::OidcOptions> = spec.options().map_err(|e| vec![e])?;
    let n = naming(&o)?;
    let scheme = Oidc::new(o.verify, spec.fetch.clone()).map_err(|e| option_error("verify", e))?;
    Ok(Declared::new(Declared::bind(Scheme::Oidc(scheme), spec)?, n))
}

/// `aws-sns-signature` names events by the message's `Type` and dedups by its signed
/// `MessageId` unless told otherwise.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnsSourceOptions {
    verify: verify::sns::SnsOptions,
    #[serde(default)]
    event: Option<Locators>,
    #[serde(default)]
    action: Option<Locators>,
    #[serde(default)]
    delivery: Option<Locators>,
    #[serde(default)]
    acknowledge: Vec<String>,
}

fn build_sns(spec: &SourceSpec<'_>) -> Result<Declared, Vec<OptionError>> {
    let o: SnsSourceOptions = spec.options().map_err(|e| vec![e])?;
    let n = naming(&Options {
        verify: (),
        event: o.event.unwrap_or(Locators::One(Locator::json("/Type"))),
        action: o.action,
        delivery: o.delivery.or(Some(Locators::One(Locator::json("/MessageId")))),
        acknowledge: o.acknowledge,
        split_action: false,
        derive_delivery: None,
    })?;
    let scheme = Sns::new(o.verify, spec.fetch.clone()).map_err(|e| option_error("verify.topics", e))?;
    Ok(Declared::new(Declared::bind(Scheme::Sns(scheme), spec)?, n))
}

fn build_basic(spec: &SourceSpec<'_>) -> Result<Declared, Vec<OptionError>> {
    let o: Options<BasicAuth> = spec.options().map_err(|e| vec![e])?;
    let n = naming(&o)?;
    let scheme = o.verify.validate().map_err(|e| option_error("verify.user", e))?;
    Ok(Declared::new(Declared::bind(Scheme::Basic(scheme), spec)?, n))
}

/// `standard-webhooks` has defaults for everything: event from the body's `type`, delivery
/// from `webhook-id`/`svix-id`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StandardOptions {
    #[serde(default)]
    verify: StandardWebhooks,
    #[serde(default)]
    event: Option<Locators>,
    #[serde(default)]
    action: Option<Locators>,
    #[serde(default)]
    delivery: Option<Locators>,
    #[serde(default)]
    acknowledge: Vec<String>,
    #[serde(default)]
    split_action: bool,
}

fn build_standard_webhooks(spec: &SourceSpec<'_>) -> Result<Declared, Vec<OptionError>> {
    let o: StandardOptions = spec.options().map_err(|e| vec![e])?;
    let n = naming(&Options {
        verify: (),
        event: o.event.unwrap_or(Locators::One(Locator::json("/type"))),
        action: o.action,
        delivery: o.delivery.or(Some(Locators::Many(vec![
            Locator::header("webhook-id"),
            Locator::header("svix-id"),
        ]))),
        acknowledge: o.acknowledge,
        split_action: o.split_action,
        derive_delivery: None,
    })?;
    Ok(Declared::new(
        Declared::bind(Scheme::StandardWebhooks(o.verify), spec)?,
        n,
    ))
}
