//! What a run killed outright (SIGKILL, power loss) left beside the targets, found and
//! undone by the next run that places into the same directories, before it checks or writes
//! anything: its temporaries are removed (they hold decrypted secrets), and the originals it
//! had displaced with `--force` are put back (they are the user's) where that replaces only
//! what the dead run put there; otherwise they are kept and named. Which leftovers are a dead
//! run's is [`crate::stale`]'s decision (a lock, not the process id).

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rustix::fs::{AtFlags, FileType, Stat};
use rustix::io::Errno;
use serde::Serialize;

use super::{split, Placer};
use crate::archive::Item;
use crate::escape::escape_path;
use crate::stale::Leftover;

/// One leftover of a dead run, and what was (or, in a dry run, would be) done with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Swept {
    /// The leftover's path.
    pub path: PathBuf,
    pub what: SweptKind,
}

/// A dead run's temporary folder a sweep could not remove, and why (with what to do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotSwept {
    #[serde(serialize_with = "crate::escape::json::serialize_path")]
    pub path: PathBuf,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SweptKind {
    /// A temporary, removed.
    Removed,
    /// A displaced original, put back at this path (replacing what the dead run had put
    /// there).
    Restored(PathBuf),
    /// A temporary folder that could not be removed (whole): why, and what to do.
    NotRemoved(String),
}

