//! `vault pack --flake`: the real `nix` evaluates test flakes whose
//! `nixosConfigurations.<host>` are NixOS configurations evaluated through the module system
//! (nix/tests/config-check: option types, defaults and `apply` as nixpkgs, sops-nix, agenix,
//! impermanence and lanzaboote declare them; no nixpkgs, no inputs: no network), and pack
//! refuses what would fail at first boot, one line per problem. With VAULT_REAL_NIX_SOURCES
//! (`scripts/check-nix --real`), the real lib and the real modules are evaluated instead.
//! Secret files are made by the real `sops` and `age`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{require_tool, vault_bin, FAST_KDF};

const HOST_KEY: &str = "/etc/ssh/ssh_host_ed25519_key";

struct Ws {
    _tmp: tempfile::TempDir,
    d: PathBuf,
}

impl Ws {
    /// vault.toml with [hosts.NAME] (flake = "nixcfg#NAME") for each host, completed by
    /// `vault host add NAME`; an empty flake folder `nixcfg/`.
    fn new(hosts: &[&str]) -> Ws {
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

    fn vault(&self, args: &[&str]) -> Output {
        Command::new(vault_bin())
            .args(args)
            .current_dir(&self.d)
            .output()
            .unwrap()
    }

    fn pack_cmd(&self, extra: &[&str]) -> Command {
        let mut c = Command::new(vault_bin());
        c.current_dir(&self.d)
            .args(["pack", "-o", "out.bundle", "--passphrase-file", "pw"])
            .args(FAST_KDF)
            .args(extra);
        c
    }

    fn pack(&self, extra: &[&str]) -> Output {
        let _ = std::fs::remove_file(self.d.join("out.bundle"));
        self.pack_cmd(extra).output().unwrap()
    }

    /// nixcfg/flake.nix with one NixOS configuration per (name, module body), evaluated by
    /// nix/tests/config-check (copied into the flake, with the real sources when given).
    fn flake(&self, configs: &[(&str, &str)]) {
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
    fn place(&self, host: &str, source: &str, content: &str, target: &str) -> usize {
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

    fn key(&self, host: &str) -> PathBuf {
        self.d.join(format!("hosts/{host}/ssh_host_ed25519_key"))
    }

    fn age_recipient(&self, host: &str) -> String {
        let o = self.vault(&[
            "keys",
            "convert",
            "--public",
            self.key(host).to_str().unwrap(),
        ]);
        assert!(o.status.success());
        String::from_utf8(o.stdout).unwrap().trim().to_owned()
    }

    fn ssh_public(&self, host: &str) -> String {
        let p = self
            .d
            .join(format!("hosts/{host}/ssh_host_ed25519_key.pub"));
        std::fs::read_to_string(p).unwrap().trim().to_owned()
    }

    /// The manifest line of the entry placing `target` for `host`.
    fn line_of(&self, host: &str, target: &str) -> usize {
        let m = vault::manifest::Manifest::load(&self.d.join("vault.toml")).unwrap();
        let line = m
            .entries_for(host)
            .find(|e| e.target == target)
            .map(|e| e.line);
        line.expect("entry")
    }

    /// A sops file `nixcfg/secrets/NAME` encrypted by the real sops to `recipient`.
    fn sops_file(&self, sops: &Path, name: &str, recipient: &str) {
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
    fn age_file(&self, age: &Path, name: &str, recipient: &str) {
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
/// own files), and the real sources named by VAULT_REAL_NIX_SOURCES (`KIND=DIR …`, as
/// scripts/check-nix --real sets it) into `dir/real`; returns the `sources` argument.
fn install_harness(dir: &Path) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_tree(
        &repo.join("nix/tests/config-check"),
        &dir.join("config-check"),
    );
    copy_tree(&repo.join("nix/tests/nixpkgs"), &dir.join("nixpkgs"));
    let mut sources = String::from("{ ");
    for spec in std::env::var("VAULT_REAL_NIX_SOURCES")
        .unwrap_or_default()
        .split_whitespace()
    {
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

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The problem lines (`vault: HOST: …`) on stderr.
fn problems(o: &Output) -> Vec<String> {
    err(o)
        .lines()
        .filter(|l| l.starts_with("vault: ") && !l.contains("check skipped"))
        .map(str::to_owned)
        .collect()
}

fn tools() -> Option<()> {
    require_tool("nix")?;
    Some(())
}

#[test]
fn correct_configuration_packs_silently() {
    let (Some(()), Some(sops), Some(age)) = (tools(), require_tool("sops"), require_tool("age"))
    else {
        return;
    };
    let ws = Ws::new(&["laptop"]);
    ws.sops_file(&sops, "wifi.yaml", &ws.age_recipient("laptop"));
    ws.age_file(&age, "restic.age", &ws.ssh_public("laptop"));
    ws.flake(&[(
        "laptop",
        r#"{
        services.openssh.enable = true;
        services.openssh.hostKeys = [ { path = "/etc/ssh/ssh_host_ed25519_key"; type = "ed25519"; } ];
        sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
        sops.defaultSopsFile = ./secrets/wifi.yaml;
        sops.secrets.wifi = { };
        sops.secrets.psk.sopsFile = ./secrets/wifi.yaml;
        age.identityPaths = [ "/etc/ssh/ssh_host_ed25519_key" "/etc/ssh/ssh_host_rsa_key" ];
        age.secrets.restic.file = ./secrets/restic.age;
      }"#,
    )]);
    let o = ws.pack(&[]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(problems(&o).is_empty(), "{}", err(&o));
    assert!(!err(&o).contains("skipped"), "{}", err(&o));
    let o = ws.pack(&["--json"]);
    assert!(o.status.success(), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["config_check"]["evaluations"], 1);
    assert_eq!(v["config_check"]["problems"], serde_json::json!([]));
    assert_eq!(v["config_check"]["checked"][0][0], "laptop");
    // The flake got no lock file written into it.
    assert!(!ws.d.join("nixcfg/flake.lock").exists());
}

#[test]
fn impermanence_mismatch_names_option_path_line_and_fix() {
    let Some(()) = tools() else { return };
    let ws = Ws::new(&["laptop"]);
    ws.flake(&[(
        "laptop",
        r#"{
        services.openssh.enable = true;
        services.openssh.hostKeys = [ { path = "/persist/etc/ssh/ssh_host_ed25519_key"; type = "ed25519"; } ];
        environment.persistence."/persist" = { directories = [ "/var/log" ]; files = [ "/etc/machine-id" ]; };
      }"#,
    )]);
    let line = ws.line_of("laptop", HOST_KEY);
    let o = ws.pack(&[]);
    assert_eq!(o.status.code(), Some(6), "{}", err(&o));
    let p = problems(&o);
    assert_eq!(
        p,
        [format!("vault: laptop: services.openssh.hostKeys reads /persist/etc/ssh/ssh_host_ed25519_key, but vault.toml places /etc/ssh/ssh_host_ed25519_key (line {line})")],
        "{}",
        err(&o)
    );
    assert!(
        err(&o).contains("hint: with impermanence, place it under /persist: target = \"/persist/etc/ssh/ssh_host_ed25519_key\""),
        "{}",
        err(&o)
    );
    assert!(
        !ws.d.join("out.bundle").exists(),
        "no bundle after a refusal"
    );

    // --json lists the same problem.
    let o = ws.pack(&["--json"]);
    assert_eq!(o.status.code(), Some(6));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["error"]["exit_code"], 6,
        "one object: the error and the problems"
    );
    let p = &v["config_check"]["problems"][0];
    assert_eq!(p["option"], "services.openssh.hostKeys");
    assert_eq!(p["path"], "/persist/etc/ssh/ssh_host_ed25519_key");
    assert_eq!(p["line"], line);

    // --no-config-check packs anyway, without evaluating.
    let o = ws.pack(&["--no-config-check"]);
    assert!(o.status.success(), "{}", err(&o));
}

#[test]
fn persisted_directory_needs_the_key_under_persistent_storage() {
    let Some(()) = tools() else { return };
    let ws = Ws::new(&["laptop"]);
    ws.flake(&[(
        "laptop",
        r#"{
        services.openssh.enable = true;
        services.openssh.hostKeys = [ { path = "/etc/ssh/ssh_host_ed25519_key"; type = "ed25519"; } ];
        environment.persistence."/persist".directories = [ "/etc/ssh" ];
      }"#,
    )]);
    let line = ws.line_of("laptop", HOST_KEY);
    let o = ws.pack(&[]);
    assert_eq!(o.status.code(), Some(6), "{}", err(&o));
    assert_eq!(
        problems(&o),
        [format!("vault: laptop: services.openssh.hostKeys reads /etc/ssh/ssh_host_ed25519_key, which impermanence bind-mounts from /persist/etc/ssh/ssh_host_ed25519_key (environment.persistence.\"/persist\"), but vault.toml places /etc/ssh/ssh_host_ed25519_key (line {line}), on the root that is wiped at boot")],
        "{}",
        err(&o)
    );
    // Placed under /persist, the bind mount brings it to /etc/ssh: accepted.
    let toml = std::fs::read_to_string(ws.d.join("vault.toml")).unwrap();
    std::fs::write(
        ws.d.join("vault.toml"),
        toml.replace("target = \"/etc/ssh/", "target = \"/persist/etc/ssh/"),
    )
    .unwrap();
    let o = ws.pack(&[]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(problems(&o).is_empty(), "{}", err(&o));
}

#[test]
fn host_key_readable_by_others_is_refused() {
    let Some(()) = tools() else { return };
    let ws = Ws::new(&["laptop"]);
    ws.flake(&[(
        "laptop",
        r#"{ services.openssh.enable = true; services.openssh.hostKeys = [ { path = "/etc/ssh/ssh_host_ed25519_key"; type = "ed25519"; } ]; }"#,
    )]);
    let toml = std::fs::read_to_string(ws.d.join("vault.toml")).unwrap();
    std::fs::write(
        ws.d.join("vault.toml"),
        toml.replacen("mode = \"0600\"", "mode = \"0640\"", 1),
    )
    .unwrap();
    let line = ws.line_of("laptop", HOST_KEY);
    let o = ws.pack(&[]);
    assert_eq!(o.status.code(), Some(6), "{}", err(&o));
    assert_eq!(
        problems(&o),
        [format!("vault: laptop: services.openssh.hostKeys reads /etc/ssh/ssh_host_ed25519_key, but vault.toml places it with mode 0640 (line {line}); sshd refuses a host key that group or others can read")]
    );
}

#[test]
fn missing_sops_key_file() {
    let (Some(()), Some(sops)) = (tools(), require_tool("sops")) else {
        return;
    };
    let ws = Ws::new(&["laptop"]);
    ws.sops_file(&sops, "wifi.yaml", &ws.age_recipient("laptop"));
    ws.flake(&[(
        "laptop",
        r#"{
        sops.age.keyFile = "/var/lib/sops-nix/key.txt";
        sops.age.sshKeyPaths = [ ];
        sops.secrets.wifi.sopsFile = ./secrets/wifi.yaml;
      }"#,
    )]);
    let o = ws.pack(&[]);
    assert_eq!(o.status.code(), Some(6), "{}", err(&o));
    assert_eq!(
        problems(&o),
        ["vault: laptop: sops.age.keyFile reads /var/lib/sops-nix/key.txt, but vault.toml places nothing there for laptop"],
        "{}",
        err(&o)
    );
    assert!(
        err(&o).contains("target = \"/var/lib/sops-nix/key.txt\""),
        "{}",
        err(&o)
    );
}

#[test]
fn secrets_the_host_cannot_open() {
    let (Some(()), Some(sops), Some(age)) = (tools(), require_tool("sops"), require_tool("age"))
    else {
        return;
    };
    let ws = Ws::new(&["laptop"]);
    let other = common::write_identity(&ws.d.join("other.txt"));
    ws.sops_file(&sops, "wifi.yaml", &other);
    ws.age_file(&age, "restic.age", &other);
    ws.flake(&[(
        "laptop",
        r#"{
        sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
        sops.secrets.wifi.sopsFile = ./secrets/wifi.yaml;
        age.identityPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
        age.secrets.restic.file = ./secrets/restic.age;
      }"#,
    )]);
    let o = ws.pack(&[]);
    assert_eq!(o.status.code(), Some(6), "{}", err(&o));
    let p = problems(&o);
    assert_eq!(p.len(), 2, "{}", err(&o));
    assert_eq!(
        p[0],
        "vault: laptop: sops.secrets.\"wifi\" uses secrets/wifi.yaml, which laptop's key cannot open; run `vault rekey`"
    );
    assert!(
        p[1].starts_with("vault: laptop: age.secrets.\"restic\" uses secrets/restic.age, which laptop's key cannot open"),
        "{}",
        p[1]
    );
}

#[test]
fn configuration_without_sops_nix_or_impermanence_is_fine() {
    let Some(()) = tools() else { return };
    let ws = Ws::new(&["laptop"]);
    ws.flake(&[("laptop", "{ boot.kernelParams = [ \"quiet\" ]; }")]);
    let o = ws.pack(&[]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(problems(&o).is_empty(), "{}", err(&o));
}

#[test]
fn evaluation_error_is_reported_escaped_and_no_config_check_packs_anyway() {
    let Some(()) = tools() else { return };
    let ws = Ws::new(&["laptop"]);
    // Raw control characters in the error message must not reach the terminal: Nix drops
    // the C0 ones itself; U+009B (a one-character CSI) it passes on.
    ws.flake(&[(
        "laptop",
        "{ services.openssh.hostKeys = abort \"broken \u{7}\u{1b}[2J \u{9b}31m config\"; }",
    )]);
    let o = ws.pack(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let e = err(&o);
    assert!(e.contains("laptop: the NixOS configuration"), "{e}");
    assert!(e.contains("does not evaluate"), "{e}");
    assert!(e.contains("\\u{9b}31m config"), "{e}");
    assert!(!e.contains('\u{9b}'), "{e}");
    assert!(
        !o.stderr.iter().any(|&b| b < 0x20 && b != b'\n'),
        "raw control characters: {e}"
    );
    assert!(e.contains("--no-config-check"), "{e}");
    assert!(!ws.d.join("out.bundle").exists());
    let o = ws.pack(&["--no-config-check"]);
    assert!(o.status.success(), "{}", err(&o));
}

#[test]
fn one_evaluation_per_host() {
    let Some(nix) = require_tool("nix") else {
        return;
    };
    let ws = Ws::new(&["laptop", "web"]);
    let body = r#"{
        services.openssh.enable = true;
        services.openssh.hostKeys = [ { path = "/etc/ssh/ssh_host_ed25519_key"; type = "ed25519"; } ];
        boot.initrd.secrets = { };
        sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
      }"#;
    ws.flake(&[("laptop", body), ("web", body)]);
    // A `nix` that counts its runs, then is the real one.
    let bin = ws.d.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let count = ws.d.join("count");
    std::fs::write(
        bin.join("nix"),
        format!(
            "#!/bin/sh\necho run >> '{}'\nexec '{}' \"$@\"\n",
            count.display(),
            nix.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("nix"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = ws
        .pack_cmd(&["--json", "--flake", "./nixcfg"])
        .env("PATH", &bin)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let runs = std::fs::read_to_string(&count).unwrap().lines().count();
    assert_eq!(runs, 2, "one nix process per host");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["config_check"]["evaluations"], 2);
}

#[test]
fn without_nix_or_flake_the_check_is_skipped_with_one_line() {
    let ws = Ws::new(&["laptop"]);
    let empty = ws.d.join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let o = ws.pack_cmd(&[]).env("PATH", &empty).output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let skipped: Vec<&str> = std::str::from_utf8(&o.stderr)
        .unwrap()
        .lines()
        .filter(|l| l.contains("check skipped"))
        .collect();
    assert_eq!(
        skipped,
        ["vault: NixOS configuration check skipped: `nix` is not on PATH"]
    );

    let toml = std::fs::read_to_string(ws.d.join("vault.toml")).unwrap();
    std::fs::write(
        ws.d.join("vault.toml"),
        toml.replace("flake = \"nixcfg#laptop\"\n", ""),
    )
    .unwrap();
    let o = ws.pack(&[]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        err(&o).contains("check skipped: no flake given"),
        "{}",
        err(&o)
    );
}

#[test]
fn flake_flag_for_a_host_not_packed_is_a_usage_error() {
    let ws = Ws::new(&["laptop", "web"]);
    let o = ws.pack(&["--flake", "nixcfg#db"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(
        err(&o).contains("not one of the hosts being packed"),
        "{}",
        err(&o)
    );
}

#[test]
fn missing_initrd_key_then_host_add_initrd_ssh_makes_a_separate_one() {
    let Some(()) = tools() else { return };
    let ws = Ws::new(&["laptop"]);
    ws.flake(&[(
        "laptop",
        r#"{
        services.openssh.enable = true;
        services.openssh.hostKeys = [ { path = "/etc/ssh/ssh_host_ed25519_key"; type = "ed25519"; } ];
        boot.initrd.network = { enable = true; ssh.enable = true; };
        boot.initrd.network.ssh.hostKeys = [ "/etc/secrets/initrd/ssh_host_ed25519_key" ];
      }"#,
    )]);
    let o = ws.pack(&[]);
    assert_eq!(o.status.code(), Some(6), "{}", err(&o));
    assert_eq!(
        problems(&o),
        ["vault: laptop: boot.initrd.network.ssh.hostKeys reads /etc/secrets/initrd/ssh_host_ed25519_key, but vault.toml places nothing there for laptop"],
        "{}",
        err(&o)
    );
    assert!(
        err(&o)
            .contains("hint: `vault host add laptop --initrd-ssh` generates a separate initrd key"),
        "{}",
        err(&o)
    );

    let o = ws.vault(&["host", "add", "laptop", "--initrd-ssh"]);
    assert!(o.status.success(), "{}", err(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(
            "boot.initrd.network.ssh.hostKeys = [ \"/etc/secrets/initrd/ssh_host_ed25519_key\" ];"
        ),
        "{out}"
    );
    let initrd = ws.d.join("hosts/laptop/initrd_ssh_host_ed25519_key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&initrd).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_ne!(
        std::fs::read(&initrd).unwrap(),
        std::fs::read(ws.key("laptop")).unwrap(),
        "never the main host key"
    );
    let o = ws.pack(&[]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(problems(&o).is_empty(), "{}", err(&o));
    // A second --initrd-ssh is refused, nothing changed.
    let before = std::fs::read(ws.d.join("vault.toml")).unwrap();
    let o = ws.vault(&["host", "add", "laptop", "--initrd-ssh"]);
    assert!(!o.status.success());
    assert_eq!(std::fs::read(ws.d.join("vault.toml")).unwrap(), before);
}

#[test]
fn initrd_reusing_the_main_host_key_is_refused() {
    let Some(()) = tools() else { return };
    let ws = Ws::new(&["laptop"]);
    ws.flake(&[(
        "laptop",
        r#"{ boot.initrd.network = { enable = true; ssh = { enable = true; hostKeys = [ "/etc/ssh/ssh_host_ed25519_key" ]; }; }; }"#,
    )]);
    let o = ws.pack(&[]);
    assert_eq!(o.status.code(), Some(6), "{}", err(&o));
    let line = ws.line_of("laptop", HOST_KEY);
    assert_eq!(
        problems(&o),
        [format!("vault: laptop: boot.initrd.network.ssh.hostKeys reads /etc/ssh/ssh_host_ed25519_key, which is the host's main SSH key (line {line}); the initrd copy sits unencrypted on /boot")],
        "{}",
        err(&o)
    );
}

#[test]
fn agenix_without_any_placed_identity_and_a_missing_initrd_secret() {
    let (Some(()), Some(age)) = (tools(), require_tool("age")) else {
        return;
    };
    let ws = Ws::new(&["laptop"]);
    ws.age_file(&age, "restic.age", &ws.ssh_public("laptop"));
    ws.flake(&[(
        "laptop",
        r#"{
        age.identityPaths = [ "/var/lib/agenix/id" "/etc/ssh/ssh_host_rsa_key" ];
        age.secrets.restic.file = ./secrets/restic.age;
        boot.initrd.secrets."/keyfile.bin" = "/etc/secrets/initrd/keyfile.bin";
        boot.initrd.secrets."/in-store" = ./flake.nix;
      }"#,
    )]);
    let o = ws.pack(&[]);
    assert_eq!(o.status.code(), Some(6), "{}", err(&o));
    let p = problems(&o);
    assert_eq!(p.len(), 2, "{}", err(&o));
    assert_eq!(
        p[0],
        "vault: laptop: age.identityPaths reads /var/lib/agenix/id, /etc/ssh/ssh_host_rsa_key, but vault.toml places none of them for laptop"
    );
    assert_eq!(
        p[1],
        "vault: laptop: boot.initrd.secrets.\"/keyfile.bin\" reads /etc/secrets/initrd/keyfile.bin, but vault.toml places nothing there for laptop"
    );
    // One identity placed is enough for agenix (it skips missing ones), and it opens the file.
    ws.flake(&[(
        "laptop",
        r#"{
        age.identityPaths = [ "/etc/ssh/ssh_host_ed25519_key" "/etc/ssh/ssh_host_rsa_key" ];
        age.secrets.restic.file = ./secrets/restic.age;
      }"#,
    )]);
    let o = ws.pack(&[]);
    assert!(o.status.success(), "{}", err(&o));
}

/// agenix decrypts with `age -i KEY`: an SSH key there is an SSH identity only, so a file
/// encrypted to the key's ssh-to-age recipient (as sops-nix would use it) does not open.
#[test]
fn agenix_file_for_the_ssh_to_age_recipient_does_not_open_with_the_ssh_key() {
    let (Some(()), Some(age)) = (tools(), require_tool("age")) else {
        return;
    };
    let ws = Ws::new(&["laptop"]);
    ws.age_file(&age, "restic.age", &ws.age_recipient("laptop"));
    // The real age agrees: the SSH key does not open it.
    let real = common::run_decrypt(
        &age,
        &ws.d.join("nixcfg/secrets/restic.age"),
        &ws.key("laptop"),
    );
    assert!(
        real.is_err(),
        "age -i ssh_key opened a file for the ssh-to-age recipient"
    );
    ws.flake(&[(
        "laptop",
        r#"{
        age.identityPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
        age.secrets.restic.file = ./secrets/restic.age;
      }"#,
    )]);
    let o = ws.pack(&[]);
    assert_eq!(o.status.code(), Some(6), "{}", err(&o));
    let p = problems(&o);
    assert_eq!(p.len(), 1, "{}", err(&o));
    assert!(
        p[0].starts_with("vault: laptop: age.secrets.\"restic\" uses secrets/restic.age, which laptop's key cannot open"),
        "{}",
        p[0]
    );
}

/// initrd-ssh.nix's `apply` turns a host key given as a Nix path into a derivation that copies
/// it into the world-readable store: reported by name, without the check forcing that copy
/// (nix/tests/config-check/pkgs.nix makes forcing it fail).
#[test]
fn initrd_key_given_as_a_nix_path_is_reported_without_copying_it() {
    let Some(()) = tools() else { return };
    let ws = Ws::new(&["laptop"]);
    std::fs::write(ws.d.join("nixcfg/initrd_key"), "PRIVATE KEY\n").unwrap();
    ws.flake(&[(
        "laptop",
        r#"{
        boot.initrd.network = { enable = true; ssh = { enable = true; hostKeys = [ ./initrd_key ]; }; };
      }"#,
    )]);
    let o = ws.pack(&[]);
    assert_eq!(o.status.code(), Some(6), "{}", err(&o));
    assert_eq!(
        problems(&o),
        ["vault: laptop: boot.initrd.network.ssh.hostKeys names the file initrd_key as a Nix path: NixOS copies that private key into the world-readable Nix store"],
        "{}",
        err(&o)
    );
    assert!(
        err(&o).contains("write the path as a string"),
        "{}",
        err(&o)
    );
    // Without the initrd network, the initrd's sshd does not run: nothing is read.
    ws.flake(&[(
        "laptop",
        r#"{ boot.initrd.network.ssh = { enable = true; hostKeys = [ ./initrd_key "/etc/secrets/initrd/missing" ]; }; }"#,
    )]);
    let o = ws.pack(&[]);
    assert!(o.status.success(), "{}", err(&o));
}

/// sops-nix and agenix read their keys in an activation script (unless systemd-sysusers or
/// userborn make them use a unit after the mounts), before impermanence bind-mounts
/// anything: a key at a persisted path is not there yet, whatever vault places.
#[test]
fn keys_read_during_activation_must_be_named_at_the_persistent_path() {
    let (Some(()), Some(sops)) = (tools(), require_tool("sops")) else {
        return;
    };
    let ws = Ws::new(&["laptop"]);
    let id = common::write_identity(&ws.d.join("age-key.txt"));
    ws.sops_file(&sops, "wifi.yaml", &id);
    let key = std::fs::read_to_string(ws.d.join("age-key.txt")).unwrap();
    let line = ws.place(
        "laptop",
        "hosts/laptop/age-key.txt",
        &key,
        "/persist/var/lib/sops-nix/key.txt",
    );
    let config = |key_file: &str, extra: &str| {
        format!(
            r#"{{
        sops.age.keyFile = "{key_file}";
        sops.age.sshKeyPaths = [ ];
        sops.secrets.wifi.sopsFile = ./secrets/wifi.yaml;
        environment.persistence."/persist".directories = [ "/var/lib/sops-nix" ];
        {extra}
      }}"#
        )
    };
    ws.flake(&[("laptop", &config("/var/lib/sops-nix/key.txt", ""))]);
    let o = ws.pack(&[]);
    assert_eq!(o.status.code(), Some(6), "{}", err(&o));
    assert_eq!(
        problems(&o),
        ["vault: laptop: sops.age.keyFile reads /var/lib/sops-nix/key.txt in an activation script, before impermanence bind-mounts it from /persist/var/lib/sops-nix/key.txt (environment.persistence.\"/persist\"): it finds nothing there"],
        "{}",
        err(&o)
    );
    assert!(
        err(&o).contains("(sops.age.keyFile: \"/persist/var/lib/sops-nix/key.txt\")"),
        "{}",
        err(&o)
    );
    let v: serde_json::Value = serde_json::from_slice(&ws.pack(&["--json"]).stdout).unwrap();
    assert_eq!(v["config_check"]["problems"][0]["line"], line);
    // Named at the persistent path: accepted, and the file opens with the placed key.
    ws.flake(&[("laptop", &config("/persist/var/lib/sops-nix/key.txt", ""))]);
    let o = ws.pack(&[]);
    assert!(o.status.success(), "{}", err(&o));
    // With systemd-sysusers, sops-nix uses a unit ordered after the mounts: the bind mount
    // is there.
    ws.flake(&[(
        "laptop",
        &config(
            "/var/lib/sops-nix/key.txt",
            "systemd.sysusers.enable = true;",
        ),
    )]);
    let o = ws.pack(&[]);
    assert!(o.status.success(), "{}", err(&o));
}

/// sops-nix skips an sshKeyPaths entry it cannot read (only a missing keyFile stops it): an
/// extra path vault does not place is no problem while another one is placed.
#[test]
fn sops_skips_unreadable_ssh_key_paths() {
    let (Some(()), Some(sops)) = (tools(), require_tool("sops")) else {
        return;
    };
    let ws = Ws::new(&["laptop"]);
    ws.sops_file(&sops, "wifi.yaml", &ws.age_recipient("laptop"));
    ws.flake(&[(
        "laptop",
        r#"{
        sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" "/etc/ssh/extra_ed25519_key" ];
        sops.secrets.wifi.sopsFile = ./secrets/wifi.yaml;
      }"#,
    )]);
    let o = ws.pack(&[]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(problems(&o).is_empty(), "{}", err(&o));
    // None of them placed: that is a problem.
    ws.flake(&[(
        "laptop",
        r#"{
        sops.age.sshKeyPaths = [ "/etc/ssh/a_key" "/etc/ssh/b_key" ];
        sops.secrets.wifi.sopsFile = ./secrets/wifi.yaml;
      }"#,
    )]);
    let o = ws.pack(&[]);
    assert_eq!(o.status.code(), Some(6), "{}", err(&o));
    assert_eq!(
        problems(&o),
        ["vault: laptop: sops.age.sshKeyPaths reads /etc/ssh/a_key, /etc/ssh/b_key, but vault.toml places none of them for laptop"],
        "{}",
        err(&o)
    );
}

/// A host without sshd reads no host key, and an initrd without its network runs no sshd:
/// neither gets problems about their keys. Their defaults still feed sops-nix's key paths
/// only when sshd is enabled.
#[test]
fn without_sshd_no_host_key_is_read() {
    let Some(()) = tools() else { return };
    let ws = Ws::new(&["laptop"]);
    let toml = std::fs::read_to_string(ws.d.join("vault.toml")).unwrap();
    std::fs::write(
        ws.d.join("vault.toml"),
        toml.replacen("mode = \"0600\"", "mode = \"0640\"", 1),
    )
    .unwrap();
    ws.flake(&[(
        "laptop",
        r#"{ boot.initrd.network.ssh.hostKeys = [ "/etc/secrets/initrd/missing_key" ]; }"#,
    )]);
    let o = ws.pack(&[]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(problems(&o).is_empty(), "{}", err(&o));
    // With sshd, its default hostKeys are read: the 0640 key is refused.
    ws.flake(&[("laptop", r#"{ services.openssh.enable = true; }"#)]);
    let o = ws.pack(&[]);
    assert_eq!(o.status.code(), Some(6), "{}", err(&o));
    assert!(problems(&o)[0].contains("with mode 0640"), "{}", err(&o));
}

/// impermanence's users.<name>.directories and Home Manager's home.persistence bind-mount
/// paths under the user's home from the storage, like environment.persistence.
#[test]
fn impermanence_user_and_home_manager_paths_are_bind_mounted() {
    let Some(()) = tools() else { return };
    for persist in [
        r#"environment.persistence."/persist".users.alice.directories = [ ".ssh" ];"#,
        r#"home-manager.users.alice.home.persistence."/persist".directories = [ ".ssh" ];"#,
    ] {
        let ws = Ws::new(&["laptop"]);
        let line = ws.place(
            "laptop",
            "hosts/laptop/alice_host_key",
            "x",
            "/home/alice/.ssh/ssh_host_ed25519_key",
        );
        ws.flake(&[(
            "laptop",
            &format!(
                r#"{{
        users.users.alice.isNormalUser = true;
        services.openssh.enable = true;
        services.openssh.hostKeys = [ {{ path = "/home/alice/.ssh/ssh_host_ed25519_key"; type = "rsa"; }} ];
        {persist}
      }}"#
            ),
        )]);
        let o = ws.pack(&[]);
        assert_eq!(o.status.code(), Some(6), "{persist}: {}", err(&o));
        let p = problems(&o);
        assert_eq!(p.len(), 1, "{persist}: {}", err(&o));
        assert!(
            p[0].contains("services.openssh.hostKeys reads /home/alice/.ssh/ssh_host_ed25519_key, which impermanence bind-mounts from /persist/home/alice/.ssh/ssh_host_ed25519_key ("),
            "{persist}: {}",
            p[0]
        );
        assert!(p[0].ends_with(&format!("but vault.toml places /home/alice/.ssh/ssh_host_ed25519_key (line {line}), on the root that is wiped at boot")), "{}", p[0]);
    }
}

/// lanzaboote signs with privateKeyFile/publicKeyFile (keys/db/db.{key,pem} in pkiBundle) and
/// sbctl reads the bundle's GUID, during the bootloader install inside nixos-install: all
/// must be placed, at a path the configuration names (no bind mounts there).
#[test]
fn lanzaboote_keys_must_be_placed() {
    let Some(()) = tools() else { return };
    let ws = Ws::new(&["laptop"]);
    let body = r#"{ boot.lanzaboote = { enable = true; pkiBundle = "/var/lib/sbctl"; }; }"#;
    ws.flake(&[("laptop", body)]);
    let o = ws.pack(&[]);
    assert_eq!(o.status.code(), Some(6), "{}", err(&o));
    assert_eq!(
        problems(&o),
        [
            "vault: laptop: boot.lanzaboote.privateKeyFile reads /var/lib/sbctl/keys/db/db.key, but vault.toml places nothing there for laptop",
            "vault: laptop: boot.lanzaboote.publicKeyFile reads /var/lib/sbctl/keys/db/db.pem, but vault.toml places nothing there for laptop",
            "vault: laptop: boot.lanzaboote.pkiBundle reads /var/lib/sbctl/GUID, but vault.toml places nothing there for laptop",
        ],
        "{}",
        err(&o)
    );
    for (f, t) in [
        ("db.key", "keys/db/db.key"),
        ("db.pem", "keys/db/db.pem"),
        ("GUID", "GUID"),
    ] {
        ws.place(
            "laptop",
            &format!("hosts/laptop/sb/{f}"),
            "x",
            &format!("/var/lib/sbctl/{t}"),
        );
    }
    let o = ws.pack(&[]);
    assert!(o.status.success(), "{}", err(&o));
    // Under impermanence, the bootloader install sees no bind mount: the bundle must be
    // named at its persistent path.
    ws.flake(&[(
        "laptop",
        r#"{
        boot.lanzaboote = { enable = true; pkiBundle = "/var/lib/sbctl"; };
        environment.persistence."/persist".directories = [ "/var/lib/sbctl" ];
      }"#,
    )]);
    let o = ws.pack(&[]);
    assert_eq!(o.status.code(), Some(6), "{}", err(&o));
    assert!(
        problems(&o)[0].starts_with("vault: laptop: boot.lanzaboote.privateKeyFile reads /var/lib/sbctl/keys/db/db.key during the bootloader install inside nixos-install, before impermanence bind-mounts it from /persist/var/lib/sbctl/keys/db/db.key"),
        "{}",
        err(&o)
    );
}

/// The flake is evaluated, never built from: import-from-derivation is refused.
#[test]
fn the_evaluation_builds_nothing() {
    let Some(()) = tools() else { return };
    let ws = Ws::new(&["laptop"]);
    ws.flake(&[(
        "laptop",
        r#"{ services.openssh = { enable = true; hostKeys = [ { type = "ed25519"; path = builtins.readFile (derivation { name = "ifd"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo /etc/ssh/k > $out" ]; }); } ]; }; }"#,
    )]);
    let o = ws.pack(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(
        err(&o).contains("allow-import-from-derivation")
            || err(&o).contains("import-from-derivation"),
        "{}",
        err(&o)
    );
}
