//! `vault pack --flake`: the real `nix` evaluates test flakes whose
//! `nixosConfigurations.<host>` are NixOS configurations evaluated through the module system
//! (nix/tests/config-check: option types, defaults and `apply` as nixpkgs, sops-nix, agenix,
//! impermanence and lanzaboote declare them; no nixpkgs, no inputs: no network), and pack
//! refuses what would fail at first boot, one line per problem. With VAULT_REAL_NIX_SOURCES
//! (`scripts/check-nix --real`), the real lib and the real modules are evaluated instead.
//! Secret files are made by the real `sops` and `age`.

mod common;
#[path = "config_check/ws.rs"]
mod ws;

use ws::{
    err, packs_cleanly, problems, refused, refused_with, says, succeeds, tools, Ws, HOST_KEY,
};

use common::require_tool;

#[test]
fn correct_configuration_packs_silently() {
    let (Some(()), Some(sops), Some(age)) = (tools(), require_tool("sops"), require_tool("age"))
    else {
        return;
    };
    let ws = Ws::new(&["laptop"]);
    ws.sops_file(&sops, "wifi.yaml", &ws.age_recipient("laptop"));
    ws.age_file(&age, "restic.age", &ws.ssh_public("laptop"));
    ws.config(r#"{
        services.openssh.enable = true;
        services.openssh.hostKeys = [ { path = "/etc/ssh/ssh_host_ed25519_key"; type = "ed25519"; } ];
        sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
        sops.defaultSopsFile = ./secrets/wifi.yaml;
        sops.secrets.wifi = { };
        sops.secrets.psk.sopsFile = ./secrets/wifi.yaml;
        age.identityPaths = [ "/etc/ssh/ssh_host_ed25519_key" "/etc/ssh/ssh_host_rsa_key" ];
        age.secrets.restic.file = ./secrets/restic.age;
      }"#);
    let o = ws.pack(&[]);
    packs_cleanly(&o);
    assert!(!err(&o).contains("skipped"), "{}", err(&o));
    let o = ws.pack(&["--json"]);
    succeeds(&o);
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
    let ws = Ws::laptop(
        r#"{
        services.openssh.enable = true;
        services.openssh.hostKeys = [ { path = "/persist/etc/ssh/ssh_host_ed25519_key"; type = "ed25519"; } ];
        environment.persistence."/persist" = { directories = [ "/var/log" ]; files = [ "/etc/machine-id" ]; };
      }"#,
    );
    let line = ws.line_of("laptop", HOST_KEY);
    let o = ws.pack(&[]);
    let p = refused(&o);
    assert_eq!(
        p,
        [format!("vault: laptop: services.openssh.hostKeys reads /persist/etc/ssh/ssh_host_ed25519_key, but vault.toml places /etc/ssh/ssh_host_ed25519_key (line {line})")],
        "{}",
        err(&o)
    );
    says(&o, "hint: with impermanence, place it under /persist: target = \"/persist/etc/ssh/ssh_host_ed25519_key\"");
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
    succeeds(&o);
}

#[test]
fn persisted_directory_needs_the_key_under_persistent_storage() {
    let Some(()) = tools() else { return };
    let ws = Ws::laptop(
        r#"{
        services.openssh.enable = true;
        services.openssh.hostKeys = [ { path = "/etc/ssh/ssh_host_ed25519_key"; type = "ed25519"; } ];
        environment.persistence."/persist".directories = [ "/etc/ssh" ];
      }"#,
    );
    let line = ws.line_of("laptop", HOST_KEY);
    let o = ws.pack(&[]);
    refused_with(&o, &[format!("vault: laptop: services.openssh.hostKeys reads /etc/ssh/ssh_host_ed25519_key, which impermanence bind-mounts from /persist/etc/ssh/ssh_host_ed25519_key (environment.persistence.\"/persist\"), but vault.toml places /etc/ssh/ssh_host_ed25519_key (line {line}), on the root that is wiped at boot")]);
    // Placed under /persist, the bind mount brings it to /etc/ssh: accepted.
    ws.edit_toml(|toml| toml.replace("target = \"/etc/ssh/", "target = \"/persist/etc/ssh/"));
    packs_cleanly(&ws.pack(&[]));
}

#[test]
fn host_key_readable_by_others_is_refused() {
    let Some(()) = tools() else { return };
    let ws = Ws::laptop(
        r#"{ services.openssh.enable = true; services.openssh.hostKeys = [ { path = "/etc/ssh/ssh_host_ed25519_key"; type = "ed25519"; } ]; }"#,
    );
    ws.edit_toml(|toml| toml.replacen("mode = \"0600\"", "mode = \"0640\"", 1));
    let line = ws.line_of("laptop", HOST_KEY);
    let o = ws.pack(&[]);
    refused_with(&o, &[format!("vault: laptop: services.openssh.hostKeys reads /etc/ssh/ssh_host_ed25519_key, but vault.toml places it with mode 0640 (line {line}); sshd refuses a host key that group or others can read")]
    );
}

#[test]
fn missing_sops_key_file() {
    let Some(ws) = ws::with_sops_for_laptop() else {
        return;
    };
    ws.config(
        r#"{
        sops.age.keyFile = "/var/lib/sops-nix/key.txt";
        sops.age.sshKeyPaths = [ ];
        sops.secrets.wifi.sopsFile = ./secrets/wifi.yaml;
      }"#,
    );
    let o = ws.pack(&[]);
    refused_with(&o, &["vault: laptop: sops.age.keyFile reads /var/lib/sops-nix/key.txt, but vault.toml places nothing there for laptop"]);
    says(&o, "target = \"/var/lib/sops-nix/key.txt\"");
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
    ws.config(
        r#"{
        sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
        sops.secrets.wifi.sopsFile = ./secrets/wifi.yaml;
        age.identityPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
        age.secrets.restic.file = ./secrets/restic.age;
      }"#,
    );
    let o = ws.pack(&[]);
    let p = refused(&o);
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
    ws.config("{ boot.kernelParams = [ \"quiet\" ]; }");
    packs_cleanly(&ws.pack(&[]));
}

