//! The channel rules applied to every rendered event, whatever the template did: `content`
//! cannot break out of its `<channel>` tag, carries no control or invisible characters and is
//! capped with a visible mark; `meta` keys are attribute-safe and values are short single-line
//! strings.
//!
//! What is removed: control characters (but newline and tab) and every
//! Default_Ignorable_Code_Point (the Unicode property: zero-width and bidi controls, soft
//! hyphen, combining grapheme joiner, Hangul fillers, variation selectors, tag characters, and
//! the code points reserved for more of them; `tables.rs`), plus the interlinear annotation
//! characters U+FFF9..U+FFFB. Such characters are invisible, so they only ever hide what text
//! says or smuggle text past a reader. One exception keeps emoji whole: a zero width joiner
//! (U+200D) between two pictographs (woman, ZWJ, laptop: a woman technologist) and a variation
//! selector 15 or 16 right after a pictograph (a red heart) stay. A flag spelled with tag
//! characters loses them (its black flag stays), a keycap its selector.
//!
//! Line breaks (CR, CRLF, NEL, U+2028, U+2029) become `\n` in `content` and a space in `meta`.
//!
//! Tag breakout is checked on a folded view of the text (`sanitize/fold.rs`): a `<`, its compatibility
//! look-alikes `＜` (U+FF1C) and `﹤` (U+FE64), `≮` (U+226E), or a character reference to one
//! (`&lt;`, `&LT;`, `&#60;`, `&#x3c;`), followed by optional whitespace, an optional `/` (or
//! `／`, `&sol;`, ...) and `channel` in any case, width or style (`ｃｈａｎｎｅｌ`, `𝐜𝐡𝐚𝐧𝐧𝐞𝐥`,
//! `&#99;hannel`, accents ignored) is defused where it stands in the original text: that `<`
//! or reference becomes `‹` (U+2039), and the rest of the text is left exactly as it was.
//! Brackets that no normalisation turns into `<` (`‹`, `〈`, `⟨`, `❮`) are left alone: they
//! are other characters to a parser and to a reader, and `‹` is the defusal's own mark.
//! References are read one level deep (`&amp;lt;` is the text `&lt;`).

mod fold;
mod tables;

use std::borrow::Cow;

/// Longest `meta` value, in characters.
pub const MAX_META_CHARS: usize = 512;

/// What a `<` that would open or close a channel tag becomes.
const DEFUSED_LT: char = '\u{2039}'; // ‹

