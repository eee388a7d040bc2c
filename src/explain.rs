//! `hookwire verify explain`: why a captured request does or does not verify. Prints the
//! scheme, the signed content's shape (parts and lengths, never secret material or computed
//! MACs) and which secret of the rotation set matched, or why none did.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookwire_core::axum::http::{HeaderMap, HeaderName, HeaderValue};
use hookwire_core::pipeline::Pipeline;
use hookwire_core::verify::{Request, VerifyError};

/// A captured request's headers: `Name: value` lines, as `curl -v` or a vendor's delivery log
/// shows them. A request line (`POST /hooks/x?a=1 HTTP/1.1`) gives the method and query.
pub struct Captured {
    /// The headers.
    pub headers: HeaderMap,
    /// The method, POST unless a request line says otherwise.
    pub method: String,
    /// The query of the request line, if any.
    pub query: Option<String>,
}

/// Parses a headers file.
pub fn parse_headers(text: &str) -> Result<Captured, String> {
    let mut captured = Captured {
        headers: HeaderMap::new(),
        method: "POST".into(),
        query: None,
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if n == 0 && line.contains(" HTTP/") {
            let mut parts = line.split_whitespace();
            captured.method = parts.next().unwrap_or("POST").to_owned();
            if let Some((_, q)) = parts.next().and_then(|t| t.split_once('?')) {
                captured.query = Some(q.to_owned());
            }
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("line {}: not `Name: value`", n + 1))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("line {}: bad header name `{}`", n + 1, name.trim()))?;
        let value =
            HeaderValue::from_str(value.trim()).map_err(|_| format!("line {}: bad header value", n + 1))?;
        captured.headers.append(name, value);
    }
    Ok(captured)
}

/// Explains one captured request against a source; `Ok(true)` when it verifies.
pub fn explain(
    pipeline: &Pipeline,
    source: &str,
    headers_file: &Path,
    body_file: &Path,
    now: Option<u64>,
) -> Result<bool, String> {
    let index = crate::source_index(pipeline, source)?;
    let src = &pipeline.config().sources[index];
    let text = std::fs::read_to_string(headers_file)
        .map_err(|e| format!("cannot read {}: {e}", headers_file.display()))?;
    let captured = parse_headers(&text)?;
    let body = std::fs::read(body_file).map_err(|e| format!("cannot read {}: {e}", body_file.display()))?;
    let url = pipeline.public_url(index, captured.query.as_deref());
    let now = now
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
        .unwrap_or_else(SystemTime::now);
    let req = Request {
        headers: &captured.headers,
        body: &body,
        method: &captured.method,
        url: url.as_deref(),
        now,
    };
    let verifier = src.adapter.verifier();
    println!("source: {} (type {})", src.name, src.type_name);
    for line in verifier.explain(&req) {
        println!("{line}");
    }
    match verifier.verify(&req) {
        Ok(v) => {
            println!(
                "verdict: verified by secret #{} of the rotation set",
                v.secret + 1
            );
            if let Some(at) = v.signed_at {
                let at = hookwire_core::verify::timestamp::from_millis(at);
                println!("signed at: {}", humantime::format_rfc3339_seconds(at));
            }
            Ok(true)
        }
        Err(e) => {
            println!("verdict: NOT verified: {e}");
            println!("hint: {}", hint(e));
            Ok(false)
        }
    }
}

fn hint(e: VerifyError) -> &'static str {
    match e {
        VerifyError::NoSecret => "the source has no secret loaded",
        VerifyError::Missing => "a header the scheme needs is absent; compare the header names above with the capture",
        VerifyError::Malformed => {
            "the signature header is there but not in the expected form (prefix, encoding, length): is this the right source type?"
        }
        VerifyError::Mismatch => {
            "no secret produces this signature: check the secret (and its rotation), and that the body file holds the exact bytes sent (no added or trimmed newline)"
        }
        VerifyError::Stale => "the signature is good but the signed timestamp is outside the window; pass --now to explain an old capture",
        VerifyError::Unconfigured(_) => "set public_url on the source to the URL the vendor posts to",
    }
}
