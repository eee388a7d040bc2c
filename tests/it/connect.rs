//! `hookwire connect github` and `connect gitlab` against a FAKE of GitHub's and GitLab's
//! remote REST APIs: an axum server in this test process that implements only the hook
//! endpoints connect calls (GitHub: list, create, update, ping, delete, deliveries and their
//! redelivery; GitLab: list, create, update, delete), keeps the hooks in memory as the vendors
//! do (a secret is never shown back) and records every request. The tests assert the exact requests, the
//! secret file's mode and content, and that a webhook signed with the new secret is accepted
//! by a real `hookwire channel`.

use crate::common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use common::{issue, wait_with_deadline, Hookwire, TempDir, DEADLINE};
use hookwire_core::axum;
use serde_json::{json, Value};

const TOKEN: &str = "ghp_connect_test_token_0123456789";
const PAYLOAD_URL: &str = "https://hooks.example.com/hooks/github";

/// One request the fake received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// Path and query.
    uri: String,
    authorization: Option<String>,
    /// GitLab's token header.
    private_token: Option<String>,
    body: Value,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    hooks: Vec<Value>,
    next_id: u64,
    /// Every hook's recent deliveries, newest first, as GitHub lists them.
    deliveries: Vec<Value>,
    /// The GitLab project `acme/web`'s hooks.
    gitlab_hooks: Vec<Value>,
    /// Redeliveries are not listed (yet), as when GitHub is slow to show them: only
    /// hookwire's own record keeps it from asking twice.
    hide_redeliveries: bool,
    /// The deliveries list never answers (a GitHub that hangs).
    stall_deliveries: bool,
}

/// The fake GitHub hooks API of repository `acme/web`.
struct FakeGithub {
    state: Arc<Mutex<State>>,
    addr: std::net::SocketAddr,
    _rt: tokio::runtime::Runtime,
}