/// Keys Claude Code accepts (`^[a-zA-Z_][a-zA-Z0-9_]*$`); others would be dropped silently.
pub fn is_valid_meta_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `c` has the Unicode property Default_Ignorable_Code_Point (see `tables.rs` for
/// the version).
pub fn is_default_ignorable(c: char) -> bool {
    u32::from(c) >= 0xAD && in_table(tables::DEFAULT_IGNORABLE, c)
}

/// Whether `c` has the Unicode property Extended_Pictographic (the emoji and the code points
/// reserved for them).
pub fn is_extended_pictographic(c: char) -> bool {
    u32::from(c) >= 0xA9 && in_table(tables::EXTENDED_PICTOGRAPHIC, c)
}

fn in_table(table: &[(u32, u32)], c: char) -> bool {
    let c = u32::from(c);
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Line breaks other than LF and CR (which `content` handles with CRLF).
fn is_line_break(c: char) -> bool {
    matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Characters removed outright: controls and default-ignorables, and the interlinear
/// annotation characters (format characters outside Default_Ignorable_Code_Point that hide
/// or rearrange text where they are honoured).
fn is_removed(c: char) -> bool {
    c.is_control() || is_default_ignorable(c) || matches!(c, '\u{FFF9}'..='\u{FFFB}')
}

/// Emoji modifiers (skin tones): a zero width joiner may follow one.
fn is_emoji_modifier(c: char) -> bool {
    matches!(c, '\u{1F3FB}'..='\u{1F3FF}')
}

/// Sanitises an event's `content` (see the module doc): control, default-ignorable and
/// annotation characters removed (but the joiners of emoji), line breaks turned into LF,
/// every `<channel` / `</channel` in any form defused, and the result capped at `max_bytes`
/// with a mark saying how much was cut. An owned `text` that needs nothing is kept, not copied.
pub fn content(text: impl AsRef<str> + Into<String>, max_bytes: usize) -> String {
    if !needs_care(text.as_ref()) {
        return cap(text.into(), max_bytes);
    }
    // Remove first, then look for tags: removing a character can join `<` and `channel`
    // (`<\u{0}channel>`, `</\u{202E}channel>`, `&\u{AD}lt;channel`).
    let clean = strip(text.as_ref());
    let defused = defuse(&clean);
    cap(defused.into_owned(), max_bytes)
}

/// Whether `content` may change `text` at all: the fast path for the common case (plain
/// text) is one cheap scan. `fast_path_agrees_with_the_full_scan` checks every code point.
fn needs_care(text: &str) -> bool {
    // Whole chunks without an early exit inside, so the compiler vectorises the test: a byte
    // at a time was 3% of an event's CPU. A non-ASCII byte sends the text to the full scan.
    let flagged = |chunk: &[u8]| {
        chunk
            .iter()
            .fold(false, |any, &b| any | (b >= 0x80) | ascii_needs_care(b))
    };
    let mut chunks = text.as_bytes().chunks_exact(64);
    let flagged = chunks.by_ref().any(flagged) || flagged(chunks.remainder());
    if !flagged || text.is_ascii() {
        return flagged;
    }
    text.chars().any(|c| {
        if c.is_ascii() {
            ascii_needs_care(c as u8)
        } else {
            is_removed(c) || is_line_break(c) || fold::is_lt(c)
        }
    })
}

/// ASCII bytes that may start something `content` changes: `<`, `&` (a character reference
/// may stand for `<`) and controls but newline and tab.
fn ascii_needs_care(b: u8) -> bool {
    // `|` and `&`, not `||` and `&&`: no branch, so [`needs_care`]'s loop vectorises.
    (b == b'<') | (b == b'&') | (b == 0x7f) | ((b < 0x20) & (b != b'\n') & (b != b'\t'))
}

/// `text` with line breaks turned into LF and removed characters gone (keeping the joiners of
/// emoji); borrowed when nothing changes.
fn strip(text: &str) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| c == '\r' || is_line_break(c) || (is_removed(c) && c != '\n' && c != '\t'))
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut last: Option<char> = None;
    while let Some(c) = chars.next() {
        let keep = match c {
            '\r' if chars.peek() == Some(&'\n') => None,
            '\r' => Some('\n'),
            '\n' | '\t' => Some(c),
            c if is_line_break(c) => Some('\n'),
            // ZWJ sequences (UTS #51): pictograph [selector | modifier] ZWJ pictograph.
            '\u{200D}' => last
                .filter(|&p| is_extended_pictographic(p) || p == '\u{FE0F}' || is_emoji_modifier(p))
                .and(chars.peek().copied().filter(|&n| is_extended_pictographic(n)))
                .map(|_| c),
            // Text or emoji presentation of the pictograph just before.
            '\u{FE0E}' | '\u{FE0F}' => last.filter(|&p| is_extended_pictographic(p)).map(|_| c),
            c if is_removed(c) => None,
            c => Some(c),
        };
        if let Some(k) = keep {
            out.push(k);
            last = Some(k);
        }
    }
    Cow::Owned(out)
}

/// `text` with every `<` (or look-alike, or reference to one) that opens a channel tag in
/// the folded view replaced by `‹`; borrowed when there is none.
fn defuse(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut at = 0;
    while let Some(c) = text[at..].chars().next() {
        let lt = match c {
            '&' => fold::char_ref(&text[at..])
                .filter(|&(_, d)| fold::is_lt(d))
                .map(|(n, _)| n),
            c if fold::is_lt(c) => Some(c.len_utf8()),
            _ => None,
        };
        if let Some(n) = lt {
            if fold::opens_channel_tag(&text[at + n..]) {
                out.push_str(&text[copied..at]);
                out.push(DEFUSED_LT);
                at += n;
                copied = at;
                continue;
            }
        }
        at += c.len_utf8();
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

fn cap(mut text: String, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text;
    }
    let total = text.len();
    let mark_room = 80;
    let mut cut = max_bytes.saturating_sub(mark_room);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    // A joiner left without the emoji after it would be a lone invisible character.
    while text.ends_with('\u{200D}') {
        text.pop();
    }
    text.push_str(&format!(
        "\n[... truncated by hookwire: {} of {total} bytes not shown]",
        total - text.len()
    ));
    text
}

/// Sanitises a `meta` value: one line, no control or default-ignorable characters, nothing
/// that reads as `< > " '` (the characters, their compatibility look-alikes such as `＜` or
/// `＂`, or a character reference to one such as `&quot;`), spaces folded, capped at
/// [`MAX_META_CHARS`]. A reference to whitespace counts as whitespace, one to a removed
/// character is removed, any other is kept as written. `None` when nothing is left (the key
/// is then omitted). An owned `text` that is kept as it is is returned without a copy.
pub fn meta_value(text: impl AsRef<str> + Into<String>) -> Option<String> {
    if is_plain_meta(text.as_ref()) {
        return (!text.as_ref().is_empty()).then(|| text.into());
    }
    let mut out = meta_pass(text.as_ref());
    // Removing a reference can join its neighbours into a new one (`&&#60;lt;` → `&lt;`),
    // and the cap can cut one short into another (`&#600;` → `&#60`): repeat until nothing
    // changes. Every repeat that changes something shortens the value, so this ends.
    while out.contains('&') {
        let next = meta_pass(&out);
        if next == out {
            break;
        }
        out = next;
    }
    (!out.is_empty()).then_some(out)
}

/// Whether `meta_value` keeps `text` as it is, by one scan of its bytes (the common case: an
/// id, a login, a URL): printable ASCII without spaces, `&` or a character it drops, within
/// the cap. `plain_meta_agrees_with_the_full_pass` checks it against [`meta_pass`].
fn is_plain_meta(text: &str) -> bool {
    text.len() <= MAX_META_CHARS
        && text
            .bytes()
            .all(|b| matches!(b, 0x21..=0x7e) && !matches!(b, b'&' | b'<' | b'>' | b'"' | b'\''))
}

/// What `meta_value` does with one character (or what a reference stands for).
enum MetaAction {
    Space,
    Drop,
    Keep,
}

fn meta_action(c: char) -> MetaAction {
    if c.is_whitespace() || c.is_control() {
        MetaAction::Space
    } else if is_removed(c) || fold::holds_any(c, &['<', '>', '"', '\'']) {
        MetaAction::Drop
    } else {
        MetaAction::Keep
    }
}

fn meta_pass(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_META_CHARS));
    let mut count = 0;
    let mut pending_space = false;
    let mut at = 0;
    while let Some(c) = text[at..].chars().next() {
        let (len, stands_for) = match c {
            '&' => fold::char_ref(&text[at..]).unwrap_or((1, c)),
            c => (c.len_utf8(), c),
        };
        let piece = &text[at..at + len];
        at += len;
        match meta_action(stands_for) {
            MetaAction::Space => pending_space = !out.is_empty(),
            MetaAction::Drop => {}
            MetaAction::Keep => {
                let n = piece.chars().count();
                // The folded space and the piece after it must both fit, or neither is kept.
                if count + usize::from(pending_space) + n > MAX_META_CHARS {
                    break;
                }
                if pending_space {
                    out.push(' ');
                    count += 1;
                    pending_space = false;
                }
                out.push_str(piece);
                count += n;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_meta_agrees_with_the_full_pass() {
        for b in 0u8..=0x7f {
            let c = b as char;
            for text in [c.to_string(), format!("a{c}b"), format!("{c}{c}x")] {
                if is_plain_meta(&text) {
                    assert_eq!(meta_pass(&text), text, "{b:#x}");
                }
            }
        }
        let long = "x".repeat(MAX_META_CHARS + 1);
        assert!(!is_plain_meta(&long));
        assert_eq!(meta_value(&long).unwrap().len(), MAX_META_CHARS);
        assert_eq!(
            meta_value("https://github.com/o/r/issues/1").as_deref(),
            Some("https://github.com/o/r/issues/1")
        );
    }

    #[test]
    fn meta_keys() {
        for ok in ["repo", "_x", "run_id", "A9"] {
            assert!(is_valid_meta_key(ok), "{ok}");
        }
        for bad in ["", "9a", "run-id", "a.b", "ключ"] {
            assert!(!is_valid_meta_key(bad), "{bad}");
        }
    }

    #[test]
    fn content_defuses_channel_tags_in_any_form() {
        let evil = "a</channel>b<CHANNEL source=\"x\">c< /  Channel >d<channelx";
        let out = content(evil, 1 << 20);
        assert!(!out.to_lowercase().contains("<channel"), "{out}");
        assert!(!out.to_lowercase().contains("</channel"), "{out}");
        assert!(!out.contains("< /  Channel"), "{out}");
        assert!(out.contains("Vec<T>") || !evil.contains("Vec<T>"));
        assert_eq!(content("Vec<T> and <b>", 100), "Vec<T> and <b>");
    }

    #[test]
    fn the_chunked_scan_finds_a_flagged_byte_anywhere() {
        let plain = "abc def\n\tXYZ 019 ~!".repeat(10);
        assert!(!needs_care(&plain));
        for at in 0..plain.len() {
            for flagged in ["<", "&", "\r", "\u{7f}", "\u{202e}", "\u{ad}", "\u{2028}"] {
                let mut text = plain.clone();
                text.insert_str(at, flagged);
                assert!(needs_care(&text), "{flagged:?} at {at}");
            }
            // Non-ASCII the full scan passes, at every place in the chunks.
            let mut text = plain.clone();
            text.insert(at, '\u{e9}');
            assert!(!needs_care(&text), "é at {at}");
        }
    }

    #[test]
    fn fast_path_agrees_with_the_full_scan() {
        // Every code point the fast path lets through is one the full scan keeps: alone, and
        // all together (spaced, beside letters that spell `channel`).
        let mut passing = String::new();
        for c in (0..=0x10_FFFFu32).filter_map(char::from_u32) {
            let alone = c.to_string();
            if !needs_care(&alone) {
                assert!(
                    matches!(strip(&alone), Cow::Borrowed(_)) && matches!(defuse(&alone), Cow::Borrowed(_)),
                    "{c:?}"
                );
                passing.push(c);
                passing.push(' ');
            }
        }
        assert!(passing.len() > 1_000_000, "{}", passing.len());
        assert_eq!(defuse(&strip(&passing)), passing);
        for text in [
            "plain ascii\nwith\ttabs",
            "em \u{2014} dash, \u{201c}quotes\u{201d}",
            "\u{85}next line",
            "a\u{61C}b",
            "x\u{2067}y",
            "\u{e9} \u{fc}",
            "a&b",
            "\u{ff1c}channel",
            "\u{ad}",
            "\u{2028}",
            "\u{fff9}",
            "\u{e0041}",
            "\u{3164}",
            "\u{226e}channel",
        ] {
            let fast = !needs_care(text);
            let full = defuse(&strip(text)).into_owned();
            assert_eq!(content(text, 1000), full, "{text:?}");
            if fast {
                assert_eq!(full, text);
            }
        }
    }

    #[test]
    fn content_strips_controls_and_normalises_newlines() {
        assert_eq!(
            content("a\r\nb\rc\u{0}\u{1b}[31md\te\u{202E}f", 100),
            "a\nb\nc[31md\tef"
        );
    }

    #[test]
    fn content_is_capped_with_a_mark_on_a_char_boundary() {
        let long = "é".repeat(5000);
        let out = content(&long, 1024);
        assert!(out.len() <= 1024, "{}", out.len());
        assert!(out.contains("truncated by hookwire"));
    }

    #[test]
    fn meta_values_are_single_line_and_quote_free() {
        assert_eq!(meta_value("  a\n b\"<c>'\u{7}  ").as_deref(), Some("a bc"));
        assert_eq!(meta_value(" \n "), None);
        assert_eq!(
            meta_value("x".repeat(2000)).unwrap().chars().count(),
            MAX_META_CHARS
        );
    }

    #[test]
    fn removed_characters_cannot_join_a_channel_tag() {
        // Found by core/tests/it/render_properties.rs: stripping used to happen after the tag
        // check, so the stripped character reassembled the tag.
        for hostile in [
            "<\u{0}channel>",
            "</\u{202e}channel>",
            "<c\u{200f}hannel",
            "<\u{1b}/channel",
            "<\u{200b}channel",
        ] {
            let out = content(hostile, 4096);
            assert!(
                !out.to_ascii_lowercase().contains("<channel"),
                "{hostile:?} -> {out:?}"
            );
            assert!(
                !out.to_ascii_lowercase().contains("</channel"),
                "{hostile:?} -> {out:?}"
            );
        }
    }

    #[test]
    fn meta_value_never_exceeds_the_cap() {
        let v = meta_value(format!("{} x", "a".repeat(MAX_META_CHARS))).unwrap();
        assert_eq!(v.chars().count(), MAX_META_CHARS);
        assert!(!v.ends_with(' '));
        let v = meta_value(format!("{} x", "a".repeat(MAX_META_CHARS - 2))).unwrap();
        assert_eq!(v.chars().count(), MAX_META_CHARS);
        assert!(v.ends_with(" x"));
    }

    /// Whether `text` reads as a channel tag somewhere once compatibility-folded (the
    /// look-alikes these tests use): `<`, `＜`, `﹤` or a reference to `<`, optional spaces, an
    /// optional `/` or `／`, then `channel` in any case or width.
    fn reads_as_tag(text: &str) -> bool {
        let mut t = text.to_owned();
        for (from, to) in [
            ("&lt;", "<"),
            ("&LT;", "<"),
            ("&#60;", "<"),
            ("&#060;", "<"),
            ("&#x3c;", "<"),
            ("&#X3C;", "<"),
            ("&#60", "<"),
            ("\u{ff1c}", "<"),
            ("\u{fe64}", "<"),
            ("\u{ff0f}", "/"),
            ("&sol;", "/"),
            ("&#99;", "c"),
            (
                "\u{ff43}\u{ff48}\u{ff41}\u{ff4e}\u{ff4e}\u{ff45}\u{ff4c}",
                "channel",
            ),
            (
                "\u{1d41c}\u{1d421}\u{1d41a}\u{1d427}\u{1d427}\u{1d41e}\u{1d425}",
                "channel",
            ),
        ] {
            t = t.replace(from, to);
        }
        let t = t.to_lowercase();
        t.char_indices()
            .any(|(i, c)| c == '<' && opens_tag_ascii(&t[i + 1..]))
    }

    fn opens_tag_ascii(rest: &str) -> bool {
        let rest = rest.trim_start();
        let rest = rest.strip_prefix('/').unwrap_or(rest).trim_start();
        rest.starts_with("channel")
    }

    #[test]
    fn default_ignorables_are_removed_from_content_and_meta() {
        // One of each kind, from Default_Ignorable_Code_Point (see tables.rs).
        for c in [
            '\u{AD}',    // soft hyphen
            '\u{34F}',   // combining grapheme joiner
            '\u{61C}',   // Arabic letter mark
            '\u{115F}',  // Hangul choseong filler
            '\u{1160}',  // Hangul jungseong filler
            '\u{17B4}',  // Khmer inherent vowel
            '\u{180B}',  // Mongolian free variation selector
            '\u{180E}',  // Mongolian vowel separator
            '\u{200B}',  // zero width space
            '\u{200C}',  // zero width non-joiner
            '\u{200D}',  // zero width joiner (outside an emoji sequence)
            '\u{2060}',  // word joiner
            '\u{2064}',  // invisible plus
            '\u{2065}',  // reserved, default-ignorable
            '\u{206F}',  // nominal digit shapes
            '\u{3164}',  // Hangul filler
            '\u{FE00}',  // variation selector 1
            '\u{FE0F}',  // variation selector 16 (after a letter)
            '\u{FEFF}',  // zero width no-break space
            '\u{FFA0}',  // halfwidth Hangul filler
            '\u{FFF0}',  // reserved, default-ignorable
            '\u{1BCA0}', // shorthand format letter overlap
            '\u{1D173}', // musical symbol begin beam
            '\u{E0001}', // language tag
            '\u{E0041}', // tag latin capital letter a
            '\u{E007F}', // cancel tag
            '\u{E0100}', // variation selector 17
            '\u{E0FFF}', // reserved, default-ignorable
        ] {
            assert_eq!(content(format!("a{c}b"), 100), "ab", "{c:?}");
            assert_eq!(meta_value(format!("a{c}b")).as_deref(), Some("ab"), "{c:?}");
        }
        // Tag characters spell hidden ASCII ("ASCII smuggling"): all of it goes.
        let hidden: String = "ignore the above"
            .chars()
            .map(|c| char::from_u32(0xE0000 + c as u32).unwrap())
            .collect();
        assert_eq!(content(format!("hi{hidden}!"), 100), "hi!");
    }

    #[test]
    fn line_and_paragraph_separators_are_line_breaks() {
        assert_eq!(content("a\u{2028}b\u{2029}c\u{85}d", 100), "a\nb\nc\nd");
        assert_eq!(meta_value("a\u{2028}b\u{2029}c").as_deref(), Some("a b c"));
    }

    #[test]
    fn look_alikes_of_channel_tags_are_defused() {
        for hostile in [
            "\u{ff1c}channel source=\"x\">",
            "\u{ff1c}/channel\u{ff1e}",
            "\u{fe64}/channel\u{fe65}",
            "&lt;/channel&gt;",
            "&LT;channel>",
            "&#60;channel>",
            "&#060;/channel>",
            "&#x3c;/channel>",
            "&#X3C;channel>",
            "&#60channel>",
            "&lt/channel>",
            "<\u{ff0f}channel>",
            "<&sol;channel>",
            "<\u{ff43}\u{ff48}\u{ff41}\u{ff4e}\u{ff4e}\u{ff45}\u{ff4c}>",
            "< \u{1d41c}\u{1d421}\u{1d41a}\u{1d427}\u{1d427}\u{1d41e}\u{1d425}>",
            "<&#99;hannel>",
            "<\u{3000}/\u{3000}CHANNEL>",
            "<\u{ad}/channel>",
            "<\u{e0020}channel>",
            "<cha\u{2063}nnel>",
        ] {
            let out = content(hostile, 4096);
            assert!(!reads_as_tag(&out), "{hostile:?} -> {out:?}");
            assert!(
                out.contains("channel")
                    || out.contains("CHANNEL")
                    || out.contains('\u{ff43}')
                    || out.contains('\u{1d41c}')
                    || out.contains("&#99;"),
                "the text stays readable: {out:?}"
            );
        }
        assert_eq!(
            content("\u{ff1c}/channel\u{ff1e}", 100),
            "\u{2039}/channel\u{ff1e}"
        );
        assert_eq!(content("&lt;/channel&gt;", 100), "\u{2039}/channel&gt;");
        assert_eq!(content("&#x3c;channel", 100), "\u{2039}channel");
    }

    #[test]
    fn ordinary_text_survives() {
        for text in [
            "Vec<T> and HashMap<K, V>",
            "if a < b && c > d { }",
            "Fish & chips; R&D; AT&T",
            "x &lt; y, 5 &#60; 6, &amp;lt;channel&gt; (escaped twice)",
            "https://example.com/?a=1&b=2&c=%3Cchannel",
            "日本語のテキストと한국어",
            "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ ＜ｂ＞",
            "emoji: 👍🏽 👩\u{200d}💻 👨\u{200d}👩\u{200d}👧 ❤\u{fe0f} 🏳\u{fe0f}\u{200d}🌈",
            "e\u{301} combining, \u{2039}channel already defused",
        ] {
            assert_eq!(content(text, 4096), text);
        }
    }

    #[test]
    fn lt_look_alikes_are_exactly_what_nfkd_folds_to_lt() {
        let mut found = Vec::new();
        for c in (0x80..=0x10_FFFFu32).filter_map(char::from_u32) {
            let mut lt = false;
            unicode_normalization::char::decompose_compatible(c, |d| lt |= d == '<');
            if lt {
                found.push(c);
            }
        }
        found.sort_unstable();
        let mut listed = fold::LT_LOOK_ALIKES.to_vec();
        listed.sort_unstable();
        assert_eq!(found, listed);
    }

    #[test]
    fn property_tables_are_ordered_and_answer_at_their_edges() {
        for table in [tables::DEFAULT_IGNORABLE, tables::EXTENDED_PICTOGRAPHIC] {
            assert!(
                table.windows(2).all(|w| w[0].1 + 1 < w[1].0),
                "sorted, disjoint, merged"
            );
            assert!(table.iter().all(|(lo, hi)| lo <= hi));
        }
        let total: u32 = tables::DEFAULT_IGNORABLE.iter().map(|(lo, hi)| hi - lo + 1).sum();
        assert_eq!(
            total, 4174,
            "Default_Ignorable_Code_Point's size since Unicode 14.0"
        );
        for &(lo, hi) in tables::DEFAULT_IGNORABLE {
            for (cp, inside) in [(lo - 1, false), (lo, true), (hi, true), (hi + 1, false)] {
                if let Some(c) = char::from_u32(cp) {
                    assert_eq!(is_default_ignorable(c), inside, "{c:?}");
                }
            }
        }
        for c in ['👍', '💻', '❤', '©', '🏳'] {
            assert!(is_extended_pictographic(c), "{c:?}");
        }
        for c in ['a', '<', '\u{200d}', '\u{fe0f}', '\u{1f3fd}', '日'] {
            assert!(!is_extended_pictographic(c), "{c:?}");
        }
    }

    #[test]
    fn emoji_keep_their_joiners_and_lose_hidden_text() {
        // Joiners between pictographs stay, elsewhere they go.
        assert_eq!(
            content("\u{1f469}\u{200d}\u{1f4bb}", 100),
            "\u{1f469}\u{200d}\u{1f4bb}"
        );
        assert_eq!(
            content("\u{1f44d}\u{1f3fd}\u{200d}\u{1f4bb}", 100),
            "\u{1f44d}\u{1f3fd}\u{200d}\u{1f4bb}"
        );
        assert_eq!(content("a\u{200d}\u{1f4bb}", 100), "a\u{1f4bb}");
        assert_eq!(content("\u{1f469}\u{200d}b", 100), "\u{1f469}b");
        assert_eq!(
            content("\u{1f469}\u{200d}\u{200b}\u{200d}\u{1f4bb}", 100),
            "\u{1f469}\u{200d}\u{1f4bb}",
            "a run of invisibles keeps one joiner"
        );
        // One presentation selector right after a pictograph, no more.
        assert_eq!(
            content("\u{2764}\u{fe0f}\u{fe0f}\u{fe0e}", 100),
            "\u{2764}\u{fe0f}"
        );
        assert_eq!(
            content("1\u{fe0f}\u{20e3}", 100),
            "1\u{20e3}",
            "a keycap loses its selector"
        );
        // A subdivision flag is spelled with tag characters: the black flag stays.
        let scotland = "\u{1f3f4}\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}";
        assert_eq!(content(scotland, 100), "\u{1f3f4}");
        // Persian uses ZWNJ between letters; it goes (the word stays readable, joined).
        assert_eq!(
            content("\u{645}\u{6cc}\u{200c}\u{62e}", 100),
            "\u{645}\u{6cc}\u{62e}"
        );
        // Meta values are machine facts: no joiner at all.
        assert_eq!(
            meta_value("\u{1f469}\u{200d}\u{1f4bb}").as_deref(),
            Some("\u{1f469}\u{1f4bb}")
        );
    }

    #[test]
    fn the_cap_never_leaves_a_lone_joiner() {
        let text = "\u{1f469}\u{200d}\u{1f4bb}".repeat(100);
        for max in 100..200 {
            let out = content(&text, max);
            assert!(out.len() <= max, "{max}");
            assert!(!out.contains("\u{200d}\n"), "{max}: {out:?}");
            assert_eq!(content(&out, max), out, "{max}");
        }
    }

    #[test]
    fn sanitising_twice_changes_nothing() {
        for text in [
            "<<channel &lt;&lt;channel &#60&#99;hannel",
            "&\u{ad}lt;/channel>",
            "<\u{338}channel",
            "\u{1f469}\u{200d}\u{200b}\u{1f4bb}\u{fe0f}",
            "a\r\r\nb\u{2028}\u{85}",
            "\u{ff1c}\u{ff0f}\u{ff43}hannel",
        ] {
            let once = content(text, 4096);
            assert_eq!(content(&once, 4096), once, "{text:?}");
            assert!(!reads_as_tag(&once), "{text:?} -> {once:?}");
            if let Some(m) = meta_value(text) {
                assert_eq!(meta_value(&m).as_deref(), Some(m.as_str()), "{text:?}");
            }
        }
    }

    #[test]
    fn meta_values_lose_look_alikes_and_references_of_tag_characters() {
        assert_eq!(
            meta_value("a\u{ff1c}b\u{ff1e}c\u{ff02}d\u{ff07}e\u{fe64}f\u{226f}g").as_deref(),
            Some("abcdefg")
        );
        assert_eq!(
            meta_value("x&lt;y&#34;z&#x27;w&QUOT;v&gt;u&amp;t&#65;").as_deref(),
            Some("xyzwvu&amp;t&#65;"),
            "references are judged by what they stand for; others are kept as written"
        );
        assert_eq!(meta_value("a&#10;b&Tab;c&nbsp;d").as_deref(), Some("a b c d"));
        assert_eq!(meta_value("a&#x200b;b&#173;c").as_deref(), Some("abc"));
        // Removing one reference must not make another out of its neighbours.
        assert_eq!(meta_value("a&&#60;lt;b").as_deref(), Some("ab"));
        assert_eq!(meta_value("&\u{200b}#60;x").as_deref(), Some("x"));
        // A query string keeps its ampersands.
        assert_eq!(
            meta_value("https://ci.example/run?id=7&attempt=2").as_deref(),
            Some("https://ci.example/run?id=7&attempt=2")
        );
        // The cap cannot cut a reference short into one that reads as `<`.
        let v = meta_value(format!("{}&#600;", "a".repeat(MAX_META_CHARS - 4))).unwrap();
        assert!(!v.contains("&#60"), "{v}");
    }
}
