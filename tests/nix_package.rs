//! The package and what the flake builds from it, checked with Debian's Nix and the stand-in
//! nixpkgs: the package's source holds only what cargo needs, a rustc below `rust-version` is
//! refused with the supported nixpkgs, `rust-version` is the highest a dependency declares,
//! and the VM test's bundle-disk script builds its disk with the real vault.

mod common;
#[path = "nix_files/support.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{copy_checkout, nix_eval, repo, stand_in_pkgs, text};

#[test]
fn the_package_source_holds_what_cargo_needs_and_nothing_else() {
    if common::require_tool("nix-instantiate").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("checkout");
    copy_checkout(&root);
    // What lies around in a real checkout: none of it may reach the store.
    let secrets = root.join("install-secrets/laptop/etc/ssh");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("ssh_host_ed25519_key"), "SECRET KEY\n").unwrap();
    std::fs::write(root.join("laptop.bundle"), "age-encryption.org/v1\n").unwrap();
    std::fs::create_dir_all(root.join("target/debug")).unwrap();
    std::fs::write(root.join("target/debug/leftover"), "x").unwrap();

    let store = dir.path().join("store");
    let o = nix_eval(
        &root,
        &store,
        &format!(
            "toString ({}.callPackage ./nix/package.nix {{ }}).buildArgs.src",
            stand_in_pkgs("1.91.1")
        ),
    );
    assert!(o.status.success(), "{}", text(&o));
    let out: String = serde_json::from_slice(&o.stdout).unwrap();
    let copied = store.join(out.trim_start_matches('/'));
    let mut files = Vec::new();
    for e in walkdir::WalkDir::new(&copied) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            files.push(e.path().strip_prefix(&copied).unwrap().to_path_buf());
        }
    }
    assert!(files.contains(&PathBuf::from("src/main.rs")), "{files:?}");
    assert!(files.contains(&PathBuf::from("Cargo.lock")), "{files:?}");
    for f in &files {
        let top = f.components().next().unwrap().as_os_str().to_str().unwrap();
        assert!(
            ["Cargo.toml", "Cargo.lock", "src", "benches"].contains(&top),
            "{} was copied into the store",
            f.display()
        );
    }
    // Cargo can read the crate from that source alone (its targets included).
    let o = Command::new("cargo")
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .arg("--manifest-path")
        .arg(copied.join("Cargo.toml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let _ = Command::new("chmod")
        .arg("-R")
        .arg("u+w")
        .arg(&store)
        .status();
}

/// nixos-25.05 ships rustc 1.86, below what vault's dependencies declare: the package refuses
/// it with the supported nixpkgs instead of a cargo error deep in the build.
#[test]
fn an_older_rustc_is_refused_with_the_supported_nixpkgs() {
    if common::require_tool("nix-instantiate").is_none() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let eval = |rustc: &str| {
        nix_eval(
            &repo(),
            &store.path().join("store"),
            &format!(
                "({}.callPackage ./nix/package.nix {{ }}).buildArgs.pname",
                stand_in_pkgs(rustc)
            ),
        )
    };
    let o = eval("1.86.0");
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("needs rustc >= 1.88"), "{out}");
    assert!(out.contains("has rustc 1.86.0"), "{out}");
    assert!(out.contains("nixpkgs 25.11"), "{out}");
    // nixos-25.11's rustc (1.91) is accepted.
    let o = eval("1.91.1");
    assert!(o.status.success(), "{}", text(&o));
}

/// Cargo.toml's `rust-version` (the gate above) is the highest `rust-version` a crate the
/// package builds declares (Cargo.lock's dependencies of vault, dev-dependencies left out): a
/// dependency update that raises it fails here, not in a user's build.
#[test]
fn rust_version_is_the_highest_any_dependency_declares() {
    let o = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let version = |v: &str| -> Vec<u64> {
        let mut v: Vec<u64> = v.split('.').map(|x| x.parse().unwrap()).collect();
        v.resize(3, 0);
        v
    };
    let packages: std::collections::BTreeMap<&str, &serde_json::Value> = m["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p))
        .collect();
    let nodes: std::collections::BTreeMap<&str, &serde_json::Value> = m["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    // Every crate reachable from vault through normal and build dependencies.
    let root = m["resolve"]["root"].as_str().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![root];
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for d in nodes[id]["deps"].as_array().unwrap() {
            let dev_only = d["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .all(|k| k["kind"] == "dev");
            if !dev_only {
                todo.push(d["pkg"].as_str().unwrap());
            }
        }
    }
    let ours = version(
        packages[root]["rust_version"]
            .as_str()
            .expect("Cargo.toml has a rust-version"),
    );
    let (need, who) = seen
        .iter()
        .filter(|id| **id != root)
        .filter_map(|id| {
            let p = packages[id];
            let rv = p["rust_version"].as_str()?;
            Some((
                version(rv),
                format!("{} {} (rust-version {rv})", p["name"], p["version"]),
            ))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .unwrap();
    assert_eq!(
        ours, need,
        "Cargo.toml's rust-version must be the highest a dependency of the package declares: {who}"
    );
}

/// The VM test's bundle disk (nix/tests/vm-unlock.nix), built as Nix would: its runCommand
/// script, run by bash in an empty directory with `vault` on PATH and keys-example read-only
/// (as in the store). The weak test KDF needs --weak-kdf (pack refuses it with exit code 6
/// otherwise); the result is a bundle followed by the vault-media trailer.
#[test]
fn the_vm_test_bundle_disk_script_builds_the_disk() {
    if common::require_tool("nix-instantiate").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let o = nix_eval(
        &repo(),
        &store,
        "let nixpkgs = import ./nix/tests/nixpkgs/outputs.nix { self = nixpkgs // { outPath = ./nix/tests/nixpkgs; }; }; \
         self = (import ./flake.nix).outputs { inherit self nixpkgs; }; \
         in self.checks.x86_64-linux.vm-unlock.bundleDisk.script",
    );
    assert!(o.status.success(), "{}", text(&o));
    let script: String = serde_json::from_slice(&o.stdout).unwrap();
    // keys-example as the store holds it: a read-only copy.
    let keys = dir.path().join("keys-example");
    for e in walkdir::WalkDir::new(repo().join("keys-example")) {
        let e = e.unwrap();
        let to = keys.join(e.path().strip_prefix(repo().join("keys-example")).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
    let _ = Command::new("chmod")
        .args(["-R", "a-w"])
        .arg(&keys)
        .status();
    let start = script.find("/nix/store/").expect("keys-example path");
    let end = start + script[start..].find("-keys-example").unwrap() + "-keys-example".len();
    let script = script.replace(&script[start..end], keys.to_str().unwrap());
    let build = dir.path().join("build");
    std::fs::create_dir(&build).unwrap();
    let bin = common::vault_bin();
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new("bash")
        .args(["-e", "-c", &script])
        .env("out", dir.path().join("out"))
        .env("PATH", path)
        .current_dir(&build)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let disk = std::fs::read(dir.path().join("out")).unwrap();
    assert_eq!(disk.len() % 512, 0);
    assert!(disk.starts_with(b"age-encryption.org/v1\n"), "not a bundle");
    let trailer = &disk[disk.len() - 512..];
    assert!(
        trailer.starts_with(b"vault-media v1\nlength "),
        "no trailer"
    );
    let _ = Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(dir.path())
        .status();
}
