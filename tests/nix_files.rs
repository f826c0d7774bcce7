//! The Nix files, checked with Debian's `nix-instantiate` (no nixpkgs, no network): every file
//! parses, the installer module and the flake evaluate against stubs with the expected options,
//! unit and assertions (scripts/check-nix), and those checks do catch a broken module.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(o: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `nix/tests/eval-module.nix` with `module`, as JSON.
fn eval_module(module: &Path) -> serde_json::Value {
    let o = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "nix/tests/eval-module.nix"])
        .arg("--arg")
        .arg("module")
        .arg(module)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn names(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| {
            x.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| x["name"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn check_nix_passes_on_the_repository() {
    if common::require_tool("nix-instantiate").is_none() {
        return;
    }
    let o = Command::new(repo().join("scripts/check-nix"))
        .current_dir(repo())
        .output()
        .unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("check-nix: all checks passed"), "{out}");
    // The checks that matter most ran and passed, by name.
    for check in [
        "bundle-path-literal-refused",
        "bundle-store-path-string-refused",
        "unit-owns-the-console-before-the-getty",
        "stage-disk-unlocks-disk-entries-and-hints-place",
        "package-is-built-from-cargo-lock",
        "app-runs-the-binary",
    ] {
        assert!(
            out.contains(&format!("\"{check}\"")),
            "{check} missing:\n{out}"
        );
    }
}

#[test]
fn the_store_path_assertion_is_what_refuses_a_bundle_in_the_store() {
    if common::require_tool("nix-instantiate").is_none() {
        return;
    }
    let report = eval_module(&repo().join("nix/installer.nix"));
    assert_eq!(names(&report["failed"]), Vec::<String>::new(), "{report}");
    assert!(names(&report["passed"]).contains(&"bundle-path-literal-refused".to_string()));

    // The same module with that one assertion disabled: the checks must notice.
    let module = std::fs::read_to_string(repo().join("nix/installer.nix")).unwrap();
    let needle = "assertion = bundleOutsideStore;";
    assert_eq!(
        module.matches(needle).count(),
        1,
        "the assertion moved; update this test"
    );
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("installer.nix");
    std::fs::write(&broken, module.replace(needle, "assertion = true;")).unwrap();
    let report = eval_module(&broken);
    let failed = names(&report["failed"]);
    for check in [
        "bundle-path-literal-refused",
        "bundle-store-path-string-refused",
        "bundle-derivation-refused-without-forcing-it",
    ] {
        assert!(
            failed.contains(&check.to_string()),
            "{check} not caught: {report}"
        );
    }
}

#[test]
fn check_nix_fails_on_a_file_that_does_not_parse() {
    if common::require_tool("nix-instantiate").is_none() {
        return;
    }
    // A copy of what the script reads, plus one broken file.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for f in ["flake.nix", "Cargo.toml", "Cargo.lock", "scripts/check-nix"] {
        let to = root.join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo().join(f), to).unwrap();
    }
    for e in walkdir::WalkDir::new(repo().join("nix")) {
        let e = e.unwrap();
        let to = root.join(e.path().strip_prefix(repo()).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
    std::fs::write(root.join("nix/broken.nix"), "{ a = ; }\n").unwrap();
    let o = Command::new(root.join("scripts/check-nix"))
        .current_dir(root)
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("FAIL parse ./nix/broken.nix"), "{out}");
    // The evaluation checks still ran and passed on the intact files.
    assert!(
        out.contains("check-nix: ok ./nix/tests/eval-module.nix"),
        "{out}"
    );
}

#[test]
fn every_module_option_is_documented() {
    if common::require_tool("nix-instantiate").is_none() {
        return;
    }
    let report = eval_module(&repo().join("nix/installer.nix"));
    let options = names(&report["options"]);
    assert!(options.len() >= 8, "{report}");
    let doc = std::fs::read_to_string(repo().join("docs/NIXOS.md")).unwrap();
    for o in options {
        assert!(
            doc.contains(&format!("`{o}`")),
            "docs/NIXOS.md does not document `{o}`"
        );
    }
}
