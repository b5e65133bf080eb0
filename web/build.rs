//! Builds the browser app into web/dist/ when it is missing or older than its sources,
//! then embeds it: writes `$OUT_DIR/dist.rs` with one `include_bytes!` per file.
//!
//! So `cargo build` (release or not) serves the UI wherever Node.js and npm are
//! installed (`scripts/install-web-deps` installs them): npm packages come from
//! web/package-lock.json (`npm ci`), the bundle from web/build.mjs. Without npm the crate
//! still builds, says so in a cargo warning, and the live view page explains how to
//! build the app (DESIGN.md, "Web"). `SLUICE_WEB_NO_BUILD=1` skips the build (embeds
//! whatever web/dist/ holds).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

fn main() {
    let root =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    for watched in ["app", "build.mjs", "package.json", "package-lock.json"] {
        println!("cargo:rerun-if-changed={watched}");
    }
    println!("cargo:rerun-if-env-changed=SLUICE_WEB_NO_BUILD");
    if std::env::var_os("SLUICE_WEB_NO_BUILD").is_none()
        && let Err(why) = build_bundle(&root)
    {
        println!("cargo:warning=the web app is not built into this binary: {why}");
    }
    let dist = root.join("dist");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("dist.rs");
    let mut files = Vec::new();
    if dist.is_dir() {
        walk(&dist, &dist, &mut files);
        // Cargo scans a directory recursively: any rebuilt file re-embeds.
        println!("cargo:rerun-if-changed=dist");
    }
    files.retain(|(rel, _)| rel != ".built");
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

/// Runs `npm ci` (when node_modules is missing) and the bundle build (when dist/ is
/// older than a source), as scripts/build-web does.
fn build_bundle(root: &Path) -> Result<(), String> {
    let stamp = root.join("dist/.built");
    let built = std::fs::metadata(&stamp).and_then(|m| m.modified()).ok();
    let newest = ["app", "build.mjs", "package-lock.json"]
        .iter()
        .filter_map(|p| newest_mtime(&root.join(p)))
        .max();
    if let (Some(b), Some(n)) = (built, newest)
        && b >= n
    {
        return Ok(());
    }
    let npm = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("npm")
            .args(args)
            .current_dir(root)
            .output()
            .map_err(|e| {
                format!(
                    "npm not found ({e}): install Node.js and npm (scripts/install-web-deps) and rebuild"
                )
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`npm {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    if !root.join("node_modules").is_dir() {
        npm(&["ci", "--no-audit", "--no-fund", "--silent"])?;
    }
    npm(&["run", "build", "--silent"])?;
    std::fs::write(&stamp, b"").map_err(|e| format!("cannot write {}: {e}", stamp.display()))
}

fn newest_mtime(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .flatten()
        .filter_map(|e| newest_mtime(&e.path()))
        .max()
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
