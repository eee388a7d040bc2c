//! `hookwire doctor` with `store.backend: nats`: connects with the configured servers,
//! credentials and TLS (once, no retry), and reports the server and its JetStream account,
//! whether hookwire's streams and buckets exist with the configured replica count (or will
//! be created by the first `serve`), and whether the cluster has the peers `replicas` needs.
//! It creates and changes nothing.

use hookwire_core::config::NatsSettings;
use hookwire_core::store::nats::{inspect, Inspection};

use super::Report;

/// Bytes in a human unit, for the account's storage line.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The NATS lines of a doctor report.
pub(super) fn check(r: &mut Report, s: &NatsSettings) {
    let servers = s.servers.join(", ");
    let found = match inspect(s) {
        Ok(found) => found,
        Err(e) => {
            let e = match e {
                hookwire_core::store::StoreError::Db(m) => m,
                other => other.to_string(),
            };
            let hint = if s.credentials_file.is_some() || s.tls.is_some() {
                "check that a server is up and reachable from here, and store.nats.credentials_file / tls"
            } else {
                "check that a server is up and reachable from here (nats-server -js, port 4222), \
                 and whether it needs store.nats.credentials_file or tls"
            };
            r.fail("nats", format!("{servers}: {e}; {hint}"));
            return;
        }
    };
    report(r, s, &found);
}

fn report(r: &mut Report, s: &NatsSettings, found: &Inspection) {
    let cluster = match &found.cluster {
        Some(name) => format!("cluster {name}, {} server(s) known", found.peers),
        None => "a single server, no cluster".into(),
    };
    r.ok(
        "nats",
        format!(
            "connected to {} (nats-server {}), {cluster}",
            found.server, found.version
        ),
    );
    let (streams, consumers, used) = found.account;
    let limit = found.max_storage.map_or("no file storage limit".to_owned(), |m| {
        format!("limit {}", size(m))
    });
    r.ok(
        "jetstream",
        format!(
            "account: {streams} stream(s), {consumers} consumer(s), {} on file ({limit})",
            size(used)
        ),
    );
    if s.replicas > found.peers {
        r.warn(
            "nats replicas",
            format!(
                "store.nats.replicas is {} but the cluster has {} server(s): JetStream refuses to create \
                 (or keep writable) a stream with more replicas than servers; set replicas: {} or add servers",
                s.replicas,
                found.peers,
                if found.peers >= 3 { 3 } else { 1 }
            ),
        );
    } else {
        r.ok(
            "nats replicas",
            format!("{} of {} server(s)", s.replicas, found.peers),
        );
    }
    for (what, name, state) in &found.items {
        let what = format!("nats {what}");
        match state {
            None => r.ok(
                &what,
                format!(
                    "{name} does not exist yet: the first `hookwire serve` creates it with {} replica(s)",
                    s.replicas
                ),
            ),
            Some(i) if i.replicas != s.replicas => r.warn(
                &what,
                format!(
                    "{name} has {} replica(s), the config says {}: the next `hookwire serve` changes it",
                    i.replicas, s.replicas
                ),
            ),
            Some(i) if i.current < i.replicas => r.warn(
                &what,
                format!(
                    "{name}: {} of {} replica(s) current (leader {}): a server is down or catching up",
                    i.current,
                    i.replicas,
                    i.leader.as_deref().unwrap_or("none")
                ),
            ),
            Some(i) => r.ok(
                &what,
                format!(
                    "{name}: {} replica(s), all current, leader {}, {} message(s)",
                    i.replicas,
                    i.leader.as_deref().unwrap_or("(single server)"),
                    i.messages
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::size;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(8 << 30), "8.0 GiB");
    }
}
