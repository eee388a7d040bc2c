//! `tools:` in config.yaml: the action tools' credentials and allowlists, and which config
//! section each permission needs. Parsed here, with the rest of the config; the tools
//! themselves ([`crate::tools`]) only read the settings.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::diagnostics::Problems;
use crate::secret::{Secret, SecretRef};

/// Every permission a token may grant (`hookwire token create --permissions`, `channel.permissions`): what its
/// sessions may do in response to events.
pub const PERMISSIONS: &[&str] = &[
    "create-issues",
    "post-comments",
    "add-labels",
    "post-slack-message",
    "read-events",
];

/// The default GitHub API.
pub const GITHUB_API: &str = "https://api.github.com";
/// The default Slack Web API.
pub const SLACK_API: &str = "https://slack.com/api";

/// `tools:` in config.yaml: credentials and allowlists of the action tools.
#[derive(Debug, Clone, Default)]
pub struct ToolsSettings {
    /// `tools.github`.
    pub github: Option<GithubSettings>,
    /// `tools.slack`.
    pub slack: Option<SlackSettings>,
}

/// `tools.github`.
#[derive(Debug, Clone)]
pub struct GithubSettings {
    /// The token (`token_env` / `token_file`).
    pub token: Secret,
    /// API base URL (GitHub Enterprise: `https://HOST/api/v3`).
    pub api_url: String,
    /// Repositories the tools may act on.
    pub repos: Vec<RepoPattern>,
}

/// `tools.slack`.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    /// How messages are posted.
    pub auth: SlackAuth,
    /// Web API base URL.
    pub api_url: String,
    /// Channels (`#name` or id) `slack_post_message` may post to, exactly as written: a call
    /// must name one byte for byte, and that is what is sent.
    pub channels: Vec<String>,
}

/// How Slack messages are posted.
#[derive(Debug, Clone)]
pub enum SlackAuth {
    /// `chat.postMessage` with a bot token (`xoxb-...`).
    BotToken(Secret),
    /// An incoming-webhook URL: it posts to the one channel it was created for.
    WebhookUrl(Secret),
}

/// An allowlisted repository: `owner/name` or `owner/*`, matched case-insensitively because
/// GitHub's names are (every casing of `acme/web` is that one repository, and no one can
/// create another). So the value checked, sent as written, names the repository that was
/// allowed; anything else that might normalise to it (spaces, non-ASCII look-alikes, `%2F`)
/// is not a repository name at all (`split_repo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPattern {
    owner: String,
    /// `None` = every repository of the owner.
    name: Option<String>,
}

