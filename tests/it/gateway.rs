//! Black-box tests of the team gateway (`hookwire serve`) and channels linked to it
//! (`hookwire channel --gateway URL`): delivery of the exact notification line, fan-out by
//! token, token refusal at connect and during a session, events kept while a session is away,
//! no loss across a SIGKILL of the channel, and TLS.
//!
//! Tokens are created through the store API on the gateway's database file (SQLite in WAL
//! mode is shared across processes), as `hookwire token create` does.
//!
//! The black-box behaviours that must hold whatever the store (fan-out and scoping, a
//! session away and back, one session per token, a restart without repeats or loss) run
//! twice: on SQLite and on a three-node JetStream cluster (`_on_jetstream`, through
//! [`Backend`]), the gateway and the test's store handle configured alike.

use crate::common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::gateway::{now_ms, os, serve, store, token, upgrade_session, TWO_GITHUB_SOURCES};
use common::{delivery_id, github_signature, issue, Hookwire, TempDir, DEADLINE};
use hookwire_core::store::Store;
use serde_json::{json, Value};

const SECRET: &str = "test-gateway-github-secret-5d21";

/// Two GitHub-type sources and no `channel.sources`: a gateway stores every source anyway.
fn config(dir: &TempDir, tls: Option<(&Path, &Path)>) -> PathBuf {
    let tls = match tls {
        Some((cert, key)) => format!(
            "tls:\n  cert_file: {}\n  key_file: {}\n",
            cert.display(),
            key.display()
        ),
        None => String::new(),
    };
    dir.write("config.yaml", &format!("{tls}{TWO_GITHUB_SOURCES}"))
}

/// The store a parametrised test's gateway runs on.
#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    JetStream,
}

/// A gateway config on `backend` and the store as `hookwire token` opens it with that config.
/// Dropped after the test's processes (declared first), the cluster last.
struct OnStore {
    cfg: PathBuf,
    db: Arc<dyn Store>,
    _cluster: Option<Arc<common::nats::Cluster>>,
}

/// [`OnStore`] for `backend` in `dir` (JetStream names prefixed `prefix`); `None` when
/// JetStream is wanted and `nats-server` is absent with the opt-out set (the test then
/// returns, as tests/it/nats.rs does).
fn on_store(dir: &TempDir, backend: Backend, prefix: &str) -> Option<OnStore> {
    Some(match backend {
        Backend::Sqlite => OnStore {
            cfg: config(dir, None),
            db: store(dir),
            _cluster: None,
        },
        Backend::JetStream => {
            if !common::nats::available() {
                return None;
            }
            // Shared with the other tests running now, each on its own prefix.
            let cluster = common::nats::Cluster::shared();
            OnStore {
                cfg: dir.write(
                    "config.yaml",
                    &format!(
                        "{}{TWO_GITHUB_SOURCES}",
                        cluster.store_section_with_prefix(prefix)
                    ),
                ),
                db: Arc::new(cluster.store_with_prefix(prefix)),
                _cluster: Some(cluster),
            }
        }
    })
}

/// A token for `sources` in any store; returns its secret.
fn token_in(db: &dyn Store, name: &str, sources: &[&str]) -> String {
    db.tokens()
        .create(
            &hookwire_core::store::NewToken {
                name: name.into(),
                sources: sources.iter().map(|s| s.to_string()).collect(),
                permissions: vec![],
                expires_ms: None,
            },
            now_ms(),
        )
        .unwrap()
        .0
}

/// `hookwire serve` on a free port.
fn gateway(cfg: &Path) -> Hookwire {
    serve(cfg, "127.0.0.1:0", &[("T_GITHUB_SECRET", SECRET)])
}

/// `hookwire channel --gateway http://ADDR` with the token in the environment.
fn linked(gw: &Hookwire, token: &str) -> Hookwire {
    common::gateway::linked(gw, &[], &[("HOOKWIRE_TOKEN", token)])
}

/// POSTs a signed GitHub `issues` delivery to the gateway at `addr`; returns the status.
fn post(addr: &str, path: &str, delivery: &str) -> u16 {
    let body = issue(delivery);
    let r = ureq::post(&format!("http://{addr}{path}"))
        .timeout(DEADLINE)
        .set("Content-Type", "application/json")
        .set("X-GitHub-Event", "issues")
        .set("X-GitHub-Delivery", delivery)
        .set("X-Hub-Signature-256", &github_signature(SECRET, &body))
        .send_bytes(&body);
    match r {
        Ok(resp) => resp.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("POST {path}: {e}"),
    }
}

