//! The console's pages, rendered on the server: the sign-in form, the log (recent events,
//! then live rows), an event's detail and the sessions and sources. Each shows only the
//! sources its viewer sees; an event of another source is "not found", not "forbidden".

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::auth::Viewer;
use super::html::{channel_block, csrf_field, esc, page, pretty_payload, time, Frame};
use super::{blocking, html, not_found, session_states, to_sign_in, Console};
use crate::store::{ListQuery, Stored, Subscription, TokenStatus};

/// Events the log starts with.
const FIRST_PAGE: usize = 100;
/// A payload longer than this is cut on the detail page.
const MAX_SHOWN_PAYLOAD: usize = 256 * 1024;

pub(super) fn frame(v: &Viewer) -> Frame<'_> {
    Frame {
        name: &v.token.name,
        admin: v.admin(),
        csrf: &v.sign_in.csrf,
    }
}

/// A page for a signed-in viewer.
pub(super) fn viewer_page(v: &Viewer, title: &str, body: &str) -> Response {
    html(StatusCode::OK, page(title, Some(&frame(v)), body))
}

/// The sign-in form, with a message when a sign-in was just refused.
pub(super) fn sign_in_page(status: StatusCode, message: Option<&str>) -> Response {
    let mut body = String::from("<section class=\"card narrow\"><h1>Sign in</h1>");
    if let Some(m) = message {
        let _ = write!(body, "<p class=\"error\" role=\"alert\">{}</p>", esc(m));
    }
    body.push_str(
        "<form method=\"post\" action=\"/console/sign-in\" class=\"stack\">\
         <label for=\"token\">Token <small>(with the <code>console</code> or <code>admin</code> permission)</small></label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required autofocus spellcheck=\"false\">\
         <button type=\"submit\">Sign in</button></form>\
         <p class=\"hint\">Create one with <code>hookwire token create NAME --sources ... --permissions console</code>.</p></section>",
    );
    html(status, page("Sign in", None, &body))
}

/// `GET /console/sign-in`.
pub(super) async fn sign_in_form(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if c.viewer(&headers).await.is_some() {
        return Redirect::to(super::CONSOLE_PATH).into_response();
    }
    sign_in_page(StatusCode::OK, None)
}

/// What an event's row says of it, from the store alone.
fn stored_outcome(e: &Stored, replay_of: Option<u64>) -> (String, &'static str) {
    match (replay_of, &e.target) {
        (Some(of), Some(t)) => (format!("re-delivery of {of} to {t}"), "ok"),
        (Some(of), None) => (format!("re-delivery of {of}"), "ok"),
        (None, _) if e.folded => ("folded".into(), "quiet"),
        _ => ("accepted".into(), "ok"),
    }
}

/// One row of the log: the same cells the live rows get (console.js).
fn log_row(out: &mut String, e: &Stored, replay_of: Option<u64>, sessions: &[(String, &str)]) {
    let (outcome, kind) = stored_outcome(e, replay_of);
    let sessions: Vec<String> = sessions.iter().map(|(n, s)| format!("{n}: {s}")).collect();
    let _ = write!(
        out,
        "<tr class=\"{kind}\"><td data-label=\"Time\"><time>{}</time></td><td data-label=\"Source\">{}</td>\
         <td data-label=\"Event\">{}</td><td data-label=\"Delivery\"><a href=\"/console/events/{}\">{}</a></td>\
         <td data-label=\"Outcome\">{}</td><td data-label=\"Sessions\">{}</td></tr>",
        time(e.received_ms),
        esc(&e.source),
        esc(&e.event),
        e.seq,
        esc(&e.delivery_id),
        esc(&outcome),
        esc(&sessions.join(", "))
    );
}

/// `GET /console`: recent events, then live rows.
pub(super) async fn log(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some(v) = c.viewer(&headers).await else {
        return to_sign_in();
    };
    let visible = c.visible_sources(&v);
    let store = c.store.clone();
    let admin = v.admin();
    let connected = c.live.connected();
    let Some((events, origins, tokens, acked)) = blocking(move || {
        let mut events = store.list(&ListQuery {
            source: None,
            since_ms: None,
            limit: FIRST_PAGE * 4,
        })?;
        events.retain(|e| admin || visible.contains(&e.source));
        events.truncate(FIRST_PAGE);
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        let origins = store.replay_origins(&seqs)?;
        let tokens = store.tokens().list()?;
        let acked: HashMap<String, u64> = store.cursors()?.into_iter().map(|c| (c.name, c.acked)).collect();
        Ok((events, origins, tokens, acked))
    })
    .await
    else {
        return super::refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "The store cannot be read right now.",
        );
    };
    let mut body = String::from(
        "<h1>Deliveries</h1><p class=\"status\" id=\"live-status\" role=\"status\" aria-live=\"polite\">Live updates need JavaScript; reload for new events.</p>\
         <div class=\"table-wrap\"><table id=\"log\" data-live=\"/console/live\"><caption>Newest first: stored events, then every request as it arrives (refused ones without their bodies)</caption>\
         <thead><tr><th scope=\"col\">Time</th><th scope=\"col\">Source</th><th scope=\"col\">Event</th><th scope=\"col\">Delivery</th><th scope=\"col\">Outcome</th><th scope=\"col\">Sessions</th></tr></thead><tbody>",
    );
    let subs = super::subscribers(&tokens, c.live.fixed());
    for e in &events {
        let states = session_states(e, &subs, &acked, &connected);
        log_row(&mut body, e, origins.get(&e.seq).copied(), &states);
    }
    body.push_str("</tbody></table></div>");
    if events.is_empty() {
        body.push_str("<p id=\"empty\" class=\"hint\">No events stored yet for your sources. New ones appear here as they arrive.</p>");
    }
    viewer_page(&v, "Deliveries", &body)
}

