//! The pipeline's own jobs: each schedule, the storm-control flusher that queues a
//! group's digest when its window closes, and the GitHub sources' catch-up runs
//! ([`crate::catchup`]). Started by whichever process receives webhooks,
//! restarted on a reload, stopped first at shutdown.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hookwire_core::pipeline::Pipeline;
use hookwire_core::store::Store;
use tokio::task::JoinHandle;

/// How often closed storm windows are looked for.
const STORM_TICK: Duration = Duration::from_millis(250);

/// The running jobs of one pipeline.
pub struct Jobs {
    pipeline: Arc<Pipeline>,
    tasks: Vec<JoinHandle<()>>,
}

impl Jobs {
    /// Starts `pipeline`'s jobs on the current runtime; catch-up reads `store`.
    pub fn start(pipeline: &Arc<Pipeline>, store: &Arc<dyn Store>) -> Jobs {
        let mut tasks = Vec::new();
        for (i, src) in pipeline.config().sources.iter().enumerate() {
            if src.schedule.is_some() {
                tasks.push(tokio::spawn(hookwire_core::schedule::run(pipeline.clone(), i)));
            }
        }
        if pipeline.has_storm_control() {
            let flusher = pipeline.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(STORM_TICK);
                loop {
                    tick.tick().await;
                    flusher.flush_storms(SystemTime::now());
                }
            }));
        }
        tasks.extend(crate::catchup::start(pipeline, store));
        Jobs {
            pipeline: pipeline.clone(),
            tasks,
        }
    }

    /// Stops the jobs and closes every open storm window early, so no folded event goes
    /// unnamed.
    pub fn stop(self) {
        self.tasks.iter().for_each(JoinHandle::abort);
        self.pipeline
            .flush_storms(SystemTime::now() + Duration::from_secs(366 * 24 * 3600));
    }
}
