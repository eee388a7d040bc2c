//! `hookwire verify explain`: why a captured request does or does not verify. Prints the
//! scheme, the signed content's shape (parts and lengths, never secret material or computed
//! MACs) and which secret of the rotation set matched, or why none did.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookwire_core::axum::http::{HeaderMap, HeaderName, HeaderValue};
use hookwire_core::pipeline::Pipeline;
use hookwire_core::verify::{Request, VerifyError};

/// The forms of a headers file `parse_headers` reads, for its errors and `--help`.
pub const FORMATS: &str = "one `Name: value` header per line, as a vendor's delivery log shows them: \
GitHub's Recent Deliveries (a `Headers` heading, `Request URL: ...`, `Request method: ...`, then the headers; \
a `Payload` heading ends them), an HTTP request line first (`POST /hooks/x HTTP/1.1`), or `curl -v` output (`> ` lines)";

/// A captured request's headers: `Name: value` lines, as `curl -v` or a vendor's delivery log
/// shows them. A request line (`POST /hooks/x?a=1 HTTP/1.1`), or GitHub's `Request URL:` and
/// `Request method:` lines, give the method and query.
pub struct Captured {
    /// The headers.
    pub headers: HeaderMap,
    /// The method, POST unless a request line says otherwise.
    pub method: String,
    /// The query of the request line, if any.
    pub query: Option<String>,
}

/// Parses a headers file. Errors give the line number and what was expected, never the
/// line's text (a header may carry a credential: GitLab sends its secret verbatim).
pub fn parse_headers(text: &str) -> Result<Captured, String> {
    let mut captured = Captured {
        headers: HeaderMap::new(),
        method: "POST".into(),
        query: None,
    };
    let bad = |n: usize, what: &str| format!("line {}: {what}; expected {FORMATS}", n + 1);
    let mut started = false;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        // curl -v: "> " request lines; "< " response lines and "* " notes are not the request.
        let line = match line.get(..2) {
            _ if line == ">" => "",
            Some("> ") => &line[2..],
            Some("< ") | Some("* ") => continue,
            _ => line,
        };
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let heading = trimmed
            .trim_end_matches(':')
            .trim_matches('*')
            .to_ascii_lowercase();
        if !started && matches!(heading.as_str(), "headers" | "request headers" | "request") {
            continue;
        }
        if matches!(
            heading.as_str(),
            "payload" | "request payload" | "body" | "response"
        ) {
            // GitHub shows the payload below its headers: that goes in --body.
            break;
        }
        started = true;
        if trimmed.contains(" HTTP/") && captured.headers.is_empty() {
            let mut parts = trimmed.split_whitespace();
            captured.method = parts.next().unwrap_or("POST").to_owned();
            captured.query = parts
                .next()
                .and_then(|t| t.split_once('?'))
                .map(|(_, q)| q.to_owned());
            continue;
        }
        let (name, value) = trimmed
            .split_once(':')
            .ok_or_else(|| bad(n, "not `Name: value`"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("request url") {
            captured.query = value
                .split_once('?')
                .map(|(_, q)| q.split('#').next().unwrap_or(q).to_owned());
            continue;
        }
        if name.eq_ignore_ascii_case("request method") {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(bad(n, "`Request method:` without a method"));
            }
            captured.method = value.to_ascii_uppercase();
            continue;
        }
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad(n, "not a header name before the `:`"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| bad(n, "a header value with bytes a header cannot hold"))?;
        captured.headers.append(header, value);
    }
    if captured.headers.is_empty() {
        return Err(format!("no header found; expected {FORMATS}"));
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
    // `check`, not `verify`: explaining an SNS subscription confirmation must not confirm it.
    match verifier.check(&req) {
        Ok(v) if verifier.keyless() => {
            println!("verdict: verified with the vendor's published key");
            if let Some(at) = v.signed_at {
                let at = hookwire_core::verify::timestamp::from_millis(at);
                println!("signed at: {}", humantime::format_rfc3339_seconds(at));
            }
            Ok(true)
        }
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
        VerifyError::Untrusted(_) => {
            "the request names a sender, key location or claim the source does not accept: compare the topics / issuers / audience / email of the source with the lines above"
        }
        VerifyError::KeysUnavailable => {
            "the vendor's key could not be fetched: check outbound HTTPS to the vendor (and `fetch:` in config.yaml), and the log for the fetch error"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_github_recent_deliveries_as_shown() {
        // As GitHub's Recent Deliveries shows a delivery (Request tab), copied whole.
        let text = "Headers\n\nRequest URL: https://hooks.example.com/hooks/github?src=gh\nRequest method: POST\nAccept: */*\ncontent-type: application/json\nExpect: \nUser-Agent: GitHub-Hookshot/8f2a1c4\nX-GitHub-Delivery: 72d3162e-cc78-11e3-81ab-4c9367dc0958\nX-GitHub-Event: issues\nX-Hub-Signature-256: sha256=d57c68ca6f92289e6987922ff26938930f6e66a2d161ef06abdf1859230aa23c\n\nPayload\n\n{\"action\": \"opened\"}\n";
        let c = parse_headers(text).unwrap();
        assert_eq!(c.method, "POST");
        assert_eq!(c.query.as_deref(), Some("src=gh"));
        assert_eq!(c.headers["x-github-event"], "issues");
        assert_eq!(c.headers["expect"], "");
        assert!(!c.headers.contains_key("request url"));
        assert_eq!(c.headers.len(), 7);
    }

    #[test]
    fn reads_request_lines_tabs_and_curl_verbose() {
        let c = parse_headers("\tRequest URL: http://h/x\n\tRequest method: POST\n\tX-GitHub-Event: ping\n")
            .unwrap();
        assert_eq!(c.headers["x-github-event"], "ping");
        let c = parse_headers(
            "* Connected\n> POST /hooks/x?a=1 HTTP/1.1\n> Host: h\n> X-A: 1\n>\n< HTTP/1.1 401\n",
        )
        .unwrap();
        assert_eq!((c.method.as_str(), c.query.as_deref()), ("POST", Some("a=1")));
        assert_eq!(c.headers.len(), 2);
    }

    #[test]
    fn bad_input_says_which_line_and_what_format_is_wanted_never_the_text() {
        let e = parse_headers("X-Gitlab-Token: s3cr3t-value\nthis line has no colon s3cr3t\n")
            .err()
            .unwrap();
        assert!(e.starts_with("line 2: not `Name: value`; expected"), "{e}");
        assert!(e.contains("Recent Deliveries") && !e.contains("s3cr3t"), "{e}");
        let e = parse_headers("{\"action\": \"opened\"}\n").err().unwrap();
        assert!(e.contains("line 1"), "{e}");
        assert!(parse_headers("\n\n")
            .err()
            .unwrap()
            .starts_with("no header found"));
    }
}