/// A WebSocket upgrade of `/v1/session` over a raw socket: the status line's code, the
/// response head and, for a refusal, the body.
fn upgrade(addr: &str, token: Option<&str>, protocol: Option<&str>) -> (u16, String, String) {
    let (mut s, head) = upgrade_session(addr, token, protocol);
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).unwrap();
    (status, head, String::from_utf8(body).unwrap())
}

#[test]
fn a_webhook_reaches_a_linked_channel_as_the_exact_stored_line() {
    let dir = TempDir::new("gw-basic");
    let gw = gateway(&config(&dir, None));
    let db = store(&dir);
    let alice = token(&db, "alice", &["github"], &[], None);
    assert_eq!(
        ureq::get(&format!("http://{}/healthz", gw.addr))
            .call()
            .unwrap()
            .into_string()
            .unwrap(),
        "ok\n"
    );

    // Even at the most verbose level the token stays out of the logs.
    let mut ch = common::gateway::linked(&gw, &[], &[("HOOKWIRE_TOKEN", &alice), ("HOOKWIRE_LOG", "trace")]);
    let init = ch.handshake();
    let instructions = init["instructions"].as_str().unwrap();
    assert!(
        instructions.contains("- github (github)"),
        "the token's sources: {instructions}"
    );
    assert!(!instructions.contains("- ops"), "not the token's: {instructions}");
    assert!(instructions.contains("untrusted"));

    assert_eq!(post(&gw.addr, "/hooks/github", "gw-basic-1"), 202);
    let line = ch.next_line();
    let stored = db.get("gw-basic-1").unwrap().expect("stored by the gateway");
    assert_eq!(
        format!("{line}\n").as_bytes(),
        stored.stored.line.as_slice(),
        "the channel writes the stored notification byte for byte"
    );
    let n: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(n["method"], "notifications/claude/channel");
    assert_eq!(n["params"]["meta"]["source_name"], "github");

    // Delivered and acknowledged: the gateway records alice's cursor at that event.
    let seq = stored.stored.seq;
    let end = std::time::Instant::now() + DEADLINE;
    while db.cursor("alice", 0).unwrap() < seq {
        assert!(
            std::time::Instant::now() < end,
            "alice's ack never reached the store"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Claude Code closes stdin: the linked channel exits promptly, like local mode.
    let (took, rest) = ch.close_and_wait();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(rest.is_empty(), "{rest:?}");
    assert!(!ch.stderr_text().contains(&alice), "the token was logged");
    assert!(
        !gw.stderr_text().contains(&alice),
        "the token was logged by the gateway"
    );
    db.close(Duration::from_secs(2));
}

#[test]
fn each_event_fans_out_to_every_token_of_its_source_and_no_other() {
    fans_out(Backend::Sqlite);
}

#[test]
fn each_event_fans_out_to_every_token_of_its_source_and_no_other_on_jetstream() {
    fans_out(Backend::JetStream);
}

fn fans_out(backend: Backend) {
    let dir = TempDir::new("gw-fanout");
    let Some(on) = on_store(&dir, backend, "gw-fanout") else {
        return;
    };
    let gw = gateway(&on.cfg);
    let db = &*on.db;
    let (alice, bob, carol) = (
        token_in(db, "alice", &["github"]),
        token_in(db, "bob", &["github"]),
        token_in(db, "carol", &["ops"]),
    );
    let mut channels: Vec<Hookwire> = [&alice, &bob, &carol].iter().map(|t| linked(&gw, t)).collect();
    for c in &mut channels {
        c.handshake();
    }
    for i in 0..5 {
        assert_eq!(post(&gw.addr, "/hooks/github", &format!("fan-gh-{i}")), 202);
    }
    assert_eq!(post(&gw.addr, "/hooks/ops", "fan-ops-0"), 202);
    for c in &mut channels[..2] {
        let got: Vec<String> = (0..5).map(|_| delivery_id(&c.next_notification())).collect();
        assert_eq!(got, (0..5).map(|i| format!("fan-gh-{i}")).collect::<Vec<_>>());
    }
    // carol's first event is the one posted last: none of the github ones came before it.
    let n = channels[2].next_notification();
    assert_eq!(delivery_id(&n), "fan-ops-0");
    assert_eq!(n["params"]["meta"]["source_name"], "ops");
    // And the github subscribers never see ops: the next github event is what comes next.
    assert_eq!(post(&gw.addr, "/hooks/github", "fan-gh-5"), 202);
    for c in &mut channels[..2] {
        assert_eq!(delivery_id(&c.next_notification()), "fan-gh-5");
    }
    db.close(Duration::from_secs(2));
}

#[test]
fn bad_revoked_and_expired_tokens_are_refused_before_the_upgrade() {
    let dir = TempDir::new("gw-refuse");
    let gw = gateway(&config(&dir, None));
    let db = store(&dir);
    let good = token(&db, "good", &["github"], &[], None);
    let revoked = token(&db, "gone", &["github"], &[], None);
    assert!(db.tokens().revoke("gone", now_ms()).unwrap());
    let expired = token(&db, "old", &["github"], &[], Some(now_ms() - 1000));

    let p = Some("hookwire.v1");
    assert_eq!(upgrade(&gw.addr, None, p).0, 401);
    let (status, head, body) = upgrade(&gw.addr, Some("hwt_not-a-real-token"), p);
    assert_eq!((status, body.as_str()), (401, "unknown"));
    assert!(
        head.to_ascii_lowercase().contains("www-authenticate: bearer"),
        "{head}"
    );
    assert_eq!(upgrade(&gw.addr, Some(&revoked), p).2, "revoked");
    assert_eq!(upgrade(&gw.addr, Some(&expired), p).2, "expired");
    assert_eq!(
        upgrade(&gw.addr, Some(&good), None).0,
        400,
        "the subprotocol is required"
    );
    assert_eq!(upgrade(&gw.addr, Some(&good), Some("other")).0, 400);
    let (status, head, _) = upgrade(&gw.addr, Some(&good), Some("chat, hookwire.v1"));
    assert_eq!(status, 101, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-protocol: hookwire.v1"),
        "{head}"
    );

    // A channel with a revoked token says why, and keeps running (it retries: the admin may
    // fix it, and Claude Code would show an exited server as failed).
    let mut ch = linked(&gw, &revoked);
    ch.wait_stderr("refused this session's token (revoked)");
    assert!(ch.child.try_wait().unwrap().is_none(), "the channel exited");
    // It still answers Claude Code, with instructions that name the gateway.
    let init = ch.handshake();
    assert!(init["instructions"].as_str().unwrap().contains(&gw.addr));
    for secret in [&good, &revoked, &expired] {
        assert!(!gw.stderr_text().contains(secret.as_str()), "a token was logged");
        assert!(!ch.stderr_text().contains(secret.as_str()), "a token was logged");
    }
    db.close(Duration::from_secs(2));
}

#[test]
fn a_token_revoked_during_a_session_ends_it() {
    let dir = TempDir::new("gw-revoke");
    let gw = gateway(&config(&dir, None));
    let db = store(&dir);
    let t = token(&db, "mallory", &["github"], &[], None);
    let mut ch = linked(&gw, &t);
    ch.handshake();
    assert_eq!(post(&gw.addr, "/hooks/github", "rv-1"), 202);
    assert_eq!(delivery_id(&ch.next_notification()), "rv-1");

    assert!(db.tokens().revoke("mallory", now_ms()).unwrap());
    ch.wait_stderr("the gateway ended the session: this session's token is revoked");
    gw.wait_stderr("session ended: token no longer valid");
    // It cannot come back, and the channel process lives on (answering Claude Code).
    assert_eq!(upgrade(&gw.addr, Some(&t), Some("hookwire.v1")).2, "revoked");
    // The session is told once, by hookwire itself, and the link stops trying.
    let notice = ch.next_notification();
    assert_eq!(notice["params"]["meta"]["event"], "hookwire.token_refused");
    assert_eq!(notice["params"]["meta"]["reason"], "revoked");
    assert!(notice["params"]["content"]
        .as_str()
        .unwrap()
        .contains("new token"));
    let id = ch.request("ping", json!({}));
    assert_eq!(ch.next_message()["id"], id);
    assert!(ch.child.try_wait().unwrap().is_none(), "the channel exited");
    db.close(Duration::from_secs(2));
}

#[test]
fn events_wait_for_an_absent_session_and_arrive_in_order() {
    wait_for_the_session(Backend::Sqlite);
}

#[test]
fn events_wait_for_an_absent_session_and_arrive_in_order_on_jetstream() {
    wait_for_the_session(Backend::JetStream);
}

fn wait_for_the_session(backend: Backend) {
    let dir = TempDir::new("gw-away");
    let Some(on) = on_store(&dir, backend, "gw-away") else {
        return;
    };
    let gw = gateway(&on.cfg);
    let db = &*on.db;
    let t = token_in(db, "away", &["github"]);
    let ids: Vec<String> = (0..20).map(|i| format!("away-{i:02}")).collect();
    for id in &ids {
        assert_eq!(post(&gw.addr, "/hooks/github", id), 202);
    }
    let mut ch = linked(&gw, &t);
    ch.handshake();
    let got: Vec<String> = (0..ids.len())
        .map(|_| delivery_id(&ch.next_notification()))
        .collect();
    assert_eq!(got, ids);
    db.close(Duration::from_secs(2));
}

#[test]
fn a_second_connection_with_the_same_token_supersedes_the_first() {
    supersedes(Backend::Sqlite);
}

#[test]
fn a_second_connection_with_the_same_token_supersedes_the_first_on_jetstream() {
    supersedes(Backend::JetStream);
}

fn supersedes(backend: Backend) {
    let dir = TempDir::new("gw-super");
    let Some(on) = on_store(&dir, backend, "gw-super") else {
        return;
    };
    let gw = gateway(&on.cfg);
    let db = &*on.db;
    let t = token_in(db, "twice", &["github"]);
    let mut first = linked(&gw, &t);
    first.handshake();
    first.wait_stderr("connected to the gateway");
    let mut second = linked(&gw, &t);
    second.handshake();
    first.wait_stderr("took over");
    assert_eq!(post(&gw.addr, "/hooks/github", "sup-1"), 202);
    assert_eq!(delivery_id(&second.next_notification()), "sup-1");
    db.close(Duration::from_secs(2));
}

/// The index in `ev-NNN`.
fn index(n: &Value) -> usize {
    delivery_id(n).trim_start_matches("ev-").parse().unwrap()
}

#[test]
fn a_channel_killed_mid_stream_loses_nothing() {
    const N: usize = 150;
    let dir = TempDir::new("gw-kill");
    let gw = gateway(&config(&dir, None));
    let db = store(&dir);
    let t = token(&db, "crashy", &["github"], &[], None);
    let mut a = linked(&gw, &t);
    a.handshake();
    // Webhooks keep arriving while the channel is killed and replaced.
    let addr = gw.addr.clone();
    let poster = std::thread::spawn(move || {
        for i in 0..N {
            assert_eq!(post(&addr, "/hooks/github", &format!("ev-{i:03}")), 202);
        }
    });
    let mut before: Vec<usize> = (0..20).map(|_| index(&a.next_notification())).collect();
    a.child.kill().unwrap();
    // Whatever else it wrote before dying (a last line cut by the kill was not written).
    while let Some(line) = a.next_line_or_eof() {
        if let Ok(n) = serde_json::from_str::<Value>(&line) {
            before.push(index(&n));
        }
    }
    assert_eq!(
        before,
        (0..before.len()).collect::<Vec<_>>(),
        "in order before the kill"
    );

    // The killed process may have written all N before it died; a last event
    // posted once the others are in gives the new process something to read
    // either way.
    poster.join().unwrap();
    assert_eq!(post(&gw.addr, "/hooks/github", &format!("ev-{N:03}")), 202);
    let mut b = linked(&gw, &t);
    b.handshake();
    let mut after = vec![index(&b.next_notification())];
    while *after.last().unwrap() < N {
        after.push(index(&b.next_notification()));
    }
    let first = after[0];
    assert!(
        first <= before.len(),
        "events {}..{first} were lost across the kill",
        before.len()
    );
    assert_eq!(
        after,
        (first..=N).collect::<Vec<_>>(),
        "in order, without gaps, after the restart (repeats only of what was written before the kill)"
    );
    db.close(Duration::from_secs(2));
}

#[test]
fn a_missing_token_is_a_clear_error() {
    let mut ch = Hookwire::spawn_args(
        &[os("channel"), os("--gateway"), os("http://127.0.0.1:9")],
        &[],
        false,
    );
    // The session is told, and the process exits 2 once the client has gone.
    let (notice, code) = ch.unservable_notice();
    assert_eq!(code, Some(2));
    assert!(notice.contains("HOOKWIRE_TOKEN"), "{notice}");
    // The stderr reader may still be collecting the last lines.
    ch.wait_stderr("HOOKWIRE_TOKEN");
}

/// An HTTP client that trusts only the CA in PEM file `ca`.
pub(crate) fn trusting(ca: &Path) -> ureq::Agent {
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    ureq::AgentBuilder::new().tls_config(Arc::new(tls)).build()
}

/// A CA and a certificate for 127.0.0.1 signed by it, as PEM files in `dir`.
pub(crate) fn certificates(dir: &TempDir) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Names of their own: with rcgen's one default name for both, OpenSSL (Node) takes the
    // leaf for self-signed.
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "hookwire test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "hookwire test gateway");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    (
        dir.write("ca.pem", &ca_cert.pem()),
        dir.write("cert.pem", &leaf_cert.pem()),
        dir.write("key.pem", &leaf_key.serialize_pem()),
    )
}

