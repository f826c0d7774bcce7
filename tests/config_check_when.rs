//! `vault pack --flake`: when and how each consumer really reads its keys, as the real modules
//! wire it: agenix's unit under systemd-sysusers is not ordered after impermanence's bind
//! mounts; impermanence mounts the directories NixOS needs for boot in the initrd; sops-nix
//! generates a missing keyFile with `generateKey`; lanzaboote's install hook reads only the db
//! key pair (sbctl reads the rest at boot, with `autoEnrollKeys`); a key or secret read from
//! the flake's own copy in the Nix store is world-readable. The configurations go through
//! nix/tests/config-check (the real modules with VAULT_REAL_NIX_SOURCES), as in
//! tests/config_check.rs.

mod common;
#[path = "config_check/ws.rs"]
mod ws;

use common::require_tool;
use ws::{
    err, packs_cleanly, problems, refused, refused_first, refused_with, says, succeeds, tools, Ws,
    HOST_KEY,
};

/// agenix with systemd-sysusers (or userborn) decrypts in agenix-install-secrets.service,
/// which has DefaultDependencies=no and is ordered only after systemd-sysusers.service: not
/// after local-fs.target, so not after impermanence's bind mounts. A key at a bind-mounted
/// path races them; it must be named at its persistent path, as in an activation script.
#[test]
fn agenix_under_sysusers_still_reads_before_the_bind_mounts() {
    let (Some(()), Some(age)) = (tools(), require_tool("age")) else {
        return;
    };
    let ws = Ws::new(&["laptop"]);
    ws.age_file(&age, "r.age", &ws.ssh_public("laptop"));
    ws.host_key_also_at("/persist/etc/ssh/ssh_host_ed25519_key");
    let config = |identity: &str, users: &str| {
        format!(
            r#"{{
        {users}
        age.identityPaths = [ "{identity}" ];
        age.secrets.r.file = ./secrets/r.age;
        environment.persistence."/persist".directories = [ "/etc/ssh" ];
      }}"#
        )
    };
    for users in [
        "systemd.sysusers.enable = true;",
        "services.userborn.enable = true;",
    ] {
        ws.config(&config(HOST_KEY, users));
        let o = ws.pack(&[]);
        assert_eq!(o.status.code(), Some(6), "{users}: {}", err(&o));
        assert_eq!(
            problems(&o),
            [format!("vault: laptop: age.identityPaths reads {HOST_KEY} in agenix-install-secrets.service, which is not ordered after the mounts, before impermanence bind-mounts it from /persist{HOST_KEY} (environment.persistence.\"/persist\"): it finds nothing there")],
            "{users}: {}",
            err(&o)
        );
        // Named at the persistent path: accepted (and the file opens with it).
        ws.config(&config(&format!("/persist{HOST_KEY}"), users));
        let o = ws.pack(&[]);
        assert!(o.status.success(), "{users}: {}", err(&o));
    }
}

/// impermanence bind-mounts a persisted directory that NixOS needs for boot (utils'
/// pathsNeededForBoot: /var/lib, /var/log, /etc, …) in the initrd, before activation: a key
/// under it is there when sops-nix's activation script reads it.
#[test]
fn directories_needed_for_boot_are_mounted_before_activation() {
    let (Some(()), Some(sops)) = (tools(), require_tool("sops")) else {
        return;
    };
    let ws = Ws::new(&["laptop"]);
    ws.sops_key_placed_at(&sops, "/persist/var/lib/sops-nix/key.txt");
    let config = |dir: &str| {
        format!(
            r#"{{
        sops.age.keyFile = "/var/lib/sops-nix/key.txt";
        sops.age.sshKeyPaths = [ ];
        sops.secrets.wifi.sopsFile = ./secrets/wifi.yaml;
        environment.persistence."/persist".directories = [ "{dir}" ];
      }}"#
        )
    };
    ws.config(&config("/var/lib"));
    succeeds(&ws.pack(&[]));
    // A directory mounted by systemd after activation is still a problem.
    ws.config(&config("/var/lib/sops-nix"));
    refused_first(&ws.pack(&[]), |p| {
        p.contains("in an activation script, before impermanence bind-mounts it")
    });
}

