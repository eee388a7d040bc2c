//! `schedules:`: hookwire runs a job on a cron schedule and its output arrives as an event,
//! rendered through `templates/schedule/`. The schedule fires every second here; the test
//! waits for the event, not for a fixed time.

use crate::common;

use common::{Hookwire, TempDir};

#[test]
fn a_scheduled_command_fires_and_its_output_reaches_the_session() {
    let dir = TempDir::new("schedules");
    let cfg = dir.write(
        "config.yaml",
        "channel:
  sources: [snapshot, broken]
sources:
  - name: github
    type: github
    secret_env: S_GH
schedules:
  - name: snapshot
    cron: '* * * * * *'
    command: echo 'p95 latency 212 ms; 3 failed builds'
  - name: broken
    cron: '* * * * * *'
    command: echo 'disk full' >&2; exit 3
",
    );
    let mut hw = Hookwire::spawn(&cfg, &[("S_GH", "schedule-test-secret")]);
    hw.handshake();
    let (mut ok, mut failed) = (None, None);
    while ok.is_none() || failed.is_none() {
        let n = hw.next_notification();
        match n["params"]["meta"]["source_name"].as_str() {
            Some("snapshot") => ok = Some(n),
            Some("broken") => failed = Some(n),
            other => panic!("unexpected event from {other:?}: {n}"),
        }
    }
    let ok = ok.unwrap();
    let content = ok["params"]["content"].as_str().unwrap();
    assert!(content.starts_with("Scheduled job snapshot ran"), "{content}");
    assert!(
        content.contains("p95 latency 212 ms; 3 failed builds"),
        "{content}"
    );
    assert_eq!(ok["params"]["meta"]["event"], "schedule");
    assert!(ok["params"]["meta"]["delivery_id"]
        .as_str()
        .unwrap()
        .starts_with("snapshot-"));
    let failed = failed.unwrap();
    let content = failed["params"]["content"].as_str().unwrap();
    assert!(
        content.starts_with("Scheduled job broken FAILED (exit code 3)"),
        "{content}"
    );
    assert!(content.contains("disk full"), "{content}");
    // A schedule has no HTTP door.
    assert_eq!(hw.post("/schedules/snapshot", &[], b"{}").status, 404);
}

#[test]
fn a_bad_schedule_is_a_config_error_with_its_line() {
    let dir = TempDir::new("schedules-bad");
    let cfg = dir.write(
        "config.yaml",
        "channel:\n  sources: [nightly]\nsources:\n  - name: github\n    type: github\n    secret_env: S_GH\nschedules:\n  - name: nightly\n    cron: '0 99 * * *'\n    command: date\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookwire"))
        .args(["check", "--config", cfg.to_str().unwrap()])
        .env("S_GH", "schedule-test-secret")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("config.yaml:9: schedules[0].cron: `0 99 * * *` is not a cron expression: Hours must be less than 23"),
        "{err}"
    );
}
