//! Scale-out on NATS JetStream, black-box: two `hookwire serve` replicas sharing a real
//! three-node JetStream cluster (`common::nats`), sessions linked to either
//! (`hookwire channel --gateway`), webhooks posted to either. What must hold: a webhook to
//! one replica reaches a session on the other; a vendor's retry to the other replica (or to
//! a restarted one) is a repeat; every webhook answered 202 reaches the session exactly
//! once and in order while a NATS node is killed; a token works on every replica and its
//! revocation everywhere; a session moving between replicas resumes where it acknowledged,
//! also when it comes back at once, and a new session of a token ends the one on the other
//! replica.
//!
//! Tokens are created through the JetStream store (what `hookwire token create` does with
//! the same config, on any replica's host).

use crate::common;

use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::gateway::{now_ms, serve, upgrade_session, TWO_GITHUB_SOURCES};
use common::nats::{available, Cluster};
use common::{delivery_id, github_signature, issue, Hookwire, TempDir, DEADLINE};
use hookwire_core::store::nats::NatsStore;
use hookwire_core::store::{NewToken, Store};
use serde_json::Value;

const SECRET: &str = "test-nats-github-secret-9c4e7a";

/// A gateway config on `cluster`.
fn config(dir: &TempDir, cluster: &Cluster) -> PathBuf {
    dir.write(
        "config.yaml",
        &format!("{}{TWO_GITHUB_SOURCES}", cluster.store_section()),
    )
}

/// A `hookwire serve` replica on a free port.
fn replica(cfg: &std::path::Path) -> Hookwire {
    serve(cfg, "127.0.0.1:0", &[("T_GITHUB_SECRET", SECRET)])
}

/// A channel linked to `gw` with `token`, its state (what it wrote) in `state`.
fn linked(gw: &Hookwire, token: &str, state: &TempDir) -> Hookwire {
    let path = state.0.to_str().unwrap();
    let mut ch = common::gateway::linked(gw, &[], &[("HOOKWIRE_TOKEN", token), ("XDG_STATE_HOME", path)]);
    ch.handshake();
    ch
}

