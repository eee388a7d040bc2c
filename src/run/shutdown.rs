//! The one `Shutdown` every long-running mode is given: it learns why to stop (a signal, the
//! client gone, the listener failed), tells the listener, and then stops what runs in one
//! order with one set of deadlines:
//!
//! 1. schedules and the storm flusher stop, and open storm windows are closed into digests;
//! 2. the listener stops accepting and lets requests in flight finish (their commits land);
//!    the gateway closes its sessions with 1001;
//! 3. the channel writer flushes what it has and stops;
//! 4. a linked channel acknowledges what the writer wrote and closes its gateway connection
//!    (after step 3: an event written while the link stopped would go unacknowledged, and
//!    the token's next session would show it again);
//! 5. the store commits what is queued and closes.
//!
//! In channel mode the whole sequence fits in about 2 s: Claude Code sends SIGKILL soon after
//! closing stdin. The gateway has more room.

use std::sync::Arc;
use std::time::Duration;

use hookwire_core::channel::ChannelHandle;
use hookwire_core::link::Link;
use hookwire_core::store::Store;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::jobs::Jobs;

/// How long each step of the sequence may take.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// Requests in flight (and, on the gateway, the sessions' close handshakes).
    pub requests: Duration,
    /// The channel writer's flush, then the gateway link's last ack and close.
    pub session: Duration,
    /// The store's last commit.
    pub store: Duration,
}

impl Deadlines {
    /// `hookwire channel`: Claude Code escalates to SIGKILL soon after closing stdin.
    pub const CHANNEL: Deadlines = Deadlines {
        requests: Duration::from_millis(500),
        session: Duration::from_millis(500),
        store: Duration::from_millis(1000),
    };

    /// `hookwire serve`: a service manager waits longer (systemd's default is 90 s).
    pub const GATEWAY: Deadlines = Deadlines {
        requests: Duration::from_secs(5),
        session: Duration::from_secs(1),
        store: Duration::from_secs(2),
    };
}

/// What runs, as far as stopping it is concerned; each part is optional.
#[derive(Default)]
pub struct Parts {
    /// Schedules and the storm flusher.
    pub jobs: Option<Jobs>,
    /// The listener's task (told to stop by [`Shutdown::stopping`]).
    pub listener: Option<JoinHandle<std::io::Result<()>>>,
    /// A linked channel's gateway connection.
    pub link: Option<Link>,
    /// The stdio channel.
    pub channel: Option<ChannelHandle>,
    /// The store.
    pub store: Option<Arc<dyn Store>>,
}

/// Why and when to stop; shared by everything that runs.
pub struct Shutdown {
    reason: watch::Sender<Option<&'static str>>,
    deadlines: Deadlines,
}

impl Shutdown {
    /// A shutdown with these deadlines, listening for SIGTERM and SIGINT (and SIGHUP when
    /// `hup_stops`: the gateway reloads on SIGHUP instead). Call on the runtime.
    pub fn new(deadlines: Deadlines, hup_stops: bool) -> Arc<Shutdown> {
        let (reason, _) = watch::channel(None);
        let shutdown = Arc::new(Shutdown { reason, deadlines });
        // Registered once, for the life of the process: a stream made later would miss a
        // signal that arrived before it.
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut hup = hup_stops.then(|| signal(SignalKind::hangup()).expect("SIGHUP handler"));
        let s = shutdown.clone();
        tokio::spawn(async move {
            let why = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                Some(_) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => "SIGHUP",
            };
            s.begin(why);
        });
        shutdown
    }

    /// Starts the shutdown for `reason` (the first reason given is the one kept).
    pub fn begin(&self, reason: &'static str) {
        self.reason.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Resolves with the reason once the shutdown has begun.
    pub async fn requested(&self) -> &'static str {
        let mut rx = self.reason.subscribe();
        let r = rx.wait_for(Option::is_some).await;
        r.ok().and_then(|r| *r).unwrap_or("shutdown")
    }

    /// A future for a listener: resolves once the shutdown has begun.
    pub fn stopping(self: &Arc<Self>) -> impl std::future::Future<Output = ()> + Send + 'static {
        let s = self.clone();
        async move {
            s.requested().await;
        }
    }

    /// The deadlines.
    pub fn deadlines(&self) -> Deadlines {
        self.deadlines
    }

    /// Stops `parts` in order, each step within its deadline (see the module doc). Call once
    /// the shutdown has begun.
    pub async fn finish(&self, parts: Parts) {
        let d = self.deadlines;
        if let Some(jobs) = parts.jobs {
            jobs.stop();
        }
        if let Some(mut listener) = parts.listener {
            // The listener drains within `requests` itself; the margin covers its return.
            match tokio::time::timeout(d.requests + Duration::from_millis(250), &mut listener).await {
                Ok(Ok(Err(e))) => tracing::error!(error = %e, "the listener failed while stopping"),
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!("the listener did not stop in time");
                    listener.abort();
                }
            }
        }
        if let Some(channel) = parts.channel {
            channel.stop(d.session);
        }
        if let Some(link) = parts.link {
            link.stop(d.session).await;
        }
        if let Some(store) = parts.store {
            store.close(d.store);
        }
    }
}
