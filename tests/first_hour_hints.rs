//! Errors a new user meets in the first hour, each with a hint that is the next thing to
//! type: a flake given as a bare name (which `nix` reads as a registry entry), a `flake.nix`
//! git does not track (which `nix` does not see), and a configuration check hint whose TOML
//! is pasted into `vault.toml` as printed. No `vault.toml` yet: tests/cmd/first-run.md.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{ok, vault_in as vault, FAST_KDF};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `hint:` line of an error report.
fn hint(o: &Output) -> String {
    let e = stderr(o);
    e.lines()
        .find_map(|l| l.trim_start().strip_prefix("hint: "))
        .unwrap_or_else(|| panic!("no hint in: {e}"))
        .to_owned()
}

/// A folder `nixcfg/` with a flake whose laptop configuration reads an SSH host key from
/// `/var/lib/ssh/host_key`, and a secrets folder with host laptop (`host add`).
fn workspace(d: &Path) {
    ok(vault(d, &["init"]));
    ok(vault(d, &["host", "add", "laptop"]));
    std::fs::write(d.join("pw"), "correct horse battery staple\n").unwrap();
    std::fs::create_dir_all(d.join("nixcfg")).unwrap();
    std::fs::write(
        d.join("nixcfg/flake.nix"),
        r#"{
  outputs = { self }: {
    nixosConfigurations.laptop.config = {
      services.openssh.enable = true;
      services.openssh.hostKeys = [ { path = "/var/lib/ssh/host_key"; type = "ed25519"; } ];
    };
  };
}
"#,
    )
    .unwrap();
}

fn pack(d: &Path, flake: &str) -> Output {
    let _ = std::fs::remove_file(d.join("out.bundle"));
    Command::new(common::vault_bin())
        .current_dir(d)
        .args(["pack", "-o", "out.bundle", "--passphrase-file", "pw"])
        .args(FAST_KDF)
        .args(["--flake", flake])
        .output()
        .unwrap()
}

#[test]
fn a_bare_flake_name_gets_the_path_form() {
    if common::require_tool("nix").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    workspace(d);
    let o = pack(d, "nixcfg#laptop");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let h = hint(&o);
    assert!(h.contains("./nixcfg#laptop"), "{h}");
    assert!(!d.join("out.bundle").exists());
}

#[test]
fn an_untracked_flake_nix_gets_git_add() {
    if common::require_tool("nix").is_none() || common::require_tool("git").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    workspace(d);
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .current_dir(d.join("nixcfg"))
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
    };
    git(&["init", "-q"]);
    std::fs::write(d.join("nixcfg/README"), "config\n").unwrap();
    git(&["add", "README"]);
    let o = pack(d, "./nixcfg#laptop");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let h = hint(&o);
    assert!(h.contains("git add"), "{h}");
    // The hint is right: once tracked (not committed), the flake evaluates.
    git(&["add", "flake.nix"]);
    let o = pack(d, "./nixcfg#laptop");
    assert_ne!(o.status.code(), Some(1), "{}", stderr(&o));
}

/// The configuration check's hint for a key that is not placed is TOML that parses when
/// pasted at the end of `vault.toml`, and the pack then passes the check.
#[test]
fn a_pasted_entry_hint_is_valid_toml() {
    if common::require_tool("nix").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    workspace(d);
    let o = pack(d, "./nixcfg#laptop");
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    let e = stderr(&o);
    // The problem's hint: "add to vault.toml:" and the lines to paste below it.
    let at = e
        .find("add to vault.toml:")
        .unwrap_or_else(|| panic!("{e}"));
    let pasted: String = e[at..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("vault: ") && !l.starts_with("error: "))
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    assert!(pasted.contains("[[hosts.laptop.entry]]"), "{e}");
    let mut toml = std::fs::read_to_string(d.join("vault.toml")).unwrap();
    toml.push_str(&pasted);
    std::fs::write(d.join("vault.toml"), &toml).unwrap();
    let m = vault::manifest::Manifest::load(&d.join("vault.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{toml}"));
    assert!(m
        .entries_for("laptop")
        .any(|e| e.target == "/var/lib/ssh/host_key"));
    let o = pack(d, "./nixcfg#laptop");
    assert!(o.status.success(), "{}", stderr(&o));
}
