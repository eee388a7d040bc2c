//! `connect:` of a GitHub source: where its webhook lives on GitHub (a repository or an
//! organisation), the API token and URL hookwire may use for it, and the automatic catch-up
//! after downtime (`catch_up`, `max_redeliveries`), checked at load. `hookwire connect
//! github` and the catch-up job (in the binary) use it; nothing in core calls GitHub for it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::secret::{Secret, SecretRef};

/// Redeliveries asked per catch-up run unless `max_redeliveries` says.
pub const DEFAULT_MAX_REDELIVERIES: usize = 50;
/// GitHub lists at most 100 deliveries a page and catch-up reads one page.
const MAX_REDELIVERIES: usize = 100;

/// `connect:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    repo: Option<String>,
    org: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    api_url: Option<String>,
    #[serde(default = "yes")]
    catch_up: bool,
    #[serde(default = "default_max")]
    max_redeliveries: usize,
}

fn yes() -> bool {
    true
}

fn default_max() -> usize {
    DEFAULT_MAX_REDELIVERIES
}

/// Whose webhook it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOwner {
    /// A repository's: `owner/name`.
    Repo(String, String),
    /// An organisation's.
    Org(String),
}

/// A source's `connect:` settings, checked.
#[derive(Debug, Clone)]
pub struct ConnectSettings {
    /// Whose webhook it is.
    pub owner: HookOwner,
    /// The API token (`token_env` / `token_file`); `None` when neither is given (then
    /// `tools.github`'s is used, if any) or when the config was loaded without secrets.
    pub token: Option<Secret>,
    /// The API base URL, if given (GitHub Enterprise: `https://HOST/api/v3`).
    pub api_url: Option<String>,
    /// Whether `serve` and a listening `channel` ask GitHub to redeliver what failed while
    /// they were down (needs a token).
    pub catch_up: bool,
    /// At most this many redeliveries asked per catch-up run.
    pub max_redeliveries: usize,
}

impl ConnectSettings {
    /// The hooks route of the API: `/repos/OWNER/NAME/hooks` or `/orgs/ORG/hooks`.
    pub fn hooks_route(&self) -> String {
        match &self.owner {
            HookOwner::Repo(owner, name) => format!("/repos/{owner}/{name}/hooks"),
            HookOwner::Org(org) => format!("/orgs/{org}/hooks"),
        }
    }

    /// `owner/name` or the organisation, for messages.
    pub fn owner_name(&self) -> String {
        match &self.owner {
            HookOwner::Repo(owner, name) => format!("{owner}/{name}"),
            HookOwner::Org(org) => org.clone(),
        }
    }

    /// Parses and checks a `connect:` block; the token is read when `read_secrets`.
    /// `(field, message)` on error, the field relative to `connect`.
    pub fn from_yaml(
        value: &serde_norway::Value,
        base: &Path,
        read_secrets: bool,
    ) -> Result<ConnectSettings, (&'static str, String)> {
        let spec: Spec = serde_norway::from_value(value.clone()).map_err(|e| ("", e.to_string()))?;
        let owner = match (spec.repo, spec.org) {
            (Some(repo), None) => match repo.split_once('/') {
                Some((o, n)) if safe_name(o) && safe_name(n) => HookOwner::Repo(o.to_owned(), n.to_owned()),
                _ => return Err(("repo", format!("`{repo}` is not OWNER/NAME"))),
            },
            (None, Some(org)) if safe_name(&org) => HookOwner::Org(org),
            (None, Some(org)) => return Err(("org", format!("`{org}` is not an organisation name"))),
            _ => return Err(("", "give repo: OWNER/NAME or org: ORG (one of them)".into())),
        };
        if let Some(u) = &spec.api_url {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                return Err(("api_url", format!("`{u}` is not an http(s) URL")));
            }
        }
        if !(1..=MAX_REDELIVERIES).contains(&spec.max_redeliveries) {
            return Err((
                "max_redeliveries",
                format!("must be between 1 and {MAX_REDELIVERIES} (one page of GitHub's deliveries)"),
            ));
        }
        let token = match (spec.token_env, spec.token_file) {
            (Some(_), Some(_)) => return Err(("", "give token_env or token_file, not both".into())),
            (Some(v), None) if read_secrets => Some(("token_env", SecretRef::Env(v))),
            (None, Some(f)) if read_secrets => Some(("token_file", SecretRef::File(f))),
            _ => None,
        };
        let token = match token {
            None => None,
            Some((field, r)) => Some(r.load(base).map_err(|e| (field, e.to_string()))?),
        };
        Ok(ConnectSettings {
            owner,
            token,
            api_url: spec.api_url,
            catch_up: spec.catch_up,
            max_redeliveries: spec.max_redeliveries,
        })
    }
}

/// GitHub's owner, repository and organisation names: no path or query characters, so a
/// route can never be steered elsewhere.
fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<ConnectSettings, (&'static str, String)> {
        ConnectSettings::from_yaml(&serde_norway::from_str(yaml).unwrap(), Path::new("."), true)
    }

    #[test]
    fn repo_or_org_and_bounds_are_checked() {
        let s = parse("repo: acme/web").unwrap();
        assert_eq!(s.hooks_route(), "/repos/acme/web/hooks");
        assert!(s.catch_up && s.token.is_none());
        assert_eq!(s.max_redeliveries, DEFAULT_MAX_REDELIVERIES);
        assert_eq!(parse("org: acme").unwrap().hooks_route(), "/orgs/acme/hooks");
        assert_eq!(parse("repo: acme/../x").unwrap_err().0, "repo");
        assert_eq!(parse("org: a/b").unwrap_err().0, "org");
        assert_eq!(parse("{repo: a/b, org: a}").unwrap_err().0, "");
        assert_eq!(
            parse("{repo: a/b, max_redeliveries: 0}").unwrap_err().0,
            "max_redeliveries"
        );
        assert_eq!(
            parse("{repo: a/b, max_redeliveries: 101}").unwrap_err().0,
            "max_redeliveries"
        );
        assert!(parse("{repo: a/b, catchup: true}")
            .unwrap_err()
            .1
            .contains("unknown field"));
        assert_eq!(
            parse("{repo: a/b, token_env: T_CONNECT_SURELY_UNSET}")
                .unwrap_err()
                .0,
            "token_env"
        );
    }
}