impl FakeGithub {
    fn start() -> FakeGithub {
        use axum::body::Body;
        use axum::extract::Request;
        use axum::http::{header, Method, StatusCode};
        use axum::response::{IntoResponse, Response};

        async fn handle(
            axum::extract::State(state): axum::extract::State<Arc<Mutex<State>>>,
            req: Request,
        ) -> Response {
            let method = req.method().clone();
            let uri = req.uri().to_string();
            let path = req.uri().path().to_owned();
            let (authorization, private_token) = {
                let get = |name: &str| {
                    req.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                (get(header::AUTHORIZATION.as_str()), get("private-token"))
            };
            let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let stall = {
                let mut st = state.lock().unwrap();
                st.seen.push(Seen {
                    method: method.to_string(),
                    uri,
                    authorization,
                    private_token,
                    body: body.clone(),
                });
                st.stall_deliveries && path.ends_with("/deliveries")
            };
            if stall {
                std::future::pending::<()>().await;
            }
            let mut st = state.lock().unwrap();
            // As GitHub shows a hook: the secret masked.
            let shown = |h: &Value| {
                let mut h = h.clone();
                if h["config"].get("secret").is_some() {
                    h["config"]["secret"] = json!("********");
                }
                h
            };
            let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            let (status, answer) = match (method, segs.as_slice()) {
                (Method::GET, ["repos", "acme", "web", "hooks"]) => {
                    (StatusCode::OK, Value::Array(st.hooks.iter().map(shown).collect()))
                }
                (Method::POST, ["repos", "acme", "web", "hooks"]) => {
                    st.next_id += 1;
                    let mut hook = body.clone();
                    hook["id"] = json!(st.next_id);
                    st.hooks.push(hook.clone());
                    (StatusCode::CREATED, shown(&hook))
                }
                (method, ["repos", "acme", "web", "hooks", id, rest @ ..]) => {
                    let id: u64 = id.parse().unwrap_or(0);
                    match (method, st.hooks.iter().position(|h| h["id"] == id), rest) {
                        (_, None, _) => (StatusCode::NOT_FOUND, json!({"message": "Not Found"})),
                        (Method::PATCH, Some(i), []) => {
                            for key in ["active", "events", "config"] {
                                if let Some(v) = body.get(key) {
                                    st.hooks[i][key] = v.clone();
                                }
                            }
                            (StatusCode::OK, shown(&st.hooks[i]))
                        }
                        (Method::DELETE, Some(i), []) => {
                            st.hooks.remove(i);
                            (StatusCode::NO_CONTENT, Value::Null)
                        }
                        (Method::POST, Some(_), ["pings"]) => (StatusCode::NO_CONTENT, Value::Null),
                        (Method::GET, Some(_), ["deliveries"]) => {
                            (StatusCode::OK, Value::Array(st.deliveries.clone()))
                        }
                        (Method::POST, Some(_), ["deliveries", did, "attempts"]) => {
                            let did: u64 = did.parse().unwrap_or(0);
                            match st.deliveries.iter().find(|d| d["id"] == did).cloned() {
                                // GitHub lists the redelivery as a new delivery of the same guid
                                // (here one that fails again, as if hookwire were still down).
                                Some(d) => {
                                    let id = 1000 + st.deliveries.len() as u64;
                                    if !st.hide_redeliveries {
                                        st.deliveries.insert(
                                            0,
                                            json!({"id": id, "guid": d["guid"], "redelivery": true, "status_code": 502}),
                                        );
                                    }
                                    (StatusCode::ACCEPTED, json!({}))
                                }
                                None => (StatusCode::NOT_FOUND, json!({"message": "Not Found"})),
                            }
                        }
                        _ => (StatusCode::NOT_FOUND, json!({"message": "Not Found"})),
                    }
                }
                // GitLab: the project by its URL-encoded path; the token is never shown.
                (method, ["api", "v4", "projects", "acme%2Fweb", "hooks", rest @ ..]) => {
                    let shown = |h: &Value| {
                        let mut h = h.clone();
                        h.as_object_mut().unwrap().remove("token");
                        h
                    };
                    match (method, rest) {
                        (Method::GET, []) => (StatusCode::OK, st.gitlab_hooks.iter().map(shown).collect()),
                        (Method::POST, []) => {
                            st.next_id += 1;
                            let mut hook = body.clone();
                            hook["id"] = json!(st.next_id);
                            st.gitlab_hooks.push(hook.clone());
                            (StatusCode::CREATED, shown(&hook))
                        }
                        (method, [id]) => {
                            let id: u64 = id.parse().unwrap_or(0);
                            match (method, st.gitlab_hooks.iter().position(|h| h["id"] == id)) {
                                (Method::PUT, Some(i)) => {
                                    for (k, v) in body.as_object().cloned().unwrap_or_default() {
                                        st.gitlab_hooks[i][k] = v;
                                    }
                                    (StatusCode::OK, shown(&st.gitlab_hooks[i]))
                                }
                                (Method::DELETE, Some(i)) => {
                                    st.gitlab_hooks.remove(i);
                                    (StatusCode::NO_CONTENT, Value::Null)
                                }
                                _ => (StatusCode::NOT_FOUND, json!({"message": "404 Not Found"})),
                            }
                        }
                        _ => (StatusCode::NOT_FOUND, json!({"message": "404 Not Found"})),
                    }
                }
                _ => (StatusCode::NOT_FOUND, json!({"message": "Not Found"})),
            };
            let body = if answer.is_null() {
                Body::empty()
            } else {
                Body::from(answer.to_string())
            };
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move { axum::serve(listener, app).await });
        FakeGithub { state, addr, _rt: rt }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests received since the last call.
    fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut self.state.lock().unwrap().seen)
    }

