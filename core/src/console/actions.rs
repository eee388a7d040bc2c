//! What the console does (every one a POST): sign in and out, re-deliver an event, preview
//! a template on a stored payload (what `hookwire render` does), send a signed test event
//! (what `hookwire send` does, straight into the pipeline), revoke a token (`admin`).
//!
//! Each request past sign-in passes [`guard`]: same origin, a live sign-in whose token is
//! still good, and the sign-in's CSRF token. Each action is audited like a tool call (the
//! `hookwire::audit` log and the store's audit, attached to its event), as `console:<token>`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::{self, Viewer};
use super::html::{channel_block, esc, time};
use super::live::{describe, Row};
use super::pages::{result_page, seq_of, sign_in_page};
use super::{blocking, refusal, Console, FORM_TIMEOUT, MAX_FORM_BYTES};
use crate::http::BodyRefused;
use crate::metrics::{Observed, Outcome as Counted};
use crate::pipeline::{IngestError, Outcome};
use crate::store::{AuditEntry, TokenStatus};
use crate::verify::timestamp::millis;

/// The longest token accepted at sign-in (hookwire's are 47 characters).
const MAX_TOKEN_LEN: usize = 256;

/// A form's fields (the first of each name), from a body of at most [`MAX_FORM_BYTES`] that
/// arrives within [`FORM_TIMEOUT`].
async fn read_form(body: Body) -> Result<HashMap<String, String>, Response> {
    let bytes = crate::http::read_small_body(body, MAX_FORM_BYTES, FORM_TIMEOUT)
        .await
        .map_err(|e| match e {
            BodyRefused::TooLarge => refusal(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."),
            BodyRefused::TooSlow => refusal(StatusCode::REQUEST_TIMEOUT, "The form did not arrive in time."),
            BodyRefused::Broken => refusal(StatusCode::BAD_REQUEST, "The form could not be read."),
        })?;
    let mut fields = HashMap::new();
    for (k, v) in form_urlencoded::parse(&bytes) {
        fields.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    Ok(fields)
}

/// The checks of every state-changing request after sign-in; the viewer and the form.
async fn guard(
    c: &Arc<Console>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Viewer, HashMap<String, String>), Response> {
    if !auth::same_origin(headers) {
        return Err(refusal(StatusCode::FORBIDDEN, "Cross-site request refused."));
    }
    let Some(viewer) = c.viewer(headers).await else {
        return Err(refusal(
            StatusCode::FORBIDDEN,
            "Not signed in, or the sign-in ended.",
        ));
    };
    let form = read_form(body).await?;
    if !auth::csrf_ok(&viewer.sign_in, form.get("csrf").map(String::as_str)) {
        tracing::info!(subscriber = %viewer.token.name, "console: request without a valid CSRF token refused");
        return Err(refusal(
            StatusCode::FORBIDDEN,
            "Missing or wrong CSRF token: reload the page and try again.",
        ));
    }
    Ok((viewer, form))
}

/// Logs and stores one console action in the audit.
async fn audit(
    c: &Console,
    v: &Viewer,
    action: &str,
    seq: Option<u64>,
    arguments: serde_json::Value,
    outcome: &str,
    detail: &str,
) {
    let mut entry: AuditEntry = crate::tools::audit_entry(
        &format!("console:{}", v.token.name),
        action,
        seq.map(|s| s.to_string()).as_deref(),
        &arguments,
        outcome,
        detail,
        millis(SystemTime::now()),
    );
    entry.event_seq = seq;
    crate::tools::log_audit(&entry);
    let store = c.store.clone();
    blocking(move || store.record_audit(&entry)).await;
}

/// `POST /console/sign-in`: a token with `console` or `admin` starts a sign-in.
pub(super) async fn sign_in(State(c): State<Arc<Console>>, headers: HeaderMap, body: Body) -> Response {
    if !auth::same_origin(&headers) {
        return refusal(StatusCode::FORBIDDEN, "Cross-site request refused.");
    }
    let form = match read_form(body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let secret = form.get("token").map(|t| t.trim().to_owned()).unwrap_or_default();
    if secret.is_empty() || secret.len() > MAX_TOKEN_LEN {
        return sign_in_page(
            StatusCode::UNAUTHORIZED,
            Some("Unknown, revoked or expired token."),
        );
    }
    let store = c.store.clone();
    let Some(found) = blocking(move || store.tokens().find(&secret)).await else {
        return sign_in_page(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("Tokens cannot be checked right now."),
        );
    };
    let token = match found {
        Some(t) if t.status(millis(SystemTime::now())) == TokenStatus::Valid => t,
        _ => {
            tracing::info!("console: sign-in refused: unknown, revoked or expired token");
            return sign_in_page(
                StatusCode::UNAUTHORIZED,
                Some("Unknown, revoked or expired token."),
            );
        }
    };
    if !auth::may_sign_in(&token) {
        tracing::info!(subscriber = %token.name, "console: sign-in refused: no console permission");
        return sign_in_page(
            StatusCode::FORBIDDEN,
            Some("This token does not have the console (or admin) permission."),
        );
    }
    let (id, _) = match c.sign_ins.start(&token.name, Instant::now()) {
        Ok(x) => x,
        Err(auth::Full::TooMany) => {
            return sign_in_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("Too many console sign-ins at once; try again when one ends."),
            )
        }
    };
    tracing::info!(subscriber = %token.name, "console: signed in");
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, super::CONSOLE_PATH)]).into_response();
    if let Ok(v) = HeaderValue::from_str(&auth::set_cookie(&id, c.sign_ins.ttl(), c.secure)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `POST /console/sign-out`.
pub(super) async fn sign_out(State(c): State<Arc<Console>>, headers: HeaderMap, body: Body) -> Response {
    let (v, _) = match guard(&c, &headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Some(id) = auth::session_id(&headers) {
        c.sign_ins.end(&id);
    }
    tracing::info!(subscriber = %v.token.name, "console: signed out");
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/console/sign-in")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&auth::clear_cookie(c.secure)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `POST /console/events/{seq}/redeliver`: copies the event for one session (`to`) or
/// every session of its source.
pub(super) async fn redeliver(
    State(c): State<Arc<Console>>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (v, form) = match guard(&c, &headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(seq) = seq_of(&raw) else {
        return super::not_found();
    };
    let to = form
        .get("to")
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let store = c.store.clone();
    let target = to.clone();
    let Some(found) = blocking(move || {
        let rec = store.get(&seq.to_string())?;
        let token = match &target {
            Some(t) => store.tokens().get(t)?,
            None => None,
        };
        Ok((rec, token))
    })
    .await
    else {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "The store cannot be read right now.",
        );
    };
    let (Some(rec), token) = found else {
        return super::not_found();
    };
    if rec.stored.seq != seq || !v.sees(&rec.stored.source) {
        return super::not_found();
    }
    let args = json!({"to": to.as_deref().unwrap_or("every session")});
    if let Some(name) = &to {
        let fixed = c.live.fixed();
        let receives = token.is_some_and(|t| {
            t.status(millis(SystemTime::now())) == TokenStatus::Valid
                && t.sources.contains(&rec.stored.source)
        }) || fixed
            .iter()
            .any(|s| &s.name == name && s.sources.contains(&rec.stored.source));
        if !receives {
            audit(
                &c,
                &v,
                "console_redeliver",
                Some(seq),
                args,
                "refused",
                "no such session for this source",
            )
            .await;
            return refusal(
                StatusCode::BAD_REQUEST,
                &format!(
                    "No valid token named {name} receives source {}.",
                    rec.stored.source
                ),
            );
        }
    }
    let store = c.store.clone();
    let target = to.clone();
    let copied = tokio::task::spawn_blocking(move || store.replay_one(seq, target.as_deref())).await;
    let back = format!("/console/events/{seq}");
    match copied {
        Ok(Ok(Some(new_seq))) => {
            let who = to.as_deref().unwrap_or("every session of the source");
            audit(
                &c,
                &v,
                "console_redeliver",
                Some(seq),
                args,
                "ok",
                &format!("re-delivered as event {new_seq}"),
            )
            .await;
            tracing::info!(subscriber = %v.token.name, seq, new_seq, to = who, "console: event re-delivered");
            let _ = c.rows.send(Arc::new(Row {
                time: time(millis(SystemTime::now())),
                source: rec.stored.source.clone(),
                event: Some(rec.stored.event.clone()),
                delivery_id: Some(rec.stored.delivery_id.clone()),
                seq: Some(new_seq),
                outcome: format!("re-delivered to {who}"),
                kind: "ok",
                detail: Some(format!("copy of event {seq}, by {}", v.token.name)),
                sessions: Vec::new(),
            }));
            result_page(
                &v,
                "Re-delivered",
                &format!(
                    "<p id=\"result\">Event {seq} was queued again for {} as <a href=\"/console/events/{new_seq}\">event {new_seq}</a>.</p>",
                    esc(who)
                ),
                &back,
            )
        }
        Ok(Ok(None)) => super::not_found(),
        Ok(Err(e)) => {
            audit(
                &c,
                &v,
                "console_redeliver",
                Some(seq),
                args,
                "error",
                &e.to_string(),
            )
            .await;
            refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("Cannot re-deliver: {e}"),
            )
        }
        Err(_) => refusal(StatusCode::SERVICE_UNAVAILABLE, "Cannot re-deliver right now."),
    }
}

/// `POST /console/events/{seq}/preview`: renders the stored payload with the templates in
/// force now, as `hookwire render` does (not verified, nothing stored or sent).
pub(super) async fn preview(
    State(c): State<Arc<Console>>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (v, _) = match guard(&c, &headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(seq) = seq_of(&raw) else {
        return super::not_found();
    };
    let store = c.store.clone();
    let Some(Some(rec)) = blocking(move || store.get(&seq.to_string())).await else {
        return super::not_found();
    };
    if rec.stored.seq != seq || !v.sees(&rec.stored.source) {
        return super::not_found();
    }
    let pipeline = c.pipeline.load_full();
    let Some(index) = pipeline.source_index(&rec.stored.source) else {
        return refusal(
            StatusCode::NOT_FOUND,
            "The event's source is no longer configured.",
        );
    };
    let template = super::pages::template_for(&c, &rec.stored.source, &rec.stored.event);
    let stored_headers = rec.headers.clone();
    let payload = bytes::Bytes::from(rec.payload.clone());
    // Templates are CPU work on a payload a stranger chose: off the async workers.
    let rendered = tokio::task::spawn_blocking(move || {
        let mut h = HeaderMap::new();
        for (n, val) in &stored_headers {
            if let (Ok(n), Ok(val)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(val)) {
                h.append(n, val);
            }
        }
        pipeline
            .render_unverified(index, &crate::pipeline::Incoming::post(&h, &payload))
            .map(|e| e.map(|e| e.line))
    })
    .await;
    let message = match rendered {
        Ok(Ok(Some(line))) => {
            let block = channel_block(&line).unwrap_or_default();
            let same = line == rec.stored.line;
            format!(
                "<p>Template: <code>{}</code>. {}</p><pre class=\"channel\" id=\"preview-block\">{}</pre>",
                esc(template.as_deref().unwrap_or("(plain summary)")),
                if same {
                    "It renders exactly as stored."
                } else {
                    "It renders differently from the stored notification (templates or the payload's time changed)."
                },
                esc(&block)
            )
        }
        Ok(Ok(None)) => "<p>Acknowledged only: this event never reaches a session.</p>".into(),
        Ok(Err(e)) => format!("<p class=\"error\">Cannot render: {}</p>", esc(&e.to_string())),
        Err(_) => "<p class=\"error\">The render failed.</p>".into(),
    };
    audit(
        &c,
        &v,
        "console_preview",
        Some(seq),
        json!({"template": template}),
        "ok",
        "",
    )
    .await;
    result_page(
        &v,
        &format!("Preview of event {seq}"),
        &message,
        &format!("/console/events/{seq}"),
    )
}

/// A test event's type: what a vendor's event header may hold.
fn valid_event_name(e: &str) -> bool {
    !e.is_empty()
        && e.len() <= 100
        && e.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'/'))
}

/// A fresh delivery id for a test event.
fn test_delivery_id() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    format!("console-test-{}", hex::encode(bytes))
}

