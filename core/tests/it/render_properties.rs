//! Property tests of the channel rules on real renders: the shipped templates over the shared
//! vendor fixtures (`render_world`), with arbitrary and hostile text written into the
//! payloads' string fields, through `Pipeline::render_unverified`. Whatever the text, the
//! notification line must keep every rule of `channel_rules`: one line of valid JSON whose
//! `content` does not read as a `<channel` / `</channel` tag in any folded form (look-alikes,
//! character references), carries no control, bidi or other default-ignorable character but
//! the joiners of emoji, and fits `limits.max_content_bytes`; whose `meta` keys are attribute
//! names and whose values are short single-line strings in which nothing reads as `< > " '`.

use hookwire_core::pipeline::{Incoming, IngestError};
use hookwire_core::sanitize::MAX_META_CHARS;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::Value;

use crate::channel_rules::{channel_tag, check_line};
use crate::render_world::{inject, of, world, Body, Fixture, MAX_CONTENT_BYTES};

/// The injections with each selector resolved to one of `fixture`'s fields.
pub fn pick_fields(fixture: &Fixture, injections: &[(Index, String)]) -> Vec<(usize, String)> {
    injections
        .iter()
        .map(|(i, text)| (i.index(fixture.fields().max(1)), text.clone()))
        .collect()
}

/// Renders `fixture` with the injections and checks the line. An injection may only make the
/// event unnameable when it emptied a field the source names events by.
fn render_and_check(fixture: &Fixture, injections: &[(Index, String)]) -> Result<(), TestCaseError> {
    let w = world();
    let injections = pick_fields(fixture, injections);
    let body = bytes::Bytes::from(inject(fixture, &injections));
    let incoming = Incoming::post(&fixture.headers, &body);
    match w.pipeline.render_unverified(fixture.source, &incoming) {
        Ok(Some(event)) => {
            if let Err(e) = check_line(&event.line, MAX_CONTENT_BYTES) {
                return Err(TestCaseError::fail(format!(
                    "{}: {e}\nline: {}",
                    fixture.file,
                    String::from_utf8_lossy(&event.line)
                )));
            }
        }
        Ok(None) => {}
        Err(IngestError::Identify(e)) => prop_assert!(
            injections.iter().any(|(_, t)| t.is_empty()),
            "{}: {e}",
            fixture.file
        ),
        Err(e) => return Err(TestCaseError::fail(format!("{}: {e}", fixture.file))),
    }
    Ok(())
}

/// Pieces hostile text is made of.
pub fn piece() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        "<channel",
        "</channel>",
        "</ChAnNeL >",
        "< / CHANNEL",
        "<\n/\tchannel",
        "<channel source=\"x\">",
        "<\u{0}channel>",
        "</\u{202e}channel>",
        "<c\u{200f}hannel",
        "<",
        "/",
        "channel",
        "CHANNEL",
        ">",
        "\"",
        "'",
        "\n",
        "\r\n",
        "\r",
        "\t",
        " ",
        "\u{a0}",
        "\u{2028}",
        "\u{202e}",
        "\u{202a}",
        "\u{2066}",
        "\u{2069}",
        "\u{200e}",
        "\u{200f}",
        "\u{61c}",
        "\u{200b}",
        "\u{200d}",
        "\u{feff}",
        "\u{85}",
        "\u{7f}",
        "\u{9b}",
        // Issue 14, item 7: default-ignorables, separators and look-alikes of a tag.
        "\u{ad}",
        "\u{34f}",
        "\u{115f}",
        "\u{1160}",
        "\u{3164}",
        "\u{ffa0}",
        "\u{180e}",
        "\u{2029}",
        "\u{2064}",
        "\u{fe00}",
        "\u{fe0f}",
        "\u{fff9}",
        "\u{e0001}",
        "\u{e0041}",
        "\u{e007f}",
        "\u{e0100}",
        "\u{1d173}",
        "\u{ff1c}",
        "\u{fe64}",
        "\u{226e}",
        "\u{ff0f}",
        "\u{ff1e}",
        "\u{ff02}",
        "\u{ff07}",
        "\u{2039}",
        "\u{3008}",
        "\u{ff43}\u{ff48}\u{ff41}\u{ff4e}\u{ff4e}\u{ff45}\u{ff4c}",
        "\u{1d41c}\u{1d421}\u{1d41a}\u{1d427}\u{1d427}\u{1d41e}\u{1d425}",
        "\u{24d2}\u{24d7}\u{24d0}\u{24dd}\u{24dd}\u{24d4}\u{24db}",
        "\u{ff1c}/channel\u{ff1e}",
        "\u{fe64}channel",
        "<\u{ff0f}channel",
        "&lt;",
        "&LT;",
        "&lt",
        "&gt;",
        "&#60;",
        "&#060",
        "&#x3c;",
        "&#X3C",
        "&#99;",
        "&sol;",
        "&quot;",
        "&#39;",
        "&amp;",
        "&",
        "#",
        ";",
        "x3c",
        "60",
        "&lt;/channel&gt;",
        "&#60;channel",
        "<&#99;hannel",
        "&\u{ad}lt;channel",
        "\u{2764}\u{fe0f}",
        "\u{1f3f4}\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}",
        "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}",
        "\u{1b}[31m",
        "e\u{301}",
        "\u{301}\u{301}\u{301}",
        "👍🏽",
        "👩\u{200d}💻",
        "é",
        "日本語",
        "`````",
        "{{body}}",
        "\\",
        "%%%",
        "$ID",
    ])
    .prop_map(str::to_owned);
    let long = prop::sample::select(vec![
        "é".repeat(700),
        "<channel>".repeat(300),
        "\u{202e}x".repeat(500),
    ]);
    prop_oneof![
        6 => fixed,
        1 => long,
        2 => prop::char::range('\u{0}', '\u{9f}').prop_map(String::from),
        1 => any::<char>().prop_map(String::from),
        1 => "[a-zA-Z ]{0,12}",
    ]
}

