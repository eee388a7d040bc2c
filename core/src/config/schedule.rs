//! `schedules:` entries as written and validated: the cron expression, the job (a command
//! or a URL) and its timeout. Running them is [`crate::schedule`].

use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// One `schedules:` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The schedule's name: its `source_name` and how `channel.sources` subscribes to it.
    pub name: String,
    /// When: a cron expression in UTC, five fields (`0 9 * * 1-5`) or six with seconds first.
    pub cron: String,
    /// A shell command (`sh -c`) whose standard output is the event.
    #[serde(default)]
    pub command: Option<String>,
    /// A URL fetched with GET whose body is the event.
    #[serde(default)]
    pub url: Option<String>,
    /// Longest a run may take.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Template folder (default `schedule`).
    #[serde(default)]
    pub templates: Option<String>,
}

fn default_timeout() -> u64 {
    60
}

/// What a schedule does when it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// Run a shell command.
    Command(String),
    /// Fetch a URL.
    Url(String),
}

/// A validated schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// When it fires.
    pub cron: cron::Schedule,
    /// The expression as written, for logs and the payload.
    pub expression: String,
    /// What it runs.
    pub job: Job,
    /// Longest a run may take.
    pub timeout: Duration,
}

impl Entry {
    /// Validates an entry: `(field, message)` for each problem.
    pub fn validate(&self) -> Result<Schedule, Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        // Five fields is crontab; the cron crate wants seconds first.
        let fields = self.cron.split_whitespace().count();
        let expression = if fields == 5 {
            format!("0 {}", self.cron)
        } else {
            self.cron.clone()
        };
        let cron = cron::Schedule::from_str(&expression)
            .map_err(|e| {
                // The crate echoes the expression with a caret; the reason is the last line.
                let text = e.to_string();
                let reason = text.lines().rev().find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('^'));
                let reason = reason.filter(|r| r.trim() != expression.trim()).unwrap_or("invalid field");
                problems.push((
                    "cron",
                    format!(
                        "`{}` is not a cron expression: {}; write 5 fields (minute hour day month weekday) or 6 with seconds first, in UTC",
                        self.cron,
                        reason.trim()
                    ),
                ))
            })
            .ok();
        let job = match (&self.command, &self.url) {
            (Some(c), None) if !c.trim().is_empty() => Some(Job::Command(c.clone())),
            (None, Some(u)) if u.starts_with("http://") || u.starts_with("https://") => {
                Some(Job::Url(u.clone()))
            }
            (None, Some(_)) => {
                problems.push(("url", "must be an http(s) URL".into()));
                None
            }
            _ => {
                problems.push(("", "set exactly one of `command` or `url`".into()));
                None
            }
        };
        if self.timeout_secs == 0 {
            problems.push(("timeout_secs", "must be greater than 0".into()));
        }
        match (cron, job) {
            (Some(cron), Some(job)) if problems.is_empty() => Ok(Schedule {
                cron,
                expression: self.cron.clone(),
                job,
                timeout: Duration::from_secs(self.timeout_secs),
            }),
            _ => Err(problems),
        }
    }
}
