//! Building the console's HTML: escaping (every value from a payload, a header, a token name
//! or a template is hostile and goes through [`esc`]), the page frame, and the pieces the
//! pages share (a time, the channel block as Claude Code shows it).

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

/// `s` escaped for HTML text and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Unix milliseconds as RFC 3339, seconds.
pub fn time(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Who is signed in, for the frame's header.
pub struct Frame<'a> {
    /// The token's name.
    pub name: &'a str,
    /// Whether it has `admin`.
    pub admin: bool,
    /// The sign-in's CSRF token (the sign-out form carries it).
    pub csrf: &'a str,
}

/// A whole page: `body` is already HTML; `title` is escaped here.
pub fn page(title: &str, frame: Option<&Frame<'_>>, body: &str) -> String {
    let mut h = String::with_capacity(body.len() + 1024);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{} · hookwire console</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\">\
         <script src=\"/console/assets/console.js\" defer></script></head><body>\
         <a class=\"skip\" href=\"#main\">Skip to content</a><header class=\"top\">\
         <a class=\"brand\" href=\"/console\">hookwire</a>",
        esc(title)
    );
    if let Some(f) = frame {
        let _ = write!(
            h,
            "<nav aria-label=\"Console\"><a href=\"/console\">Log</a><a href=\"/console/sessions\">Sessions</a></nav>\
             <form class=\"who\" method=\"post\" action=\"/console/sign-out\">{}\
             <span title=\"signed in as\">{}{}</span><button type=\"submit\">Sign out</button></form>",
            csrf_field(f.csrf),
            esc(f.name),
            if f.admin { " <span class=\"badge\">admin</span>" } else { "" }
        );
    }
    let _ = writeln!(
        h,
        "</header><main id=\"main\" tabindex=\"-1\">{body}</main></body></html>"
    );
    h
}

/// The hidden CSRF field of a form.
pub fn csrf_field(csrf: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(csrf))
}

/// A notification line as Claude Code shows it to the model: `<channel source="hookwire"
/// k="v">content</channel>` (docs/channel-contract.md), escaped for the page. `None` when the
/// line is not a channel notification.
pub fn channel_block(line: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let params = v.get("params")?;
    let content = params.get("content")?.as_str()?;
    let mut tag = String::from("<channel source=\"hookwire\"");
    if let Some(meta) = params.get("meta").and_then(|m| m.as_object()) {
        for (k, v) in meta {
            let _ = write!(tag, " {k}=\"{}\"", v.as_str().unwrap_or_default());
        }
    }
    tag.push('>');
    Some(format!("{tag}\n{content}\n</channel>"))
}

/// A payload for reading: pretty JSON when it is JSON, else the text (lossy), cut at `max`
/// bytes.
pub fn pretty_payload(payload: &[u8], max: usize) -> (String, bool) {
    let text = match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(payload).into_owned(),
    };
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_owned(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn the_channel_block_is_what_claude_sees() {
        let line = crate::event::notification_line(
            "Issue opened",
            &[
                ("source_name".into(), "github".into()),
                ("event".into(), "issues.opened".into()),
            ],
        );
        assert_eq!(
            channel_block(&line).unwrap(),
            "<channel source=\"hookwire\" source_name=\"github\" event=\"issues.opened\">\nIssue opened\n</channel>"
        );
        assert_eq!(channel_block(b"{}"), None);
    }

    #[test]
    fn payloads_are_pretty_and_cut_on_a_character() {
        assert_eq!(
            pretty_payload(br#"{"a":1}"#, 100),
            ("{\n  \"a\": 1\n}".into(), false)
        );
        let (cut, was) = pretty_payload("ééé".as_bytes(), 3);
        assert_eq!((cut.as_str(), was), ("é", true));
    }
}
