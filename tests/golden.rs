//! Every GitHub fixture payload (`../shared/fixtures/payloads/github/`) and the Datadog test
//! fixtures, signed and POSTed to a running `hookwire channel`; the exact notification lines
//! are compared with `tests/golden/`. Regenerate after an intended template change with
//! `HOOKWIRE_BLESS=1 cargo test --test golden` and review the diff.

mod common;

use std::path::PathBuf;

use common::{Hookwire, TempDir};

const SECRET: &str = "golden-secret";
const DD_TOKEN: &str = "golden-dd-token";

fn fixtures(dir: PathBuf) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn check(kind: &str, stem: &str, line: &str, mismatches: &mut Vec<String>) {
    let path = common::root()
        .join("tests/golden")
        .join(kind)
        .join(format!("{stem}.jsonl"));
    let line = format!("{line}\n");
    if std::env::var_os("HOOKWIRE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &line).unwrap();
        return;
    }
    match std::fs::read_to_string(&path) {
        Ok(want) if want == line => {}
        Ok(want) => mismatches.push(format!("{}:\n  want {want}  got  {line}", path.display())),
        Err(_) => mismatches.push(format!(
            "{} is missing (run with HOOKWIRE_BLESS=1)",
            path.display()
        )),
    }
}

#[test]
fn every_fixture_renders_to_its_golden_notification() {
    let dir = TempDir::new("golden");
    let cfg = dir.write(
        "config.yaml",
        "channel:\n  sources: [github, datadog]\nsources:\n  - name: github\n    type: github\n    secret_env: G_SECRET\n  - name: datadog\n    type: datadog\n    secret_env: G_DD\n",
    );
    let mut hw = Hookwire::spawn(&cfg, &[("G_SECRET", SECRET), ("G_DD", DD_TOKEN)]);
    hw.handshake();
    let mut mismatches = Vec::new();

    let github = fixtures(common::root().join("../shared/fixtures/payloads/github"));
    assert!(github.len() >= 10, "expected the shared GitHub fixtures");
    for (stem, body) in &github {
        let event = stem.split('.').next().unwrap();
        let delivery = format!("golden-{stem}");
        let r = hw.post_github("/hooks/github", SECRET, event, &delivery, body);
        assert_eq!(r.status, 202, "{stem}");
        if event == "ping" {
            continue;
        }
        let line = hw.next_line();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["params"]["meta"]["delivery_id"], delivery.as_str());
        assert!(
            !hw.stderr_text().contains("template failed"),
            "{stem}: a template failed:\n{}",
            hw.stderr_text()
        );
        check("github", stem, &line, &mut mismatches);
    }

    for (stem, body) in fixtures(common::root().join("tests/fixtures/datadog")) {
        let r = hw.post("/hooks/datadog", &[("X-Hookwire-Token", DD_TOKEN)], &body);
        assert_eq!(r.status, 202, "{stem}");
        let line = hw.next_line();
        assert!(
            !hw.stderr_text().contains("template failed"),
            "{stem}:\n{}",
            hw.stderr_text()
        );
        check("datadog", &stem, &line, &mut mismatches);
    }
    assert!(
        mismatches.is_empty(),
        "{} golden mismatch(es):\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