#[test]
fn the_gateway_serves_tls_to_a_channel_that_trusts_its_ca() {
    let dir = TempDir::new("gw-tls");
    let (ca, cert, key) = certificates(&dir);
    let gw = gateway(&config(&dir, Some((&cert, &key))));
    gw.wait_stderr("listening on https://");
    let db = store(&dir);
    let t = token(&db, "secure", &["github"], &[], None);

    let url = format!("https://{}", gw.addr);
    let mut ch = Hookwire::spawn_args(
        &[
            os("channel"),
            os("--gateway"),
            os(&url),
            os("--ca-file"),
            ca.as_os_str(),
        ],
        &[("HOOKWIRE_TOKEN", &t)],
        false,
    );
    let init = ch.handshake();
    assert!(
        init["instructions"]
            .as_str()
            .unwrap()
            .contains("- github (github)"),
        "{init}"
    );

    // Webhooks over TLS too, from a client that trusts the same CA.
    let agent = trusting(&ca);
    let body = issue("tls-1");
    let status = agent
        .post(&format!("https://{}/hooks/github", gw.addr))
        .timeout(DEADLINE)
        .set("Content-Type", "application/json")
        .set("X-GitHub-Event", "issues")
        .set("X-GitHub-Delivery", "tls-1")
        .set("X-Hub-Signature-256", &github_signature(SECRET, &body))
        .send_bytes(&body)
        .unwrap()
        .status();
    assert_eq!(status, 202);
    assert_eq!(delivery_id(&ch.next_notification()), "tls-1");

    // Without the CA the channel cannot verify the gateway and keeps retrying, saying why.
    let untrusting = Hookwire::spawn_args(
        &[os("channel"), os("--gateway"), os(&url)],
        &[("HOOKWIRE_TOKEN", &t)],
        false,
    );
    untrusting.wait_stderr("cannot connect to the gateway");
    assert!(untrusting
        .stderr_text()
        .to_ascii_lowercase()
        .contains("certificate"));
    db.close(Duration::from_secs(2));
}

