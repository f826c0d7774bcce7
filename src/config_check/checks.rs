//! The checks of one host's configuration, by consumer (see `rules` for where a path must be
//! placed):
//!
//! - sshd (`services.openssh.enable`): its ed25519 `hostKeys` path, when vault manages the host
//!   key (sshd would otherwise generate a new one), with a mode sshd accepts;
//! - sops-nix (when it has secrets): `sops.age.keyFile` must be placed (sops-nix stops when it
//!   cannot read it), unless `generateKey` creates it and another placed key is there;
//!   `sops.age.sshKeyPaths` it skips when unreadable, so at least one of the configured keys
//!   must be placed; the secret files must open with the placed keys;
//! - agenix (when it has secrets): at least one of `age.identityPaths`, and its files must open;
//! - both read their keys before impermanence's bind mounts, in an activation script (sops-nix
//!   uses a unit ordered after the mounts with systemd-sysusers or userborn, or for regular
//!   secrets with useSystemdActivation; agenix's unit then is ordered after systemd-sysusers
//!   only): such keys must be named, and placed, at their persistent path (sops-nix's
//!   setupSecrets runs after impermanence has linked persisted files, not directories);
//! - the initrd's SSH server (`boot.initrd.network.ssh.enable` with the initrd network): each
//!   host key, never given as a Nix path (NixOS copies that into the world-readable store),
//!   never the main host key; `boot.initrd.secrets` sources; both read by the bootloader
//!   install inside nixos-install, with no bind mounts;
//! - lanzaboote (`boot.lanzaboote.enable`): its keys, placed and usable (`secure_boot`);
//! - any of those paths in the Nix store (a Nix path inside the flake): world-readable.

use std::collections::BTreeSet;
use std::path::Path;

use super::escape;
use super::eval::Evaluated;
use super::rules::{entry_hint, Early, Host, Problem, INITRD_KEY_TARGET};
use crate::manifest::Manifest;
use crate::pack::PackPlan;

const ACTIVATION: Early = Early::Activation;
const BOOTLOADER: Early = Early::BootloaderInstall;

