//! Helpers of the Nix files' tests (tests/nix_files.rs, tests/nix_package.rs).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn text(o: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `nix/tests/eval-module.nix` with `module`, as JSON.
pub fn eval_module(module: &Path) -> serde_json::Value {
    let store = tempfile::tempdir().unwrap();
    let o = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "--store"])
        .arg(store.path().join("store"))
        .arg("nix/tests/eval-module.nix")
        .arg("--arg")
        .arg("module")
        .arg(module)
        .env("NIX_CONFIG", "build-users-group =")
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Copies what the flake and scripts/check-nix read into `root`.
pub fn copy_checkout(root: &Path) {
    for f in ["flake.nix", "Cargo.toml", "Cargo.lock", "scripts/check-nix"] {
        let to = root.join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo().join(f), to).unwrap();
    }
    for dir in ["nix", "src", "benches", "keys-example"] {
        for e in walkdir::WalkDir::new(repo().join(dir)) {
            let e = e.unwrap();
            let to = root.join(e.path().strip_prefix(repo()).unwrap());
            if e.file_type().is_dir() {
                std::fs::create_dir_all(&to).unwrap();
            } else {
                std::fs::copy(e.path(), &to).unwrap();
            }
        }
    }
}

/// `nix-instantiate --eval --json -E expr` in `dir`, with a store of its own under `store`.
pub fn nix_eval(dir: &Path, store: &Path, expr: &str) -> Output {
    Command::new("nix-instantiate")
        .args([
            "--eval",
            "--strict",
            "--json",
            "--read-write-mode",
            "--store",
        ])
        .arg(store)
        .arg("-E")
        .arg(expr)
        .env("NIX_CONFIG", "build-users-group =")
        .current_dir(dir)
        .output()
        .unwrap()
}

/// The stand-in package set for x86_64-linux, with `rustc` at `rustc_version`.
pub fn stand_in_pkgs(rustc_version: &str) -> String {
    format!(
        "(let lib = import ./nix/tests/nixpkgs/lib.nix; nixos = import ./nix/tests/nixpkgs/nixos.nix {{ inherit lib; }}; \
         in import ./nix/tests/nixpkgs/pkgs.nix {{ inherit lib nixos; system = \"x86_64-linux\"; rustcVersion = \"{rustc_version}\"; }})"
    )
}

pub fn names(v: &serde_json::Value) -> Vec<String> {
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
