//! Embeds the built browser app (web/dist/, made by `npm run build`) when it exists:
//! writes `$OUT_DIR/dist.rs` with one `include_bytes!` per file. Without it the crate
//! still builds, and the live view explains how to build the app.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let dist = root.join("dist");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("dist.rs");
    let mut files = Vec::new();
    if dist.is_dir() {
        walk(&dist, &dist, &mut files);
        // Cargo scans a directory recursively: any rebuilt file re-embeds.
        println!("cargo:rerun-if-changed=dist");
    } else {
        // dist/ does not exist yet: watch the crate directory, whose contents change
        // when `npm run build` creates it.
        println!("cargo:rerun-if-changed=.");
    }
    files.sort();
    let mut src = String::from(
        "/// The built app's files: path under dist/, contents.\npub(crate) static DIST: &[(&str, &[u8])] = &[\n",
    );
    for (rel, abs) in &files {
        let _ = writeln!(src, "    ({rel:?}, include_bytes!({abs:?})),");
    }
    src.push_str("];\n");
    std::fs::write(&out, src).expect("write $OUT_DIR/dist.rs");
}

fn walk(base: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(base, &p, files);
        } else if let (Some(rel), Some(abs)) =
            (p.strip_prefix(base).ok().and_then(Path::to_str), p.to_str())
        {
            files.push((rel.replace('\\', "/"), abs.to_owned()));
        }
    }
}
