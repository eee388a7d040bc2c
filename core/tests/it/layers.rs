//! The layer rule of `ARCHITECTURE.md`, checked on the source: a module of hookwire-core
//! names (`crate::<module>`) only modules of its own layer or below. Diagnostics and value
//! types at the bottom, then verification, the component definitions config builds
//! (adapters, filters, templates), config, and the runtime on top. A module added without a
//! layer here fails the test, so the rule is decided when the module is.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every top-level module of hookwire-core and its layer.
const LAYERS: &[(&str, u8)] = &[
    // 0: depends on nothing in hookwire.
    ("diagnostics", 0),
    ("secret", 0),
    ("network", 0),
    ("budget", 0),
    ("sanitize", 0),
    ("event", 0),
    ("fetch", 0),
    // 1: verification schemes.
    ("verify", 1),
    // 2: what config builds from YAML.
    ("adapter", 2),
    ("filter", 2),
    ("render", 2),
    // 3: config.yaml, every section.
    ("config", 3),
    // 4: the runtime.
    ("channel", 4),
    ("console", 4),
    ("delivery", 4),
    ("gateway", 4),
    ("health", 4),
    ("http", 4),
    ("ingress", 4),
    ("instructions", 4),
    ("link", 4),
    ("link_protocol", 4),
    ("metrics", 4),
    ("pipeline", 4),
    ("replay", 4),
    ("schedule", 4),
    ("sink", 4),
    ("store", 4),
    ("storm", 4),
    ("telemetry", 4),
    ("tools", 4),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `module.rs` and everything under `module/`.
fn files(module: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let file = src().join(format!("{module}.rs"));
    if file.exists() {
        out.push(file);
    }
    let mut dirs = vec![src().join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out
}

/// The top-level modules a file names in code (`crate::x`), outside comments.
fn named(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
        // `use crate::{a, b}` names several.
        if let Some(i) = code.find("crate::{") {
            for part in code[i + "crate::{".len()..].split([',', '}']) {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
    }
    out
}

#[test]
fn every_module_has_a_layer() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let modules: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod ").or_else(|| l.strip_prefix("mod ")))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert!(modules.len() > 20, "read the module list of lib.rs: {modules:?}");
    for m in modules {
        assert!(
            layer(m).is_some(),
            "core/src/{m}: give it a layer in core/tests/it/layers.rs and ARCHITECTURE.md"
        );
    }
}

#[test]
fn layers_point_one_way() {
    let mut broken = Vec::new();
    for (module, own) in LAYERS {
        let files = files(module);
        assert!(!files.is_empty(), "no source for module {module}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for other in named(&text) {
                match layer(&other) {
                    Some(l) if l > *own => broken.push(format!(
                        "{} (layer {own}) names crate::{other} (layer {l})",
                        file.strip_prefix(src()).unwrap().display()
                    )),
                    _ => {}
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "layers must point down:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_check_sees_an_upward_reference() {
    let names =
        named("use crate::{store::Store, config};\nlet x = crate::tools::needs(p); // crate::gateway\n");
    assert_eq!(
        names,
        ["config", "store", "tools"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
}
