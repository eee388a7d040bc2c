//! Running a call: the tools granted to one session, the allowlist checks, the call itself
//! (off the stdin reader), and its audit record.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde_json::{json, Value};

use super::audit::{audit_entry, log_audit, resolve_event, AuditSink};
use super::catalogue::{
    args, AddLabelsArgs, CommentArgs, CreateIssueArgs, GetEventArgs, ListEventsArgs, SlackArgs, Tool,
};
use super::reads::{now_ms, EventReader, ReadError, StoreReader};
use super::{github, schema, slack, Session, ToolsSettings};
use crate::channel::{Reply, Tools};
use crate::store::{AuditEntry, Store};

/// The tools of one channel session.
#[derive(Clone)]
pub struct Toolbox(Arc<Inner>);

pub(super) struct Inner {
    session: Session,
    granted: Vec<Tool>,
    github: Option<github::GitHub>,
    slack: Option<slack::Slack>,
    /// Where the audit is stored (local mode).
    store: OnceLock<Arc<dyn Store>>,
    /// Where the audit goes to be stored (gateway mode).
    audit: Option<Arc<dyn AuditSink>>,
    /// Where the read tools read.
    reader: OnceLock<Arc<dyn EventReader>>,
    /// Set for a toolbox made with [`Toolbox::opening`]: `true` once its store is open. Calls
    /// wait for it; if it never opens, they fail.
    opened: Option<tokio::sync::watch::Receiver<bool>>,
    runtime: tokio::runtime::Handle,
}

/// Opens the store of a toolbox made with [`Toolbox::opening`]. Dropped without
/// [`StoreLatch::open`] (the store would not open), the calls waiting for it fail.
pub struct StoreLatch {
    toolbox: Toolbox,
    opened: tokio::sync::watch::Sender<bool>,
}

impl StoreLatch {
    /// The store is open: the read tools read it, the audit is kept in it, and waiting calls go on.
    pub fn open(self, store: Arc<dyn Store>) {
        let inner = &self.toolbox.0;
        let reader = StoreReader::new(store.clone(), inner.session.sources.clone());
        let _ = inner.reader.set(Arc::new(reader));
        let _ = inner.store.set(store);
        self.opened.send_replace(true);
    }
}

impl fmt::Debug for Toolbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Toolbox")
            .field("session", &self.0.session)
            .field("granted", &self.0.granted)
            .finish_non_exhaustive()
    }
}

impl Toolbox {
    /// The tools `session`'s permissions grant, with `settings` for credentials and
    /// allowlists. A granted action whose settings are missing, or a read tool without a
    /// `store`, is left out with a warning (local mode reports the former as a config error
    /// first). The read tools read `store` (limited to the session's sources), where the
    /// audit is also kept. Calls run on `runtime`.
    pub fn new(
        session: Session,
        settings: &ToolsSettings,
        store: Option<Arc<dyn Store>>,
        runtime: tokio::runtime::Handle,
    ) -> Toolbox {
        let reader = store
            .clone()
            .map(|s| Arc::new(StoreReader::new(s, session.sources.clone())) as Arc<dyn EventReader>);
        Self::build(session, settings, store, reader, None, runtime, None)
    }

    /// [`Toolbox::new`] before its store is open (a local channel answers `initialize`
    /// meanwhile): the same tools, whose calls wait for [`StoreLatch::open`].
    pub fn opening(
        session: Session,
        settings: &ToolsSettings,
        runtime: tokio::runtime::Handle,
    ) -> (Toolbox, StoreLatch) {
        let (opened, waiting) = tokio::sync::watch::channel(false);
        let toolbox = Self::build(session, settings, None, None, None, runtime, Some(waiting));
        let latch = StoreLatch {
            toolbox: toolbox.clone(),
            opened,
        };
        (toolbox, latch)
    }

