//! The text files `host add/remove` edit (`vault.toml`, `.sops.yaml`, the agenix keys file):
//! read whole, replaced by writing a sibling and renaming it over, and the siblings a killed
//! run left swept.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::Error;

pub(crate) fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))
}

/// Replaces `path` with `text` by writing a sibling and renaming it over (same mode). A
/// signal removes the sibling before the process exits ([`crate::interrupt::TempFile`]); the
/// siblings a killed run left are removed first.
pub(crate) fn replace(path: &Path, text: &str) -> Result<(), Error> {
    replace_with(path, text, false)
}

/// [`replace`] as a command's one change: the rename is its commit
/// ([`crate::interrupt::commit`]), so a signal is handled wholly before it (nothing changed,
/// exit 128 + n) or after it (the command completes, exit 0).
pub(crate) fn replace_as_commit(path: &Path, text: &str) -> Result<(), Error> {
    replace_with(path, text, true)
}

fn replace_with(path: &Path, text: &str, commit: bool) -> Result<(), Error> {
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .map_err(|e| Error::io("cannot stat", path, e))?;
    let (dir, prefix) = edit_site(path);
    let held = crate::stale::HeldDir::open(dir).map_err(|e| Error::io("cannot open", dir, e))?;
    sweep_stale_edits(&held, dir, &prefix);
    let tmp = dir.join(crate::stale::temp_name(&prefix));
    let _registered = crate::interrupt::TempFile::register(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| Error::io("cannot create", &tmp, e))?;
    let res = f
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .and_then(|()| f.write_all(text.as_bytes()))
        .and_then(|()| f.sync_all());
    let res = match (res, commit) {
        (Ok(()), true) => crate::interrupt::commit(|| match crate::interrupt::received() {
            Some(signal) => Err(Error::Interrupted { signal }),
            None => std::fs::rename(&tmp, path).map_err(|e| Error::io("cannot write", path, e)),
        }),
        (res, _) => res
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| Error::io("cannot write", path, e)),
    };
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// The folder of `path` and the prefix of its edit temporaries there.
fn edit_site(path: &Path) -> (&Path, String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    (dir, format!(".{name}"))
}

/// Removes what killed edits of `path` left beside it (see [`sweep_stale_edits`]).
pub(super) fn sweep_edits_beside(path: &Path) -> Result<(), Error> {
    let (dir, prefix) = edit_site(path);
    let held = crate::stale::HeldDir::open(dir).map_err(|e| Error::io("cannot open", dir, e))?;
    sweep_stale_edits(&held, dir, &prefix);
    Ok(())
}

/// Removes the copies of `dir/PREFIX…` that an edit killed mid-write left (their writer is
/// gone, see [`crate::stale`]), or as older vaults did (`PREFIX.vault-edit-PID`).
fn sweep_stale_edits(held: &crate::stale::HeldDir, dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let old = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix(".vault-edit-"))
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| {
                pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
            });
        if old || held.is_dead_temp(&name, prefix) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
