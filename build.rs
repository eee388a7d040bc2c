//! Embeds `templates/` in the binary, so `hookwire` runs from any folder with the default
//! templates; a config's `templates_dir` overrides them file by file. For release builds it
//! also hands the linker the binary's function layout (`link/hookwire.order`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("templates/ exists")
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "hbs") {
            out.push(p);
        }
    }
}

/// Release builds lay out the functions a channel runs at the front of the text (written by
/// `bench/link-order`, which says why): an idle channel maps about 3 MB of code instead of
/// 10. Also packs the relative relocations (DT_RELR), so the loader reads 30 KB of them
/// rather than 1.4 MB. Both only where the linker is known to take them: lld, rustc's own
/// linker on x86_64 Linux since 1.90 (or mold), unless RUSTFLAGS choose another, and for
/// DT_RELR a glibc of 2.36 or later, which the binary then needs.
fn link_layout(manifest: &Path) {
    let order = manifest.join("link").join("hookwire.order");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    if !order.exists()
        || var("PROFILE") != "release"
        || var("TARGET") != "x86_64-unknown-linux-gnu"
        || flags.contains("linker-features")
        || flags.contains("link-self-contained")
        || (flags.contains("fuse-ld") && !flags.contains("fuse-ld=lld") && !flags.contains("fuse-ld=mold"))
        || !rustc_links_with_lld()
    {
        return;
    }
    for arg in [
        "--symbol-ordering-file",
        &order.display().to_string(),
        "--no-warn-symbol-ordering",
    ] {
        println!("cargo:rustc-link-arg-bin=hookwire=-Xlinker");
        println!("cargo:rustc-link-arg-bin=hookwire={arg}");
    }
    if var("HOST") == var("TARGET") && glibc_has_relr() {
        println!("cargo:rustc-link-arg-bin=hookwire=-Wl,-z,pack-relative-relocs");
    }
}

/// rustc 1.90 or later, whose default linker on x86_64 Linux is its own lld.
fn rustc_links_with_lld() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    version(Command::new(rustc).arg("-V")) >= (1, 90)
}

/// The build machine's glibc loads DT_RELR (2.36 or later).
fn glibc_has_relr() -> bool {
    // "glibc 2.36"
    version(Command::new("getconf").arg("GNU_LIBC_VERSION")) >= (2, 36)
}

/// (major, minor) of the version a command prints as its second word; (0, 0) if it fails.
fn version(command: &mut Command) -> (u32, u32) {
    let Ok(out) = command.output() else {
        return (0, 0);
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace().nth(1).unwrap_or("").split('.');
    let mut next = || parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    (next(), next())
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    link_layout(&manifest);
    let root = manifest.join("templates");
    println!("cargo:rerun-if-changed=templates");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut code = String::from("/// Built-in templates: (path under templates/, text).\npub static TEMPLATES: &[(&str, &str)] = &[\n");
    for f in files {
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        println!("cargo:rerun-if-changed={}", f.display());
        writeln!(
            code,
            "    ({rel:?}, include_str!({:?})),",
            f.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("templates.rs");
    std::fs::write(out, code).unwrap();
}
