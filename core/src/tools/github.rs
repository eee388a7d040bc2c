//! The GitHub action tools (`github_create_issue`, `github_comment`, `github_add_labels`):
//! octocrab against `tools.github.api_url`, limited to the `tools.github.repos` allowlist.

use std::time::Duration;

use serde_json::{json, Value};

use super::{GithubSettings, RepoPattern};

/// Connect and read timeout of one GitHub call: a tool call must answer, even if it fails.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A GitHub client bound to its allowlist.
pub struct GitHub {
    client: octocrab::Octocrab,
    repos: Vec<RepoPattern>,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("repos", &self.repos)
            .finish_non_exhaustive()
    }
}

impl GitHub {
    /// Builds the client (no request is made). The token is handed to octocrab, which keeps
    /// it in a `SecretString`.
    pub fn new(settings: &GithubSettings) -> Result<GitHub, String> {
        let token = std::str::from_utf8(settings.token.expose())
            .map_err(|_| "the GitHub token is not UTF-8".to_owned())?
            .trim()
            .to_owned();
        let client = octocrab::Octocrab::builder()
            .base_uri(settings.api_url.as_str())
            .map_err(|e| format!("tools.github.api_url: {e}"))?
            .personal_token(token)
            .set_connect_timeout(Some(TIMEOUT))
            .set_read_timeout(Some(TIMEOUT))
            .build()
            .map_err(|e| format!("cannot build the GitHub client: {e}"))?;
        Ok(GitHub {
            client,
            repos: settings.repos.clone(),
        })
    }

    /// Splits `owner/name` and checks it against the allowlist.
    pub fn scope(&self, repo: &str) -> Result<(String, String), String> {
        let (owner, name) = super::split_repo(repo)?;
        if self.repos.iter().any(|p| p.matches(&owner, &name)) {
            Ok((owner, name))
        } else {
            let allowed: Vec<String> = self.repos.iter().map(|p| p.to_string()).collect();
            Err(format!(
                "repository `{repo}` is not in the allowlist (tools.github.repos: {}); nothing was sent",
                allowed.join(", ")
            ))
        }
    }

    /// `POST /repos/{owner}/{repo}/issues`.
    pub async fn create_issue(
        &self,
        (owner, repo): &(String, String),
        title: &str,
        body: &str,
        labels: &[String],
    ) -> Result<Value, String> {
        let mut payload = json!({"title": title, "body": body});
        if !labels.is_empty() {
            payload["labels"] = json!(labels);
        }
        let r = self
            .post(&format!("/repos/{owner}/{repo}/issues"), &payload)
            .await?;
        Ok(json!({"number": r["number"], "url": r["html_url"]}))
    }

    /// `POST /repos/{owner}/{repo}/issues/{number}/comments` (issues and pull requests).
    pub async fn comment(
        &self,
        (owner, repo): &(String, String),
        number: u64,
        body: &str,
    ) -> Result<Value, String> {
        let r = self
            .post(
                &format!("/repos/{owner}/{repo}/issues/{number}/comments"),
                &json!({"body": body}),
            )
            .await?;
        Ok(json!({"id": r["id"], "url": r["html_url"]}))
    }

    /// `POST /repos/{owner}/{repo}/issues/{number}/labels` (adds; keeps existing labels).
    pub async fn add_labels(
        &self,
        (owner, repo): &(String, String),
        number: u64,
        labels: &[String],
    ) -> Result<Value, String> {
        let r = self
            .post(
                &format!("/repos/{owner}/{repo}/issues/{number}/labels"),
                &json!({"labels": labels}),
            )
            .await?;
        let now: Vec<Value> = r
            .as_array()
            .map(|a| a.iter().map(|l| l["name"].clone()).collect())
            .unwrap_or_default();
        Ok(json!({"labels": now}))
    }

    async fn post(&self, route: &str, body: &Value) -> Result<Value, String> {
        self.client
            .post::<_, Value>(route, Some(body))
            .await
            .map_err(describe)
    }
}

/// A GitHub failure in words, without the request's headers (the token).
fn describe(e: octocrab::Error) -> String {
    match e {
        octocrab::Error::GitHub { source, .. } => {
            format!("GitHub answered {}: {}", source.status_code, source.message)
        }
        octocrab::Error::Serde { .. } | octocrab::Error::Json { .. } => {
            "GitHub's answer was not the expected JSON".to_owned()
        }
        other => format!("the GitHub request failed: {other}"),
    }
}
