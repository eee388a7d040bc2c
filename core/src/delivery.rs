//! Delivery in local mode: the channel writer reads its subscriber's events from the store,
//! in order, and acknowledges each batch once it is flushed to stdout.
//!
//! **Seats.** Several Claude Code sessions in one project each spawn `hookwire channel` with
//! the same config, so one store. Each process takes a seat: the first free of `local`,
//! `local-2`, `local-3`, ... (an exclusive lock file beside the store, released by the kernel
//! when the process ends, however it ends). Each seat is a subscriber of its own, so every
//! session gets every event. `local` carries the project's backlog: a session that starts when
//! none runs takes it and gets what arrived meanwhile. An extra seat starts at the newest
//! event and is forgotten when released, so no event waits for a seat nobody holds. Only one
//! process listens for webhooks ([`ListenerLock`]); the others follow the store and take the
//! listener over when its owner exits.
//!
//! Acknowledgements reach SQLite with the next group commit, a few milliseconds later; a
//! process killed in between would send those events again on restart. So each flushed
//! position is also written at once to a small mark file beside the database (a `pwrite`, no
//! fsync: the page cache survives the process, and power loss takes the session with it).
//! What remains is the one batch whose `write(2)` the kill interrupts: it may have reached the
//! session or not, and is sent again. No design avoids that without the reader's help, which
//! a Claude Code session does not give.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::Receiver;

use crate::channel::Feed;
use crate::store::{Store, StoreError, Subscription};

/// The subscriber name of local mode's first seat.
pub const LOCAL: &str = "local";

/// The position mark of seat `name` beside a store file (`<store>.local-position`).
pub fn mark_path(store: &Path, name: &str) -> PathBuf {
    beside(store, &format!(".{name}-position"))
}

/// The subscriber name of seat `n` (from 1).
fn seat_name(n: usize) -> String {
    if n == 1 {
        LOCAL.to_owned()
    } else {
        format!("{LOCAL}-{n}")
    }
}

/// `<store><suffix>`.
fn beside(store: &Path, suffix: &str) -> PathBuf {
    let mut p = store.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Seats tried before giving up: more sessions than this in one project share nothing.
const MAX_SEATS: usize = 32;

/// One local session's seat: its subscriber name and position mark, held by an exclusive lock
/// on `<store>.<name>.lock` for as long as the process lives.
#[derive(Debug)]
pub struct Seat {
    /// The subscriber name (`local`, `local-2`, ...).
    pub name: String,
    /// Where its written position is marked.
    pub mark: PathBuf,
    _lock: File,
}

impl Seat {
    /// Takes the first free seat for the store at `path`: its lock file only, so a session can
    /// answer `initialize` before the store is open. [`Seat::settle`] then readies it there.
    pub fn take(path: &Path) -> Result<Seat, StoreError> {
        for n in 1..=MAX_SEATS {
            let name = seat_name(n);
            if let Some(lock) = try_lock(&beside(path, &format!(".{name}.lock")))? {
                return Ok(Seat {
                    mark: mark_path(path, &name),
                    name,
                    _lock: lock,
                });
            }
        }
        Err(StoreError::Invalid(format!(
            "{MAX_SEATS} sessions of this project already run"
        )))
    }

    /// Readies the seat in `store` (the one at `path`): an extra seat (not `local`) starts at
    /// the store's newest event, and the rows of extra seats nobody holds (a crashed
    /// process's) are forgotten on the way.
    pub fn settle(&self, path: &Path, store: &dyn Store) -> Result<(), StoreError> {
        for cursor in store.cursors()? {
            let extra = cursor
                .name
                .strip_prefix(LOCAL)
                .and_then(|n| n.strip_prefix('-'))
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| (2..=MAX_SEATS).contains(&n));
            if !extra || cursor.name == self.name {
                continue;
            }
            // Held while it is forgotten, so no process takes the seat meanwhile.
            if let Some(_free) = try_lock(&beside(path, &format!(".{}.lock", cursor.name)))? {
                store.forget_subscriber(&cursor.name)?;
            }
        }
        if self.name != LOCAL {
            let head = store.head();
            store.forget_subscriber(&self.name)?;
            if let Ok(f) = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&self.mark)
            {
                let _ = f.write_at(&head.to_le_bytes(), 0);
            }
            store.cursor(&self.name, head)?;
        }
        Ok(())
    }

    /// Gives the seat back at a clean exit: an extra seat's subscriber is forgotten.
    pub fn release(self, store: &dyn Store) {
        if self.name != LOCAL {
            if let Err(e) = store.forget_subscriber(&self.name) {
                tracing::warn!(seat = %self.name, error = %e, "cannot release the session's seat");
            }
        }
    }
}

/// Held by the one process of a project that listens for webhooks (`<store>.listener.lock`).
#[derive(Debug)]
pub struct ListenerLock(#[allow(dead_code)] File);

impl ListenerLock {
    /// Takes the lock if no other process of this store holds it.
    pub fn try_take(path: &Path) -> Result<Option<ListenerLock>, StoreError> {
        Ok(try_lock(&beside(path, ".listener.lock"))?.map(ListenerLock))
    }
}

/// An exclusive lock on `path` (created if needed), or `None` when another process holds it.
fn try_lock(path: &Path) -> Result<Option<File>, StoreError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StoreError::Db(format!("cannot open {}: {e}", path.display())))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(StoreError::Db(format!("cannot lock {}: {e}", path.display())))
        }
    }
}