impl Placer {
    /// Sweeps the parent directories of the file items `files` (never following a link). A
    /// displaced original is put back only where that loses nothing: its target is missing, or
    /// holds exactly the item of `files` it is a target of (what a dead run of this placement
    /// put there). Otherwise it is kept, and named on stderr: the file at the target is not
    /// one vault can account for. In a dry run nothing changes, and the check of this placer
    /// then judges each target the sweep would restore by its original.
    pub fn sweep_stale<'a>(
        &mut self,
        files: impl IntoIterator<Item = &'a Item>,
        dry_run: bool,
    ) -> Vec<Swept> {
        let mut parents: BTreeMap<&str, Vec<&Item>> = BTreeMap::new();
        for item in files {
            parents.entry(split(&item.target).0).or_default().push(item);
        }
        let mut out = self.sweep_stale_dirs(parents.keys().copied(), dry_run);
        for (parent, items) in parents {
            let Ok((dir, _)) = self.parent_no_create(&format!("{parent}/x")) else {
                continue;
            };
            let Ok(listing) = rustix::fs::Dir::read_from(&dir) else {
                continue;
            };
            let found: Vec<(String, Leftover)> = listing
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().ok().map(str::to_owned))
                .filter_map(|n| crate::stale::dead_writers(&dir, &n, "").map(|l| (n, l)))
                .collect();
            for (name, kind) in found {
                let Ok(st) = rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                else {
                    continue;
                };
                let ft = FileType::from_raw_mode(st.st_mode);
                let remove = || {
                    dry_run || rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty()).is_ok()
                };
                let target = match kind {
                    Leftover::Temp if ft == FileType::RegularFile => {
                        if remove() {
                            out.push(Swept {
                                path: self.display_path(&format!("{parent}/{name}")),
                                what: SweptKind::Removed,
                            });
                        }
                        continue;
                    }
                    Leftover::Temp => continue,
                    _ if ft == FileType::Directory => continue,
                    Leftover::Displaced { target } => Some(target),
                    Leftover::DisplacedLong { digest } => items
                        .iter()
                        .map(|i| split(&i.target).1)
                        .find(|t| crate::stale::name_digest(t) == digest)
                        .map(str::to_owned),
                };
                let item = target
                    .as_deref()
                    .and_then(|t| items.iter().find(|i| split(&i.target).1 == t));
                let what = match &target {
                    Some(t) => self.put_back(&dir, &st, t, item),
                    None => Restore::Keep,
                };
                let what = match what {
                    Restore::Unlink => remove().then_some(SweptKind::Removed),
                    Restore::Rename => {
                        let target = target.unwrap_or_default();
                        let full = self.display_path(&format!("{parent}/{target}"));
                        if dry_run {
                            self.would_restore
                                .insert(format!("{parent}/{target}"), name.clone());
                            Some(SweptKind::Restored(full))
                        } else {
                            rustix::fs::renameat(&dir, name.as_str(), &dir, target.as_str())
                                .is_ok()
                                .then_some(SweptKind::Restored(full))
                        }
                    }
                    Restore::Keep => {
                        let kept = self.display_path(&format!("{parent}/{name}"));
                        let whence = match &target {
                            Some(t) => format!(
                                "{}, which now holds a file this run does not place there",
                                escape_path(&self.display_path(&format!("{parent}/{t}")))
                            ),
                            None => format!(
                                "a file in {} this run does not place",
                                escape_path(&self.display_path(parent))
                            ),
                        };
                        eprintln!(
                            "warning: kept {}: the original an interrupted earlier run with --force displaced from {whence}; compare the two and remove the one you do not want",
                            escape_path(&kept)
                        );
                        None
                    }
                };
                if let Some(what) = what {
                    out.push(Swept {
                        path: self.display_path(&format!("{parent}/{name}")),
                        what,
                    });
                }
            }
        }
        if !dry_run && !out.is_empty() {
            let _ = super::syncfs(&self.root.fd);
        }
        out
    }

    /// Removes the folders a dead run created under a temporary name (see
    /// [`Placer::make_dir`]) with everything in them, looking in every folder on the way to
    /// `parents` that exists: such a folder sits where the dead run found the first one
    /// missing.
    fn sweep_stale_dirs<'a>(
        &self,
        parents: impl Iterator<Item = &'a str>,
        dry_run: bool,
    ) -> Vec<Swept> {
        let mut ancestors = std::collections::BTreeSet::new();
        for parent in parents {
            let mut at = parent;
            loop {
                if !ancestors.insert(at) {
                    break;
                }
                match at.rfind('/') {
                    Some(i) => at = &at[..i],
                    None => break,
                }
            }
        }
        let mut out = Vec::new();
        for at in ancestors {
            let Ok((dir, _)) = self.parent_no_create(&format!("{at}/x")) else {
                continue;
            };
            let Ok(listing) = rustix::fs::Dir::read_from(&dir) else {
                continue;
            };
            let dead: Vec<String> = listing
                .filter_map(|e| e.ok())
                .filter(|e| matches!(e.file_type(), FileType::Directory | FileType::Unknown))
                .filter_map(|e| e.file_name().to_str().ok().map(str::to_owned))
                .filter(|n| {
                    rustix::fs::statat(&dir, n.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
                })
                .filter(|n| crate::stale::dead_writers(&dir, n, "") == Some(Leftover::Temp))
                .collect();
            for name in dead {
                let left = if dry_run {
                    Vec::new()
                } else {
                    super::tree::remove_tree(&dir, &name)
                };
                let what = match left.as_slice() {
                    [] => SweptKind::Removed,
                    [first, ..] => {
                        let parent = self.display_path(at);
                        let why = first.describe_in(&parent);
                        SweptKind::NotRemoved(match left.len() - 1 {
                            0 => why,
                            n => format!("{why} (and {n} more)"),
                        })
                    }
                };
                out.push(Swept {
                    path: self.display_path(&format!("{at}/{name}")),
                    what,
                });
            }
        }
        out
    }

    /// What to do with a displaced original (`st`) of `target` in `dir`, whose item in this
    /// placement is `item`.
    fn put_back(&self, dir: &OwnedFd, st: &Stat, target: &str, item: Option<&&Item>) -> Restore {
        match rustix::fs::statat(dir, target, AtFlags::SYMLINK_NOFOLLOW) {
            // A second name of the file still in place: the dead run had not replaced it yet.
            Ok(at) if super::file_id(&at) == super::file_id(st) => Restore::Unlink,
            // What the dead run put there: the item it was placing.
            Ok(at)
                if FileType::from_raw_mode(at.st_mode) == FileType::RegularFile
                    && item.is_some_and(|i| self.holds(dir, target, &at, i)) =>
            {
                Restore::Rename
            }
            Ok(_) => Restore::Keep,
            // Nothing there: putting it back loses nothing.
            Err(Errno::NOENT) => Restore::Rename,
            Err(_) => Restore::Keep,
        }
    }
}

/// What becomes of a displaced original.
enum Restore {
    /// Another name of the file at the target: this one goes.
    Unlink,
    /// Put back at the target.
    Rename,
    /// Left as it is, and named.
    Keep,
}
