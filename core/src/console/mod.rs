//! The delivery console: the pages a team opens first when a webhook "did not arrive",
//! served by `hookwire serve` at `/console` (config `console:`, [`crate::config::ConsoleSettings`]).
//!
//! - `auth`: sign-in with a token holding `console` (its own sources) or `admin` (every
//!   source, and token management); the session cookie, CSRF and origin checks;
//! - `pages`: the server-rendered pages (the log, an event's detail, sessions and sources);
//! - `live`: the live log, counted requests as server-sent events;
//! - `actions`: re-deliver, send a signed test event, preview a template, revoke a token,
//!   each audited like the tools;
//! - `html`: escaping and the page frame; `assets`: the CSS and JS, embedded in the binary.
//!
//! Every response carries a strict Content-Security-Policy (nothing but the console's own
//! assets runs or loads), `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`
//! and `Cache-Control: no-store`. A form is at most 256 KiB, refused from its declared length
//! before a byte is read, and must arrive within 10 s: sign-in is open to strangers.

mod actions;
mod assets;
mod auth;
mod html;
mod live;
mod pages;

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use self::auth::{SignIns, Viewer};
use crate::config::ConsoleSettings;
use crate::store::Store;

pub use self::auth::COOKIE;

/// Where the console is served.
pub const CONSOLE_PATH: &str = "/console";

/// The policy of every console response: the console's own CSS and JS only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The largest form body accepted (a test event's payload is the largest field).
const MAX_FORM_BYTES: usize = 256 * 1024;

/// How long a form's body may take to arrive: sign-in is open to strangers, and a body that
/// trickles in would hold its connection.
const FORM_TIMEOUT: Duration = Duration::from_secs(10);

/// Which sessions are live: the console's connection state.
pub trait LiveSessions: Send + Sync + 'static {
    /// The token names with a session connected now.
    fn connected(&self) -> Vec<String>;

    /// Subscribers that are not tokens and are always there (local mode's `local`).
    fn fixed(&self) -> Vec<crate::store::Subscription> {
        Vec::new()
    }
}

/// Local mode's one session (`hookwire channel`): its subscription, always connected.
pub struct LocalSession(pub crate::store::Subscription);

impl LiveSessions for LocalSession {
    fn connected(&self) -> Vec<String> {
        vec![self.0.name.clone()]
    }

    fn fixed(&self) -> Vec<crate::store::Subscription> {
        vec![self.0.clone()]
    }
}

/// The console's state: the store, the pipeline in force, and the sign-ins.
pub struct Console {
    store: Arc<dyn Store>,
    pipeline: crate::ingress::Current,
    live: Arc<dyn LiveSessions>,
    sign_ins: SignIns,
    secure: bool,
    /// Live-log rows, for every open stream.
    rows: tokio::sync::broadcast::Sender<Arc<live::Row>>,
    /// Live-log streams open, bounded.
    streams: AtomicUsize,
    max_streams: usize,
    /// Per source, requests counted by outcome since the gateway started.
    counts: Mutex<HashMap<String, HashMap<&'static str, u64>>>,
}

impl Console {
    /// A console over `store` and `pipeline`. The cookie is `Secure` when `settings` say so
    /// or, by default, when the gateway has `tls:` or a source's `public_url` is https. Call
    /// inside a tokio runtime: the live log's feed starts here.
    pub fn new(
        store: Arc<dyn Store>,
        pipeline: crate::ingress::Current,
        live: Arc<dyn LiveSessions>,
        settings: &ConsoleSettings,
    ) -> Arc<Self> {
        let secure = settings.secure_cookie.unwrap_or_else(|| {
            let p = pipeline.load();
            let c = p.config();
            c.tls.is_some()
                || c.sources
                    .iter()
                    .any(|s| s.public_url.as_deref().is_some_and(|u| u.starts_with("https://")))
        });
        let console = Arc::new(Console {
            store,
            pipeline,
            live,
            sign_ins: SignIns::new(
                settings.max_sessions,
                Duration::from_secs(settings.session_ttl_secs),
            ),
            secure,
            rows: tokio::sync::broadcast::channel(live::ROW_BACKLOG).0,
            streams: AtomicUsize::new(0),
            max_streams: settings.max_sessions.saturating_mul(4),
            counts: Mutex::new(HashMap::new()),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(live::feed(Arc::downgrade(&console), crate::metrics::observe()));
        }
        console
    }

    /// Every console route, under [`CONSOLE_PATH`], with the security headers.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/console", get(pages::log))
            .route("/console/", get(|| async { Redirect::to(CONSOLE_PATH) }))
            .route(
                "/console/sign-in",
                get(pages::sign_in_form).post(actions::sign_in),
            )
            .route("/console/sign-out", post(actions::sign_out))
            .route("/console/live", get(live::stream))
            .route("/console/events/{seq}", get(pages::detail))
            .route("/console/events/{seq}/redeliver", post(actions::redeliver))
            .route("/console/events/{seq}/preview", post(actions::preview))
            .route("/console/sources/{name}/test", post(actions::send_test))
            .route("/console/tokens/{name}/revoke", post(actions::revoke))
            .route("/console/sessions", get(pages::sessions))
            .route("/console/assets/{file}", get(assets::serve))
            // Not a fallback: the gateway's router has the webhooks' (and one is allowed).
            .route(
                "/console/{*rest}",
                get(|| async { not_found() }).post(|| async { not_found() }),
            )
            .with_state(self.clone())
            .layer(axum::middleware::map_response(secure_headers))
    }