    /// Waits until the fake has received a request for which `done` holds, and returns
    /// every request received since the last [`FakeGithub::take_seen`]; fails the test after
    /// [`DEADLINE`].
    fn wait_for(&self, done: impl Fn(&Seen) -> bool) -> Vec<Seen> {
        let end = std::time::Instant::now() + DEADLINE;
        while std::time::Instant::now() < end {
            if self.state.lock().unwrap().seen.iter().any(&done) {
                return self.take_seen();
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!(
            "the fake never received the request; it saw {:?}",
            self.take_seen()
        );
    }

    /// The hooks as stored, secrets included.
    fn hooks(&self) -> Vec<Value> {
        self.state.lock().unwrap().hooks.clone()
    }
}

fn config(dir: &TempDir, secret_files: &str, extra: &str) -> PathBuf {
    dir.write(
        "config.yaml",
        &format!(
            "channel:
  sources: [github]
sources:
  - name: github
    type: github
    public_url: {PAYLOAD_URL}
    secret_file: {secret_files}
{extra}"
        ),
    )
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `hookwire connect github --config <config> --api-url <fake> <args>` with the token in
/// `GITHUB_TOKEN`.
fn connect(config: &Path, fake: &FakeGithub, args: &[&str]) -> Ran {
    let mut child = Command::new(common::bin())
        .args(["connect", "github", "--config"])
        .arg(config)
        .args(["--api-url", &fake.url(), "--repo", "acme/web"])
        .args(args)
        .env("GITHUB_TOKEN", TOKEN)
        .env_remove("HOOKWIRE_CONFIG")
        .env_remove("GITHUB_API_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hookwire");
    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = wait_with_deadline(&mut child, DEADLINE).expect("connect finishes");
    Ran {
        code: status.code().expect("exited"),
        stdout,
        stderr,
    }
}

fn ok(config: &Path, fake: &FakeGithub, args: &[&str]) -> String {
    let r = connect(config, fake, args);
    assert_eq!(r.code, 0, "connect {args:?} failed: {}", r.stderr);
    r.stdout
}

/// `(method, path and query)` of each request, and every request carried the token.
fn requests(seen: &[Seen]) -> Vec<(String, String)> {
    for s in seen {
        assert_eq!(
            s.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str()),
            "{s:?}"
        );
    }
    seen.iter().map(|s| (s.method.clone(), s.uri.clone())).collect()
}

fn req(method: &str, uri: &str) -> (String, String) {
    (method.to_owned(), uri.to_owned())
}

const LIST: &str = "/repos/acme/web/hooks?per_page=100&page=1";

/// The secret in `path`, checked to be private to its owner.
fn private_secret(path: &Path) -> String {
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
    let s = std::fs::read_to_string(path).unwrap().trim().to_owned();
    assert_eq!(s.len(), 64, "32 random bytes, hex");
    s
}

/// The events the built-in GitHub templates render specifically (every file but default).
fn template_events() -> Vec<String> {
    let mut events: Vec<String> = std::fs::read_dir(common::root().join("templates/github"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|f| {
            f.strip_suffix(".hbs")
                .map(|s| s.split('.').next().unwrap().to_owned())
        })
        .filter(|e| e != "default")
        .collect();
    events.sort();
    events.dedup();
    events
}

#[test]
fn connect_creates_then_changes_nothing_updates_rotates_and_removes() {
    let dir = TempDir::new("connect-gh");
    let files = "[secrets/github.secret, secrets/github.previous]";
    let cfg = config(&dir, files, "");
    let current = dir.0.join("secrets/github.secret");
    let previous = dir.0.join("secrets/github.previous");
    let fake = FakeGithub::start();

    // Create.
    let out = ok(&cfg, &fake, &[]);
    let seen = fake.take_seen();
    assert_eq!(
        requests(&seen),
        [req("GET", LIST), req("POST", "/repos/acme/web/hooks")]
    );
    let secret = private_secret(&current);
    assert!(!previous.exists(), "nothing to keep before the first secret");
    assert_eq!(
        seen[1].body,
        json!({"name": "web", "active": true, "events": template_events(),
               "config": {"url": PAYLOAD_URL, "content_type": "json", "insecure_ssl": "0", "secret": secret}})
    );
    assert!(!out.contains(&secret), "the secret was printed: {out}");

    // Again: nothing changes.
    let out = ok(&cfg, &fake, &[]);
    assert_eq!(requests(&fake.take_seen()), [req("GET", LIST)]);
    assert!(out.contains("up to date"), "{out}");
    assert_eq!(private_secret(&current), secret);

    // A filter narrows the events: the hook is updated, its secret sent again unchanged.
    let cfg = config(
        &dir,
        files,
        "    filter:\n      events: [issues.opened, pull_request]\n",
    );
    ok(&cfg, &fake, &[]);
    let seen = fake.take_seen();
    assert_eq!(
        requests(&seen),
        [req("GET", LIST), req("PATCH", "/repos/acme/web/hooks/1")]
    );
    assert_eq!(seen[1].body["events"], json!(["issues", "pull_request"]));
    assert_eq!(seen[1].body["config"]["secret"], secret.as_str());
    assert_eq!(private_secret(&current), secret);
    ok(&cfg, &fake, &[]);
    assert_eq!(
        requests(&fake.take_seen()),
        [req("GET", LIST)],
        "up to date again"
    );

    // Rotate: a new secret, the old one kept, GitHub told and pinged.
    let out = ok(&cfg, &fake, &["--rotate"]);
    let seen = fake.take_seen();
    assert_eq!(
        requests(&seen),
        [
            req("GET", LIST),
            req("PATCH", "/repos/acme/web/hooks/1"),
            req("POST", "/repos/acme/web/hooks/1/pings"),
        ]
    );
    let rotated = private_secret(&current);
    assert_ne!(rotated, secret);
    assert_eq!(private_secret(&previous), secret, "the old secret stays valid");
    assert_eq!(seen[1].body["config"]["secret"], rotated.as_str());
    assert_eq!(fake.hooks()[0]["config"]["secret"], rotated.as_str());
    assert!(!out.contains(&rotated) && !out.contains(&secret), "{out}");

    // hookwire accepts webhooks signed with the new secret and, during the rotation, the old.
    let ch = Hookwire::spawn(&cfg, &[]);
    let r = ch.post_github("/hooks/github", &rotated, "issues", "cn-new", &issue("new"));
    assert_eq!(r.status, 202, "{}", r.body);
    let r = ch.post_github("/hooks/github", &secret, "issues", "cn-old", &issue("old"));
    assert_eq!(r.status, 202, "{}", r.body);
    let r = ch.post_github(
        "/hooks/github",
        "not-the-secret",
        "issues",
        "cn-bad",
        &issue("bad"),
    );
    assert_eq!(r.status, 401);
    drop(ch);

    // Remove, then remove again: nothing left to delete.
    ok(&cfg, &fake, &["--remove"]);
    assert_eq!(
        requests(&fake.take_seen()),
        [req("GET", LIST), req("DELETE", "/repos/acme/web/hooks/1")]
    );
    assert!(fake.hooks().is_empty());
    let out = ok(&cfg, &fake, &["--remove"]);
    assert_eq!(requests(&fake.take_seen()), [req("GET", LIST)]);
    assert!(out.contains("nothing removed"), "{out}");
}

#[test]
fn rotating_with_one_secret_file_is_refused_before_any_request() {
    let dir = TempDir::new("connect-one");
    let cfg = config(&dir, "secrets/github.secret", "");
    let fake = FakeGithub::start();
    ok(&cfg, &fake, &[]);
    let secret = private_secret(&dir.0.join("secrets/github.secret"));
    fake.take_seen();
    let r = connect(&cfg, &fake, &["--rotate"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("secret_file: ["), "{}", r.stderr);
    assert!(fake.take_seen().is_empty(), "nothing was asked of GitHub");
    assert_eq!(private_secret(&dir.0.join("secrets/github.secret")), secret);

    // Without a secret_file there is nowhere to write the secret.
    let cfg = dir.write(
        "env.yaml",
        "sources:\n  - name: github\n    type: github\n    secret_env: T_CONNECT_UNUSED\n",
    );
    let r = connect(&cfg, &fake, &["--url", PAYLOAD_URL]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no secret_file"), "{}", r.stderr);
    assert!(fake.take_seen().is_empty());
}

#[test]
fn catch_up_redelivers_each_failed_delivery_since_the_last_accepted_once_ever() {
    let dir = TempDir::new("connect-catchup");
    let cfg = config(&dir, "secrets/github.secret", "");
    let fake = FakeGithub::start();
    ok(&cfg, &fake, &[]);
    let secret = private_secret(&dir.0.join("secrets/github.secret"));
    // hookwire accepts one delivery, then goes down.
    let ch = Hookwire::spawn(&cfg, &[]);
    let r = ch.post_github(
        "/hooks/github",
        &secret,
        "issues",
        "g-accepted",
        &issue("accepted"),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    drop(ch);
    let delivery = |id: u64, guid: &str, status: u64, redelivery: bool| {
        json!({"id": id, "guid": guid, "status_code": status, "redelivery": redelivery,
               "event": "issues", "action": "opened", "delivered_at": "2026-01-01T00:00:00Z"})
    };
    fake.state.lock().unwrap().deliveries = vec![
        delivery(9, "g-fail-late", 502, false),
        delivery(8, "g-tried", 0, true),
        delivery(7, "g-fail-early", 0, false),
        delivery(6, "g-tried", 503, false),
        delivery(5, "g-accepted", 202, false),
        delivery(4, "g-before", 500, false),
    ];
    fake.take_seen();
    let deliveries = "/repos/acme/web/hooks/1/deliveries?per_page=100";

    // Bounded: the oldest failed one first.
    let out = ok(&cfg, &fake, &["--catch-up", "--max", "1"]);
    assert_eq!(
        requests(&fake.take_seen()),
        [
            req("GET", LIST),
            req("GET", deliveries),
            req("POST", "/repos/acme/web/hooks/1/deliveries/7/attempts"),
        ]
    );
    assert!(out.contains("2 failed") && out.contains("--max reached"), "{out}");

    // The next run asks for the rest only: 7 was asked for (its redelivery failed too).
    ok(&cfg, &fake, &["--catch-up"]);
    assert_eq!(
        requests(&fake.take_seen()),
        [
            req("GET", LIST),
            req("GET", deliveries),
            req("POST", "/repos/acme/web/hooks/1/deliveries/9/attempts"),
        ]
    );
    // And then nothing: no delivery is asked for twice.
    let out = ok(&cfg, &fake, &["--catch-up"]);
    assert_eq!(
        requests(&fake.take_seen()),
        [req("GET", LIST), req("GET", deliveries)]
    );
    assert!(out.contains("0 redelivery asked"), "{out}");
}

#[test]
fn connect_gitlab_creates_then_changes_nothing_rotates_and_removes() {
    const GITLAB_TOKEN: &str = "glpat-connect-test-0123456789";
    const URL: &str = "https://hooks.example.com/hooks/gitlab";
    let dir = TempDir::new("connect-gl");
    let cfg = dir.write(
        "config.yaml",
        &format!(
            "channel:
  sources: [gitlab]
sources:
  - name: gitlab
    type: gitlab
    public_url: {URL}
    secret_file: [secrets/gitlab.secret, secrets/gitlab.previous]
"
        ),
    );
    let fake = FakeGithub::start();
    let run = |args: &[&str]| {
        let mut child = Command::new(common::bin())
            .args(["connect", "gitlab", "--config"])
            .arg(&cfg)
            .args([
                "--api-url",
                &format!("{}/api/v4", fake.url()),
                "--project",
                "acme/web",
            ])
            .args(args)
            .env("GITLAB_TOKEN", GITLAB_TOKEN)
            .env_remove("HOOKWIRE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = String::new();
        let mut err = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        let status = wait_with_deadline(&mut child, DEADLINE).unwrap();
        assert!(status.success(), "connect gitlab {args:?}: {err}");
        let seen = fake.take_seen();
        for s in &seen {
            assert_eq!(s.private_token.as_deref(), Some(GITLAB_TOKEN), "{s:?}");
        }
        (out, seen)
    };
    let list = "/api/v4/projects/acme%2Fweb/hooks?per_page=100&page=1";
    let hook = "/api/v4/projects/acme%2Fweb/hooks/1";
    let current = dir.0.join("secrets/gitlab.secret");

    let (out, seen) = run(&[]);
    assert_eq!(
        requests_of(&seen),
        [req("GET", list), req("POST", "/api/v4/projects/acme%2Fweb/hooks")]
    );
    let secret = private_secret(&current);
    assert!(!out.contains(&secret), "{out}");
    // The built-in GitLab templates: build, merge_request, note, pipeline, push.
    assert_eq!(
        seen[1].body,
        json!({"url": URL, "token": secret, "enable_ssl_verification": true,
               "push_events": true, "tag_push_events": false, "issues_events": false,
               "merge_requests_events": true, "note_events": true, "job_events": true,
               "pipeline_events": true, "wiki_page_events": false, "deployment_events": false,
               "releases_events": false})
    );

    let (out, seen) = run(&[]);
    assert_eq!(requests_of(&seen), [req("GET", list)]);
    assert!(out.contains("up to date"), "{out}");

    let (_, seen) = run(&["--rotate"]);
    assert_eq!(requests_of(&seen), [req("GET", list), req("PUT", hook)]);
    let rotated = private_secret(&current);
    assert_ne!(rotated, secret);
    assert_eq!(seen[1].body["token"], rotated.as_str());
    assert_eq!(private_secret(&dir.0.join("secrets/gitlab.previous")), secret);

    // The gitlab source accepts the new token and, during the rotation, the old one.
    let ch = Hookwire::spawn(&cfg, &[]);
    let push = common::payload("gitlab/push.json");
    for (token, id, status) in [
        (&rotated, "gl-new", 202),
        (&secret, "gl-old", 202),
        (&"nope".to_owned(), "gl-bad", 401),
    ] {
        let r = ch.post(
            "/hooks/gitlab",
            &[
                ("Content-Type", "application/json"),
                ("X-Gitlab-Event", "Push Hook"),
                ("X-Gitlab-Event-UUID", id),
                ("X-Gitlab-Token", token),
            ],
            &common::distinct(&push, id),
        );
        assert_eq!(r.status, status, "{id}: {}", r.body);
    }
    drop(ch);

    let (_, seen) = run(&["--remove"]);
    assert_eq!(requests_of(&seen), [req("GET", list), req("DELETE", hook)]);
    assert!(fake.state.lock().unwrap().gitlab_hooks.is_empty());
}

/// `(method, path and query)` of each request.
fn requests_of(seen: &[Seen]) -> Vec<(String, String)> {
    seen.iter().map(|s| (s.method.clone(), s.uri.clone())).collect()
}

/// The secret of the catch-up tests' source.
const CATCHUP_SECRET: &str = "catchup-test-secret-0123456789abcdef";
const DELIVERIES: &str = "/repos/acme/web/hooks/1/deliveries?per_page=100";

/// A fake whose repository `acme/web` has hook 1, posting to [`PAYLOAD_URL`].
fn fake_with_hook() -> FakeGithub {
    let fake = FakeGithub::start();
    let mut st = fake.state.lock().unwrap();
    st.hooks.push(
        json!({"id": 1, "name": "web", "active": true, "events": ["issues"],
                         "config": {"url": PAYLOAD_URL, "content_type": "json"}}),
    );
    st.next_id = 1;
    drop(st);
    fake
}

/// The source's `connect:` for the fake's `acme/web`, with `extra` lines (indented).
fn catchup_config(dir: &TempDir, fake: &FakeGithub, extra: &str) -> PathBuf {
    dir.write("secrets/github.secret", CATCHUP_SECRET);
    config(
        dir,
        "secrets/github.secret",
        &format!(
            "    connect:\n      repo: acme/web\n      api_url: {}\n{extra}",
            fake.url()
        ),
    )
}

/// The one log line of a catch-up run.
fn catchup_line(found: usize, requested: usize, skipped: usize, already: usize) -> String {
    format!(
        "catch-up: source=github, failed deliveries found={found}, redelivery requested={requested}, \
         skipped (over limit)={skipped}, already requested={already}"
    )
}

fn delivery(id: u64, guid: &str, status: u64, redelivery: bool) -> Value {
    json!({"id": id, "guid": guid, "status_code": status, "redelivery": redelivery,
           "event": "issues", "action": "opened", "delivered_at": "2026-01-01T00:00:00Z"})
}

#[test]
fn serve_catches_up_on_start_within_its_limit_and_never_asks_twice_across_restarts() {
    let dir = TempDir::new("catchup-serve");
    let fake = fake_with_hook();
    // GitHub does not list the redeliveries yet: only hookwire's record prevents a repeat.
    fake.state.lock().unwrap().hide_redeliveries = true;
    let env = [("T_CATCHUP_TOKEN", TOKEN)];
    let with_max = |max: u32| {
        catchup_config(
            &dir,
            &fake,
            &format!("      token_env: T_CATCHUP_TOKEN\n      max_redeliveries: {max}\nmetrics: true\n"),
        )
    };
    let serve = |cfg: &Path| common::gateway::serve(cfg, "127.0.0.1:0", &env);

    // First start: nothing failed. hookwire accepts one delivery, then goes down.
    let cfg = with_max(1);
    let gw = serve(&cfg);
    gw.wait_stderr(&catchup_line(0, 0, 0, 0));
    assert_eq!(
        requests(&fake.take_seen()),
        [req("GET", LIST), req("GET", DELIVERIES)]
    );
    let r = gw.post_github(
        "/hooks/github",
        CATCHUP_SECRET,
        "issues",
        "g-accepted",
        &issue("accepted"),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    drop(gw);

    // What GitHub shows meanwhile, newest first.
    fake.state.lock().unwrap().deliveries = vec![
        delivery(9, "g-fail-late", 502, false),
        delivery(8, "g-tried", 0, true),
        delivery(7, "g-fail-early", 0, false),
        delivery(6, "g-tried", 503, false),
        delivery(5, "g-accepted", 202, false),
        delivery(4, "g-before", 500, false),
    ];

    // Restart with a limit of one: the oldest failed delivery since the accepted one; not the
    // successful one, not the older one, not the one already redelivered.
    let gw = serve(&cfg);
    gw.wait_stderr(&catchup_line(2, 1, 1, 1));
    assert_eq!(
        requests(&fake.take_seen()),
        [
            req("GET", LIST),
            req("GET", DELIVERIES),
            req("POST", "/repos/acme/web/hooks/1/deliveries/7/attempts"),
        ]
    );
    let page = gw.call("GET", "/metrics").body;
    assert!(
        page.contains("hookwire_catchup_redeliveries_total{source=\"github\"} 1"),
        "{page}"
    );
    drop(gw);

    // Restart without the limit: the rest, and not 7 again.
    let cfg = with_max(50);
    let gw = serve(&cfg);
    gw.wait_stderr(&catchup_line(1, 1, 0, 2));
    assert_eq!(
        requests(&fake.take_seen()),
        [
            req("GET", LIST),
            req("GET", DELIVERIES),
            req("POST", "/repos/acme/web/hooks/1/deliveries/9/attempts"),
        ]
    );
    drop(gw);

    // And again: nothing left to ask for.
    let gw = serve(&cfg);
    gw.wait_stderr(&catchup_line(0, 0, 0, 3));
    assert_eq!(
        requests(&fake.take_seen()),
        [req("GET", LIST), req("GET", DELIVERIES)]
    );
    drop(gw);
    let record = std::fs::read_to_string(dir.0.join("hookwire.db.github-catchup")).unwrap();
    assert_eq!(record, "g-fail-early\ng-fail-late\n");
}

#[test]
fn catch_up_without_an_api_token_asks_github_nothing() {
    let dir = TempDir::new("catchup-off");
    let fake = fake_with_hook();
    fake.state.lock().unwrap().deliveries = vec![delivery(2, "g-failed", 502, false)];
    let cfg = catchup_config(&dir, &fake, "");
    // GITHUB_TOKEN is the one-shot `connect github`'s; the background needs one configured.
    let gw = common::gateway::serve(&cfg, "127.0.0.1:0", &[("GITHUB_TOKEN", TOKEN)]);
    gw.wait_stderr("catch-up off: no API token");
    // Decided before anything is started: the process runs on and GitHub hears nothing.
    let r = gw.post_github("/hooks/github", CATCHUP_SECRET, "issues", "g-new", &issue("new"));
    assert_eq!(r.status, 202, "{}", r.body);
    drop(gw);
    assert!(fake.take_seen().is_empty());
}

#[test]
fn a_local_channel_catches_up_in_the_background_and_answers_while_github_hangs() {
    let dir = TempDir::new("catchup-local");
    let fake = fake_with_hook();
    fake.state.lock().unwrap().stall_deliveries = true;
    let cfg = catchup_config(&dir, &fake, "      token_env: T_CATCHUP_TOKEN\n");
    let mut ch = Hookwire::spawn(&cfg, &[("T_CATCHUP_TOKEN", TOKEN)]);
    let seen = fake.wait_for(|s| s.uri == DELIVERIES);
    assert_eq!(requests(&seen), [req("GET", LIST), req("GET", DELIVERIES)]);
    // GitHub still holds the deliveries request: the session is served all the same.
    let result = ch.handshake();
    assert_eq!(result["serverInfo"]["name"], "hookwire", "{result}");
    let r = ch.post_github(
        "/hooks/github",
        CATCHUP_SECRET,
        "issues",
        "g-live",
        &issue("live"),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(common::delivery_id(&ch.next_notification()), "g-live");
}

#[test]
fn connect_config_errors_name_the_field_and_line() {
    let dir = TempDir::new("catchup-bad");
    let fake = FakeGithub::start();
    let cfg = catchup_config(
        &dir,
        &fake,
        "      token_env: T_CATCHUP_TOKEN\n      max_redeliveries: 0\n",
    );
    let out = Command::new(common::bin())
        .args(["check", "--config"])
        .arg(&cfg)
        .env("T_CATCHUP_TOKEN", TOKEN)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("sources[0].connect.max_redeliveries") && err.contains(":12"),
        "{err}"
    );
}

#[test]
fn connect_takes_the_repository_token_and_api_from_the_connect_section() {
    let dir = TempDir::new("connect-section");
    let fake = FakeGithub::start();
    let cfg = config(
        &dir,
        "secrets/github.secret",
        &format!(
            "    connect:\n      repo: acme/web\n      api_url: {}\n      token_env: T_CONNECT_SECTION_TOKEN\n",
            fake.url()
        ),
    );
    let out = Command::new(common::bin())
        .args(["connect", "github", "--config"])
        .arg(&cfg)
        .env("T_CONNECT_SECTION_TOKEN", TOKEN)
        .env_remove("GITHUB_TOKEN")
        .env_remove("HOOKWIRE_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        requests(&fake.take_seen()),
        [req("GET", LIST), req("POST", "/repos/acme/web/hooks")]
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created hook 1 of acme/web"));
}

#[test]
fn an_unreachable_github_is_logged_once_and_serving_goes_on() {
    let dir = TempDir::new("catchup-down");
    // Nothing listens on the fake's address once it is gone.
    let gone = FakeGithub::start();
    let cfg = catchup_config(&dir, &gone, "      token_env: T_CATCHUP_TOKEN\n");
    drop(gone);
    let gw = common::gateway::serve(&cfg, "127.0.0.1:0", &[("T_CATCHUP_TOKEN", TOKEN)]);
    gw.wait_stderr("catch-up: source=github failed after 0 redelivery requests");
    let r = gw.post_github(
        "/hooks/github",
        CATCHUP_SECRET,
        "issues",
        "g-meanwhile",
        &issue("meanwhile"),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let failures = gw
        .stderr_text()
        .lines()
        .filter(|l| l.contains("catch-up: source=github failed"))
        .count();
    assert_eq!(failures, 1);
    assert!(!gw.stderr_text().contains(TOKEN), "the token was logged");
}
