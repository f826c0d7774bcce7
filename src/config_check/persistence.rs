//! impermanence's persistence options (`environment.persistence`, Home Manager's
//! `home.persistence`) as the paths they bind-mount and the storages they keep them in.

use super::escape;
use super::eval::Evaluated;

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
                    origin: format!("environment.persistence.\"{}\"", escape(root)),
                    dir,
                    in_initrd: dir && NEEDED_FOR_BOOT.contains(&path),
                });
            }
        }
    }
    // Home Manager's home.persistence (impermanence): paths under the user's home.
    for hp in &ev.home_persistence {
        let Some(storage) = hp.storage.clone().filter(|s| s.starts_with('/')) else {
            continue;
        };
        if storage != "/" && !storages.iter().any(|(_, s)| *s == storage) {
            storages.push((storage.clone(), storage.clone()));
        }
        for (list, dir) in [(&hp.directories, true), (&hp.files, false)] {
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
                    origin: format!("home.persistence.\"{}\"", escape(&storage)),
                    dir,
                    in_initrd: false,
                });
            }
        }
    }
    (storages, binds)
}
