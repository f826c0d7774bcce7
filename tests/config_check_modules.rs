//! `vault pack --flake` against configurations as the modules define them: options that only
//! count when enabled (sshd, the initrd's SSH server), an initrd key given as a Nix path (which
//! nixpkgs' `apply` copies into the store), keys read before impermanence's bind mounts,
//! sops-nix skipping unreadable sshKeyPaths, impermanence's users and Home Manager paths,
//! lanzaboote's keys, and an evaluation that builds nothing. The configurations go through
//! nix/tests/config-check (the real modules with VAULT_REAL_NIX_SOURCES), as in
//! tests/config_check.rs.

mod common;
#[path = "config_check/ws.rs"]
mod ws;

use ws::{err, packs_cleanly, problems, refused_first, refused_with, says, succeeds, tools, Ws};

use common::require_tool;

/// initrd-ssh.nix's `apply` turns a host key given as a Nix path into a derivation that copies
/// it into the world-readable store: reported by name, without the check forcing that copy
/// (nix/tests/config-check/pkgs.nix makes forcing it fail).
#[test]
fn initrd_key_given_as_a_nix_path_is_reported_without_copying_it() {
    let Some(()) = tools() else { return };
    let ws = Ws::new(&["laptop"]);
    std::fs::write(ws.d.join("nixcfg/initrd_key"), "PRIVATE KEY\n").unwrap();
    ws.config(r#"{
        boot.initrd.network = { enable = true; ssh = { enable = true; hostKeys = [ ./initrd_key ]; }; };
      }"#);
    let o = ws.pack(&[]);
    refused_with(&o, &["vault: laptop: boot.initrd.network.ssh.hostKeys names the file initrd_key as a Nix path: NixOS copies that private key into the world-readable Nix store"]);
    says(&o, "write the path as a string");
    // Without the initrd network, the initrd's sshd does not run: nothing is read.
    ws.config(r#"{ boot.initrd.network.ssh = { enable = true; hostKeys = [ ./initrd_key "/etc/secrets/initrd/missing" ]; }; }"#);
    succeeds(&ws.pack(&[]));
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
    let line = ws.sops_key_placed_at(&sops, "/persist/var/lib/sops-nix/key.txt");
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
    ws.config(&config("/var/lib/sops-nix/key.txt", ""));
    let o = ws.pack(&[]);
    refused_with(&o, &["vault: laptop: sops.age.keyFile reads /var/lib/sops-nix/key.txt in an activation script, before impermanence bind-mounts it from /persist/var/lib/sops-nix/key.txt (environment.persistence.\"/persist\"): it finds nothing there"]);
    says(
        &o,
        "(sops.age.keyFile: \"/persist/var/lib/sops-nix/key.txt\")",
    );
    let v: serde_json::Value = serde_json::from_slice(&ws.pack(&["--json"]).stdout).unwrap();
    assert_eq!(v["config_check"]["problems"][0]["line"], line);
    // Named at the persistent path: accepted, and the file opens with the placed key.
    ws.config(&config("/persist/var/lib/sops-nix/key.txt", ""));
    succeeds(&ws.pack(&[]));
    // With systemd-sysusers, sops-nix uses a unit ordered after the mounts: the bind mount
    // is there.
    ws.config(&config(
        "/var/lib/sops-nix/key.txt",
        "systemd.sysusers.enable = true;",
    ));
    succeeds(&ws.pack(&[]));
}

/// sops-nix skips an sshKeyPaths entry it cannot read (only a missing keyFile stops it): an
/// extra path vault does not place is no problem while another one is placed.
#[test]
fn sops_skips_unreadable_ssh_key_paths() {
    let Some(ws) = ws::with_sops_for_laptop() else {
        return;
    };
    ws.config(
        r#"{
        sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" "/etc/ssh/extra_ed25519_key" ];
        sops.secrets.wifi.sopsFile = ./secrets/wifi.yaml;
      }"#,
    );
    packs_cleanly(&ws.pack(&[]));
    // None of them placed: that is a problem.
    ws.config(
        r#"{
        sops.age.sshKeyPaths = [ "/etc/ssh/a_key" "/etc/ssh/b_key" ];
        sops.secrets.wifi.sopsFile = ./secrets/wifi.yaml;
      }"#,
    );
    let o = ws.pack(&[]);
    refused_with(&o, &["vault: laptop: sops.age.sshKeyPaths reads /etc/ssh/a_key, /etc/ssh/b_key, but vault.toml places none of them for laptop"]);
}