    /// The viewer a request's cookie names, with its token as it stands now (a token no
    /// longer valid, or without the permission, ends its sign-ins).
    async fn viewer(self: &Arc<Self>, headers: &HeaderMap) -> Option<Viewer> {
        self.viewer_by_id(&auth::session_id(headers)?).await
    }

    /// [`Console::viewer`] by session id.
    async fn viewer_by_id(self: &Arc<Self>, id: &str) -> Option<Viewer> {
        let sign_in = self.sign_ins.get(id, Instant::now())?;
        let this = self.clone();
        let s = sign_in.clone();
        let token =
            tokio::task::spawn_blocking(move || auth::current_token(&*this.store, &this.sign_ins, &s))
                .await
                .ok()??;
        Some(Viewer { sign_in, token })
    }

    /// The sources a viewer sees, in config order.
    fn visible_sources(&self, viewer: &Viewer) -> Vec<String> {
        let p = self.pipeline.load();
        p.config()
            .sources
            .iter()
            .map(|s| s.name.clone())
            .filter(|s| viewer.sees(s))
            .collect()
    }

    /// Counts a request for the sessions page.
    fn count(&self, source: &str, outcome: &'static str) {
        let mut counts = self.counts.lock().expect("counts poisoned");
        *counts
            .entry(source.to_owned())
            .or_default()
            .entry(outcome)
            .or_default() += 1;
    }
}

/// The security headers every console response carries.
async fn secure_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// An HTML response.
fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, Body::from(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// A short page saying why not.
fn refusal(status: StatusCode, message: &str) -> Response {
    html(
        status,
        html::page(
            "Refused",
            None,
            &format!(
                "<h1>{}</h1><p>{}</p><p><a href=\"/console/sign-in\">Sign in</a></p>",
                status.as_u16(),
                html::esc(message)
            ),
        ),
    )
}

fn not_found() -> Response {
    refusal(StatusCode::NOT_FOUND, "Nothing here.")
}

/// The answer to a page request without a valid sign-in.
fn to_sign_in() -> Response {
    Redirect::to("/console/sign-in").into_response()
}

/// A store call off the async workers; `None` when it failed (logged).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Option<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "console: store call failed");
            None
        }
        Err(_) => None,
    }
}

/// The state of each session that receives `e`: `acknowledged` (its cursor is past it),
/// `in flight` (connected, not yet acknowledged) or `waiting` (not connected). A token that
/// has never had a session (a viewer's console-only token) is none of these: its first session
/// starts at the head, so it waits for no event stored before.
fn session_states(
    e: &crate::store::Stored,
    subscribers: &[crate::store::Subscription],
    acked: &HashMap<String, u64>,
    connected: &[String],
) -> Vec<(String, &'static str)> {
    subscribers
        .iter()
        .filter(|sub| sub.wants(e))
        .filter(|sub| acked.contains_key(&sub.name) || connected.contains(&sub.name))
        .map(|sub| {
            let state = if acked.get(&sub.name).is_some_and(|&a| a >= e.seq) {
                "acknowledged"
            } else if connected.contains(&sub.name) {
                "in flight"
            } else {
                "waiting"
            };
            (sub.name.clone(), state)
        })
        .collect()
}

/// Who receives events: the valid tokens, then the fixed subscribers.
fn subscribers(
    tokens: &[crate::store::Token],
    fixed: Vec<crate::store::Subscription>,
) -> Vec<crate::store::Subscription> {
    let now = crate::verify::timestamp::millis(std::time::SystemTime::now());
    tokens
        .iter()
        .filter(|t| t.status(now) == crate::store::TokenStatus::Valid)
        .map(|t| crate::store::Subscription {
            name: t.name.clone(),
            sources: t.sources.clone(),
        })
        .chain(fixed)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Stored, Subscription};

    #[test]
    fn a_token_that_never_had_a_session_waits_for_nothing() {
        let e = Stored {
            seq: 7,
            source: "github".into(),
            event: "issues.opened".into(),
            delivery_id: "d-7".into(),
            received_ms: 0,
            line: Vec::new(),
            folded: false,
            target: None,
        };
        let sub = |name: &str, source: &str| Subscription {
            name: name.into(),
            sources: vec![source.into()],
        };
        let subs = [
            sub("behind", "github"),
            sub("past", "github"),
            sub("connecting", "github"),
            sub("viewer", "github"),
            sub("other", "ops"),
        ];
        let acked = HashMap::from([("behind".to_owned(), 5), ("past".to_owned(), 9)]);
        let connected = ["connecting".to_owned()];
        assert_eq!(
            session_states(&e, &subs, &acked, &connected),
            [
                ("behind".to_owned(), "waiting"),
                ("past".to_owned(), "acknowledged"),
                ("connecting".to_owned(), "in flight"),
            ]
        );
    }
}
