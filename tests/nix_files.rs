//! The Nix files, checked with Debian's Nix (no nixpkgs, no network): every file parses, the
//! installer module and the flake evaluate through the stand-in nixpkgs (nix/tests/nixpkgs)
//! with the expected options, unit and assertions, `nix flake check` passes (scripts/check-nix),
//! and those checks do catch a broken module. The package (its source, the rustc gate, the VM
//! test's bundle disk) is checked in tests/nix_package.rs, the unit's script run in
//! tests/nix_unit.rs.
mod common;
#[path = "nix_files/support.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{copy_checkout, eval_module, names, nix_eval, repo, text};

/// The start of an expression that evaluates NixOS modules through the stand-in nixpkgs.
const NIXOS: &str = "let lib = import ./nix/tests/nixpkgs/lib.nix; nixos = import ./nix/tests/nixpkgs/nixos.nix { inherit lib; }; ";

/// scripts/check-nix run in the checkout `root`: the run and what it printed.
fn check_nix(root: &Path) -> (Output, String) {
    let o = Command::new(root.join("scripts/check-nix"))
        .current_dir(root)
        .output()
        .unwrap();
    let out = text(&o);
    (o, out)
}

/// `expr` evaluated in the repository, with a store of its own.
fn eval(expr: &str) -> Output {
    let store = tempfile::tempdir().unwrap();
    nix_eval(&repo(), &store.path().join("store"), expr)
}

