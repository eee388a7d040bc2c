//! The listener every HTTP surface runs on (the webhook endpoint in local mode, the gateway's
//! webhooks, sessions and probes): TLS when configured, and the connection-level bounds that
//! hold before anything is known about a client.
//!
//! - **Caps.** At most `max_connections` open at once and `max_connections_per_client` from one
//!   address; a connection over either is closed as soon as it is accepted, so a single client
//!   holding sockets cannot take the file descriptors every vendor needs.
//! - **Header and idle timeout.** A connection must deliver a request's headers within
//!   `header_timeout` of being accepted or of its previous response (hyper's header read
//!   timeout runs from the moment the connection waits for a request): a slow-header client and
//!   an idle keep-alive connection are both closed by it. A TLS handshake gets the same time.
//! - **Descriptors.** The soft `RLIMIT_NOFILE` is raised to the hard limit at start, and an
//!   accept that fails for want of descriptors waits briefly instead of spinning.
//!
//! Request bodies are bounded per request by the caller: a webhook's size, pace and the bytes
//! all requests may hold before they are verified by [`crate::ingress`], a small body (a
//! console form, an MCP message) by [`read_small_body`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Connection-level bounds of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once, in total.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_connections_per_client: usize,
    /// Time to deliver a request's headers (and a TLS handshake), counted from the accept or
    /// the previous response: bounds slow headers and idle keep-alive connections alike.
    pub header_timeout: Duration,
}

impl ConnectionLimits {
    /// The limits of `limits:` in config.yaml.
    pub fn from_config(limits: &crate::config::Limits) -> Self {
        ConnectionLimits {
            max_connections: limits.max_connections,
            max_connections_per_client: limits.max_connections_per_client,
            header_timeout: Duration::from_secs(limits.header_timeout_secs),
        }
    }
}

/// How long an accept that failed for want of descriptors waits before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Descriptors kept free for the store, the log file and outbound connections.
const RESERVED_DESCRIPTORS: u64 = 64;

/// Raises the soft open-file limit to the hard limit and returns how many connections it
/// leaves room for. Called once by the wiring before listening.
pub fn raise_descriptor_limit() -> Option<u64> {
    let (soft, hard) = rlimit::Resource::NOFILE.get().ok()?;
    if soft < hard {
        if let Err(e) = rlimit::Resource::NOFILE.set(hard, hard) {
            tracing::debug!(error = %e, "cannot raise the open-file limit");
        }
    }
    let (soft, _) = rlimit::Resource::NOFILE.get().ok()?;
    Some(soft.saturating_sub(RESERVED_DESCRIPTORS))
}

/// The open connections, in total and per client address, and which of them wait for a
/// request (and so may be closed to make room).
#[derive(Debug, Default)]
struct Gate {
    next: u64,
    open: HashMap<u64, Open>,
    per_client: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
struct Open {
    ip: IpAddr,
    /// Requests being answered (their response bodies not yet finished).
    busy: usize,
    /// Since when it has been waiting for a request (accepted, or its last response done).
    waiting_since: Instant,
    evict: Arc<Notify>,
}

impl Gate {
    /// The connection (of `ip`, or of anyone) that has waited longest for a request.
    fn longest_waiting(&self, ip: Option<IpAddr>) -> Option<u64> {
        self.open
            .iter()
            .filter(|(_, o)| o.busy == 0 && ip.is_none_or(|ip| o.ip == ip))
            .min_by_key(|(_, o)| o.waiting_since)
            .map(|(id, _)| *id)
    }

    fn remove(&mut self, id: u64) -> Option<Open> {
        let o = self.open.remove(&id)?;
        if let Some(n) = self.per_client.get_mut(&o.ip) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&o.ip);
            }
        }
        Some(o)
    }
}

/// One admitted connection: marks requests in progress; dropping it gives its place back.
#[derive(Clone)]
struct Slot {
    gate: Arc<Mutex<Gate>>,
    id: u64,
}

impl Slot {
    fn busy(&self) {
        if let Some(o) = self
            .gate
            .lock()
            .expect("connection gate poisoned")
            .open
            .get_mut(&self.id)
        {
            o.busy += 1;
        }
    }

    fn done(&self) {
        if let Some(o) = self
            .gate
            .lock()
            .expect("connection gate poisoned")
            .open
            .get_mut(&self.id)
        {
            o.busy = o.busy.saturating_sub(1);
            o.waiting_since = Instant::now();
        }
    }
}

/// Owned by the connection's task: removes it from the gate when the task ends.
struct Admitted(Slot);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0
            .gate
            .lock()
            .expect("connection gate poisoned")
            .remove(self.0.id);
    }
}

