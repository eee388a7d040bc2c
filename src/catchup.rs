//! Catch-up: asks GitHub to redeliver the deliveries of a source's hook that failed while
//! hookwire (or the tunnel in front of it) was down. GitHub never retries a failed delivery
//! on its own; a redelivery arrives signed as usual, and dedup keeps it once.
//!
//! Run in the background ([`start`], from `src/run/jobs.rs`) by whichever process receives
//! the webhooks: `hookwire serve` at start and on each reload, a local `hookwire channel`
//! when it takes the project's listener; never awaited, so start-up and `initialize` never
//! wait for GitHub. Also run once by `hookwire connect github --catch-up`.
//!
//! A source takes part when it is of type github and has `connect:` (its repository or
//! organisation) with `catch_up` on, a `public_url` (how its hook is found) and an API token
//! (`connect.token_env`/`token_file`, else `tools.github`'s); otherwise it is off, said once
//! at start-up (at debug for a source without `connect:`, at info for one with it).
//!
//! One run reads the newest page of the hook's deliveries (newest first) and walks back to
//! the last one hookwire accepted: the one carrying the store's newest
//! delivery id of the source, or one that succeeded when it arrived. A failed delivery on the
//! way is asked for again, oldest first and at most `connect.max_redeliveries` per run,
//! unless hookwire has it anyway (accepted since, through a redelivery), it is itself a
//! redelivery, or it was asked for before: GitHub lists another entry with its guid, the
//! record beside the store (`<store>.<source>-catchup`, one guid a line) names it, or, on a
//! shared JetStream store, another replica claimed it. A guid is recorded before GitHub is
//! asked and taken back out when the request fails, so nothing is asked twice across
//! restarts, even by a process stopped mid-request; a network error is logged once and the
//! rest waits for the next start or reload.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hookwire_core::config::{connect::ConnectSettings, Config, Source};
use hookwire_core::pipeline::Pipeline;
use hookwire_core::store::{ListQuery, Store};
use serde_json::Value;
use tokio::task::JoinHandle;

/// Deliveries read per run: GitHub's largest page.
const PER_PAGE: usize = 100;
/// Guids kept in the record: far more than one page of deliveries.
const RECORD_KEEP: usize = 1000;
/// Stored events of the source read to learn which listed deliveries hookwire has.
const STORED_LOOKUP: usize = 1000;
/// Clock difference allowed between GitHub's `delivered_at` and the store's arrival time.
const CLOCK_SLACK_MS: i64 = 3_600_000;
/// Connect and read timeout of one API call.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The public API, unless `connect.api_url` or `tools.github.api_url` says.
const GITHUB_API: &str = "https://api.github.com";

/// What one run found and did.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// The store's newest delivery id of the source, if any.
    pub last: Option<String>,
    /// Failed deliveries since the last accepted one, not asked for before.
    pub found: usize,
    /// Failed deliveries since the last accepted one that were asked for before.
    pub already: usize,
    /// Guids GitHub was asked to redeliver, oldest first.
    pub requested: Vec<String>,
    /// Found but left for the next run: over the limit.
    pub skipped: usize,
}

/// Starts a catch-up run for each source that takes part, on the current runtime.
pub fn start(pipeline: &Arc<Pipeline>, store: &Arc<dyn Store>) -> Vec<JoinHandle<()>> {
    let config = pipeline.config();
    let mut tasks = Vec::new();
    for source in config.sources.iter().filter(|s| s.type_name == "github") {
        let job = match plan(config, source) {
            Ok(job) => job,
            // Not connected: the usual case, not worth an info line at every start.
            Err(why) if source.connect.is_none() => {
                tracing::debug!(source = %source.name, "catch-up off: {why}");
                continue;
            }
            Err(why) => {
                tracing::info!(source = %source.name, "catch-up off: {why}");
                continue;
            }
        };
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            match job.run(store).await {
                Ok(r) => tracing::info!(
                    "catch-up: source={}, failed deliveries found={}, redelivery requested={}, skipped (over limit)={}, already requested={}",
                    job.source,
                    r.found,
                    r.requested.len(),
                    r.skipped,
                    r.already
                ),
                Err((e, asked)) => tracing::warn!(
                    "catch-up: source={} failed after {asked} redelivery requests, retried at the next start or reload: {e}",
                    job.source
                ),
            }
        }));
    }
    tasks
}