/// sops-nix with `age.generateKey` creates a missing keyFile in an activation script before it
/// decrypts: a keyFile vault does not place stops nothing, as long as a placed key opens the
/// secrets. With no other key, the generated one cannot open them.
#[test]
fn sops_generate_key_makes_a_missing_key_file_no_error() {
    let Some(ws) = ws::with_sops_for_laptop() else {
        return;
    };
    let config = |ssh: &str| {
        format!(
            r#"{{
        sops.age.keyFile = "/var/lib/sops-nix/key.txt";
        sops.age.generateKey = true;
        sops.age.sshKeyPaths = [ {ssh} ];
        sops.secrets.wifi.sopsFile = ./secrets/wifi.yaml;
      }}"#
        )
    };
    ws.config(&config(&format!("\"{HOST_KEY}\"")));
    packs_cleanly(&ws.pack(&[]));
    ws.config(&config(""));
    let o = ws.pack(&[]);
    refused_with(&o, &["vault: laptop: sops.age.keyFile reads /var/lib/sops-nix/key.txt, but vault.toml places nothing there for laptop; sops.age.generateKey would make a new key, which cannot open the secrets"]);
}

/// lanzaboote's install hook (lzbt, run by the bootloader install inside nixos-install) reads
/// only privateKeyFile and publicKeyFile. sbctl reads the bundle's GUID and its PK and KEK
/// keys only with autoEnrollKeys, in prepare-sb-auto-enroll.service at boot, after the
/// mounts. With autoGenerateKeys (allowUnsigned by default), lzbt installs unsigned when the
/// keys are missing and sbctl creates them at boot.
#[test]
fn lanzaboote_reads_the_bundle_only_to_enroll() {
    let Some(()) = tools() else { return };
    let ws = Ws::new(&["laptop"]);
    for (f, t) in [
        ("keys/db/db.key", "/etc/secureboot/db.key"),
        ("keys/db/db.pem", "/etc/secureboot/db.pem"),
    ] {
        ws.place_sb("laptop", f, t);
    }
    let keys =
        r#"privateKeyFile = "/etc/secureboot/db.key"; publicKeyFile = "/etc/secureboot/db.pem";"#;
    ws.config(&format!(
        r#"{{ boot.lanzaboote = {{ enable = true; pkiBundle = "/var/lib/sbctl"; {keys} }}; }}"#
    ));
    succeeds(&ws.pack(&[]));
    // Enrolling at boot: the bundle's GUID and keys, read after the mounts (a bind-mounted
    // bundle is placed at its persistent path and may be named at the bind-mounted one).
    ws.config(&format!(
            r#"{{
        boot.lanzaboote = {{ enable = true; pkiBundle = "/var/lib/sbctl"; {keys} autoEnrollKeys.enable = true; }};
        environment.persistence."/persist".directories = [ "/var/lib/sbctl" ];
      }}"#
        ));
    let o = ws.pack(&[]);
    let p = refused(&o);
    assert_eq!(p.len(), 7, "{}", err(&o));
    assert_eq!(
        p[0],
        "vault: laptop: boot.lanzaboote.autoEnrollKeys reads /var/lib/sbctl/GUID, but vault.toml places nothing at /persist/var/lib/sbctl/GUID, where impermanence keeps it for laptop",
        "{}",
        err(&o)
    );
    for t in [
        "GUID",
        "keys/PK/PK.key",
        "keys/PK/PK.pem",
        "keys/KEK/KEK.key",
        "keys/KEK/KEK.pem",
        "keys/db/db.key",
        "keys/db/db.pem",
    ] {
        ws.place_sb("laptop", t, &format!("/persist/var/lib/sbctl/{t}"));
    }
    succeeds(&ws.pack(&[]));
    // autoGenerateKeys: nothing needs to be placed.
    ws.config(r#"{ boot.lanzaboote = { enable = true; pkiBundle = "/var/lib/other"; autoGenerateKeys.enable = true; }; }"#);
    succeeds(&ws.pack(&[]));
    // Unless one of the two is there: then lzbt signs, and needs the other.
    ws.place_sb("laptop", "keys/db/db.key", "/var/lib/other/keys/db/db.key");
    let o = ws.pack(&[]);
    refused_with(&o, &["vault: laptop: boot.lanzaboote.publicKeyFile reads /var/lib/other/keys/db/db.pem, but vault.toml places nothing there for laptop"]);
    ws.place_sb("laptop", "keys/db/db.pem", "/var/lib/other/keys/db/db.pem");
    succeeds(&ws.pack(&[]));
}