/// Why a connection was refused at accept: at a cap, with every connection busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Total,
    PerClient,
}

/// Admits a connection from `ip`. At a cap, the connection that has waited longest for a
/// request (of that client for the per-client cap) is closed to make room: an idle or
/// slow-header socket is worth less than a new one, which a vendor opens to send at once.
/// Refused only when every connection in the way is busy answering a request.
fn admit(
    gate: &Arc<Mutex<Gate>>,
    ip: IpAddr,
    limits: &ConnectionLimits,
) -> Result<(Admitted, Arc<Notify>), Refusal> {
    let mut g = gate.lock().expect("connection gate poisoned");
    if g.per_client.get(&ip).copied().unwrap_or(0) >= limits.max_connections_per_client {
        let victim = g.longest_waiting(Some(ip)).ok_or(Refusal::PerClient)?;
        if let Some(o) = g.remove(victim) {
            o.evict.notify_one();
        }
    }
    if g.open.len() >= limits.max_connections {
        let victim = g.longest_waiting(None).ok_or(Refusal::Total)?;
        if let Some(o) = g.remove(victim) {
            o.evict.notify_one();
        }
    }
    g.next += 1;
    let id = g.next;
    let evict = Arc::new(Notify::new());
    g.open.insert(
        id,
        Open {
            ip,
            busy: 0,
            waiting_since: Instant::now(),
            evict: evict.clone(),
        },
    );
    *g.per_client.entry(ip).or_default() += 1;
    Ok((
        Admitted(Slot {
            gate: gate.clone(),
            id,
        }),
        evict,
    ))
}

/// Serves `app` on `listener` (over TLS when `tls` is set) until `shutdown` resolves; then
/// stops accepting, asks every open connection to finish its request in flight and close, and
/// returns once they have, or after `drain` (the rest are dropped). Handlers see the client's
/// address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()> {
    let gate = Arc::new(Mutex::new(Gate::default()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut refused_logged = false;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    if is_descriptor_shortage(&e) {
                        tracing::warn!(error = %e, "out of file descriptors; accepting again shortly");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    } else {
                        tracing::debug!(error = %e, "accept failed");
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (admitted, evict) = match admit(&gate, peer.ip(), &limits) {
            Ok(a) => {
                refused_logged = false;
                a
            }
            Err(why) => {
                // Once per run of refusals: a client hammering the cap must not flood the log.
                if !refused_logged {
                    tracing::warn!(%peer, reason = ?why, "connection refused: every connection is busy");
                    refused_logged = true;
                }
                crate::metrics::connection_refused(match why {
                    Refusal::Total => "total",
                    Refusal::PerClient => "per_client",
                });
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            peer,
            app: app.clone(),
            header_timeout: limits.header_timeout,
            stop: stop_rx.clone(),
            evict,
        };
        tokio::spawn(conn.run(stream, tls.clone(), admitted));
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(true);
    // Every connection task holds a receiver; all dropped means all finished.
    if tokio::time::timeout(drain, stop_tx.closed()).await.is_err() {
        tracing::warn!("some connections did not finish in time");
    }
    Ok(())
}

fn is_descriptor_shortage(e: &std::io::Error) -> bool {
    // EMFILE (24) and ENFILE (23) on Linux and the BSDs.
    matches!(e.raw_os_error(), Some(23 | 24))
}

/// One accepted connection.
struct Connection {
    peer: SocketAddr,
    app: Router,
    header_timeout: Duration,
    stop: watch::Receiver<bool>,
    /// Signalled when the gate closes this connection to make room.
    evict: Arc<Notify>,
}

impl Connection {
    /// From the TLS handshake to the close.
    async fn run(self, stream: TcpStream, tls: Option<TlsAcceptor>, admitted: Admitted) {
        let peer = self.peer;
        match tls {
            None => self.http1(TokioIo::new(stream), admitted).await,
            Some(acceptor) => {
                let evict = self.evict.clone();
                let handshake = tokio::time::timeout(self.header_timeout, acceptor.accept(stream));
                tokio::select! {
                    r = handshake => match r {
                        Ok(Ok(stream)) => self.http1(TokioIo::new(stream), admitted).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    },
                    () = evict.notified() => tracing::debug!(%peer, "closed during its TLS handshake to make room"),
                }
            }
        }
    }

    async fn http1<I>(mut self, io: I, admitted: Admitted)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let slot = admitted.0.clone();
        let app = self.app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            let slot = slot.clone();
            slot.busy();
            async move {
                let response = app.oneshot(req.map(axum::body::Body::new)).await;
                let response = response.unwrap_or_else(|never| match never {});
                // Busy until the response body is finished (or dropped), so a stream being
                // served is never closed to make room.
                Ok::<_, Infallible>(response.map(|body| axum::body::Body::new(Tracked { body, slot })))
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .max_headers(MAX_HEADERS)
            .serve_connection(io, service)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
                return;
            }
            () = self.evict.notified() => {
                tracing::debug!(%peer, "closed while waiting for a request, to make room");
                return;
            }
            _ = self.stop.wait_for(|s| *s) => {}
        }
        conn.as_mut().graceful_shutdown();
        if let Err(e) = conn.await {
            tracing::debug!(%peer, error = %e, "connection ended during shutdown");
        }
        drop(admitted);
    }
}

/// A response body that marks its connection idle again once finished or dropped.
struct Tracked {
    body: axum::body::Body,
    slot: Slot,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.slot.done();
    }
}