/// One source's catch-up, ready to run.
struct Job {
    source: String,
    client: octocrab::Octocrab,
    route: String,
    url: String,
    record: Option<PathBuf>,
    max: usize,
}

/// The job of `source`, or why it takes no part.
fn plan(config: &Config, source: &Source) -> Result<Job, String> {
    let Some(connect) = &source.connect else {
        return Err("no `connect:` (repo or org) names its GitHub hook".into());
    };
    if !connect.catch_up {
        return Err("connect.catch_up is false".into());
    }
    let Some(url) = source.public_url.clone() else {
        return Err("no public_url to find its hook by".into());
    };
    let (token, api) = credentials(config, connect)
        .ok_or("no API token (connect.token_env or token_file, or tools.github)")?;
    Ok(Job {
        source: source.name.clone(),
        client: client(&api, token)?,
        route: connect.hooks_route(),
        url,
        record: record_path(config, &source.name),
        max: connect.max_redeliveries,
    })
}

/// The token and API URL of a `connect:` section: its own, else `tools.github`'s.
fn credentials(config: &Config, connect: &ConnectSettings) -> Option<(String, String)> {
    let tools = config.tools.github.as_ref();
    let token = connect.token.as_ref().or(tools.map(|g| &g.token))?;
    let token = std::str::from_utf8(token.expose()).ok()?.trim().to_owned();
    let api = connect
        .api_url
        .clone()
        .or_else(|| tools.map(|g| g.api_url.clone()))
        .unwrap_or_else(|| GITHUB_API.to_owned());
    Some((token, api))
}

/// An octocrab client for `api` with `token`.
pub(crate) fn client(api: &str, token: String) -> Result<octocrab::Octocrab, String> {
    octocrab::Octocrab::builder()
        .base_uri(api)
        .map_err(|e| format!("the API URL: {e}"))?
        .personal_token(token)
        .set_connect_timeout(Some(TIMEOUT))
        .set_read_timeout(Some(TIMEOUT))
        .build()
        .map_err(|e| format!("cannot build the GitHub client: {e}"))
}

/// The record of requested guids beside a SQLite store (`<store>.<source>-catchup`).
pub(crate) fn record_path(config: &Config, source: &str) -> Option<PathBuf> {
    let mut name = config.store.path.file_name()?.to_owned();
    name.push(format!(".{source}-catchup"));
    Some(config.store.path.with_file_name(name))
}

impl Job {
    async fn run(&self, store: Arc<dyn Store>) -> Result<Report, (String, usize)> {
        let hook = crate::connect::find_hook(&self.client, &self.route, &self.url)
            .await
            .map_err(|e| (e.message(), 0))?
            .ok_or_else(|| (format!("no hook of {} posts to {}", self.route, self.url), 0))?;
        let id = hook["id"]
            .as_u64()
            .ok_or_else(|| ("GitHub's hook has no numeric id".to_owned(), 0))?;
        let hook = format!("{}/{id}", self.route);
        redeliver_failed(
            &self.client,
            &hook,
            &self.source,
            store,
            self.record.clone(),
            self.max,
        )
        .await
    }
}

