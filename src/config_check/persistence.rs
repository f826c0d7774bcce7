//! impermanence's persistence options (`environment.persistence`, Home Manager's
//! `home.persistence`) as the paths they bind-mount and the storages they keep them in.

use super::escape;
use super::eval::{Evaluated, Persisted};

/// nixpkgs' `utils.pathsNeededForBoot`: impermanence bind-mounts a persisted directory of
/// this list in the initrd, before activation (every other one by systemd, after it).
const NEEDED_FOR_BOOT: &[&str] = &[
    "/",
    "/nix",
    "/nix/store",
    "/var",
    "/var/log",
    "/var/lib",
    "/var/lib/nixos",
    "/etc",
    "/usr",
];

/// A path impermanence bind-mounts from persistent storage.
#[derive(Debug, Clone)]
pub(super) struct Bind {
    pub(super) path: String,
    pub(super) storage: String,
    /// The option that asks for it: `environment.persistence."/persist"`, or Home Manager's
    /// `home.persistence."/persist"`.
    pub(super) origin: String,
    pub(super) dir: bool,
    /// Mounted in the initrd (a directory NixOS needs for boot).
    pub(super) in_initrd: bool,
}

/// The persistent storages (`(option root, storage)`) and the bind mounts of `ev`.
pub(super) fn binds(ev: &Evaluated) -> (Vec<(String, String)>, Vec<Bind>) {
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
        let origin = format!("environment.persistence.\"{}\"", escape(root));
        // NixOS mounts the directories it needs for boot in the initrd.
        let initrd = |path: &str, dir: bool| dir && NEEDED_FOR_BOOT.contains(&path);
        push_binds(
            &mut binds,
            [&p.directories, &p.files],
            &storage,
            &origin,
            initrd,
        );
    }
    // Home Manager's home.persistence (impermanence): paths under the user's home.
    for hp in &ev.home_persistence {
        let Some(storage) = hp.storage.clone().filter(|s| s.starts_with('/')) else {
            continue;
        };
        if storage != "/" && !storages.iter().any(|(_, s)| *s == storage) {
            storages.push((storage.clone(), storage.clone()));
        }
        let origin = format!("home.persistence.\"{}\"", escape(&storage));
        push_binds(
            &mut binds,
            [&hp.directories, &hp.files],
            &storage,
            &origin,
            |_, _| false,
        );
    }
    (storages, binds)
}

/// The binds of one persistence option's `directories` and `files` (paths without a trailing
/// slash; empty ones skipped), each in its own storage or the option's.
fn push_binds(
    binds: &mut Vec<Bind>,
    [directories, files]: [&Vec<Persisted>; 2],
    storage: &str,
    origin: &str,
    in_initrd: impl Fn(&str, bool) -> bool,
) {
    for (list, dir) in [(directories, true), (files, false)] {
        for b in list {
            let Some(path) = b.path.as_deref().map(|x| x.trim_end_matches('/')) else {
                continue;
            };
            if path.is_empty() {
                continue;
            }
            binds.push(Bind {
                path: path.to_owned(),
                storage: b.storage.clone().unwrap_or_else(|| storage.to_owned()),
                origin: origin.to_owned(),
                dir,
                in_initrd: in_initrd(path, dir),
            });
        }
    }
}
