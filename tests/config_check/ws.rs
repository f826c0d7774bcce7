//! The test workspace of the configuration check's tests (tests/config_check.rs,
//! tests/config_check_modules.rs): a vault.toml with hosts, and a flake `nixcfg/` whose
//! configurations go through nix/tests/config-check.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use super::common::{require_tool, vault_bin, FAST_KDF};

pub const HOST_KEY: &str = "/etc/ssh/ssh_host_ed25519_key";

pub struct Ws {
    _tmp: tempfile::TempDir,
    pub d: PathBuf,
}

impl Ws {
    /// vault.toml with [hosts.NAME] (flake = "nixcfg#NAME") for each host, completed by
    /// `vault host add NAME`; an empty flake folder `nixcfg/`.
    pub fn new(hosts: &[&str]) -> Ws {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_path_buf();
        let mut toml = String::from("version = 1\n");
        for h in hosts {
            toml.push_str(&format!("[hosts.{h}]\nflake = \"nixcfg#{h}\"\n"));
        }
        std::fs::write(d.join("vault.toml"), toml).unwrap();
        std::fs::write(d.join("pw"), "correct horse battery staple\n").unwrap();
        std::fs::create_dir_all(d.join("nixcfg/secrets")).unwrap();
        let ws = Ws { _tmp: tmp, d };
        for h in hosts {
            let o = ws.vault(&["host", "add", h]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        ws
    }

    /// [`Ws::new`] for one host, `laptop`, whose configuration is `body` (see [`Ws::config`]).
    pub fn laptop(body: &str) -> Ws {
        let ws = Ws::new(&["laptop"]);
        ws.config(body);
        ws
    }

    /// nixcfg/flake.nix with the one configuration `laptop` (see [`Ws::flake`]).
    pub fn config(&self, body: &str) {
        self.flake(&[("laptop", body)]);
    }

    /// vault.toml rewritten by `edit`.
    pub fn edit_toml(&self, edit: impl FnOnce(&str) -> String) {
        let path = self.d.join("vault.toml");
        let toml = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, edit(&toml)).unwrap();
    }

    /// Runs the shell command `line` (a fix a hint gives) in the workspace; asserts success.
    pub fn sh(&self, line: &str) {
        let o = Command::new("sh")
            .args(["-c", line])
            .current_dir(&self.d)
            .output()
            .unwrap();
        assert!(o.status.success(), "{line}: {}", err(&o));
    }

    pub fn vault(&self, args: &[&str]) -> Output {
        Command::new(vault_bin())
            .args(args)
            .current_dir(&self.d)
            .output()
            .unwrap()
    }

    pub fn pack_cmd(&self, extra: &[&str]) -> Command {
        let mut c = Command::new(vault_bin());
        c.current_dir(&self.d)
            .args(["pack", "-o", "out.bundle", "--passphrase-file", "pw"])
            .args(FAST_KDF)
            .args(extra);
        c
    }

    pub fn pack(&self, extra: &[&str]) -> Output {
        let _ = std::fs::remove_file(self.d.join("out.bundle"));
        self.pack_cmd(extra).output().unwrap()
    }

    /// nixcfg/flake.nix with one NixOS configuration per (name, module body), evaluated by
    /// nix/tests/config-check (copied into the flake, with the real sources when given).
    pub fn flake(&self, configs: &[(&str, &str)]) {
        let sources = install_harness(&self.d.join("nixcfg/vault-nix"));
        let mut text = format!(
            "{{\n  outputs = {{ self }}:\n    let h = import ./vault-nix/config-check {{ sources = {sources}; }}; in {{\n    nixosConfigurations = {{\n"
        );
        for (name, body) in configs {
            text.push_str(&format!(
                "      \"{name}\" = h.nixosSystem [ ({{ lib, ... }}: {body}) ];\n"
            ));
        }
        text.push_str("    };\n  };\n}\n");
        std::fs::write(self.d.join("nixcfg/flake.nix"), text).unwrap();
    }

    /// Adds an entry for `host` placing `source` (a new file holding `content`) at `target`.
    pub fn place(&self, host: &str, source: &str, content: &str, target: &str) -> usize {
        let path = self.d.join(source);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        let mut toml = std::fs::read_to_string(self.d.join("vault.toml")).unwrap();
        toml.push_str(&format!(
            "\n[[hosts.{host}.entry]]\nsource = \"{source}\"\ntarget = \"{target}\"\nmode = \"0600\"\n"
        ));
        std::fs::write(self.d.join("vault.toml"), toml).unwrap();
        self.line_of(host, target)
    }

    /// Adds an entry for `host` placing a copy of `file` of [`sb_keys`] (e.g. `keys/db/db.key`)
    /// at `target`.
    pub fn place_sb(&self, host: &str, file: &str, target: &str) -> usize {
        let text = std::fs::read_to_string(sb_keys().join(file)).unwrap();
        let source = format!("hosts/{host}/sb/{}", target.trim_start_matches('/'));
        self.place(host, &source, &text, target)
    }

    /// `vault host add HOST --secure-boot ARGS`: sbctl's layout in hosts/HOST/secure-boot/pki
    /// and the entry placing that folder; returns the folder.
    pub fn secure_boot(&self, host: &str, args: &[&str]) -> PathBuf {
        let o = self.vault(&[&["host", "add", host, "--secure-boot"], args].concat());
        assert!(o.status.success(), "{}", err(&o));
        self.d.join(format!("hosts/{host}/secure-boot/pki"))
    }

    /// A new age identity, which `nixcfg/secrets/wifi.yaml` (made by the real `sops`) is
    /// encrypted to, placed for `laptop` at `target`: the entry's line.
    pub fn sops_key_placed_at(&self, sops: &Path, target: &str) -> usize {
        let id = super::common::write_identity(&self.d.join("age-key.txt"));
        self.sops_file(sops, "wifi.yaml", &id);
        let key = std::fs::read_to_string(self.d.join("age-key.txt")).unwrap();
        self.place("laptop", "hosts/laptop/age-key.txt", &key, target)
    }

    /// `laptop`'s host key placed a second time, at `target`.
    pub fn host_key_also_at(&self, target: &str) {
        let key = std::fs::read_to_string(self.key("laptop")).unwrap();
        self.place("laptop", "hosts/laptop/persisted_host_key", &key, target);
    }

    pub fn key(&self, host: &str) -> PathBuf {
        self.d.join(format!("hosts/{host}/ssh_host_ed25519_key"))
    }

    pub fn age_recipient(&self, host: &str) -> String {
        let o = self.vault(&[
            "keys",
            "convert",
            "--public",
            self.key(host).to_str().unwrap(),
        ]);
        assert!(o.status.success());
        String::from_utf8(o.stdout).unwrap().trim().to_owned()
    }

    pub fn ssh_public(&self, host: &str) -> String {
        let p = self
            .d
            .join(format!("hosts/{host}/ssh_host_ed25519_key.pub"));
        std::fs::read_to_string(p).unwrap().trim().to_owned()
    }

    /// The manifest line of the entry placing `target` for `host`.
    pub fn line_of(&self, host: &str, target: &str) -> usize {
        let m = vault::manifest::Manifest::load(&self.d.join("vault.toml")).unwrap();
        let line = m
            .entries_for(host)
            .find(|e| e.target == target)
            .map(|e| e.line);
        line.expect("entry")
    }

    /// A sops file `nixcfg/secrets/NAME` encrypted by the real sops to `recipient`.
    pub fn sops_file(&self, sops: &Path, name: &str, recipient: &str) {
        let dir = self.d.join("nixcfg/secrets");
        std::fs::write(dir.join(name), "wifi: hunter2\n").unwrap();
        let o = Command::new(sops)
            .current_dir(&dir)
            .args(["--encrypt", "--age", recipient, "--in-place", name])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "sops: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// An agenix file `nixcfg/secrets/NAME` encrypted by the real age to `recipient`.
    pub fn age_file(&self, age: &Path, name: &str, recipient: &str) {
        let dir = self.d.join("nixcfg/secrets");
        let o = Command::new(age)
            .args(["-r", recipient, "-o"])
            .arg(dir.join(name))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(b"secret")?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(o.status.success());
    }
}

/// Copies nix/tests/config-check and the stand-in nixpkgs into `dir` (a flake reads only its
/// own files), and the real sources named by VAULT_REAL_NIX_SOURCES (`KIND=DIR`, one a line
/// or separated by spaces when no DIR holds one, as scripts/check-nix --real sets it) into
/// `dir/real`; returns the `sources` argument.
pub fn install_harness(dir: &Path) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_tree(
        &repo.join("nix/tests/config-check"),
        &dir.join("config-check"),
    );
    copy_tree(&repo.join("nix/tests/nixpkgs"), &dir.join("nixpkgs"));
    let mut sources = String::from("{ ");
    let specs = std::env::var("VAULT_REAL_NIX_SOURCES").unwrap_or_default();
    let specs: Vec<&str> = if specs.contains('\n') {
        specs.lines().filter(|l| !l.trim().is_empty()).collect()
    } else {
        specs.split_whitespace().collect()
    };
    for spec in specs {
        let (kind, from) = spec.split_once('=').expect("KIND=DIR");
        let key = if kind == "nixpkgs-lib" { "lib" } else { kind };
        copy_tree(Path::new(from), &dir.join("real").join(kind));
        sources.push_str(&format!("{key} = ./vault-nix/real/{kind}; "));
    }
    sources.push('}');
    sources
}

fn copy_tree(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git")
    {
        let e = e.unwrap();
        let dest = to.join(e.path().strip_prefix(from).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else if e.file_type().is_file() {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// sbctl's layout (`pki`) made by `vault host add --secure-boot` once per test binary (three
/// RSA-4096 keys take seconds), to copy keys from. Folders of earlier runs (their process is
/// gone) are removed.
pub fn sb_keys() -> &'static Path {
    static KEYS: OnceLock<PathBuf> = OnceLock::new();
    KEYS.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("config-check-sb");
        std::fs::create_dir_all(&root).unwrap();
        for e in std::fs::read_dir(&root).unwrap().flatten() {
            let pid = e.file_name().to_string_lossy().into_owned();
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let dir = root.join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("vault.toml"), "version = 1\n").unwrap();
        let o = Command::new(vault_bin())
            .args(["host", "add", "sb", "--secure-boot"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", err(&o));
        dir.join("hosts/sb/secure-boot/pki")
    })
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The problem lines (`vault: HOST: …`) on stderr.
pub fn problems(o: &Output) -> Vec<String> {
    err(o)
        .lines()
        .filter(|l| l.starts_with("vault: ") && !l.contains("check skipped"))
        .map(str::to_owned)
        .collect()
}

/// Asserts that the run succeeded, showing stderr otherwise.
pub fn succeeds(o: &Output) {
    assert!(o.status.success(), "{}", err(o));
}

/// Asserts that the pack succeeded with no problem line.
pub fn packs_cleanly(o: &Output) {
    succeeds(o);
    assert!(problems(o).is_empty(), "{}", err(o));
}

/// Asserts that the check refused the pack (exit 6); returns the problem lines.
pub fn refused(o: &Output) -> Vec<String> {
    assert_eq!(o.status.code(), Some(6), "{}", err(o));
    problems(o)
}

/// Asserts that the check refused the pack (exit 6) and that its first problem line passes
/// `check`.
pub fn refused_first(o: &Output, check: impl FnOnce(&str) -> bool) {
    let p = refused(o);
    assert!(p.first().is_some_and(|l| check(l)), "{}", err(o));
}

/// Asserts that stderr contains `needle`.
pub fn says(o: &Output, needle: &str) {
    assert!(err(o).contains(needle), "{}", err(o));
}

/// Asserts that the check refused the pack (exit 6) with exactly these problem lines.
pub fn refused_with<S: AsRef<str>>(o: &Output, expected: &[S]) {
    assert_eq!(o.status.code(), Some(6), "{}", err(o));
    let expected: Vec<&str> = expected.iter().map(AsRef::as_ref).collect();
    assert_eq!(problems(o), expected, "{}", err(o));
}

/// A workspace for `laptop` whose `nixcfg/secrets/wifi.yaml` (made by the real `sops`)
/// laptop's key opens; None (skip) without nix or sops.
pub fn with_sops_for_laptop() -> Option<Ws> {
    tools()?;
    let sops = require_tool("sops")?;
    let ws = Ws::new(&["laptop"]);
    ws.sops_file(&sops, "wifi.yaml", &ws.age_recipient("laptop"));
    Some(ws)
}

pub fn tools() -> Option<()> {
    require_tool("nix")?;
    Some(())
}