/// One run over the hook at `hook` (`/repos/O/N/hooks/ID`). `Err` carries how many were
/// requested before the failure.
pub(crate) async fn redeliver_failed(
    client: &octocrab::Octocrab,
    hook: &str,
    source: &str,
    store: Arc<dyn Store>,
    record: Option<PathBuf>,
    max: usize,
) -> Result<Report, (String, usize)> {
    let deliveries: Vec<Value> = client
        .get(format!("{hook}/deliveries"), Some(&[("per_page", PER_PAGE)]))
        .await
        .map_err(|e| (crate::connect::describe(e).message(), 0))?;
    let since_ms = deliveries
        .iter()
        .filter_map(|d| d["delivered_at"].as_str()?.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_millisecond() - CLOCK_SLACK_MS)
        .min();
    let (last, stored, asked) = {
        let (store, source, record) = (store.clone(), source.to_owned(), record.clone());
        tokio::task::spawn_blocking(move || known(store.as_ref(), &source, since_ms, record.as_deref()))
            .await
            .map_err(|e| (e.to_string(), 0))?
            .map_err(|e| (e, 0))?
    };
    let (mut report, failed) = select(&deliveries, last, &stored, &asked);
    let take = failed.len().min(max);
    report.skipped = failed.len() - take;
    for (id, guid) in failed.into_iter().take(take) {
        // A JetStream store shared by replicas: the first to claim a guid asks for it.
        let key = format!("catch-up:{source}:{guid}");
        let claimed = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.claim_once(&key)).await
        };
        match claimed {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                report.already += 1;
                report.found -= 1;
                continue;
            }
            Ok(Err(e)) => return Err((e.to_string(), report.requested.len())),
            Err(e) => return Err((e.to_string(), report.requested.len())),
        }
        // Recorded before it is asked: a process stopped while GitHub takes the request
        // leaves it recorded, so it is asked at most once; a refusal takes it back out.
        if let Some(path) = &record {
            remember(path, &guid).map_err(|e| {
                (
                    format!("cannot record in {}: {e}", path.display()),
                    report.requested.len(),
                )
            })?;
        }
        let sent = async {
            let resp = client
                ._post(format!("{hook}/deliveries/{id}/attempts"), None::<&()>)
                .await?;
            octocrab::map_github_error(resp).await.map(drop)
        };
        if let Err(e) = sent.await {
            if let Some(path) = &record {
                if let Err(e) = forget(path, &guid) {
                    tracing::warn!(path = %path.display(), error = %e, "catch-up cannot take back a failed request");
                }
            }
            return Err((crate::connect::describe(e).message(), report.requested.len()));
        }
        hookwire_core::metrics::catchup_redeliveries(source, 1);
        report.requested.push(guid);
    }
    Ok(report)
}

/// From the store and the record: the source's newest delivery id, its delivery ids since
/// `since_ms`, and the guids requested before.
#[allow(clippy::type_complexity)]
fn known(
    store: &dyn Store,
    source: &str,
    since_ms: Option<i64>,
    record: Option<&Path>,
) -> Result<(Option<String>, HashSet<String>, HashSet<String>), String> {
    let list = |since_ms, limit| {
        store.list(&ListQuery {
            source: Some(source.to_owned()),
            since_ms,
            limit,
        })
    };
    let last = list(None, 1)
        .map_err(|e| e.to_string())?
        .pop()
        .map(|e| e.delivery_id);
    let stored = list(since_ms, STORED_LOOKUP)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|e| e.delivery_id)
        .collect();
    let asked = match record {
        Some(path) => recall(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        None => HashSet::new(),
    };
    Ok((last, stored, asked))
}

/// Walks `deliveries` (newest first) back to the last accepted one: the failed ones to ask
/// for, oldest first, as (delivery id, guid), and the counts so far.
fn select(
    deliveries: &[Value],
    last: Option<String>,
    stored: &HashSet<String>,
    asked: &HashSet<String>,
) -> (Report, Vec<(u64, String)>) {
    let mut per_guid = HashMap::<&str, usize>::new();
    for d in deliveries {
        if let Some(g) = d["guid"].as_str() {
            *per_guid.entry(g).or_default() += 1;
        }
    }
    let mut report = Report::default();
    let mut failed = Vec::new();
    for d in deliveries {
        if d["redelivery"] == Value::Bool(true) {
            continue;
        }
        // The guid comes from the network and goes into a file and the log: a plain token.
        let (Some(id), Some(guid)) = (d["id"].as_u64(), d["guid"].as_str().filter(|g| plain(g))) else {
            continue;
        };
        let succeeded = d["status_code"].as_u64().is_some_and(|c| (200..300).contains(&c));
        if succeeded || last.as_deref() == Some(guid) {
            break;
        }
        if stored.contains(guid) {
            continue;
        }
        if per_guid[guid] > 1 || asked.contains(guid) {
            report.already += 1;
            continue;
        }
        failed.push((id, guid.to_owned()));
    }
    failed.reverse();
    report.found = failed.len();
    report.last = last;
    (report, failed)
}

