//! Discord's code: a PING (`type: 1`) is answered `{"type":1}` and never delivered; every
//! other interaction is named by its type (`interaction.application_command`, ...) and
//! answered at once with what Discord requires, so the user never sees "interaction failed".

use hookwire_core::adapter::declared::Declared;
use hookwire_core::adapter::{
    Adapter, Disposition, IdentifyError, Identity, OptionError, Reply, Request, SourceSpec,
};
use hookwire_core::verify::{self, Verifier};
use serde_json::Value;

/// Wraps the adapter built from the preset.
pub(crate) fn build(
    _spec: &SourceSpec<'_>,
    declared: Option<Declared>,
) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
    let declared = declared.expect("the discord preset declares its type");
    Ok(Box::new(Discord(declared)))
}

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
