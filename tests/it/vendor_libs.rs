//! Signatures made by the vendors' OWN libraries verify against a running `hookwire channel`.
//!
//! The adapters' unit tests and `tests/fixtures/vectors.json` prove hookwire follows each
//! signing scheme as documented. These tests prove it agrees with the code the vendors ship:
//! every webhook here is signed by the vendor's library, sent over HTTP to a spawned
//! `hookwire channel` that has done the MCP handshake as Claude Code does, and must come out
//! on stdout as one `notifications/claude/channel` naming the event and delivery id:
//!
//! | source  | type                | signer                                                     |
//! |---------|---------------------|------------------------------------------------------------|
//! | github  | `github`            | npm `@octokit/webhooks-methods` `sign(secret, payload)`    |
//! | stripe  | `stripe`            | npm `stripe` `webhooks.generateTestHeaderString(...)`      |
//! | svix    | `standard-webhooks` | npm `standardwebhooks` `new Webhook(secret).sign(...)`     |
//! | slack   | `slack`             | Python `slack_sdk` `SignatureVerifier.generate_signature`  |
//!
//! For each vendor the same library signature sent with the body changed by one byte is
//! answered 401 and never reaches the session (the valid event, posted after it, is the first
//! thing the session sees). The signers are `tests/node/vendor_sign.mjs` and
//! `tests/python/slack_sign.py`; they print the headers to send as one line of JSON.
//!
//! The libraries are pinned in `tests/node/package-lock.json` and
//! `tests/python/requirements.txt`. `.ci/run` installs them; the tests fail, rather than skip,
//! when they are missing. No network access or credentials are needed.

use crate::common;

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;

use base64::Engine as _;
use common::{payload, Hookwire, TempDir, DEADLINE};
use serde_json::{json, Value};

const NPM_HINT: &str = "run `.ci/run`, or `npm ci --prefix tests/node` in the repository root";
const PIP_HINT: &str =
    "run `.ci/run`, or `python3 -m pip install --require-hashes -r tests/python/requirements.txt`";

/// The npm packages `tests/node/vendor_sign.mjs` imports.
const NODE_PACKAGES: [&str; 3] = ["@octokit/webhooks-methods", "stripe", "standardwebhooks"];

const GH_SECRET: &str = "hwtest-gh-5d1c7e09a3b24f68";
/// Stripe uses the whole `whsec_...` string as the HMAC key.
const STRIPE_SECRET: &str = "whsec_hwtest7b3e1d9c05a2f4e8";
const SLACK_SECRET: &str = "hwtest-slack-0e6a92c4d1f873b5";

#[derive(Clone, Copy, Debug)]
enum Vendor {
    GitHub,
    Stripe,
    StandardWebhooks,
    Slack,
}

const ALL: [Vendor; 4] = [
    Vendor::GitHub,
    Vendor::Stripe,
    Vendor::StandardWebhooks,
    Vendor::Slack,
];

/// The headers a signer printed, in its spelling.
type Headers = BTreeMap<String, String>;

fn header<'a>(headers: &'a Headers, name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("the signer printed no {name} header: {headers:?}"))
}

