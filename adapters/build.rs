//! Embeds every vendor folder's `preset.yaml` into the crate: `$OUT_DIR/presets.rs` holds
//! `PRESETS`, one `(name, text)` per folder, sorted. Adding a vendor with a standard scheme is
//! adding a folder: no Rust changes.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed={}", root.display());
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root).expect("read adapters/") {
        let entry = entry.expect("read adapters/");
        let preset = entry.path().join("preset.yaml");
        if preset.is_file() {
            println!("cargo:rerun-if-changed={}", preset.display());
            found.push((entry.file_name().to_string_lossy().into_owned(), preset));
        }
    }
    found.sort();
    let mut out = String::from("/// Every vendor folder's name and `preset.yaml`, sorted by name.\npub(crate) static PRESETS: &[(&str, &str)] = &[\n");
    for (name, path) in &found {
        writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("presets.rs");
    std::fs::write(dest, out).expect("write presets.rs");
}
