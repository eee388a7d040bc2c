//! The delivery console (`/console` on `hookwire serve`), black-box: a real gateway, a real
//! linked channel (`hookwire channel --gateway`), and either plain HTTP (security headers,
//! cookie flags, CSRF, origin, escaping, bounds, who sees what) or a real headless Chromium
//! (`tests/node/console.mjs`, playwright-core over Debian's `/usr/bin/chromium`): sign in,
//! watch a webhook arrive live, open it, re-deliver it to the channel, be refused without
//! the permission and after signing out. Screenshots go to `target/ci-artifacts/console/`.

use crate::common;
use crate::real_clients::{manifest_dir, SdkTools};

use std::path::{Path, PathBuf};
use std::process::Command;

use common::gateway::{serve, store, token, TWO_GITHUB_SOURCES};
use common::{github_signature, issue_with_body, Hookwire, TempDir, DEADLINE};
use hookwire_core::store::Store;
use serde_json::{json, Value};

const SECRET: &str = "test-console-github-secret-7a40";
/// What a hostile payload carries in its issue body.
const HOSTILE: &str = "<script>alert('pwned')</script><img src=x onerror=alert(1)>";

/// A gateway with two GitHub-type sources (`github`, `ops`) and `extra` config.
fn gateway(dir: &TempDir, extra: &str) -> Hookwire {
    let cfg = dir.write("config.yaml", &format!("{extra}{TWO_GITHUB_SOURCES}"));
    serve(&cfg, "127.0.0.1:0", &[("T_GITHUB_SECRET", SECRET)])
}

/// POSTs a signed GitHub `issues` delivery whose issue body is `body`; returns the status.
fn post_issue(addr: &str, path: &str, delivery: &str, body: &str) -> u16 {
    let payload = issue_with_body(delivery, body);
    let r = ureq::post(&format!("http://{addr}{path}"))
        .timeout(DEADLINE)
        .set("Content-Type", "application/json")
        .set("X-GitHub-Event", "issues")
        .set("X-GitHub-Delivery", delivery)
        .set("X-Hub-Signature-256", &github_signature(SECRET, &payload))
        .send_bytes(&payload);
    match r {
        Ok(resp) => resp.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("POST {path}: {e}"),
    }
}

/// An HTTP answer: status, headers (lowercase names) and body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One request to the gateway, redirects not followed.
fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], form: Option<&str>) -> Reply {
    let agent = ureq::AgentBuilder::new().redirects(0).timeout(DEADLINE).build();
    let mut req = agent.request(method, &format!("http://{addr}{path}"));
    for (n, v) in headers {
        req = req.set(n, v);
    }
    let r = match form {
        Some(f) => req
            .set("Content-Type", "application/x-www-form-urlencoded")
            .send_string(f),
        None => req.call(),
    };
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = resp.all(&n).join("\n");
            (n.to_ascii_lowercase(), v)
        })
        .collect();
    Reply {
        status,
        headers,
        body: resp.into_string().unwrap_or_default(),
    }
}

/// Signs in with `secret`: the reply, and the `Cookie` header to send after.
fn sign_in(addr: &str, secret: &str) -> (Reply, String) {
    let form = format!("token={}", urlencode(secret));
    let r = request(addr, "POST", "/console/sign-in", &[], Some(&form));
    let cookie = r
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .unwrap_or_default()
        .to_owned();
    (r, cookie)
}

/// `s` as a form value (every byte but unreserved ones percent-encoded).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The CSRF token of a signed-in page.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

