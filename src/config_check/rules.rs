//! The checks, on one host's evaluated configuration and its share of the pack plan.
//!
//! Paths the configuration reads are paths on the running system. A file placed by vault
//! lands on the installed root; with impermanence, a path under a persisted directory (or a
//! persisted file) is bind-mounted at boot from its persistent storage, so it must be placed
//! there (`/persist/etc/ssh/…` for `/etc/ssh/…`): placed at the path itself, it is on the root
//! that is wiped at boot.
//!
//! What must be placed: `sops.age.keyFile` and each `sops.age.sshKeyPaths` (sops-nix stops on a
//! missing key) when the configuration has sops secrets; at least one of `age.identityPaths`
//! when it has agenix secrets (agenix skips missing ones); each
//! `boot.initrd.network.ssh.hostKeys` path and `boot.initrd.secrets` source (the bootloader
//! install copies them); an ed25519 `services.openssh.hostKeys` path when vault manages the
//! host key (sshd would otherwise generate a new one). A file of the same name placed at
//! another path is reported whatever the option (a near miss), except for initrd keys, which
//! must differ from the main key of the same name. Secret files: see `secrets`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::escape;
use super::eval::Evaluated;
use crate::archive::Kind;
use crate::keys::passphrase;
use crate::manifest::{Manifest, Stage};
use crate::pack::PackPlan;
use crate::rekey::Identities;

/// Where `vault host add --initrd-ssh` places the initrd SSH host key.
pub const INITRD_KEY_TARGET: &str = "/etc/secrets/initrd/ssh_host_ed25519_key";

/// One thing that would go wrong at first boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub host: String,
    /// The option, e.g. `services.openssh.hostKeys` or `sops.secrets."wifi"`.
    pub option: String,
    /// The path the option reads, or the secret file it uses.
    pub path: String,
    /// The manifest line the problem is about, if one is.
    pub line: Option<usize>,
    /// One line: option, path, what vault.toml does instead.
    pub message: String,
    /// The fix.
    pub hint: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A hint of several lines (TOML to paste) keeps them under its first.
        write!(
            f,
            "vault: {}: {}\n       hint: {}",
            self.host,
            self.message,
            self.hint.replace('\n', "\n             ")
        )
    }
}

/// A file vault places on the installed root for the host.
#[derive(Debug, Clone)]
pub(super) struct Placed {
    pub(super) source: PathBuf,
    mode: u32,
    line: usize,
}

/// A path impermanence bind-mounts from persistent storage.
#[derive(Debug, Clone)]
struct Bind {
    path: String,
    storage: String,
    root: String,
    dir: bool,
}

/// Where a path the configuration reads must be placed.
pub(super) struct Need<'a> {
    pub(super) target: String,
    bind: Option<&'a Bind>,
    /// The persistent storage the path itself is under (`/persist` for `/persist/etc/…`).
    in_storage: Option<&'a str>,
}

pub(super) struct Host<'a> {
    pub(super) name: &'a str,
    pub(super) placed: BTreeMap<String, Placed>,
    storages: Vec<(String, String)>,
    binds: Vec<Bind>,
    problems: Vec<Problem>,
    reported: BTreeSet<String>,
    /// Where the configuration's paths must be placed: never offered as a near miss for
    /// another path.
    claimed: BTreeSet<String>,
}

fn join_storage(storage: &str, path: &str) -> String {
    format!("{}{}", storage.trim_end_matches('/'), path)
}

