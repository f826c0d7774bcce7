//! The Nix files, checked with Debian's Nix (no nixpkgs, no network): every file parses, the
//! installer module and the flake evaluate through the stand-in nixpkgs (nix/tests/nixpkgs)
//! with the expected options, unit and assertions, `nix flake check` passes (scripts/check-nix),
//! and those checks do catch a broken module, a leaky package source and an old rustc. The
//! unit's script itself is run in tests/nix_unit.rs.
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
fn copy_checkout(root: &Path) {
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
fn nix_eval(dir: &Path, store: &Path, expr: &str) -> Output {
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
fn stand_in_pkgs(rustc_version: &str) -> String {
    format!(
        "(let lib = import ./nix/tests/nixpkgs/lib.nix; nixos = import ./nix/tests/nixpkgs/nixos.nix {{ inherit lib; }}; \
         in import ./nix/tests/nixpkgs/pkgs.nix {{ inherit lib nixos; system = \"x86_64-linux\"; rustcVersion = \"{rustc_version}\"; }})"
    )
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
    assert!(out.contains("check-nix: ok nix flake check"), "{out}");
    // The checks that matter most ran and passed, by name.
    for check in [
        "bundle-path-literal-refused",
        "bundle-store-path-string-refused",
        "unit-owns-the-console-before-the-getty",
        "switch-does-not-restart-the-prompt",
        "kernel-command-line-skips",
        "device-bundle-waits-for-udev",
        "stage-all-waits-for-the-mount-without-requiring-it",
        "package-is-built-from-cargo-lock",
        "package-source-is-an-allow-list",
        "app-runs-the-binary",
        "overlay-adds-and-never-shadows",
        "result-survives-the-console-being-cleared",
        "stage-all-on-an-installer-iso",
        "device-label-with-a-question-mark",
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
    copy_checkout(root);
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

#[test]
fn nix_flake_check_refuses_a_module_given_as_a_bare_path() {
    if common::require_tool("nix").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    copy_checkout(root);
    let flake = std::fs::read_to_string(root.join("flake.nix")).unwrap();
    let start = flake
        .find("nixosModules.installer = {")
        .expect("module value moved");
    let end = start + flake[start..].find("};").unwrap() + 2;
    let old = format!(
        "{}nixosModules.installer = ./nix/installer.nix;{}",
        &flake[..start],
        &flake[end..]
    );
    std::fs::write(root.join("flake.nix"), old).unwrap();
    let o = Command::new(root.join("scripts/check-nix"))
        .current_dir(root)
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("FAIL nix flake check"), "{out}");
    assert!(
        out.contains("module must be a function or an attribute set") || out.contains("modules"),
        "{out}"
    );
}

#[test]
fn escape_systemd_path_matches_systemd_escape() {
    if common::require_tool("nix-instantiate").is_none()
        || common::require_tool("systemd-escape").is_none()
    {
        return;
    }
    let paths = [
        "/dev/disk/by-label/VAULT-1",
        "/mnt",
        "/mnt/target disk",
        "/dev/disk/by-id/usb-SanDisk_Cruzer_4C53-0:0-part3",
        "//mnt//x/",
        "/.hidden/a.b",
        "/",
        "/dev/disk/by-label/WHY?",
        "/dev/disk/by-label/a b=c~",
        "/a/./b",
    ];
    let store = tempfile::tempdir().unwrap();
    let list = serde_json::to_string(&paths).unwrap();
    // The installer module names the units itself (stage "all" with each path as its root).
    let o = nix_eval(
        &repo(),
        &store.path().join("store"),
        &format!(
            "let lib = import ./nix/tests/nixpkgs/lib.nix; nixos = import ./nix/tests/nixpkgs/nixos.nix {{ inherit lib; }}; \
             unit = p: builtins.head (nixos.evalNixos {{ modules = [ ./nix/installer.nix {{ programs.vault-installer = {{ enable = true; autoUnlock = {{ enable = true; stage = \"all\"; root = p; }}; }}; }} ]; \
               pkgsFor = _: {{ callPackage = _: _: {{ type = \"derivation\"; name = \"v\"; outPath = \"/v\"; meta.mainProgram = \"vault\"; }}; coreutils = {{ type = \"derivation\"; name = \"c\"; outPath = \"/c\"; }}; util-linux = {{ type = \"derivation\"; name = \"u\"; outPath = \"/u\"; }}; }}; }}).config.systemd.services.vault-unlock.wants; \
             in map unit (builtins.fromJSON ''{list}'')"
        ),
    );
    assert!(o.status.success(), "{}", text(&o));
    let module: Vec<String> = serde_json::from_slice(&o.stdout).unwrap();
    for (p, got) in paths.iter().zip(module) {
        let o = Command::new("systemd-escape")
            .args(["--path", "--suffix=mount", p])
            .output()
            .unwrap();
        let want = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert_eq!(got, want, "the module's unit for {p}");
    }
    let o = nix_eval(
        &repo(),
        &store.path().join("store"),
        &format!(
            "map (import ./nix/tests/nixpkgs/nixos.nix {{ lib = import ./nix/tests/nixpkgs/lib.nix; }}).utils.escapeSystemdPath (builtins.fromJSON ''{list}'')"
        ),
    );
    assert!(o.status.success(), "{}", text(&o));
    let ours: Vec<String> = serde_json::from_slice(&o.stdout).unwrap();
    for (p, got) in paths.iter().zip(ours) {
        let o = Command::new("systemd-escape")
            .args(["--path", p])
            .output()
            .unwrap();
        let want = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert_eq!(got, want, "{p}");
    }
}

#[test]
fn a_tty_with_a_space_is_refused_with_the_option_and_the_pattern() {
    if common::require_tool("nix-instantiate").is_none() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let o = nix_eval(
        &repo(),
        &store.path().join("store"),
        "let lib = import ./nix/tests/nixpkgs/lib.nix; nixos = import ./nix/tests/nixpkgs/nixos.nix { inherit lib; }; \
         in (nixos.evalNixos { modules = [ ./nix/installer.nix { programs.vault-installer = { enable = true; autoUnlock = { enable = true; tty = \"tty 1\"; }; }; } ]; \
         pkgsFor = _: { callPackage = _: _: { type = \"derivation\"; name = \"v\"; outPath = \"/v\"; }; }; }).config.programs.vault-installer.autoUnlock.tty",
    );
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("programs.vault-installer.autoUnlock.tty")
            && out.contains("string matching the pattern"),
        "{out}"
    );
}

#[test]
fn the_docs_match_the_module() {
    let doc = std::fs::read_to_string(repo().join("docs/NIXOS.md")).unwrap();
    // systemd-lib.nix writes [Install] for wantedBy, and one line per dependency list.
    let ini = doc
        .split("```ini\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    assert!(ini.lines().any(|l| l == "[Install]"), "{ini}");
    assert!(
        ini.lines().any(|l| l == "WantedBy=multi-user.target"),
        "{ini}"
    );
    assert_eq!(
        ini.lines().filter(|l| l.starts_with("After=")).count(),
        1,
        "{ini}"
    );
    assert_eq!(
        ini.lines().filter(|l| l.starts_with("Before=")).count(),
        1,
        "{ini}"
    );
    // Conventions: the formatter nixpkgs keeps, a Nix that evaluates nixpkgs, units that
    // exist, and an example module that has the `pkgs` it uses.
    let mut all = doc.clone();
    for e in std::fs::read_dir(repo().join("docs/guide")).unwrap() {
        all.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    for stale in [
        "nixfmt-rfc-style",
        "Nix ≥ 2.4",
        "systemctl status sops-nix",
        "# environment.systemPackages = [ pkgs.",
    ] {
        assert!(!all.contains(stale), "the docs still say {stale:?}");
    }
    assert!(
        doc.contains("({ pkgs, ... }: {\n          nixpkgs.hostPlatform"),
        "the example module takes pkgs"
    );
    assert!(
        doc.contains("vault.skip"),
        "docs/NIXOS.md does not document vault.skip"
    );
    assert!(doc.contains("X-RestartIfChanged=false"));
    assert!(doc.contains("StandardError=journal"));
    assert!(
        !doc.contains("On Nix < 2.19"),
        "flakes are experimental on every Nix"
    );
    // Commands typed on the live system by the autologin user need sudo.
    let mut docs = vec![repo().join("docs/NIXOS.md"), repo().join("README.md")];
    for e in std::fs::read_dir(repo().join("docs/guide")).unwrap() {
        docs.push(e.unwrap().path());
    }
    for path in docs {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut in_code = false;
        for line in text.lines() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
                continue;
            }
            let l = line.trim_start();
            if in_code
                && ["vault unlock", "vault place", "vault wipe"]
                    .iter()
                    .any(|c| l.starts_with(c))
            {
                panic!(
                    "{}: `{l}` is typed on the live system without sudo",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn the_unit_shown_in_the_docs_is_the_one_rendered() {
    if common::require_tool("nix-instantiate").is_none() {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let o = nix_eval(
        &repo(),
        &store.path().join("store"),
        "(import ./nix/tests/eval-module.nix { }).units.default",
    );
    assert!(o.status.success(), "{}", text(&o));
    let unit: String = serde_json::from_slice(&o.stdout).unwrap();
    let doc = std::fs::read_to_string(repo().join("docs/NIXOS.md")).unwrap();
    let block = doc
        .split("```ini\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("docs/NIXOS.md has no ini block");
    for line in unit.lines() {
        if line.is_empty() || line.starts_with("Environment=") || line.starts_with("ExecStart=") {
            continue;
        }
        assert!(
            block.lines().any(|l| l == line),
            "docs/NIXOS.md's unit lacks `{line}`"
        );
    }
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
