//! What the guides assume exists (`provide NAME`) and what the test does instead of a block
//! that cannot run here (`stand-in NAME`). Each names itself in the guide with the reason.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::common;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The statically linked vault (`scripts/build-static`, or `$VAULT_STATIC_BIN`).
pub fn static_vault() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("VAULT_STATIC_BIN") {
            return PathBuf::from(p);
        }
        let out = run(&mut Command::new(repo().join("scripts/build-static")));
        PathBuf::from(
            out.lines()
                .last()
                .expect("build-static prints the path")
                .trim(),
        )
    })
    .clone()
}

/// Test installer ISOs, built once per test run: `official` (no vault, a shell, like the
/// official NixOS ISO), `module` (vault on PATH, and at boot the unlock the installer module's
/// `autoUnlock` runs, then a shell), `module-manual` (vault on PATH, a shell).
fn iso(kind: &str) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = DIR
        .get_or_init(|| tempfile::tempdir().unwrap())
        .path()
        .join(kind);
    let iso = dir.join("installer.iso");
    if iso.exists() {
        return iso;
    }
    let mut c = Command::new(repo().join("scripts/mkiso-test"));
    c.arg("--out").arg(&dir);
    match kind {
        "official" => {
            c.arg("--no-vault");
        }
        "module" => {
            c.arg("--vault").arg(static_vault()).args([
                "--shell",
                "--cmd",
                "unlock --stage disk --host laptop",
            ]);
        }
        "module-manual" => {
            c.arg("--vault").arg(static_vault()).arg("--shell");
        }
        other => panic!("no test ISO {other}"),
    }
    run(&mut c);
    iso
}

/// What `provide NAME` and `stand-in NAME` do, in the reader's current folder `cwd`.
pub fn apply(name: &str, home: &Path, cwd: &Path) {
    match name {
        // The download of the official minimal ISO.
        "official-iso" => {
            std::fs::copy(
                iso("official"),
                cwd.join("nixos-minimal-25.11-x86_64-linux.iso"),
            )
            .unwrap();
        }
        "vault-static" => {
            std::fs::copy(static_vault(), cwd.join("vault-static")).unwrap();
        }
        // `nix build .#nixosConfigurations.installer…` of an installer with the module.
        "installer-iso" | "installer-iso-manual" => {
            let kind = if name == "installer-iso" {
                "module"
            } else {
                "module-manual"
            };
            let out = cwd.join("result/iso");
            std::fs::create_dir_all(&out).unwrap();
            std::fs::copy(iso(kind), out.join("nixos-installer-x86_64-linux.iso")).unwrap();
        }
        "nix-config" => nix_config(home, &[("laptop", LAPTOP)], false),
        "sops-repo" => sops_repo(home),
        "server1-key" => {
            let dir = home.join("install-secrets/hosts/server1");
            std::fs::create_dir_all(&dir).unwrap();
            for f in ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"] {
                std::fs::copy(home.join("server1-running").join(f), dir.join(f)).unwrap();
            }
        }
        "recovery-repo" => recovery_repo(home),
        // What nixos-facter writes for a machine with one NVMe disk and two network cards:
        // the disk's serial and WWN, the cards as indices only.
        "facter-report" => std::fs::write(
            cwd.join("facter.json"),
            r#"{"version":1,"hardware":{"disk":[{"class_list":["disk","nvme","block_device"],"serial":"S4EWNF0M123456","unix_device_name":"/dev/nvme0n1","unix_device_names":["/dev/disk/by-id/nvme-eui.0025388b91b2b4a1","/dev/nvme0n1"]}],"network_interface":[{"sub_class":{"name":"Ethernet"}},{"sub_class":{"name":"WLAN"}}]}}"#,
        )
        .unwrap(),
        // What `vault host identify` prints on the reader's laptop, by vault's own renderer.
        "laptop-identity" => {
            let mut labels = std::collections::BTreeMap::new();
            labels.insert("00:00:5e:00:53:10".to_owned(), "enp1s0".to_owned());
            let reading = vault::identity::Reading {
                identity: vault::manifest::identity::Identity {
                    product_uuid: Some("3c6d1a52-7e0b-4f8e-9a41-5d2c8b7e6f10".into()),
                    product_serial: Some("5Z8BQ53".into()),
                    macs: vec!["00:00:5e:00:53:10".into()],
                    ..Default::default()
                },
                labels,
                notes: Vec::new(),
            };
            std::fs::write(
                cwd.join("laptop.id"),
                vault::identity::text::render(&reading, "/sys"),
            )
            .unwrap();
        }
        other => panic!("no provide/stand-in named {other}"),
    }
}