impl<'a> Host<'a> {
    fn new(manifest: &'a Manifest, plan: &PackPlan, name: &'a str, ev: &Evaluated) -> Self {
        let entries: Vec<_> = manifest
            .entries_for(name)
            .filter(|e| e.stage == Stage::Root)
            .collect();
        let mut placed = BTreeMap::new();
        for (item, source) in plan.manifest.items.iter().zip(&plan.sources) {
            if item.kind != Kind::File
                || item.stage != Stage::Root
                || item.host.as_deref().is_some_and(|h| h != name)
            {
                continue;
            }
            let Some(source) = source else { continue };
            // The entry itself, or else the directory entry it came from.
            let line = entries
                .iter()
                .find(|e| item.target == e.target)
                .or_else(|| {
                    entries
                        .iter()
                        .filter(|e| {
                            item.target
                                .strip_prefix(e.target.as_str())
                                .is_some_and(|r| r.starts_with('/'))
                        })
                        .max_by_key(|e| e.target.len())
                })
                .map_or(0, |e| e.line);
            placed.insert(
                item.target.clone(),
                Placed {
                    source: source.clone(),
                    mode: item.mode,
                    line,
                },
            );
        }
        let mut storages = Vec::new();
        let mut binds = Vec::new();
        for (root, p) in ev.persistence.iter().flatten() {
            if !p.enable {
                continue;
            }
            let storage = p.storage.clone().unwrap_or_else(|| root.clone());
            if storage != "/" {
                storages.push((root.clone(), storage.clone()));
            }
            for (list, dir) in [(&p.directories, true), (&p.files, false)] {
                for b in list {
                    let Some(path) = b.path.as_deref().map(|x| x.trim_end_matches('/')) else {
                        continue;
                    };
                    if path.is_empty() {
                        continue;
                    }
                    binds.push(Bind {
                        path: path.to_owned(),
                        storage: b.storage.clone().unwrap_or_else(|| storage.clone()),
                        root: root.clone(),
                        dir,
                    });
                }
            }
        }
        Host {
            name,
            placed,
            storages,
            binds,
            problems: Vec::new(),
            reported: BTreeSet::new(),
            claimed: BTreeSet::new(),
        }
    }

    pub(super) fn need(&self, p: &str) -> Need<'_> {
        if let Some((_, s)) = self.storages.iter().find(|(_, s)| {
            p.strip_prefix(s.trim_end_matches('/'))
                .is_some_and(|r| r.starts_with('/'))
        }) {
            return Need {
                target: p.to_owned(),
                bind: None,
                in_storage: Some(s.as_str()),
            };
        }
        let bind = self
            .binds
            .iter()
            .filter(|b| {
                if b.dir {
                    p.strip_prefix(b.path.as_str())
                        .is_some_and(|r| r.starts_with('/'))
                } else {
                    p == b.path
                }
            })
            .max_by_key(|b| b.path.len());
        Need {
            target: bind.map_or_else(|| p.to_owned(), |b| join_storage(&b.storage, p)),
            bind,
            in_storage: None,
        }
    }

    pub(super) fn problem(
        &mut self,
        option: &str,
        path: &str,
        line: Option<usize>,
        message: String,
        hint: String,
    ) {
        self.problems.push(Problem {
            host: self.name.to_owned(),
            option: option.to_owned(),
            path: path.to_owned(),
            line,
            message,
            hint,
        });
    }

    /// The placed file for `p`, or `None` after reporting a problem when one is due: always
    /// for a near miss, and for a plain absence when `required`. A file of the same name
    /// elsewhere counts as a near miss only with `guess` (not for keys that must differ from
    /// one of the same name, like the initrd's).
    fn locate(
        &mut self,
        option: &str,
        p: &str,
        required: bool,
        guess: bool,
        missing_hint: &dyn Fn(&str) -> String,
    ) -> Option<Placed> {
        let need = self.need(p);
        if let Some(pl) = self.placed.get(&need.target) {
            return Some(pl.clone());
        }
        if self.reported.contains(p) {
            return None;
        }
        let ep = escape(p);
        let et = escape(&need.target);
        let wrong_root = need
            .bind
            .and_then(|b| self.placed.get(p).map(|pl| (b, pl.line)));
        let outside = need.in_storage.and_then(|s| {
            let bare = &p[s.trim_end_matches('/').len()..];
            self.placed.get(bare).map(|pl| (s, bare, pl.line))
        });
        let file_name = Path::new(p).file_name();
        let same_name = self
            .placed
            .iter()
            .filter(|_| guess)
            .filter(|(t, _)| !self.claimed.contains(t.as_str()))
            .find(|(t, _)| Path::new(t.as_str()).file_name() == file_name && file_name.is_some())
            .map(|(t, pl)| (t.clone(), pl.line));
        let (message, hint, line) = if let Some((b, line)) = wrong_root {
            (
                format!(
                    "{option} reads {ep}, which impermanence bind-mounts from {et} (environment.persistence.\"{}\"), but vault.toml places {ep} (line {line}), on the root that is wiped at boot",
                    escape(&b.root)
                ),
                format!("place it under {}: target = \"{et}\"", escape(&b.storage)),
                Some(line),
            )
        } else if let Some((s, bare, line)) = outside {
            (
                format!(
                    "{option} reads {ep}, but vault.toml places {} (line {line})",
                    escape(bare)
                ),
                format!(
                    "with impermanence, place it under {}: target = \"{ep}\"",
                    escape(s)
                ),
                Some(line),
            )
        } else if let Some((t, line)) = same_name {
            (
                format!(
                    "{option} reads {ep}, but vault.toml places {} (line {line})",
                    escape(&t)
                ),
                format!("set that entry's target to \"{et}\""),
                Some(line),
            )
        } else if required {
            let there = if need.target == p {
                "nothing there".to_owned()
            } else {
                format!("nothing at {et}, where impermanence keeps it")
            };
            (
                format!(
                    "{option} reads {ep}, but vault.toml places {there} for {}",
                    self.name
                ),
                missing_hint(&need.target),
                None,
            )
        } else {
            return None;
        };
        self.reported.insert(p.to_owned());
        self.problem(option, p, line, message, hint);
        None
    }

    /// Loads the identities placed for `option` (host keys are unencrypted); a placed file
    /// that is no usable key is a problem of its own.
    fn identities(
        &mut self,
        option: &str,
        placed: &[(String, Placed)],
    ) -> (Identities, Vec<PathBuf>) {
        let pass = passphrase::Source::File(PathBuf::from("/dev/null"));
        let mut usable = Vec::new();
        for (p, pl) in placed {
            match Identities::load(std::slice::from_ref(&pl.source), &pass) {
                Ok(_) => usable.push(pl.source.clone()),
                Err(e) => {
                    let msg = format!(
                        "{option} reads {}, but the file vault.toml places there (line {}) is not a usable unencrypted key: {}",
                        escape(p),
                        pl.line,
                        escape(&e.to_string())
                    );
                    self.problem(option, p, Some(pl.line), msg, "place the host's unencrypted private key there: it is read at boot, without a passphrase".into());
                }
            }
        }
        let ids = Identities::load(&usable, &pass).unwrap_or_default();
        (ids, usable)
    }
}

