//! `hookwire connect gitlab`: a GitLab project hook through the REST API (v4), as `connect
//! github` does for GitHub: the hook whose URL is the source's, a fresh secret token in its
//! `secret_file`, the events its filter or templates use (GitLab's `object_kind`s, mapped to
//! the hook's `*_events` flags), idempotent, `--rotate` and `--remove`. GitLab sends the
//! token verbatim in `X-Gitlab-Token`, as the `gitlab` source expects.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use hookwire_core::config;
use serde_json::{json, Map, Value};

use super::{install_secret, plan, read_secret, safe_name, Failure, Plan, PER_PAGE};
use Failure::{Failed, Usage};

/// The API token's environment variable.
const TOKEN_ENV: &str = "GITLAB_TOKEN";

/// Each hook flag and the `object_kind` it sends.
const FLAGS: &[(&str, &str)] = &[
    ("push", "push_events"),
    ("tag_push", "tag_push_events"),
    ("issue", "issues_events"),
    ("merge_request", "merge_requests_events"),
    ("note", "note_events"),
    ("build", "job_events"),
    ("pipeline", "pipeline_events"),
    ("wiki_page", "wiki_page_events"),
    ("deployment", "deployment_events"),
    ("release", "releases_events"),
];

/// `hookwire connect gitlab` arguments.
#[derive(Args)]
pub struct GitlabArgs {
    /// The configuration file.
    #[arg(long, env = "HOOKWIRE_CONFIG", default_value = "config.yaml")]
    config: PathBuf,
    /// The source (default: the one source of type gitlab).
    #[arg(long)]
    source: Option<String>,
    /// The project whose hook it is, by path.
    #[arg(long, value_name = "GROUP/NAME")]
    project: String,
    /// The URL GitLab posts to (default: the source's `public_url`).
    #[arg(long)]
    url: Option<String>,
    /// The GitLab API.
    #[arg(long, value_name = "URL", default_value = "https://gitlab.com/api/v4")]
    api_url: String,
    /// Give the hook a new secret token, keeping the previous one valid in the second file.
    #[arg(long, conflicts_with = "remove")]
    rotate: bool,
    /// Delete the hook with this URL.
    #[arg(long)]
    remove: bool,
}

/// Runs `hookwire connect gitlab`.
pub(super) fn gitlab(args: &GitlabArgs) -> Result<(), Failure> {
    let cfg = config::load_without_secrets(&args.config, &hookwire::registry())
        .map_err(|e| Usage(e.to_string()))?;
    let plan = plan(&cfg, "gitlab", args.source.as_deref(), args.url.as_deref())?;
    if args.rotate {
        plan.can_rotate(&args.config)?;
    }
    let segments: Vec<&str> = args.project.split('/').collect();
    if segments.len() < 2 || !segments.iter().all(|s| safe_name(s)) {
        return Err(Usage(format!("--project `{}` is not GROUP/NAME", args.project)));
    }
    let token = std::env::var(TOKEN_ENV)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Usage(format!(
                "no GitLab token: export {TOKEN_ENV} (a token with the api scope, Maintainer of the project)"
            ))
        })?;
    let api = Api {
        agent: ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build(),
        hooks: format!(
            "{}/projects/{}/hooks",
            args.api_url.trim_end_matches('/'),
            segments.join("%2F")
        ),
        token,
    };
    let project = &args.project;
    let hook = api.find(&plan.url)?;
    if args.remove {
        match hook {
            Some(h) => {
                api.call("DELETE", &format!("/{}", id(&h)?), None)?;
                println!("removed hook {} of {project} ({})", h["id"], plan.url);
            }
            None => println!("no hook of {project} posts to {}: nothing removed", plan.url),
        }
        return Ok(());
    }
    let flags = flags(&plan);
    let body = |secret: &str| {
        let mut b = flags.clone();
        b.insert("url".into(), json!(plan.url));
        b.insert("token".into(), json!(secret));
        b.insert("enable_ssl_verification".into(), json!(true));
        Value::Object(b)
    };
    match (hook, read_secret(&plan.secret_files[0])) {
        (None, _) => {
            let secret = install_secret(&plan.secret_files)?;
            let created = api.call("POST", "", Some(&body(&secret)))?;
            println!(
                "created hook {} of {project}: {} for {}; secret token written to {} (0600)",
                created["id"],
                plan.url,
                plan.events.join(", "),
                plan.secret_files[0].display()
            );
        }
        (Some(h), Some(secret)) if !args.rotate => {
            if flags.iter().all(|(k, v)| h[k] == *v) {
                println!("hook {} of {project} is up to date: nothing changed", h["id"]);
                return Ok(());
            }
            api.call("PUT", &format!("/{}", id(&h)?), Some(&body(&secret)))?;
            println!(
                "updated hook {} of {project}: {} for {}",
                h["id"],
                plan.url,
                plan.events.join(", ")
            );
        }
        (Some(h), _) => {
            let secret = install_secret(&plan.secret_files)?;
            api.call("PUT", &format!("/{}", id(&h)?), Some(&body(&secret)))?;
            println!(
                "new secret token for hook {} of {project}, written to {} (0600); GitLab confirmed it",
                h["id"],
                plan.secret_files[0].display()
            );
            if let Some(previous) = plan.secret_files.get(1) {
                println!(
                    "the previous token stays valid in {} until the next rotation",
                    previous.display()
                );
            }
        }
    }
    Ok(())
}

/// Every flag GitLab knows, on for the source's events (all for `*`).
fn flags(plan: &Plan) -> Map<String, Value> {
    let all = plan.events.iter().any(|e| e == "*");
    FLAGS
        .iter()
        .map(|(kind, flag)| {
            (
                (*flag).to_owned(),
                json!(all || plan.events.iter().any(|e| e == kind)),
            )
        })
        .collect()
}

fn id(hook: &Value) -> Result<u64, Failure> {
    hook["id"]
        .as_u64()
        .ok_or_else(|| Failed("GitLab's hook has no numeric id".into()))
}

/// The project's hooks endpoint, with the token.
struct Api {
    agent: ureq::Agent,
    hooks: String,
    token: String,
}

impl Api {
    /// `method` on the hooks endpoint + `path`; the JSON answer (`null` for none).
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let req = self
            .agent
            .request(method, &format!("{}{path}", self.hooks))
            .set("PRIVATE-TOKEN", &self.token);
        let resp = match body {
            Some(b) => req
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        match resp {
            Ok(r) => {
                let text = r.into_string().unwrap_or_default();
                Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(ureq::Error::Status(code, r)) => {
                let message = r
                    .into_string()
                    .ok()
                    .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                    .and_then(|v| v.get("message").map(Value::to_string))
                    .unwrap_or_default();
                Err(Failed(format!("GitLab answered {code} {message}")))
            }
            Err(e) => Err(Failed(format!("the GitLab request failed: {}", e.kind()))),
        }
    }

    /// The hook whose URL is `url`, looked for page by page.
    fn find(&self, url: &str) -> Result<Option<Value>, Failure> {
        for page in 1.. {
            let hooks = self.call("GET", &format!("?per_page={PER_PAGE}&page={page}"), None)?;
            let hooks = hooks.as_array().cloned().unwrap_or_default();
            if let Some(h) = hooks.iter().find(|h| h["url"] == url) {
                return Ok(Some(h.clone()));
            }
            if hooks.len() < PER_PAGE {
                break;
            }
        }
        Ok(None)
    }
}
