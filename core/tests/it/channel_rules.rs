//! The channel rules as an oracle, written apart from `hookwire_core::sanitize` so a slip
//! there shows here: a notification line is one line of valid JSON whose `content` does not
//! read as a `<channel` / `</channel` tag in any folded form, carries no control, line
//! separator or default-ignorable character (but newline, tab, and the joiners of emoji) and
//! fits its cap; whose `meta` keys are attribute names and whose values are short single-line
//! strings in which nothing reads as `< > " '`. Shared by `render_properties` and the fuzz
//! targets (`fuzz/fuzz_targets/*.rs` include this file).

use hookwire_core::sanitize::{is_default_ignorable, is_extended_pictographic, MAX_META_CHARS};
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

/// `text` with HTML/XML character references decoded once, left to right, the way a browser
/// reads them in text: `&#DIGITS` and `&#xHEX` with or without `;` (0 and impossible values
/// are U+FFFD), and the names that matter to a tag or an attribute, in any case: `lt`, `gt`,
/// `quot`, `nbsp` (`;` optional, as HTML's legacy names) and `apos`, `sol`, `tab`, `newline`.
pub fn decode_references(text: &str) -> String {
    const NAMED: [(&str, char, bool); 8] = [
        ("lt", '<', true),
        ("gt", '>', true),
        ("quot", '"', true),
        ("nbsp", '\u{a0}', true),
        ("apos", '\'', false),
        ("sol", '/', false),
        ("tab", '\t', false),
        ("newline", '\n', false),
    ];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let after = &rest[1..];
        let mut decoded = None;
        if let Some(num) = after.strip_prefix('#') {
            let (radix, digits) = match num.strip_prefix(['x', 'X']) {
                Some(hex) => (16, hex),
                None => (10, num),
            };
            let n = digits.chars().take_while(|c| c.is_digit(radix)).count();
            if n > 0 {
                let value = digits[..n].chars().fold(0u64, |v, d| {
                    (v * u64::from(radix) + u64::from(d.to_digit(radix).unwrap())).min(0x11_0000)
                });
                let c = u32::try_from(value)
                    .ok()
                    .and_then(char::from_u32)
                    .filter(|c| *c != '\0')
                    .unwrap_or('\u{fffd}');
                // `&`, `#`, the `x` if any, the digits.
                let used = 2 + (num.len() - digits.len()) + n;
                let used = used + usize::from(rest[used..].starts_with(';'));
                decoded = Some((used, c));
            }
        } else {
            for (name, c, legacy) in NAMED {
                let bytes = after.as_bytes();
                if bytes.len() >= name.len() && bytes[..name.len()].eq_ignore_ascii_case(name.as_bytes()) {
                    let semicolon = after[name.len()..].starts_with(';');
                    if semicolon || legacy {
                        decoded = Some((1 + name.len() + usize::from(semicolon), c));
                        break;
                    }
                }
            }
        }
        match decoded {
            Some((used, c)) => {
                out.push(c);
                rest = &rest[used..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Where `content` reads as a channel tag once references are decoded, the text is
/// NFKC-normalised and lower-cased: `<`, whitespace, an optional `/`, whitespace, `channel`.
/// (Position in that folded text.)
pub fn channel_tag(content: &str) -> Option<usize> {
    let folded: String = decode_references(content)
        .nfkc()
        .flat_map(char::to_lowercase)
        .collect();
    folded.char_indices().find_map(|(i, c)| {
        if c != '<' {
            return None;
        }
        let rest = folded[i + 1..].trim_start();
        let rest = rest.strip_prefix('/').unwrap_or(rest).trim_start();
        rest.starts_with("channel").then_some(i)
    })
}

/// Emoji modifiers (skin tones).
fn is_emoji_modifier(c: char) -> bool {
    ('\u{1f3fb}'..='\u{1f3ff}').contains(&c)
}

/// A character content may not hold, in its place: controls but newline and tab, line and
/// paragraph separators, interlinear annotations, and default-ignorables but a joiner between
/// two pictographs and a presentation selector right after one.
pub fn forbidden_in_content(prev: Option<char>, c: char, next: Option<char>) -> bool {
    if c.is_control() {
        return c != '\n' && c != '\t';
    }
    if matches!(c, '\u{2028}' | '\u{2029}' | '\u{fff9}'..='\u{fffb}') {
        return true;
    }
    if !is_default_ignorable(c) {
        return false;
    }
    let after_pict = prev.is_some_and(is_extended_pictographic);
    match c {
        '\u{200d}' => {
            let joins = after_pict || prev.is_some_and(|p| p == '\u{fe0f}' || is_emoji_modifier(p));
            !(joins && next.is_some_and(is_extended_pictographic))
        }
        '\u{fe0e}' | '\u{fe0f}' => !after_pict,
        _ => true,
    }
}

/// The content rules over one `content` capped at `max_bytes`.
pub fn check_content(content: &str, max_bytes: usize) -> Result<(), String> {
    if let Some(i) = channel_tag(content) {
        return Err(format!(
            "content reads as a channel tag at {i} (folded): {content:?}"
        ));
    }
    let chars: Vec<char> = content.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| chars[p]);
        if forbidden_in_content(prev, c, chars.get(i + 1).copied()) {
            return Err(format!("content holds {c:?} at char {i}"));
        }
    }
    if content.len() > max_bytes {
        return Err(format!("content is {} bytes", content.len()));
    }
    Ok(())
}

/// The rules over one `meta` value, its references decoded: non-empty, at most
/// [`MAX_META_CHARS`] characters as written, one line of single spaces, no control or
/// default-ignorable character, nothing whose NFKC form holds `< > " '`.
pub fn check_meta_value(v: &str) -> Result<(), String> {
    if v.is_empty() || v.chars().count() > MAX_META_CHARS {
        return Err(format!("meta value has {} chars", v.chars().count()));
    }
    let decoded = decode_references(v);
    if decoded.starts_with(' ') || decoded.ends_with(' ') || decoded.contains("  ") {
        return Err(format!("meta value has stray spaces: {v:?}"));
    }
    for c in decoded.chars() {
        let folded: String = std::iter::once(c).nfkc().collect();
        if c.is_control()
            || (c.is_whitespace() && c != ' ')
            || is_default_ignorable(c)
            || folded.contains(['<', '>', '"', '\''])
        {
            return Err(format!("meta value holds {c:?}: {v:?}"));
        }
    }
    Ok(())
}

fn is_meta_key(key: &str) -> bool {
    let mut b = key.bytes();
    matches!(b.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Every channel rule over one notification line; `Err` says which one broke.
pub fn check_line(line: &[u8], max_content_bytes: usize) -> Result<(), String> {
    if line.last() != Some(&b'\n') || line.iter().filter(|&&b| b == b'\n').count() != 1 {
        return Err("not one line ending in exactly one newline".into());
    }
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    if v["jsonrpc"] != "2.0" || v["method"] != "notifications/claude/channel" {
        return Err("wrong jsonrpc/method".into());
    }
    let params = v["params"].as_object().ok_or("no params object")?;
    if params.len() != 2 {
        return Err(format!("params has keys {:?}", params.keys().collect::<Vec<_>>()));
    }
    let content = params["content"].as_str().ok_or("content is not a string")?;
    check_content(content, max_content_bytes)?;
    let meta = params["meta"].as_object().ok_or("meta is not an object")?;
    if !meta.contains_key("source_name") {
        return Err("no source_name in meta".into());
    }
    for (k, v) in meta {
        if !is_meta_key(k) {
            return Err(format!("meta key {k:?}"));
        }
        let v = v.as_str().ok_or_else(|| format!("meta {k} is not a string"))?;
        check_meta_value(v).map_err(|e| format!("meta {k}: {e}"))?;
    }
    Ok(())
}