/// The checks for one host: see the module documentation.
pub fn check_host(
    manifest: &Manifest,
    plan: &PackPlan,
    host: &str,
    ev: &Evaluated,
) -> Vec<Problem> {
    let mut h = Host::new(manifest, plan, host, ev);
    let read = ev
        .openssh_host_keys
        .iter()
        .filter_map(|k| k.path.as_ref())
        .chain(
            ev.sops
                .iter()
                .flat_map(|s| s.key_file.iter().chain(s.ssh_key_paths.iter().flatten())),
        )
        .chain(
            ev.age
                .iter()
                .flat_map(|a| a.identity_paths.iter().flatten()),
        )
        .chain(ev.initrd_ssh_host_keys.iter().flatten())
        .chain(ev.initrd_secrets.values().flatten());
    let claimed: BTreeSet<String> = read.map(|p| h.need(p).target).collect();
    h.claimed = claimed;
    let manages_key = manifest
        .hosts
        .get(host)
        .is_some_and(|x| x.ssh_host_key.is_some());

    // sshd's host keys, and their modes.
    let mut main_keys = BTreeSet::new();
    for k in &ev.openssh_host_keys {
        let Some(p) = &k.path else { continue };
        main_keys.insert(p.clone());
        let ed = k.kind.as_deref() == Some("ed25519");
        let hint = |t: &str| h_entry_hint(host, t, "hosts/NAME/ssh_host_ed25519_key");
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
        let mut placed = Vec::new();
        if let Some(k) = &s.key_file {
            let hint = |t: &str| h_entry_hint(host, t, "hosts/NAME/age-key.txt");
            if let Some(pl) = h.locate("sops.age.keyFile", k, true, true, &hint) {
                placed.push((k.clone(), pl));
            }
        }
        for p in s.ssh_key_paths.iter().flatten() {
            let hint = |t: &str| h_entry_hint(host, t, "hosts/NAME/ssh_host_ed25519_key");
            if let Some(pl) = h.locate("sops.age.sshKeyPaths", p, true, true, &hint) {
                placed.push((p.clone(), pl));
            }
        }
        if s.key_file.is_none() && s.ssh_key_paths.iter().flatten().next().is_none() {
            h.problem(
                "sops.age",
                "",
                None,
                "sops.secrets are set, but neither sops.age.keyFile nor sops.age.sshKeyPaths names a key to decrypt them".into(),
                "set sops.age.sshKeyPaths = [ \"/etc/ssh/ssh_host_ed25519_key\" ] (the key vault places), or sops.age.keyFile".into(),
            );
        }
        let (ids, _) = h.identities("sops.age", &placed);
        if !ids.is_empty() {
            super::secrets::check_sops_files(&mut h, s, &ids);
        }
    }

    if let Some(a) = ev.age.as_ref().filter(|a| !a.secrets.is_empty()) {
        let paths: Vec<&String> = a.identity_paths.iter().flatten().collect();
        let mut placed = Vec::new();
        for p in &paths {
            let hint = |t: &str| h_entry_hint(host, t, "hosts/NAME/ssh_host_ed25519_key");
            if let Some(pl) = h.locate("age.identityPaths", p, false, true, &hint) {
                placed.push(((*p).clone(), pl));
            }
        }
        if placed.is_empty() && !paths.iter().any(|p| h.reported.contains(p.as_str())) {
            let shown: Vec<String> = paths.iter().map(|p| escape(p)).collect();
            let first = paths
                .first()
                .map_or("/etc/ssh/ssh_host_ed25519_key".to_owned(), |p| {
                    h.need(p).target
                });
            h.problem(
                "age.identityPaths",
                paths.first().map_or("", |p| p.as_str()),
                None,
                format!(
                    "age.identityPaths reads {}, but vault.toml places none of them for {host}",
                    if shown.is_empty() {
                        "nothing".into()
                    } else {
                        shown.join(", ")
                    }
                ),
                h_entry_hint(host, &first, "hosts/NAME/ssh_host_ed25519_key"),
            );
        }
        let (ids, sources) = h.identities("age.identityPaths", &placed);
        if !ids.is_empty() {
            super::secrets::check_age_files(&mut h, a, &sources);
        }
    }

    for p in ev.initrd_ssh_host_keys.iter().flatten() {
        if p.starts_with("/nix/store/") {
            // A path literal (`./initrd_key`) copies the private key into the store.
            h.problem(
                "boot.initrd.network.ssh.hostKeys",
                p,
                None,
                format!(
                    "boot.initrd.network.ssh.hostKeys names {}, a private key in the world-readable Nix store",
                    escape(p)
                ),
                format!("write the path as a string (\"{INITRD_KEY_TARGET}\"), and `vault host add {host} --initrd-ssh` places a key there"),
            );
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
        let Some(pl) = h.locate("boot.initrd.network.ssh.hostKeys", p, true, false, &hint) else {
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
                "boot.initrd.network.ssh.hostKeys",
                p,
                Some(pl.line),
                format!(
                    "boot.initrd.network.ssh.hostKeys reads {}, which is the host's main SSH key (line {}); the initrd copy sits unencrypted on /boot",
                    escape(p),
                    pl.line
                ),
                format!("`vault host add {host} --initrd-ssh` generates a separate initrd key; use its path in boot.initrd.network.ssh.hostKeys"),
            );
        }
    }

    for (dest, src) in &ev.initrd_secrets {
        let Some(src) = src else { continue };
        if src.starts_with("/nix/store/") {
            continue;
        }
        let option = super::secrets::quoted("boot.initrd.secrets", dest);
        let hint = |t: &str| h_entry_hint(host, t, "hosts/NAME/…");
        h.locate(&option, src, true, false, &hint);
    }
    h.problems
}

fn h_entry_hint(host: &str, target: &str, what: &str) -> String {
    format!(
        "add to vault.toml:\n[[hosts.{host}.entry]]\nsource = \"{}\"\ntarget = \"{}\"\nmode = \"0600\"",
        what.replace("NAME", host),
        escape(target)
    )
}
