//! The console's CSS and JS, embedded in the binary (the console loads nothing from
//! anywhere else and works offline). Served with long-lived caching: they change only with
//! the binary.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The stylesheet: responsive, light and dark (`prefers-color-scheme`), visible focus.
const CSS: &str = include_str!("assets/console.css");
/// The script: the live log (EventSource, rows built with `textContent` only).
const JS: &str = include_str!("assets/console.js");

/// `GET /console/assets/{file}`.
pub(super) async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return super::not_found(),
    };
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}
