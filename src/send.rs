//! `hookwire send`: sign a payload exactly as the source's vendor would and POST it, to test a
//! real set-up end to end (tunnel, proxy, config) without waiting for the vendor.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookwire_core::pipeline::Pipeline;
use hookwire_core::verify::Outgoing;

/// What to send.
pub struct SendArgs<'a> {
    /// Source name.
    pub source: &'a str,
    /// Payload file, sent byte for byte.
    pub payload: &'a Path,
    /// Event type for vendors that name it in a header.
    pub event: Option<&'a str>,
    /// Where to POST; default the source's path on the configured listen address.
    pub url: Option<&'a str>,
    /// Extra headers, `Name: value`.
    pub headers: &'a [String],
}

/// A fresh delivery id shaped like a UUID (unique per send, not secret).
fn delivery_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let h = hookwire_core::verify::sha256_hex(format!("{nanos}-{}", std::process::id()).as_bytes());
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// What the endpoint answered.
pub struct Sent {
    /// `POST <url> (delivery <id>)`, the status line and the response body.
    pub report: String,
    /// Whether the status was 2xx.
    pub accepted: bool,
    /// What to do about a refusal, when the status says something.
    pub hint: Option<String>,
}

/// Signs and posts; returns the response, 2xx or not.
pub fn send(pipeline: &Pipeline, args: &SendArgs<'_>) -> Result<Sent, String> {
    let index = crate::source_index(pipeline, args.source)?;
    let src = &pipeline.config().sources[index];
    let body =
        std::fs::read(args.payload).map_err(|e| format!("cannot read {}: {e}", args.payload.display()))?;
    let target = match args.url {
        Some(u) => u.to_owned(),
        None => format!("http://{}{}", pipeline.config().listen, src.path),
    };
    // The URL the vendor signs is the one it posts to; behind a proxy that is public_url.
    let signed_url = match (args.url, &src.public_url) {
        (None, Some(public)) => public.clone(),
        _ => target.clone(),
    };
    let id = delivery_id();
    let out = Outgoing {
        body: &body,
        method: "POST",
        url: &signed_url,
        id: &id,
        now: SystemTime::now(),
    };
    let mut headers = src.adapter.naming_headers(args.event, &id);
    headers.extend(src.adapter.verifier().sign(&out, 0).map_err(|e| e.to_string())?);
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        let json = serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok();
        let kind = if json {
            "application/json"
        } else {
            "application/x-www-form-urlencoded"
        };
        headers.push(("content-type".into(), kind.into()));
    }
    for h in args.headers {
        let (n, v) = h
            .split_once(':')
            .ok_or_else(|| format!("--header `{h}` is not NAME:VALUE"))?;
        headers.push((n.trim().to_owned(), v.trim().to_owned()));
    }
    let event_hint = missing_event_header(src, args, &headers);
    if let Some(h) = &event_hint {
        eprintln!("hookwire send: {h}");
    }
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    let mut request = agent.post(&target);
    for (n, v) in &headers {
        request = request.set(n, v);
    }
    let response = match request.send_bytes(&body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) if t.kind() == ureq::ErrorKind::Io => {
            return Err(format!(
                "POST {target}: {t}\nhint: the connection broke while the payload was sent: a server may answer a request it refuses before reading the payload (404 for a path it does not serve) and close; check --url and the source's path ({})",
                src.path
            ))
        }
        Err(e) => return Err(format!("POST {target}: {e}")),
    };
    let code = response.status();
    let status = format!("{code} {}", response.status_text());
    let text = response.into_string().unwrap_or_default();
    let hint = match code {
        200..=299 => None,
        400 => event_hint.or_else(|| {
            Some("the endpoint could not read the request: is the payload what this vendor sends, with the headers it sends (--header)?".into())
        }),
        401 => Some(format!(
            "the signature was refused: the endpoint's secret for this path differs from the one `{}` reads here, or the path belongs to a source of another type",
            src.name
        )),
        403 => Some("the endpoint refuses this client's address (allow_from)".into()),
        404 => Some(format!(
            "nothing is configured at {target}: check --url, and the source's path ({}) in the endpoint's config",
            src.path
        )),
        413 => Some("the payload is over the source's body limit (its max_body_bytes:, limits.max_body_bytes, or its vendor's documented maximum)".into()),
        503 => Some("the endpoint is busy or its store is full; it asks to retry later".into()),
        _ => None,
    };
    Ok(Sent {
        report: format!("POST {target} (delivery {id})\n{status}\n{}", text.trim_end()),
        accepted: (200..300).contains(&code),
        hint,
    })
}

/// When the source names its events from a request header (GitHub's `X-GitHub-Event`) and
/// neither `--event` nor `--header` gave that header: what to pass.
fn missing_event_header(
    src: &hookwire_core::config::Source,
    args: &SendArgs<'_>,
    headers: &[(String, String)],
) -> Option<String> {
    if args.event.is_some() {
        return None;
    }
    let with: Vec<_> = src.adapter.naming_headers(Some("x"), "x");
    let without = src.adapter.naming_headers(None, "x");
    let (name, _) = with.into_iter().find(|h| !without.contains(h))?;
    if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
        return None;
    }
    Some(format!(
        "no --event: source `{}` ({}) takes the event type from the {name} header, which is not sent; pass --event with the value the vendor sends there (GitHub: the event name, e.g. --event issues)",
        src.name, src.type_name
    ))
}
