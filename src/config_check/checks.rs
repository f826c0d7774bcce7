//! The checks of one host's configuration, by consumer (see `rules` for where a path must be
//! placed):
//!
//! - sshd (`services.openssh.enable`): its ed25519 `hostKeys` path, when vault manages the host
//!   key (sshd would otherwise generate a new one), with a mode sshd accepts;
//! - sops-nix (when it has secrets): `sops.age.keyFile` must be placed (sops-nix stops when it
//!   cannot read it); `sops.age.sshKeyPaths` it skips when unreadable, so at least one of the
//!   configured keys must be placed; the secret files must open with the placed keys;
//! - agenix (when it has secrets): at least one of `age.identityPaths`, and its files must open;
//! - both read their keys in an activation script (unless systemd-sysusers or userborn make
//!   them use a unit), before impermanence's bind mounts: such keys must be named, and placed,
//!   at their persistent path;
//! - the initrd's SSH server (`boot.initrd.network.ssh.enable` with the initrd network): each
//!   host key, never given as a Nix path (NixOS copies that into the world-readable store),
//!   never the main host key; `boot.initrd.secrets` sources; both read by the bootloader
//!   install inside nixos-install, with no bind mounts;
//! - lanzaboote (`boot.lanzaboote.enable`): `privateKeyFile`, `publicKeyFile` and the
//!   pkiBundle's `GUID` (and its PK and KEK keys with `autoEnrollKeys`), read by the bootloader
//!   install, likewise; each certificate must belong to the key placed beside it.

use std::collections::BTreeSet;
use std::path::Path;

use super::escape;
use super::eval::Evaluated;
use super::rules::{Host, Problem, INITRD_KEY_TARGET};
use crate::manifest::Manifest;
use crate::pack::PackPlan;

const ACTIVATION: &str = "in an activation script";
const BOOTLOADER: &str = "during the bootloader install inside nixos-install";

