//! Writing files under a target root without ever following a link, and without leaving a
//! half-placed state.
//!
//! Every path is walked component by component from an open root directory with
//! `O_NOFOLLOW`, so a symlink planted in the target tree (`/mnt/etc -> /etc`) is refused, not
//! followed. Files are first written as `O_EXCL` temporaries beside their targets, created
//! with their final mode and owner before any byte is written; [`Placer::commit`] renames
//! them into place only when all of them exist, after one `syncfs`. Any failure, or dropping
//! a `Placer` uncommitted, removes everything this run wrote (see [`Placer::rollback`]).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

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

use crate::{Error, Result};

mod check;
mod writer;
pub use check::{Conflict, ConflictKind};
use writer::Writer;

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

struct Pending {
    target: String,
    temp: String,
}

struct Committed {
    target: String,
    /// The file `--force` replaced, under the temporary's name until the commit is complete
    /// (so a rollback can swap it back), then removed.
    displaced: Option<String>,
}

/// Places files under one root directory.
pub struct Placer {
    root_path: PathBuf,
    root: OwnedFd,
    opts: PlaceOptions,
    created_dirs: Vec<String>,
    pending: Vec<Pending>,
    committed: Vec<Committed>,
    /// The last parent directory opened, as consecutive files usually share one.
    last_parent: Option<(String, OwnedFd)>,
    finished: bool,
    /// Writes file contents on a second thread (see [`Writer`]); started by the first file.
    writer: Option<Writer>,
    /// A signal makes the copy and commit loops stop with [`Error::Interrupted`], and the
    /// normal rollback runs.
    _polled: crate::interrupt::Polled,
}

/// Why copying a file's contents stopped.
enum Stop {
    Interrupted(Error),
    Read(io::Error),
    Write(writer::Failure),
}

/// Splits `/a/b/c` into (`/a/b`, `c`).
fn split(target: &str) -> (&str, &str) {
    match target.rfind('/') {
        Some(0) | None => ("", target.trim_start_matches('/')),
        Some(i) => (&target[..i], &target[i + 1..]),
    }
}

impl Placer {
    /// Opens `root`. The root itself may be reached through links (the user named it); nothing
    /// below it is.
    pub fn new(root: &Path, opts: PlaceOptions) -> Result<Placer> {
        let fd = rustix::fs::open(
            root,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("cannot open target root", root, io::Error::from(e)))?;
        Ok(Placer {
            root_path: root.to_path_buf(),
            root: fd,
            opts,
            created_dirs: Vec::new(),
            pending: Vec::new(),
            committed: Vec::new(),
            last_parent: None,
            finished: false,
            writer: None,
            _polled: crate::interrupt::Polled::enter(),
        })
    }

    /// Where `target` lands, for messages.
    pub fn display_path(&self, target: &str) -> PathBuf {
        self.root_path.join(target.trim_start_matches('/'))
    }