/// Arbitrary text, hostile text made of [`piece`]s, or a long repetition.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => any::<String>(),
        5 => prop::collection::vec(piece(), 0..40).prop_map(|p| p.concat()),
        1 => (piece(), 1..3000usize).prop_map(|(p, n)| p.repeat(n.min(20_000 / p.len().max(1)))),
    ]
}

fn injections() -> impl Strategy<Value = Vec<(Index, String)>> {
    prop::collection::vec((any::<Index>(), text()), 1..4)
}

fn check_source(source: &str, fixture: Index, injections: &[(Index, String)]) -> Result<(), TestCaseError> {
    let list = of(source);
    render_and_check(list[fixture.index(list.len())], injections)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn github(f in any::<Index>(), inj in injections()) {
        check_source("github", f, &inj)?;
    }

    #[test]
    fn datadog(f in any::<Index>(), inj in injections()) {
        check_source("datadog", f, &inj)?;
    }

    #[test]
    fn gitlab(f in any::<Index>(), inj in injections()) {
        check_source("gitlab", f, &inj)?;
    }

    #[test]
    fn pagerduty(f in any::<Index>(), inj in injections()) {
        check_source("pagerduty", f, &inj)?;
    }

    #[test]
    fn sentry(f in any::<Index>(), inj in injections()) {
        check_source("sentry", f, &inj)?;
    }

    #[test]
    fn slack_events(f in any::<Index>(), inj in injections()) {
        check_source("slack", f, &inj)?;
    }

    #[test]
    fn slack_slash_command_form(f in any::<Index>(), inj in injections()) {
        check_source("slack-commands", f, &inj)?;
    }

    #[test]
    fn stripe(f in any::<Index>(), inj in injections()) {
        check_source("stripe", f, &inj)?;
    }

    #[test]
    fn alertmanager(f in any::<Index>(), inj in injections()) {
        check_source("alertmanager", f, &inj)?;
    }

    #[test]
    fn grafana(f in any::<Index>(), inj in injections()) {
        check_source("grafana", f, &inj)?;
    }

    #[test]
    fn generic_fallback(f in any::<Index>(), inj in injections()) {
        check_source("generic", f, &inj)?;
    }

    #[test]
    fn buildkite(f in any::<Index>(), inj in injections()) {
        check_source("buildkite", f, &inj)?;
    }

    #[test]
    fn circleci(f in any::<Index>(), inj in injections()) {
        check_source("circleci", f, &inj)?;
    }

    #[test]
    fn discord(f in any::<Index>(), inj in injections()) {
        check_source("discord", f, &inj)?;
    }

    #[test]
    fn heroku(f in any::<Index>(), inj in injections()) {
        check_source("heroku", f, &inj)?;
    }

    #[test]
    fn intercom(f in any::<Index>(), inj in injections()) {
        check_source("intercom", f, &inj)?;
    }

    #[test]
    fn linear(f in any::<Index>(), inj in injections()) {
        check_source("linear", f, &inj)?;
    }

    #[test]
    fn twilio_form(f in any::<Index>(), inj in injections()) {
        check_source("twilio", f, &inj)?;
    }

    #[test]
    fn zendesk(f in any::<Index>(), inj in injections()) {
        check_source("zendesk", f, &inj)?;
    }
}

