//! Where an accepted event goes before a session has it. The vendor gets 2xx only after
//! [`EventSink::submit`] returned `Ok`. Today's sink is a bounded in-memory queue read by the
//! local channel; the durable store (and the gateway's fan-out) implement the same trait.

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::event::Event;

/// Why an event could not be taken; ingress answers 503 with Retry-After.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The queue is full: the session is not keeping up. The vendor retries later.
    #[error("queue full")]
    Full,
    /// The consumer is gone (shutting down).
    #[error("shutting down")]
    Closed,
}

/// Takes accepted events. Must not block: it runs on the request path.
pub trait EventSink: Send + Sync + 'static {
    /// Queues one event, or says why not.
    fn submit(&self, event: Event) -> Result<(), SinkError>;
}

/// A bounded in-memory queue between ingress and the local channel writer.
#[derive(Debug, Clone)]
pub struct MemoryQueue {
    tx: Sender<Event>,
}

/// A queue of `capacity` events and the receiving end for the channel writer.
pub fn memory_queue(capacity: usize) -> (MemoryQueue, Receiver<Event>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    (MemoryQueue { tx }, rx)
}

impl EventSink for MemoryQueue {
    fn submit(&self, event: Event) -> Result<(), SinkError> {
        self.tx.try_send(event).map_err(|e| match e {
            TrySendError::Full(_) => SinkError::Full,
            TrySendError::Disconnected(_) => SinkError::Closed,
        })
    }
}