impl Vendor {
    /// The source name in the config (served on `/hooks/<name>`).
    fn source(self) -> &'static str {
        match self {
            Vendor::GitHub => "github",
            Vendor::Stripe => "stripe",
            Vendor::StandardWebhooks => "svix",
            Vendor::Slack => "slack",
        }
    }

    /// The adapter type in the config.
    fn kind(self) -> &'static str {
        match self {
            Vendor::GitHub => "github",
            Vendor::Stripe => "stripe",
            Vendor::StandardWebhooks => "standard-webhooks",
            Vendor::Slack => "slack",
        }
    }

    fn secret_env(self) -> &'static str {
        match self {
            Vendor::GitHub => "GH_SECRET",
            Vendor::Stripe => "STRIPE_SECRET",
            Vendor::StandardWebhooks => "SW_SECRET",
            Vendor::Slack => "SLACK_SECRET",
        }
    }

    /// The body to sign and send.
    fn body(self) -> Vec<u8> {
        match self {
            Vendor::GitHub => payload("github/issues.opened.json"),
            Vendor::Stripe => payload("stripe/event.plan.created.json"),
            Vendor::StandardWebhooks => serde_json::to_vec(&json!({
                "type": "invoice.paid",
                "timestamp": "2026-01-02T03:04:05Z",
                "data": {"id": "inv_hookwire_vendor_libs", "amount_paid": 1200, "currency": "usd"}
            }))
            .unwrap(),
            Vendor::Slack => payload("slack/event_callback.reaction_added.json"),
        }
    }

    /// Text in [`Vendor::body`] whose last letter the negative case flips: the body stays
    /// valid JSON of the same length, so only the signature can reject it.
    fn tamper_in(self) -> &'static str {
        match self {
            Vendor::GitHub => "Spelling error in the README file",
            Vendor::Stripe => "evt_1Pgc76B7WZ01zgkWwyRHS12y",
            Vendor::StandardWebhooks => "inv_hookwire_vendor_libs",
            Vendor::Slack => "EvXXXXXXXX",
        }
    }

    /// The `event` and `delivery_id` the notification must carry for [`Vendor::body`] sent
    /// with `headers`.
    fn expected(self, headers: &Headers) -> (String, String) {
        match self {
            Vendor::GitHub => (
                "issues.opened".to_owned(),
                header(headers, "X-GitHub-Delivery").to_owned(),
            ),
            Vendor::Stripe => (
                "plan.created".to_owned(),
                "evt_1Pgc76B7WZ01zgkWwyRHS12y".to_owned(),
            ),
            Vendor::StandardWebhooks => (
                "invoice.paid".to_owned(),
                header(headers, "webhook-id").to_owned(),
            ),
            Vendor::Slack => ("reaction_added".to_owned(), "EvXXXXXXXX".to_owned()),
        }
    }
}

/// The per-run secrets (Standard Webhooks' is random: `whsec_` + base64 of 24 bytes).
struct Secrets {
    standard_webhooks: String,
}

impl Secrets {
    fn new() -> Self {
        let state = RandomState::new();
        let bytes: Vec<u8> = (0u64..3)
            .flat_map(|i| state.hash_one((i, std::process::id())).to_le_bytes())
            .collect();
        Secrets {
            standard_webhooks: format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(bytes)
            ),
        }
    }

    fn of(&self, vendor: Vendor) -> &str {
        match vendor {
            Vendor::GitHub => GH_SECRET,
            Vendor::Stripe => STRIPE_SECRET,
            Vendor::StandardWebhooks => &self.standard_webhooks,
            Vendor::Slack => SLACK_SECRET,
        }
    }

    fn env(&self) -> Vec<(&'static str, &str)> {
        ALL.iter().map(|v| (v.secret_env(), self.of(*v))).collect()
    }
}

/// A config with one source per vendor in `vendors`, all allowed into the session.
fn config(dir: &TempDir, vendors: &[Vendor]) -> PathBuf {
    let names: Vec<&str> = vendors.iter().map(|v| v.source()).collect();
    let mut yaml = format!(
        "channel:\n  enabled: true\n  sources: [{}]\nsources:\n",
        names.join(", ")
    );
    for v in vendors {
        yaml.push_str(&format!(
            "  - name: {}\n    type: {}\n    secret_env: {}\n",
            v.source(),
            v.kind(),
            v.secret_env()
        ));
    }
    dir.write("config.yaml", &yaml)
}

// ---- prerequisites: fail, never skip, when the vendor libraries are missing ----

/// `tests/node/node_modules` with every signer package at the version `package.json` pins.
fn require_node_packages() {
    let node = common::root().join("tests/node");
    let manifest = read_json(&node.join("package.json"));
    let modules = node.join("node_modules");
    assert!(modules.is_dir(), "{} is missing: {NPM_HINT}", modules.display());
    for pkg in NODE_PACKAGES {
        let pinned = manifest["dependencies"][pkg]
            .as_str()
            .unwrap_or_else(|| panic!("tests/node/package.json does not pin {pkg}"));
        let installed = modules.join(pkg).join("package.json");
        assert!(
            installed.is_file(),
            "npm package {pkg} is not installed ({} is missing): {NPM_HINT}",
            installed.display()
        );
        let version = read_json(&installed)["version"].clone();
        assert_eq!(
            version, pinned,
            "npm package {pkg} is installed at {version}, package.json pins {pinned}: {NPM_HINT}"
        );
    }
}

