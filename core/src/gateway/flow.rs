//! A session's window: which events were sent and not yet acknowledged, so the session
//! sends no more than [`WINDOW_EVENTS`] / [`WINDOW_BYTES`] ahead of the client's acks and
//! knows how far the store may consider the subscriber served.

use std::collections::VecDeque;

use crate::link_protocol::{WINDOW_BYTES, WINDOW_EVENTS};

/// Sent-but-unacknowledged bookkeeping of one session.
#[derive(Default)]
pub(super) struct Flow {
    /// Everything up to here was sent or is not for this subscriber.
    pub(super) pos: u64,
    /// Sent, not acknowledged: (id, bytes), in order.
    inflight: VecDeque<(u64, usize)>,
    /// Their notification lines' bytes.
    inflight_bytes: usize,
    /// The last position acknowledged to the store.
    pub(super) stored: u64,
}

impl Flow {
    pub(super) fn room(&self) -> usize {
        if self.inflight_bytes >= WINDOW_BYTES {
            0
        } else {
            WINDOW_EVENTS.saturating_sub(self.inflight.len())
        }
    }

    pub(super) fn sent(&mut self, id: u64, bytes: usize) {
        self.inflight.push_back((id, bytes));
        self.inflight_bytes += bytes;
    }

    pub(super) fn acked(&mut self, id: u64) {
        while let Some(&(seq, bytes)) = self.inflight.front() {
            if seq > id {
                break;
            }
            self.inflight.pop_front();
            self.inflight_bytes -= bytes;
        }
        // The client has everything up to `id` already (from an earlier connection).
        self.pos = self.pos.max(id);
    }

    /// How far the store may consider this subscriber served: up to the first event still
    /// unacknowledged, including other sources' events skipped on the way.
    pub(super) fn durable(&self) -> u64 {
        self.inflight.front().map_or(self.pos, |&(seq, _)| seq - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_window_and_durable_point() {
        let mut f = Flow {
            pos: 10,
            stored: 10,
            ..Flow::default()
        };
        assert_eq!(f.room(), WINDOW_EVENTS);
        f.sent(12, 100);
        f.sent(15, 100);
        f.pos = 20; // 16..=20 were other sources'
        assert_eq!(f.room(), WINDOW_EVENTS - 2);
        assert_eq!(f.durable(), 11, "11 was skipped, 12 is unacknowledged");
        f.acked(12);
        assert_eq!(f.durable(), 14);
        f.acked(15);
        assert_eq!(f.durable(), 20, "all sent acknowledged: the skipped tail counts");
        assert_eq!(f.inflight_bytes, 0);
        f.acked(30);
        assert_eq!(f.pos, 30, "an ack ahead of what was sent skips it");
        f.sent(31, WINDOW_BYTES);
        assert_eq!(f.room(), 0, "bytes bound the window too");
    }
}
