//! Black-box durability tests. In local mode (`hookwire channel` both receives webhooks and
//! is the stdio MCP channel, with the SQLite store beside its config):
//!
//! - a SIGKILL at a random moment under load loses no event the sender got 2xx for, and sends
//!   again only what `core/src/delivery.rs` says it may: the last batch the killed process
//!   wrote (the one write the kill interrupts);
//! - events wait in the store while no session is initialized, and what a session received
//!   is not sent again after a restart;
//! - a full store answers 503 with Retry-After, holds its memory, and loses nothing it
//!   accepted.
//!
//! Through a gateway (`hookwire serve` + `hookwire channel --gateway`): a SIGKILL of the
//! gateway under load loses nothing, and the channel writes every event exactly once.
//!
//! Every wait is on a condition with a deadline, except the deliberate random delays before a
//! kill and the short pause between retries of a refused request.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::gateway::{linked, serve};
use common::{github_signature, payload, Hookwire, StdoutGate, TempDir, DEADLINE};
use serde_json::Value;

const SECRET: &str = "test-github-secret-durable-7d1e";
/// A real GitHub delivery; every request sends it with its own `X-GitHub-Delivery`.
const FIXTURE: &str = "github/issues.opened.json";
const EVENT: &str = "issues";
const PATH: &str = "/hooks/github";
/// Events the channel writer puts in one write and flush at most (`BATCH` in
/// core/src/channel.rs): the most a kill can make it send twice.
const BATCH: usize = 256;
/// Sender threads of the crash test.
const THREADS: usize = 8;
/// Kills of the crash test.
const KILLS: usize = 6;

/// One GitHub source, subscribed; `store` is the body of the `store:` section.
fn config(dir: &TempDir, store: &str) -> PathBuf {
    dir.write(
        "config.yaml",
        &format!(
            "channel:
  sources: [github]
store:
{store}
sources:
  - name: github
    type: github
    secret_env: T_GITHUB_SECRET
"
        ),
    )
}

const ENV: &[(&str, &str)] = &[("T_GITHUB_SECRET", SECRET), ("HOOKWIRE_LOG", "info")];

/// `hookwire channel` on `cfg`, logging at info (debug logs a line per request).
fn spawn(cfg: &Path) -> Hookwire {
    Hookwire::spawn(cfg, ENV)
}

/// What the listener answered.
struct Reply {
    status: u16,
    retry_after: Option<String>,
}

/// POSTs the signed GitHub delivery `id` (`body` made distinct for it, and signed);
/// `Err` is a transport error (connection refused or reset: the process is gone).
fn post(agent: &ureq::Agent, addr: &str, id: &str, body: &[u8]) -> Result<Reply, String> {
    let body = &common::distinct(body, id);
    let sig = &github_signature(SECRET, body);
    let r = agent
        .post(&format!("http://{addr}{PATH}"))
        .set("Content-Type", "application/json")
        .set("X-GitHub-Event", EVENT)
        .set("X-GitHub-Delivery", id)
        .set("X-Hub-Signature-256", sig)
        .send_bytes(body);
    let resp = match r {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let reply = Reply {
        status: resp.status(),
        retry_after: resp.header("retry-after").map(str::to_owned),
    };
    // Read the body so the connection goes back to the pool.
    let _ = resp.into_string();
    Ok(reply)
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(DEADLINE).build()
}

/// The delivery id of a notification line; `None` if the line is not JSON (a fragment cut
/// by a kill). Anything but a channel notification fails the test.
fn delivery_id(line: &str) -> Option<String> {
    let v: Value = serde_json::from_str(line).ok()?;
    assert_eq!(
        v["method"], "notifications/claude/channel",
        "only channel notifications are expected here: {line}"
    );
    let id = v["params"]["meta"]["delivery_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no meta.delivery_id: {line}"));
    Some(id.to_owned())
}

/// The next notification's delivery id; fails at EOF, on a fragment or on anything else.
fn next_id(hw: &mut Hookwire) -> String {
    next_id_within(hw, DEADLINE)
}

/// [`next_id`], waiting up to `limit`.
fn next_id_within(hw: &mut Hookwire, limit: Duration) -> String {
    let line = hw
        .next_line_within(limit)
        .unwrap_or_else(|| panic!("stdout closed; stderr:\n{}", hw.stderr_text()));
    delivery_id(&line).unwrap_or_else(|| panic!("stdout line is not JSON: {line:?}"))
}

