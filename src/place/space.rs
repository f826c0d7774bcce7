//! Whether the target file systems have room for a placement, decided before anything is
//! written and by the same code in a dry run: a run that would fail for want of space part
//! way is refused up front instead (exit 6), and the dry run says so too.
//!
//! What a placement needs on each file system: every file it writes rounded up to the file
//! system's block size, one block per folder it creates, and one inode for each of those.
//! File systems also spend blocks on their own bookkeeping (directory and extent blocks, the
//! journal), so this is a lower bound: a target that passes may still fill up, and then the
//! run rolls back (exit 7).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use super::check::{Conflict, ConflictKind};
use super::Placer;
use crate::archive::{Item, Kind};
use crate::{Error, Result};

/// What the placement needs on one file system, and what it has.
struct Need {
    /// The shallowest folder of the target trees seen on it, for the message.
    shown: PathBuf,
    block: u64,
    blocks: u64,
    inodes: u64,
    free_blocks: u64,
    /// `None` where the file system has no inode limit (it reports no inodes at all).
    free_inodes: Option<u64>,
}

/// What a placement needs on each file system, summed over its placers (the disk-stage and
/// the root-stage targets may share one).
#[derive(Default)]
pub struct Room {
    by_fs: BTreeMap<u64, Need>,
    /// Folders counted as created, by where they land.
    new_dirs: HashSet<PathBuf>,
}

impl Room {
    /// Refuses (exit 6) when a file system has fewer free blocks or inodes than counted.
    pub fn check(&self) -> Result<()> {
        let short: Vec<String> = self
            .by_fs
            .values()
            .filter(|n| {
                n.blocks > n.free_blocks || n.free_inodes.is_some_and(|free| n.inodes > free)
            })
            .map(|n| {
                format!(
                    "not enough free space on the file system of {}: the placement needs {} KiB and {} inode(s), {} KiB{} free",
                    crate::escape::escape_path(&n.shown),
                    (n.blocks * n.block).div_ceil(1024),
                    n.inodes,
                    n.free_blocks * n.block / 1024,
                    n.free_inodes.map_or(String::new(), |i| format!(" and {i} inode(s)")),
                )
            })
            .collect();
        if short.is_empty() {
            return Ok(());
        }
        Err(Error::Refused {
            why: format!("nothing was written; {}", short.join("; ")),
            hint: Some(
                "free space there (remove files, or make the partition larger), then run the same command again"
                    .into(),
            ),
        })
    }
}

impl Placer {
    /// Counts in `room` what placing `items` takes; `conflicts` is what [`Placer::check`]
    /// found for them (files already in place need nothing). Each target counts on the file
    /// system of its deepest existing folder (another file system may be mounted under the
    /// root).
    pub fn count_room<'a>(
        &self,
        room: &mut Room,
        items: impl IntoIterator<Item = &'a Item>,
        conflicts: &[Conflict],
    ) {
        let in_place: HashSet<_> = conflicts
            .iter()
            .filter(|c| c.what == ConflictKind::InPlace)
            .map(|c| c.path.clone())
            .collect();
        for item in items {
            let target = item.target.as_str();
            if item.kind == Kind::File && in_place.contains(&self.display_path(target)) {
                continue;
            }
            // The folder the item needs: its parent, or a folder item itself.
            let mut at = match item.kind {
                Kind::Dir => target,
                _ => super::split(target).0,
            };
            let Some((fs, deepest)) = self.fs_of(at, &mut room.by_fs) else {
                continue;
            };
            let Some(need) = room.by_fs.get_mut(&fs) else {
                continue;
            };
            // Folders missing between the deepest existing one and that one.
            while at.len() > deepest.len() {
                if room.new_dirs.insert(self.display_path(at)) {
                    need.blocks += 1;
                    need.inodes += 1;
                }
                at = super::split(at).0;
            }
            if item.kind == Kind::File {
                need.blocks += item.size.div_ceil(need.block);
                need.inodes += 1;
            }
        }
    }

    /// The file system of the deepest existing folder on the way to folder `path` (its
    /// `st_dev`, its entry in `by_fs` made on first sight) and that folder's path; `None` when
    /// a link or a non-directory is in the way (the check reports that).
    fn fs_of(&self, path: &str, by_fs: &mut BTreeMap<u64, Need>) -> Option<(u64, String)> {
        let mut ignored = Default::default();
        let walk = self.walk(path, &mut ignored)?;
        let st = rustix::fs::fstat(&walk.dir).ok()?;
        #[allow(clippy::unnecessary_cast)]
        let dev = st.st_dev as u64;
        if let Some(n) = by_fs.get_mut(&dev) {
            let shown = self.folder_path(&walk.deepest);
            if shown.as_os_str().len() < n.shown.as_os_str().len() {
                n.shown = shown;
            }
            return Some((dev, walk.deepest));
        }
        let vfs = rustix::fs::fstatvfs(&walk.dir).ok()?;
        // A file system that reports no size (a pseudo file system) is not judged.
        if vfs.f_blocks == 0 || vfs.f_frsize == 0 {
            return None;
        }
        by_fs.insert(
            dev,
            Need {
                shown: self.folder_path(&walk.deepest),
                block: vfs.f_frsize,
                blocks: 0,
                inodes: 0,
                free_blocks: vfs.f_bavail,
                free_inodes: (vfs.f_files > 0).then_some(vfs.f_favail),
            },
        );
        Some((dev, walk.deepest))
    }

    /// Where folder `path` is, for messages (the root without a trailing `/`).
    fn folder_path(&self, path: &str) -> PathBuf {
        match path {
            "" => self.root().to_path_buf(),
            p => self.display_path(p),
        }
    }
}
