//! Making a placement visible, and undoing it.
//!
//! The commit: every byte written, one `syncfs` so the contents are durable, then one rename
//! per file, then another `syncfs` so the renames are. The `syncfs` goes through the root
//! descriptor opened before the first byte was written: Linux reports to a `syncfs` every
//! write-back error of the file system since that descriptor was opened, also the ones a
//! concurrent `sync` or the kernel's flusher ran into first.
//!
//! A file `--force` replaces gets a second name first (`.vault-…was.NAME`, a hard link; where
//! a file system has none, the file is renamed to it), then the temporary is renamed over it: at every moment the original has a name, so a rollback
//! puts it back, and so does a later run's sweep if this one is killed (see
//! [`crate::stale`]). Only once every placer of the run committed are those names removed
//! ([`Placer::release`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, RenameFlags};
use rustix::io::Errno;

use super::{split, syncfs, Committed, Dir, Pending, Placer};
use crate::{Error, Result};

impl Placer {
    /// Makes every written file visible. On failure, rolls back and returns the error (with
    /// whatever the rollback could not undo).
    pub fn commit(&mut self) -> Result<()> {
        let r = self.try_commit();
        match r {
            Ok(()) => {
                self.finished = true;
                Ok(())
            }
            Err(e) => {
                let left = self.rollback();
                Err(super::with_leftovers(e, left))
            }
        }
    }

    fn try_commit(&mut self) -> Result<()> {
        self.drain_writer()?;
        crate::interrupt::check()?;
        syncfs(&self.root.fd).map_err(|e| self.io_error("/", e))?;
        let mut still_there = HashMap::new();
        self.reveal_dirs(&mut still_there)?;
        let pending = std::mem::take(&mut self.pending);
        let mut rest = pending.into_iter();
        while let Some(p) = rest.next() {
            if p.dir.fresh {
                // Under its own name in a folder the renames above made visible.
                self.committed.push(Committed {
                    target: p.target,
                    dir: p.dir,
                    displaced: None,
                });
                continue;
            }
            let done = crate::interrupt::check()
                .and_then(|()| self.still_there(&p.dir, &mut still_there))
                .and_then(|()| self.commit_one(&p));
            if let Err(e) = done {
                // Put back what is not committed, so rollback removes those temporaries too.
                self.pending.push(p);
                self.pending.extend(rest);
                return Err(e);
            }
        }
        self.verify_placed()?;
        syncfs(&self.root.fd).map_err(|e| self.io_error("/", e))?;
        Ok(())
    }

    /// Renames each folder this run created under a temporary name (see
    /// [`Placer::make_dir`]) to its own, never over anything that appeared there meanwhile.
    fn reveal_dirs(&mut self, seen: &mut HashMap<String, bool>) -> Result<()> {
        for i in 0..self.created_dirs.len() {
            let c = &self.created_dirs[i];
            if c.name == c.last {
                continue;
            }
            crate::interrupt::check()?;
            self.still_there(&c.parent, seen)?;
            #[cfg(test)]
            super::verify::before_rename();
            let c = &self.created_dirs[i];
            let d = &c.parent.fd;
            match rustix::fs::renameat_with(d, c.name.as_str(), d, c.last.as_str(), RenameFlags::NOREPLACE) {
                Ok(()) => {}
                Err(Errno::EXIST | Errno::NOTEMPTY) => {
                    return Err(Error::Refused {
                        why: format!(
                            "{} appeared while vault was placing files",
                            self.display_path(&c.target).display()
                        ),
                        hint: Some("nothing was changed; check what else is writing to the target, then run the same command again".into()),
                    })
                }
                Err(e) => return Err(self.io_error(&c.target, e)),
            }
            let c = &mut self.created_dirs[i];
            c.name = c.last.clone();
        }
        Ok(())
    }

    /// Whether `dir` is still what its path leads to (a fresh no-follow walk): a directory
    /// renamed, or swapped for a link or another directory, while vault placed files would
    /// otherwise receive them where the report does not say.
    fn still_there(&self, dir: &Arc<Dir>, seen: &mut HashMap<String, bool>) -> Result<()> {
        if dir.path.is_empty() {
            return Ok(());
        }
        let same = *seen
            .entry(dir.path.clone())
            .or_insert_with(|| self.leads_to(dir));
        if same {
            return Ok(());
        }
        Err(Error::Refused {
            why: format!(
                "{} was moved, removed or replaced (by a link?) while vault was placing files into it",
                self.display_path(&dir.path).display()
            ),
            hint: Some(
                "nothing was changed; check what else is writing to the target, then run the same command again"
                    .into(),
            ),
        })
    }

    fn commit_one(&mut self, p: &Pending) -> Result<()> {
        #[cfg(test)]
        super::verify::before_rename();
        let (_, name) = split(&p.target);
        let d = &p.dir.fd;
        // Nearly always nothing is there: try that first, one system call per file.
        let existing =
            match rustix::fs::renameat_with(d, p.temp.as_str(), d, name, RenameFlags::NOREPLACE) {
                Ok(()) => None,
                Err(Errno::EXIST) => match rustix::fs::statat(d, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => Some(FileType::from_raw_mode(st.st_mode)),
                    Err(e) => return Err(self.io_error(&p.target, e)),
                },
                Err(e) => return Err(self.io_error(&p.target, e)),
            };
        let refused = |why: &str, hint: &str| Error::Refused {
            why: format!("{} {why}", self.display_path(&p.target).display()),
            hint: Some(hint.into()),
        };
        let displaced = match existing {
            None => None,
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
            Some(_) => Some(self.replace(&p.dir, &p.temp, name, &p.target)?),
        };
        self.committed.push(Committed {
            target: p.target.clone(),
            dir: p.dir.clone(),
            displaced,
        });
        Ok(())
    }

