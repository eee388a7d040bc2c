//! Slack's code: the Events API's `url_verification` is answered with its challenge and never
//! delivered; events are named by their inner type and subtype, slash commands by their
//! command, interactions by their type, and the app's own posts are acknowledged without
//! delivery (a session answering in Slack must not talk to itself). Commands and
//! interactions get the immediate reply Slack requires.

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
    let declared = declared.expect("the slack preset declares its type");
    Ok(Box::new(Slack(declared)))
}

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