/// A host without sshd reads no host key, and an initrd without its network runs no sshd:
/// neither gets problems about their keys. Their defaults still feed sops-nix's key paths
/// only when sshd is enabled.
#[test]
fn without_sshd_no_host_key_is_read() {
    let Some(()) = tools() else { return };
    let ws = Ws::new(&["laptop"]);
    ws.edit_toml(|toml| toml.replacen("mode = \"0600\"", "mode = \"0640\"", 1));
    ws.config(r#"{ boot.initrd.network.ssh.hostKeys = [ "/etc/secrets/initrd/missing_key" ]; }"#);
    packs_cleanly(&ws.pack(&[]));
    // With sshd, its default hostKeys are read: the 0640 key is refused.
    ws.config(r#"{ services.openssh.enable = true; }"#);
    refused_first(&ws.pack(&[]), |p| p.contains("with mode 0640"));
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
        ws.config(&format!(
                r#"{{
        users.users.alice.isNormalUser = true;
        services.openssh.enable = true;
        services.openssh.hostKeys = [ {{ path = "/home/alice/.ssh/ssh_host_ed25519_key"; type = "rsa"; }} ];
        {persist}
      }}"#
            ));
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

/// lanzaboote signs with privateKeyFile/publicKeyFile (keys/db/db.{key,pem} in pkiBundle)
/// during the bootloader install inside nixos-install: both must be placed, at a path the
/// configuration names (no bind mounts there). What sbctl reads to enroll:
/// tests/config_check_when.rs.
#[test]
fn lanzaboote_keys_must_be_placed() {
    let (Some(()), Some(_)) = (tools(), require_tool("openssl")) else {
        return;
    };
    let ws = Ws::new(&["laptop"]);
    let body = r#"{ boot.lanzaboote = { enable = true; pkiBundle = "/var/lib/sbctl"; }; }"#;
    ws.config(body);
    let o = ws.pack(&[]);
    refused_with(&o, &[
            "vault: laptop: boot.lanzaboote.privateKeyFile reads /var/lib/sbctl/keys/db/db.key, but vault.toml places nothing there for laptop",
            "vault: laptop: boot.lanzaboote.publicKeyFile reads /var/lib/sbctl/keys/db/db.pem, but vault.toml places nothing there for laptop",
        ]);
    for t in ["keys/db/db.key", "keys/db/db.pem"] {
        ws.place_sb("laptop", t, &format!("/var/lib/sbctl/{t}"));
    }
    succeeds(&ws.pack(&[]));
    // Under impermanence, the bootloader install sees no bind mount: the bundle must be
    // named at its persistent path.
    ws.config(
        r#"{
        boot.lanzaboote = { enable = true; pkiBundle = "/var/lib/sbctl"; };
        environment.persistence."/persist".directories = [ "/var/lib/sbctl" ];
      }"#,
    );
    refused_first(&ws.pack(&[]), |p| {
        p.starts_with("vault: laptop: boot.lanzaboote.privateKeyFile reads /var/lib/sbctl/keys/db/db.key during the bootloader install inside nixos-install, before impermanence bind-mounts it from /persist/var/lib/sbctl/keys/db/db.key")
    });
}

