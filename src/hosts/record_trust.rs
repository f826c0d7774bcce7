//! Which undo records a host command acts on. A record beside `vault.toml` whose writer is gone
//! may not be one vault wrote here: a collaborator can commit one, a copied or re-cloned
//! repository carries one from elsewhere. So a record is acted on only when
//!
//! - its file is the running user's and no one else may write it;
//! - it was written for this folder (the folder's device and inode, when it records them);
//! - every path in it is one a host command of this repository changes: `vault.toml`, the
//!   `.sops.yaml` and agenix keys file its `[secrets]` (or the command line) names, or under
//!   `hosts/NAME/` the key pairs (`ssh_host_ed25519_key`, `initrd_ssh_host_ed25519_key`, each
//!   with `.pub`) and those folders; with no `..`, and no symbolic link on the way from
//!   `vault.toml`'s folder (walked with no-follow opens). A secrets file outside the folder
//!   only in a record bound to the folder.
//!
//! Otherwise the command stops before changing anything and names the record.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::undo::{folder, path, Undo};
use crate::escape::escape_path;

/// The key files `host add` (`--initrd-ssh` too) writes under `hosts/NAME/`.
const KEY_FILES: [&str; 4] = [
    "ssh_host_ed25519_key",
    "ssh_host_ed25519_key.pub",
    "initrd_ssh_host_ed25519_key",
    "initrd_ssh_host_ed25519_key.pub",
];

/// `p` made absolute, with `.` and `..` folded away by name (no link is followed).
pub(super) fn lexical_abs(p: &Path) -> PathBuf {
    let a = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut out = PathBuf::new();
    for c in a.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The device and inode of an open folder: what a record is bound to.
// Their types differ between targets.
#[allow(clippy::unnecessary_cast)]
pub(super) fn folder_id(dir: BorrowedFd<'_>) -> Option<[u64; 2]> {
    rustix::fs::fstat(dir)
        .ok()
        .map(|st| [st.st_dev as u64, st.st_ino as u64])
}

/// `p` (absolute) as a record keeps it: relative to `folder` when inside it, else absolute.
pub(super) fn for_record(folder: &Path, p: &[u8]) -> Vec<u8> {
    let abs = lexical_abs(&path(p));
    match abs.strip_prefix(lexical_abs(folder)) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.as_os_str().as_bytes().to_vec(),
        _ => abs.as_os_str().as_bytes().to_vec(),
    }
}