    /// Renames `temp` over the existing `name`, keeping the old file under a second name
    /// ([`crate::stale::displaced_name`]) until the release: returns that name. At every
    /// moment the old file has `name` or that second name, never a temporary's, which a later
    /// run's sweep would remove.
    fn replace(&self, dir: &Dir, temp: &str, name: &str, target: &str) -> Result<String> {
        let d = &dir.fd;
        let was = crate::stale::displaced_name(name);
        match rustix::fs::linkat(d, name, d, was.as_str(), AtFlags::empty()) {
            Ok(()) => {
                return match rustix::fs::renameat(d, temp, d, name) {
                    Ok(()) => Ok(was),
                    Err(e) => {
                        let _ = rustix::fs::unlinkat(d, was.as_str(), AtFlags::empty());
                        Err(self.io_error(target, e))
                    }
                };
            }
            // No hard links here (or not for this file): move it aside instead.
            Err(Errno::PERM | Errno::OPNOTSUPP | Errno::MLINK) => {}
            Err(e) => return Err(self.io_error(target, e)),
        }
        // The target is missing between these two renames; a run killed there leaves the old
        // file under its displaced name, which the next run's sweep puts back.
        rustix::fs::renameat(d, name, d, was.as_str()).map_err(|e| self.io_error(target, e))?;
        match rustix::fs::renameat_with(d, temp, d, name, RenameFlags::NOREPLACE).or_else(|e| {
            match e {
                // A file system without RENAME_NOREPLACE.
                Errno::INVAL => rustix::fs::renameat(d, temp, d, name),
                e => Err(e),
            }
        }) {
            Ok(()) => Ok(was),
            Err(e) => {
                let _ = rustix::fs::renameat(d, was.as_str(), d, name);
                Err(self.io_error(target, e))
            }
        }
    }

    /// Removes the files `--force` replaced, once every placer committed: until then (or
    /// until this placer is dropped) [`Placer::rollback`] can still put them back.
    pub fn release(&mut self) {
        let mut removed = false;
        for c in &mut self.committed {
            if let Some(d) = c.displaced.take() {
                removed = true;
                if let Err(e) = rustix::fs::unlinkat(&c.dir.fd, d.as_str(), AtFlags::empty()) {
                    eprintln!(
                        "warning: could not remove the replaced file {}: {e}",
                        crate::escape::escape_path(
                            &self
                                .root_path
                                .join(format!("{}/{d}", c.dir.path).trim_start_matches('/'))
                        )
                    );
                }
            }
        }
        if removed {
            let _ = syncfs(&self.root.fd);
        }
    }

    /// Removes everything this run placed or created and puts back what `--force` replaced,
    /// newest first, each through the directory it was written in. Returns what could not be
    /// removed or put back (empty: the target is as it was).
    pub fn rollback(&mut self) -> Vec<PathBuf> {
        // Nothing may still be writing into a temporary this removes, and what was not
        // written yet is not written now.
        if let Some(w) = self.writer.as_mut() {
            w.discard_packed();
        }
        let _ = self.drain_writer();
        // Whether there is anything to undo (a placer used only to check and sweep has not).
        let undid =
            !(self.committed.is_empty() && self.pending.is_empty() && self.created_dirs.is_empty());
        let mut left = Vec::new();
        let in_dir = |dir: &Dir, name: &str| {
            self.root_path
                .join(format!("{}/{name}", dir.path).trim_start_matches('/'))
        };
        for c in std::mem::take(&mut self.committed).into_iter().rev() {
            let (_, name) = split(&c.target);
            let d = &c.dir.fd;
            let undone = match &c.displaced {
                // The old file back over the new one.
                Some(was) => rustix::fs::renameat(d, was.as_str(), d, name),
                None => rustix::fs::unlinkat(d, name, AtFlags::empty()),
            };
            if let Err(e) = undone {
                if e != Errno::NOENT {
                    left.push(in_dir(&c.dir, name));
                    if let Some(was) = &c.displaced {
                        left.push(in_dir(&c.dir, was));
                    }
                }
            }
        }
        for p in std::mem::take(&mut self.pending) {
            match rustix::fs::unlinkat(&p.dir.fd, p.temp.as_str(), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(_) => left.push(in_dir(&p.dir, &p.temp)),
            }
        }
        for c in std::mem::take(&mut self.created_dirs).into_iter().rev() {
            match rustix::fs::unlinkat(&c.parent.fd, c.name.as_str(), AtFlags::REMOVEDIR) {
                Ok(()) | Err(Errno::NOENT) => {}
                // What this run wrote in it is gone (or listed above): what is left there is
                // another writer's, and so is the folder now, under its own name (a
                // temporary's would be swept, with that writer's files, by a later run).
                Err(Errno::NOTEMPTY | Errno::EXIST) if c.name != c.last => {
                    let d = &c.parent.fd;
                    let named = rustix::fs::renameat_with(
                        d,
                        c.name.as_str(),
                        d,
                        c.last.as_str(),
                        RenameFlags::NOREPLACE,
                    );
                    if named.is_err() {
                        left.push(in_dir(&c.parent, &c.name));
                    }
                }
                Err(Errno::NOTEMPTY | Errno::EXIST) => {}
                Err(_) => left.push(self.display_path(&c.target)),
            }
        }
        if undid {
            let _ = syncfs(&self.root.fd);
        }
        self.finished = true;
        left
    }
}