/// `vault host add --secure-boot` places sbctl's layout with one directory entry: the keys
/// lanzaboote and sbctl read are under it, and count as placed when the folder holds them. A
/// folder without db.key is reported with the entry's line, and a certificate that is not its
/// key's (db.pem replaced by KEK.pem) by both files and the fix, which works. sbsign, which
/// lzbt signs with, refuses that pair too.
#[test]
fn secure_boot_keys_placed_as_a_folder_are_checked() {
    let Some(()) = tools() else { return };
    let ws = Ws::new(&["laptop"]);
    let pki = ws.secure_boot("laptop", &[]);
    let line = ws.line_of("laptop", "/var/lib/sbctl");
    ws.config(r#"{ boot.lanzaboote = { enable = true; pkiBundle = "/var/lib/sbctl"; autoEnrollKeys.enable = true; }; }"#);
    packs_cleanly(&ws.pack(&[]));

    let key = pki.join("keys/db/db.key");
    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let o = ws.pack(&[]);
    refused_with(&o, &[format!("vault: laptop: boot.lanzaboote.privateKeyFile reads /var/lib/sbctl/keys/db/db.key, but the folder vault.toml places at /var/lib/sbctl (line {line}), hosts/laptop/secure-boot/pki, has no keys/db/db.key")]);
    says(
        &o,
        "hint: put the file at hosts/laptop/secure-boot/pki/keys/db/db.key",
    );
    std::fs::write(&key, &saved).unwrap();

    let cert = pki.join("keys/db/db.pem");
    std::fs::copy(pki.join("keys/KEK/KEK.pem"), &cert).unwrap();
    let o = ws.pack(&[]);
    refused_with(&o, &[format!("vault: laptop: boot.lanzaboote.publicKeyFile reads /var/lib/sbctl/keys/db/db.pem and boot.lanzaboote.privateKeyFile reads /var/lib/sbctl/keys/db/db.key, but the certificate vault.toml places there (hosts/laptop/secure-boot/pki/keys/db/db.pem) does not belong to the key (hosts/laptop/secure-boot/pki/keys/db/db.key; line {line}): sbsign refuses to sign the boot files with them during the bootloader install inside nixos-install")]);
    let fix = "move hosts/laptop/secure-boot aside, then `vault host add laptop --secure-boot`";
    says(&o, fix);
    // sbsign, as lzbt calls it, refuses the pair the check refused, and signs with the new
    // one.
    let efi = std::path::Path::new("/usr/lib/systemd/boot/efi/systemd-bootx64.efi");
    let sbsign = require_tool("sbsign").filter(|_| efi.is_file());
    let signs = |sbsign: &std::path::Path| {
        std::process::Command::new(sbsign)
            .arg("--key")
            .arg(&key)
            .arg("--cert")
            .arg(&cert)
            .arg("--output")
            .arg(ws.d.join("signed.efi"))
            .arg(efi)
            .output()
            .unwrap()
            .status
            .success()
    };
    if let Some(sbsign) = &sbsign {
        assert!(!signs(sbsign), "sbsign signed with a mismatched pair");
    }
    // The fix the hint gives: new keys, the same entry.
    std::fs::rename(
        ws.d.join("hosts/laptop/secure-boot"),
        ws.d.join("old-secure-boot"),
    )
    .unwrap();
    ws.secure_boot("laptop", &[]);
    succeeds(&ws.pack(&[]));
    if let Some(sbsign) = &sbsign {
        assert!(signs(sbsign), "sbsign refused the new pair");
    }
    assert_eq!(ws.line_of("laptop", "/var/lib/sbctl"), line);
}

/// An RSA key and its self-signed certificate made by openssl, as PEM text.
fn openssl_pair(dir: &std::path::Path, name: &str) -> (String, String) {
    let (key, pem) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pem")),
    );
    let o = std::process::Command::new("openssl")
        .args([
            "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", &format!("/CN={name}/"), "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&pem)
        .output()
        .expect("run openssl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |p| std::fs::read_to_string(p).unwrap();
    (read(&key), read(&pem))
}

/// sbsign (lanzaboote, during nixos-install) refuses a certificate that is not its key's,
/// and sbctl's enrolment a PK or KEK pair alike: reported before anything is packed.
#[test]
fn lanzaboote_certificate_must_belong_to_its_key() {
    let (Some(()), Some(_)) = (tools(), require_tool("openssl")) else {
        return;
    };
    let ws = Ws::new(&["laptop"]);
    let t = tempfile::tempdir().unwrap();
    let (db_key, db_pem) = openssl_pair(t.path(), "db");
    let (_, other_pem) = openssl_pair(t.path(), "other");
    ws.config(r#"{ boot.lanzaboote = { enable = true; pkiBundle = "/var/lib/sbctl"; }; }"#);
    let key_line = ws.place(
        "laptop",
        "hosts/laptop/sb/db.key",
        &db_key,
        "/var/lib/sbctl/keys/db/db.key",
    );
    ws.place(
        "laptop",
        "hosts/laptop/sb/db.pem",
        &other_pem,
        "/var/lib/sbctl/keys/db/db.pem",
    );
    ws.place(
        "laptop",
        "hosts/laptop/sb/GUID",
        "6a3c1e52-1d3b-4f0e-9c3a-5b2e8d7f4a10",
        "/var/lib/sbctl/GUID",
    );
    let o = ws.pack(&[]);
    refused_with(&o, &[format!("vault: laptop: boot.lanzaboote.publicKeyFile reads /var/lib/sbctl/keys/db/db.pem and boot.lanzaboote.privateKeyFile reads /var/lib/sbctl/keys/db/db.key, but the certificate vault.toml places there (hosts/laptop/sb/db.pem) does not belong to the key (hosts/laptop/sb/db.key; line {key_line}): sbsign refuses to sign the boot files with them during the bootloader install inside nixos-install")]);
    // Not a certificate at all: said with the reason.
    std::fs::write(ws.d.join("hosts/laptop/sb/db.pem"), "x").unwrap();
    refused_first(&ws.pack(&[]), |p| {
        p.contains("db.pem") && p.contains("not a PEM certificate")
    });
    std::fs::write(ws.d.join("hosts/laptop/sb/db.pem"), &db_pem).unwrap();
    succeeds(&ws.pack(&[]));
    // A GUID sbctl cannot read is its enrolment's problem (autoEnrollKeys):
    // config_check_when::what_sbctl_reads_to_enroll_must_be_usable.
}

/// The flake is evaluated, never built from: import-from-derivation is refused.
#[test]
fn the_evaluation_builds_nothing() {
    let Some(()) = tools() else { return };
    let ws = Ws::laptop(
        r#"{ services.openssh = { enable = true; hostKeys = [ { type = "ed25519"; path = builtins.readFile (derivation { name = "ifd"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo /etc/ssh/k > $out" ]; }); } ]; }; }"#,
    );
    let o = ws.pack(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(
        err(&o).contains("allow-import-from-derivation")
            || err(&o).contains("import-from-derivation"),
        "{}",
        err(&o)
    );
}
