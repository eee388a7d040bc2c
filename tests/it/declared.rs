//! Sources declared entirely in config.yaml, and the tools around verification:
//! - GitHub declared as `type: hmac` behaves exactly like the GitHub adapter on every shared
//!   GitHub fixture (same status, byte-identical notification lines);
//! - `hookwire send` signs with a source's own scheme and secret, and the running hookwire
//!   accepts it;
//! - `hookwire verify explain` says which secret matched, or why none did, without printing
//!   secret material.

use crate::common;

use std::process::Command;

use common::{Hookwire, TempDir};

const SECRET: &str = "declared-github-secret";

const ADAPTER: &str = "  - name: github
    type: github
    secret_env: D_SECRET
";

const DECLARED: &str = "  - name: github
    type: hmac
    secret_env: D_SECRET
    templates: github
    verify:
      digest: sha256
      header: X-Hub-Signature-256
      prefix: \"sha256=\"
      encoding: hex
    event: {header: X-GitHub-Event}
    action: {json: /action}
    delivery: {header: X-GitHub-Delivery}
    acknowledge: [ping]
";

fn spawn(dir: &TempDir, name: &str, source: &str) -> Hookwire {
    // A store of its own: two configs in one folder would otherwise share one, as two
    // sessions of a project do.
    let cfg = dir.write(
        name,
        &format!("channel:\n  sources: [github]\nstore:\n  path: {name}.db\nsources:\n{source}"),
    );
    let mut hw = Hookwire::spawn(&cfg, &[("D_SECRET", SECRET)]);
    hw.handshake();
    hw
}

#[test]
fn github_declared_in_yaml_behaves_exactly_like_the_github_adapter() {
    let dir = TempDir::new("declared");
    let mut adapter = spawn(&dir, "adapter.yaml", ADAPTER);
    let mut declared = spawn(&dir, "declared.yaml", DECLARED);
    let folder = common::root().join("tests/fixtures/payloads/github");
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "expected the GitHub fixtures");
    for path in &files {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let event = stem.split('.').next().unwrap();
        let body = std::fs::read(path).unwrap();
        let delivery = format!("same-{stem}");
        let mut tampered = body.clone();
        tampered.push(b' ');
        for hw in [&adapter, &declared] {
            let sig = common::github_signature(SECRET, &body);
            let bad = hw.post(
                "/hooks/github",
                &[
                    ("X-GitHub-Event", event),
                    ("X-GitHub-Delivery", "x"),
                    ("X-Hub-Signature-256", &sig),
                ],
                &tampered,
            );
            assert_eq!(bad.status, 401, "{stem}: tampered body");
            let unnamed = hw.post("/hooks/github", &[("X-Hub-Signature-256", &sig)], &body);
            assert_eq!(unnamed.status, 400, "{stem}: no event header");
        }
        let a = adapter.post_github("/hooks/github", SECRET, event, &delivery, &body);
        let d = declared.post_github("/hooks/github", SECRET, event, &delivery, &body);
        assert_eq!((a.status, a.body.as_str()), (d.status, d.body.as_str()), "{stem}");
        if event == "ping" {
            continue;
        }
        assert_eq!(
            adapter.next_line(),
            declared.next_line(),
            "{stem}: notifications differ"
        );
    }
}

