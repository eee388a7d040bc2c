//! The read tools' reader in gateway mode ([`LinkReader`]): each `get_event` / `list_events`
//! goes to the link task, which sends it on the live connection as a request frame and hands
//! back the matching `result`. At most [`MAX_READS`] are unanswered on a connection, each
//! waits at most [`READ_TIMEOUT`], and while the link is down a read fails at once
//! ([`NOT_CONNECTED`]).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};

use super::task::stopped;
use crate::link_protocol::ClientFrame;
use crate::tools::{EventReader, ReadError};

/// Read requests unanswered on a connection, at most (the gateway allows more waiting).
pub(super) const MAX_READS: usize = 8;
/// How long a read waits for its result.
const READ_TIMEOUT: Duration = Duration::from_secs(20);
/// A read's error while the link is down.
pub const NOT_CONNECTED: &str = "gateway not connected; retry";

/// Runs `work` (a connection attempt, a backoff delay) while there is no connection: reads
/// fail at once. `None` if the link is told to stop first.
pub(super) async fn while_down<F: Future>(
    stop: &mut watch::Receiver<bool>,
    reads: &mut mpsc::Receiver<Read>,
    work: F,
) -> Option<F::Output> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            _ = stopped(stop) => return None,
            r = &mut work => return Some(r),
            Some(r) = reads.recv() => {
                let _ = r.reply.send(Err(ReadError::Failed(NOT_CONNECTED.into())));
            }
        }
    }
}

/// What a read asks the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Query {
    GetEvent(String),
    ListEvents(Option<String>, Option<usize>),
}

impl Query {
    pub(super) fn frame(&self, req: u64) -> ClientFrame {
        match self {
            Query::GetEvent(id) => ClientFrame::GetEvent { req, id: id.clone() },
            Query::ListEvents(source, limit) => ClientFrame::ListEvents {
                req,
                source: source.clone(),
                limit: limit.map(|l| l as u64),
            },
        }
    }
}

/// A read on its way to the gateway: the answer goes to `reply`. It holds one of the
/// [`MAX_READS`] slots until answered or its connection ends, even if its caller stopped
/// waiting, so the gateway never has more of this channel's reads than that.
pub(super) struct Read {
    pub(super) query: Query,
    pub(super) reply: oneshot::Sender<Result<Value, ReadError>>,
    _slot: OwnedSemaphorePermit,
}

/// The read tools' [`EventReader`] in gateway mode: each read is a request on the live
/// connection; the gateway checks the token's `read-events` permission and sources and
/// answers with the same JSON as local mode.
#[derive(Clone)]
pub struct LinkReader {
    pub(super) tx: mpsc::Sender<Read>,
    pub(super) slots: Arc<Semaphore>,
    /// Why the gateway refused the token, once it has.
    pub(super) refused: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for LinkReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkReader").finish_non_exhaustive()
    }
}

impl LinkReader {
    async fn read(self, query: Query) -> Result<Value, ReadError> {
        if let Some(reason) = self.refused.lock().expect("refusal poisoned").clone() {
            return Err(ReadError::Failed(format!(
                "the gateway refused this session's token ({reason}); nothing can be read until the session has a valid token"
            )));
        }
        let work = async {
            let gone = || ReadError::Failed("the gateway link has stopped".into());
            let slot = self.slots.clone().acquire_owned().await.map_err(|_| gone())?;
            let (reply, answer) = oneshot::channel();
            self.tx
                .send(Read {
                    query,
                    reply,
                    _slot: slot,
                })
                .await
                .map_err(|_| gone())?;
            answer.await.map_err(|_| {
                ReadError::Failed("the gateway connection ended before it answered; retry".into())
            })?
        };
        tokio::time::timeout(READ_TIMEOUT, work)
            .await
            .unwrap_or_else(|_| {
                Err(ReadError::Failed(format!(
                    "the gateway did not answer in {} s; retry",
                    READ_TIMEOUT.as_secs()
                )))
            })
    }
}

impl EventReader for LinkReader {
    fn get_event(&self, id: String) -> BoxFuture<'static, Result<Value, ReadError>> {
        Box::pin(self.clone().read(Query::GetEvent(id)))
    }

    fn list_events(
        &self,
        source: Option<String>,
        limit: Option<usize>,
    ) -> BoxFuture<'static, Result<Value, ReadError>> {
        Box::pin(self.clone().read(Query::ListEvents(source, limit)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_become_request_frames() {
        assert_eq!(
            Query::GetEvent("evt_2".into()).frame(1).encode(),
            r#"{"type":"get_event","req":1,"id":"evt_2"}"#
        );
        assert_eq!(
            Query::ListEvents(None, Some(5)).frame(2).encode(),
            r#"{"type":"list_events","req":2,"limit":5}"#
        );
    }

    #[test]
    fn reads_fail_at_once_while_the_link_is_down() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (tx, mut reads) = mpsc::channel(MAX_READS);
            let (_stop_tx, mut stop) = watch::channel(false);
            let reader = LinkReader {
                tx,
                slots: Arc::new(Semaphore::new(MAX_READS)),
                refused: Arc::new(Mutex::new(None)),
            };
            let (release, waiting) = oneshot::channel::<()>();
            let down =
                tokio::spawn(async move { while_down(&mut stop, &mut reads, waiting).await.is_some() });
            let r = reader.get_event("1".into()).await;
            assert_eq!(r, Err(ReadError::Failed(NOT_CONNECTED.into())));
            let r = reader.list_events(None, None).await;
            assert_eq!(r, Err(ReadError::Failed(NOT_CONNECTED.into())));
            assert_eq!(
                reader.slots.available_permits(),
                MAX_READS,
                "slots are given back"
            );
            release.send(()).unwrap();
            assert!(down.await.unwrap(), "the work finished");
        });
    }
}