/// The template an event renders with now: the first of its candidates that exists
/// (`<type>/<event>.<action>`, `<type>/<event>`, `<type>/default`, `default`).
pub(super) fn template_for(c: &Console, source: &str, event: &str) -> Option<String> {
    let p = c.pipeline.load();
    let src = p.config().sources.iter().find(|s| s.name == source)?;
    let t = &src.templates;
    let base = event.split('.').next().unwrap_or(event);
    [
        format!("{t}/{event}"),
        format!("{t}/{base}"),
        format!("{t}/default"),
        "default".to_owned(),
    ]
    .into_iter()
    .find(|name| p.templates().has(name))
}

/// Parses a store id from a path.
pub(super) fn seq_of(raw: &str) -> Option<u64> {
    raw.parse::<u64>().ok().filter(|&s| s > 0)
}

/// `GET /console/events/{seq}`.
pub(super) async fn detail(
    State(c): State<Arc<Console>>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(v) = c.viewer(&headers).await else {
        return to_sign_in();
    };
    let Some(seq) = seq_of(&raw) else {
        return not_found();
    };
    let store = c.store.clone();
    let connected = c.live.connected();
    let Some(found) = blocking(move || {
        let Some(rec) = store.get(&seq.to_string())? else {
            return Ok(None);
        };
        let audit = store.audit_for(seq)?;
        let tokens = store.tokens().list()?;
        let acked: HashMap<String, u64> = store.cursors()?.into_iter().map(|c| (c.name, c.acked)).collect();
        Ok(Some((rec, audit, tokens, acked)))
    })
    .await
    else {
        return super::refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "The store cannot be read right now.",
        );
    };
    let Some((rec, audit, tokens, acked)) = found else {
        return not_found();
    };
    let e = &rec.stored;
    if e.seq != seq || !v.sees(&e.source) {
        return not_found();
    }
    let (outcome, _) = stored_outcome(e, rec.replay_of);
    let template = template_for(&c, &e.source, &e.event);
    let mut b = String::new();
    let _ = write!(
        b,
        "<p class=\"crumbs\"><a href=\"/console\">Deliveries</a> › event {seq}</p>\
         <h1>{} <small>{}</small></h1><dl class=\"facts\">\
         <dt>Store id</dt><dd>{seq}</dd><dt>Source</dt><dd>{}</dd><dt>Delivery id</dt><dd><code>{}</code></dd>\
         <dt>Received</dt><dd><time>{}</time></dd><dt>Outcome</dt><dd>{}</dd>\
         <dt>Template</dt><dd>{}</dd></dl>",
        esc(&e.event),
        esc(&e.source),
        esc(&e.source),
        esc(&e.delivery_id),
        time(e.received_ms),
        esc(&outcome),
        match &template {
            Some(t) => format!("<code>{}</code> <small>(the one that renders it now)</small>", esc(t)),
            None => "a plain summary (no template matches)".into(),
        }
    );
    b.push_str("<h2>Sessions</h2>");
    let subs = super::subscribers(&tokens, c.live.fixed());
    let states = session_states(e, &subs, &acked, &connected);
    if states.is_empty() {
        b.push_str("<p class=\"hint\">No session receives this event.</p>");
    } else {
        b.push_str("<ul class=\"sessions\">");
        for (name, state) in &states {
            let _ = write!(b, "<li><strong>{}</strong>: {state}</li>", esc(name));
        }
        b.push_str("</ul>");
    }
    b.push_str("<h2 id=\"claude\">What Claude sees</h2>");
    match channel_block(&e.line) {
        Some(block) => {
            let _ = write!(
                b,
                "<pre class=\"channel\" id=\"channel-block\">{}</pre>",
                esc(&block)
            );
        }
        None => b.push_str("<p class=\"hint\">A notification hookwire cannot read back.</p>"),
    }
    let (payload, cut) = pretty_payload(&rec.payload, MAX_SHOWN_PAYLOAD);
    let _ = write!(
        b,
        "<h2>Request</h2><details open id=\"payload\"><summary>Payload ({} bytes{})</summary><pre>{}</pre></details>",
        rec.payload.len(),
        if cut { ", cut for display" } else { "" },
        esc(&payload)
    );
    b.push_str("<details><summary>Headers (credentials are never stored)</summary><div class=\"table-wrap\"><table><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Value</th></tr></thead><tbody>");
    for (n, val) in &rec.headers {
        let _ = write!(
            b,
            "<tr><td>{}</td><td><code>{}</code></td></tr>",
            esc(n),
            esc(val)
        );
    }
    b.push_str("</tbody></table></div></details>");
    b.push_str("<h2>Actions taken</h2>");
    if audit.is_empty() {
        b.push_str("<p class=\"hint\">No tool call or console action names this event.</p>");
    } else {
        b.push_str("<div class=\"table-wrap\"><table id=\"audit\"><thead><tr><th scope=\"col\">Time</th><th scope=\"col\">By</th><th scope=\"col\">Action</th><th scope=\"col\">Outcome</th><th scope=\"col\">Detail</th></tr></thead><tbody>");
        for a in &audit {
            let _ = write!(
                b,
                "<tr><td data-label=\"Time\"><time>{}</time></td><td data-label=\"By\">{}</td><td data-label=\"Action\"><code>{}</code> <small>{}</small></td><td data-label=\"Outcome\">{}</td><td data-label=\"Detail\">{}</td></tr>",
                time(a.at_ms),
                esc(&a.subscriber),
                esc(&a.tool),
                esc(&a.arguments),
                esc(&a.outcome),
                esc(&a.detail)
            );
        }
        b.push_str("</tbody></table></div>");
    }
    b.push_str("<h2>Act</h2><div class=\"actions\">");
    let receivers: Vec<&Subscription> = subs.iter().filter(|s| s.sources.contains(&e.source)).collect();
    if receivers.is_empty() {
        b.push_str("<p class=\"hint\">No valid token receives this source: nothing to re-deliver to.</p>");
    } else {
        let _ = write!(
            b,
            "<form method=\"post\" action=\"/console/events/{seq}/redeliver\" class=\"inline\">{}\
             <label for=\"to\">Re-deliver to</label><select id=\"to\" name=\"to\">",
            csrf_field(&v.sign_in.csrf)
        );
        for t in &receivers {
            let _ = write!(b, "<option value=\"{0}\">{0}</option>", esc(&t.name));
        }
        b.push_str("<option value=\"\">every session of the source</option></select><button type=\"submit\">Re-deliver</button></form>");
    }
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/console/events/{seq}/preview\" class=\"inline\">{}\
         <button type=\"submit\" class=\"secondary\">Preview with the current templates</button></form></div>",
        csrf_field(&v.sign_in.csrf)
    );
    viewer_page(&v, &format!("Event {seq}"), &b)
}

