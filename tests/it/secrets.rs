//! Secrets that would silently weaken a source are configuration errors, in every command
//! that reads them (`check`, `doctor`, `channel`, and the gateway link's session token):
//! - unset, empty, or still an unexpanded reference (`${NAME}`, `$NAME`, `%NAME%`: what
//!   Claude Code passes from `.mcp.json`'s `env` when the variable is not exported);
//! - shorter than the source type's minimum (16 bytes unless the vendor issues shorter).
//!
//! Every error names the variable or file and says what to do, never the value.

use crate::common;

use std::process::Command;

use common::gateway::os;
use common::{Hookwire, TempDir};

/// A GitHub source and a Datadog source, the second with a rotation list.
const CONFIG: &str = "channel:
  sources: [github, datadog]
sources:
  - name: github
    type: github
    secret_env: T_GH
  - name: datadog
    type: datadog
    secret_env: [T_DD_OLD, T_DD_NEW]
";

const GH_SECRET: &str = "secrets-test-github-0123456789abcdef";
const DD_TOKEN: &str = "secrets-test-datadog-0123456789abcdef";

/// `hookwire <args>` with exactly `env` added: exit code, stdout + stderr.
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookwire"));
    cmd.args(args).env_remove("HOOKWIRE_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run hookwire");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn an_unexpanded_or_empty_secret_is_refused_by_check_doctor_and_channel() {
    let dir = TempDir::new("secrets-unexpanded");
    let cfg = dir.write("config.yaml", CONFIG);
    let cfg_s = cfg.to_str().unwrap();
    let (code, out) = run(
        &["check", "--config", cfg_s],
        &[
            ("T_GH", GH_SECRET),
            ("T_DD_OLD", DD_TOKEN),
            ("T_DD_NEW", DD_TOKEN),
        ],
    );
    assert_eq!(code, 0, "the good secrets pass:\n{out}");

    for value in ["${T_GH}", "$T_GH", "%T_GH%", "${T_GH:-}", "", "  "] {
        let env = [("T_GH", value), ("T_DD_OLD", DD_TOKEN), ("T_DD_NEW", DD_TOKEN)];
        let (code, out) = run(&["check", "--config", cfg_s], &env);
        assert_eq!(code, 2, "check accepted T_GH={value:?}:\n{out}");
        assert!(
            out.contains("config.yaml:6: sources[0].secret_env: environment variable T_GH"),
            "T_GH={value:?}: the error names file, line, field and variable:\n{out}"
        );
        assert!(
            out.contains("export T_GH in the shell that starts claude") && out.contains("secret_file"),
            "T_GH={value:?}: the hint says what to do:\n{out}"
        );
        if !value.trim().is_empty() {
            assert!(!out.contains(value), "the value was printed:\n{out}");
        }
        // The channel does not serve it: a webhook signed with the literal text is never
        // accepted, and the session is told why.
        let mut ch = Hookwire::spawn_args(
            &[
                os("channel"),
                os("--config"),
                cfg.as_os_str(),
                os("--listen"),
                os("127.0.0.1:0"),
            ],
            &env,
            false,
        );
        let (notice, code) = ch.unservable_notice();
        assert_eq!(code, Some(2), "T_GH={value:?}");
        assert!(notice.contains("environment variable T_GH"), "{notice}");
        ch.wait_stderr("environment variable T_GH");

        let (code, out) = run(&["doctor", "--config", cfg_s], &env);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("FAIL  secrets:") && out.contains("environment variable T_GH"),
            "T_GH={value:?}:\n{out}"
        );
    }
    // The second secret of a rotation list is checked as much as the first.
    let (code, out) = run(
        &["check", "--config", cfg_s],
        &[
            ("T_GH", GH_SECRET),
            ("T_DD_OLD", DD_TOKEN),
            ("T_DD_NEW", "${T_DD_NEW}"),
        ],
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("sources[1].secret_env: environment variable T_DD_NEW"),
        "{out}"
    );
    assert!(!out.contains("T_DD_OLD"), "{out}");
}