/// sbctl reads the bundle's GUID and its PK and KEK pairs only with autoEnrollKeys: then the
/// GUID must parse as sbctl parses it (the file's bytes as they are: no trailing newline),
/// each certificate must be its key's, and each key PKCS#8. Each fix the hints give works.
#[test]
fn what_sbctl_reads_to_enroll_must_be_usable() {
    let Some(()) = tools() else { return };
    let ws = Ws::new(&["laptop"]);
    let pki = ws.secure_boot("laptop", &[]);
    let line = ws.line_of("laptop", "/var/lib/sbctl");
    let guid = pki.join("GUID");
    let text = std::fs::read_to_string(&guid).unwrap();
    assert_eq!(text.len(), 36, "{text:?}");
    std::fs::write(&guid, format!("{text}\n")).unwrap();
    let pk = pki.join("keys/PK/PK.pem");
    let saved_pk = std::fs::read(&pk).unwrap();
    std::fs::copy(pki.join("keys/KEK/KEK.pem"), &pk).unwrap();
    let config = |enroll: &str| {
        format!(
            r#"{{ boot.lanzaboote = {{ enable = true; pkiBundle = "/var/lib/sbctl"; {enroll} }}; }}"#
        )
    };
    // Not enrolling: lzbt reads the db pair only.
    ws.config(&config(""));
    succeeds(&ws.pack(&[]));

    ws.config(&config("autoEnrollKeys.enable = true;"));
    let o = ws.pack(&[]);
    refused_with(&o, &[
            format!("vault: laptop: boot.lanzaboote.autoEnrollKeys reads /var/lib/sbctl/GUID, but the file vault.toml places there (hosts/laptop/secure-boot/pki/GUID, line {line}) is not usable: the GUID ends with a newline or spaces, and sbctl parses the file as it is"),
            format!("vault: laptop: boot.lanzaboote.autoEnrollKeys reads /var/lib/sbctl/keys/PK/PK.pem and /var/lib/sbctl/keys/PK/PK.key, but the certificate vault.toml places there (hosts/laptop/secure-boot/pki/keys/PK/PK.pem) does not belong to the key (hosts/laptop/secure-boot/pki/keys/PK/PK.key; line {line}): the firmware refuses the KEK that sbctl's enrolment signs with this key"),
        ]);
    let fix = "truncate -s 36 hosts/laptop/secure-boot/pki/GUID";
    says(&o, fix);
    ws.sh(fix);
    std::fs::write(&pk, &saved_pk).unwrap();
    succeeds(&ws.pack(&[]));

    // Not a GUID at all.
    std::fs::write(&guid, "laptop").unwrap();
    refused_first(&ws.pack(&[]), |p| {
        p.ends_with("is not usable: it holds no GUID (sbctl writes one like 6a3c1e52-9f4b-4c7e-8d2a-0b1c2d3e4f50, with no newline)")
    });
    std::fs::write(&guid, &text).unwrap();

    // A PKCS#1 key: sbctl reads only PKCS#8; the conversion the hint gives is accepted.
    let Some(openssl) = require_tool("openssl") else {
        return;
    };
    let kek = pki.join("keys/KEK/KEK.key");
    let o = std::process::Command::new(&openssl)
        .args(["rsa", "-traditional", "-in"])
        .arg(&kek)
        .arg("-out")
        .arg(ws.d.join("pkcs1.key"))
        .output()
        .unwrap();
    succeeds(&o);
    std::fs::rename(ws.d.join("pkcs1.key"), &kek).unwrap();
    assert!(std::fs::read_to_string(&kek)
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let o = ws.pack(&[]);
    refused_with(&o, &[format!("vault: laptop: boot.lanzaboote.autoEnrollKeys reads /var/lib/sbctl/keys/KEK/KEK.key, but the key vault.toml places there (hosts/laptop/secure-boot/pki/keys/KEK/KEK.key, line {line}) is in PKCS#1 form (-----BEGIN RSA PRIVATE KEY-----); sbctl reads only PKCS#8 (-----BEGIN PRIVATE KEY-----)")]);
    let hint = err(&o);
    let fix = hint
        .split("hint: convert it in place: ")
        .nth(1)
        .and_then(|r| r.lines().next())
        .unwrap()
        .to_owned();
    ws.sh(&fix);
    succeeds(&ws.pack(&[]));
}

/// A key or secret named by a Nix path inside the flake is read from the flake's copy in the
/// Nix store, world-readable (and copied into the target's store by `nixos-install --flake`):
/// reported, whichever option reads it, never passed over.
#[test]
fn keys_and_secrets_in_the_store_are_reported() {
    let Some(()) = tools() else { return };
    let ws = Ws::new(&["laptop"]);
    std::fs::write(ws.d.join("nixcfg/wg.key"), "PRIVATE\n").unwrap();
    for (option, body) in [
        (
            "boot.initrd.secrets.\"/etc/secrets/initrd/wg.key\"",
            r#"{ boot.initrd.secrets."/etc/secrets/initrd/wg.key" = ./wg.key; }"#,
        ),
        (
            "services.openssh.hostKeys",
            r#"{ services.openssh = { enable = true; hostKeys = [ { type = "rsa"; path = ./wg.key; } ]; }; }"#,
        ),
        (
            "age.identityPaths",
            r#"{ age.identityPaths = [ "/etc/ssh/ssh_host_ed25519_key" ./wg.key ]; age.secrets.r.file = "/s/r.age"; }"#,
        ),
        (
            "sops.age.sshKeyPaths",
            r#"{ sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ./wg.key ]; sops.secrets.r.sopsFile = "/s/r.yaml"; }"#,
        ),
    ] {
        ws.config(body);
        let o = ws.pack(&["--json"]);
        assert_eq!(o.status.code(), Some(6), "{option}: {}", err(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let p = &v["config_check"]["problems"];
        let leak = p
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["option"] == option && x["message"].as_str().unwrap().contains("Nix store"))
            .unwrap_or_else(|| panic!("{option}: {p}"));
        let path = leak["path"].as_str().unwrap();
        assert!(
            path.starts_with("/nix/store/") && path.ends_with("/wg.key"),
            "{option}: {leak}"
        );
        assert_eq!(
            leak["message"].as_str().unwrap(),
            format!("{option} reads {path}, a file in the world-readable Nix store"),
        );
    }
}

/// sops-nix's activation scripts: setupSecrets (regular secrets) runs after impermanence's
/// persist-files script, which bind-mounts or links persisted *files*, so a key persisted as
/// a file is there; persisted directories are mounted by systemd later. setupSecretsForUsers
/// (neededForUsers secrets) runs before `users`, so before persist-files, and stays an
/// activation script unless systemd-sysusers or userborn is on, whatever
/// sops.useSystemdActivation says.
#[test]
fn sops_reads_persisted_files_after_they_are_linked_except_for_users() {
    let Some(ws) = ws::with_sops_for_laptop() else {
        return;
    };
    ws.host_key_also_at(&format!("/persist{HOST_KEY}"));
    let config = |persist: &str, extra: &str| {
        format!(
            r#"{{
        sops.age.sshKeyPaths = [ "{HOST_KEY}" ];
        sops.secrets.wifi.sopsFile = ./secrets/wifi.yaml;
        environment.persistence."/persist".{persist};
        {extra}
      }}"#
        )
    };
    ws.config(&config(&format!("files = [ \"{HOST_KEY}\" ]"), ""));
    succeeds(&ws.pack(&[]));
    let early = format!("vault: laptop: sops.age.sshKeyPaths reads {HOST_KEY} in an activation script, before impermanence bind-mounts it from /persist{HOST_KEY}");
    for (persist, extra) in [
        ("directories = [ \"/etc/ssh\" ]", ""),
        (
            &format!("files = [ \"{HOST_KEY}\" ]") as &str,
            "sops.secrets.wifi.neededForUsers = true;",
        ),
        (
            "directories = [ \"/etc/ssh\" ]",
            "sops.useSystemdActivation = true; sops.secrets.wifi.neededForUsers = true;",
        ),
    ] {
        ws.config(&config(persist, extra));
        let o = ws.pack(&[]);
        assert_eq!(o.status.code(), Some(6), "{persist} {extra}: {}", err(&o));
        assert!(
            problems(&o)[0].starts_with(&early),
            "{persist} {extra}: {}",
            err(&o)
        );
    }
    // With systemd-sysusers, both are units ordered after the mounts.
    ws.config(&config(
        "directories = [ \"/etc/ssh\" ]",
        "systemd.sysusers.enable = true; sops.secrets.wifi.neededForUsers = true;",
    ));
    succeeds(&ws.pack(&[]));
}
