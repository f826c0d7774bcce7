//! One small file written whole or not at all (`vault init`'s `vault.toml`, `vault keys convert
//! -o`'s key): a temporary beside it, made durable, then renamed to its name as the command's
//! commit ([`crate::interrupt::commit`]).
//!
//! - Missing folders are made first and, like the temporary, removed again on an error or a
//!   caught signal (SIGINT, SIGTERM, SIGHUP): the write holds a [`crate::interrupt::Polled`]
//!   scope, so a signal is seen at the next step, everything is undone, and the command exits
//!   128 + n with nothing changed.
//! - Without `force` the rename never replaces (`RENAME_NOREPLACE`): a file that appeared
//!   meanwhile is refused, not clobbered. With `force` the old file is replaced in one step; it
//!   is never truncated, nor missing for a moment.
//! - SIGKILL leaves at most the temporary, `.NAME.vault-PID-RUN-SEQ.tmp` (created with the
//!   file's own mode), marked by its writer's lock on the folder ([`crate::stale`]): the
//!   next run that writes NAME there removes it.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{RenameFlags, CWD};
use rustix::io::Errno;

use crate::{Error, Result};

/// How to write the file.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The file's mode; the umask applies unless `exact`.
    pub mode: u32,
    /// Give the file exactly `mode`, whatever the umask.
    pub exact: bool,
    /// The mode of folders made for it (the umask applies).
    pub dir_mode: u32,
    /// Replace an existing file.
    pub force: bool,
}

/// Writes `bytes` to `path` (see the module). An existing `path` without `force` is the error
/// `exists` makes.
pub fn write(
    path: &Path,
    bytes: &[u8],
    opts: Options,
    exists: impl FnOnce() -> Error,
) -> Result<()> {
    let _polled = crate::interrupt::Polled::enter();
    crate::interrupt::check()?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::io("cannot write", path, Errno::ISDIR.into()))?
        .to_string_lossy();
    let mut undo = Undo::default();
    undo.make_dirs(dir, opts.dir_mode)?;
    crate::interrupt::check()?;
    let held = crate::stale::HeldDir::open(dir).map_err(|e| Error::io("cannot open", dir, e))?;
    let prefix = format!(".{name}");
    sweep(&held, dir, &prefix);
    let tmp = dir.join(crate::stale::temp_name(&prefix));
    let (mut f, _registered) = crate::interrupt::TempFile::create(&tmp, || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(opts.mode)
            .open(&tmp)
    })
    .map_err(|e| Error::io("cannot create", &tmp, e))?;
    undo.temp = Some(tmp.clone());
    let exact = match opts.exact {
        true => f.set_permissions(Permissions::from_mode(opts.mode)),
        false => Ok(()),
    };
    exact
        .and_then(|()| f.write_all(bytes))
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io("cannot write", &tmp, e))?;
    // The file's name is the commit: a signal is handled wholly before it (undone, exit
    // 128 + n) or after it (the command completes, exit 0).
    crate::interrupt::commit(|| {
        crate::interrupt::check()?;
        publish(&tmp, path, opts.force).map_err(|e| match e {
            Errno::EXIST => exists(),
            e => Error::io("cannot create", path, e.into()),
        })
    })?;
    undo.temp = None;
    undo.dirs.clear();
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Renames `tmp` to `path`; without `force`, only if `path` does not exist.
fn publish(tmp: &Path, path: &Path, force: bool) -> std::result::Result<(), Errno> {
    if force {
        return rustix::fs::rename(tmp, path);
    }
    match rustix::fs::renameat_with(CWD, tmp, CWD, path, RenameFlags::NOREPLACE) {
        // A file system without RENAME_NOREPLACE: a hard link refuses an existing name too.
        Err(Errno::INVAL) => {
            rustix::fs::link(tmp, path)?;
            let _ = rustix::fs::unlink(tmp);
            Ok(())
        }
        r => r,
    }
}

/// What an unfinished write removes: its temporary and the folders it made.
#[derive(Default)]
struct Undo {
    temp: Option<PathBuf>,
    /// Outermost first.
    dirs: Vec<PathBuf>,
}

impl Undo {
    /// Makes `dir` and its missing parents with `mode`, recording each.
    fn make_dirs(&mut self, dir: &Path, mode: u32) -> Result<()> {
        let mut missing = Vec::new();
        let mut d = dir;
        while !d.as_os_str().is_empty() && std::fs::symlink_metadata(d).is_err() {
            missing.push(d.to_path_buf());
            d = d.parent().unwrap_or(Path::new(""));
        }
        for d in missing.into_iter().rev() {
            crate::interrupt::check()?;
            match DirBuilder::new().mode(mode).create(&d) {
                Ok(()) => self.dirs.push(d),
                // Made by someone else meanwhile: theirs, not undone.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => {}
                Err(e) => return Err(Error::io("cannot create", &d, e)),
            }
        }
        Ok(())
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(t) = &self.temp {
            let _ = std::fs::remove_file(t);
        }
        for d in self.dirs.iter().rev() {
            // Left alone when not empty: then it holds files this run did not make.
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Removes the temporaries with `prefix` in `dir` whose writer is gone.
fn sweep(held: &crate::stale::HeldDir, dir: &Path, prefix: &str) {
    for path in held.dead_temp_files(dir, prefix) {
        let _ = std::fs::remove_file(path);
    }
}
