//! Where an accepted event goes before a session has it. The vendor gets 2xx only after
//! [`EventSink::submit`] returned `Ok` and its [`Receipt`] resolved: with the durable store
//! ([`crate::store::StoreSink`]) that is after the event's group commit. The bounded in-memory
//! queue here serves the one-shot commands and tests that need no store.

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

use crate::event::Event;

/// Why an event could not be taken; ingress answers 503 with Retry-After.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The queue or store is full: sessions are not keeping up. The vendor retries later.
    #[error("queue full")]
    Full,
    /// The consumer is gone (shutting down).
    #[error("shutting down")]
    Closed,
    /// The store could not commit it (logged where it happened).
    #[error("store failure")]
    Failed,
}

/// Resolves once a submitted event is durable (at once for the in-memory queue).
#[derive(Debug)]
#[must_use = "the vendor may be answered only once the receipt resolves"]
pub struct Receipt(Option<oneshot::Receiver<Result<u64, SinkError>>>);

impl Receipt {
    /// Already durable (or nothing to wait for).
    pub fn done() -> Self {
        Receipt(None)
    }

    /// Durable when `rx` yields.
    pub fn pending(rx: oneshot::Receiver<Result<u64, SinkError>>) -> Self {
        Receipt(Some(rx))
    }

    /// Waits for the commit.
    pub async fn wait(self) -> Result<(), SinkError> {
        match self.0 {
            None => Ok(()),
            Some(rx) => match rx.await {
                Ok(r) => r.map(|_| ()),
                Err(_) => Err(SinkError::Closed),
            },
        }
    }

    /// Waits for the commit from a thread outside the async runtime.
    pub fn wait_blocking(self) -> Result<(), SinkError> {
        match self.0 {
            None => Ok(()),
            Some(rx) => match rx.blocking_recv() {
                Ok(r) => r.map(|_| ()),
                Err(_) => Err(SinkError::Closed),
            },
        }
    }
}

/// Takes accepted events. Must not block: it runs on the request path.
pub trait EventSink: Send + Sync + 'static {
    /// Queues one event, or says why not.
    fn submit(&self, event: Event) -> Result<Receipt, SinkError>;

    /// Whether this process runs the scheduled job identified by `run` (schedule and tick):
    /// several gateway replicas sharing a store each fire every schedule, and only the one
    /// that claims the tick runs it. Blocking. The default, for a sink one process owns:
    /// always.
    fn claim_run(&self, run: &str) -> bool {
        let _ = run;
        true
    }

    /// Counts one event of storm group `key` (source name and group) in the window every
    /// process sharing the store sees, so replicas fold as one ([`crate::storm`]). Blocking.
    /// The default, for a sink one process owns: `None`, the window is kept in memory.
    fn storm_window(
        &self,
        key: &str,
        window: std::time::Duration,
        max_events: usize,
        now: std::time::SystemTime,
    ) -> Option<crate::storm::SharedWindow> {
        let _ = (key, window, max_events, now);
        None
    }
}

/// A bounded in-memory queue (no durability): for the one-shot commands and tests.
#[derive(Debug, Clone)]
pub struct MemoryQueue {
    tx: Sender<Event>,
}

/// A queue of `capacity` events and its receiving end.
pub fn memory_queue(capacity: usize) -> (MemoryQueue, Receiver<Event>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    (MemoryQueue { tx }, rx)
}

impl EventSink for MemoryQueue {
    fn submit(&self, event: Event) -> Result<Receipt, SinkError> {
        self.tx.try_send(event).map_err(|e| match e {
            TrySendError::Full(_) => SinkError::Full,
            TrySendError::Disconnected(_) => SinkError::Closed,
        })?;
        Ok(Receipt::done())
    }
}
