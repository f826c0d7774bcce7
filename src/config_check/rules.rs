//! Where a path the configuration reads must be placed, and the problems found on the way.
//!
//! Paths the configuration reads are paths on the running system. A file placed by vault
//! lands on the installed root; with impermanence, a path under a persisted directory (or a
//! persisted file) is bind-mounted at boot from its persistent storage, so it must be placed
//! there (`/persist/etc/ssh/…` for `/etc/ssh/…`): placed at the path itself, it is on the root
//! that is wiped at boot. Keys read before the bind mounts exist must be named at their
//! persistent path ([`Host::read_early`]). A file of the same name placed at another path is
//! reported as a near miss, except for keys that must differ from one of the same name (the
//! initrd's). What each consumer reads: `checks`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::escape;
use super::eval::Evaluated;
use super::persistence::Bind;
use crate::archive::Kind;
use crate::keys::age::Identities;
use crate::keys::passphrase;
use crate::manifest::{Manifest, Stage};
use crate::pack::PackPlan;

/// When a key is read before impermanence's bind mounts exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Early {
    /// An activation script that runs before `users` (agenix's agenixInstall, sops-nix's
    /// setupSecretsForUsers): after the initrd's mounts only.
    Activation,
    /// sops-nix's setupSecrets: after impermanence's persist-files script too (both follow
    /// `users` and `groups`; activation scripts of equal standing run in name order), which
    /// bind-mounts or links persisted files. Persisted directories are still not mounted.
    ActivationAfterFiles,
    /// agenix-install-secrets.service under systemd-sysusers or userborn: DefaultDependencies=no
    /// and ordered after systemd-sysusers.service only, so not after local-fs.target.
    AgenixUnit,
    /// The bootloader install inside nixos-install: a chroot of the target, no bind mount at
    /// all, not even the initrd's.
    BootloaderInstall,
}

impl Early {
    fn says(self) -> &'static str {
        match self {
            Early::Activation | Early::ActivationAfterFiles => "in an activation script",
            Early::AgenixUnit => {
                "in agenix-install-secrets.service, which is not ordered after the mounts"
            }
            Early::BootloaderInstall => "during the bootloader install inside nixos-install",
        }
    }
}

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
    pub(super) mode: u32,
    pub(super) line: usize,
}

/// A directory entry: a folder vault places, every file in it with it.
#[derive(Debug, Clone)]
pub(super) struct Folder {
    target: String,
    source: PathBuf,
    line: usize,
}

/// Where a path the configuration reads must be placed.
pub(super) struct Need<'a> {
    pub(super) target: String,
    pub(super) bind: Option<&'a Bind>,
    /// The persistent storage the path itself is under (`/persist` for `/persist/etc/…`).
    in_storage: Option<&'a str>,
}

pub(super) struct Host<'a> {
    pub(super) name: &'a str,
    /// The manifest's folder: sources are shown relative to it.
    base: &'a Path,
    pub(super) placed: BTreeMap<String, Placed>,
    folders: Vec<Folder>,
    storages: Vec<(String, String)>,
    binds: Vec<Bind>,
    problems: Vec<Problem>,
    pub(super) reported: BTreeSet<String>,
    /// Where the configuration's paths must be placed: never offered as a near miss for
    /// another path.
    claimed: BTreeSet<String>,
}

fn join_storage(storage: &str, path: &str) -> String {
    format!("{}{}", storage.trim_end_matches('/'), path)
}

impl<'a> Host<'a> {
    pub(super) fn new(
        manifest: &'a Manifest,
        plan: &PackPlan,
        name: &'a str,
        ev: &Evaluated,
    ) -> Self {
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
        let folders = entries
            .iter()
            .filter(|e| e.source.is_dir())
            .map(|e| Folder {
                target: e.target.clone(),
                source: e.source.clone(),
                line: e.line,
            })
            .collect();
        let (storages, binds) = super::persistence::binds(ev);
        Host {
            name,
            base: manifest.dir(),
            placed,
            folders,
            storages,
            binds,
            problems: Vec::new(),
            reported: BTreeSet::new(),
            claimed: BTreeSet::new(),
        }
    }