/// Whether the record's own file may be trusted: the running user's, writable by no one else.
pub(super) fn check_file(meta: &std::fs::Metadata) -> Result<(), String> {
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "it belongs to user {}, not to you (user {me})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "others may write it (mode {:04o}); vault writes its records 0600",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// What a record may name in one repository.
pub(super) struct Scope {
    /// `vault.toml`'s folder, absolute (by name), and as the system resolves it.
    folder: PathBuf,
    canonical: Option<PathBuf>,
    manifest_name: PathBuf,
    /// The `.sops.yaml` and agenix keys file named by `vault.toml` or the command line.
    secrets: Vec<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Restore,
    File,
    Dir,
}

impl Scope {
    pub(super) fn new(manifest: &Path, extra: &[&Path]) -> Scope {
        let folder = lexical_abs(folder(manifest));
        let mut secrets: Vec<PathBuf> = extra.iter().map(|p| lexical_abs(p)).collect();
        // vault.toml is always whole (every edit is a rename); one that does not load names
        // no secrets files.
        if let Ok(m) = crate::manifest::Manifest::load(manifest) {
            let s = m.secrets;
            secrets.extend(
                s.sops_config
                    .iter()
                    .chain(&s.agenix_keys)
                    .map(|p| lexical_abs(p)),
            );
        }
        Scope {
            canonical: std::fs::canonicalize(&folder).ok(),
            manifest_name: manifest.file_name().map(PathBuf::from).unwrap_or_default(),
            folder,
            secrets,
        }
    }

    /// `undo` with every path checked and made absolute, or why it is not acted on.
    pub(super) fn resolve(&self, dir: BorrowedFd<'_>, undo: &Undo) -> Result<Undo, String> {
        if undo.folder.is_some_and(|id| Some(id) != folder_id(dir)) {
            return Err(format!(
                "it was written in another folder than {} (a copy or another clone of this repository)",
                escape_path(&self.folder)
            ));
        }
        // A file outside the folder only for a record bound to it: one without the binding
        // (an older vault's, or a planted one) could otherwise restore any file vault.toml
        // names.
        let outside = undo.folder.is_some();
        let each = |list: &[Vec<u8>], role| {
            list.iter()
                .map(|p| self.one(dir, p, role, outside))
                .collect::<Result<Vec<_>, _>>()
        };
        let mut restore = Vec::new();
        for (p, text) in &undo.restore {
            restore.push((self.one(dir, p, Role::Restore, outside)?, text.clone()));
        }
        Ok(Undo {
            created: each(&undo.created, Role::File)?,
            dirs: each(&undo.dirs, Role::Dir)?,
            restore,
            delete: each(&undo.delete, Role::File)?,
            removes: undo.removes.clone(),
            folder: undo.folder,
        })
    }

    fn one(
        &self,
        dir: BorrowedFd<'_>,
        p: &[u8],
        role: Role,
        outside: bool,
    ) -> Result<Vec<u8>, String> {
        let p = path(p);
        let shown = escape_path(&p);
        if p.components().any(|c| c == Component::ParentDir) {
            return Err(format!("it names {shown}, a path with `..`"));
        }
        let abs = lexical_abs(&self.folder.join(&p));
        let rel = abs.strip_prefix(&self.folder).ok().or_else(|| {
            self.canonical
                .as_ref()
                .and_then(|c| abs.strip_prefix(c).ok())
        });
        let secret = |a: &Path| role == Role::Restore && self.secrets.iter().any(|s| s == a);
        match rel.filter(|r| !r.as_os_str().is_empty()) {
            Some(rel) => {
                let inside = self.folder.join(rel);
                let allowed = match role {
                    Role::Restore => rel == self.manifest_name || secret(&inside),
                    Role::File | Role::Dir => is_key_path(rel, role == Role::Dir),
                };
                if !allowed {
                    return Err(format!(
                        "it names {shown}, which no vault host command of this repository changes"
                    ));
                }
                walk_no_follow(dir, rel).map_err(|why| format!("{shown} {why}"))?;
                Ok(inside.as_os_str().as_bytes().to_vec())
            }
            None if outside && secret(&abs) => {
                // A file vault.toml names outside its folder: not a link itself.
                if std::fs::symlink_metadata(&abs).is_ok_and(|m| m.file_type().is_symlink()) {
                    return Err(format!("{shown} is a symbolic link"));
                }
                Ok(abs.as_os_str().as_bytes().to_vec())
            }
            None => Err(format!(
                "it names {shown}, outside {}",
                escape_path(&self.folder)
            )),
        }
    }
}

/// `hosts`, `hosts/NAME` (folders) or `hosts/NAME/KEY_FILE`.
fn is_key_path(rel: &Path, dir: bool) -> bool {
    let parts: Vec<&OsStr> = rel.components().map(|c| c.as_os_str()).collect();
    let host = |n: &OsStr| {
        n.to_str()
            .is_some_and(|n| crate::manifest::check_host_name(n).is_ok())
    };
    match (dir, parts.as_slice()) {
        (true, [h]) => *h == "hosts",
        (true, [h, n]) => *h == "hosts" && host(n),
        (false, [h, n, f]) => {
            *h == "hosts" && host(n) && KEY_FILES.iter().any(|k| OsStr::new(k) == *f)
        }
        _ => false,
    }
}

/// Checks that no component of `rel` under `dir` is a symbolic link (a missing one ends the
/// walk: nothing there to act on).
fn walk_no_follow(dir: BorrowedFd<'_>, rel: &Path) -> Result<(), String> {
    let parts: Vec<&OsStr> = rel.components().map(|c| c.as_os_str()).collect();
    let Some((last, folders)) = parts.split_last() else {
        return Ok(());
    };
    let link = || "goes through a symbolic link".to_string();
    let mut held: Option<OwnedFd> = None;
    for f in folders {
        let at = held.as_ref().map_or(dir, |h| h.as_fd());
        let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC;
        match rustix::fs::openat(at, *f, flags, Mode::empty()) {
            Ok(fd) => held = Some(fd),
            Err(rustix::io::Errno::NOENT) => return Ok(()),
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => return Err(link()),
            Err(e) => return Err(format!("cannot be checked: {e}")),
        }
    }
    let at = held.as_ref().map_or(dir, |h| h.as_fd());
    match rustix::fs::statat(at, *last, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => Err(link()),
        Ok(_) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(format!("cannot be checked: {e}")),
    }
}
