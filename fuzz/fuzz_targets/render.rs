//! Fuzzes rendering: the shipped templates over every vendor fixture
//! (`core/tests/it/render_world.rs`, as the property tests load them), with the fuzzer's bytes
//! mutating the payload, through `Pipeline::render_unverified`. Every notification line must
//! keep the channel rules of `core/tests/it/channel_rules.rs`: one line of JSON, content that
//! cannot read as a channel tag, carries no control or invisible character and fits
//! `limits.max_content_bytes`, meta keys that are attribute names and values that are short
//! single lines in which nothing reads as `< > " '`.
//!
//! Input layout: byte 0 picks the fixture (modulo their number); bit 0 of byte 1 the mode:
//! - 0, inject: the rest is split on 0xFF into up to four chunks; a chunk's first two bytes
//!   (little-endian) pick one of the fixture's string fields, the rest (UTF-8, invalid
//!   sequences as U+FFFD) is written into it. The event may then only be unnameable when an
//!   injection emptied a field the source names events by.
//! - 1, raw: the rest is the whole body, sent with the fixture's headers (JSON or form, as the
//!   fixture's source parses it); any error is fine, a line must keep the rules.

#![no_main]

// Shared with the property tests; not every helper is used here.
#[allow(dead_code)]
#[path = "../../core/tests/it/channel_rules.rs"]
mod channel_rules;
#[allow(dead_code)]
#[path = "../../core/tests/it/render_world.rs"]
mod render_world;

use hookwire_core::pipeline::{Incoming, IngestError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [pick, mode, rest @ ..] = data else {
        return;
    };
    let world = render_world::world();
    let fixture = &world.fixtures[usize::from(*pick) % world.fixtures.len()];
    let (body, injected) = if mode & 1 == 0 {
        let injections: Vec<(usize, String)> = rest
            .split(|b| *b == 0xFF)
            .take(4)
            .map(|chunk| {
                let (field, text) = chunk.split_at(chunk.len().min(2));
                let field = field.iter().rev().fold(0usize, |n, b| n << 8 | usize::from(*b));
                (field, String::from_utf8_lossy(text).into_owned())
            })
            .collect();
        let body = render_world::inject(fixture, &injections);
        (body, Some(injections))
    } else {
        (rest.to_vec(), None)
    };
    // The body as the request path holds it (shared bytes, as `ingress` reads them).
    let body = hookwire_core::axum::body::Bytes::from(body);
    let incoming = Incoming::post(&fixture.headers, &body);
    match world.pipeline.render_unverified(fixture.source, &incoming) {
        Ok(Some(event)) => {
            if let Err(e) = channel_rules::check_line(&event.line, render_world::MAX_CONTENT_BYTES) {
                panic!(
                    "{}: {e}\nline: {}",
                    fixture.file,
                    String::from_utf8_lossy(&event.line)
                );
            }
        }
        Ok(None) => {}
        Err(e) => {
            if let Some(injections) = injected {
                let emptied = injections.iter().any(|(_, t)| t.is_empty());
                assert!(
                    matches!(e, IngestError::Identify(_)) && emptied,
                    "{}: a valid payload failed to render: {e}",
                    fixture.file
                );
            }
        }
    }
});
