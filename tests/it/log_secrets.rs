//! No secret in any log line of a whole test run.
//!
//! `.ci/run` sets `HOOKWIRE_LOG_FILE` for `cargo test --workspace`, so every hookwire process
//! the suite starts (channels, gateways, linked channels, CLI commands; most at debug or
//! trace level) also appends its log lines to that one file. Afterwards it runs this ignored
//! test, which fails if any line holds a secret the tests configured: every test constant
//! named like a secret (`*SECRET*`, `*TOKEN*`, `*KEY*`, `*SEED*`, `*PASSWORD*`), and any
//! session token (`hwt_` and 43 base64url characters), whoever minted it.
//!
//! Run by hand: `HOOKWIRE_LOG_FILE=/tmp/hw.log cargo test --workspace` then
//! `HOOKWIRE_LOG_FILE=/tmp/hw.log cargo test --test it log_secrets -- --ignored`.

use std::path::Path;

/// Test constants whose names say they hold a secret, with their values.
fn configured_secrets(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "common") {
                configured_secrets(&path, out);
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("log_secrets.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            let Some(rest) = line.trim_start().strip_prefix("const ") else {
                continue;
            };
            let Some((name, value)) = rest.split_once(": &str = \"") else {
                continue;
            };
            let Some(value) = value.strip_suffix("\";") else {
                continue;
            };
            let secretish = ["SECRET", "TOKEN", "KEY", "SEED", "PASSWORD"]
                .iter()
                .any(|w| name.contains(w));
            if secretish && value.len() >= 8 {
                out.push((name.to_owned(), value.to_owned()));
            }
        }
    }
}

/// A session token anywhere in `line`.
fn holds_session_token(line: &str) -> bool {
    line.match_indices("hwt_").any(|(i, _)| {
        let tail = &line[i + 4..];
        tail.len() >= 43
            && tail
                .bytes()
                .take(43)
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[test]
#[ignore = "run by .ci/run after the whole suite, over its HOOKWIRE_LOG_FILE"]
fn no_log_line_of_the_test_run_holds_a_secret() {
    let file = std::env::var_os("HOOKWIRE_LOG_FILE")
        .expect("set HOOKWIRE_LOG_FILE to the log file of a whole test run (see .ci/run)");
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", Path::new(&file).display()));
    let lines: Vec<&str> = text.lines().collect();
    // A run that logged little proves nothing: the suite starts hundreds of processes.
    assert!(
        lines.len() >= 1_000,
        "only {} log lines; was HOOKWIRE_LOG_FILE set for the suite?",
        lines.len()
    );
    for expected in [
        "listening on http://",
        "session connected",
        "store closed",
        "rejected: verification failed",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(expected)),
            "no `{expected}` line: the log does not cover the suite"
        );
    }

    let mut secrets = Vec::new();
    configured_secrets(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it"),
        &mut secrets,
    );
    assert!(
        secrets.len() >= 15,
        "found only {} secret constants in tests/it/",
        secrets.len()
    );

    let mut leaks = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        for (name, value) in &secrets {
            if line.contains(value.as_str()) {
                leaks.push(format!("line {}: the value of {name}", n + 1));
            }
        }
        if holds_session_token(line) {
            leaks.push(format!("line {}: a session token", n + 1));
        }
    }
    assert!(
        leaks.is_empty(),
        "{} log line(s) of {} hold a secret ({}):\n{}",
        leaks.len(),
        lines.len(),
        Path::new(&file).display(),
        leaks.join("\n")
    );
}

#[test]
fn a_session_token_is_recognised() {
    let t = format!("hwt_{}", "A".repeat(43));
    assert!(holds_session_token(&format!("token={t} rest")));
    assert!(!holds_session_token("hwt_ is the prefix of session tokens"));
    assert!(!holds_session_token(&format!("hwt_{}", "A".repeat(42))));
}
