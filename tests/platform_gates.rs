//! The workstation commands must build on macOS (the flake offers aarch64-darwin and
//! x86_64-darwin), but this CI has no macOS target to compile for (docs/TESTING.md). This test
//! is the guard it can run: every use of an API that exists only on Linux sits in an item or
//! statement gated by `#[cfg(target_os = "linux")]`.
use std::path::{Path, PathBuf};

/// rustix and kernel APIs without a macOS counterpart.
const LINUX_ONLY: &[&str] = &[
    "rustix::mount::",
    "rustix::fs::syncfs",
    "OFlags::PATH",
    "BLKRRPART",
    "F_OFD_",
    "sync_file_range",
    "statx(",
];
const GATE: &str = "#[cfg(target_os = \"linux\")]";

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Whether line `i` is inside something gated: a gate on a line above it within its top-level
/// item, or among the attributes of that item.
fn gated(lines: &[&str], i: usize) -> bool {
    let mut j = i;
    while j > 0 {
        j -= 1;
        let l = lines[j];
        if l.trim() == GATE {
            return true;
        }
        let top_level = !l.is_empty() && !l.starts_with(char::is_whitespace);
        if top_level && !l.starts_with("#[") && !l.starts_with("//") && !l.starts_with('}') {
            // The item's own attributes and doc comments, just above it.
            return lines[..j]
                .iter()
                .rev()
                .take_while(|a| a.starts_with("#[") || a.starts_with("///"))
                .any(|a| a.trim() == GATE);
        }
    }
    false
}

#[test]
fn linux_only_apis_are_gated_by_target_os() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut ungated = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let code = l.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if LINUX_ONLY.iter().any(|api| code.contains(api)) && !gated(&lines, i) {
                ungated.push(format!("{}:{}: {}", f.display(), i + 1, code));
            }
        }
    }
    assert!(
        ungated.is_empty(),
        "Linux-only APIs outside #[cfg(target_os = \"linux\")]:\n{}",
        ungated.join("\n")
    );
}