/// [`eval`] succeeds; its JSON value.
fn eval_json<T: serde::de::DeserializeOwned>(expr: &str) -> T {
    let o = eval(expr);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The first `ini` block of docs/NIXOS.md (`doc`): the unit it shows.
fn unit_block(doc: &str) -> &str {
    doc.split("```ini\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("docs/NIXOS.md has no ini block")
}

/// What `systemd-escape ARGS` prints, trimmed.
fn systemd_escape(args: &[&str]) -> String {
    let o = Command::new("systemd-escape").args(args).output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn check_nix_passes_on_the_repository() {
    if common::require_tool("nix-instantiate").is_none() {
        return;
    }
    let (o, out) = check_nix(&repo());
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
    let (o, out) = check_nix(root);
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
    let (o, out) = check_nix(root);
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
    let list = serde_json::to_string(&paths).unwrap();
    // The installer module names the units itself (stage "all" with each path as its root).
    let module: Vec<String> = eval_json(&format!(
            "{NIXOS}\
             unit = p: builtins.head (nixos.evalNixos {{ modules = [ ./nix/installer.nix {{ programs.vault-installer = {{ enable = true; autoUnlock = {{ enable = true; stage = \"all\"; root = p; }}; }}; }} ]; \
               pkgsFor = _: {{ callPackage = _: _: {{ type = \"derivation\"; name = \"v\"; outPath = \"/v\"; meta.mainProgram = \"vault\"; }}; coreutils = {{ type = \"derivation\"; name = \"c\"; outPath = \"/c\"; }}; util-linux = {{ type = \"derivation\"; name = \"u\"; outPath = \"/u\"; }}; }}; }}).config.systemd.services.vault-unlock.wants; \
             in map unit (builtins.fromJSON ''{list}'')"
        ));
    for (p, got) in paths.iter().zip(module) {
        let want = systemd_escape(&["--path", "--suffix=mount", p]);
        assert_eq!(got, want, "the module's unit for {p}");
    }
    let ours: Vec<String> = eval_json(&format!(
            "map (import ./nix/tests/nixpkgs/nixos.nix {{ lib = import ./nix/tests/nixpkgs/lib.nix; }}).utils.escapeSystemdPath (builtins.fromJSON ''{list}'')"
        ));
    for (p, got) in paths.iter().zip(ours) {
        assert_eq!(got, systemd_escape(&["--path", p]), "{p}");
    }
}

#[test]
fn a_tty_with_a_space_is_refused_with_the_option_and_the_pattern() {
    if common::require_tool("nix-instantiate").is_none() {
        return;
    }
    let o = eval(&format!(
        "{NIXOS}\
         in (nixos.evalNixos {{ modules = [ ./nix/installer.nix {{ programs.vault-installer = {{ enable = true; autoUnlock = {{ enable = true; tty = \"tty 1\"; }}; }}; }} ]; \
         pkgsFor = _: {{ callPackage = _: _: {{ type = \"derivation\"; name = \"v\"; outPath = \"/v\"; }}; }}; }}).config.programs.vault-installer.autoUnlock.tty"
    ));
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
    let ini = unit_block(&doc);
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
    let unit: String = eval_json("(import ./nix/tests/eval-module.nix { }).units.default");
    let doc = std::fs::read_to_string(repo().join("docs/NIXOS.md")).unwrap();
    let block = unit_block(&doc);
    for line in unit.lines() {
        // Store paths are shown as `…`: the variable's name must be there.
        if let Some(var) = line.strip_prefix("Environment=\"") {
            let name = var.split('=').next().unwrap_or_default();
            assert!(
                block
                    .lines()
                    .any(|l| l.starts_with(&format!("Environment=\"{name}="))),
                "docs/NIXOS.md's unit lacks `Environment=\"{name}=…\"`"
            );
            continue;
        }
        if line.is_empty() || line.starts_with("ExecStart=") {
            continue;
        }
        assert!(
            block.lines().any(|l| l == line),
            "docs/NIXOS.md's unit lacks `{line}`"
        );
    }
}

/// The `host` option says how vault chooses the host when it is null, as vault unlock does it
/// (docs/guide/fleet.md): the only host, or among several the one whose recorded identity
/// matches this machine, else the host menu. The module's description and the docs' table
/// say the same.
#[test]
fn the_host_option_says_how_vault_recognises_the_machine() {
    if common::require_tool("nix-instantiate").is_none() {
        return;
    }
    let module: String = eval_json(&format!(
        "{NIXOS}in (nixos.evalNixos {{ modules = [ ./nix/installer.nix ]; pkgsFor = _: {{ }}; }}).options.programs.vault-installer.autoUnlock.host.description"
    ));
    let module = module.split_whitespace().collect::<Vec<_>>().join(" ");
    let doc = std::fs::read_to_string(repo().join("docs/NIXOS.md")).unwrap();
    let row = doc
        .lines()
        .find(|l| l.starts_with("| `programs.vault-installer.autoUnlock.host` |"))
        .expect("docs/NIXOS.md has no row for autoUnlock.host");
    for (what, text) in [
        ("nix/installer.nix", module.as_str()),
        ("docs/NIXOS.md", row),
    ] {
        for says in ["only host", "recorded identity", "host menu"] {
            assert!(text.contains(says), "{what} does not say {says:?}: {text}");
        }
    }
}

/// The installer module runs the vault of its package, from the Nix store: no script mounts
/// a `VAULT-BIN` partition or runs a vault copied from the medium (that is the official
/// installer's way, where the binary is checked by its SHA-256 first: docs/MEDIA.md), and no
/// Nix file mentions one.
#[test]
fn the_module_runs_vault_from_the_store_only() {
    if common::require_tool("nix-instantiate").is_none() {
        return;
    }
    let report = eval_module(&repo().join("nix/installer.nix"));
    let vault = "/nix/store/00000000000000000000000000000000-vault-bundle-0.1.0/bin/vault";
    let scripts = report["scripts"].as_object().unwrap();
    assert!(scripts.len() >= 4, "{report}");
    for (name, script) in scripts {
        let script = script.as_str().unwrap();
        assert!(
            script.contains(&format!("{vault} unlock")),
            "{name}: {script}"
        );
        for line in script.lines().map(str::trim) {
            // Comments, and messages in single quotes: text, nothing runs.
            if line.starts_with('#') || line.starts_with("say '") || line.starts_with("tell '") {
                continue;
            }
            for word in line.split_whitespace() {
                let word = word.trim_matches(|c| c == '\'' || c == '"');
                assert!(
                    !word.ends_with("/vault") || word == vault,
                    "{name}: runs {word}, not the package's vault: {line}"
                );
                assert!(
                    !["mount", "/bin/mount", "findfs", "blkid"].contains(&word),
                    "{name}: mounts or looks up a device: {line}"
                );
            }
            assert!(!line.contains("VAULT-BIN"), "{name}: {line}");
        }
    }
    for e in walkdir::WalkDir::new(repo().join("nix")) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            assert!(
                !text.to_uppercase().contains("VAULT-BIN"),
                "{} names the VAULT-BIN partition",
                e.path().display()
            );
        }
    }
}
