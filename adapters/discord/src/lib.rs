//! Discord interactions endpoint: `X-Signature-Ed25519` = hex Ed25519 signature (by the
//! application's public key, configured as the source's secret in hex) over
//! `X-Signature-Timestamp` + raw body. Discord probes new endpoints with bad signatures and
//! expects 401. A PING (`type: 1`) is answered `{"type":1}` and never delivered.

use hookwire_core::adapter::declared::{Declared, Naming};
use hookwire_core::adapter::{
    Adapter, AdapterFactory, Disposition, IdentifyError, Identity, OptionError, Registry, Reply, Request,
    SourceSpec,
};
use hookwire_core::verify::codec::Encoding;
use hookwire_core::verify::signature::{Algorithm, KeyEncoding, SignatureSpec, Signed};
use hookwire_core::verify::timestamp::TimestampSpec;
use hookwire_core::verify::{self, Scheme, SignatureScheme, Verifier};
use serde::Deserialize;
use serde_json::Value;

/// The `type:` name of this adapter.
pub const TYPE: &str = "discord";

/// Adds the Discord source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description: "Discord application interactions (slash commands, buttons, modals)",
        build,
    });
}

/// Discord has no options beyond the common source keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

/// How Discord signs.
fn scheme() -> Scheme {
    Scheme::Signature(SignatureScheme {
        algorithm: Algorithm::Ed25519,
        signature: SignatureSpec {
            header: "x-signature-ed25519".into(),
            prefix: String::new(),
            list: None,
            encoding: Encoding::Hex,
        },
        signed: Signed::parse("{timestamp}{body}").expect("valid template"),
        // Signed but without a documented window; replays are caught by the interaction id.
        timestamp: Some(TimestampSpec {
            tolerance_secs: None,
            ..TimestampSpec::header("X-Signature-Timestamp", 0)
        }),
        key: KeyEncoding::Hex,
    })
}

fn build(spec: &SourceSpec<'_>) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
    let _: Options = spec.options().map_err(|e| vec![e])?;
    Ok(Box::new(Discord(Declared::new(
        Declared::bind(scheme(), spec)?,
        Naming::default(),
    ))))
}

/// A configured Discord source.
#[derive(Debug)]
struct Discord(Declared);

impl Adapter for Discord {
    fn verifier(&self) -> &Verifier {
        self.0.verifier()
    }

    fn identify(&self, req: &Request<'_>, body: &Value) -> Result<Identity, IdentifyError> {
        let kind = body
            .get("type")
            .and_then(Value::as_u64)
            .ok_or_else(|| IdentifyError("no interaction type".into()))?;
        let delivery_id = body
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| verify::sha256_hex(req.body));
        if kind == 1 {
            return Ok(Identity {
                event: "ping".into(),
                action: None,
                delivery_id,
                disposition: Disposition::Reply(Reply {
                    content_type: "application/json",
                    body: r#"{"type":1}"#.into(),
                }),
                reply: None,
                meta: Vec::new(),
            });
        }
        let action = match kind {
            2 => "application_command",
            3 => "message_component",
            4 => "autocomplete",
            5 => "modal_submit",
            _ => "other",
        };
        // Discord shows "interaction failed" unless it gets an interaction response: an
        // ephemeral message (type 4, flag 64) to the user, or no choices for autocomplete.
        let body = if kind == 4 {
            r#"{"type":8,"data":{"choices":[]}}"#
        } else {
            r#"{"type":4,"data":{"content":"Sent to the Claude Code session.","flags":64}}"#
        };
        Ok(Identity {
            event: "interaction".into(),
            action: Some(action.into()),
            delivery_id,
            disposition: Disposition::Deliver,
            reply: Some(Reply {
                content_type: "application/json",
                body: body.into(),
            }),
            meta: Vec::new(),
        })
    }
}