/// A NixOS configuration as a plain attribute set: the options vault's check reads (Debian's
/// Nix cannot evaluate nixpkgs).
const LAPTOP: &str = r#"{
        services.openssh.hostKeys = [ { path = "/etc/ssh/ssh_host_ed25519_key"; type = "ed25519"; } ];
      }"#;

/// `~/nix-config/flake.nix` with `nixosConfigurations.NAME.config` for each (name, body); a
/// git repository with everything committed when `git`.
fn nix_config(home: &Path, configs: &[(&str, &str)], git: bool) {
    let dir = home.join("nix-config");
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = String::from("{\n  outputs = { self }: {\n    nixosConfigurations = {\n");
    for (name, body) in configs {
        text.push_str(&format!("      \"{name}\".config = {body};\n"));
    }
    text.push_str("    };\n  };\n}\n");
    std::fs::write(dir.join("flake.nix"), text).unwrap();
    if git {
        let g = |args: &[&str]| {
            run(Command::new("git")
                .current_dir(&dir)
                .args(args)
                .env("HOME", home)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.org")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.org"));
        };
        if !dir.join(".git").exists() {
            g(&["init", "-q", "-b", "main"]);
        }
        g(&["add", "-A"]);
        g(&["commit", "-q", "-m", "nix-config"]);
    }
}

fn sops_bin() -> PathBuf {
    common::require_tool("sops").expect("sops")
}

/// A secrets file `rel` (under nix-config) encrypted by the real sops to `recipients`.
fn sops_file(home: &Path, rel: &str, recipients: &[String]) {
    let dir = home.join("nix-config");
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "wifi: hunter2\n").unwrap();
    run(Command::new(sops_bin()).current_dir(&dir).args([
        "--encrypt",
        "--age",
        &recipients.join(","),
        "--in-place",
        rel,
    ]));
}

/// An ed25519 host key written by ssh-keygen into `dir`; returns its age recipient.
fn host_key(dir: &Path, comment: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join("ssh_host_ed25519_key");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(&key));
    run(Command::new(common::vault_bin())
        .args(["keys", "convert", "--public"])
        .arg(&key))
    .trim()
    .to_owned()
}

/// add-host.md's world: `~/nix-config` (git) with a `.sops.yaml` registering the admin key
/// and the running server1, two sops files, and a flake with server1 and server2; the admin's
/// age key in `~/.config/sops/age/keys.txt`; server1's running key in `~/server1-running`.
fn sops_repo(home: &Path) {
    let keys = home.join(".config/sops/age");
    std::fs::create_dir_all(&keys).unwrap();
    let admin = common::write_identity(&keys.join("keys.txt"));
    let server1 = host_key(&home.join("server1-running"), "root@server1");
    let cfg = home.join("nix-config");
    std::fs::create_dir_all(cfg.join("secrets/hosts/server1")).unwrap();
    std::fs::write(
        cfg.join(".sops.yaml"),
        format!(
            "keys:\n  - &admin {admin}\n  - &server1 {server1}\ncreation_rules:\n  - path_regex: ^secrets/hosts/server1/\n    age:\n      - *admin\n      - *server1\n  - path_regex: secrets/[^/]+\\.yaml$\n    key_groups:\n      - age:\n          - *admin\n          - *server1\n"
        ),
    )
    .unwrap();
    sops_file(home, "secrets/wifi.yaml", &[admin.clone(), server1.clone()]);
    sops_file(
        home,
        "secrets/restic.yaml",
        &[admin.clone(), server1.clone()],
    );
    sops_file(
        home,
        "secrets/hosts/server1/wireguard.yaml",
        &[admin, server1],
    );
    let server = |name: &str| {
        format!(
            r#"{{
        services.openssh.hostKeys = [ {{ path = "/etc/ssh/ssh_host_ed25519_key"; type = "ed25519"; }} ];
        sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
        sops.defaultSopsFile = ./secrets/wifi.yaml;
        sops.secrets.wifi = {{ }};
        sops.secrets.restic.sopsFile = ./secrets/restic.yaml;
        # {name}
      }}"#
        )
    };
    nix_config(
        home,
        &[
            ("server1", &server("server1")),
            ("server2", &server("server2")),
        ],
        true,
    );
}

