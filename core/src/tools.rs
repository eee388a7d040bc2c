//! Reply and action tools: the MCP tools the channel offers Claude, each behind one of the
//! session's permissions (the Channels overview's `permissions` list) and, for actions, an
//! allowlist of resources from `tools:` in config.yaml.
//!
//! | permission | tools |
//! |---|---|
//! | `create-issues` | `github_create_issue` |
//! | `post-comments` | `github_comment` |
//! | `add-labels` | `github_add_labels` |
//! | `post-slack-message` | `slack_post_message` |
//! | `read-events` | `get_event`, `list_events` |
//!
//! A tool whose permission is not granted is not listed, and calling it answers a tool error
//! (`isError: true`); so does a call outside the allowlist, and one whose arguments break a
//! limit of the tool's published `inputSchema` (lengths, counts, patterns, ranges: checked
//! against that same schema, `schema`, before anything else). Nothing is sent in any case.
//! Every call is logged (tracing, target `hookwire::audit`) and, with a store, recorded in its
//! `audit` table, where `get_event` shows it with the event it answered. A channel linked to a
//! gateway has no store: it hands each entry to an [`AuditSink`] (the link), and the gateway
//! stores it (`audit` frames of `hookwire.v1`, see [`crate::gateway`]).
//!
//! Calls run on the tokio runtime (GitHub, async) or its blocking pool (Slack, the store), so
//! the stdin reader is never held up; the answer goes to the channel writer.
//!
//! The read tools read through an [`EventReader`]: [`StoreReader`] in local mode (the store,
//! limited to the session's sources), the gateway link in gateway mode
//! (`crate::link::LinkReader`, whose gateway answers with a [`StoreReader`] for the token's
//! sources: the results are the same JSON either way).
//!
//! By seam: `catalogue` (each tool, its permission and schema), `dispatch` (running a
//! call for one session), `audit`, `reads`; the `tools:` settings are config
//! ([`crate::config::tools`]).

mod audit;
mod catalogue;
mod dispatch;
pub mod github;
mod reads;
mod schema;
pub mod slack;

pub use audit::{audit_entry, log_audit, resolve_event, AuditSink};
pub use catalogue::Tool;
pub use dispatch::{StoreLatch, Toolbox};
pub use reads::{EventReader, EventView, ReadError, StoreReader};

pub(crate) use crate::config::tools::split_repo;
pub use crate::config::tools::{
    needs, GithubSettings, RepoPattern, SlackAuth, SlackSettings, ToolsSettings, GITHUB_API, SLACK_API,
};

/// Largest payload `get_event` returns whole; longer ones are cut with a mark.
pub const MAX_PAYLOAD: usize = 1024 * 1024;
/// Most events `list_events` returns.
pub const MAX_LIST: usize = 100;
/// An audit entry's `event_ref`, at most (characters; longer is cut with `…`).
pub const AUDIT_EVENT_REF: usize = 200;
/// An audit entry's `detail`, at most (characters; longer is cut with `…`).
pub const AUDIT_DETAIL: usize = 500;
/// An audit entry's `arguments` JSON, at most (bytes, after long strings are cut to 200
/// characters and arrays to 20 items); a longer one is kept as a JSON string of its first
/// 200 characters.
pub const AUDIT_ARGUMENTS: usize = 8 * 1024;
/// The outcomes an audit entry can have.
pub const AUDIT_OUTCOMES: [&str; 3] = ["ok", "refused", "error"];
/// Longest identifier argument (a channel, an event id, a source), in characters.
pub const MAX_NAME: usize = 256;

/// Who the session is and what it may do.
#[derive(Debug, Clone)]
pub struct Session {
    /// `local`, or the gateway token's name: recorded as "who" in the audit.
    pub subscriber: String,
    /// The sources it receives (the read tools see only these).
    pub sources: Vec<String>,
    /// Its permissions.
    pub permissions: Vec<String>,
}
