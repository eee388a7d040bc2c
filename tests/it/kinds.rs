//! The verification kinds added for vendors without an HMAC header, end to end against a
//! running `hookwire channel`: a valid request is delivered, a forged, wrong-key or stale
//! one is answered 401 and never reaches the session (the next line the session reads is
//! the next valid event), and a misconfigured source is reported with file, line and field.
//!
//! - Basic auth (`type: basic`, and the `azure-devops` preset built on it): user and password
//!   both checked; refused at start-up unless served over TLS or `behind_tls: true`.

use crate::common;

use std::process::Command;

use base64::Engine as _;
use common::{Hookwire, TempDir};

const PASSWORD: &str = "kinds-basic-password-0123456789";

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// `hookwire <args>`: success and everything it printed.
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

/// A request that must be refused: what it is, its headers and its body.
type Refused<'a> = (&'a str, Vec<(String, String)>, Vec<u8>);

/// Posts each refused request, then one valid one, and checks that the session's next line
/// is the valid one: nothing refused was stored or pushed.
fn refused_then_valid(
    hw: &mut Hookwire,
    path: &str,
    refused: &[Refused<'_>],
    valid: (Vec<(String, String)>, Vec<u8>, &str),
) {
    for (what, headers, body) in refused {
        let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let r = hw.post(path, &h, body);
        assert_eq!(r.status, 401, "{what}: {}", r.body);
    }
    let h: Vec<(&str, &str)> = valid.0.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let r = hw.post(path, &h, &valid.1);
    assert_eq!(r.status, 202, "valid: {}", r.body);
    let line = hw.next_line();
    assert!(
        line.contains(valid.2),
        "the next event is not the valid one: {line}"
    );
}

fn json_headers(auth: &str) -> Vec<(String, String)> {
    vec![
        ("Content-Type".into(), "application/json".into()),
        ("Authorization".into(), auth.into()),
    ]
}

#[test]
fn azure_devops_basic_auth_accepts_its_credentials_and_refuses_any_other() {
    let dir = TempDir::new("kinds-basic");
    let cfg = dir.write(
        "config.yaml",
        "channel:\n  sources: [azure-devops, declared]\nsources:\n  - name: azure-devops\n    type: azure-devops\n    secret_env: K_PASSWORD\n    behind_tls: true\n  - name: declared\n    type: basic\n    secret_env: K_PASSWORD\n    verify: {user: ci-bot, behind_tls: true}\n    event: {json: /kind}\n",
    );
    let mut hw = Hookwire::spawn(&cfg, &[("K_PASSWORD", PASSWORD)]);
    hw.handshake();
    let push = common::payload("azure-devops/git.push.json");
    let tampered = String::from_utf8(push.clone())
        .unwrap()
        .replace("8fda2152", "00000000")
        .into_bytes();
    refused_then_valid(
        &mut hw,
        "/hooks/azure-devops",
        &[
            (
                "no credentials",
                vec![("Content-Type".into(), "application/json".into())],
                push.clone(),
            ),
            (
                "wrong password",
                json_headers(&basic("azure-devops", "kinds-basic-password-0123456788")),
                push.clone(),
            ),
            (
                "wrong user",
                json_headers(&basic("someone-else", PASSWORD)),
                tampered.clone(),
            ),
            (
                "bearer instead of basic",
                json_headers(&format!("Bearer {PASSWORD}")),
                push.clone(),
            ),
            ("not base64", json_headers("Basic %%%"), push.clone()),
        ],
        (
            json_headers(&basic("azure-devops", PASSWORD)),
            push,
            "8fda2152-0de0-4031-9127-98a472f586e0",
        ),
    );
    refused_then_valid(
        &mut hw,
        "/hooks/declared",
        &[(
            "the preset's user",
            json_headers(&basic("azure-devops", PASSWORD)),
            br#"{"kind":"forged"}"#.to_vec(),
        )],
        (
            json_headers(&basic("ci-bot", PASSWORD)),
            br#"{"kind":"deploy"}"#.to_vec(),
            r#""event":"deploy""#,
        ),
    );
    assert!(!hw.stderr_text().contains(PASSWORD), "the password was logged");
}

#[test]
fn a_basic_auth_source_over_plain_http_is_refused_with_file_line_and_field() {
    let dir = TempDir::new("kinds-basic-tls");
    let cfg = dir.write(
        "config.yaml",
        "channel:
  sources: [azure-devops]
sources:
  - name: azure-devops
    type: azure-devops
    secret_env: K_PASSWORD
  - name: declared
    type: basic
    secret_env: K_PASSWORD
    verify: {user: \"a:b\", behind_tls: true}
    event: {value: e}
",
    );
    let (ok, out) = hookwire(
        &["check", "--config", cfg.to_str().unwrap()],
        &[("K_PASSWORD", PASSWORD)],
    );
    assert!(!ok, "{out}");
    let file = cfg.display().to_string();
    for want in [
        format!("{file}:5: sources[0].type: source `azure-devops` authenticates with Basic auth, whose password would cross plain HTTP"),
        "behind_tls: true".to_owned(),
        format!("{file}:10: sources[1].verify.user: basic source: `a:b` cannot be a Basic auth user name"),
    ] {
        assert!(out.contains(&want), "missing {want:?} in:\n{out}");
    }
    assert!(!out.contains(PASSWORD), "{out}");
}

#[test]
fn verify_explain_describes_basic_auth_without_the_password() {
    let dir = TempDir::new("kinds-basic-explain");
    let cfg = dir.write(
        "config.yaml",
        "channel:\n  sources: [azure-devops]\nsources:\n  - name: azure-devops\n    type: azure-devops\n    secret_env: K_PASSWORD\n    behind_tls: true\n",
    );
    let headers = dir.write(
        "headers.txt",
        &format!(
            "POST /hooks/azure-devops HTTP/1.1\nAuthorization: {}\n",
            basic("azure-devops", PASSWORD)
        ),
    );
    let body = dir.write("body.json", r#"{"id":"x","eventType":"git.push"}"#);
    let (ok, out) = hookwire(
        &[
            "verify",
            "explain",
            "--config",
            cfg.to_str().unwrap(),
            "azure-devops",
            "--headers",
            headers.to_str().unwrap(),
            "--body",
            body.to_str().unwrap(),
        ],
        &[("K_PASSWORD", PASSWORD)],
    );
    assert!(ok, "{out}");
    assert!(out.contains("scheme: basic"), "{out}");
    assert!(out.contains("user `azure-devops`"), "{out}");
    assert!(out.contains("verified by secret #1"), "{out}");
    assert!(!out.contains(PASSWORD), "{out}");
}
