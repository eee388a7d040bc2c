//! The folded view of text the channel-tag check reads: what a reader (a person, a model, an
//! HTML-minded tokeniser) may take a piece of text for. A character stands for its Unicode
//! compatibility decomposition (NFKD: `＜` is `<`, `ｃ` and `𝐜` are `c`) without combining
//! marks, in lower case; an HTML/XML character reference (`&lt;`, `&#60;`, `&#x3C;`) stands for
//! the character it names. The check is deliberately liberal: a false alarm only turns one `<`
//! into `‹`, a miss lets an event close its own `<channel>` tag.

use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// Characters other than `<` whose compatibility decomposition is `<` (possibly with a mark):
/// SMALL LESS-THAN SIGN, FULLWIDTH LESS-THAN SIGN, NOT LESS-THAN (`<` + U+0338). The test
/// `lt_look_alikes_are_exactly_what_nfkd_folds_to_lt` checks this list against every code point.
pub(super) const LT_LOOK_ALIKES: [char; 3] = ['\u{FE64}', '\u{FF1C}', '\u{226E}'];

/// Named references decoded, with whether the `;` may be left out (HTML's legacy names, which
/// browsers decode without it). Only names that matter to the checks: the tag and attribute
/// characters, `/` and whitespace. `&amp;` is not decoded: references are read one level deep,
/// so `&amp;lt;` is the text `&lt;`, not `<`.
const NAMED: [(&str, char, bool); 8] = [
    ("lt", '<', true),
    ("gt", '>', true),
    ("quot", '"', true),
    ("nbsp", '\u{A0}', true),
    ("apos", '\'', false),
    ("sol", '/', false),
    ("tab", '\t', false),
    ("newline", '\n', false),
];

/// The character reference at the start of `s` and what it stands for, with its length in
/// bytes: `&#DIGITS`, `&#xHEX` (the `;` optional, as browsers read them; an impossible value
/// stands for U+FFFD) or one of the [`NAMED`] references, names in any case.
pub(crate) fn char_ref(s: &str) -> Option<(usize, char)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'&') {
        return None;
    }
    if b.get(1) == Some(&b'#') {
        let (radix, start) = match b.get(2) {
            Some(b'x' | b'X') => (16, 3),
            _ => (10, 2),
        };
        let digits = b[start.min(b.len())..]
            .iter()
            .take_while(|d| char::from(**d).is_digit(radix))
            .count();
        if digits == 0 {
            return None;
        }
        let value = b[start..start + digits].iter().fold(0u32, |v, d| {
            let d = char::from(*d).to_digit(radix).unwrap_or(0);
            v.saturating_mul(radix).saturating_add(d).min(0x11_0000)
        });
        let c = char::from_u32(value).filter(|c| *c != '\0').unwrap_or('\u{FFFD}');
        let end = start + digits;
        return Some((end + usize::from(b.get(end) == Some(&b';')), c));
    }
    NAMED.iter().find_map(|&(name, c, legacy)| {
        let end = 1 + name.len();
        let named = b.get(1..end)?.eq_ignore_ascii_case(name.as_bytes());
        let semicolon = b.get(end) == Some(&b';');
        (named && (semicolon || legacy)).then_some((end + usize::from(semicolon), c))
    })
}

/// The unit at the start of `s` (a character reference, or one character) and what it stands
/// for.
fn unit(s: &str) -> Option<(usize, char)> {
    let c = s.chars().next()?;
    Some(match c {
        '&' => char_ref(s).unwrap_or((1, '&')),
        c => (c.len_utf8(), c),
    })
}

/// Whether `c` (a character, or what a reference stands for) reads as `<`.
pub(super) fn is_lt(c: char) -> bool {
    c == '<' || LT_LOOK_ALIKES.contains(&c)
}

/// Calls `f` with each character `c` folds to: its compatibility decomposition without
/// combining marks, in lower case.
fn fold(c: char, mut f: impl FnMut(char)) {
    if c.is_ascii() {
        return f(c.to_ascii_lowercase());
    }
    decompose_compatible(c, |d| {
        if !is_combining_mark(d) {
            d.to_lowercase().for_each(&mut f);
        }
    });
}

/// Whether `c` folds to something holding one of `chars` (`＂` holds `"`, `≯` holds `>`).
pub(super) fn holds_any(c: char, chars: &[char]) -> bool {
    let mut found = false;
    fold(c, |d| found |= chars.contains(&d));
    found
}

/// True when `rest`, the text after something that reads as `<`, makes it a channel tag once
/// folded: whitespace, an optional `/`, whitespace, then `channel` (further text, such as
/// `channelx`, does not matter). Combining marks are skipped everywhere, so an accent cannot
/// hide the word. Reads no further than the first unit that does not fit, so the scans from
/// two `<` never overlap and a whole text is checked in linear time.
pub(super) fn opens_channel_tag(rest: &str) -> bool {
    const WORD: &[u8] = b"channel";
    let mut matched = 0;
    let mut slash = false;
    let mut at = 0;
    while let Some((len, c)) = unit(&rest[at..]) {
        at += len;
        let mut verdict = None;
        fold(c, |f| {
            if verdict.is_some() {
                return;
            }
            if matched == 0 && f.is_whitespace() {
                return;
            }
            if matched == 0 && f == '/' && !slash {
                slash = true;
                return;
            }
            if u32::from(f) == u32::from(WORD[matched]) {
                matched += 1;
                if matched == WORD.len() {
                    verdict = Some(true);
                }
            } else {
                verdict = Some(false);
            }
        });
        if let Some(v) = verdict {
            return v;
        }
    }
    false
}