/// recovery.md's world, on top of first-stick.md's secrets folder: laptop and server1 are
/// registered in `~/nix-config` (`.sops.yaml` and an agenix `keys.nix`, which vault.toml
/// records), with sops and agenix files for each; the admin's age key, and an SSH key
/// `~/.ssh/id_ed25519` that agenix files are encrypted to.
fn recovery_repo(home: &Path) {
    let ws = home.join("install-secrets");
    let keys = home.join(".config/sops/age");
    std::fs::create_dir_all(&keys).unwrap();
    let admin = common::write_identity(&keys.join("keys.txt"));
    let ssh = home.join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "admin", "-f"])
        .arg(ssh.join("id_ed25519")));
    let admin_ssh = pubkey(&ssh.join("id_ed25519.pub"));
    let laptop = run(Command::new(common::vault_bin())
        .args(["keys", "convert", "--public"])
        .arg(ws.join("hosts/laptop/ssh_host_ed25519_key")))
    .trim()
    .to_owned();
    let laptop_ssh = pubkey(&ws.join("hosts/laptop/ssh_host_ed25519_key.pub"));
    let server1 = host_key(&home.join("server1-running"), "root@server1");
    let server1_ssh = pubkey(&home.join("server1-running/ssh_host_ed25519_key.pub"));
    let cfg = home.join("nix-config");
    std::fs::create_dir_all(cfg.join("secrets")).unwrap();
    std::fs::write(
        cfg.join(".sops.yaml"),
        format!(
            "keys:\n  - &admin {admin}\n  - &laptop {laptop}\n  - &server1 {server1}\ncreation_rules:\n  - path_regex: ^secrets/laptop\\.yaml$\n    age:\n      - *admin\n      - *laptop\n  - path_regex: secrets/[^/]+\\.yaml$\n    age:\n      - *admin\n      - *laptop\n      - *server1\n"
        ),
    )
    .unwrap();
    sops_file(
        home,
        "secrets/laptop.yaml",
        &[admin.clone(), laptop.clone()],
    );
    sops_file(home, "secrets/shared.yaml", &[admin, laptop, server1]);
    std::fs::write(
        cfg.join("secrets/keys.nix"),
        format!("{{\n  admin = \"{admin_ssh}\";\n  laptop = \"{laptop_ssh}\";\n  server1 = \"{server1_ssh}\";\n}}\n"),
    )
    .unwrap();
    std::fs::write(
        cfg.join("secrets/secrets.nix"),
        "let keys = import ./keys.nix; in {\n  \"laptop-wg.age\".publicKeys = [ keys.admin keys.laptop ];\n  \"server1-wg.age\".publicKeys = [ keys.admin keys.server1 ];\n}\n",
    )
    .unwrap();
    let age = common::require_tool("age").expect("age");
    for (file, to) in [
        ("laptop-wg.age", &laptop_ssh),
        ("server1-wg.age", &server1_ssh),
    ] {
        run(Command::new(&age)
            .args(["-r", &admin_ssh, "-r", to, "-o"])
            .arg(cfg.join("secrets").join(file))
            .arg(ws.join("vault.toml")));
    }
    nix_config(home, &[("laptop", LAPTOP)], true);
    let toml = ws.join("vault.toml");
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text.push_str("\n[secrets]\nsops_config = \"../nix-config/.sops.yaml\"\nagenix_rules = \"../nix-config/secrets/secrets.nix\"\nagenix_keys = \"../nix-config/secrets/keys.nix\"\n");
    std::fs::write(&toml, text).unwrap();
}

fn pubkey(path: &Path) -> String {
    let line = std::fs::read_to_string(path).unwrap();
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}
