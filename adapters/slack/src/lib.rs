//! Slack (Events API, slash commands, interactivity): `X-Slack-Signature: v0=<hex HMAC-SHA256(
//! signing secret, "v0:" + timestamp + ":" + raw body)>` with `X-Slack-Request-Timestamp` within
//! 300 s. Slash commands and interactivity send form bodies, verified as the bytes received.
//! The `url_verification` handshake is answered with its challenge and never delivered.

use hookwire_core::adapter::declared::{Declared, Naming};
use hookwire_core::adapter::{
    Adapter, AdapterFactory, Disposition, IdentifyError, Identity, OptionError, Registry, Reply, Request,
    SourceSpec,
};
use hookwire_core::verify::codec::{Digest, Encoding};
use hookwire_core::verify::signature::Signed;
use hookwire_core::verify::timestamp::TimestampSpec;
use hookwire_core::verify::{self, Scheme, SignatureScheme, Verifier};
use serde::Deserialize;
use serde_json::Value;

/// The `type:` name of this adapter.
pub const TYPE: &str = "slack";

/// Adds the Slack source type to the registry.
pub fn register(registry: &mut Registry) {
    registry.register(AdapterFactory {
        type_name: TYPE,
        description: "Slack app events, slash commands and interactions",
        build,
    });
}

/// Slack options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Largest accepted distance of the request timestamp from now (Slack's SDKs: 300 s).
    #[serde(default = "default_tolerance")]
    tolerance_secs: u64,
}

fn default_tolerance() -> u64 {
    300
}

/// How Slack signs.
fn scheme(o: &Options) -> Scheme {
    Scheme::Signature(SignatureScheme {
        signed: Signed::parse("v0:{timestamp}:{body}").expect("valid template"),
        timestamp: Some(TimestampSpec::header(
            "X-Slack-Request-Timestamp",
            o.tolerance_secs,
        )),
        ..SignatureScheme::hmac_body(Digest::Sha256, "X-Slack-Signature", "v0=", Encoding::Hex)
    })
}

fn build(spec: &SourceSpec<'_>) -> Result<Box<dyn Adapter>, Vec<OptionError>> {
    let o: Options = spec.options().map_err(|e| vec![e])?;
    Ok(Box::new(Slack(Declared::new(
        Declared::bind(scheme(&o), spec)?,
        Naming::default(),
    ))))
}

/// A configured Slack source.
#[derive(Debug)]
struct Slack(Declared);

fn text<'v>(body: &'v Value, pointer: &str) -> Option<&'v str> {
    body.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

impl Adapter for Slack {
    fn verifier(&self) -> &Verifier {
        self.0.verifier()
    }

    fn identify(&self, req: &Request<'_>, body: &Value) -> Result<Identity, IdentifyError> {
        let delivery_id = text(body, "/event_id")
            .or_else(|| text(body, "/trigger_id"))
            .map(str::to_owned)
            .unwrap_or_else(|| verify::sha256_hex(req.body));
        let (event, action, disposition) = if text(body, "/type") == Some("url_verification") {
            let challenge = text(body, "/challenge").unwrap_or_default().to_owned();
            let reply = Reply {
                content_type: "text/plain",
                body: challenge,
            };
            ("url_verification".to_owned(), None, Disposition::Reply(reply))
        } else if let Some(inner) = text(body, "/event/type") {
            // Events API: the envelope is `event_callback`; the inner type names the event.
            let sub = text(body, "/event/subtype").map(str::to_owned);
            // The app's own posts come back as events: delivering them would let a session
            // that answers in Slack talk to itself.
            let app = text(body, "/api_app_id");
            let own = app.is_some()
                && (text(body, "/event/app_id") == app || text(body, "/event/bot_profile/app_id") == app);
            let disposition = if own {
                Disposition::Acknowledge
            } else {
                Disposition::Deliver
            };
            (inner.to_owned(), sub, disposition)
        } else if let Some(command) = text(body, "/command") {
            let name = command.trim_start_matches('/').to_owned();
            ("slash_command".to_owned(), Some(name), Disposition::Deliver)
        } else if let Some(kind) = text(body, "/type") {
            (kind.to_owned(), None, Disposition::Deliver)
        } else {
            return Err(IdentifyError(
                "no event type, command or interaction type in the body".into(),
            ));
        };
        // A slash command's answer is shown to the user who typed it; interactions must get
        // an empty 200. Events API deliveries only need a 2xx.
        let reply = match event.as_str() {
            "slash_command" => Some("Sent to the Claude Code session."),
            "block_actions" | "view_submission" | "view_closed" | "shortcut" | "message_action" => Some(""),
            _ => None,
        }
        .map(|text| Reply {
            content_type: "text/plain",
            body: text.into(),
        });
        Ok(Identity {
            event,
            action,
            delivery_id,
            disposition,
            reply,
            meta: Vec::new(),
        })
    }
}
