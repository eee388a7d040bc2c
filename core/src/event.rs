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
    /// The raw request body, kept in the store for retrieval (empty for digests). Shared with
    /// the request: a 10 KB body is not copied on its way to the store.
    pub payload: bytes::Bytes,
    /// The request headers that carry no credentials, kept with the payload.
    pub headers: Headers,
    /// Folded by storm control: stored for retrieval, named by a digest, never delivered alone.
    pub folded: bool,
    /// The dedup key of what was signed (`~signed:<hex>`), kept so a restart recognises the
    /// same signed bytes under another delivery id as a repeat.
    pub signed_key: Option<String>,
}

/// Request headers kept with an event, as the store keeps them: a JSON array of
/// `[name, value]` pairs. Written once on the request's thread, so the store's writer neither
/// serialises them nor frees a string per header that another thread allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headers(String);

impl Default for Headers {
    fn default() -> Self {
        Headers("[]".to_owned())
    }
}

impl Headers {
    /// The pairs as given, in order.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut json = Vec::with_capacity(256);
        json.push(b'[');
        for (name, value) in pairs {
            if json.len() > 1 {
                json.push(b',');
            }
            json.push(b'[');
            serde_json::to_writer(&mut json, name).expect("a string always serialises");
            json.push(b',');
            serde_json::to_writer(&mut json, value).expect("a string always serialises");
            json.push(b']');
        }
        json.push(b']');
        Headers(String::from_utf8(json).expect("serde_json writes UTF-8"))
    }

    /// The JSON text: `[["name","value"],...]`.
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// The pairs, read back from the JSON.
    pub fn pairs(&self) -> Vec<(String, String)> {
        serde_json::from_str(&self.0).expect("hookwire wrote this JSON")
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Headers {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(pairs: I) -> Self {
        Headers::from_pairs(pairs)
    }
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

    #[test]
    fn headers_are_the_json_of_their_pairs_and_read_back() {
        let pairs = [("x-github-event", "issues"), ("user-agent", "evil\"\n\u{1b}]0;")];
        let h: Headers = pairs.into_iter().collect();
        assert_eq!(
            h.as_json(),
            r#"[["x-github-event","issues"],["user-agent","evil\"\n\u001b]0;"]]"#
        );
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(h.pairs(), owned);
        assert_eq!(
            h.as_json(),
            serde_json::to_string(&owned).unwrap(),
            "what the store wrote before"
        );
        assert_eq!(Headers::default().pairs(), vec![]);
    }
}