/// A small xorshift generator seeded from the clock: a different kill moment every run.
struct Rng(u64);

impl Rng {
    fn from_clock() -> Self {
        let n = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
        Rng(n ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One request of the crash test's load.
#[derive(Debug, Clone)]
struct Attempt {
    /// `i<iteration>-t<thread>`: requests of one thread are sequential.
    sender: String,
    /// Its place in its sender's sequence.
    index: usize,
    /// Answered 2xx (the event is durable).
    accepted: bool,
}

/// A delivery id and what came back: a status, or a transport error.
type Sent = (String, Result<u16, String>);

/// Starts `THREADS` senders against `addr`, each posting distinct deliveries one after the
/// other (`<prefix>-t<thread>-<n>`) until `stop` or a broken connection. Each counts its 2xx in `accepted` and sends on `first`.
fn start_load(
    addr: &str,
    prefix: &str,
    body: &Arc<Vec<u8>>,
    stop: &Arc<AtomicBool>,
    accepted: &Arc<AtomicUsize>,
    first: &mpsc::SyncSender<()>,
) -> Vec<JoinHandle<Vec<Sent>>> {
    (0..THREADS)
        .map(|t| {
            let (addr, prefix, body, stop, accepted, first) = (
                addr.to_owned(),
                prefix.to_owned(),
                body.clone(),
                stop.clone(),
                accepted.clone(),
                first.clone(),
            );
            std::thread::spawn(move || {
                let agent = agent();
                let mut attempts = Vec::new();
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let id = format!("{prefix}-t{t}-{n:06}");
                    n += 1;
                    let r = post(&agent, &addr, &id, &body).map(|r| r.status);
                    if matches!(r, Ok(s) if (200..300).contains(&s)) {
                        accepted.fetch_add(1, Ordering::Relaxed);
                        let _ = first.try_send(());
                    }
                    // A broken connection means the process is gone: what follows would
                    // only be refused.
                    let gone = r.is_err();
                    attempts.push((id, r));
                    if gone {
                        break;
                    }
                }
                attempts
            })
        })
        .collect()
}

/// Posts `marker` and reads through it. It is stored after everything stored before it, and
/// events are written in store order: once it arrives, all of those have.
fn read_through_marker(
    hw: &mut Hookwire,
    addr: &str,
    limit: Duration,
    marker: &str,
    body: &[u8],
    attempts: &mut HashMap<String, Attempt>,
    out: &mut Vec<String>,
) {
    let r = post(&agent(), addr, marker, body).expect("marker posted");
    assert_eq!(r.status, 202, "marker `{marker}` refused");
    attempts.insert(
        marker.into(),
        Attempt {
            sender: marker.into(),
            index: 0,
            accepted: true,
        },
    );
    loop {
        let id = next_id_within(hw, limit);
        out.push(id.clone());
        if id == marker {
            return;
        }
    }
}

/// Joins the senders of [`start_load`] and records their requests in `attempts`; returns the
/// ids answered 2xx and how many requests failed. Any answer but 202 fails the test: under
/// this load nothing is refused, and a killed process answers nothing.
fn join_load(
    senders: Vec<JoinHandle<Vec<Sent>>>,
    prefix: &str,
    attempts: &mut HashMap<String, Attempt>,
) -> (Vec<String>, usize) {
    let (mut accepted_ids, mut failed) = (Vec::new(), 0);
    for (t, s) in senders.into_iter().enumerate() {
        for (index, (id, r)) in s.join().expect("sender thread").into_iter().enumerate() {
            let accepted = match r {
                Ok(202) => true,
                Ok(status) => panic!("`{id}` answered {status}: only 202 or a broken connection"),
                Err(_) => false,
            };
            if accepted {
                accepted_ids.push(id.clone());
            } else {
                failed += 1;
            }
            let sender = format!("{prefix}-t{t}");
            attempts.insert(
                id,
                Attempt {
                    sender,
                    index,
                    accepted,
                },
            );
        }
    }
    (accepted_ids, failed)
}

/// Reads a killed process's stdout to EOF: every complete line is delivered; a last line
/// that is not JSON is the fragment of a write the kill cut, and is not.
fn read_to_eof(hw: &mut Hookwire, out: &mut Vec<String>) -> bool {
    let mut lines = Vec::new();
    while let Some(l) = hw.next_line_or_eof() {
        lines.push(l);
    }
    let mut fragment = false;
    let last = lines.len().saturating_sub(1);
    for (i, line) in lines.iter().enumerate() {
        match delivery_id(line) {
            Some(id) => out.push(id),
            None if i == last => fragment = true,
            None => panic!("a line that is not JSON before the end of stdout: {line:?}"),
        }
    }
    fragment
}

/// Checks the outputs of successive processes (each killed but the last) against what was
/// posted; returns the duplicates per restart.
///
/// - every delivered id was posted, and every id that got a 2xx was delivered;
/// - no process delivers an id twice, and no id reaches two processes that are not
///   consecutive;
/// - the ids two consecutive processes share are exactly the last lines the first wrote and,
///   in the same order, the first lines the second wrote, at most one batch: the batch whose
///   write the kill interrupted. That holds for requests that got no 2xx too (committed, then
///   killed before the answer): outside that window they are delivered at most once;
/// - within one process, each sender's ids come in the order it sent them (commit order).
fn check_outputs(outputs: &[Vec<String>], attempts: &HashMap<String, Attempt>) -> Vec<usize> {
    let mut wherever: HashMap<&str, Vec<usize>> = HashMap::new();
    for (p, out) in outputs.iter().enumerate() {
        let mut once = HashSet::new();
        for id in out {
            assert!(
                attempts.contains_key(id),
                "process {p} delivered `{id}`, never posted"
            );
            assert!(once.insert(id.as_str()), "process {p} delivered `{id}` twice");
            wherever.entry(id).or_default().push(p);
        }
    }
    for (id, a) in attempts {
        if a.accepted {
            assert!(
                wherever.contains_key(id.as_str()),
                "`{id}` got a 2xx and was never delivered"
            );
        }
    }
    let mut shared = vec![0usize; outputs.len().saturating_sub(1)];
    for (id, ps) in &wherever {
        match ps.as_slice() {
            [_] => {}
            [a, b] if b == &(a + 1) => shared[*a] += 1,
            _ => panic!("`{id}` delivered by processes {ps:?}"),
        }
    }
    for (k, &d) in shared.iter().enumerate() {
        let (before, after) = (&outputs[k], &outputs[k + 1]);
        assert!(
            d <= BATCH,
            "{d} events sent again after kill {k}: more than the one batch a kill may interrupt"
        );
        assert_eq!(
            &before[before.len() - d..],
            &after[..d],
            "after kill {k}, the events sent again are not the last batch the killed process \
             wrote followed at once by the new process"
        );
    }
    for (p, out) in outputs.iter().enumerate() {
        let mut last: HashMap<&str, usize> = HashMap::new();
        for id in out {
            let a = &attempts[id];
            if let Some(prev) = last.insert(&a.sender, a.index) {
                assert!(
                    prev < a.index,
                    "process {p}: `{id}` (#{}) of {} delivered after its #{prev}",
                    a.index,
                    a.sender
                );
            }
        }
    }
    shared
}

/// SIGKILL at a random moment under load, restart on the same store, repeatedly: nothing
/// acknowledged to a sender is lost, and the only events sent twice are the last batch the
/// killed process wrote (core/src/delivery.rs).
#[test]
fn a_kill_under_load_loses_nothing_and_repeats_at_most_the_interrupted_batch() {
    let dir = TempDir::new("durable-kill");
    let body = Arc::new(payload(FIXTURE));
    let mut rng = Rng::from_clock();
    // Both durability levels claim to survive a process crash; alternate them.
    let sync = |i: usize| {
        if i.is_multiple_of(2) {
            "  sync: full"
        } else {
            "  sync: normal"
        }
    };
    // Every third process is read by a client that stops reading under load, as a busy Claude
    // Code may (the pipe fills, delivery stalls, events wait), then reads part of the backlog
    // and stops again just before the kill, which so lands inside a full batch's write.
    let stalled = |i: usize| i % 3 == 2;
    let gate = Arc::new(StdoutGate::default());
    let mut hw = Hookwire::spawn_gated(&config(&dir, sync(0)), ENV, gate.clone());
    hw.handshake();

    let mut attempts: HashMap<String, Attempt> = HashMap::new();
    let mut outputs: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut missing: HashSet<String> = HashSet::new();
    let mut fragments = 0;
    for it in 0..KILLS {
        let stop = Arc::new(AtomicBool::new(false));
        let (first_tx, first_rx) = mpsc::sync_channel(1);
        if stalled(it) {
            gate.close();
        }
        // What this process delivered before this load is already counted.
        let before = current.len();
        let accepted_now = Arc::new(AtomicUsize::new(0));
        let senders = start_load(
            &hw.addr,
            &format!("i{it}"),
            &body,
            &stop,
            &accepted_now,
            &first_tx,
        );
        first_rx
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("no webhook accepted; stderr:\n{}", hw.stderr_text()));
        // The random moment: the deliberate sleeps.
        let delay = Duration::from_millis(20 + rng.below(1500));
        std::thread::sleep(delay);
        if stalled(it) {
            // The client reads a random part of the backlog and stops again: the process,
            // writing the rest in full batches, blocks inside one, and dies there.
            let backlog = (missing.len() + accepted_now.load(Ordering::Relaxed)) as u64;
            let n = 1 + rng.below(backlog.max(1)) as usize;
            gate.allow(n);
            for _ in 0..n {
                current.push(next_id(&mut hw));
            }
        }
        hw.child.kill().expect("SIGKILL");
        hw.child.wait().expect("reap");
        stop.store(true, Ordering::Relaxed);
        let (accepted, failed) = join_load(senders, &format!("i{it}"), &mut attempts);
        let ok = accepted.len();
        missing.extend(accepted);
        assert!(
            failed > 0,
            "no request failed: the kill did not land during the load"
        );
        gate.open();
        fragments += read_to_eof(&mut hw, &mut current) as usize;
        for id in &current[before..] {
            seen.insert(id.clone());
            missing.remove(id);
        }
        println!(
            "kill {it} after {delay:?} ({}, {}): {ok} accepted, {failed} failed, {} delivered by the process, {} left for the next",
            sync(it).trim(),
            if stalled(it) { "client stopped reading" } else { "client reading" },
            current.len(),
            missing.len()
        );
        outputs.push(std::mem::take(&mut current));

        // Restart on the same store; a marker posted now is stored after everything the
        // killed process stored, so once it arrives everything before it has too.
        hw = Hookwire::spawn_gated(&config(&dir, sync(it + 1)), ENV, gate.clone());
        hw.handshake();
        let before = current.len();
        let addr = hw.addr.clone();
        read_through_marker(
            &mut hw,
            &addr,
            DEADLINE,
            &format!("restart-{it}"),
            &body,
            &mut attempts,
            &mut current,
        );
        for id in &current[before..] {
            seen.insert(id.clone());
            missing.remove(id);
        }
        let mut lost: Vec<_> = missing.iter().collect();
        lost.sort();
        assert!(
            lost.is_empty(),
            "{} events answered 2xx before kill {it} were never delivered: {lost:?}",
            lost.len()
        );
    }
    let (_, rest) = hw.close_and_wait();
    for line in &rest {
        current.push(delivery_id(line).unwrap_or_else(|| panic!("not JSON: {line:?}")));
    }
    outputs.push(current);

    let shared = check_outputs(&outputs, &attempts);
    let duplicates: usize = shared.iter().sum();
    let accepted = attempts.values().filter(|a| a.accepted).count();
    let unanswered_delivered = attempts
        .iter()
        .filter(|(id, a)| !a.accepted && seen.contains(*id))
        .count();
    println!(
        "{KILLS} kills: {accepted} accepted and all delivered; {duplicates} sent twice (per kill {shared:?}); \
         {unanswered_delivered} unanswered requests delivered; {fragments} cut lines"
    );
}

/// Events posted while no session is initialized wait in the store, across a kill; the
/// session then gets them all, in order; after a clean exit and restart, none comes again.
#[test]
fn events_wait_for_the_session_in_the_store_and_are_not_sent_again() {
    let dir = TempDir::new("durable-away");
    let cfg = config(&dir, "  sync: full");
    let body = payload(FIXTURE);
    let ids: Vec<String> = (0..40).map(|i| format!("away-{i:03}")).collect();
    let (early, late) = ids.split_at(20);

    // Nobody ever initialized this one: its events exist only in the store when it dies.
    let mut hw = spawn(&cfg);
    for id in early {
        assert_eq!(
            hw.post_github(PATH, SECRET, EVENT, id, &common::distinct(&body, id))
                .status,
            202
        );
    }
    hw.child.kill().expect("SIGKILL");
    hw.child.wait().expect("reap");
    assert_eq!(
        hw.next_line_or_eof(),
        None,
        "nothing was written before initialized"
    );

    let mut hw = spawn(&cfg);
    let id = hw.request("server/discover", serde_json::json!({}));
    assert_eq!(hw.next_message()["id"], id);
    hw.initialize("2025-11-25");
    for id in late {
        assert_eq!(
            hw.post_github(PATH, SECRET, EVENT, id, &common::distinct(&body, id))
                .status,
            202
        );
    }
    hw.send(serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    for id in &ids {
        assert_eq!(&next_id(&mut hw), id, "stored events arrive in order");
    }
    let (_, rest) = hw.close_and_wait();
    assert!(rest.is_empty(), "written after the last event: {rest:?}");

    // Restarted: what was delivered was acknowledged. A marker posted now is the first line.
    let mut hw = spawn(&cfg);
    hw.handshake();
    assert_eq!(
        hw.post_github(
            PATH,
            SECRET,
            EVENT,
            "away-marker",
            &common::distinct(&body, "away-marker")
        )
        .status,
        202
    );
    assert_eq!(
        next_id(&mut hw),
        "away-marker",
        "an event the session already had was sent again"
    );
}

/// A store full of events no session has taken refuses with 503 + Retry-After without
/// growing, and loses none of what it accepted once the session comes.
#[test]
fn a_full_store_refuses_with_retry_after_in_bounded_memory_and_keeps_what_it_accepted() {
    let dir = TempDir::new("durable-full");
    let cfg = config(&dir, "  max_bytes: 65536");
    let body = payload(FIXTURE);
    let mut hw = spawn(&cfg);
    // Connected, not initialized: nothing is delivered, so nothing is acknowledged or evicted.
    let id = hw.request("server/discover", serde_json::json!({}));
    assert_eq!(hw.next_message()["id"], id);
    hw.initialize("2025-11-25");

    let agent = agent();
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for i in 0..1000 {
        let id = format!("full-{i:04}");
        let r = post(&agent, &hw.addr, &id, &body).expect("transport");
        match r.status {
            202 => accepted.push(id),
            503 => {
                assert!(
                    r.retry_after.as_deref().is_some_and(|v| v.parse::<u64>().is_ok()),
                    "503 without a Retry-After in seconds: {:?}",
                    r.retry_after
                );
                refused.push(id);
                break;
            }
            s => panic!("`{id}` answered {s}"),
        }
    }
    assert!(
        !refused.is_empty(),
        "a 64 KiB store took 1000 events of {} bytes",
        body.len()
    );
    assert!(!accepted.is_empty(), "refused before storing anything");

    let rss_before = hw.rss_bytes();
    for i in 0..200 {
        let id = format!("refused-{i:03}");
        let r = post(&agent, &hw.addr, &id, &body).expect("transport");
        assert_eq!(r.status, 503, "`{id}` accepted by a full store nobody reads");
        assert!(r.retry_after.is_some(), "503 without Retry-After");
        refused.push(id);
    }
    let rss_after = hw.rss_bytes();
    println!(
        "full store: {} accepted, {} refused, RSS {} KiB -> {} KiB",
        accepted.len(),
        refused.len(),
        rss_before / 1024,
        rss_after / 1024
    );
    assert!(
        rss_after < rss_before + (20 << 20),
        "RSS grew from {rss_before} to {rss_after} bytes over 200 refused requests"
    );

    // The session comes: everything accepted, once, in order; nothing refused.
    hw.send(serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    for id in &accepted {
        assert_eq!(&next_id(&mut hw), id);
    }
    // Once acknowledged events are evicted, the store takes a marker; everything before it
    // in the store has been written by then.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let r = post(&agent, &hw.addr, "full-marker", &body).expect("transport");
        if r.status == 202 {
            break;
        }
        assert_eq!(r.status, 503);
        assert!(
            Instant::now() < deadline,
            "the store never took an event again after the session caught up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        next_id(&mut hw),
        "full-marker",
        "something besides the accepted events was delivered (a refused one, or a repeat)"
    );
    let (_, rest) = hw.close_and_wait();
    assert!(rest.is_empty(), "{rest:?}");
}

/// Kills of the gateway crash test.
const GATEWAY_KILLS: usize = 4;
/// How long a channel linked to a gateway may take to come back: it reconnects with
/// exponential backoff and full jitter, capped at 30 s (core/src/link/task.rs), and kills a few
/// seconds apart never let the backoff reset.
const RECONNECT: Duration = Duration::from_secs(60);

/// `hookwire token create` for the `github` source; returns the secret it prints.
fn create_token(cfg: &Path, name: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hookwire"))
        .args(["token", "create", "--name", name, "--sources", "github"])
        .args(["--permissions", "", "--config"])
        .arg(cfg)
        .env_remove("HOOKWIRE_TOKEN")
        .output()
        .expect("run hookwire token create");
    assert!(
        out.status.success(),
        "hookwire token create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(secret.starts_with("hwt_"), "not a token: {secret:?}");
    secret
}

/// SIGKILL of the gateway at a random moment under load, restart on the same address,
/// repeatedly, with one channel linked throughout: every event the gateway answered 2xx
/// reaches the channel's stdout exactly once (the gateway resends what it had not recorded
/// as acknowledged; the channel suppresses ids it already wrote), in each sender's order.
#[test]
fn a_gateway_killed_under_load_loses_nothing_and_the_channel_writes_each_event_once() {
    let dir = TempDir::new("durable-gateway");
    let sync = |i: usize| if i.is_multiple_of(2) { "full" } else { "normal" };
    let config = |i: usize| {
        dir.write(
            "config.yaml",
            &format!(
                "store:
  sync: {}
sources:
  - name: github
    type: github
    secret_env: T_GITHUB_SECRET
",
                sync(i)
            ),
        )
    };
    let token = create_token(&config(0), "durable");
    let mut gw = serve(&config(0), "127.0.0.1:0", ENV);
    let addr = gw.addr.clone();
    let mut ch = linked(&gw, &[], &[("HOOKWIRE_TOKEN", &token), ("HOOKWIRE_LOG", "info")]);
    ch.handshake();

    let body = Arc::new(payload(FIXTURE));
    let mut rng = Rng::from_clock();
    let mut attempts: HashMap<String, Attempt> = HashMap::new();
    let mut out: Vec<String> = Vec::new();
    let mut missing: HashSet<String> = HashSet::new();
    for it in 0..GATEWAY_KILLS {
        let prefix = format!("g{it}");
        let stop = Arc::new(AtomicBool::new(false));
        let (first_tx, first_rx) = mpsc::sync_channel(1);
        let accepted_now = Arc::new(AtomicUsize::new(0));
        let senders = start_load(&addr, &prefix, &body, &stop, &accepted_now, &first_tx);
        first_rx
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("no webhook accepted; stderr:\n{}", gw.stderr_text()));
        let delay = Duration::from_millis(20 + rng.below(1500));
        std::thread::sleep(delay);
        gw.child.kill().expect("SIGKILL");
        gw.child.wait().expect("reap");
        stop.store(true, Ordering::Relaxed);
        let (accepted, failed) = join_load(senders, &prefix, &mut attempts);
        assert!(
            failed > 0,
            "no request failed: the kill did not land during the load"
        );
        let ok = accepted.len();
        missing.extend(accepted);

        // The same address: the channel reconnects to where it was told the gateway is.
        gw = serve(&config(it + 1), &addr, ENV);
        assert_eq!(gw.addr, addr);
        let started = Instant::now();
        let before = out.len();
        read_through_marker(
            &mut ch,
            &addr,
            RECONNECT,
            &format!("gateway-restart-{it}"),
            &body,
            &mut attempts,
            &mut out,
        );
        for id in &out[before..] {
            missing.remove(id);
        }
        println!(
            "gateway kill {it} after {delay:?} (sync: {}): {ok} accepted, {failed} failed; \
             the channel had all of them {:?} after the restart",
            sync(it),
            started.elapsed()
        );
        let mut lost: Vec<_> = missing.iter().collect();
        lost.sort();
        assert!(
            lost.is_empty(),
            "{} events answered 2xx before gateway kill {it} never reached the channel: {lost:?}",
            lost.len()
        );
    }
    let (_, rest) = ch.close_and_wait();
    for line in &rest {
        out.push(delivery_id(line).unwrap_or_else(|| panic!("not JSON: {line:?}")));
    }
    // One process wrote everything: no repeat at all is allowed.
    check_outputs(std::slice::from_ref(&out), &attempts);
    let accepted = attempts.values().filter(|a| a.accepted).count();
    let written: HashSet<&String> = out.iter().collect();
    let unanswered_delivered = attempts
        .iter()
        .filter(|(id, a)| !a.accepted && written.contains(id))
        .count();
    println!(
        "{GATEWAY_KILLS} gateway kills: {accepted} accepted, each written once; \
         {unanswered_delivered} unanswered requests written (once)"
    );
}