    /// [`Toolbox::new`] without a store (gateway mode): the read tools read through
    /// `reader` (the gateway link; `None`: not offered), and each audit entry is logged and
    /// handed to `audit` (the link, which sends it to the gateway to be stored; `None`: only
    /// logged). Only calls of known tools are handed over.
    pub fn linked(
        session: Session,
        settings: &ToolsSettings,
        reader: Option<Arc<dyn EventReader>>,
        audit: Option<Arc<dyn AuditSink>>,
        runtime: tokio::runtime::Handle,
    ) -> Toolbox {
        Self::build(session, settings, None, reader, audit, runtime, None)
    }

    fn build(
        session: Session,
        settings: &ToolsSettings,
        store: Option<Arc<dyn Store>>,
        reader: Option<Arc<dyn EventReader>>,
        audit: Option<Arc<dyn AuditSink>>,
        runtime: tokio::runtime::Handle,
        opened: Option<tokio::sync::watch::Receiver<bool>>,
    ) -> Toolbox {
        // A store still opening will be read.
        let reads = reader.is_some() || opened.is_some();
        // The GitHub client spawns its workers on the runtime it is built in.
        let _runtime = runtime.enter();
        let granted_perm = |p: &str| session.permissions.iter().any(|g| g == p);
        let github = if ["create-issues", "post-comments", "add-labels"]
            .iter()
            .any(|p| granted_perm(p))
        {
            match settings.github.as_ref().map(github::GitHub::new) {
                Some(Ok(g)) => Some(g),
                Some(Err(e)) => {
                    tracing::error!(error = %e, "GitHub tools unavailable");
                    None
                }
                None => None,
            }
        } else {
            None
        };
        let slack = if granted_perm("post-slack-message") {
            settings.slack.as_ref().map(slack::Slack::new)
        } else {
            None
        };
        let mut granted = Vec::new();
        for tool in Tool::ALL {
            if !granted_perm(tool.permission()) {
                continue;
            }
            let available = match tool {
                Tool::CreateIssue | Tool::Comment | Tool::AddLabels => github.is_some(),
                Tool::SlackPost => slack.is_some(),
                Tool::GetEvent | Tool::ListEvents => reads,
            };
            if available {
                granted.push(tool);
            } else {
                let why = match tool {
                    Tool::GetEvent | Tool::ListEvents => "no event store or gateway to read from",
                    Tool::SlackPost => "no tools.slack in this configuration",
                    _ => "no usable tools.github in this configuration",
                };
                tracing::warn!(
                    tool = tool.name(),
                    permission = tool.permission(),
                    why,
                    "granted tool not offered"
                );
            }
        }
        for p in &session.permissions {
            if !crate::store::token::PERMISSIONS.contains(&p.as_str()) {
                tracing::warn!(permission = %p, "unknown permission ignored");
            }
        }
        tracing::info!(tools = ?granted.iter().map(|t| t.name()).collect::<Vec<_>>(), "reply and action tools");
        Toolbox(Arc::new(Inner {
            session,
            granted,
            github,
            slack,
            store: store.map(OnceLock::from).unwrap_or_default(),
            audit,
            reader: reader.map(OnceLock::from).unwrap_or_default(),
            opened,
            runtime,
        }))
    }

    /// The tools offered.
    pub fn granted(&self) -> &[Tool] {
        &self.0.granted
    }
}

impl Tools for Toolbox {
    fn definitions(&self) -> Vec<Value> {
        self.0.granted.iter().map(|t| t.definition()).collect()
    }

