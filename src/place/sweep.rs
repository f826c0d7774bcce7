//! What a run killed outright (SIGKILL, power loss) left beside the targets, found and
//! undone by the next run that places into the same directories, before it checks or writes
//! anything: its temporaries are removed (they hold decrypted secrets), and the originals it
//! had displaced with `--force` are put back (they are the user's). Which leftovers are a dead
//! run's is [`crate::stale`]'s decision (a lock, not the process id).

use std::collections::BTreeSet;
use std::path::PathBuf;

use rustix::fs::{AtFlags, FileType};
use serde::Serialize;

use super::{split, Placer};
use crate::stale::Leftover;

/// One leftover of a dead run, and what was (or, in a dry run, would be) done with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Swept {
    /// The leftover's path.
    pub path: PathBuf,
    pub what: SweptKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SweptKind {
    /// A temporary, removed.
    Removed,
    /// A displaced original, put back at this path (replacing what the dead run had put
    /// there).
    Restored(PathBuf),
}

impl Placer {
    /// Sweeps the parent directories of `files` (never following a link). In a dry run nothing
    /// changes, and the check of this placer then judges each target the sweep would restore
    /// by its original.
    pub fn sweep_stale<'a>(
        &mut self,
        files: impl IntoIterator<Item = &'a str>,
        dry_run: bool,
    ) -> Vec<Swept> {
        let parents: BTreeSet<&str> = files.into_iter().map(|f| split(f).0).collect();
        let mut out = Vec::new();
        for parent in parents {
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
                let what = match kind {
                    Leftover::Temp if ft == FileType::RegularFile => {
                        remove().then_some(SweptKind::Removed)
                    }
                    Leftover::Displaced { target } if ft != FileType::Directory => {
                        let at =
                            rustix::fs::statat(&dir, target.as_str(), AtFlags::SYMLINK_NOFOLLOW);
                        let full = self.display_path(&format!("{parent}/{target}"));
                        if at.is_ok_and(|t| super::file_id(&t) == super::file_id(&st)) {
                            // A second name of the file still in place: the dead run had not
                            // replaced it yet.
                            remove().then_some(SweptKind::Removed)
                        } else if dry_run {
                            self.would_restore
                                .insert(format!("{parent}/{target}"), name.clone());
                            Some(SweptKind::Restored(full))
                        } else {
                            rustix::fs::renameat(&dir, name.as_str(), &dir, target.as_str())
                                .is_ok()
                                .then_some(SweptKind::Restored(full))
                        }
                    }
                    _ => None,
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
}
