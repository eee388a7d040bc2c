//! The channel writer's side of the link: [`LinkFeed`], the channel's [`Feed`] in gateway
//! mode. It hands the writer each event's line once (a repeat across a reconnect is skipped),
//! and publishes the highest id flushed, which the link task acknowledges.

use crossbeam_channel::Receiver;
use tokio::sync::{mpsc, watch};

use super::mark::Mark;
use crate::channel::Feed;

/// What the link task hands the writer.
pub(super) enum Item {
    Event(u64, Vec<u8>),
    /// The gateway has a new event log: forget the ids written so far.
    Reset(u64),
    /// A notification of hookwire's own for the session (the token was refused).
    Notice(Vec<u8>),
}

/// The highest id flushed to stdout, in an event-log epoch (see [`Item::Reset`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Written {
    pub(super) epoch: u64,
    pub(super) id: u64,
}

/// The gateway link as the channel's [`Feed`].
pub struct LinkFeed {
    pub(super) rx: mpsc::Receiver<Item>,
    pub(super) wake: Receiver<()>,
    pub(super) epoch: u64,
    /// The highest id handed to the writer (flushed by the time `next` is called again).
    pub(super) highest: u64,
    pub(super) written: watch::Sender<Written>,
    pub(super) mark: Option<Mark>,
}

impl Feed for LinkFeed {
    fn wake(&self) -> Receiver<()> {
        self.wake.clone()
    }

    fn next(&mut self, max: usize, out: &mut Vec<u8>) -> Option<u64> {
        let mut n = 0;
        while n < max {
            match self.rx.try_recv() {
                // A repeat across a reconnect: both copies can be queued.
                Ok(Item::Event(id, _)) if id <= self.highest => {}
                Ok(Item::Event(id, line)) => {
                    out.extend_from_slice(&line);
                    self.highest = id;
                    n += 1;
                }
                Ok(Item::Reset(epoch)) => {
                    self.epoch = epoch;
                    self.highest = 0;
                }
                Ok(Item::Notice(line)) => {
                    out.extend_from_slice(&line);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        (n > 0).then_some(self.highest)
    }

    fn written(&mut self, position: u64) {
        if let Some(mark) = &self.mark {
            mark.write(position);
        }
        self.written.send_replace(Written {
            epoch: self.epoch,
            id: position,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_skips_repeats_and_forgets_on_reset() {
        let (tx, rx) = mpsc::channel(16);
        let (_wake_tx, wake) = crossbeam_channel::bounded(1);
        let (written, seen) = watch::channel(Written::default());
        let mut feed = LinkFeed {
            rx,
            wake,
            epoch: 0,
            highest: 0,
            written,
            mark: None,
        };
        for (id, l) in [(3, "a"), (5, "b"), (3, "a"), (5, "b"), (7, "c")] {
            tx.try_send(Item::Event(id, format!("{l}\n").into_bytes()))
                .unwrap();
        }
        let mut out = Vec::new();
        assert_eq!(feed.next(2, &mut out), Some(5));
        assert_eq!(out, b"a\nb\n");
        feed.written(5);
        assert_eq!(*seen.borrow(), Written { epoch: 0, id: 5 });
        out.clear();
        assert_eq!(
            feed.next(10, &mut out),
            Some(7),
            "the repeats of 3 and 5 are skipped"
        );
        assert_eq!(out, b"c\n");
        assert_eq!(feed.next(10, &mut out), None);
        tx.try_send(Item::Reset(1)).unwrap();
        tx.try_send(Item::Event(2, b"d\n".to_vec())).unwrap();
        out.clear();
        assert_eq!(feed.next(10, &mut out), Some(2), "after a reset low ids are new");
        feed.written(2);
        assert_eq!(*seen.borrow(), Written { epoch: 1, id: 2 });
    }
}