fn hookwire(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookwire"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run hookwire");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn send_signs_like_the_vendor_and_the_running_hookwire_accepts_it() {
    let dir = TempDir::new("send");
    let cfg = dir.write(
        "config.yaml",
        "channel:\n  sources: [github, stripe, svix]\nsources:\n  - name: github\n    type: github\n    secret_env: S_GH\n  - name: stripe\n    type: stripe\n    secret_env: S_STRIPE\n  - name: svix\n    type: standard-webhooks\n    secret_env: S_SW\n",
    );
    let env = [
        ("S_GH", "send-github-secret-4e1a"),
        ("S_STRIPE", "whsec_send_test_secret"),
        ("S_SW", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ];
    let mut hw = Hookwire::spawn(&cfg, &env);
    hw.handshake();
    let cfg = cfg.to_str().unwrap();
    let issue = common::root().join("tests/fixtures/payloads/github/issues.opened.json");
    let stripe = dir.write("evt.json", r#"{"id":"evt_send_1","object":"event","type":"invoice.paid","data":{"object":{"id":"in_1","amount_paid":4200,"currency":"usd"}}}"#);
    let svix = dir.write("sw.json", r#"{"type":"user.created","data":{"id":"u_1"}}"#);
    let cases = [
        ("github", issue.to_str().unwrap(), Some("issues"), "issues.opened"),
        ("stripe", stripe.to_str().unwrap(), None, "invoice.paid"),
        ("svix", svix.to_str().unwrap(), None, "user.created"),
    ];
    for (source, file, event, want) in cases {
        let url = format!("http://{}/hooks/{source}", hw.addr);
        let mut args = vec!["send", "--config", cfg, source, file, "--url", &url];
        if let Some(e) = event {
            args.extend(["--event", e]);
        }
        let (ok, out) = hookwire(&args, &env);
        assert!(ok && out.contains("202"), "{source}: {out}");
        let n = hw.next_notification();
        assert_eq!(n["params"]["meta"]["event"], want, "{source}: {n}");
    }
    // A source the config does not have is named in the error with the ones it does.
    let (ok, out) = hookwire(&["send", "--config", cfg, "nope", cases[0].1], &env);
    assert!(!ok && out.contains("configured: github, stripe, svix"), "{out}");
}

/// `hookwire <args>` with `env`: exit code, stdout, stderr.
fn hookwire_code(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookwire"));
    cmd.args(args).env_remove("HOOKWIRE_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run hookwire");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn send_fails_on_a_refusal_with_the_status_the_body_and_what_to_do() {
    let dir = TempDir::new("send-refused");
    let served = dir.write(
        "served.yaml",
        "channel:\n  sources: [github]\nsources:\n  - name: github\n    type: github\n    secret_env: S_GH\n",
    );
    let mut hw = Hookwire::spawn(&served, &[("S_GH", "send-github-secret-served")]);
    hw.handshake();
    // The sender's config holds another secret for the same source.
    let local = dir.write(
        "local.yaml",
        "sources:\n  - name: github\n    type: github\n    secret_env: S_GH\n",
    );
    let local = local.to_str().unwrap();
    let issue = common::root().join("tests/fixtures/payloads/github/issues.opened.json");
    let issue = issue.to_str().unwrap();
    let url = format!("http://{}/hooks/github", hw.addr);

    let wrong = [("S_GH", "send-github-secret-other")];
    let (code, out, err) = hookwire_code(
        &[
            "send", "--config", local, "github", issue, "--event", "issues", "--url", &url,
        ],
        &wrong,
    );
    assert_eq!(code, 1, "401 must fail:\n{out}{err}");
    assert!(out.contains("401 Unauthorized"), "the status is shown:\n{out}");
    assert!(err.contains("hint: the signature was refused"), "{err}");

    // A proxy or tunnel with nothing at that path: one real HTTP exchange that reads the
    // whole request, then answers 404 with a body.
    let right = [("S_GH", "send-github-secret-served")];
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}/hooks/nowhere", proxy.local_addr().unwrap());
    let answer = std::thread::spawn(move || {
        use std::io::{BufRead, Read, Write};
        let (conn, _) = proxy.accept().unwrap();
        let mut reader = std::io::BufReader::new(conn);
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let text = "no tunnel route for /hooks/nowhere";
        write!(
            reader.get_mut(),
            "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        )
        .unwrap();
    });
    let (code, out, err) = hookwire_code(
        &[
            "send", "--config", local, "github", issue, "--event", "issues", "--url", &nowhere,
        ],
        &right,
    );
    answer.join().unwrap();
    assert_eq!(code, 1, "404 must fail:\n{out}{err}");
    assert!(
        out.contains("404 Not Found\nno tunnel route for /hooks/nowhere"),
        "status and body:\n{out}"
    );
    assert!(err.contains("nothing is configured at"), "{err}");

    // No --event: GitHub names the event in X-GitHub-Event, so the endpoint answers 400; the
    // sender is told to pass it, before sending and with the refusal.
    let (code, out, err) = hookwire_code(
        &["send", "--config", local, "github", issue, "--url", &url],
        &right,
    );
    assert_eq!(code, 1, "400 must fail:\n{out}{err}");
    assert!(out.contains("400 Bad Request"), "{out}");
    assert!(
        err.contains(
            "hint: no --event: source `github` (github) takes the event type from the x-github-event header"
        ),
        "{err}"
    );
    assert!(!out.contains("send-github-secret") && !err.contains("send-github-secret"));

    let (code, out, err) = hookwire_code(
        &[
            "send", "--config", local, "github", issue, "--event", "issues", "--url", &url,
        ],
        &right,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("202 Accepted") && err.is_empty(), "{out}{err}");
    assert_eq!(hw.next_notification()["params"]["meta"]["event"], "issues.opened");
}

#[test]
fn verify_explain_reads_github_recent_deliveries_and_says_what_format_it_wants() {
    let dir = TempDir::new("explain-github");
    let cfg = dir.write(
        "config.yaml",
        "sources:\n  - name: github\n    type: github\n    secret_env: E_GH\n",
    );
    let secret = "explain-github-secret-5f0e";
    let body = common::payload("github/issues.opened.json");
    let sig = common::github_signature(secret, &body);
    // As GitHub's Recent Deliveries page shows a delivery, copied with its headings.
    let headers = dir.write(
        "delivery.txt",
        &format!(
            "Headers\n\nRequest URL: https://hooks.example.com/hooks/github\nRequest method: POST\nAccept: */*\ncontent-type: application/json\nExpect: \nUser-Agent: GitHub-Hookshot/a5788b1\nX-GitHub-Delivery: a493c5c0-ca90-11e9-8816-5ef3a9de1d17\nX-GitHub-Event: issues\nX-GitHub-Hook-ID: 292430182\nX-GitHub-Hook-Installation-Target-ID: 79929171\nX-GitHub-Hook-Installation-Target-Type: repository\nX-Hub-Signature-256: {sig}\n\nPayload\n\n{{\"action\": \"opened\"}}\n"
        ),
    );
    let body_file = dir.write("body.json", std::str::from_utf8(&body).unwrap());
    let cfg = cfg.to_str().unwrap();
    let env = [("E_GH", secret)];
    let explain = |h: &std::path::Path| {
        hookwire_code(
            &[
                "verify",
                "explain",
                "--config",
                cfg,
                "github",
                "--headers",
                h.to_str().unwrap(),
                "--body",
                body_file.to_str().unwrap(),
            ],
            &env,
        )
    };
    let (code, out, err) = explain(&headers);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verified by secret #1"), "{out}");

    let bad = dir.write(
        "bad.txt",
        "X-GitHub-Event: issues\nsha256 signature follows on the next line\n",
    );
    let (code, out, err) = explain(&bad);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("line 2: not `Name: value`; expected one `Name: value` header per line"),
        "{err}"
    );
    assert!(
        err.contains(
            "GitHub's Recent Deliveries (a `Headers` heading, `Request URL: ...`, `Request method: ...`"
        ),
        "{err}"
    );
}

#[test]
fn verify_explain_names_the_matching_secret_or_the_reason_and_never_the_secret() {
    let dir = TempDir::new("explain");
    let cfg = dir.write(
        "config.yaml",
        "channel:\n  sources: [github]\nsources:\n  - name: github\n    type: github\n    secret_env: [E_OLD, E_NEW]\n",
    );
    let env = [
        ("E_OLD", "old-github-secret-a1b2"),
        ("E_NEW", "new-github-secret-c3d4"),
    ];
    let body = br#"{"action":"opened","issue":{"number":1}}"#;
    let sig = common::github_signature("new-github-secret-c3d4", body);
    let headers = dir.write(
        "headers.txt",
        &format!("POST /hooks/github HTTP/1.1\nX-GitHub-Event: issues\nX-Hub-Signature-256: {sig}\n"),
    );
    let good = dir.write("body.json", std::str::from_utf8(body).unwrap());
    let bad = dir.write("tampered.json", r#"{"action":"opened","issue":{"number":2}}"#);
    let cfg = cfg.to_str().unwrap();
    let run = |b: &std::path::Path| {
        hookwire(
            &[
                "verify",
                "explain",
                "--config",
                cfg,
                "github",
                "--headers",
                headers.to_str().unwrap(),
                "--body",
                b.to_str().unwrap(),
            ],
            &env,
        )
    };
    let (ok, out) = run(&good);
    assert!(ok, "{out}");
    assert!(out.contains("verified by secret #2 of the rotation set"), "{out}");
    assert!(out.contains("x-hub-signature-256"), "{out}");
    assert!(out.contains(&format!("body ({} bytes)", body.len())), "{out}");
    let (ok, out) = run(&bad);
    assert!(!ok, "{out}");
    assert!(out.contains("NOT verified: signature does not match"), "{out}");
    for secret in ["old-github-secret-a1b2", "new-github-secret-c3d4"] {
        assert!(!out.contains(secret), "a secret was printed:\n{out}");
    }
}

#[test]
fn a_bad_declared_source_is_reported_with_line_field_and_the_valid_choices() {
    let dir = TempDir::new("declared-errors");
    let cfg = dir.write(
        "config.yaml",
        "channel:
  sources: [a]
sources:
  - name: a
    type: hmac
    secret_env: D_SECRET
    verify:
      digest: sha3
      header: X-Sig
      encoding: hex
    event: {header: X-Event}
  - name: b
    type: hmac
    secret_env: D_SECRET
    verify: {digest: sha256, header: X-Sig, encoding: hex}
    event: {heder: X-Event}
  - name: c
    type: hmac
    secret_env: D_SECRET
    verify: {digest: sha256, header: X-Sig, encoding: hex, signed: \"{timestamp}.{body}\"}
    event: {value: e}
  - name: d
    type: stripe
    secret_env: D_SECRET
    tolerance: 5
",
    );
    let (ok, out) = hookwire(
        &["check", "--config", cfg.to_str().unwrap()],
        &[("D_SECRET", SECRET)],
    );
    assert!(!ok);
    let file = cfg.display().to_string();
    for want in [
        "4 problems".to_owned(),
        format!("{file}:8: sources[0].verify.digest: hmac source: unknown variant `sha3`, expected one of `sha1`, `sha256`, `sha512`"),
        format!("{file}:16: sources[1].event: hmac source: unknown key `heder`; write {{header: NAME}}"),
        format!("{file}:20: sources[2].verify: hmac source: `signed` uses {{timestamp}} but no `timestamp` is configured"),
        format!("{file}:25: sources[3].tolerance: stripe source: unknown field `tolerance`, expected `tolerance_secs`"),
    ] {
        assert!(out.contains(&want), "missing {want:?} in:\n{out}");
    }
    assert!(!out.contains(SECRET), "{out}");
}

/// The README's YAML-only example: declared vendor, own template, filter, and `render`.
#[test]
fn the_readme_example_of_a_yaml_only_vendor_renders_as_documented() {
    let dir = common::root().join("examples/acme");
    let out = Command::new(env!("CARGO_BIN_EXE_hookwire"))
        .current_dir(&dir)
        .args([
            "render",
            "--config",
            "config.yaml",
            "acme",
            "payload.json",
            "--event",
            "deployment",
        ])
        .args(["--header", "X-Acme-Delivery: d-9f2c"])
        // render verifies nothing, so it reads no secret: none is set.
        .env_remove("ACME_WEBHOOK_SECRET")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "filter: passes");
    let want = std::fs::read_to_string(dir.join("expected.jsonl")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    // The same payload from staging is filtered out.
    let staging = std::fs::read_to_string(dir.join("payload.json"))
        .unwrap()
        .replace("production", "staging");
    let tmp = TempDir::new("acme");
    let payload = tmp.write("staging.json", &staging);
    let out = Command::new(env!("CARGO_BIN_EXE_hookwire"))
        .current_dir(&dir)
        .args([
            "render",
            "--config",
            "config.yaml",
            "acme",
            payload.to_str().unwrap(),
            "--event",
            "deployment",
        ])
        .env_remove("ACME_WEBHOOK_SECRET")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("filter: blocked"),
        "{out:?}"
    );
}

/// `headers:` exposes chosen request headers to templates; credentials never.
#[test]
fn templates_see_only_the_headers_a_source_exposes() {
    let dir = TempDir::new("headers");
    dir.write(
        "t/hooks/default.hbs",
        "agent={{headers.[user-agent]}} hook={{default headers.[x-hook-id] \"none\"}} all={{json headers}}",
    );
    let cfg = dir.write(
        "config.yaml",
        "channel:\n  sources: [h]\ntemplates_dir: t\nsources:\n  - name: h\n    type: push\n    secret_env: D_SECRET\n    templates: hooks\n    headers: [User-Agent, X-Hook-ID]\n",
    );
    let body = dir.write("b.json", r#"{"content":"x"}"#);
    let out = Command::new(env!("CARGO_BIN_EXE_hookwire"))
        .args([
            "render",
            "--config",
            cfg.to_str().unwrap(),
            "h",
            body.to_str().unwrap(),
        ])
        .args([
            "--header",
            "User-Agent: Acme-Hookshot/1.2",
            "--header",
            "X-Hookwire-Token: not-for-templates",
        ])
        .env("D_SECRET", SECRET)
        .output()
        .unwrap();
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
    let content = line["params"]["content"].as_str().unwrap();
    assert_eq!(
        content,
        r#"agent=Acme-Hookshot/1.2 hook=none all={"user-agent":"Acme-Hookshot/1.2"}"#
    );
    let bad = dir.write(
        "bad.yaml",
        "channel:\n  sources: [h]\nsources:\n  - name: h\n    type: push\n    secret_env: D_SECRET\n    headers: [Authorization, X-Hookwire-Token]\n",
    );
    let (ok, out) = hookwire(
        &["check", "--config", bad.to_str().unwrap()],
        &[("D_SECRET", SECRET)],
    );
    assert!(!ok);
    assert!(
        out.contains("sources[0].headers[0]: `authorization` may carry a credential"),
        "{out}"
    );
    assert!(
        out.contains("sources[0].headers[1]: `x-hookwire-token` may carry a credential"),
        "{out}"
    );
}
