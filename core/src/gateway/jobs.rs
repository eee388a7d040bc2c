//! A session's worker and its queue: read requests (at most [`MAX_WAITING_READS`] waiting;
//! one more breaks the protocol) and audit entries (at most [`MAX_QUEUED_AUDITS`] waiting;
//! more are dropped) share one queue, so they are handled one at a time in the order the
//! client sent them, and a read sees the audit entries sent before it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::audit::AuditWriter;
use super::reads::{answer, permission_denied, result_frame, ReadRequest};
use super::session::End;
use crate::link_protocol::{Close, MAX_WAITING_READS};
use crate::store::AuditEntry;
use crate::tools::{ReadError, StoreReader};

/// Audit entries a session may have waiting to be stored; more are dropped.
const MAX_QUEUED_AUDITS: usize = 256;
/// How long a session's worker may take, once the client is gone, to store the audit entries
/// it had already received (at most [`MAX_QUEUED_AUDITS`], one insert each).
pub(super) const AUDIT_DRAIN: Duration = Duration::from_secs(5);

/// What a session's worker does, one at a time, in the order the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Job {
    Read(ReadRequest),
    Audit(AuditEntry),
}

/// The session's work queue, the side the client's reader fills (bounded as the module doc
/// says).
pub(super) struct Jobs {
    tx: mpsc::UnboundedSender<Job>,
    reads: Arc<AtomicUsize>,
    audits: Arc<AtomicUsize>,
}

/// The session's work queue, worker side.
pub(super) struct JobQueue {
    rx: mpsc::UnboundedReceiver<Job>,
    reads: Arc<AtomicUsize>,
    audits: Arc<AtomicUsize>,
}

/// A session's work queue: the reader's side and the worker's.
pub(super) fn jobs() -> (Jobs, JobQueue) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (reads, audits) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    (
        Jobs {
            tx,
            reads: reads.clone(),
            audits: audits.clone(),
        },
        JobQueue { rx, reads, audits },
    )
}

impl Jobs {
    /// Queues a read request; a client with too many waiting breaks the protocol's bound
    /// (its own requests would otherwise pile up here).
    pub(super) fn read(&self, r: ReadRequest) -> Result<(), End> {
        if self.reads.load(Ordering::SeqCst) >= MAX_WAITING_READS {
            return Err(End::Close(Close::TooManyReads));
        }
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(Job::Read(r)).is_err() {
            // The session is ending.
            self.reads.fetch_sub(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Queues an audit entry; `false` (dropped) when too many are waiting.
    pub(super) fn audit(&self, e: AuditEntry) -> bool {
        if self.audits.load(Ordering::SeqCst) >= MAX_QUEUED_AUDITS {
            return false;
        }
        self.audits.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(Job::Audit(e)).is_err() {
            self.audits.fetch_sub(1, Ordering::SeqCst);
        }
        true
    }
}

impl JobQueue {
    async fn recv(&mut self) -> Option<Job> {
        let job = self.rx.recv().await?;
        match &job {
            Job::Read(_) => self.reads.fetch_sub(1, Ordering::SeqCst),
            Job::Audit(_) => self.audits.fetch_sub(1, Ordering::SeqCst),
        };
        Some(job)
    }
}

/// Works through a session's queue one job at a time, in the order received (one store call
/// per session at once): answers read requests, handing the result frames to the session to
/// send, and stores audit entries. `reader` is `None` when the token lacks `read-events`:
/// every read request is then refused without reading. Runs until the queue closes (the
/// client's reader stopped); once the session stops taking results, reads are skipped and
/// only audit entries are stored.
pub(super) async fn answer_requests(
    reader: Option<StoreReader>,
    audit: AuditWriter,
    subscriber: String,
    mut jobs: JobQueue,
    results: mpsc::Sender<String>,
) {
    let audit = Arc::new(audit);
    while let Some(job) = jobs.recv().await {
        let r = match job {
            Job::Read(r) => r,
            Job::Audit(entry) => {
                let audit = audit.clone();
                let _ = tokio::task::spawn_blocking(move || audit.write(entry)).await;
                continue;
            }
        };
        let req = r.req();
        if results.is_closed() {
            continue;
        }
        let text = match &reader {
            None => {
                tracing::info!(subscriber = %subscriber, req, "read request refused: the token does not grant read-events");
                permission_denied(req)
            }
            Some(reader) => {
                let reader = reader.clone();
                match tokio::task::spawn_blocking(move || answer(&reader, r)).await {
                    Ok(text) => text,
                    Err(_) => result_frame(req, Err(&ReadError::Failed("the store read panicked".into()))),
                }
            }
        };
        tracing::debug!(subscriber = %subscriber, req, bytes = text.len(), "answered a read request");
        // An error: the session ended meanwhile (the loop goes on for the audit entries).
        let _ = results.send(text).await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{answered, store_with};
    use super::*;
    use serde_json::Value;
    use std::time::Duration;

    #[test]
    fn without_read_events_every_request_is_refused_unread() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (store, dir) = store_with(&[]);
        rt.block_on(async {
            let (tx, rx) = jobs();
            let (results_tx, mut results) = mpsc::channel(4);
            let audit = AuditWriter {
                store: store.clone(),
                sources: vec!["github".into()],
            };
            let task = tokio::spawn(answer_requests(None, audit, "bob".into(), rx, results_tx));
            tx.read(ReadRequest::GetEvent {
                req: 11,
                id: "1".into(),
            })
            .unwrap();
            tx.read(ReadRequest::ListEvents {
                req: 12,
                source: None,
                limit: None,
            })
            .unwrap();
            for req in [11, 12] {
                let v = answered(&results.recv().await.unwrap());
                assert_eq!(v["req"], req);
                assert_eq!(v["kind"], "refused");
                assert!(
                    v["error"].as_str().unwrap().starts_with("permission denied"),
                    "{v}"
                );
            }
            drop(tx);
            task.await.unwrap();
        });
        store.close(Duration::from_secs(1));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn too_many_waiting_requests_break_the_protocol_and_audits_are_dropped() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (tx, mut rx) = jobs();
        let r = |req| ReadRequest::GetEvent { req, id: "1".into() };
        for req in 0..MAX_WAITING_READS as u64 {
            assert_eq!(tx.read(r(req)), Ok(()));
        }
        let refused = tx.read(r(99)).unwrap_err().close_frame().unwrap();
        assert_eq!(
            (refused.code, refused.reason.as_str()),
            (1008, "too many read requests waiting")
        );
        let e = crate::tools::audit_entry("a", "get_event", None, &Value::Null, "ok", "", 0);
        for _ in 0..MAX_QUEUED_AUDITS {
            assert!(tx.audit(e.clone()), "audits have their own bound");
        }
        assert!(!tx.audit(e.clone()), "beyond it they are dropped");
        // The one being answered no longer counts: one more of each may wait.
        assert_eq!(rt.block_on(rx.recv()), Some(Job::Read(r(0))));
        assert_eq!(tx.read(r(100)), Ok(()));
        assert!(!tx.audit(e.clone()));
        for _ in 1..MAX_WAITING_READS {
            assert!(matches!(rt.block_on(rx.recv()), Some(Job::Read(_))));
        }
        assert!(
            matches!(rt.block_on(rx.recv()), Some(Job::Audit(_))),
            "in the order sent"
        );
        assert!(tx.audit(e));
    }
}
