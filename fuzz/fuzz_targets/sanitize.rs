//! Fuzzes the channel rules' sanitiser: whatever the text, `sanitize::content` must give
//! content that keeps the rules of `core/tests/it/channel_rules.rs` (the oracle the property
//! tests use, written apart from the sanitiser): nothing reads as a `<channel` / `</channel`
//! tag once references are decoded and the text NFKC-folded, no control, line separator or
//! default-ignorable character but newline, tab and the joiners of emoji, and the cap kept.
//! `sanitize::meta_value` must give a single line of at most `MAX_META_CHARS` characters in
//! which nothing reads as `< > " '`. Sanitising a result again changes nothing.
//!
//! Input layout: byte 0 picks the content cap (`96 + 32 * byte` bytes, so the cut and its mark
//! are reached); the rest, as UTF-8 (invalid sequences become U+FFFD), is the text.

#![no_main]

// Shared with the property tests; not every helper is used here.
#[allow(dead_code)]
#[path = "../../core/tests/it/channel_rules.rs"]
mod channel_rules;

use hookwire_core::sanitize::{content, meta_value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cap, rest)) = data.split_first() else {
        return;
    };
    let max = 96 + 32 * usize::from(cap);
    let text = String::from_utf8_lossy(rest);

    let out = content(&*text, max);
    if let Err(e) = channel_rules::check_content(&out, max) {
        panic!("content({text:?}, {max}) broke a rule: {e}");
    }
    assert_eq!(content(&out, max), out, "content is not idempotent on {text:?}");

    if let Some(v) = meta_value(&*text) {
        if let Err(e) = channel_rules::check_meta_value(&v) {
            panic!("meta_value({text:?}) broke a rule: {e}");
        }
        assert_eq!(
            meta_value(&v).as_deref(),
            Some(v.as_str()),
            "meta_value is not idempotent on {text:?}"
        );
    }
});