/// The checks for one host: see the module documentation.
pub fn check_host(
    manifest: &Manifest,
    plan: &PackPlan,
    host: &str,
    ev: &Evaluated,
) -> Vec<Problem> {
    let mut h = Host::new(manifest, plan, host, ev);
    h.claim(ev);
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
        let when = (!s.systemd_activation).then_some(ACTIVATION);
        let mut placed = Vec::new();
        if let Some(k) = &s.key_file {
            let hint = |t: &str| entry_hint(host, t, "hosts/NAME/age-key.txt");
            if when.is_none_or(|w| h.read_early("sops.age.keyFile", k, w)) {
                if let Some(pl) = h.locate("sops.age.keyFile", k, true, true, &hint) {
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
        } else if s.key_file.is_none()
            && placed.is_empty()
            && !paths.iter().any(|p| h.reported.contains(p.as_str()))
        {
            // A keyFile is required and reported on its own.
            none_placed(&mut h, "sops.age.sshKeyPaths", &paths);
        }
        let (ids, _) = h.identities("sops.age", &placed);
        if !ids.is_empty() {
            super::secrets::check_sops_files(&mut h, s, &ids);
        }
    }

    if let Some(a) = ev.age.as_ref().filter(|a| !a.secrets.is_empty()) {
        let when = (!a.systemd_activation).then_some(ACTIVATION);
        let paths: Vec<&String> = a.identity_paths.iter().flatten().collect();
        let mut placed = Vec::new();
        for p in &paths {
            let hint = |t: &str| entry_hint(host, t, "hosts/NAME/ssh_host_ed25519_key");
            if when.is_none_or(|w| h.read_early("age.identityPaths", p, w)) {
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
    lanzaboote(&mut h, host, ev);
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
        if p.starts_with("/nix/store/") {
            h.problem(
                OPTION,
                p,
                None,
                format!(
                    "{OPTION} names {}, a private key in the world-readable Nix store",
                    escape(p)
                ),
                format!("write the path as a string (\"{INITRD_KEY_TARGET}\"), and `vault host add {host} --initrd-ssh` places a key there"),
            );
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
        if src.starts_with("/nix/store/") {
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

fn lanzaboote(h: &mut Host<'_>, host: &str, ev: &Evaluated) {
    let Some(l) = &ev.lanzaboote else { return };
    let Some(bundle) = l.pki_bundle.as_deref().filter(|b| b.starts_with('/')) else {
        h.problem(
            "boot.lanzaboote.pkiBundle",
            "",
            None,
            "boot.lanzaboote is enabled, but boot.lanzaboote.pkiBundle names no directory".into(),
            "set boot.lanzaboote.pkiBundle = \"/var/lib/sbctl\" and place the Secure Boot keys there".into(),
        );
        return;
    };
    let bundle = bundle.trim_end_matches('/');
    let mut files: Vec<(String, String)> = Vec::new();
    for (option, path) in [
        ("boot.lanzaboote.privateKeyFile", &l.private_key_file),
        ("boot.lanzaboote.publicKeyFile", &l.public_key_file),
    ] {
        if let Some(p) = path {
            files.push((option.into(), p.clone()));
        }
    }
    files.push(("boot.lanzaboote.pkiBundle".into(), format!("{bundle}/GUID")));
    if l.auto_enroll {
        for k in ["PK", "KEK"] {
            for ext in ["key", "pem"] {
                files.push((
                    "boot.lanzaboote.autoEnrollKeys".into(),
                    format!("{bundle}/keys/{k}/{k}.{ext}"),
                ));
            }
        }
    }
    let mut found = std::collections::BTreeMap::new();
    for (option, p) in files {
        if !h.read_early(&option, &p, BOOTLOADER) {
            continue;
        }
        let hint = |t: &str| entry_hint(host, t, "hosts/NAME/secureboot/…");
        if let Some(placed) = h.locate(&option, &p, true, false, &hint) {
            found.insert(p, placed);
        }
    }
    // sbctl (lanzaboote's first-boot enrolment) refuses a GUID it cannot parse.
    let guid = format!("{bundle}/GUID");
    if let Some(placed) = found.get(&guid) {
        if let Err(e) = crate::secure_boot::layout::read_guid(&placed.source) {
            h.problem(
                "boot.lanzaboote.pkiBundle",
                &guid,
                Some(placed.line),
                format!(
                    "boot.lanzaboote.pkiBundle reads {}, but the file vault.toml places there (line {}) cannot be used: {}",
                    escape(&guid),
                    placed.line,
                    escape(&e.to_string())
                ),
                crate::Hint::hint(&e).unwrap_or_default(),
            );
        }
    }
    // sbsign refuses a certificate that is not its key's (mid-install), sbctl's enrolment too.
    let mut pairs = vec![(
        "boot.lanzaboote.publicKeyFile",
        l.public_key_file.clone(),
        l.private_key_file.clone(),
    )];
    if l.auto_enroll {
        for k in ["PK", "KEK"] {
            let f = |ext| Some(format!("{bundle}/keys/{k}/{k}.{ext}"));
            pairs.push(("boot.lanzaboote.autoEnrollKeys", f("pem"), f("key")));
        }
    }
    for (option, pem, key) in pairs {
        let (Some(pem), Some(key)) = (pem, key) else {
            continue;
        };
        let (Some(cert), Some(private)) = (found.get(&pem), found.get(&key)) else {
            continue;
        };
        let (message, hint) = match crate::secure_boot::check_pair(&cert.source, &private.source) {
            Ok(true) => continue,
            Ok(false) => (
                format!(
                    "{option} reads {}, but the certificate vault.toml places there (line {}) does not belong to the key placed at {} (line {}): sbsign refuses to sign with them",
                    escape(&pem),
                    cert.line,
                    escape(&key),
                    private.line
                ),
                "place the certificate made with that key (both come from the same `vault host add --secure-boot`)".to_owned(),
            ),
            Err(e) => (
                format!(
                    "{option} reads {} and {}, but vault.toml places a file there that cannot be used: {}",
                    escape(&pem),
                    escape(&key),
                    escape(&e.to_string())
                ),
                crate::Hint::hint(&e).unwrap_or_default(),
            ),
        };
        h.problem(option, &pem, Some(cert.line), message, hint);
    }
}

pub(super) fn entry_hint(host: &str, target: &str, what: &str) -> String {
    format!(
        "add to vault.toml: [[hosts.{host}.entry]] source = \"{}\" target = \"{}\" mode = \"0600\"",
        what.replace("NAME", host),
        escape(target)
    )
}
