//! A rendered event, ready for a session: the exact `notifications/claude/channel` line.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

/// One event on its way to the session(s).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The configured source it came from.
    pub source: String,
    /// `event.action` as named by the adapter.
    pub event: String,
    /// The vendor's delivery id (or body hash).
    pub delivery_id: String,
    /// The notification, one line of JSON ending in `\n`.
    pub line: Vec<u8>,
    /// When it arrived, Unix milliseconds.
    pub received_ms: i64,
    /// The raw request body, kept in the store for retrieval (empty for digests).
    pub payload: Vec<u8>,
    /// The request headers that carry no credentials, kept with the payload.
    pub headers: Vec<(String, String)>,
    /// Folded by storm control: stored for retrieval, named by a digest, never delivered alone.
    pub folded: bool,
    /// The dedup key of what was signed (`~signed:<hex>`), kept so a restart recognises the
    /// same signed bytes under another delivery id as a repeat.
    pub signed_key: Option<String>,
}

/// Attributes in the order given, serialised as a JSON object of strings.
struct Meta<'a>(&'a [(String, String)]);

impl Serialize for Meta<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct Params<'a> {
    content: &'a str,
    meta: Meta<'a>,
}

#[derive(Serialize)]
struct Notification<'a> {
    jsonrpc: &'static str,
    method: &'static str,
    params: Params<'a>,
}

/// The channel notification for already sanitised `content` and `meta`, as one
/// `\n`-terminated line (serde_json escapes any newline inside strings).
pub fn notification_line(content: &str, meta: &[(String, String)]) -> Vec<u8> {
    let n = Notification {
        jsonrpc: "2.0",
        method: "notifications/claude/channel",
        params: Params {
            content,
            meta: Meta(meta),
        },
    };
    let mut line = Vec::with_capacity(content.len() + 256);
    serde_json::to_writer(&mut line, &n).expect("strings always serialise");
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_with_ordered_string_meta() {
        let line = notification_line("a\nb", &[("z".into(), "1".into()), ("a".into(), "2".into())]);
        let text = String::from_utf8(line).unwrap();
        assert_eq!(
            text,
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/claude/channel\",\"params\":{\"content\":\"a\\nb\",\"meta\":{\"z\":\"1\",\"a\":\"2\"}}}\n"
        );
        assert_eq!(text.matches('\n').count(), 1);
    }
}