fn now() -> i64 {
    crate::verify::timestamp::millis(std::time::SystemTime::now())
}

/// `GET /console/sessions`: tokens and their sessions, and the sources.
pub(super) async fn sessions(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some(v) = c.viewer(&headers).await else {
        return to_sign_in();
    };
    let visible = c.visible_sources(&v);
    let admin = v.admin();
    let store = c.store.clone();
    let shown = visible.clone();
    let fixed = c.live.fixed();
    let Some(rows) = blocking(move || {
        let mut rows = Vec::new();
        // A fixed subscriber (local mode's session) shows as a token that cannot be revoked.
        let fixed = fixed.into_iter().map(|s| {
            let t = crate::store::Token {
                name: s.name,
                sources: s.sources,
                permissions: Vec::new(),
                created_ms: 0,
                expires_ms: None,
                revoked_ms: None,
            };
            (t, true)
        });
        let tokens = store.tokens().list()?.into_iter().map(|t| (t, false));
        for (t, is_fixed) in fixed.chain(tokens) {
            if !admin && !t.sources.iter().any(|s| shown.contains(s)) {
                continue;
            }
            let backlog = store.backlog(&Subscription {
                name: t.name.clone(),
                sources: t.sources.clone(),
            })?;
            rows.push((t, backlog, is_fixed));
        }
        Ok(rows)
    })
    .await
    else {
        return super::refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "The store cannot be read right now.",
        );
    };
    let connected = c.live.connected();
    let now = now();
    let mut b = String::from(
        "<h1>Sessions and sources</h1><h2>Tokens</h2><div class=\"table-wrap\"><table id=\"tokens\"><thead><tr>\
         <th scope=\"col\">Token</th><th scope=\"col\">Sources</th><th scope=\"col\">Permissions</th><th scope=\"col\">Status</th>\
         <th scope=\"col\">Session</th><th scope=\"col\">Backlog</th><th scope=\"col\">Oldest unacknowledged</th>",
    );
    if admin {
        b.push_str("<th scope=\"col\">Manage</th>");
    }
    b.push_str("</tr></thead><tbody>");
    for (t, backlog, is_fixed) in &rows {
        let status = t.status(now);
        let sources: Vec<&str> = t
            .sources
            .iter()
            .filter(|s| admin || visible.contains(s))
            .map(String::as_str)
            .collect();
        let session = if connected.contains(&t.name) {
            "connected"
        } else {
            "not connected"
        };
        let oldest = backlog
            .oldest_ms
            .map(|ms| format!("<time>{}</time>", time(ms)))
            .unwrap_or_else(|| "—".into());
        let _ = write!(
            b,
            "<tr><td data-label=\"Token\"><strong>{}</strong></td><td data-label=\"Sources\">{}</td><td data-label=\"Permissions\">{}</td>\
             <td data-label=\"Status\">{status}</td><td data-label=\"Session\">{session}</td><td data-label=\"Backlog\">{}</td><td data-label=\"Oldest unacknowledged\">{oldest}</td>",
            esc(&t.name),
            esc(&sources.join(", ")),
            esc(&t.permissions.join(", ")),
            backlog.events
        );
        if admin {
            if status == TokenStatus::Valid && t.name != v.token.name && !is_fixed {
                let _ = write!(
                    b,
                    "<td data-label=\"Manage\"><form method=\"post\" action=\"/console/tokens/{}/revoke\">{}<button type=\"submit\" class=\"danger\">Revoke {}</button></form></td>",
                    esc(&urlencode(&t.name)),
                    csrf_field(&v.sign_in.csrf),
                    esc(&t.name)
                );
            } else {
                b.push_str("<td data-label=\"Manage\">—</td>");
            }
        }
        b.push_str("</tr>");
    }
    b.push_str("</tbody></table></div><h2>Sources</h2><p class=\"hint\">Requests counted by outcome since the gateway started.</p><div class=\"table-wrap\"><table id=\"sources\"><thead><tr><th scope=\"col\">Source</th><th scope=\"col\">Type</th><th scope=\"col\">Path</th><th scope=\"col\">Recent outcomes</th><th scope=\"col\">Test</th></tr></thead><tbody>");
    let counts = c.counts.lock().expect("counts poisoned").clone();
    let p = c.pipeline.load();
    for s in p.config().sources.iter().filter(|s| visible.contains(&s.name)) {
        let mut seen: Vec<(&&str, &u64)> = counts
            .get(&s.name)
            .map(|m| m.iter().collect())
            .unwrap_or_default();
        seen.sort();
        let outcomes = if seen.is_empty() {
            "none yet".to_owned()
        } else {
            seen.iter()
                .map(|(o, n)| format!("{o}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = write!(
            b,
            "<tr><td data-label=\"Source\"><strong>{}</strong></td><td data-label=\"Type\">{}</td><td data-label=\"Path\"><code>{}</code></td><td data-label=\"Recent outcomes\">{}</td><td data-label=\"Test\">",
            esc(&s.name),
            esc(&s.type_name),
            esc(&s.path),
            esc(&outcomes)
        );
        if s.schedule.is_some() {
            b.push_str("a schedule: nothing to send</td></tr>");
            continue;
        }
        let id = format!("test-{}", urlencode(&s.name));
        let _ = write!(
            b,
            "<details><summary>Send a signed test event</summary><form method=\"post\" action=\"/console/sources/{}/test\" class=\"stack\">{}\
             <label for=\"{id}-event\">Event type <small>(for vendors that name it in a header, e.g. <code>issues</code>)</small></label>\
             <input id=\"{id}-event\" name=\"event\" maxlength=\"100\">\
             <label for=\"{id}-payload\">Payload</label><textarea id=\"{id}-payload\" name=\"payload\" rows=\"6\" required>{{}}</textarea>\
             <button type=\"submit\">Sign and send</button></form></details></td></tr>",
            esc(&urlencode(&s.name)),
            csrf_field(&v.sign_in.csrf),
            id = esc(&id)
        );
    }
    b.push_str("</tbody></table></div>");
    viewer_page(&v, "Sessions and sources", &b)
}

/// A path segment, percent-encoded.
pub(super) fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A result page after an action.
pub(super) fn result_page(v: &Viewer, title: &str, message_html: &str, back: &str) -> Response {
    viewer_page(
        v,
        title,
        &format!(
            "<section class=\"card\"><h1>{}</h1>{message_html}<p><a href=\"{}\">Back</a></p></section>",
            html::esc(title),
            html::esc(back)
        ),
    )
}