/// The checks for one host: see the module documentation.
pub fn check_host(
    manifest: &Manifest,
    plan: &PackPlan,
    host: &str,
    ev: &Evaluated,
) -> Vec<Problem> {
    let mut h = Host::new(manifest, plan, host, ev);
    h.claim(ev);
    in_store(&mut h, host, ev);
    let manages_key = manifest
        .hosts
        .get(host)
        .is_some_and(|x| x.ssh_host_key.is_some());

    // sshd's host keys, and their modes: read by sshd only, after the mounts.
    let mut main_keys = BTreeSet::new();
    for k in ev.openssh_host_keys.iter().filter(|_| ev.sshd_enabled) {
        let Some(p) = &k.path else { continue };
        main_keys.insert(p.clone());
        let ed = k.kind.as_deref() == Some("ed25519");
        let hint = |t: &str| entry_hint(host, t, "hosts/NAME/ssh_host_ed25519_key");
        let Some(pl) = h.locate(
            "services.openssh.hostKeys",
            p,
            ed && manages_key,
            true,
            &hint,
        ) else {
            continue;
        };
        if pl.mode & 0o077 != 0 {
            h.problem(
                "services.openssh.hostKeys",
                p,
                Some(pl.line),
                format!(
                    "services.openssh.hostKeys reads {}, but vault.toml places it with mode {:04o} (line {}); sshd refuses a host key that group or others can read",
                    escape(p),
                    pl.mode,
                    pl.line
                ),
                "set mode = \"0600\" on that entry".into(),
            );
        }
    }

    if let Some(s) = ev.sops.as_ref().filter(|s| !s.secrets.is_empty()) {
        // The earliest reader: setupSecretsForUsers (neededForUsers secrets), then setupSecrets;
        // units ordered after the mounts otherwise.
        let for_users = s.secrets.values().any(|x| x.needed_for_users);
        let regular = s.secrets.values().any(|x| !x.needed_for_users);
        let when = if for_users && !s.users_systemd_activation {
            Some(ACTIVATION)
        } else if regular && !s.systemd_activation {
            Some(Early::ActivationAfterFiles)
        } else {
            None
        };
        let mut placed = Vec::new();
        if let Some(k) = &s.key_file {
            let hint = |t: &str| entry_hint(host, t, "hosts/NAME/age-key.txt");
            // With generateKey, sops-nix makes a missing keyFile: required only when no
            // other key is placed (below).
            if when.is_none_or(|w| h.read_early("sops.age.keyFile", k, w)) {
                if let Some(pl) = h.locate("sops.age.keyFile", k, !s.generate_key, true, &hint) {
                    placed.push((k.clone(), pl));
                }
            }
        }
        let paths: Vec<&String> = s.ssh_key_paths.iter().flatten().collect();
        for p in &paths {
            let hint = |t: &str| entry_hint(host, t, "hosts/NAME/ssh_host_ed25519_key");
            if when.is_none_or(|w| h.read_early("sops.age.sshKeyPaths", p, w)) {
                if let Some(pl) = h.locate("sops.age.sshKeyPaths", p, false, true, &hint) {
                    placed.push(((*p).clone(), pl));
                }
            }
        }
        if s.key_file.is_none() && paths.is_empty() {
            h.problem(
                "sops.age",
                "",
                None,
                "sops.secrets are set, but neither sops.age.keyFile nor sops.age.sshKeyPaths names a key to decrypt them".into(),
                "set sops.age.sshKeyPaths = [ \"/etc/ssh/ssh_host_ed25519_key\" ] (the key vault places), or sops.age.keyFile".into(),
            );
        } else if placed.is_empty()
            && !s
                .key_file
                .iter()
                .chain(paths.iter().copied())
                .any(|p| h.reported.contains(p.as_str()))
        {
            match &s.key_file {
                Some(k) if s.generate_key => {
                    let target = h.need(k).target;
                    h.problem(
                        "sops.age.keyFile",
                        k,
                        None,
                        format!(
                            "sops.age.keyFile reads {}, but vault.toml places nothing there for {host}; sops.age.generateKey would make a new key, which cannot open the secrets",
                            escape(k)
                        ),
                        entry_hint(host, &target, "hosts/NAME/age-key.txt"),
                    );
                }
                // A keyFile without generateKey is required and reported on its own.
                Some(_) => {}
                None => none_placed(&mut h, "sops.age.sshKeyPaths", &paths),
            }
        }
        let (ids, _) = h.identities("sops.age", &placed);
        if !ids.is_empty() {
            super::secrets::check_sops_files(&mut h, s, &ids);
        }
    }

    if let Some(a) = ev.age.as_ref().filter(|a| !a.secrets.is_empty()) {
        let when = if a.systemd_activation {
            Early::AgenixUnit
        } else {
            ACTIVATION
        };
        let paths: Vec<&String> = a.identity_paths.iter().flatten().collect();
        let mut placed = Vec::new();
        for p in &paths {
            let hint = |t: &str| entry_hint(host, t, "hosts/NAME/ssh_host_ed25519_key");
            if h.read_early("age.identityPaths", p, when) {
                if let Some(pl) = h.locate("age.identityPaths", p, false, true, &hint) {
                    placed.push(((*p).clone(), pl));
                }
            }
        }
        if placed.is_empty() && !paths.iter().any(|p| h.reported.contains(p.as_str())) {
            none_placed(&mut h, "age.identityPaths", &paths);
        }
        let (ids, sources) = h.identities("age.identityPaths", &placed);
        if !ids.is_empty() {
            super::secrets::check_age_files(&mut h, a, &sources);
        }
    }

    initrd(&mut h, manifest, host, ev, &main_keys);
    super::secure_boot::lanzaboote(&mut h, host, ev);
    h.into_problems()
}

/// "OPTION reads A, B, but vault.toml places none of them".
fn none_placed(h: &mut Host<'_>, option: &str, paths: &[&String]) {
    let host = h.name.to_owned();
    let shown: Vec<String> = paths.iter().map(|p| escape(p)).collect();
    let first = paths
        .first()
        .map_or("/etc/ssh/ssh_host_ed25519_key".to_owned(), |p| {
            h.need(p).target
        });
    h.problem(
        option,
        paths.first().map_or("", |p| p.as_str()),
        None,
        format!(
            "{option} reads {}, but vault.toml places none of them for {host}",
            if shown.is_empty() {
                "nothing".into()
            } else {
                shown.join(", ")
            }
        ),
        entry_hint(&host, &first, "hosts/NAME/ssh_host_ed25519_key"),
    );
}

