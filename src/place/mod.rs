//! Writing files under a target root without ever following a link, and without leaving a
//! half-placed state.
//!
//! Every path is walked component by component from an open root directory with
//! `O_NOFOLLOW`, so a symlink planted in the target tree (`/mnt/etc -> /etc`) is refused, not
//! followed. Each directory is opened once and kept open for the run ([`Dir`]): files are first
//! written as `O_EXCL` temporaries in it, created with their final mode and owner before any
//! byte is written, and every later step on them (the rename that makes them visible, the
//! removal on failure) goes through that descriptor, never through the path again. So a
//! directory renamed or swapped for a link meanwhile can neither misdirect a file nor hide a
//! temporary from the rollback.
//!
//! [`Placer::commit`] renames the temporaries into place when all of them exist, after one
//! `syncfs` (see `commit.rs`). Any failure, or dropping a `Placer` uncommitted, removes
//! everything this run wrote ([`Placer::rollback`]), and names what it could not remove.
//! What a run killed outright leaves (SIGKILL, power loss) is named so that a later run finds
//! and removes it ([`crate::stale`], [`Placer::sweep_stale`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::{Error, Result};

mod check;
mod commit;
mod process;
mod space;
mod sweep;
mod tree;
mod verify;
mod writer;
pub use check::{refuse_conflicts, refuse_conflicts_with, Conflict, ConflictKind};
pub use process::check_open_files;
use process::{creator, raise_open_files_limit, umask};
pub use space::Room;
pub use sweep::{NotSwept, Swept, SweptKind};
use writer::{Stop, Writer};

/// `syncfs(2)` of the filesystem holding `fd`. Placing runs on the Linux installer; other
/// systems (a macOS workstation builds the crate but never places files) have no syncfs, and
/// get a `sync(2)` of everything instead.
pub(crate) fn syncfs(fd: impl std::os::fd::AsFd) -> rustix::io::Result<()> {
    #[cfg(target_os = "linux")]
    return rustix::fs::syncfs(fd);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = fd;
        rustix::fs::sync();
        Ok(())
    }
}

/// Mode of parent directories vault has to create and that the bundle does not list.
pub const PARENT_DIR_MODE: u32 = 0o755;

#[derive(Debug, Clone, Copy)]
pub struct PlaceOptions {
    /// Replace existing files (default: refuse). The old file is removed once the commit
    /// succeeded; no copy of it is kept (it may well be a secret too).
    pub force: bool,
    /// Set owners (needs root; without it files keep the caller's owner).
    pub chown: bool,
}

/// A directory of the target tree, opened by the no-follow walk and kept open for the run.
struct Dir {
    fd: OwnedFd,
    /// Where it was when opened, relative to the root (`""` for the root, `/etc/ssh`).
    path: String,
    /// `(st_dev, st_ino)`, to tell at the commit whether the path still leads here.
    id: (u64, u64),
    /// Set-group-ID: what is created here takes the folder's group, not the creator's.
    setgid: bool,
    /// Created by this run, inside a folder that is still under a temporary name (see
    /// [`Placer::make_dir`]): nothing in it is visible, so files go in under their own names.
    fresh: bool,
}

impl Dir {
    fn new(fd: OwnedFd, path: String, fresh: bool) -> std::result::Result<Arc<Dir>, Errno> {
        let st = rustix::fs::fstat(&fd)?;
        // This run's leftovers in it are recognisably a live run's (see crate::stale); a
        // file system without locks falls back to the PID.
        let _ = crate::stale::hold(&fd);
        Ok(Arc::new(Dir {
            fd,
            path,
            id: file_id(&st),
            setgid: st.st_mode & 0o2000 != 0,
            fresh,
        }))
    }
}