#[test]
fn a_gateway_restart_resumes_the_session_without_repeats_or_loss() {
    restarts(Backend::Sqlite);
}

#[test]
fn a_gateway_restart_resumes_the_session_without_repeats_or_loss_on_jetstream() {
    restarts(Backend::JetStream);
}

fn restarts(backend: Backend) {
    let dir = TempDir::new("gw-restart");
    let Some(on) = on_store(&dir, backend, "gw-restart") else {
        return;
    };
    let cfg = on.cfg.clone();
    let mut gw = gateway(&cfg);
    let db = &*on.db;
    let t = token_in(db, "steady", &["github"]);
    let mut ch = linked(&gw, &t);
    ch.handshake();
    for i in 0..5 {
        assert_eq!(post(&gw.addr, "/hooks/github", &format!("rs-{i}")), 202);
    }
    for i in 0..5 {
        assert_eq!(delivery_id(&ch.next_notification()), format!("rs-{i}"));
    }
    // SIGTERM: sessions are closed with 1001 and the gateway exits cleanly.
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &gw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = common::wait_with_deadline(&mut gw.child, DEADLINE).expect("the gateway exits on SIGTERM");
    assert!(status.success(), "{status:?}");
    ch.wait_stderr("code=1001");

    // Same port, same database: events accepted meanwhile by the new gateway arrive once, in
    // order, after the ones already delivered.
    let addr = gw.addr.clone();
    let gw2 = serve(&cfg, &addr, &[("T_GITHUB_SECRET", SECRET)]);
    for i in 5..10 {
        assert_eq!(post(&gw2.addr, "/hooks/github", &format!("rs-{i}")), 202);
    }
    for i in 5..10 {
        assert_eq!(
            delivery_id(&ch.next_notification()),
            format!("rs-{i}"),
            "a repeat or a gap"
        );
    }
    db.close(Duration::from_secs(2));
}