/// `slack_sdk` importable by `python3`, at the version `tests/python/requirements.txt` pins.
fn require_slack_sdk() {
    let reqs = common::root().join("tests/python/requirements.txt");
    let text = std::fs::read_to_string(&reqs).unwrap_or_else(|e| panic!("read {}: {e}", reqs.display()));
    let pinned = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("slack_sdk=="))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{} does not pin slack_sdk==<version>", reqs.display()));
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        "import slack_sdk.version, sys; sys.stdout.write(slack_sdk.version.__version__)",
    ]);
    let out = run(cmd, "python3 (import slack_sdk)", PIP_HINT);
    assert!(
        out.ok,
        "Python package slack_sdk is not importable by python3: {PIP_HINT}\n{}",
        out.stderr
    );
    assert_eq!(
        out.stdout.trim(),
        pinned,
        "slack_sdk {} is installed, tests/python/requirements.txt pins {pinned}: {PIP_HINT}",
        out.stdout.trim()
    );
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

// ---- running the signers ----

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` from the repository root with stdin closed; fails the test if it cannot start
/// or outlives [`DEADLINE`].
fn run(mut cmd: Command, what: &str, hint: &str) -> Output {
    cmd.current_dir(common::root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} ({:?}): {e}; {hint}", cmd.get_program()));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let Some(status) = common::wait_with_deadline(&mut child, DEADLINE) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} did not finish within {DEADLINE:?}");
    };
    Output {
        ok: status.success(),
        stdout: stdout.recv_timeout(DEADLINE).unwrap_or_default(),
        stderr: stderr.recv_timeout(DEADLINE).unwrap_or_default(),
    }
}

/// Reads a pipe to the end on its own thread.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    rx
}

/// The headers `vendor`'s own library produces for `body` signed with `secret`.
fn sign(dir: &TempDir, vendor: Vendor, secret: &str, body: &[u8], tag: &str) -> Headers {
    let file = dir.0.join(format!("body-{}-{tag}", vendor.source()));
    std::fs::write(&file, body).unwrap();
    let (mut cmd, hint) = match vendor {
        Vendor::Slack => {
            let mut cmd = Command::new("python3");
            cmd.arg("tests/python/slack_sign.py");
            (cmd, PIP_HINT)
        }
        _ => {
            let mut cmd = Command::new("node");
            cmd.args(["tests/node/vendor_sign.mjs", vendor.kind()]);
            (cmd, NPM_HINT)
        }
    };
    cmd.arg(secret).arg(&file);
    let what = format!("the {} signer", vendor.kind());
    let out = run(cmd, &what, hint);
    assert!(
        out.ok,
        "{what} failed ({hint})\n---- stdout ----\n{}\n---- stderr ----\n{}",
        out.stdout, out.stderr
    );
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{what} did not print a JSON object of string headers ({e}):\n{}",
            out.stdout
        )
    })
}

/// `body` with the last letter of `within` (which must occur in it) flipped in case.
fn tamper(body: &[u8], within: &str) -> Vec<u8> {
    let at = body
        .windows(within.len())
        .position(|w| w == within.as_bytes())
        .unwrap_or_else(|| panic!("{within:?} is not in the body"));
    let last = (at..at + within.len())
        .rev()
        .find(|&i| body[i].is_ascii_alphabetic())
        .unwrap_or_else(|| panic!("{within:?} has no letter"));
    let mut out = body.to_vec();
    out[last] ^= 0x20;
    out
}

fn send(hw: &Hookwire, vendor: Vendor, headers: &Headers, body: &[u8]) -> common::HttpReply {
    let mut pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    pairs.push(("Content-Type", "application/json"));
    hw.post(&format!("/hooks/{}", vendor.source()), &pairs, body)
}

/// Sends `vendor`'s body, signed by its library, first with one byte changed (401, nothing
/// delivered) and then as signed (202, and the session's next message is its notification).
fn deliver(hw: &mut Hookwire, dir: &TempDir, secrets: &Secrets, vendor: Vendor) {
    let body = vendor.body();
    let headers = sign(dir, vendor, secrets.of(vendor), &body, "event");
    let (event, delivery) = vendor.expected(&headers);

    let tampered = tamper(&body, vendor.tamper_in());
    let refused = send(hw, vendor, &headers, &tampered);
    assert_eq!(
        refused.status,
        401,
        "{vendor:?}: the library's signature was accepted for a body changed by one byte \
         (answer {:?}); stderr:\n{}",
        refused.body,
        hw.stderr_text()
    );

    let accepted = send(hw, vendor, &headers, &body);
    assert_eq!(
        accepted.status,
        202,
        "{vendor:?}: hookwire refused a body signed by the vendor's own library with {headers:?} \
         (answer {:?}); stderr:\n{}",
        accepted.body,
        hw.stderr_text()
    );

    let n = hw.next_notification();
    let meta = &n["params"]["meta"];
    assert_eq!(
        meta["delivery_id"], delivery,
        "{vendor:?}: the first notification is not the signed event (did the tampered one reach \
         the session?): {n}"
    );
    assert_eq!(meta["source_name"], vendor.source(), "{vendor:?}: {n}");
    assert_eq!(meta["event"], event, "{vendor:?}: {n}");
    let content = n["params"]["content"].as_str().unwrap_or_default();
    assert!(!content.trim().is_empty(), "{vendor:?}: empty content: {n}");
}

/// Slack's `url_verification`, signed by `slack_sdk`, is answered 200 with the challenge and
/// never delivered (the next [`deliver`] checks that nothing got ahead of its event).
fn slack_url_verification(hw: &Hookwire, dir: &TempDir, secrets: &Secrets) {
    let challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P";
    let body = serde_json::to_vec(&json!({
        "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
        "challenge": challenge,
        "type": "url_verification"
    }))
    .unwrap();
    let headers = sign(
        dir,
        Vendor::Slack,
        secrets.of(Vendor::Slack),
        &body,
        "url-verification",
    );
    let r = send(hw, Vendor::Slack, &headers, &body);
    assert_eq!(
        r.status,
        200,
        "url_verification signed by slack_sdk was not answered 200 (answer {:?}); stderr:\n{}",
        r.body,
        hw.stderr_text()
    );
    assert!(
        r.body.contains(challenge),
        "the url_verification answer does not echo the challenge: {:?}",
        r.body
    );
}

/// Spawns hookwire with a source for each of `vendors` and completes the MCP handshake.
fn start(dir: &TempDir, secrets: &Secrets, vendors: &[Vendor]) -> Hookwire {
    let cfg = config(dir, vendors);
    let mut hw = Hookwire::spawn(&cfg, &secrets.env());
    hw.handshake();
    hw
}

fn one_vendor(vendor: Vendor) {
    match vendor {
        Vendor::Slack => require_slack_sdk(),
        _ => require_node_packages(),
    }
    let dir = TempDir::new(&format!("vendor-libs-{}", vendor.source()));
    let secrets = Secrets::new();
    let mut hw = start(&dir, &secrets, &[vendor]);
    if let Vendor::Slack = vendor {
        slack_url_verification(&hw, &dir, &secrets);
    }
    deliver(&mut hw, &dir, &secrets, vendor);
}

#[test]
fn github_signature_from_octokit_webhooks_methods_verifies() {
    one_vendor(Vendor::GitHub);
}

#[test]
fn stripe_signature_from_stripe_node_verifies() {
    one_vendor(Vendor::Stripe);
}

#[test]
fn standard_webhooks_signature_from_standardwebhooks_verifies() {
    one_vendor(Vendor::StandardWebhooks);
}

#[test]
fn slack_signature_from_slack_sdk_verifies() {
    one_vendor(Vendor::Slack);
}

/// All four sources in one config and one session: each event reaches the session once,
/// under its own source name.
#[test]
fn all_four_vendor_libraries_in_one_session() {
    require_node_packages();
    require_slack_sdk();
    let dir = TempDir::new("vendor-libs-all");
    let secrets = Secrets::new();
    let mut hw = start(&dir, &secrets, &ALL);
    slack_url_verification(&hw, &dir, &secrets);
    for vendor in ALL {
        deliver(&mut hw, &dir, &secrets, vendor);
    }
}