/// `(st_dev, st_ino)`: which file this is. (Their widths differ between targets.)
#[allow(clippy::unnecessary_cast)]
fn file_id(st: &rustix::fs::Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

/// A file written, not yet renamed into place.
struct Pending {
    target: String,
    dir: Arc<Dir>,
    /// Its name in `dir`: a temporary's, or in a fresh folder its own.
    temp: String,
}

/// A file renamed into place.
struct Committed {
    target: String,
    dir: Arc<Dir>,
    /// The file `--force` replaced, under a name in `dir` until the commit is complete (so a
    /// rollback can put it back), then removed.
    displaced: Option<String>,
}

/// A directory this run created.
struct Created {
    parent: Arc<Dir>,
    /// Its name in `parent` now: a temporary's until the commit renames it to `last`, where
    /// `parent` existed before this run; else `last` from the start.
    name: String,
    last: String,
    target: String,
}

/// Places files under one root directory.
pub struct Placer {
    root_path: PathBuf,
    root: Arc<Dir>,
    opts: PlaceOptions,
    /// The directories opened so far, by path (the root under `""`).
    dirs: HashMap<String, Arc<Dir>>,
    created_dirs: Vec<Created>,
    pending: Vec<Pending>,
    committed: Vec<Committed>,
    finished: bool,
    /// Writes file contents on a second thread (see [`Writer`]); started by the first file.
    writer: Option<Writer>,
    /// What a sweep in a dry run would put back: target → the displaced original's name
    /// (the check judges the original, which the real run's sweep restores first).
    would_restore: HashMap<String, String>,
    /// A signal makes the copy and commit loops stop with [`Error::Interrupted`], and the
    /// normal rollback runs.
    _polled: crate::interrupt::Polled,
}

/// Splits `/a/b/c` into (`/a/b`, `c`).
fn split(target: &str) -> (&str, &str) {
    match target.rfind('/') {
        Some(0) | None => ("", target.trim_start_matches('/')),
        Some(i) => (&target[..i], &target[i + 1..]),
    }
}

/// What failed, plus what the rollback could not undo: [`Error::Incomplete`] when anything
/// is left, so the message and the exit code never claim a clean rollback that did not
/// happen.
pub(crate) fn with_leftovers(e: Error, left: Vec<PathBuf>) -> Error {
    match e {
        _ if left.is_empty() => e,
        Error::Incomplete { cause, left: mut l } => {
            l.extend(left);
            Error::Incomplete { cause, left: l }
        }
        e => Error::Incomplete {
            cause: Box::new(e),
            left,
        },
    }
}

impl Placer {
    /// Opens `root`. The root itself may be reached through links (the user named it); nothing
    /// below it is.
    pub fn new(root: &Path, opts: PlaceOptions) -> Result<Placer> {
        raise_open_files_limit();
        let fd = rustix::fs::open(
            root,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .and_then(|fd| Dir::new(fd, String::new(), false))
        .map_err(|e| Error::io("cannot open target root", root, io::Error::from(e)))?;
        Ok(Placer {
            root_path: root.to_path_buf(),
            root: fd.clone(),
            opts,
            dirs: HashMap::from([(String::new(), fd)]),
            created_dirs: Vec::new(),
            pending: Vec::new(),
            committed: Vec::new(),
            finished: false,
            writer: None,
            would_restore: HashMap::new(),
            _polled: crate::interrupt::Polled::enter(),
        })
    }

    /// Where `target` lands, for messages.
    pub fn display_path(&self, target: &str) -> PathBuf {
        self.root_path.join(target.trim_start_matches('/'))
    }

    /// The parent directory of `target` (created as needed, never through a link), and the
    /// last component.
    fn parent(&mut self, target: &str) -> Result<(Arc<Dir>, String)> {
        let (parent, name) = split(target);
        if let Some(d) = self.dirs.get(parent) {
            return Ok((d.clone(), name.to_owned()));
        }
        let mut dir = self.root.clone();
        let mut walked = String::new();
        for c in parent.split('/').filter(|c| !c.is_empty()) {
            walked.push('/');
            walked.push_str(c);
            if let Some(d) = self.dirs.get(&walked) {
                dir = d.clone();
                continue;
            }
            dir = match open_dir(&dir.fd, c) {
                Ok(fd) => {
                    let fresh = dir.fresh;
                    self.keep_dir(fd, &walked, fresh)?
                }
                Err(Errno::NOENT) => self.make_dir(&dir, c, &walked, PARENT_DIR_MODE, 0, 0)?,
                Err(e) => return Err(self.walk_error(&walked, e)),
            };
        }
        Ok((dir, name.to_owned()))
    }

    /// Remembers the open directory `fd` at `path` for the run.
    fn keep_dir(&mut self, fd: OwnedFd, path: &str, fresh: bool) -> Result<Arc<Dir>> {
        let d = Dir::new(fd, path.to_owned(), fresh).map_err(|e| self.io_error(path, e))?;
        self.dirs.insert(path.to_owned(), d.clone());
        Ok(d)
    }

    /// Creates directory `name` in `parent` with its owner and mode set while still empty;
    /// returns it open (and remembered). In a folder that existed before this run it is
    /// created under a temporary name, which the commit renames to `name` after the `syncfs`:
    /// until then nothing in it is visible, so what goes in below needs no temporary names
    /// and no rename of its own (one rename at the commit instead of one per file).
    fn make_dir(
        &mut self,
        parent: &Arc<Dir>,
        name: &str,
        target: &str,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<Arc<Dir>> {
        let on_disk = if parent.fresh {
            name.to_owned()
        } else {
            crate::stale::temp_name("")
        };
        rustix::fs::mkdirat(&parent.fd, on_disk.as_str(), Mode::from_raw_mode(0o700))
            .map_err(|e| self.io_error(target, e))?;
        self.created_dirs.push(Created {
            parent: parent.clone(),
            name: on_disk.clone(),
            last: name.to_owned(),
            target: target.to_owned(),
        });
        // Owner and mode set on the still-empty directory, before anything goes in (umask-proof).
        let fd = open_dir(&parent.fd, &on_disk).map_err(|e| self.io_error(target, e))?;
        self.set_owner_and_mode(&fd, target, mode, uid, gid)?;
        self.keep_dir(fd, target, true)
    }

    /// Owner (when running as root) then mode, on an object nothing has been written into yet.
    fn set_owner_and_mode(
        &self,
        fd: &OwnedFd,
        target: &str,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<()> {
        if self.opts.chown {
            rustix::fs::fchown(
                fd,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            )
            .map_err(|e| self.io_error(target, e))?;
        }
        // mode_t is 32 bits on Linux, 16 on macOS (where this code builds but never runs).
        #[cfg(target_os = "linux")]
        let raw = mode;
        #[cfg(not(target_os = "linux"))]
        let raw = (mode & 0o7777) as rustix::fs::RawMode;
        rustix::fs::fchmod(fd, Mode::from_raw_mode(raw)).map_err(|e| self.io_error(target, e))
    }

    fn io_error(&self, target: &str, e: Errno) -> Error {
        Error::RolledBack {
            path: self.display_path(target),
            source: io::Error::from(e),
        }
    }

    fn walk_error(&self, walked: &str, e: Errno) -> Error {
        if e == Errno::LOOP || e == Errno::NOTDIR {
            Error::Refused {
                why: format!(
                    "{} is a symbolic link or not a directory; vault never follows links in the target tree",
                    self.display_path(walked).display()
                ),
                hint: Some("check what is mounted at the target root; remove the link if it is stale".into()),
            }
        } else {
            self.io_error(walked, e)
        }
    }

    /// A directory item: created with its mode and owner if missing; an existing directory is
    /// left as it is.
    pub fn dir(&mut self, target: &str, mode: u32, uid: u32, gid: u32) -> Result<()> {
        let (parent, name) = self.parent(target)?;
        if self.dirs.contains_key(target) {
            return Ok(());
        }
        match open_dir(&parent.fd, &name) {
            Ok(_) => Ok(()),
            Err(Errno::NOENT) => self
                .make_dir(&parent, &name, target, mode, uid, gid)
                .map(drop),
            Err(e) => Err(self.walk_error(target, e)),
        }
    }

    /// Writes a file item's contents to a temporary beside its target (made visible by
    /// [`Placer::commit`]). The temporary has its final mode and owner before the first byte.
    pub fn file(
        &mut self,
        target: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        data: &mut dyn Read,
    ) -> Result<()> {
        let (dir, name) = self.parent(target)?;
        let temp = if dir.fresh {
            name
        } else {
            crate::stale::temp_name("")
        };
        // Created with its final permission bits when the umask keeps them all, and no
        // special bits (which a change of owner would clear): then nothing is left to change
        // afterwards. Otherwise 0600, and the owner then the mode are set before any byte.
        let direct = mode & 0o7000 == 0 && mode & umask() == 0;
        let fd = rustix::fs::openat(
            &dir.fd,
            temp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(if direct { mode as _ } else { 0o600 }),
        )
        .map_err(|e| self.io_error(target, e))?;
        self.pending.push(Pending {
            target: target.to_owned(),
            dir: dir.clone(),
            temp,
        });
        let owned = !self.opts.chown || (!dir.setgid && (uid, gid) == creator());
        if !(direct && owned) {
            self.set_owner_and_mode(&fd, target, mode, uid, gid)?;
        }
        let file = File::from(fd);
        if self.writer.is_none() {
            let fs = rustix::io::dup(&self.root.fd).map_err(|e| self.io_error(target, e))?;
            self.writer = Some(Writer::start(fs).map_err(|e| Error::RolledBack {
                path: self.display_path(target),
                source: e,
            })?);
        }
        let Some(writer) = self.writer.as_mut() else {
            unreachable!("started above")
        };
        let copied = writer.copy(file, target, data);
        copied.map_err(|stop| match stop {
            Stop::Interrupted(e) => e,
            Stop::Read(e) => Error::io("cannot read bundle data for", self.display_path(target), e),
            Stop::Write((t, e)) => self.write_error(t, e),
        })
    }

    /// Waits for the writer thread: every byte written, or the first error.
    fn drain_writer(&mut self) -> Result<()> {
        let done = self.writer.take().map_or(Ok(()), |mut w| w.finish());
        done.map_err(|(target, e)| self.write_error(target, e))
    }

    fn write_error(&self, target: String, e: io::Error) -> Error {
        Error::RolledBack {
            path: self.display_path(&target),
            source: e,
        }
    }

    /// Opens the directory holding `target` by a fresh no-follow walk, creating nothing.
    fn parent_no_create(&self, target: &str) -> std::result::Result<(OwnedFd, String), Errno> {
        let (parent, name) = split(target);
        let mut dir = rustix::io::dup(&self.root.fd)?;
        for c in parent.split('/').filter(|c| !c.is_empty()) {
            dir = open_dir(&dir, c)?;
        }
        Ok((dir, name.to_owned()))
    }

    /// Files placed by the last successful commit.
    pub fn placed(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.committed.iter().map(|c| self.display_path(&c.target))
    }

    pub fn root(&self) -> &Path {
        &self.root_path
    }
}

fn open_dir(dir: &OwnedFd, name: &str) -> std::result::Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

impl Drop for Placer {
    fn drop(&mut self) {
        if !self.finished {
            for p in self.rollback() {
                eprintln!(
                    "warning: could not remove {}",
                    crate::escape::escape_path(&p)
                );
            }
        } else if self.committed.iter().any(|c| c.displaced.is_some()) {
            self.release();
        }
    }
}

pub use crate::mounts::is_mount_point;

#[cfg(test)]
mod leftover_tests;
#[cfg(test)]
mod tests;