#[test]
fn console_pages_carry_security_headers_and_sign_in_takes_a_console_token() {
    let dir = TempDir::new("console-http");
    let gw = gateway(&dir, "");
    let db = store(&dir);
    let viewer = token(&db, "viewer", &["github"], &["console"], None);
    let alice = token(&db, "alice", &["github"], &["read-events"], None);

    // Every console answer, a refusal and an asset included, carries the policy.
    for path in [
        "/console/sign-in",
        "/console/nothing",
        "/console/assets/console.js",
    ] {
        let r = request(&gw.addr, "GET", path, &[], None);
        assert_eq!(
            r.header("content-security-policy"),
            Some(hookwire_core::console::CSP),
            "{path}"
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
    }
    // Not signed in: pages send to the sign-in form; the live log refuses.
    let r = request(&gw.addr, "GET", "/console", &[], None);
    assert_eq!((r.status, r.header("location")), (303, Some("/console/sign-in")));
    assert_eq!(request(&gw.addr, "GET", "/console/live", &[], None).status, 401);

    // A token without the permission, and a wrong one, are refused.
    let (r, cookie) = sign_in(&gw.addr, &alice);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("does not have the console"), "{}", r.body);
    assert!(cookie.is_empty(), "no session for it");
    assert_eq!(sign_in(&gw.addr, "hwt_not-a-token").0.status, 401);

    // The session cookie: a random id (not the token), HttpOnly, SameSite=Strict.
    let (r, cookie) = sign_in(&gw.addr, &viewer);
    assert_eq!((r.status, r.header("location")), (303, Some("/console")));
    let set = r.header("set-cookie").unwrap();
    assert!(set.starts_with("hookwire_console="), "{set}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age="] {
        assert!(set.contains(flag), "{flag} in {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP on loopback: {set}");
    assert!(!set.contains(&viewer), "the cookie never holds the token");
    let page = request(&gw.addr, "GET", "/console", &[("Cookie", &cookie)], None);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("viewer"), "{}", page.body);
    let csrf = csrf_of(&page.body);

    // State-changing requests need the CSRF token and the same origin.
    let no_csrf = request(
        &gw.addr,
        "POST",
        "/console/sign-out",
        &[("Cookie", &cookie)],
        Some(""),
    );
    assert_eq!(no_csrf.status, 403);
    let wrong = request(
        &gw.addr,
        "POST",
        "/console/sign-out",
        &[("Cookie", &cookie)],
        Some("csrf=x"),
    );
    assert_eq!(wrong.status, 403);
    let form = format!("csrf={}", urlencode(&csrf));
    let cross = request(
        &gw.addr,
        "POST",
        "/console/sign-out",
        &[
            ("Cookie", &cookie),
            ("Origin", "https://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        Some(&form),
    );
    assert_eq!(cross.status, 403);
    // An oversized form is refused from its declared length, before a byte of it is read,
    // and when its length is not declared, once it passes the cap.
    let form_type = ("Content-Type", "application/x-www-form-urlencoded");
    assert_eq!(
        gw.status_before_body("/console/sign-out", &[("Cookie", &cookie), form_type], 300 * 1024),
        413
    );
    assert_eq!(
        gw.status_before_body("/console/sign-in", &[form_type], 300 * 1024),
        413
    );
    let huge = format!("csrf={}&pad={}", urlencode(&csrf), "a".repeat(300 * 1024));
    assert_eq!(
        gw.post_status_raw(
            "/console/sign-out",
            &[("Cookie", &cookie), form_type],
            huge.as_bytes(),
            true
        ),
        413
    );
    // Still signed in after all of those.
    assert_eq!(
        request(&gw.addr, "GET", "/console", &[("Cookie", &cookie)], None).status,
        200
    );

    let out = request(
        &gw.addr,
        "POST",
        "/console/sign-out",
        &[("Cookie", &cookie)],
        Some(&form),
    );
    assert_eq!(
        (out.status, out.header("location")),
        (303, Some("/console/sign-in"))
    );
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    // The old cookie no longer works, for pages, the live log or actions.
    assert_eq!(
        request(&gw.addr, "GET", "/console", &[("Cookie", &cookie)], None).status,
        303
    );
    assert_eq!(
        request(&gw.addr, "GET", "/console/live", &[("Cookie", &cookie)], None).status,
        401
    );
    assert_eq!(
        request(
            &gw.addr,
            "POST",
            "/console/sign-out",
            &[("Cookie", &cookie)],
            Some(&form)
        )
        .status,
        403
    );
}

#[test]
fn a_sign_in_form_that_never_arrives_gets_408() {
    use std::io::{Read, Write};
    let dir = TempDir::new("console-slow-form");
    let gw = gateway(&dir, "");
    // Sign-in is open to strangers: a form that declares 100 bytes and sends 10 is given up
    // on (after the console's 10 s form timeout) instead of holding its connection.
    let mut s = std::net::TcpStream::connect(&gw.addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(
        b"POST /console/sign-in HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 100\r\n\r\ntoken=0123",
    )
    .unwrap();
    let mut resp = [0u8; 64];
    let n = s.read(&mut resp).unwrap();
    let head = String::from_utf8_lossy(&resp[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head:?}");
}

#[test]
fn console_escapes_payloads_and_shows_only_the_tokens_sources() {
    let dir = TempDir::new("console-escape");
    let gw = gateway(&dir, "console:\n  max_sessions: 2\n");
    let db = store(&dir);
    let viewer = token(&db, "viewer", &["github"], &["console"], None);
    let boss = token(&db, "boss", &[], &["admin"], None);
    token(&db, "victim", &["ops"], &[], None);

    assert_eq!(post_issue(&gw.addr, "/hooks/github", "esc-1", HOSTILE), 202);
    assert_eq!(post_issue(&gw.addr, "/hooks/ops", "ops-1", "ops only"), 202);
    let mine = db.get("esc-1").unwrap().unwrap().stored.seq;
    let theirs = db.get("ops-1").unwrap().unwrap().stored.seq;

    let (_, cookie) = sign_in(&gw.addr, &viewer);
    let log = request(&gw.addr, "GET", "/console", &[("Cookie", &cookie)], None);
    assert!(log.body.contains("esc-1"), "{}", log.body);
    assert!(
        !log.body.contains("ops-1"),
        "another token's source: {}",
        log.body
    );
    assert_eq!(
        request(
            &gw.addr,
            "GET",
            &format!("/console/events/{theirs}"),
            &[("Cookie", &cookie)],
            None
        )
        .status,
        404,
        "an event of a source the token does not receive is not found"
    );
    let detail = request(
        &gw.addr,
        "GET",
        &format!("/console/events/{mine}"),
        &[("Cookie", &cookie)],
        None,
    );
    assert_eq!(detail.status, 200);
    assert!(
        detail
            .body
            .contains("&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;"),
        "the payload shows as text: {}",
        detail.body
    );
    assert!(!detail.body.contains("<script>alert"), "never as markup");
    assert!(!detail.body.contains("<img src=x"), "never as markup");
    assert!(
        detail.body.contains("&lt;channel source=&quot;hookwire&quot;"),
        "the block as Claude sees it"
    );
    assert!(
        detail.body.contains("<code>github/issues</code>"),
        "the template: {}",
        detail.body
    );
    // The viewer cannot revoke: admin only.
    let csrf = format!("csrf={}", urlencode(&csrf_of(&detail.body)));
    let r = request(
        &gw.addr,
        "POST",
        "/console/tokens/victim/revoke",
        &[("Cookie", &cookie)],
        Some(&csrf),
    );
    assert_eq!(r.status, 403);

    // The admin sees every source and revokes; the revoked token's sessions end.
    let (_, admin) = sign_in(&gw.addr, &boss);
    let sessions = request(&gw.addr, "GET", "/console/sessions", &[("Cookie", &admin)], None);
    assert!(
        sessions.body.contains("victim") && sessions.body.contains("Revoke victim"),
        "{}",
        sessions.body
    );
    let csrf = format!("csrf={}", urlencode(&csrf_of(&sessions.body)));
    let r = request(
        &gw.addr,
        "POST",
        "/console/tokens/victim/revoke",
        &[("Cookie", &admin)],
        Some(&csrf),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let t = db.tokens().get("victim").unwrap().unwrap();
    assert!(t.revoked_ms.is_some(), "revoked in the store");
    let audit = db.audit_for(mine).unwrap();
    assert!(audit.is_empty(), "revoking names no event: {audit:?}");

    // `console.max_sessions: 2`: a third sign-in waits for one to end.
    assert_eq!(sign_in(&gw.addr, &viewer).0.status, 503);

    // Re-delivery and preview are audited with the event.
    let detail = request(
        &gw.addr,
        "GET",
        &format!("/console/events/{mine}"),
        &[("Cookie", &admin)],
        None,
    );
    let csrf = urlencode(&csrf_of(&detail.body));
    let r = request(
        &gw.addr,
        "POST",
        &format!("/console/events/{mine}/preview"),
        &[("Cookie", &admin)],
        Some(&format!("csrf={csrf}")),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("It renders exactly as stored"), "{}", r.body);
    let r = request(
        &gw.addr,
        "POST",
        &format!("/console/events/{mine}/redeliver"),
        &[("Cookie", &admin)],
        Some(&format!("csrf={csrf}&to=viewer")),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let tools: Vec<String> = db.audit_for(mine).unwrap().into_iter().map(|a| a.tool).collect();
    assert_eq!(tools, ["console_preview", "console_redeliver"]);
    let copy = db.list(&Default::default()).unwrap();
    assert!(
        copy.iter()
            .any(|e| e.delivery_id == "esc-1" && e.target.as_deref() == Some("viewer") && e.seq > mine),
        "a copy for viewer only: {copy:?}"
    );

    // A signed test event from the console goes through the whole pipeline.
    let sessions = request(&gw.addr, "GET", "/console/sessions", &[("Cookie", &admin)], None);
    let csrf = urlencode(&csrf_of(&sessions.body));
    let payload = urlencode(&String::from_utf8(issue_with_body("from-console", "b")).unwrap());
    let r = request(
        &gw.addr,
        "POST",
        "/console/sources/github/test",
        &[("Cookie", &admin)],
        Some(&format!("csrf={csrf}&event=issues&payload={payload}")),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("accepted"), "{}", r.body);
    assert!(
        db.list(&Default::default())
            .unwrap()
            .iter()
            .any(|e| e.delivery_id.starts_with("console-test-")),
        "stored"
    );
}

#[test]
fn console_config_errors_name_the_field() {
    let dir = TempDir::new("console-config");
    let cfg = dir.write(
        "config.yaml",
        &format!("console:\n  enabled: true\n  max_session: 3\n{TWO_GITHUB_SOURCES}"),
    );
    let out = Command::new(common::bin())
        .args(["check", "--config"])
        .arg(&cfg)
        .env("T_GITHUB_SECRET", SECRET)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("config.yaml:3") && err.contains("console.max_session"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// The browser.

/// Where screenshots go (CI keeps them as artifacts).
fn artifacts() -> PathBuf {
    manifest_dir().join("target/ci-artifacts/console")
}

/// `tests/node/console.mjs`: Chromium, one step per line.
struct Browser(SdkTools);

impl Browser {
    fn start() -> Browser {
        assert!(
            Path::new("/usr/bin/chromium").exists(),
            "/usr/bin/chromium is missing: apt-get install -y chromium chromium-driver (.ci/run does)"
        );
        let mut cmd = Command::new("node");
        cmd.current_dir(manifest_dir()).arg("tests/node/console.mjs");
        Browser(SdkTools::spawn(cmd))
    }

    fn ok(&mut self, cmd: Value) -> Value {
        self.0.ok(cmd)
    }

    fn step(&mut self, cmd: Value) -> Value {
        self.0.step(cmd)
    }

    fn screenshot(&mut self, name: &str) -> PathBuf {
        let path = artifacts().join(name);
        self.ok(json!({"op": "screenshot", "path": path}));
        println!("screenshot: {}", path.display());
        path
    }
}

#[test]
fn console_in_a_real_browser() {
    let dir = TempDir::new("console-browser");
    let gw = gateway(&dir, "");
    let db = store(&dir);
    let viewer = token(&db, "viewer", &["github"], &["console"], None);
    let alice = token(&db, "alice", &["github"], &["read-events"], None);
    let nobody = token(&db, "nobody", &["github", "ops"], &["read-events"], None);
    let base = format!("http://{}", gw.addr);

    // The session: a real linked channel, receiving alice's sources.
    let mut ch = common::gateway::linked(&gw, &[], &[("HOOKWIRE_TOKEN", &alice)]);
    ch.handshake();

    let mut b = Browser::start();
    // Sign in.
    b.ok(json!({"op": "goto", "url": format!("{base}/console")}));
    b.ok(json!({"op": "fill", "selector": "#token", "value": viewer}));
    let r = b.ok(json!({"op": "submit", "selector": "form button[type=submit]"}));
    let said = b.ok(json!({"op": "text", "selector": "main"}));
    assert_eq!(r["url"], format!("{base}/console"), "{r} {said}");
    b.ok(json!({"op": "wait_for", "selector": "#live-status", "text": "Live"}));

    // A webhook appears live, without a reload.
    assert_eq!(post_issue(&gw.addr, "/hooks/github", "live-1", HOSTILE), 202);
    let row = b.ok(json!({"op": "wait_for", "selector": "#log tbody tr.live", "text": "live-1"}));
    let row = row["text"].as_str().unwrap();
    assert!(row.contains("accepted") && row.contains("issues.opened"), "{row}");
    let first = ch.next_line();
    assert!(first.contains("live-1"), "the channel got it: {first}");
    // A refused request shows too, by its reason.
    let r = ureq::post(&format!("{base}/hooks/github"))
        .set("X-GitHub-Event", "issues")
        .set("X-GitHub-Delivery", "forged-1")
        .set("X-Hub-Signature-256", &github_signature("wrong", b"{}"))
        .send_bytes(b"{}");
    assert!(matches!(r, Err(ureq::Error::Status(401, _))));
    b.ok(json!({"op": "wait_for", "selector": "#log tbody tr.live.bad", "text": "bad signature"}));
    b.screenshot("log.png");

    // Its detail: the block as Claude sees it, the hostile payload as text.
    let r = b.ok(json!({"op": "submit", "selector": "#log tbody tr.live a"}));
    assert!(r["url"].as_str().unwrap().contains("/console/events/"), "{r}");
    let block = b.ok(json!({"op": "text", "selector": "#channel-block"}));
    let block = block["text"].as_str().unwrap();
    assert!(
        block.starts_with("<channel source=\"hookwire\" source_name=\"github\"")
            && block.ends_with("</channel>"),
        "{block}"
    );
    let payload = b.ok(json!({"op": "text", "selector": "#payload pre"}));
    assert!(
        payload["text"].as_str().unwrap().contains(HOSTILE),
        "shown as text: {payload}"
    );
    let scripts =
        b.ok(json!({"op": "eval", "expression": "document.scripts.length + document.images.length"}));
    assert_eq!(
        scripts["value"], 1,
        "only console.js: nothing from the payload became markup"
    );
    b.screenshot("detail.png");
    b.ok(json!({"op": "color_scheme", "scheme": "dark"}));
    b.screenshot("detail-dark.png");
    b.ok(json!({"op": "color_scheme", "scheme": "light"}));

    // Re-deliver it to alice's session: the channel process receives it again.
    b.ok(json!({"op": "select", "selector": "#to", "value": "alice"}));
    b.ok(json!({"op": "submit", "selector": "form[action$=redeliver] button"}));
    b.ok(json!({"op": "wait_for", "selector": "#result", "text": "queued again for alice"}));
    let again = ch.next_line();
    assert!(again.contains("live-1"), "re-delivered: {again}");

    // Sessions and sources.
    b.ok(json!({"op": "goto", "url": format!("{base}/console/sessions")}));
    b.ok(json!({"op": "wait_for", "selector": "#tokens tr", "text": "alice"}));
    let t = b.ok(json!({"op": "text", "selector": "#tokens tbody"}));
    assert!(t["text"].as_str().unwrap().contains("connected"), "{t}");
    b.screenshot("sessions.png");
    b.ok(json!({"op": "viewport", "width": 390, "height": 844}));
    b.ok(json!({"op": "goto", "url": format!("{base}/console")}));
    b.screenshot("log-phone.png");
    b.ok(json!({"op": "viewport", "width": 1280, "height": 860}));

    // A POST without the CSRF token is refused.
    let r = b.ok(json!({"op": "post", "path": "/console/sign-out", "form": {}}));
    assert_eq!(r["status"], 403, "{r}");
    let csrf = b.ok(json!({"op": "eval", "expression": "document.querySelector('input[name=csrf]').value"}));
    let cookies = b.ok(json!({"op": "cookies"}))["cookies"].clone();
    assert!(cookies.to_string().contains("hookwire_console"), "{cookies}");

    // Sign out; the old cookie no longer works.
    let r = b.ok(json!({"op": "submit", "selector": "form.who button"}));
    assert_eq!(r["url"], format!("{base}/console/sign-in"), "{r}");
    b.ok(json!({"op": "add_cookies", "cookies": cookies}));
    let r = b.ok(json!({"op": "goto", "url": format!("{base}/console")}));
    assert_eq!(r["url"], format!("{base}/console/sign-in"), "the old cookie: {r}");
    let seq = db.get("live-1").unwrap().unwrap().stored.seq;
    let r = b.ok(
        json!({"op": "post", "path": format!("/console/events/{seq}/redeliver"),
                        "form": {"csrf": csrf["value"], "to": "alice"}}),
    );
    assert_eq!(r["status"], 403, "{r}");

    // Tokens without the permission are refused.
    for secret in [&nobody, &alice] {
        b.ok(json!({"op": "goto", "url": format!("{base}/console/sign-in")}));
        b.ok(json!({"op": "fill", "selector": "#token", "value": secret}));
        let r = b.ok(json!({"op": "submit", "selector": "form button[type=submit]"}));
        assert_eq!(r["status"], 403, "{r}");
        b.ok(json!({"op": "wait_for", "selector": ".error", "text": "does not have the console"}));
    }
    b.screenshot("refused.png");

    // No CSP violation or script error on any page (the refusals' statuses are logged as
    // failed loads, which they are).
    let c = b.ok(json!({"op": "complaints"}));
    let complaints: Vec<&str> = c["complaints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|m| !m.starts_with("Failed to load resource"))
        .collect();
    assert!(complaints.is_empty(), "{complaints:?}");
    let _ = b.step(json!({"op": "close"}));
}

#[test]
fn console_in_local_mode_when_enabled() {
    let dir = TempDir::new("console-local");
    let cfg = dir.write(
        "config.yaml",
        &format!("console:\n  local: true\nchannel:\n  sources: [github]\n{TWO_GITHUB_SOURCES}"),
    );
    let mut ch = Hookwire::spawn(&cfg, &[("T_GITHUB_SECRET", SECRET)]);
    ch.handshake();
    let db = store(&dir);
    let me = token(&db, "me", &["github"], &["console"], None);
    assert_eq!(post_issue(&ch.addr, "/hooks/github", "local-1", "b"), 202);
    assert!(ch.next_line().contains("local-1"));

    let (r, cookie) = sign_in(&ch.addr, &me);
    assert_eq!(r.status, 303, "{}", r.body);
    let log = request(&ch.addr, "GET", "/console", &[("Cookie", &cookie)], None);
    assert!(log.body.contains("local-1"), "{}", log.body);
    // Its acknowledgement may not be committed yet: either state names the session.
    assert!(
        log.body.contains("local: acknowledged") || log.body.contains("local: in flight"),
        "the local session: {}",
        log.body
    );
    // Re-delivered to the local session, it arrives again.
    let seq = db.get("local-1").unwrap().unwrap().stored.seq;
    let csrf = urlencode(&csrf_of(&log.body));
    let r = request(
        &ch.addr,
        "POST",
        &format!("/console/events/{seq}/redeliver"),
        &[("Cookie", &cookie)],
        Some(&format!("csrf={csrf}&to=local")),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        ch.next_line().contains("local-1"),
        "re-delivered to the local session"
    );
}

#[test]
fn console_is_off_in_local_mode_by_default() {
    let dir = TempDir::new("console-local-off");
    let cfg = dir.write(
        "config.yaml",
        &format!("channel:\n  sources: [github]\n{TWO_GITHUB_SOURCES}"),
    );
    let ch = Hookwire::spawn(&cfg, &[("T_GITHUB_SECRET", SECRET)]);
    let r = request(&ch.addr, "GET", "/console/sign-in", &[], None);
    assert_eq!(r.status, 404, "the webhook listener's 404: {}", r.body);
    assert_eq!(r.header("content-security-policy"), None);
}

/// Reads from `s` until what was read contains `needle`; everything read.
fn read_until(s: &mut std::net::TcpStream, seen: &mut String, needle: &str) {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        let n = s
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("waiting for {needle:?}: {e}; read so far:\n{seen}"));
        assert!(n > 0, "the stream ended before {needle:?}:\n{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[test]
fn the_live_log_streams_refusals_without_their_bodies() {
    use std::io::Write;
    let dir = TempDir::new("console-sse");
    let gw = gateway(&dir, "");
    let db = store(&dir);
    let viewer = token(&db, "viewer", &["github"], &["console"], None);
    let (_, cookie) = sign_in(&gw.addr, &viewer);

    let mut s = std::net::TcpStream::connect(&gw.addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        s,
        "GET /console/live HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n",
        gw.addr
    )
    .unwrap();
    let mut seen = String::new();
    read_until(&mut s, &mut seen, ": live");
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(
        seen.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{seen}"
    );

    // A forged request: its outcome and reason arrive, never its body.
    let body = br#"{"marker":"BODY-NEVER-SHOWN"}"#;
    let r = ureq::post(&format!("http://{}/hooks/github", gw.addr))
        .set("X-GitHub-Event", "issues")
        .set("X-GitHub-Delivery", "forged-2")
        .set(
            "X-Hub-Signature-256",
            &github_signature("not-the-secret-at-all", body),
        )
        .send_bytes(body);
    assert!(matches!(r, Err(ureq::Error::Status(401, _))));
    // An event of a source the token does not receive is not streamed to it.
    assert_eq!(post_issue(&gw.addr, "/hooks/ops", "ops-hidden", "b"), 202);
    assert_eq!(post_issue(&gw.addr, "/hooks/github", "mine-1", "b"), 202);
    read_until(&mut s, &mut seen, "mine-1");
    assert!(seen.contains("\"outcome\":\"refused: bad signature\""), "{seen}");
    assert!(!seen.contains("BODY-NEVER-SHOWN"), "{seen}");
    assert!(!seen.contains("ops-hidden"), "{seen}");
}

#[test]
fn the_cookie_is_secure_when_configured_so() {
    let dir = TempDir::new("console-secure");
    let gw = gateway(&dir, "console:\n  secure_cookie: true\n");
    let db = store(&dir);
    let viewer = token(&db, "viewer", &["github"], &["console"], None);
    let (r, _) = sign_in(&gw.addr, &viewer);
    let set = r.header("set-cookie").unwrap();
    assert!(set.ends_with("; Secure"), "{set}");
}