#[test]
fn evaluation_error_is_reported_escaped_and_no_config_check_packs_anyway() {
    let Some(()) = tools() else { return };
    let ws = Ws::new(&["laptop"]);
    // Raw control characters in the error message must not reach the terminal: Nix drops
    // the C0 ones itself; U+009B (a one-character CSI) it passes on.
    ws.config("{ services.openssh.hostKeys = abort \"broken \u{7}\u{1b}[2J \u{9b}31m config\"; }");
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
    succeeds(&o);
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
    succeeds(&o);
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
    succeeds(&o);
    let skipped: Vec<&str> = std::str::from_utf8(&o.stderr)
        .unwrap()
        .lines()
        .filter(|l| l.contains("check skipped"))
        .collect();
    assert_eq!(
        skipped,
        ["vault: NixOS configuration check skipped: `nix` is not on PATH"]
    );

    ws.edit_toml(|toml| toml.replace("flake = \"nixcfg#laptop\"\n", ""));
    let o = ws.pack(&[]);
    succeeds(&o);
    says(&o, "check skipped: no flake given");
}

#[test]
fn flake_flag_for_a_host_not_packed_is_a_usage_error() {
    let ws = Ws::new(&["laptop", "web"]);
    let o = ws.pack(&["--flake", "nixcfg#db"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    says(&o, "not one of the hosts being packed");
}

#[test]
fn missing_initrd_key_then_host_add_initrd_ssh_makes_a_separate_one() {
    let Some(()) = tools() else { return };
    let ws = Ws::laptop(
        r#"{
        services.openssh.enable = true;
        services.openssh.hostKeys = [ { path = "/etc/ssh/ssh_host_ed25519_key"; type = "ed25519"; } ];
        boot.initrd.network = { enable = true; ssh.enable = true; };
        boot.initrd.network.ssh.hostKeys = [ "/etc/secrets/initrd/ssh_host_ed25519_key" ];
      }"#,
    );
    let o = ws.pack(&[]);
    refused_with(&o, &["vault: laptop: boot.initrd.network.ssh.hostKeys reads /etc/secrets/initrd/ssh_host_ed25519_key, but vault.toml places nothing there for laptop"]);
    assert!(
        err(&o)
            .contains("hint: `vault host add laptop --initrd-ssh` generates a separate initrd key"),
        "{}",
        err(&o)
    );

    let o = ws.vault(&["host", "add", "laptop", "--initrd-ssh"]);
    succeeds(&o);
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
    packs_cleanly(&ws.pack(&[]));
    // A second --initrd-ssh is refused, nothing changed.
    let before = std::fs::read(ws.d.join("vault.toml")).unwrap();
    let o = ws.vault(&["host", "add", "laptop", "--initrd-ssh"]);
    assert!(!o.status.success());
    assert_eq!(std::fs::read(ws.d.join("vault.toml")).unwrap(), before);
}

#[test]
fn initrd_reusing_the_main_host_key_is_refused() {
    let Some(()) = tools() else { return };
    let ws = Ws::laptop(
        r#"{ boot.initrd.network = { enable = true; ssh = { enable = true; hostKeys = [ "/etc/ssh/ssh_host_ed25519_key" ]; }; }; }"#,
    );
    let o = ws.pack(&[]);
    refused(&o);
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
    ws.config(
        r#"{
        age.identityPaths = [ "/var/lib/agenix/id" "/etc/ssh/ssh_host_rsa_key" ];
        age.secrets.restic.file = ./secrets/restic.age;
        boot.initrd.secrets."/keyfile.bin" = "/etc/secrets/initrd/keyfile.bin";
        boot.initrd.secrets."/in-store" = ./flake.nix;
      }"#,
    );
    let o = ws.pack(&[]);
    let p = refused(&o);
    assert_eq!(p.len(), 3, "{}", err(&o));
    // A source inside the flake is its world-readable copy in the store
    // (tests/config_check_when.rs).
    assert!(
        p[0].starts_with("vault: laptop: boot.initrd.secrets.\"/in-store\" reads /nix/store/"),
        "{}",
        p[0]
    );
    assert_eq!(
        p[1],
        "vault: laptop: age.identityPaths reads /var/lib/agenix/id, /etc/ssh/ssh_host_rsa_key, but vault.toml places none of them for laptop"
    );
    assert_eq!(
        p[2],
        "vault: laptop: boot.initrd.secrets.\"/keyfile.bin\" reads /etc/secrets/initrd/keyfile.bin, but vault.toml places nothing there for laptop"
    );
    // One identity placed is enough for agenix (it skips missing ones), and it opens the file.
    ws.config(
        r#"{
        age.identityPaths = [ "/etc/ssh/ssh_host_ed25519_key" "/etc/ssh/ssh_host_rsa_key" ];
        age.secrets.restic.file = ./secrets/restic.age;
      }"#,
    );
    succeeds(&ws.pack(&[]));
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
    ws.config(
        r#"{
        age.identityPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
        age.secrets.restic.file = ./secrets/restic.age;
      }"#,
    );
    let o = ws.pack(&[]);
    let p = refused(&o);
    assert_eq!(p.len(), 1, "{}", err(&o));
    assert!(
        p[0].starts_with("vault: laptop: age.secrets.\"restic\" uses secrets/restic.age, which laptop's key cannot open"),
        "{}",
        p[0]
    );
}