#[test]
fn a_backlog_beyond_the_send_window_arrives_whole_and_in_order() {
    use hookwire_core::event::{notification_line, Event};
    const N: usize = 3000;
    let dir = TempDir::new("gw-backlog");
    let gw = gateway(&config(&dir, None));
    let db = store(&dir);
    let t = token(&db, "deep", &["github", "ops"], &[], None);
    // Appended from this process, as `hookwire replay` does: the gateway finds them in the
    // file (not in its memory), and the backlog is three windows deep. Every third event is
    // of a source the token does not receive.
    let id = |i: usize| format!("deep-{i:04}");
    let receipts: Vec<_> = (0..N)
        .map(|i| {
            let source = if i % 3 == 2 {
                "quiet"
            } else if i % 2 == 0 {
                "github"
            } else {
                "ops"
            };
            db.append(Event {
                source: source.into(),
                event: "issues.opened".into(),
                delivery_id: id(i),
                line: notification_line(&format!("event {i}"), &[("delivery_id".into(), id(i))]),
                received_ms: now_ms(),
                payload: b"{}".to_vec().into(),
                headers: Default::default(),
                folded: false,
                ..Default::default()
            })
            .unwrap()
        })
        .collect();
    for r in receipts {
        r.wait_blocking().unwrap();
    }
    let mut ch = linked(&gw, &t);
    ch.handshake();
    let expected: Vec<String> = (0..N).filter(|i| i % 3 != 2).map(id).collect();
    let got: Vec<String> = (0..expected.len())
        .map(|_| delivery_id(&ch.next_notification()))
        .collect();
    assert_eq!(got, expected);
    // Everything acknowledged, the other source's tail included.
    let head = db.head();
    let end = std::time::Instant::now() + DEADLINE;
    while db.cursor("deep", 0).unwrap() < head {
        assert!(
            std::time::Instant::now() < end,
            "the cursor never reached the head"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    db.close(Duration::from_secs(2));
}

/// `hookwire doctor --gateway <url> <extra>` with `env` (and a HOME of its own): exit code
/// and stdout.
fn doctor_gateway(url: &str, extra: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> (i32, String) {
    doctor_against("--gateway", url, extra, env)
}

/// `hookwire doctor <flag> <url> <extra>` (`--gateway` or `--remote`) with `env`, a HOME of
/// its own and no Claude Code on PATH: exit code and output.
pub(crate) fn doctor_against(
    flag: &str,
    url: &str,
    extra: &[&std::ffi::OsStr],
    env: &[(&str, &str)],
) -> (i32, String) {
    let home = TempDir::new("gw-doctor-home");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hookwire"));
    cmd.args(["doctor", "--config"])
        .arg(home.0.join("none.yaml"))
        .args([flag, url])
        .args(extra)
        .env("HOME", &home.0)
        .env("PATH", "/nonexistent")
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("HOOKWIRE_TOKEN")
        .env_remove("HOOKWIRE_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn doctor_reaches_the_gateway_with_the_token_and_reports_its_scope() {
    let dir = TempDir::new("gw-doctor");
    let gw = gateway(&config(&dir, None));
    let db = store(&dir);
    let one_way = token(&db, "alice", &["github", "ops"], &[], None);
    let reader = token(&db, "bob", &["ops"], &["read-events", "post-comments"], None);
    let revoked = token(&db, "gone", &["github"], &[], None);
    assert!(db.tokens().revoke("gone", now_ms()).unwrap());
    let url = format!("http://{}", gw.addr);

    // An event waits for alice before doctor connects with her token.
    assert_eq!(post(&gw.addr, "/hooks/github", "doc-1"), 202);
    let (code, out) = doctor_gateway(&url, &[], &[("HOOKWIRE_TOKEN", &one_way)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok    token: read from HOOKWIRE_TOKEN"), "{out}");
    assert!(
        out.contains(&format!(
            "ok    gateway: ws://{}/v1/session: connected as `alice`, then closed",
            gw.addr
        )),
        "{out}"
    );
    assert!(out.contains("ok    sources: github, ops"), "{out}");
    assert!(
        out.contains("ok    permissions: none (one-way: events only, no tools)"),
        "{out}"
    );
    assert!(!out.contains(&one_way), "the token was printed:\n{out}");
    // It closed the session cleanly and acknowledged nothing: the event is still alice's.
    gw.wait_stderr("session closed by the client");
    let mut ch = linked(&gw, &one_way);
    ch.handshake();
    assert_eq!(delivery_id(&ch.next_notification()), "doc-1");
    drop(ch);

    // The token from a file; permissions listed.
    let file = dir.write("bob.token", &format!("{reader}\n"));
    let (code, out) = doctor_gateway(&url, &[os("--token-file"), file.as_os_str()], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("connected as `bob`"), "{out}");
    assert!(out.contains("ok    sources: ops"), "{out}");
    assert!(
        out.contains("ok    permissions: read-events, post-comments"),
        "{out}"
    );
    assert!(
        out.contains("\"--token-file\""),
        "the printed entry reads the same file:\n{out}"
    );

    // Refusals, each with its reason.
    let (code, out) = doctor_gateway(&url, &[], &[("HOOKWIRE_TOKEN", "hwt_not-a-real-token")]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  gateway:") && out.contains("401: the gateway refused the token (unknown)"),
        "{out}"
    );
    let (code, out) = doctor_gateway(&url, &[], &[("HOOKWIRE_TOKEN", &revoked)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("401: the gateway refused the token (revoked)"),
        "{out}"
    );
    let (code, out) = doctor_gateway(&url, &[], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  token:") && out.contains("HOOKWIRE_TOKEN is not set"),
        "{out}"
    );

    // Nothing listening, and a server that is not a gateway (a local-mode channel's
    // webhook listener has no /v1/session).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (code, out) = doctor_gateway(&nobody, &[], &[("HOOKWIRE_TOKEN", &one_way)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("cannot reach the gateway"), "{out}");
    let local = dir.write(
        "local.yaml",
        &format!("channel:\n  sources: [github]\nstore:\n  path: local.db\n{TWO_GITHUB_SOURCES}"),
    );
    let mut webhooks = Hookwire::spawn(&local, &[("T_GITHUB_SECRET", SECRET)]);
    webhooks.handshake();
    let (code, out) = doctor_gateway(
        &format!("http://{}", webhooks.addr),
        &[],
        &[("HOOKWIRE_TOKEN", &one_way)],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("HTTP 404") && out.contains("no hookwire gateway at this URL"),
        "{out}"
    );
    db.close(Duration::from_secs(2));
}

#[test]
fn doctor_says_a_private_ca_is_needed_and_connects_with_it() {
    let dir = TempDir::new("gw-doctor-tls");
    let (ca, cert, key) = certificates(&dir);
    let gw = gateway(&config(&dir, Some((&cert, &key))));
    gw.wait_stderr("listening on https://");
    let db = store(&dir);
    let t = token(&db, "secure", &["github"], &[], None);
    let url = format!("https://{}", gw.addr);
    let (code, out) = doctor_gateway(&url, &[], &[("HOOKWIRE_TOKEN", &t)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("TLS failed") && out.contains("--ca-file"), "{out}");
    let (code, out) = doctor_gateway(
        &url,
        &[os("--ca-file"), ca.as_os_str()],
        &[("HOOKWIRE_TOKEN", &t)],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("connected as `secure`"), "{out}");
    db.close(Duration::from_secs(2));
}