impl hyper::body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Why a small request body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRefused {
    /// Over its cap, declared so or found so while reading.
    TooLarge,
    /// Not whole within its time.
    TooSlow,
    /// The connection failed mid-body.
    Broken,
}

/// A small request body (a form, a JSON-RPC message): at most `max` bytes, whole within
/// `timeout`. A body whose declared length is over `max` is refused before a byte of it is
/// read, so its sender reads the refusal instead of a reset while still writing.
pub async fn read_small_body(
    body: axum::body::Body,
    max: usize,
    timeout: Duration,
) -> Result<bytes::Bytes, BodyRefused> {
    use http_body_util::BodyExt;
    if hyper::body::Body::size_hint(&body).lower() > max as u64 {
        return Err(BodyRefused::TooLarge);
    }
    match tokio::time::timeout(timeout, http_body_util::Limited::new(body, max).collect()).await {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyRefused::TooLarge),
        Ok(Err(_)) => Err(BodyRefused::Broken),
        Err(_) => Err(BodyRefused::TooSlow),
    }
}

/// Headers of one request, at most (hyper's default, stated: a vendor sends a few dozen).
const MAX_HEADERS: usize = 100;

/// The TLS acceptor for `tls:` (PEM certificate chain and private key).
pub fn tls_acceptor(tls: &crate::config::TlsSettings) -> Result<TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    crate::gateway::install_crypto_provider();
    let certs = CertificateDer::pem_file_iter(&tls.cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read tls.cert_file {}: {e}", tls.cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls.cert_file {} holds no PEM certificate",
            tls.cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file)
        .map_err(|e| format!("cannot read tls.key_file {}: {e}", tls.key_file.display()))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "tls.cert_file {} / tls.key_file {}: {e}",
                tls.cert_file.display(),
                tls.key_file.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_client: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: total,
            max_connections_per_client: per_client,
            header_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_client_at_its_cap_loses_its_longest_waiting_connection() {
        let gate = Arc::new(Mutex::new(Gate::default()));
        let l = limits(10, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let (first, first_evict) = admit(&gate, a, &l).unwrap();
        let (second, _) = admit(&gate, a, &l).unwrap();
        second.0.busy();
        let (_third, _) = admit(&gate, a, &l).unwrap();
        // The first was waiting, the second busy: the first made room.
        assert!(!gate.lock().unwrap().open.contains_key(&first.0.id));
        assert!(gate.lock().unwrap().open.contains_key(&second.0.id));
        let notified = first_evict.notified();
        tokio::pin!(notified);
        assert!(
            futures_util::FutureExt::now_or_never(notified).is_some(),
            "evicted connection told"
        );
        assert_eq!(gate.lock().unwrap().per_client[&a], 2);
        drop(first);
        assert_eq!(
            gate.lock().unwrap().per_client[&a],
            2,
            "an evicted slot is not given back twice"
        );
    }

    #[test]
    fn refused_only_when_every_connection_in_the_way_is_busy() {
        let gate = Arc::new(Mutex::new(Gate::default()));
        let l = limits(2, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let (x, _) = admit(&gate, a, &l).unwrap();
        let (y, _) = admit(&gate, b, &l).unwrap();
        x.0.busy();
        y.0.busy();
        assert_eq!(admit(&gate, b, &l).err(), Some(Refusal::Total));
        y.0.done();
        let (_z, _) = admit(&gate, a, &l).unwrap();
        assert_eq!(gate.lock().unwrap().open.len(), 2);
        drop(x);
        assert_eq!(gate.lock().unwrap().open.len(), 1);
    }
}