    fn call(&self, name: &str, arguments: Value, reply: Reply) {
        let inner = self.0.clone();
        let name = name.to_owned();
        let tool = Tool::by_name(&name).filter(|t| inner.granted.contains(t));
        let Some(tool) = tool else {
            let message = match Tool::by_name(&name) {
                Some(t) if !inner.session.permissions.iter().any(|p| p == t.permission()) => format!(
                    "{name} is not allowed: this session's channel permissions do not include `{}`; nothing was done",
                    t.permission()
                ),
                Some(_) => format!("{name} is not available in this hookwire configuration; nothing was done"),
                None => format!("unknown tool `{name}`; nothing was done"),
            };
            let entry = inner.entry(&name, &arguments, "refused", &message);
            let rt = inner.runtime.clone();
            rt.spawn(async move {
                reply.send(tool_error(&message));
                // Recorded once the store is open (only logged if it never opens).
                inner.ready().await;
                let _ = tokio::task::spawn_blocking(move || inner.record(entry)).await;
            });
            return;
        };
        let rt = inner.runtime.clone();
        rt.spawn(async move {
            if !inner.ready().await {
                let entry = inner.entry(tool.name(), &arguments, "error", NOT_OPEN);
                let rec = inner.clone();
                let _ = tokio::task::spawn_blocking(move || rec.record(entry)).await;
                reply.send(tool_error(NOT_OPEN));
                return;
            }
            let outcome = inner.run(tool, arguments.clone()).await;
            let (status, detail, result) = match outcome {
                Ok(Outcome::Done(v)) => ("ok", v.to_string(), tool_ok(&v)),
                Ok(Outcome::Read(v)) => ("ok", "read".to_owned(), tool_ok(&v)),
                Err(Refusal::Refused(m)) => ("refused", m.clone(), tool_error(&m)),
                Err(Refusal::Failed(m)) => ("error", m.clone(), tool_error(&m)),
            };
            let entry = inner.entry(tool.name(), &arguments, status, &detail);
            let rec = inner.clone();
            let _ = tokio::task::spawn_blocking(move || rec.record(entry)).await;
            reply.send(result);
        });
    }
}

pub(super) enum Outcome {
    /// An action's result, recorded in the audit.
    Done(Value),
    /// A read's result: not copied into the audit.
    Read(Value),
}

pub(super) enum Refusal {
    /// Outside the allowlist or bad arguments: nothing was sent.
    Refused(String),
    /// Sent, and it failed.
    Failed(String),
}

impl From<ReadError> for Refusal {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Refused(m) => Refusal::Refused(m),
            ReadError::Failed(m) => Refusal::Failed(m),
        }
    }
}

/// A call's answer when the local store never opened (the session was told why, in
/// `hookwire.not_started`).
const NOT_OPEN: &str = "hookwire could not open its event store, so its tools do not run; nothing was done";

impl Inner {
    /// Waits for a store still opening; `false` if it never will.
    async fn ready(&self) -> bool {
        match &self.opened {
            None => true,
            Some(opened) => opened.clone().wait_for(|open| *open).await.is_ok(),
        }
    }