/// How a test event's ingest is counted, with its delivery id.
fn counted(r: &Result<Outcome, IngestError>) -> (Counted, Option<String>) {
    match r {
        Ok(Outcome::Queued { delivery_id, .. }) => (Counted::Accepted, Some(delivery_id.clone())),
        Ok(Outcome::Folded { delivery_id }) => (Counted::Folded, Some(delivery_id.clone())),
        Ok(Outcome::Duplicate { delivery_id }) => (Counted::Replay, Some(delivery_id.clone())),
        Ok(Outcome::Filtered { .. }) => (Counted::Filtered, None),
        Ok(_) => (Counted::Acknowledged, None),
        Err(IngestError::Verify(crate::verify::VerifyError::Stale)) => (Counted::Replay, None),
        Err(IngestError::Verify(_)) => (Counted::BadSignature, None),
        Err(IngestError::BadJson(_) | IngestError::Identify(_)) => (Counted::BadRequest, None),
        Err(IngestError::Busy) => (Counted::Throttled, None),
        Err(IngestError::Sink(crate::sink::SinkError::Full)) => (Counted::Throttled, None),
        Err(IngestError::Sink(_)) => (Counted::Failed, None),
    }
}

/// `POST /console/sources/{name}/test`: signs the payload with the source's first secret as
/// its vendor would and hands it to the pipeline, which verifies, renders, stores and
/// delivers it like any webhook.
pub(super) async fn send_test(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (v, form) = match guard(&c, &headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !v.sees(&name) {
        return super::not_found();
    }
    let pipeline = c.pipeline.load_full();
    let Some(index) = pipeline.source_index(&name) else {
        return super::not_found();
    };
    let src = &pipeline.config().sources[index];
    if src.schedule.is_some() {
        return refusal(StatusCode::BAD_REQUEST, "A schedule has no webhook to test.");
    }
    let event = form.get("event").map(|e| e.trim()).filter(|e| !e.is_empty());
    if event.is_some_and(|e| !valid_event_name(e)) {
        return refusal(
            StatusCode::BAD_REQUEST,
            "The event type may hold letters, digits and . _ - : / only.",
        );
    }
    let payload = form.get("payload").cloned().unwrap_or_default().into_bytes();
    if payload.len() > src.max_body_bytes {
        return refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "The payload is over the source's body limit ({} bytes).",
                src.max_body_bytes
            ),
        );
    }
    let id = test_delivery_id();
    let now = SystemTime::now();
    let url = pipeline
        .public_url(index, None)
        .unwrap_or_else(|| format!("http://{}{}", pipeline.config().listen, src.path));
    let out = crate::verify::Outgoing {
        body: &payload,
        method: "POST",
        url: &url,
        id: &id,
        now,
    };
    let args = json!({"source": name, "event": event, "delivery_id": id, "payload_bytes": payload.len()});
    let mut pairs = src.adapter.naming_headers(event, &id);
    match src.adapter.verifier().sign(&out, 0) {
        Ok(signed) => pairs.extend(signed),
        Err(e) => {
            audit(&c, &v, "console_send_test", None, args, "refused", &e.to_string()).await;
            return refusal(
                StatusCode::BAD_REQUEST,
                &format!("Cannot sign for this source: {e}"),
            );
        }
    }
    if !pairs.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type")) {
        let json = serde_json::from_slice::<serde::de::IgnoredAny>(&payload).is_ok();
        let kind = if json {
            "application/json"
        } else {
            "application/x-www-form-urlencoded"
        };
        pairs.push(("content-type".into(), kind.into()));
    }
    let mut h = HeaderMap::new();
    for (n, val) in &pairs {
        if let (Ok(n), Ok(val)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(val)) {
            h.append(n, val);
        }
    }
    let incoming = crate::ingress::OwnedIncoming {
        headers: h,
        body: payload.into(),
        method: Method::POST,
        query: None,
        now,
    };
    let result = pipeline.clone().ingest(index, incoming).await;
    let (outcome, delivery_id) = counted(&result);
    pipeline.metrics(index).count(outcome);
    crate::metrics::publish(|| Observed {
        at_ms: millis(SystemTime::now()),
        source: name.clone(),
        outcome,
        delivery_id: delivery_id.clone(),
        detail: Some(format!("test event sent from the console by {}", v.token.name)),
    });
    let (said, _) = describe(outcome, delivery_id.is_some());
    let seq = match &delivery_id {
        Some(d) => {
            let store = c.store.clone();
            let d = d.clone();
            blocking(move || store.get(&d))
                .await
                .flatten()
                .filter(|r| r.stored.source == name)
                .map(|r| r.stored.seq)
        }
        None => None,
    };
    let detail = match &result {
        Err(e) => format!("{said}: {e}"),
        Ok(_) => said.to_owned(),
    };
    let ok = if result.is_ok() { "ok" } else { "error" };
    audit(&c, &v, "console_send_test", seq, args, ok, &detail).await;
    let link = seq
        .map(|s| format!(" <a href=\"/console/events/{s}\">Open event {s}</a>."))
        .unwrap_or_default();
    result_page(
        &v,
        "Test event sent",
        &format!(
            "<p id=\"result\">Delivery <code>{}</code>: {}.{link}</p>",
            esc(&id),
            esc(&detail)
        ),
        "/console/sessions",
    )
}