    /// Opens (creating as needed) the parent directory of `target`, never following a link.
    fn parent(&mut self, target: &str) -> Result<(OwnedFd, String)> {
        let (parent, name) = split(target);
        if let Some((p, fd)) = &self.last_parent {
            if p == parent {
                let fd = rustix::io::dup(fd).map_err(|e| self.io_error(target, e))?;
                return Ok((fd, name.to_owned()));
            }
        }
        let mut dir = rustix::io::dup(&self.root).map_err(|e| self.io_error(target, e))?;
        let mut walked = String::new();
        for c in parent.split('/').filter(|c| !c.is_empty()) {
            walked.push('/');
            walked.push_str(c);
            dir = match self.open_dir(&dir, c) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    self.make_dir(&dir, c, &walked, PARENT_DIR_MODE, 0, 0)?;
                    self.open_dir(&dir, c)
                        .map_err(|e| self.io_error(&walked, e))?
                }
                Err(e) => return Err(self.walk_error(&walked, e)),
            };
        }
        let keep = rustix::io::dup(&dir).map_err(|e| self.io_error(target, e))?;
        self.last_parent = Some((parent.to_owned(), keep));
        Ok((dir, name.to_owned()))
    }

    fn open_dir(&self, dir: &OwnedFd, name: &str) -> std::result::Result<OwnedFd, Errno> {
        rustix::fs::openat(
            dir,
            name,
            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    }

    fn make_dir(
        &mut self,
        parent: &OwnedFd,
        name: &str,
        target: &str,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<()> {
        rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
            .map_err(|e| self.io_error(target, e))?;
        self.created_dirs.push(target.to_owned());
        // Owner and mode set on the still-empty directory, before anything goes in (umask-proof).
        let fd = self
            .open_dir(parent, name)
            .map_err(|e| self.io_error(target, e))?;
        self.set_owner_and_mode(&fd, target, mode, uid, gid)
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
        match self.open_dir(&parent, &name) {
            Ok(_) => Ok(()),
            Err(Errno::NOENT) => self.make_dir(&parent, &name, target, mode, uid, gid),
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
        let (parent, _) = self.parent(target)?;
        let temp = crate::interrupt::temp_name("");
        let fd = rustix::fs::openat(
            &parent,
            temp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| self.io_error(target, e))?;
        let (ptemp, _) = split(target);
        self.pending.push(Pending {
            target: target.to_owned(),
            temp: format!("{ptemp}/{temp}"),
        });
        self.set_owner_and_mode(&fd, target, mode, uid, gid)?;
        let file = File::from(fd);
        if self.writer.is_none() {
            let fs = rustix::io::dup(&self.root).map_err(|e| self.io_error(target, e))?;
            self.writer = Some(Writer::start(fs).map_err(|e| Error::RolledBack {
                path: self.display_path(target),
                source: e,
            })?);
        }
        let Some(writer) = self.writer.as_mut() else {
            unreachable!("started above")
        };
        let copied = (|| {
            writer.open(file, target).map_err(Stop::Write)?;
            loop {
                crate::interrupt::check().map_err(Stop::Interrupted)?;
                let mut buf = writer.buffer();
                let n = match data.read(&mut buf) {
                    Ok(0) => {
                        writer.unused(buf);
                        return writer.close().map_err(Stop::Write);
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Stop::Read(e)),
                };
                writer.data(buf, n).map_err(Stop::Write)?;
            }
        })();
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

    /// Makes every written file visible: one `syncfs` so the contents are durable, then the
    /// renames, then another `syncfs` so the renames are. On failure, rolls back and returns
    /// the error.
    pub fn commit(&mut self) -> Result<()> {
        let r = self.try_commit();
        if r.is_err() {
            self.rollback();
        } else {
            self.finished = true;
        }
        r
    }

    fn try_commit(&mut self) -> Result<()> {
        self.drain_writer()?;
        crate::interrupt::check()?;
        syncfs(&self.root).map_err(|e| self.io_error("/", e))?;
        let pending = std::mem::take(&mut self.pending);
        let mut rest = pending.into_iter();
        while let Some(p) = rest.next() {
            if let Err(e) = crate::interrupt::check().and_then(|()| self.commit_one(&p)) {
                // Put back what is not committed, so rollback removes those temporaries too.
                self.pending.push(p);
                self.pending.extend(rest);
                return Err(e);
            }
        }
        syncfs(&self.root).map_err(|e| self.io_error("/", e))?;
        Ok(())
    }

    fn commit_one(&mut self, p: &Pending) -> Result<()> {
        let (parent, name) = self.parent(&p.target)?;
        let (_, temp) = split(&p.temp);
        let existing = rustix::fs::statat(&parent, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| FileType::from_raw_mode(st.st_mode));
        let refused = |why: &str, hint: &str| Error::Refused {
            why: format!("{} {why}", self.display_path(&p.target).display()),
            hint: Some(hint.into()),
        };
        let displaced = match existing {
            None => {
                rustix::fs::renameat_with(
                    &parent,
                    temp,
                    &parent,
                    name.as_str(),
                    RenameFlags::NOREPLACE,
                )
                .map_err(|e| self.io_error(&p.target, e))?;
                None
            }
            Some(_) if !self.opts.force => {
                return Err(refused(
                    "appeared while vault was placing files",
                    "nothing was changed; run again, with --force to replace it",
                ))
            }
            Some(FileType::Directory) => {
                return Err(refused(
                    "became a directory while vault was placing files",
                    "remove or fix that path in the target, then run the same command again",
                ))
            }
            Some(_) => {
                // Swapped, not overwritten: until the commit completes, the old file waits
                // under the temporary's name, so a rollback can swap it back.
                match rustix::fs::renameat_with(
                    &parent,
                    temp,
                    &parent,
                    name.as_str(),
                    RenameFlags::EXCHANGE,
                ) {
                    Ok(()) => Some(p.temp.clone()),
                    // A filesystem that cannot swap: replaced outright.
                    Err(Errno::INVAL) => {
                        rustix::fs::renameat(&parent, temp, &parent, name.as_str())
                            .map_err(|e| self.io_error(&p.target, e))?;
                        None
                    }
                    Err(e) => return Err(self.io_error(&p.target, e)),
                }
            }
        };
        self.committed.push(Committed {
            target: p.target.clone(),
            displaced,
        });
        Ok(())
    }

    /// Removes the files `--force` replaced, once every placer committed: until then (or
    /// until this placer is dropped) [`Placer::rollback`] can still put them back.
    pub fn release(&mut self) {
        self.remove_displaced();
        let _ = rustix::fs::syncfs(&self.root);
    }

    fn remove_displaced(&mut self) {
        let displaced: Vec<String> = self
            .committed
            .iter_mut()
            .filter_map(|c| c.displaced.take())
            .collect();
        for d in displaced {
            {
                let (pd, name) = split(&d);
                let Ok(parent) = self.parent_no_create(&format!("{pd}/x")) else {
                    continue;
                };
                if let Err(e) = rustix::fs::unlinkat(&parent.0, name, AtFlags::empty()) {
                    eprintln!(
                        "warning: could not remove the replaced file {}: {e}",
                        crate::escape::escape_path(&self.display_path(&d))
                    );
                }
            }
        }
    }

    /// Removes everything this run placed or created and restores backups, newest first. Best
    /// effort: what cannot be removed is reported on stderr.
    pub fn rollback(&mut self) {
        // Nothing may still be writing into a temporary this removes.
        let _ = self.drain_writer();
        self.last_parent = None;
        for c in std::mem::take(&mut self.committed).into_iter().rev() {
            if let Ok((parent, name)) = self.parent_no_create(&c.target) {
                match c.displaced {
                    // The old file back in place; the new one leaves under the temporary name.
                    Some(d) => {
                        let (_, temp) = split(&d);
                        if rustix::fs::renameat_with(
                            &parent,
                            temp,
                            &parent,
                            name.as_str(),
                            RenameFlags::EXCHANGE,
                        )
                        .is_ok()
                        {
                            let _ = rustix::fs::unlinkat(&parent, temp, AtFlags::empty());
                        }
                    }
                    None => {
                        let _ = rustix::fs::unlinkat(&parent, name.as_str(), AtFlags::empty());
                    }
                }
            }
        }
        for p in std::mem::take(&mut self.pending) {
            if let Ok((parent, name)) = self.parent_no_create(&p.temp) {
                if let Err(e) = rustix::fs::unlinkat(&parent, name.as_str(), AtFlags::empty()) {
                    if e != Errno::NOENT {
                        eprintln!(
                            "warning: could not remove {}: {}",
                            crate::escape::escape_path(&self.display_path(&p.temp)),
                            e
                        );
                    }
                }
            }
        }
        for d in std::mem::take(&mut self.created_dirs).into_iter().rev() {
            if let Ok((parent, name)) = self.parent_no_create(&d) {
                let _ = rustix::fs::unlinkat(&parent, name.as_str(), AtFlags::REMOVEDIR);
            }
        }
        let _ = syncfs(&self.root);
        self.finished = true;
    }

    fn parent_no_create(&self, target: &str) -> std::result::Result<(OwnedFd, String), Errno> {
        let (parent, name) = split(target);
        let mut dir = rustix::io::dup(&self.root)?;
        for c in parent.split('/').filter(|c| !c.is_empty()) {
            dir = self.open_dir(&dir, c)?;
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

impl Drop for Placer {
    fn drop(&mut self) {
        if !self.finished {
            self.rollback();
        } else if self.committed.iter().any(|c| c.displaced.is_some()) {
            self.release();
        }
    }
}

pub use crate::mounts::is_mount_point;

#[cfg(test)]
mod tests;