#[test]
fn an_unexpanded_secret_file_or_tools_token_is_refused_too() {
    let dir = TempDir::new("secrets-file-tools");
    dir.write("gh.secret", "${GITHUB_WEBHOOK_SECRET}\n");
    let cfg = dir.write(
        "config.yaml",
        "channel:\n  sources: [github]\n  permissions: [create-issues]\nsources:\n  - name: github\n    type: github\n    secret_file: gh.secret\ntools:\n  github:\n    token_env: T_GITHUB_TOKEN\n    repos: [o/r]\n",
    );
    let (code, out) = run(
        &["check", "--config", cfg.to_str().unwrap()],
        &[("T_GITHUB_TOKEN", "$T_GITHUB_TOKEN")],
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("sources[0].secret_file: secret file") && out.contains("gh.secret"),
        "{out}"
    );
    assert!(
        out.contains("tools.github.token_env: environment variable T_GITHUB_TOKEN"),
        "{out}"
    );
    assert!(
        out.contains("token_file"),
        "the tools hint names the file alternative:\n{out}"
    );
    assert!(
        !out.contains("$T_GITHUB_TOKEN") && !out.contains("${GITHUB_WEBHOOK_SECRET}"),
        "{out}"
    );
}

#[test]
fn an_unexpanded_session_token_stops_the_linked_channel_with_a_clear_error() {
    for value in ["${HOOKWIRE_TOKEN}", "$HOOKWIRE_TOKEN", "%HOOKWIRE_TOKEN%"] {
        let mut ch = Hookwire::spawn_args(
            &[os("channel"), os("--gateway"), os("http://127.0.0.1:9")],
            &[("HOOKWIRE_TOKEN", value)],
            false,
        );
        let (notice, code) = ch.unservable_notice();
        assert_eq!(code, Some(2), "{value}");
        assert!(notice.contains("HOOKWIRE_TOKEN"), "{notice}");
        ch.wait_stderr("HOOKWIRE_TOKEN");
        let text = ch.stderr_text();
        assert!(
            text.contains("unexpanded") && text.contains("--token-file"),
            "{value}: {text}"
        );
        assert!(!text.contains(value), "the value was printed: {text}");
    }
    let dir = TempDir::new("secrets-token-file");
    let file = dir.write("token", "${HOOKWIRE_TOKEN}\n");
    let mut ch = Hookwire::spawn_args(
        &[
            os("channel"),
            os("--gateway"),
            os("http://127.0.0.1:9"),
            os("--token-file"),
            file.as_os_str(),
        ],
        &[],
        false,
    );
    let (notice, code) = ch.unservable_notice();
    assert_eq!(code, Some(2));
    assert!(notice.contains("unexpanded"), "{notice}");
    ch.wait_stderr("unexpanded");
}

#[test]
fn a_secret_shorter_than_16_bytes_is_refused_with_file_line_field_and_a_hint() {
    let dir = TempDir::new("secrets-short");
    let cfg = dir.write("config.yaml", CONFIG);
    let cfg_s = cfg.to_str().unwrap();
    // 15 bytes: one short of the minimum; 16 passes.
    let (code, out) = run(
        &["check", "--config", cfg_s],
        &[
            ("T_GH", "0123456789abcde"),
            ("T_DD_OLD", DD_TOKEN),
            ("T_DD_NEW", "s"),
        ],
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(
            "config.yaml:6: sources[0].secret_env: environment variable T_GH is shorter than 16 bytes"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "config.yaml:9: sources[1].secret_env: environment variable T_DD_NEW is shorter than 16 bytes"
        ),
        "{out}"
    );
    assert!(out.contains("openssl rand -hex 32"), "{out}");
    assert!(!out.contains("T_DD_OLD"), "{out}");
    assert!(!out.contains("0123456789abcde"), "the value was printed:\n{out}");
    let (code, out) = run(
        &["check", "--config", cfg_s],
        &[
            ("T_GH", "0123456789abcdef"),
            ("T_DD_OLD", DD_TOKEN),
            ("T_DD_NEW", DD_TOKEN),
        ],
    );
    assert_eq!(code, 0, "16 bytes is enough:\n{out}");
}