    /// Claims every path the configuration reads (never offered as a near miss elsewhere).
    pub(super) fn claim(&mut self, ev: &Evaluated) {
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
            .chain(
                ev.initrd_ssh
                    .host_keys
                    .iter()
                    .filter_map(|k| k.path.as_ref()),
            )
            .chain(ev.initrd_secrets.values().flatten())
            .chain(
                ev.lanzaboote
                    .iter()
                    .flat_map(|l| l.private_key_file.iter().chain(l.public_key_file.iter())),
            );
        let claimed: BTreeSet<String> = read.map(|p| self.need(p).target).collect();
        self.claimed = claimed;
    }

    /// A source as the user knows it: relative to vault.toml's folder, escaped.
    pub(super) fn shown(&self, source: &Path) -> String {
        let rel = source.strip_prefix(self.base).unwrap_or(source);
        escape(&rel.to_string_lossy())
    }

    pub(super) fn into_problems(self) -> Vec<Problem> {
        self.problems
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

    /// For a key read before impermanence's bind mounts exist (activation scripts, the
    /// bootloader install inside nixos-install): a path that is bind-mounted is read from the
    /// wiped root there, so the option must name the persistent path. Reports that (once) and
    /// returns false.
    pub(super) fn read_early(&mut self, option: &str, p: &str, when: Early) -> bool {
        let need = self.need(p);
        let Some(b) = need.bind else { return true };
        if b.in_initrd && when != Early::BootloaderInstall {
            return true;
        }
        if !b.dir && when == Early::ActivationAfterFiles {
            return true;
        }
        let when = when.says();
        if self.reported.contains(p) {
            return false;
        }
        let (et, origin) = (escape(&need.target), b.origin.clone());
        let line = self
            .placed
            .get(&need.target)
            .or_else(|| self.placed.get(p))
            .map(|pl| pl.line);
        let message = format!(
            "{option} reads {} {when}, before impermanence bind-mounts it from {et} ({origin}): it finds nothing there",
            escape(p)
        );
        let hint = format!(
            "name the persistent path in the configuration ({option}: \"{et}\") and place the file there: target = \"{et}\""
        );
        self.reported.insert(p.to_owned());
        self.problem(option, p, line, message, hint);
        false
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
    pub(super) fn locate(
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
                    "{option} reads {ep}, which impermanence bind-mounts from {et} ({}), but vault.toml places {ep} (line {line}), on the root that is wiped at boot",
                    b.origin
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
        } else if let Some((f, rest)) = self.folder_of(&need.target).filter(|_| required) {
            let src = self.shown(&f.source);
            let rest = escape(rest);
            (
                format!(
                    "{option} reads {ep}, but the folder vault.toml places at {} (line {}), {src}, has no {rest}",
                    escape(&f.target),
                    f.line
                ),
                format!("put the file at {src}/{rest} (from your secrets repository or a backup), or point {option} at a file the folder holds"),
                Some(f.line),
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

    /// The innermost folder placed around `target`, with the path inside it.
    fn folder_of<'t>(&self, target: &'t str) -> Option<(&Folder, &'t str)> {
        self.folders
            .iter()
            .filter_map(|f| {
                let rest = target.strip_prefix(f.target.as_str())?.strip_prefix('/')?;
                Some((f, rest))
            })
            .max_by_key(|(f, _)| f.target.len())
    }

    /// Loads the identities placed for `option` (host keys are unencrypted); a placed file
    /// that is no usable key is a problem of its own.
    pub(super) fn identities(
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

/// The vault.toml entry that places `what` (`hosts/NAME/…`) at `target` for `host`.
pub(super) fn entry_hint(host: &str, target: &str, what: &str) -> String {
    format!(
        "add to vault.toml:\n[[hosts.{host}.entry]]\nsource = \"{}\"\ntarget = \"{}\"\nmode = \"0600\"",
        what.replace("NAME", host),
        escape(target)
    )
}
