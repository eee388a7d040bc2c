//! Delivery in local mode: the channel writer reads the `local` subscriber's events from the
//! store, in order, and acknowledges each batch once it is flushed to stdout.
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

/// The subscriber name local mode uses.
pub const LOCAL: &str = "local";

/// The position mark beside a store file.
pub fn mark_path(store: &Path) -> PathBuf {
    let mut p = store.as_os_str().to_owned();
    p.push(".local-position");
    PathBuf::from(p)
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
