//! The Slack action tool (`slack_post_message`): the Web API's `chat.postMessage` with a bot
//! token, or an incoming-webhook URL; limited to the `tools.slack.channels` allowlist. ureq
//! is blocking, so calls run on tokio's blocking pool.

use std::time::Duration;

use serde_json::{json, Value};

use super::{SlackAuth, SlackSettings};

/// Whole-request timeout of one Slack call.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A Slack poster bound to its allowlist.
#[derive(Debug, Clone)]
pub struct Slack {
    settings: SlackSettings,
    agent: ureq::Agent,
}

impl Slack {
    /// A poster for `settings` (no request is made).
    pub fn new(settings: &SlackSettings) -> Slack {
        Slack {
            settings: settings.clone(),
            agent: ureq::AgentBuilder::new().timeout(TIMEOUT).build(),
        }
    }

    /// Checks `channel` against the allowlist: it must be one of the entries exactly (a
    /// `#name` or a channel id, as listed), which is returned to be sent. Nothing is
    /// normalised: Slack reads `#c0123abcd` as a channel name anyone may create, not as the id
    /// `C0123ABCD`, so a check on a folded copy would allow what it never meant to.
    pub fn scope(&self, channel: &str) -> Result<&str, String> {
        match self.settings.channels.iter().find(|c| c.as_str() == channel) {
            Some(c) => Ok(c),
            None => {
                let shown: String = channel.chars().take(100).collect();
                Err(format!(
                    "Slack channel `{}` is not in the allowlist (tools.slack.channels, matched exactly: {}); nothing was sent",
                    shown.escape_debug(),
                    self.settings.channels.join(", ")
                ))
            }
        }
    }

    /// Posts `text` to `channel` (in the thread `thread_ts` if given): pass what [`Slack::scope`]
    /// returned. Blocking.
    pub fn post(&self, channel: &str, text: &str, thread_ts: Option<&str>) -> Result<Value, String> {
        match &self.settings.auth {
            SlackAuth::BotToken(token) => {
                let token = std::str::from_utf8(token.expose())
                    .map_err(|_| "the Slack bot token is not UTF-8".to_owned())?
                    .trim();
                let mut body = json!({"channel": channel, "text": text});
                if let Some(ts) = thread_ts {
                    body["thread_ts"] = json!(ts);
                }
                let url = format!("{}/chat.postMessage", self.settings.api_url.trim_end_matches('/'));
                let reply = self
                    .agent
                    .post(&url)
                    .set("Authorization", &format!("Bearer {token}"))
                    .set("Content-Type", "application/json; charset=utf-8")
                    .send_string(&body.to_string());
                let reply: Value = match reply {
                    Ok(r) => r
                        .into_string()
                        .ok()
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .ok_or_else(|| "Slack's answer was not JSON".to_owned())?,
                    Err(e) => return Err(describe(e)),
                };
                if reply["ok"] == json!(true) {
                    Ok(json!({"channel": reply["channel"], "ts": reply["ts"]}))
                } else {
                    Err(format!(
                        "Slack refused the message: {}",
                        reply["error"].as_str().unwrap_or("no error given")
                    ))
                }
            }
            SlackAuth::WebhookUrl(url) => {
                let url = std::str::from_utf8(url.expose())
                    .map_err(|_| "the Slack webhook URL is not UTF-8".to_owned())?
                    .trim();
                let mut body = json!({"text": text});
                if let Some(ts) = thread_ts {
                    body["thread_ts"] = json!(ts);
                }
                match self
                    .agent
                    .post(url)
                    .set("Content-Type", "application/json")
                    .send_string(&body.to_string())
                {
                    Ok(_) => Ok(json!({"channel": channel, "via": "incoming webhook"})),
                    Err(e) => Err(describe(e)),
                }
            }
        }
    }
}

/// A ureq failure in words, never with the URL (an incoming-webhook URL is a secret).
fn describe(e: ureq::Error) -> String {
    match e {
        ureq::Error::Status(code, r) => {
            let body = r.into_string().unwrap_or_default();
            let body: String = body.chars().take(200).collect();
            format!("Slack answered HTTP {code}: {body}")
        }
        ureq::Error::Transport(t) => format!("cannot reach Slack ({:?})", t.kind()),
    }
}