impl RepoPattern {
    /// Parses `owner/name` or `owner/*`.
    pub fn parse(s: &str) -> Result<RepoPattern, String> {
        let (owner, name) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not owner/name or owner/*"))?;
        if !valid_segment(owner) {
            return Err(format!("`{s}`: `{owner}` is not a GitHub owner"));
        }
        let name = match name {
            "*" => None,
            n if valid_segment(n) => Some(n.to_ascii_lowercase()),
            _ => return Err(format!("`{s}` is not owner/name or owner/*")),
        };
        Ok(RepoPattern {
            owner: owner.to_ascii_lowercase(),
            name,
        })
    }

    /// Whether `owner/name` is covered.
    pub fn matches(&self, owner: &str, name: &str) -> bool {
        self.owner.eq_ignore_ascii_case(owner)
            && self.name.as_deref().is_none_or(|n| n.eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for RepoPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name.as_deref().unwrap_or("*"))
    }
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// `owner/name` → its parts, refusing anything that is not a plain repository name (so a
/// route can never be steered elsewhere).
pub(crate) fn split_repo(repo: &str) -> Result<(String, String), String> {
    match repo.split_once('/') {
        Some((o, n)) if valid_segment(o) && valid_segment(n) => Ok((o.to_owned(), n.to_owned())),
        _ => Err(format!("`{repo}` is not a repository: pass \"owner/name\"")),
    }
}

// ---------------------------------------------------------------------------------------
// config.yaml

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTools {
    #[serde(default)]
    github: Option<RawGithub>,
    #[serde(default)]
    slack: Option<RawSlack>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGithub {
    #[serde(default)]
    token_env: Option<String>,
    #[serde(default)]
    token_file: Option<PathBuf>,
    #[serde(default)]
    api_url: Option<String>,
    #[serde(default)]
    repos: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    #[serde(default)]
    bot_token_env: Option<String>,
    #[serde(default)]
    bot_token_file: Option<PathBuf>,
    #[serde(default)]
    webhook_url_env: Option<String>,
    #[serde(default)]
    webhook_url_file: Option<PathBuf>,
    #[serde(default)]
    api_url: Option<String>,
    #[serde(default)]
    channels: Vec<String>,
}

/// What `tools:` declares, whether or not its secrets could be read: the permission checks
/// use it so a missing variable is reported once, at the variable.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Declared {
    pub github: bool,
    pub slack: bool,
}

/// Keys that would put a credential in the file.
const INLINE_SECRETS: &[&str] = &["token", "bot_token", "webhook_url", "secret"];

/// Parses `tools:`; with `read_secrets` false no secret is read and no settings are built.
pub(crate) fn parse(
    p: &mut Problems<'_>,
    value: Option<&serde_norway::Value>,
    base: &Path,
    read_secrets: bool,
) -> (ToolsSettings, Declared) {
    let mut out = ToolsSettings::default();
    let Some(value) = value else {
        return (out, Declared::default());
    };
    for section in ["github", "slack"] {
        for key in INLINE_SECRETS {
            if value.get(section).and_then(|s| s.get(*key)).is_some() {
                p.add(
                    &format!("tools.{section}.{key}"),
                    "secrets are never written in the config file",
                    Some(format!(
                        "name an environment variable ({key}_env) or a file ({key}_file) instead"
                    )),
                );
                return (out, Declared::default());
            }
        }
    }
    let raw: RawTools = match serde_path_to_error::deserialize(value.clone()) {
        Ok(r) => r,
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." {
                "tools".to_owned()
            } else {
                format!("tools.{path}")
            };
            p.add(
                &field,
                e.into_inner().to_string(),
                Some(
                    "tools takes github: {token_env, api_url, repos} and slack: {bot_token_env or webhook_url_env, api_url, channels}"
                        .into(),
                ),
            );
            return (out, Declared::default());
        }
    };
    let declared = Declared {
        github: raw.github.is_some(),
        slack: raw.slack.is_some(),
    };
    let load = |p: &mut Problems<'_>, field: &str, r: SecretRef| -> Option<Secret> {
        if !read_secrets {
            return None;
        }
        match r.load(base) {
            Ok(s) => Some(s),
            Err(e) => {
                // tools.github.token_env → token_file: the key that reads a file instead.
                let key = field.rsplit('.').next().unwrap_or(field);
                let file_key = key.strip_suffix("_env").map(|k| format!("{k}_file"));
                p.add(
                    field,
                    e.to_string(),
                    Some(e.hint(file_key.as_deref().unwrap_or(key))),
                );
                None
            }
        }
    };
    let api_url = |p: &mut Problems<'_>, field: &str, v: Option<String>, default: &str| -> Option<String> {
        let v = v.unwrap_or_else(|| default.to_owned());
        if (v.starts_with("https://") || v.starts_with("http://")) && !v.contains(['?', '#', ' ']) {
            Some(v.trim_end_matches('/').to_owned())
        } else {
            p.add(
                field,
                format!("`{v}` is not an http(s) URL"),
                Some(format!("e.g. {default}")),
            );
            None
        }
    };

    if let Some(g) = raw.github {
        let token = match (g.token_env, g.token_file) {
            (Some(v), None) => load(p, "tools.github.token_env", SecretRef::Env(v)),
            (None, Some(f)) => load(p, "tools.github.token_file", SecretRef::File(f)),
            (Some(_), Some(_)) => {
                p.add("tools.github", "give token_env or token_file, not both", None);
                None
            }
            (None, None) => {
                p.add(
                    "tools.github",
                    "no token",
                    Some("add token_env: GITHUB_TOKEN (a fine-grained token with issues: write on the allowed repositories)".into()),
                );
                None
            }
        };
        let url = api_url(p, "tools.github.api_url", g.api_url, GITHUB_API);
        let mut repos = Vec::new();
        if g.repos.is_empty() {
            p.add(
                "tools.github.repos",
                "no repositories allowed",
                Some("list the repositories the tools may act on, e.g. repos: [acme/web, acme-ops/*]".into()),
            );
        }
        for (i, r) in g.repos.iter().enumerate() {
            match RepoPattern::parse(r) {
                Ok(pat) => repos.push(pat),
                Err(e) => p.add(&format!("tools.github.repos[{i}]"), e, None),
            }
        }
        if let (Some(token), Some(api_url)) = (token, url) {
            if repos.len() == g.repos.len() && !repos.is_empty() {
                out.github = Some(GithubSettings {
                    token,
                    api_url,
                    repos,
                });
            }
        }
    }

    if let Some(s) = raw.slack {
        let refs = [
            ("bot_token_env", s.bot_token_env.map(SecretRef::Env), true),
            ("bot_token_file", s.bot_token_file.map(SecretRef::File), true),
            ("webhook_url_env", s.webhook_url_env.map(SecretRef::Env), false),
            ("webhook_url_file", s.webhook_url_file.map(SecretRef::File), false),
        ];
        let given: Vec<_> = refs
            .into_iter()
            .filter_map(|(k, r, bot)| r.map(|r| (k, r, bot)))
            .collect();
        let auth = match given.len() {
            0 => {
                p.add(
                    "tools.slack",
                    "no credential",
                    Some("add bot_token_env: SLACK_BOT_TOKEN (chat:write) or webhook_url_env: SLACK_WEBHOOK_URL".into()),
                );
                None
            }
            1 => {
                let (key, r, bot) = given.into_iter().next().expect("one");
                load(p, &format!("tools.slack.{key}"), r).map(|secret| {
                    if bot {
                        SlackAuth::BotToken(secret)
                    } else {
                        SlackAuth::WebhookUrl(secret)
                    }
                })
            }
            _ => {
                p.add(
                    "tools.slack",
                    "give one of bot_token_env, bot_token_file, webhook_url_env, webhook_url_file",
                    None,
                );
                None
            }
        };
        let url = api_url(p, "tools.slack.api_url", s.api_url, SLACK_API);
        let mut ok = true;
        if s.channels.is_empty() {
            p.add(
                "tools.slack.channels",
                "no channels allowed",
                Some(
                    "list the channels the tool may post to, e.g. channels: [\"#incidents\", C0123ABCD]"
                        .into(),
                ),
            );
            ok = false;
        }
        for (i, c) in s.channels.iter().enumerate() {
            if let Err(hint) = slack_channel_entry(c) {
                p.add(
                    &format!("tools.slack.channels[{i}]"),
                    format!("`{c}` is not a channel name or id"),
                    Some(hint),
                );
                ok = false;
            }
        }
        if let (Some(auth), Some(api_url), true) = (auth, url, ok) {
            out.slack = Some(SlackSettings {
                auth,
                api_url,
                channels: s.channels,
            });
        }
    }
    (out, declared)
}

/// Checks one `tools.slack.channels` entry: `#name` (Slack's names: lower case letters,
/// digits, `-`, `_`, `.`) or a conversation id (upper case letters and digits, `C0123ABCD`).
/// Calls must name an entry exactly and the entry is what is sent, so each must be the one
/// spelling Slack reads as the intended channel: a bare `incidents` or `#Incidents` would be
/// another spelling of a name, `c0123abcd` a name rather than an id. `Err` is the hint.
fn slack_channel_entry(c: &str) -> Result<(), String> {
    let quoted = "quoted: # starts a YAML comment";
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    let id = c.starts_with(|ch: char| ch.is_ascii_uppercase())
        && c.len() > 1
        && c.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    match c.strip_prefix('#') {
        Some(name) if plain(name) && !name.bytes().any(|b| b.is_ascii_uppercase()) => Ok(()),
        Some(name) if plain(name) => Err(format!(
            "Slack channel names are lower case: write \"#{}\" ({quoted})",
            name.to_ascii_lowercase()
        )),
        None if id => Ok(()),
        None if plain(c) => Err(format!(
            "a channel name starts with #: write \"#{}\" ({quoted}); an id is upper case, such as C0123ABCD",
            c.to_ascii_lowercase()
        )),
        _ => Err(format!("write \"#name\" ({quoted}) or an id such as C0123ABCD")),
    }
}

/// The config section a permission's tools need (`None`: nothing).
pub fn needs(permission: &str) -> Option<&'static str> {
    match permission {
        "create-issues" | "post-comments" | "add-labels" => Some("github"),
        "post-slack-message" => Some("slack"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_patterns() {
        let p = RepoPattern::parse("Acme/*").unwrap();
        assert!(p.matches("acme", "web"));
        assert!(!p.matches("acme-ops", "web"));
        let p = RepoPattern::parse("acme/web").unwrap();
        assert!(p.matches("ACME", "Web"));
        assert!(!p.matches("acme", "web2"));
        assert!(RepoPattern::parse("acme").is_err());
        assert!(RepoPattern::parse("acme/../x").is_err());
        assert!(split_repo("acme/web/issues").is_err());
        assert!(split_repo("../web").is_err());
    }

    #[test]
    fn slack_channel_entries_are_one_spelling_of_a_name_or_an_id() {
        for ok in ["#incidents", "#ops-alerts_2", "#a.b", "C0123ABCD", "G012AB", "D1"] {
            assert_eq!(slack_channel_entry(ok), Ok(()), "{ok}");
        }
        for (bad, hint) in [
            ("incidents", "write \"#incidents\""),
            ("c0123abcd", "write \"#c0123abcd\""),
            ("#Incidents", "write \"#incidents\""),
            ("#", "#name"),
            ("", "#name"),
            ("##x", "#name"),
            ("#in cidents", "#name"),
            (" C0123ABCD", "#name"),
            ("#caf\u{e9}", "#name"),
        ] {
            let e = slack_channel_entry(bad).expect_err(bad);
            assert!(e.contains(hint), "{bad:?}: {e}");
        }
    }
}