/// A feed of one notification of hookwire's own: what a channel that cannot serve its
/// configuration says to each session (once, after the handshake settles).
pub struct NoticeFeed {
    line: Option<Vec<u8>>,
    wake: Receiver<()>,
    /// Kept, so the wake never reads as disconnected (which would always be ready).
    _waker: crossbeam_channel::Sender<()>,
}

impl NoticeFeed {
    /// The feed of `line` (a whole `notifications/claude/channel` line).
    pub fn new(line: Vec<u8>) -> Self {
        let (waker, wake) = crossbeam_channel::bounded(1);
        let _ = waker.send(());
        NoticeFeed {
            line: Some(line),
            wake,
            _waker: waker,
        }
    }
}

impl Feed for NoticeFeed {
    fn wake(&self) -> Receiver<()> {
        self.wake.clone()
    }

    fn next(&mut self, _max: usize, out: &mut Vec<u8>) -> Option<u64> {
        let line = self.line.take()?;
        out.extend_from_slice(&line);
        Some(1)
    }

    fn written(&mut self, _position: u64) {}
}

/// The store as the local channel's feed.
pub struct StoreFeed {
    store: Arc<dyn Store>,
    sub: Subscription,
    wake: Receiver<()>,
    /// Everything up to here was handed to the writer.
    pos: u64,
    mark: Option<File>,
}

impl StoreFeed {
    /// The feed of subscriber `sub`, resuming after what it acknowledged (or what the mark
    /// says reached stdout, if further).
    pub fn open(store: Arc<dyn Store>, sub: Subscription, mark: Option<&Path>) -> Result<Self, StoreError> {
        let acked = store.subscribe(&sub, 0)?;
        let mark = match mark {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
                    .map_err(|e| StoreError::Db(format!("cannot open {}: {e}", path.display())))?,
            ),
            None => None,
        };
        let mut marked = [0u8; 8];
        let marked = match &mark {
            Some(f) if f.read_exact_at(&mut marked, 0).is_ok() => u64::from_le_bytes(marked),
            _ => 0,
        };
        // A mark beyond the head belongs to another database file: ignore it.
        let pos = if marked <= store.head() {
            acked.max(marked)
        } else {
            acked
        };
        if pos > acked {
            store.ack(&sub.name, pos);
        }
        tracing::info!(subscriber = %sub.name, resume_after = pos, "delivery resumes");
        Ok(StoreFeed {
            wake: store.wake(),
            store,
            sub,
            pos,
            mark,
        })
    }
}

impl Feed for StoreFeed {
    fn wake(&self) -> Receiver<()> {
        self.wake.clone()
    }

    fn next(&mut self, max: usize, out: &mut Vec<u8>) -> Option<u64> {
        loop {
            let batch = match self.store.read_after(&self.sub, self.pos, max) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the store; delivery pauses until the next event");
                    return None;
                }
            };
            if batch.through == self.pos {
                return None;
            }
            self.pos = batch.through;
            if batch.events.is_empty() {
                // Only other sources' events: move past them, and say so to the store.
                self.written(self.pos);
                continue;
            }
            for e in &batch.events {
                out.extend_from_slice(&e.line);
            }
            return Some(self.pos);
        }
    }

    fn written(&mut self, position: u64) {
        if let Some(f) = &self.mark {
            if let Err(e) = f.write_at(&position.to_le_bytes(), 0) {
                tracing::warn!(error = %e, "cannot write the delivery mark");
            }
        }
        self.store.ack(&self.sub.name, position);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::StoreOptions;
    use crate::store::SqliteStore;

    fn names(store: &dyn Store) -> Vec<String> {
        let mut n: Vec<String> = store.cursors().unwrap().into_iter().map(|c| c.name).collect();
        n.sort();
        n
    }

    #[test]
    fn seats_are_taken_in_order_and_a_crashed_seat_is_forgotten_by_the_next_session() {
        let dir = std::env::temp_dir().join(format!("hookwire-seats-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.db");
        let store = SqliteStore::open(StoreOptions::new(&path)).unwrap();
        let seats: Vec<Seat> = (0..3).map(|_| Seat::take(&path).unwrap()).collect();
        let taken: Vec<&str> = seats.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(taken, ["local", "local-2", "local-3"]);
        for s in &seats {
            s.settle(&path, store.as_ref()).unwrap();
        }
        assert_eq!(names(store.as_ref()), ["local-2", "local-3"]);
        // local-2 and local-3 die without releasing: their rows stay, their locks go.
        let mut seats = seats.into_iter();
        let first = seats.next().unwrap();
        drop(seats);
        let next = Seat::take(&path).unwrap();
        assert_eq!(next.name, "local-2");
        next.settle(&path, store.as_ref()).unwrap();
        // Forgetting goes through the writer: reopening reads what it committed.
        let reopen = |store: Arc<SqliteStore>| {
            store.close(std::time::Duration::from_secs(5));
            SqliteStore::open(StoreOptions::new(&path)).unwrap()
        };
        let store = reopen(store);
        // local-3's row would hold every event back from pruning; nobody holds its lock.
        assert_eq!(names(store.as_ref()), ["local-2"]);
        next.release(store.as_ref());
        first.release(store.as_ref());
        let store = reopen(store);
        assert!(names(store.as_ref()).is_empty());
        store.close(std::time::Duration::from_secs(1));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