/// `POST /console/tokens/{name}/revoke` (`admin` only): its sessions end within a second,
/// and its console sign-ins at once.
pub(super) async fn revoke(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (v, _) = match guard(&c, &headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let args = json!({"token": name});
    if !v.admin() {
        audit(&c, &v, "console_revoke_token", None, args, "refused", "not admin").await;
        return refusal(
            StatusCode::FORBIDDEN,
            "Only a token with the admin permission manages tokens.",
        );
    }
    let store = c.store.clone();
    let target = name.clone();
    let revoked = blocking(move || store.tokens().revoke(&target, millis(SystemTime::now()))).await;
    match revoked {
        Some(true) => {
            c.sign_ins.end_token(&name);
            audit(&c, &v, "console_revoke_token", None, args, "ok", "revoked").await;
            tracing::info!(subscriber = %v.token.name, token = %name, "console: token revoked");
            result_page(
                &v,
                "Token revoked",
                &format!(
                    "<p id=\"result\">Token <strong>{}</strong> is revoked; its sessions end.</p>",
                    esc(&name)
                ),
                "/console/sessions",
            )
        }
        Some(false) => super::not_found(),
        None => {
            audit(
                &c,
                &v,
                "console_revoke_token",
                None,
                args,
                "error",
                "store failed",
            )
            .await;
            refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "The store cannot be written right now.",
            )
        }
    }
}