/// Every fixture renders unmodified and passes the checks (the properties start from there).
#[test]
fn every_fixture_renders_clean() {
    let w = world();
    assert!(w.fixtures.len() >= 25, "{} fixtures", w.fixtures.len());
    for f in &w.fixtures {
        let body = bytes::Bytes::from(inject(f, &[]));
        let event = w
            .pipeline
            .render_unverified(f.source, &Incoming::post(&f.headers, &body))
            .unwrap_or_else(|e| panic!("{}: {e}", f.file))
            .unwrap_or_else(|| panic!("{}: not delivered", f.file));
        check_line(&event.line, MAX_CONTENT_BYTES).unwrap_or_else(|e| panic!("{}: {e}", f.file));
    }
}

/// Long vendor text is cut to the limit with the visible mark.
#[test]
fn long_text_is_truncated_with_a_mark() {
    let list = of("github");
    let issue = list
        .iter()
        .find(|f| f.file.ends_with("issues.opened.json"))
        .unwrap();
    let body = {
        let Body::Json(v) = &issue.body else {
            unreachable!()
        };
        let mut v = v.clone();
        *v.pointer_mut("/issue/body").unwrap() = Value::String("👍🏽".repeat(1500));
        bytes::Bytes::from(serde_json::to_vec(&v).unwrap())
    };
    let event = world()
        .pipeline
        .render_unverified(issue.source, &Incoming::post(&issue.headers, &body))
        .unwrap()
        .unwrap();
    check_line(&event.line, MAX_CONTENT_BYTES).unwrap();
    let v: Value = serde_json::from_slice(&event.line).unwrap();
    let content = v["params"]["content"].as_str().unwrap();
    assert!(content.contains("truncated by hookwire"), "{content}");
}

/// Renders `text` as the title of the GitHub `issues.opened` fixture; the notification line.
fn github_issue_titled(text: &str) -> Vec<u8> {
    let list = of("github");
    let issue = list
        .iter()
        .find(|f| f.file.ends_with("issues.opened.json"))
        .unwrap();
    let Body::Json(v) = &issue.body else {
        unreachable!()
    };
    let mut v = v.clone();
    *v.pointer_mut("/issue/title").unwrap() = Value::String(text.into());
    let body = bytes::Bytes::from(serde_json::to_vec(&v).unwrap());
    world()
        .pipeline
        .render_unverified(issue.source, &Incoming::post(&issue.headers, &body))
        .unwrap()
        .unwrap()
        .line
}

/// Found by this test: a control or bidi character inside a tag used to be removed after the
/// tag check, so the tag survived (fixed in `sanitize::content`).
#[test]
fn stripped_characters_cannot_reassemble_a_channel_tag() {
    for title in [
        "</\u{202e}channel>",
        "<\u{0}channel source=\"x\">",
        "<c\u{200f}hannel",
    ] {
        let line = github_issue_titled(title);
        let content = serde_json::from_slice::<Value>(&line).unwrap()["params"]["content"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(channel_tag(&content), None, "{title:?} gave {content:?}");
    }
}

/// Found by this test: a folded space used to be pushed before the length check, so a value
/// could be one character over the cap (fixed in `sanitize::meta_value`).
#[test]
fn meta_value_is_never_over_the_cap() {
    let v = hookwire_core::sanitize::meta_value(format!("{} x", "a".repeat(MAX_META_CHARS))).unwrap();
    assert!(v.chars().count() <= MAX_META_CHARS, "{} chars", v.chars().count());
}