/// A GitHub delivery guid (a UUID): letters, digits and dashes.
fn plain(guid: &str) -> bool {
    !guid.is_empty() && guid.len() <= 64 && guid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The guids in the record; none when there is no record yet. A record grown past twice
/// [`RECORD_KEEP`] is cut to its newest [`RECORD_KEEP`].
fn recall(path: &Path) -> std::io::Result<HashSet<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(e),
    };
    let lines: Vec<&str> = text.lines().filter(|l| plain(l)).collect();
    if lines.len() > 2 * RECORD_KEEP {
        let kept = &lines[lines.len() - RECORD_KEEP..];
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        std::fs::write(&tmp, kept.join("\n") + "\n")?;
        std::fs::rename(&tmp, path)?;
    }
    Ok(lines.into_iter().map(str::to_owned).collect())
}

/// Takes `guid` back out of the record (rewritten through a temporary file).
fn forget(path: &Path, guid: &str) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let kept: String = text
        .lines()
        .filter(|l| *l != guid)
        .map(|l| format!("{l}\n"))
        .collect();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, kept)?;
    std::fs::rename(&tmp, path)
}

/// Appends `guid` to the record.
fn remember(path: &Path, guid: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(format!("{guid}\n").as_bytes())?;
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(id: u64, guid: &str, status: u64, redelivery: bool) -> Value {
        json!({"id": id, "guid": guid, "status_code": status, "redelivery": redelivery})
    }

    #[test]
    fn walks_back_to_the_last_accepted_and_skips_what_was_asked_or_stored() {
        let list = [
            d(9, "late", 502, false),
            d(8, "tried", 0, true),
            d(7, "via-redelivery", 0, false),
            d(6, "early", 0, false),
            d(5, "tried", 503, false),
            d(4, "recorded", 500, false),
            d(3, "bad/guid", 500, false),
            d(2, "accepted", 202, false),
            d(1, "before", 500, false),
        ];
        let stored: HashSet<String> = ["via-redelivery".to_owned()].into();
        let asked: HashSet<String> = ["recorded".to_owned()].into();
        let (r, failed) = select(&list, None, &stored, &asked);
        assert_eq!(failed, [(6, "early".to_owned()), (9, "late".to_owned())]);
        assert_eq!((r.found, r.already), (2, 2));
        // The store's newest delivery id ends the walk too, even where GitHub saw a failure.
        let (_, failed) = select(&list, Some("early".into()), &stored, &asked);
        assert_eq!(failed, [(9, "late".to_owned())]);
    }

    #[test]
    fn the_record_keeps_its_newest_guids() {
        let dir = std::env::temp_dir().join(format!("hookwire-catchup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hookwire.db.github-catchup");
        let _ = std::fs::remove_file(&path);
        assert!(recall(&path).unwrap().is_empty());
        for i in 0..=2 * RECORD_KEEP {
            remember(&path, &format!("g-{i}")).unwrap();
        }
        let kept = recall(&path).unwrap();
        assert_eq!(kept.len(), 2 * RECORD_KEEP + 1, "all of them this time");
        let kept = recall(&path).unwrap();
        assert_eq!(kept.len(), RECORD_KEEP);
        let newest = format!("g-{}", 2 * RECORD_KEEP);
        assert!(kept.contains(&newest) && !kept.contains("g-0"));
        forget(&path, &newest).unwrap();
        let kept = recall(&path).unwrap();
        assert_eq!(kept.len(), RECORD_KEEP - 1);
        assert!(!kept.contains(&newest));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