fn initrd(
    h: &mut Host<'_>,
    manifest: &Manifest,
    host: &str,
    ev: &Evaluated,
    main_keys: &BTreeSet<String>,
) {
    const OPTION: &str = "boot.initrd.network.ssh.hostKeys";
    for k in &ev.initrd_ssh.host_keys {
        if let Some(name) = &k.store_copy {
            // initrd-ssh.nix's apply turns a Nix path into a derivation copying the key.
            h.problem(
                OPTION,
                name,
                None,
                format!(
                    "{OPTION} names the file {} as a Nix path: NixOS copies that private key into the world-readable Nix store",
                    escape(name)
                ),
                format!("write the path as a string (\"{INITRD_KEY_TARGET}\"), and `vault host add {host} --initrd-ssh` places a key there; treat the copied key as exposed and replace it"),
            );
            continue;
        }
        let Some(p) = &k.path else { continue };
        // In the store: reported by in_store.
        if h.reported.contains(p.as_str()) {
            continue;
        }
        if !h.read_early(OPTION, p, BOOTLOADER) {
            continue;
        }
        let hint = |t: &str| {
            if t == INITRD_KEY_TARGET {
                format!("`vault host add {host} --initrd-ssh` generates a separate initrd key and adds its entry")
            } else {
                format!(
                    "`vault host add {host} --initrd-ssh` generates a separate initrd key; then set its entry's target to \"{}\"",
                    escape(t)
                )
            }
        };
        let Some(pl) = h.locate(OPTION, p, true, false, &hint) else {
            continue;
        };
        let main_source = manifest
            .hosts
            .get(host)
            .and_then(|x| x.ssh_host_key.as_ref());
        let same_file =
            |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
                (Ok(x), Ok(y)) => x == y,
                _ => false,
            };
        if main_keys.contains(p) || main_source.is_some_and(|m| same_file(m, &pl.source)) {
            h.problem(
                OPTION,
                p,
                Some(pl.line),
                format!(
                    "{OPTION} reads {}, which is the host's main SSH key (line {}); the initrd copy sits unencrypted on /boot",
                    escape(p),
                    pl.line
                ),
                format!("`vault host add {host} --initrd-ssh` generates a separate initrd key; use its path in {OPTION}"),
            );
        }
    }

    for (dest, src) in &ev.initrd_secrets {
        let Some(src) = src else { continue };
        if h.reported.contains(src.as_str()) {
            continue;
        }
        let option = super::secrets::quoted("boot.initrd.secrets", dest);
        if !h.read_early(&option, src, BOOTLOADER) {
            continue;
        }
        let hint = |t: &str| entry_hint(host, t, "hosts/NAME/…");
        h.locate(&option, src, true, false, &hint);
    }
}

/// Paths read from the Nix store: a Nix path inside the flake names the flake's copy there
/// (and `nixos-install --flake` copies it into the target's store), world-readable.
fn in_store(h: &mut Host<'_>, host: &str, ev: &Evaluated) {
    let mut read: Vec<(String, &str)> = Vec::new();
    if ev.sshd_enabled {
        for k in &ev.openssh_host_keys {
            read.extend(
                k.path
                    .iter()
                    .map(|p| ("services.openssh.hostKeys".into(), p.as_str())),
            );
        }
    }
    if let Some(s) = ev.sops.as_ref().filter(|s| !s.secrets.is_empty()) {
        read.extend(
            s.key_file
                .iter()
                .map(|p| ("sops.age.keyFile".into(), p.as_str())),
        );
        for p in s.ssh_key_paths.iter().flatten() {
            read.push(("sops.age.sshKeyPaths".into(), p));
        }
    }
    if let Some(a) = ev.age.as_ref().filter(|a| !a.secrets.is_empty()) {
        for p in a.identity_paths.iter().flatten() {
            read.push(("age.identityPaths".into(), p));
        }
    }
    for k in &ev.initrd_ssh.host_keys {
        read.extend(
            k.path
                .iter()
                .map(|p| ("boot.initrd.network.ssh.hostKeys".into(), p.as_str())),
        );
    }
    for (dest, src) in &ev.initrd_secrets {
        if let Some(src) = src {
            read.push((super::secrets::quoted("boot.initrd.secrets", dest), src));
        }
    }
    if let Some(l) = &ev.lanzaboote {
        read.extend(
            l.private_key_file
                .iter()
                .map(|p| ("boot.lanzaboote.privateKeyFile".into(), p.as_str())),
        );
        read.extend(
            l.public_key_file
                .iter()
                .map(|p| ("boot.lanzaboote.publicKeyFile".into(), p.as_str())),
        );
    }
    for (option, p) in read {
        if !p.starts_with("/nix/store/") || h.reported.contains(p) {
            continue;
        }
        h.reported.insert(p.to_owned());
        h.problem(
            &option,
            p,
            None,
            format!("{option} reads {}, a file in the world-readable Nix store", escape(p)),
            format!("name the file where {host} keeps it, as a string (\"/etc/…\"), not as a Nix path, and place it there with a vault.toml entry; treat the key as exposed and replace it"),
        );
    }
}
