//! `schedules:`: jobs hookwire runs on a cron schedule (a command, or a URL to fetch) whose
//! output becomes a channel event, rendered through `templates/schedule/`: the "daily metrics
//! snapshot" case. A schedule is a source without an HTTP door: it has a name, is subscribed
//! through `channel.sources` like any source, and its path answers 401 to everyone.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::pipeline::Pipeline;

/// Most output bytes kept from a run (the rendered content has its own, smaller cap).
const MAX_OUTPUT: usize = 64 * 1024;

pub use crate::adapter::no_door::NoDoor;
pub use crate::config::schedule::{Entry, Job, Schedule};

fn cap(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_OUTPUT)]).into_owned();
    if bytes.len() > MAX_OUTPUT {
        format!("{text}\n[... output cut at {MAX_OUTPUT} bytes]")
    } else {
        text
    }
}

/// Runs a job once; the payload its template sees.
async fn run_once(name: &str, schedule: &Schedule) -> Value {
    let started = std::time::Instant::now();
    let mut payload = match &schedule.job {
        Job::Command(command) => {
            let child = tokio::process::Command::new("sh")
                .args(["-c", command])
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output();
            match tokio::time::timeout(schedule.timeout, child).await {
                Ok(Ok(out)) => json!({
                    "command": command,
                    "output": cap(&out.stdout),
                    "stderr": cap(&out.stderr),
                    "exit_code": out.status.code(),
                    "failed": !out.status.success(),
                }),
                Ok(Err(e)) => {
                    json!({"command": command, "output": "", "error": e.to_string(), "failed": true})
                }
                Err(_) => {
                    json!({"command": command, "output": "", "error": format!("timed out after {} s", schedule.timeout.as_secs()), "failed": true})
                }
            }
        }
        Job::Url(url) => {
            let url = url.clone();
            let timeout = schedule.timeout;
            let fetched = tokio::task::spawn_blocking(move || {
                let agent = ureq::AgentBuilder::new().timeout(timeout).build();
                match agent.get(&url).call() {
                    Ok(r) | Err(ureq::Error::Status(_, r)) => {
                        let status = r.status();
                        let mut body = Vec::new();
                        let read = std::io::Read::read_to_end(&mut std::io::Read::take(r.into_reader(), MAX_OUTPUT as u64 + 1), &mut body);
                        match read {
                            Ok(_) => json!({"url": url, "output": cap(&body), "http_status": status, "failed": status >= 400}),
                            Err(e) => json!({"url": url, "output": "", "error": e.to_string(), "failed": true}),
                        }
                    }
                    Err(e) => json!({"url": url, "output": "", "error": e.to_string(), "failed": true}),
                }
            })
            .await;
            fetched.unwrap_or_else(|e| json!({"output": "", "error": e.to_string(), "failed": true}))
        }
    };
    payload["name"] = name.into();
    payload["cron"] = schedule.expression.clone().into();
    payload["duration_ms"] = (started.elapsed().as_millis() as u64).into();
    // Output that is JSON is also offered parsed, for templates that pick fields.
    let parsed = payload["output"]
        .as_str()
        .and_then(|o| serde_json::from_str::<Value>(o).ok());
    if let Some(v) = parsed {
        payload["json"] = v;
    }
    payload
}

/// Fires one source's schedule until the runtime stops: each run becomes an event submitted
/// like a webhook's (rendered, sanitised, queued; a full queue is logged and the run dropped,
/// since there is no sender to retry).
pub async fn run(pipeline: Arc<Pipeline>, source: usize) {
    let src = &pipeline.config().sources[source];
    let Some(schedule) = src.schedule.clone() else {
        return;
    };
    let name = src.name.clone();
    loop {
        let Some(next) = schedule.cron.upcoming(chrono::Utc).next() else {
            tracing::info!(schedule = %name, "no future run; the schedule is done");
            return;
        };
        let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        let id = format!("{name}-{}", next.timestamp());
        // Replicas sharing a store each fire; one runs the job.
        let (p, run) = (pipeline.clone(), id.clone());
        if !tokio::task::spawn_blocking(move || p.claim_run(&run))
            .await
            .unwrap_or(true)
        {
            tracing::debug!(schedule = %name, "another replica runs this tick");
            continue;
        }
        let payload = run_once(&name, &schedule).await;
        if payload["failed"] == true {
            tracing::warn!(schedule = %name, error = %payload["error"], exit_code = %payload["exit_code"], "scheduled job failed; reporting it");
        }
        let at = SystemTime::now();
        match pipeline.ingest_scheduled(source, payload, &id, at) {
            Ok((outcome, receipt)) => match receipt.wait().await {
                Ok(()) => tracing::debug!(schedule = %name, ?outcome, "scheduled event"),
                Err(e) => tracing::warn!(schedule = %name, error = %e, "scheduled event not stored"),
            },
            Err(e) => tracing::warn!(schedule = %name, error = %e, "scheduled event not queued"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(yaml: &str) -> Entry {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn crontab_and_seconds_forms_parse_and_bad_ones_say_why() {
        assert!(entry("{name: a, cron: '0 9 * * 1-5', command: date}")
            .validate()
            .is_ok());
        assert!(entry("{name: a, cron: '*/5 * * * * *', url: 'https://x/y'}")
            .validate()
            .is_ok());
        let e = entry("{name: a, cron: '0 99 * * *', command: date}")
            .validate()
            .unwrap_err();
        assert_eq!(e[0].0, "cron");
        assert!(e[0].1.contains("Hours must be less than 23"), "{e:?}");
        let e = entry("{name: a, cron: '* * * * *', command: date, url: 'https://x'}")
            .validate()
            .unwrap_err();
        assert!(e[0].1.contains("exactly one"));
    }
}