/// A token for `sources`; returns its secret.
fn token(store: &NatsStore, name: &str, sources: &[&str]) -> String {
    store
        .tokens()
        .create(
            &NewToken {
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

/// POSTs a signed GitHub `issues` delivery to `addr`; the status (0: no answer at all).
fn post(addr: &str, delivery: &str) -> u16 {
    let body = issue(delivery);
    let r = ureq::post(&format!("http://{addr}/hooks/github"))
        .timeout(DEADLINE)
        .set("Content-Type", "application/json")
        .set("X-GitHub-Event", "issues")
        .set("X-GitHub-Delivery", delivery)
        .set("X-Hub-Signature-256", &github_signature(SECRET, &body))
        .send_bytes(&body);
    match r {
        Ok(resp) => resp.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(_) => 0,
    }
}

/// The delivery id of the channel's next notification.
fn next_delivery(ch: &mut Hookwire) -> String {
    let line = ch.next_line();
    let n: Value = serde_json::from_str(&line).unwrap();
    delivery_id(&n)
}

/// Waits until `name`'s acknowledged floor reaches the event of `delivery`.
fn wait_acked(store: &NatsStore, name: &str, delivery: &str) {
    let seq = store.get(delivery).unwrap().expect("stored").stored.seq;
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        let cursors = store.cursors().unwrap();
        if cursors.iter().any(|c| c.name == name && c.acked >= seq) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{name} never acknowledged {delivery} (seq {seq})");
}

#[test]
fn a_webhook_to_one_replica_reaches_a_session_on_the_other_and_a_retry_anywhere_is_a_repeat() {
    if !available() {
        return;
    }
    let cluster = Cluster::start();
    let dir = TempDir::new("nats-spread");
    let cfg = config(&dir, &cluster);
    let mut a = replica(&cfg);
    let b = replica(&cfg);
    let db = cluster.store();
    let alice = token(&db, "alice", &["github"]);
    let state = TempDir::new("nats-spread-state");
    let mut ch = linked(&b, &alice, &state);

    assert_eq!(post(&a.addr, "spread-1"), 202);
    assert_eq!(next_delivery(&mut ch), "spread-1", "posted to A, delivered by B");

    // The vendor retries the same delivery to the other replica: acknowledged, not delivered.
    assert_eq!(post(&b.addr, "spread-1"), 202);
    assert_eq!(post(&a.addr, "spread-1"), 202);
    // And to a replica started after it was stored (no memory of it but the cluster's).
    a.child.kill().unwrap();
    let _ = a.child.wait();
    let a2 = replica(&cfg);
    assert_eq!(post(&a2.addr, "spread-1"), 202);
    assert_eq!(post(&a2.addr, "spread-2"), 202);
    assert_eq!(
        next_delivery(&mut ch),
        "spread-2",
        "spread-1 was delivered once, whichever replica its retries reached"
    );
    let stored: Vec<_> = db
        .list(&hookwire_core::store::ListQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .filter(|e| e.delivery_id == "spread-1")
        .collect();
    assert_eq!(stored.len(), 1, "one copy in the stream: {stored:?}");
    db.close(Duration::from_secs(2));
}

#[test]
fn under_load_every_acknowledged_webhook_arrives_once_in_order_while_a_nats_node_and_a_replica_die() {
    if !available() {
        return;
    }
    let mut cluster = Cluster::start();
    let dir = TempDir::new("nats-kill");
    let cfg = config(&dir, &cluster);
    let mut a = replica(&cfg);
    let b = replica(&cfg);
    let db = cluster.store();
    let alice = token(&db, "alice", &["github"]);
    db.close(Duration::from_secs(2));
    let state = TempDir::new("nats-kill-state");
    let mut ch = linked(&b, &alice, &state);

    // Four vendors post at once, alternating between the replicas; each retries what got no
    // 2xx (at the other replica first) and posts its next delivery only after a 202, so its
    // own deliveries have an order the session must keep.
    let (workers, per_worker) = (4, 25);
    let total = workers * per_worker;
    let accepted_count = Arc::new(AtomicUsize::new(0));
    let addrs = [a.addr.clone(), b.addr.clone()];
    let posters: Vec<_> = (0..workers)
        .map(|w| {
            let (addrs, count) = (addrs.clone(), accepted_count.clone());
            std::thread::spawn(move || {
                let mut accepted = Vec::new();
                for i in 0..per_worker {
                    let id = format!("kill-{w}-{i}");
                    let end = Instant::now() + DEADLINE * 3;
                    let mut tries = 0;
                    loop {
                        let status = post(&addrs[(w + i + tries) % 2], &id);
                        if status == 202 {
                            accepted.push(id);
                            count.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        assert!(
                            status == 503 || status == 0,
                            "a failure is 503 (or no answer), never a lie: {status} for {id}"
                        );
                        assert!(Instant::now() < end, "{id} never accepted");
                        tries += 1;
                        // A vendor's retry pacing, not a wait for readiness.
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                accepted
            })
        })
        .collect();
    let wait_accepted = |n: usize| {
        let end = Instant::now() + DEADLINE * 3;
        while accepted_count.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < end, "load stalled before {n} were accepted");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_accepted(total / 3);
    cluster.nodes[0].kill();
    wait_accepted(2 * total / 3);
    // And a replica, SIGKILL, requests in flight: the vendors' retries go to the other.
    a.child.kill().unwrap();
    let _ = a.child.wait();
    let accepted: Vec<Vec<String>> = posters.into_iter().map(|p| p.join().unwrap()).collect();

    // A marker after everything: once it arrives, nothing accepted before it is still coming.
    assert_eq!(post(&b.addr, "kill-end"), 202);
    let mut seen = Vec::new();
    loop {
        let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ch.next_line()));
        let Ok(line) = next else {
            let tail: Vec<_> = b
                .stderr_text()
                .lines()
                .rev()
                .take(80)
                .map(str::to_owned)
                .collect();
            panic!(
                "no event in time after {} of {total}; replica B's last log lines:\n{}",
                seen.len(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        };
        let id = delivery_id(&serde_json::from_str(&line).unwrap());
        if id == "kill-end" {
            break;
        }
        seen.push(id);
    }
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a webhook delivered twice: {seen:?}");
    let all: HashSet<_> = accepted.iter().flatten().collect();
    assert_eq!(unique, all, "every 202 delivered, and nothing else");
    for (w, mine) in accepted.iter().enumerate() {
        let prefix = format!("kill-{w}-");
        let order: Vec<_> = seen
            .iter()
            .filter(|id| id.starts_with(&prefix))
            .cloned()
            .collect();
        assert_eq!(&order, mine, "vendor {w}'s deliveries in the order accepted");
    }
}

#[test]
fn one_source_fans_out_to_every_token_that_has_it_and_to_no_other() {
    if !available() {
        return;
    }
    let cluster = Cluster::start();
    let dir = TempDir::new("nats-fan");
    let cfg = config(&dir, &cluster);
    let a = replica(&cfg);
    let b = replica(&cfg);
    let db = cluster.store();
    let alice = token(&db, "alice", &["github"]);
    let bob = token(&db, "bob", &["github", "ops"]);
    let carol = token(&db, "carol", &["ops"]);
    let states: Vec<_> = (0..3).map(|i| TempDir::new(&format!("nats-fan-{i}"))).collect();
    let mut on_alice = linked(&a, &alice, &states[0]);
    let mut on_bob = linked(&b, &bob, &states[1]);
    let mut on_carol = linked(&a, &carol, &states[2]);

    let post_to = |addr: &str, path: &str, delivery: &str| {
        let body = issue(delivery);
        ureq::post(&format!("http://{addr}{path}"))
            .set("Content-Type", "application/json")
            .set("X-GitHub-Event", "issues")
            .set("X-GitHub-Delivery", delivery)
            .set("X-Hub-Signature-256", &github_signature(SECRET, &body))
            .send_bytes(&body)
            .unwrap()
            .status()
    };
    assert_eq!(post_to(&b.addr, "/hooks/ops", "fan-ops-1"), 202);
    assert_eq!(post_to(&a.addr, "/hooks/github", "fan-gh-1"), 202);
    assert_eq!(next_delivery(&mut on_alice), "fan-gh-1", "alice never gets ops");
    assert_eq!(next_delivery(&mut on_bob), "fan-ops-1");
    assert_eq!(next_delivery(&mut on_bob), "fan-gh-1");
    assert_eq!(next_delivery(&mut on_carol), "fan-ops-1");
    assert_eq!(post_to(&b.addr, "/hooks/github", "fan-gh-2"), 202);
    assert_eq!(post_to(&a.addr, "/hooks/ops", "fan-ops-2"), 202);
    assert_eq!(
        next_delivery(&mut on_carol),
        "fan-ops-2",
        "carol never gets github"
    );
    assert_eq!(next_delivery(&mut on_alice), "fan-gh-2");
    db.close(Duration::from_secs(2));
}

#[test]
fn one_event_re_delivered_reaches_only_the_session_it_names_through_any_replica() {
    if !available() {
        return;
    }
    let cluster = Cluster::shared();
    let dir = TempDir::new("nats-again");
    let cfg = dir.write(
        "config.yaml",
        &format!(
            "{}{TWO_GITHUB_SOURCES}",
            cluster.store_section_with_prefix("again")
        ),
    );
    let (a, b) = (replica(&cfg), replica(&cfg));
    let db = cluster.store_with_prefix("again");
    let (alice, bob) = (token(&db, "alice", &["github"]), token(&db, "bob", &["github"]));
    let states = [TempDir::new("nats-again-a"), TempDir::new("nats-again-b")];
    let mut on_alice = linked(&a, &alice, &states[0]);
    let mut on_bob = linked(&b, &bob, &states[1]);
    assert_eq!(post(&a.addr, "again-1"), 202);
    assert_eq!(next_delivery(&mut on_alice), "again-1");
    assert_eq!(next_delivery(&mut on_bob), "again-1");
    let original = db.get("again-1").unwrap().expect("stored");

    // What the console's re-deliver does: a copy for bob alone, naming the original.
    let copy = db
        .replay_one(original.stored.seq, Some("bob"))
        .unwrap()
        .expect("a copy");
    assert!(copy > original.stored.seq);
    assert_eq!(next_delivery(&mut on_bob), "again-1", "bob gets it again");
    assert_eq!(post(&b.addr, "again-2"), 202);
    assert_eq!(
        next_delivery(&mut on_alice),
        "again-2",
        "alice was not named: her next event is the next webhook"
    );
    assert_eq!(next_delivery(&mut on_bob), "again-2");
    let stored = db.get(&copy.to_string()).unwrap().expect("the copy is stored");
    assert_eq!(
        (stored.replay_of, stored.stored.target.as_deref()),
        (Some(original.stored.seq), Some("bob"))
    );
    assert_eq!(stored.stored.received_ms, original.stored.received_ms);
    assert_eq!(
        (stored.payload, stored.headers),
        (original.payload, original.headers)
    );

    // A copy of the copy still names the original; a seq never stored is no copy at all.
    let again = db.replay_one(copy, None).unwrap().expect("a copy");
    let stored = db.get(&again.to_string()).unwrap().expect("stored");
    assert_eq!(
        (stored.replay_of, stored.stored.target),
        (Some(original.stored.seq), None)
    );
    assert_eq!(db.replay_one(again + 1000, None).unwrap(), None);

    // That copy named no session: both get it.
    assert_eq!(next_delivery(&mut on_alice), "again-1");
    assert_eq!(next_delivery(&mut on_bob), "again-1");

    // What `hookwire replay --source github` does: a copy of each original of the source,
    // never of a copy, in order, through whichever replica the reader lands on.
    assert_eq!(db.replay("github", None, Some("alice")).unwrap(), 2);
    assert_eq!(next_delivery(&mut on_alice), "again-1");
    assert_eq!(next_delivery(&mut on_alice), "again-2");
    assert_eq!(post(&a.addr, "again-3"), 202);
    assert_eq!(next_delivery(&mut on_bob), "again-3", "bob was not named");
    assert_eq!(next_delivery(&mut on_alice), "again-3");
    db.close(Duration::from_secs(2));
}

#[test]
fn a_token_works_on_every_replica_and_revoked_anywhere_is_refused_everywhere() {
    if !available() {
        return;
    }
    let cluster = Cluster::start();
    let dir = TempDir::new("nats-token");
    let cfg = config(&dir, &cluster);
    let a = replica(&cfg);
    let b = replica(&cfg);
    let db = cluster.store();
    let alice = token(&db, "alice", &["github"]);
    let status = |addr: &str| {
        let (_s, head) = upgrade_session(addr, Some(&alice), Some("hookwire.v1"));
        head.split_whitespace().nth(1).unwrap().parse::<u16>().unwrap()
    };
    assert_eq!(status(&a.addr), 101);
    assert_eq!(status(&b.addr), 101);
    // A second store handle (another host's `hookwire token revoke`).
    let other = cluster.store();
    assert!(other.tokens().revoke("alice", now_ms()).unwrap());
    assert_eq!(status(&a.addr), 401, "revoked elsewhere, refused on A");
    assert_eq!(status(&b.addr), 401, "revoked elsewhere, refused on B");
    let again = db.tokens().create(
        &NewToken {
            name: "alice".into(),
            sources: vec![],
            permissions: vec![],
            expires_ms: None,
        },
        now_ms(),
    );
    assert!(again.is_err(), "a name is taken across the cluster");
    other.close(Duration::from_secs(2));

    // `hookwire token create` with the replicas' config, from neither of them.
    let (ok, out, err) = run(
        &[
            "token",
            "create",
            "--config",
            cfg.to_str().unwrap(),
            "--name",
            "bob",
            "--sources",
            "github",
        ],
        &[],
    );
    assert!(ok, "{err}");
    let bob = out
        .split_whitespace()
        .find(|w| w.starts_with("hwt_"))
        .unwrap_or_else(|| panic!("no token in {out}"))
        .to_owned();
    for addr in [&a.addr, &b.addr] {
        let (_s, head) = upgrade_session(addr, Some(&bob), Some("hookwire.v1"));
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    }
    db.close(Duration::from_secs(2));

    // A replica stops cleanly on SIGTERM, as a rolling restart does.
    let mut a = a;
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &a.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = common::wait_with_deadline(&mut a.child, DEADLINE).expect("the replica exits on SIGTERM");
    assert!(status.success(), "{status:?}: {}", a.stderr_text());
}

/// Reads server frames from a raw session until its close frame; returns the close code.
fn close_code(s: &mut std::net::TcpStream) -> u16 {
    loop {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).unwrap();
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                s.read_exact(&mut b).unwrap();
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                s.read_exact(&mut b).unwrap();
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).unwrap();
        if h[0] & 0x0f == 0x8 {
            return u16::from_be_bytes([payload[0], payload[1]]);
        }
    }
}

#[test]
fn a_session_moving_to_another_replica_resumes_where_it_acknowledged_and_ends_the_old_one() {
    if !available() {
        return;
    }
    let cluster = Cluster::start();
    let dir = TempDir::new("nats-move");
    let cfg = config(&dir, &cluster);
    let a = replica(&cfg);
    let b = replica(&cfg);
    let db = cluster.store();
    let alice = token(&db, "alice", &["github"]);

    let state_a = TempDir::new("nats-move-a");
    let mut on_a = linked(&a, &alice, &state_a);
    assert_eq!(post(&a.addr, "move-1"), 202);
    assert_eq!(post(&b.addr, "move-2"), 202);
    assert_eq!(next_delivery(&mut on_a), "move-1");
    assert_eq!(next_delivery(&mut on_a), "move-2");
    wait_acked(&db, "alice", "move-2");
    on_a.close_and_wait();

    // Away: two more arrive. Back, on the other replica (and with no local memory of what
    // was written, so only the cluster's floor keeps move-1 and move-2 from coming again).
    assert_eq!(post(&a.addr, "move-3"), 202);
    assert_eq!(post(&b.addr, "move-4"), 202);
    let state_b = TempDir::new("nats-move-b");
    let mut on_b = linked(&b, &alice, &state_b);
    assert_eq!(
        next_delivery(&mut on_b),
        "move-3",
        "resumes after what it acknowledged on A"
    );
    assert_eq!(next_delivery(&mut on_b), "move-4");
    wait_acked(&db, "alice", "move-4");

    // One session per token across replicas: a new one on A ends the one on B.
    let (mut raw, head) = upgrade_session(&a.addr, Some(&alice), Some("hookwire.v1"));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    on_b.wait_stderr("took over");
    // Stopped, so its retry cannot take the session back while A's is checked.
    on_b.close_and_wait();
    raw.set_read_timeout(Some(DEADLINE)).unwrap();
    assert_eq!(post(&b.addr, "move-5"), 202);
    // The raw session on A receives move-5 (and not move-1..4, acknowledged).
    let first_text = loop {
        let mut h = [0u8; 2];
        raw.read_exact(&mut h).unwrap();
        let len = match h[1] & 0x7f {
            126 => {
                let mut b2 = [0u8; 2];
                raw.read_exact(&mut b2).unwrap();
                u16::from_be_bytes(b2) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        raw.read_exact(&mut payload).unwrap();
        let frame: Value = serde_json::from_slice(&payload).unwrap();
        if frame["type"] == "event" {
            break payload;
        }
    };
    let frame: Value = serde_json::from_slice(&first_text).unwrap();
    assert_eq!(
        frame["notification"]["params"]["meta"]["delivery_id"], "move-5",
        "{frame}"
    );
    // And a session on B now ends the raw one on A, with the superseded code.
    let state_c = TempDir::new("nats-move-c");
    let _again = linked(&b, &alice, &state_c);
    assert_eq!(
        close_code(&mut raw),
        hookwire_core::link_protocol::close::SUPERSEDED
    );
    db.close(Duration::from_secs(2));
}

/// Claude Code restarting a linked channel whose next connection lands on the other replica:
/// the new session must start after the last event the old one's client acknowledged, which
/// the old replica may still be recording when the new session reads where to start.
#[test]
fn a_quick_reconnect_to_the_other_replica_gets_nothing_the_last_session_acknowledged() {
    if !available() {
        return;
    }
    let cluster = Cluster::start();
    let dir = TempDir::new("nats-reconnect");
    let cfg = config(&dir, &cluster);
    let replicas = [replica(&cfg), replica(&cfg)];
    let db = cluster.store();
    let bob = token(&db, "bob", &["github"]);
    const RESTARTS: usize = 6;
    // A state folder per session: what is tested is the cluster's record of acknowledgements,
    // not the channel's own.
    let states: Vec<TempDir> = (0..=RESTARTS)
        .map(|i| TempDir::new(&format!("nats-reconnect-{i}")))
        .collect();
    let mut ch = linked(&replicas[0], &bob, &states[0]);
    for i in 0..5 {
        let id = format!("shown-{i}");
        assert_eq!(post(&replicas[0].addr, &id), 202);
        assert_eq!(next_delivery(&mut ch), id);
    }
    for n in 1..=RESTARTS {
        ch.close_and_wait();
        let to = &replicas[n % 2];
        ch = linked(to, &bob, &states[n]);
        let id = format!("new-{n}");
        assert_eq!(post(&to.addr, &id), 202);
        assert_eq!(
            next_delivery(&mut ch),
            id,
            "restart {n}: the session on the other replica got again what the last one acknowledged"
        );
    }
    drop(ch);
    db.close(Duration::from_secs(2));
}

/// `hookwire <args>` to completion: (success, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(common::bin());
    cmd.args(args).env_remove("HOOKWIRE_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_full_stream_refuses_with_503_and_the_cli_reads_the_shared_log() {
    if !available() {
        return;
    }
    let cluster = Cluster::start();
    let dir = TempDir::new("nats-full");
    // The smallest store allowed: a few events fill it.
    let section = cluster
        .store_section()
        .replace("store:\n", "store:\n  max_bytes: 65536\n");
    let cfg = dir.write("config.yaml", &format!("{section}{TWO_GITHUB_SOURCES}"));
    let a = replica(&cfg);
    let b = replica(&cfg);
    let mut accepted = Vec::new();
    let refused = loop {
        let id = format!("full-{}", accepted.len());
        let addr = if accepted.len() % 2 == 0 { &a.addr } else { &b.addr };
        match post(addr, &id) {
            202 => accepted.push(id),
            503 => break id,
            other => panic!("{other} for {id}"),
        }
        assert!(accepted.len() < 1000, "the stream never filled");
    };
    assert!(!accepted.is_empty());
    assert_eq!(post(&b.addr, &refused), 503, "still full on the other replica");
    let ready = ureq::get(&format!("http://{}/readyz", b.addr)).call();
    assert!(
        matches!(ready, Err(ureq::Error::Status(503, _))),
        "a full stream is not ready"
    );

    // `events list` and `events show` read the shared log, from neither replica.
    let cfg_path = cfg.to_str().unwrap();
    let (ok, out, err) = run(
        &[
            "events", "list", "--config", cfg_path, "--source", "github", "--limit", "1000",
        ],
        &[],
    );
    assert!(ok, "{err}");
    for id in &accepted {
        assert!(out.contains(id.as_str()), "{id} missing from:\n{out}");
    }
    assert!(
        !out.contains(refused.as_str()),
        "a refused delivery was not stored:\n{out}"
    );
    let (ok, out, err) = run(&["events", "show", "--config", cfg_path, &accepted[0]], &[]);
    assert!(ok, "{err}");
    assert!(out.contains(&accepted[0]), "{out}");
}

#[test]
fn store_backend_errors_name_file_line_field_and_the_known_backends() {
    let dir = TempDir::new("nats-config");
    let env = [("T_GITHUB_SECRET", SECRET)];
    let bad = dir.write(
        "bad.yaml",
        &format!("store:\n  backend: postgres\n{TWO_GITHUB_SOURCES}"),
    );
    let (ok, _, err) = run(&["check", "--config", bad.to_str().unwrap()], &env);
    assert!(!ok);
    assert!(
        err.contains("bad.yaml:2: store.backend: `postgres` is not a store backend")
            && err.contains("use one of: sqlite, nats"),
        "{err}"
    );
    let bare = dir.write(
        "bare.yaml",
        &format!("store:\n  backend: nats\n{TWO_GITHUB_SOURCES}"),
    );
    let (ok, _, err) = run(&["check", "--config", bare.to_str().unwrap()], &env);
    assert!(!ok);
    assert!(err.contains("store.nats") && err.contains("servers"), "{err}");
    let two = dir.write(
        "two.yaml",
        &format!("store:\n  backend: nats\n  nats:\n    servers: [nats://127.0.0.1:4222]\n    replicas: 2\n{TWO_GITHUB_SOURCES}"),
    );
    let (ok, _, err) = run(&["check", "--config", two.to_str().unwrap()], &env);
    assert!(!ok);
    assert!(
        err.contains("two.yaml:5: store.nats.replicas: 2 is not a JetStream replica count"),
        "{err}"
    );
}

#[test]
fn a_schedule_runs_once_per_tick_across_replicas() {
    if !available() {
        return;
    }
    let cluster = Cluster::start();
    let dir = TempDir::new("nats-sched");
    let runs = dir.0.join("runs");
    // Each run of the job appends a line: once per tick, the lines match the stored events;
    // once per replica, there would be twice as many.
    let cfg = dir.write(
        "config.yaml",
        &format!(
            "{}channel:\n  sources: [tick]\n{TWO_GITHUB_SOURCES}schedules:\n  - name: tick\n    cron: '* * * * * *'\n    command: echo run >> {}\n",
            cluster.store_section(),
            runs.display()
        ),
    );
    let mut a = replica(&cfg);
    let mut b = replica(&cfg);
    let db = cluster.store();
    let alice = token(&db, "alice", &["tick"]);
    let state = TempDir::new("nats-sched-state");
    let mut ch = linked(&a, &alice, &state);
    for _ in 0..6 {
        let n: Value = serde_json::from_str(&ch.next_line()).unwrap();
        assert_eq!(n["params"]["meta"]["source_name"], "tick", "{n}");
    }
    for r in [&mut a, &mut b] {
        r.child.kill().unwrap();
        let _ = r.child.wait();
    }
    let events = db
        .list(&hookwire_core::store::ListQuery {
            source: Some("tick".into()),
            limit: 10_000,
            ..Default::default()
        })
        .unwrap()
        .len();
    let lines = std::fs::read_to_string(&runs).unwrap().lines().count();
    assert!(events >= 6, "{events}");
    // A run each replica had started when it was killed may have no event yet.
    assert!(
        (events..=events + 2).contains(&lines),
        "{lines} runs for {events} ticks stored: once per tick across both replicas"
    );
    db.close(Duration::from_secs(2));
}

#[test]
fn audit_entries_recorded_by_one_replica_are_read_by_another() {
    if !available() {
        return;
    }
    let cluster = Cluster::start();
    let dir = TempDir::new("nats-audit");
    let cfg = config(&dir, &cluster);
    let a = replica(&cfg);
    assert_eq!(post(&a.addr, "audit-1"), 202);
    assert_eq!(post(&a.addr, "audit-2"), 202);
    let (one, other) = (cluster.store(), cluster.store());
    let seq = one.get("audit-1").unwrap().expect("stored").stored.seq;
    let entry = |event_seq: Option<u64>, detail: &str| hookwire_core::store::AuditEntry {
        at_ms: now_ms(),
        subscriber: "alice".into(),
        tool: "get_event".into(),
        event_ref: Some("audit-1".into()),
        event_seq,
        arguments: "{\"id\":\"audit-1\"}".into(),
        outcome: "ok".into(),
        detail: detail.into(),
    };
    one.record_audit(&entry(Some(seq), "first")).unwrap();
    one.record_audit(&entry(None, "unattached")).unwrap();
    other.record_audit(&entry(Some(seq), "second")).unwrap();
    let found = other.audit_for(seq).unwrap();
    let details: Vec<_> = found.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(details, ["first", "second"], "oldest first, from either replica");
    let first = entry(Some(seq), "first");
    assert_eq!(
        (
            &found[0].subscriber,
            &found[0].tool,
            &found[0].arguments,
            found[0].event_seq
        ),
        (&first.subscriber, &first.tool, &first.arguments, first.event_seq)
    );
    let seq2 = one.get("audit-2").unwrap().expect("stored").stored.seq;
    assert!(one.audit_for(seq2).unwrap().is_empty());
    one.close(Duration::from_secs(2));
    other.close(Duration::from_secs(2));
}

/// `hookwire doctor --config cfg` with the test secret and an empty HOME: (exit code, stdout).
fn doctor(cfg: &std::path::Path) -> (i32, String) {
    let home = TempDir::new("nats-doctor-home");
    let out = std::process::Command::new(common::bin())
        .args(["doctor", "--config"])
        .arg(cfg)
        .env("HOME", &home.0)
        .env("T_GITHUB_SECRET", SECRET)
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("HOOKWIRE_LOG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn doctor_reports_the_cluster_the_streams_and_replicas_beyond_the_servers() {
    if !available() {
        return;
    }
    // Shared with the other tests running now; this deployment is prefix `doctor`.
    let cluster = Cluster::shared();
    cluster.wait_meshed();
    let dir = TempDir::new("nats-doctor");
    let cfg = dir.write(
        "config.yaml",
        &format!(
            "{}{TWO_GITHUB_SOURCES}",
            cluster.store_section_with_prefix("doctor")
        ),
    );
    let (_, out) = doctor(&cfg);
    assert!(
        out.contains("ok    nats: connected to n")
            && out.contains("cluster hookwire-test, 3 server(s) known"),
        "{out}"
    );
    assert!(out.contains("ok    jetstream: account: "), "{out}");
    assert!(out.contains("ok    nats replicas: 3 of 3 server(s)"), "{out}");
    assert!(
        out.contains("ok    nats events stream: DOCTOR_EVENTS does not exist yet: the first `hookwire serve` creates it with 3 replica(s)"),
        "{out}"
    );
    assert!(
        !out.contains("ok    store:"),
        "no SQLite folder check on NATS: {out}"
    );

    // Once a store opened them: each stream and bucket, replicated three times.
    let db = cluster.store_with_prefix("doctor");
    let (_, out) = doctor(&cfg);
    for (what, name) in [
        ("events stream", "DOCTOR_EVENTS"),
        ("audit stream", "DOCTOR_AUDIT"),
        ("dedup bucket", "KV_doctor_dedup"),
        ("cursors bucket", "KV_doctor_cursors"),
        ("tokens bucket", "KV_doctor_tokens"),
        ("storm bucket", "KV_doctor_storm"),
    ] {
        assert!(
            out.contains(&format!(
                "ok    nats {what}: {name}: 3 replica(s), all current, leader n"
            )),
            "{what}: {out}"
        );
    }
    assert!(!out.contains("FAIL"), "{out}");
    db.close(Duration::from_secs(2));

    // More replicas than servers: a warning with the fix, and the existing streams differ.
    let five = dir.write(
        "five.yaml",
        &format!(
            "{}{TWO_GITHUB_SOURCES}",
            cluster
                .store_section_with_prefix("doctor")
                .replace("replicas: 3", "replicas: 5")
        ),
    );
    let (_, out) = doctor(&five);
    assert!(
        out.contains("warn  nats replicas: store.nats.replicas is 5 but the cluster has 3 server(s)")
            && out.contains("set replicas: 3 or add servers"),
        "{out}"
    );
    assert!(
        out.contains("warn  nats events stream: DOCTOR_EVENTS has 3 replica(s), the config says 5"),
        "{out}"
    );
}

#[test]
fn doctor_fails_clearly_when_no_nats_server_answers() {
    // A port nobody listens on: connection refused, at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TempDir::new("nats-doctor-down");
    let cfg = dir.write(
        "config.yaml",
        &format!("store:\n  backend: nats\n  nats:\n    servers: [nats://127.0.0.1:{port}]\n    replicas: 1\n{TWO_GITHUB_SOURCES}"),
    );
    let (code, out) = doctor(&cfg);
    assert_eq!(code, 1, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("FAIL  nats:"))
        .unwrap_or_else(|| panic!("no FAIL nats line: {out}"));
    assert!(
        line.contains(&format!("nats://127.0.0.1:{port}: cannot connect to NATS"))
            && line.contains("check that a server is up and reachable from here"),
        "{line}"
    );
}

#[test]
fn a_storm_window_admits_max_events_across_both_replicas_and_the_digests_name_the_rest() {
    if !available() {
        return;
    }
    // Shared with the other tests running now; this deployment is prefix `storm`.
    let cluster = Cluster::shared();
    let dir = TempDir::new("nats-storm");
    // One group for every `issues` event, a window longer than the test, two admitted.
    let sources = TWO_GITHUB_SOURCES.replacen(
        "    secret_env: T_GITHUB_SECRET\n",
        "    secret_env: T_GITHUB_SECRET\n    storm: {group: '{{event}}', window_secs: 3600, max_events: 2}\n",
        1,
    );
    let cfg = dir.write(
        "config.yaml",
        &format!("{}{sources}", cluster.store_section_with_prefix("storm")),
    );
    let mut replicas = [replica(&cfg), replica(&cfg)];
    let ids: Vec<String> = (0..8).map(|i| format!("storm-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(post(&replicas[i % 2].addr, id), 202, "{id}");
    }
    let db = cluster.store_with_prefix("storm");
    let stored = db
        .list(&hookwire_core::store::ListQuery {
            source: Some("github".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    let admitted: Vec<_> = stored
        .iter()
        .filter(|e| !e.folded)
        .map(|e| e.delivery_id.clone())
        .collect();
    assert_eq!(stored.len(), 8, "{stored:?}");
    assert_eq!(
        admitted.len(),
        2,
        "max_events across both replicas, not per replica: {admitted:?}"
    );

    // Stopping closes each replica's open windows into digests: together they name every
    // folded delivery, each once.
    for r in &mut replicas {
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &r.child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = common::wait_with_deadline(&mut r.child, DEADLINE).expect("exits on SIGTERM");
        assert!(status.success(), "{status:?}");
    }
    let digests = db
        .list(&hookwire_core::store::ListQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "digest")
        .collect::<Vec<_>>();
    let mut named = Vec::new();
    for d in &digests {
        let v: Value = serde_json::from_slice(&d.line).unwrap();
        let content = v["params"]["content"].as_str().unwrap();
        let list = content
            .lines()
            .find_map(|l| l.strip_prefix("Folded delivery ids: "))
            .unwrap_or_else(|| panic!("{content}"));
        named.extend(list.split(", ").map(str::to_owned));
    }
    named.sort();
    let mut folded: Vec<_> = stored
        .iter()
        .filter(|e| e.folded)
        .map(|e| e.delivery_id.clone())
        .collect();
    folded.sort();
    assert_eq!(named, folded, "{} digest(s)", digests.len());
    db.close(Duration::from_secs(2));
}

#[test]
fn replicas_opening_a_fresh_deployment_at_the_same_moment_all_open_it() {
    if !available() {
        return;
    }
    // Shared with the other tests running now; this deployment is prefix `together`. Each
    // open creates the same streams and buckets at once; a request that loses the race (it
    // can time out while the cluster places the other's) is tried again.
    let cluster = Cluster::shared();
    let opened: Vec<u64> = std::thread::scope(|s| {
        let opening: Vec<_> = (0..4)
            .map(|_| s.spawn(|| cluster.store_with_prefix("together")))
            .collect();
        opening
            .into_iter()
            .map(|h| h.join().expect("opened").head())
            .collect()
    });
    assert_eq!(opened, [0, 0, 0, 0], "every replica sees the same empty stream");
}

/// A reader's consumer lives on one replica of the events stream, which may not have stored
/// yet what the leader acknowledged: a page must not claim (`through`) past an event of its
/// sources it has not returned, or a reader opened from there (after a reconnect) never sees
/// it. Two stores append while a third reads for four subscribers (so four consumers, on
/// whichever replicas the cluster places them) on each wake, as sessions do; every event
/// comes back once to each, above every `through` already returned. A follower trails only
/// under load: with this cluster's nodes crowded onto one CPU the test failed about one run
/// in five before the leader was asked (and `bench/gateway nats 2` lost 5 of 20,000 events),
/// but that crowding made the other cluster tests running beside it miss their deadlines.
/// Here it runs on the shared cluster: it holds the property, and catches a regression only
/// when a follower trails meanwhile.
#[test]
fn a_reader_never_claims_past_an_event_its_replica_has_not_stored_yet() {
    if !available() {
        return;
    }
    let cluster = Cluster::shared();
    let writers = [(); 2].map(|_| cluster.store_with_prefix("lag"));
    let store = cluster.store_with_prefix("lag");
    let mut readers: Vec<_> = (0..4)
        .map(|i| {
            let sub = hookwire_core::store::Subscription {
                name: format!("reader-{i}"),
                sources: vec!["github".into()],
            };
            let pos = store.subscribe(&sub, store.head()).unwrap();
            (sub, pos, HashSet::new())
        })
        .collect();
    const EACH: usize = 1500;
    let total = writers.len() * EACH;
    std::thread::scope(|s| {
        for (w, writer) in writers.iter().enumerate() {
            s.spawn(move || {
                // In flights of 30, as concurrent webhooks arrive.
                for flight in 0..EACH / 30 {
                    let receipts: Vec<_> = (0..30)
                        .map(|i| {
                            let event = hookwire_core::event::Event {
                                source: "github".into(),
                                event: "issues.opened".into(),
                                delivery_id: format!("{w}-{flight}-{i}"),
                                line: b"{}\n".to_vec(),
                                ..Default::default()
                            };
                            writer.append(event).unwrap()
                        })
                        .collect();
                    for r in receipts {
                        r.wait_blocking().unwrap();
                    }
                }
            });
        }
        let end = Instant::now() + DEADLINE * 3;
        let wake = store.wake();
        while readers.iter().any(|r| r.2.len() < total) && Instant::now() < end {
            // As a session reads: when the store says the head moved.
            let _ = wake.recv_timeout(Duration::from_millis(100));
            for (sub, pos, seen) in &mut readers {
                // A read may fail (a replica stays behind too long): a session then reconnects
                // and reads on from where it stood, as the next round here does.
                let Ok(batch) = store.read_after(sub, *pos, 256) else {
                    continue;
                };
                for e in &batch.events {
                    assert!(
                        e.seq > *pos,
                        "{}: event {} returned after a page claimed through {pos}",
                        sub.name,
                        e.seq
                    );
                    assert!(seen.insert(e.delivery_id.clone()), "{} twice", e.delivery_id);
                }
                *pos = (*pos).max(batch.through);
            }
        }
        for (sub, _, seen) in &readers {
            assert_eq!(seen.len(), total, "{}: every appended event read", sub.name);
        }
    });
}
