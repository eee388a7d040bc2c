//! A fake GitHub REST API and a fake Slack Web API (one axum server on a local port) that
//! record every request they get, and a `config.yaml` whose `tools:` point at them: the
//! reply and action tools (issue 6) are tested against these by tests/it/tools.rs (a fake Claude
//! Code) and tests/it/real_clients.rs (the official MCP TypeScript SDK client).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hookwire_core::axum;
use serde_json::{json, Value};

use super::TempDir;

/// The GitHub webhook secret of [`tools_config`] (`T_GH_SECRET`).
pub const GH_SECRET: &str = "test-github-secret-tools-1";
/// The Datadog source's token of [`tools_config`] (`T_DD_TOKEN`, sent as `X-Hookwire-Token`).
pub const DD_TOKEN: &str = "test-datadog-token-tools-2";
/// The GitHub API token of [`tools_config`] (`T_GITHUB_TOKEN`).
pub const GITHUB_TOKEN: &str = "ghp_testtoken_0123456789";
/// The Slack bot token of [`tools_config`] (`T_SLACK_TOKEN`).
pub const SLACK_TOKEN: &str = "xoxb-test-0123-4567";

/// The environment [`tools_config`] reads its secrets from.
pub const ENV: &[(&str, &str)] = &[
    ("T_GH_SECRET", GH_SECRET),
    ("T_DD_TOKEN", DD_TOKEN),
    ("T_GITHUB_TOKEN", GITHUB_TOKEN),
    ("T_SLACK_TOKEN", SLACK_TOKEN),
];

/// One request the fake APIs received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: Value,
}

/// A fake GitHub REST API and Slack Web API on one local port.
///
/// GitHub: `POST /repos/{o}/{r}/issues` answers issue 42, `.../issues/{n}/comments` comment
/// 99, `.../issues/{n}/labels` the labels plus an `existing` one; anything under
/// `/repos/acme/gone` is 404. Slack: `POST /api/chat.postMessage` answers `ok` in channel
/// `C0INCIDENTS`; the incoming webhook `/services/T0/B0/good` answers `ok`, any other 404.
pub struct FakeApis {
    seen: Arc<Mutex<Vec<Seen>>>,
    addr: std::net::SocketAddr,
    _rt: tokio::runtime::Runtime,
}

impl FakeApis {
    pub fn start() -> FakeApis {
        use axum::body::Body;
        use axum::extract::{Request, State};
        use axum::http::{header, StatusCode};
        use axum::response::{IntoResponse, Response};

        async fn handle(State(seen): State<Arc<Mutex<Vec<Seen>>>>, req: Request) -> Response {
            let method = req.method().to_string();
            let path = req.uri().path().to_owned();
            let (authorization, content_type) = {
                let get = |h: header::HeaderName| {
                    req.headers()
                        .get(h)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                (get(header::AUTHORIZATION), get(header::CONTENT_TYPE))
            };
            let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            seen.lock().unwrap().push(Seen {
                method,
                path: path.clone(),
                authorization,
                content_type,
                body: body.clone(),
            });
            let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            let (status, answer) = match segs.as_slice() {
                ["repos", "acme", "gone", ..] => (StatusCode::NOT_FOUND, json!({"message": "Not Found"})),
                ["repos", o, r, "issues"] => (
                    StatusCode::CREATED,
                    json!({"id": 1, "number": 42, "title": body["title"],
                           "html_url": format!("https://github.com/{o}/{r}/issues/42")}),
                ),
                ["repos", o, r, "issues", n, "comments"] => (
                    StatusCode::CREATED,
                    json!({"id": 99, "body": body["body"],
                           "html_url": format!("https://github.com/{o}/{r}/issues/{n}#issuecomment-99")}),
                ),
                ["repos", _, _, "issues", _, "labels"] => {
                    let mut labels = vec![json!({"id": 1, "name": "existing"})];
                    for l in body["labels"].as_array().cloned().unwrap_or_default() {
                        labels.push(json!({"id": 2, "name": l}));
                    }
                    (StatusCode::OK, Value::Array(labels))
                }
                ["services", "T0", "B0", "good"] => (StatusCode::OK, json!("ok")),
                ["api", "chat.postMessage"] => (
                    StatusCode::OK,
                    json!({"ok": true, "channel": "C0INCIDENTS", "ts": "1764000900.000100",
                           "message": {"text": body["text"]}}),
                ),
                _ => (StatusCode::NOT_FOUND, json!({"message": "Not Found"})),
            };
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from(answer.to_string()),
            )
                .into_response()
        }

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new().fallback(handle).with_state(seen.clone());
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move { axum::serve(listener, app).await });
        FakeApis { seen, addr, _rt: rt }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Writes `config.yaml` in `dir`: sources `github` and `datadog` (secrets from [`ENV`]),
/// `permissions` granted, and both tool sections pointing at `apis` (GitHub repos `acme/web`,
/// `acme-ops/*`, `acme/gone`; Slack channels `#incidents`, `C0123ABCD`). Returns its path.
pub fn tools_config(dir: &TempDir, apis: &FakeApis, permissions: &[&str]) -> PathBuf {
    let perms = serde_json::to_string(permissions).unwrap();
    dir.write(
        "config.yaml",
        &format!(
            r##"metrics: true
channel:
  sources: [github, datadog]
  permissions: {perms}
sources:
  - name: github
    type: github
    secret_env: T_GH_SECRET
  - name: datadog
    type: datadog
    secret_env: T_DD_TOKEN
tools:
  github:
    token_env: T_GITHUB_TOKEN
    api_url: {url}
    repos: [acme/web, acme-ops/*, acme/gone]
  slack:
    bot_token_env: T_SLACK_TOKEN
    api_url: {url}/api
    channels: ["#incidents", C0123ABCD]
"##,
            url = apis.url()
        ),
    )
}
