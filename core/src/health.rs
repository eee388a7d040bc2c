//! The operations endpoints on the webhook listener: `/healthz` (the process answers),
//! `/readyz` (the store takes writes and a config is loaded) and, where enabled,
//! `/metrics` (Prometheus text, [`crate::metrics`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::store::{Store, Subscription};

/// `/healthz`.
pub const HEALTH_PATH: &str = "/healthz";
/// `/readyz`.
pub const READY_PATH: &str = "/readyz";
/// `/metrics`.
pub const METRICS_PATH: &str = "/metrics";

/// The subscribers whose backlog `/metrics` reports, asked at each scrape (tokens come and
/// go while the gateway runs).
pub type Subscribers = Box<dyn Fn(&dyn Store) -> Vec<Subscription> + Send + Sync>;

/// What the endpoints look at.
pub struct Probes {
    store: Arc<dyn Store>,
    subscribers: Subscribers,
    metrics: bool,
}

impl Probes {
    /// Probes over `store`; `/metrics` is served only when `metrics` is set.
    pub fn new(store: Arc<dyn Store>, subscribers: Subscribers, metrics: bool) -> Arc<Self> {
        Arc::new(Probes {
            store,
            subscribers,
            metrics,
        })
    }

    /// The routes, to merge into a listener's router.
    pub fn router(self: &Arc<Self>) -> Router {
        let mut r = Router::new()
            .route(HEALTH_PATH, get(|| async { "ok\n" }))
            .route(READY_PATH, get(ready));
        if self.metrics {
            r = r.route(METRICS_PATH, get(metrics));
        }
        r.with_state(self.clone())
    }
}

/// Every valid token as a subscriber: the gateway's `/metrics` backlog.
pub fn token_subscribers() -> Subscribers {
    Box::new(|store: &dyn Store| {
        let now = crate::verify::timestamp::millis(std::time::SystemTime::now());
        match store.tokens().list() {
            Ok(tokens) => tokens
                .into_iter()
                .filter(|t| t.status(now) == crate::store::TokenStatus::Valid)
                .map(|t| Subscription {
                    name: t.name,
                    sources: t.sources,
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list tokens for /metrics");
                Vec::new()
            }
        }
    })
}

async fn ready(State(p): State<Arc<Probes>>) -> Response {
    let store = p.store.clone();
    let probe = tokio::task::spawn_blocking(move || store.writable()).await;
    match probe {
        Ok(Ok(())) => (StatusCode::OK, "ready\nstore: writable\nconfig: loaded\n").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the store does not take writes");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready\nstore: {e}\nconfig: loaded\n"),
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready\nstore: probe failed\n",
        )
            .into_response(),
    }
}

async fn metrics(State(p): State<Arc<Probes>>) -> Response {
    let page = tokio::task::spawn_blocking(move || {
        let subs = (p.subscribers)(p.store.as_ref());
        crate::metrics::render(Some(p.store.as_ref()), &subs)
    })
    .await
    .unwrap_or_default();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        page,
    )
        .into_response()
}