    async fn run(self: &Arc<Self>, tool: Tool, arguments: Value) -> Result<Outcome, Refusal> {
        // The published schema is the one enforced: a limit it shows is never skipped here.
        schema::check(&tool.definition()["inputSchema"], &arguments).map_err(|e| {
            Refusal::Refused(format!(
                "invalid arguments for {}: {e}; nothing was done",
                tool.name()
            ))
        })?;
        match tool {
            Tool::CreateIssue => {
                let a: CreateIssueArgs = args(tool, arguments).map_err(Refusal::Refused)?;
                let _ = a.event_id;
                let gh = self.github.as_ref().expect("granted");
                let target = gh.scope(&a.repo).map_err(Refusal::Refused)?;
                if a.title.trim().is_empty() {
                    return Err(Refusal::Refused("the title is empty".into()));
                }
                gh.create_issue(&target, &a.title, &a.body, &a.labels)
                    .await
                    .map(Outcome::Done)
                    .map_err(Refusal::Failed)
            }
            Tool::Comment => {
                let a: CommentArgs = args(tool, arguments).map_err(Refusal::Refused)?;
                let _ = a.event_id;
                let gh = self.github.as_ref().expect("granted");
                let target = gh.scope(&a.repo).map_err(Refusal::Refused)?;
                if a.body.trim().is_empty() {
                    return Err(Refusal::Refused("the body is empty".into()));
                }
                gh.comment(&target, a.number, &a.body)
                    .await
                    .map(Outcome::Done)
                    .map_err(Refusal::Failed)
            }
            Tool::AddLabels => {
                let a: AddLabelsArgs = args(tool, arguments).map_err(Refusal::Refused)?;
                let _ = a.event_id;
                let gh = self.github.as_ref().expect("granted");
                let target = gh.scope(&a.repo).map_err(Refusal::Refused)?;
                if a.labels.iter().any(|l| l.trim().is_empty()) {
                    return Err(Refusal::Refused("a label name is empty".into()));
                }
                gh.add_labels(&target, a.number, &a.labels)
                    .await
                    .map(Outcome::Done)
                    .map_err(Refusal::Failed)
            }
            Tool::SlackPost => {
                let a: SlackArgs = args(tool, arguments).map_err(Refusal::Refused)?;
                let _ = a.event_id;
                let slack = self.slack.clone().expect("granted");
                // What is sent is the allowlist entry the channel matched, byte for byte.
                let channel = slack.scope(&a.channel).map_err(Refusal::Refused)?.to_owned();
                if a.text.trim().is_empty() {
                    return Err(Refusal::Refused("the text is empty".into()));
                }
                tokio::task::spawn_blocking(move || slack.post(&channel, &a.text, a.thread_ts.as_deref()))
                    .await
                    .map_err(|_| Refusal::Failed("the Slack call panicked".into()))?
                    .map(Outcome::Done)
                    .map_err(Refusal::Failed)
            }
            Tool::GetEvent => {
                let a: GetEventArgs = args(tool, arguments).map_err(Refusal::Refused)?;
                self.reader()
                    .get_event(a.id)
                    .await
                    .map(Outcome::Read)
                    .map_err(Refusal::from)
            }
            Tool::ListEvents => {
                let a: ListEventsArgs = args(tool, arguments).map_err(Refusal::Refused)?;
                self.reader()
                    .list_events(a.source, a.limit)
                    .await
                    .map(Outcome::Read)
                    .map_err(Refusal::from)
            }
        }
    }

    fn reader(&self) -> &Arc<dyn EventReader> {
        self.reader.get().expect("read tools need an event reader")
    }

    fn entry(&self, tool: &str, arguments: &Value, outcome: &str, detail: &str) -> AuditEntry {
        let event_ref = arguments.get("event_id").and_then(Value::as_str);
        audit_entry(
            &self.session.subscriber,
            tool,
            event_ref,
            arguments,
            outcome,
            detail,
            now_ms(),
        )
    }

    /// Logs the call and stores it with the event it answered (blocking: the store), or, in
    /// gateway mode, hands it to the link for the gateway to store.
    fn record(&self, mut entry: AuditEntry) {
        if let (Some(store), Some(r)) = (self.store.get(), &entry.event_ref) {
            entry.event_seq = resolve_event(store.as_ref(), &self.session.sources, r);
        }
        log_audit(&entry);
        // A name Claude made up is counted as `unknown`: labels stay a fixed set.
        let tool = Tool::by_name(&entry.tool).map_or("unknown", Tool::name);
        crate::metrics::tool_call(tool, &entry.outcome);
        if let Some(store) = self.store.get() {
            if let Err(e) = store.record_audit(&entry) {
                tracing::error!(error = %e, "cannot store the audit entry");
            }
        }
        // The gateway stores calls of known tools only (a made-up name stays in this log).
        if let (Some(sink), Some(_)) = (&self.audit, Tool::by_name(&entry.tool)) {
            sink.send(&entry);
        }
    }
}

pub(super) fn tool_ok(v: &Value) -> Value {
    json!({"content": [{"type": "text", "text": v.to_string()}], "isError": false})
}

pub(super) fn tool_error(message: &str) -> Value {
    json!({"content": [{"type": "text", "text": message}], "isError": true})
}
