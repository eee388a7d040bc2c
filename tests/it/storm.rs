//! Storm control: a burst of 200 alerts with one group key becomes the first event plus one
//! digest that names every folded delivery id and collapses identical repeats; another
//! group is not held back. The window (5 s) is far longer than the burst takes, so the test
//! does not depend on timing; it waits on the digest, never a fixed time.

use crate::common;

use common::{Hookwire, TempDir};

const TOKEN: &str = "storm-token-5e2a";

#[test]
fn a_burst_of_200_alerts_in_one_group_becomes_one_event_and_one_digest() {
    let dir = TempDir::new("storm");
    let cfg = dir.write(
        "config.yaml",
        "channel:
  sources: [alerts]
sources:
  - name: alerts
    type: push
    secret_env: S_TOKEN
    storm:
      group: '{{body.meta.monitor}}'
      window_secs: 5
      max_events: 1
",
    );
    let mut hw = Hookwire::spawn(&cfg, &[("S_TOKEN", TOKEN)]);
    hw.handshake();
    let bearer = format!("Bearer {TOKEN}");
    let post = |hw: &Hookwire, id: &str, monitor: &str, text: &str| {
        let body =
            serde_json::json!({"content": text, "id": id, "event": "alert", "meta": {"monitor": monitor}});
        hw.post(
            "/hooks/alerts",
            &[("Content-Type", "application/json"), ("Authorization", &bearer)],
            &serde_json::to_vec(&body).unwrap(),
        )
        .status
    };
    for i in 0..200 {
        // Half say the same thing (identical repeats), half differ.
        let text = if i % 2 == 0 {
            "CPU high on db-1".to_owned()
        } else {
            format!("CPU high on db-1 ({i}%)")
        };
        assert_eq!(post(&hw, &format!("a-{i}"), "m-42", &text), 202, "a-{i}");
    }
    assert_eq!(post(&hw, "other-1", "m-7", "disk full on web-3"), 202);

    let first = hw.next_notification();
    assert_eq!(
        first["params"]["meta"]["delivery_id"], "a-0",
        "the first of the group is not held: {first}"
    );
    let other = hw.next_notification();
    assert_eq!(
        other["params"]["meta"]["delivery_id"], "other-1",
        "another group is not held: {other}"
    );
    let digest = hw.next_notification();
    let meta = &digest["params"]["meta"];
    assert_eq!(meta["event"], "digest", "{digest}");
    assert_eq!(meta["group"], "m-42");
    assert_eq!(meta["folded"], "199");
    let content = digest["params"]["content"].as_str().unwrap();
    for i in 1..200 {
        assert!(
            content.contains(&format!("a-{i},")) || content.contains(&format!("a-{i}\n")),
            "a-{i} not named:\n{content}"
        );
    }
    assert!(
        content.contains("- ×99 CPU high on db-1\n"),
        "identical repeats collapse:\n{content}"
    );
    // Nothing else: the next event is a fresh one.
    assert_eq!(post(&hw, "b-1", "m-9", "fresh"), 202);
    assert_eq!(hw.next_notification()["params"]["meta"]["delivery_id"], "b-1");

    // Every folded event stays retrievable by its delivery id, payload included.
    for id in ["a-1", "a-150", "a-199"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookwire"))
            .args(["events", "show", "--json", "--config"])
            .arg(&cfg)
            .arg(id)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(shown["delivery_id"], id);
        assert_eq!(shown["folded"], true, "{shown}");
        assert!(shown["payload"].to_string().contains("m-42"), "{shown}");
    }
}
