//! Removing a dead run's temporary folder with everything in it (see [`super::sweep`]),
//! without ever leaving the file system it is on: whatever is mounted inside it (a bind
//! mount, a tmpfs, a disk) is another file system's, never the dead run's, and is left
//! untouched, mount point included.

use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;

/// Deepest folder [`remove_tree`] descends into: deeper than any bundle's targets go.
const MAX_TREE_DEPTH: usize = 256;

/// What [`remove_tree`] left, by path relative to the folder `dir` it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Left {
    /// Another file system is mounted here: not entered, not removed.
    MountPoint(String),
    /// Could not be removed.
    Failed(String, Errno),
}

impl Left {
    /// Why the removal stopped, and what to do, for a message; `parent` is where the paths
    /// start.
    pub fn describe_in(&self, parent: &std::path::Path) -> String {
        let full = |p: &str| crate::escape::escape_path(&parent.join(p));
        match self {
            Left::MountPoint(p) => format!(
                "a file system is mounted at {} (a mount point, left untouched): unmount it, then remove the folder",
                full(p)
            ),
            Left::Failed(p, e) => {
                format!("cannot remove {}: {}", full(p), std::io::Error::from(*e))
            }
        }
    }
}

/// Which file system and which mount a folder is on: `(st_dev, mount id)`. A bind mount of
/// a folder of the same file system has the same `st_dev` but its own mount id (Linux 5.8
/// and later; without it, `st_dev` alone decides).
#[cfg(target_os = "linux")]
fn mount_of(fd: &OwnedFd) -> rustix::io::Result<(u64, Option<u64>)> {
    use rustix::fs::{statx, StatxAttributes, StatxFlags};
    let st = statx(
        fd,
        "",
        AtFlags::EMPTY_PATH,
        StatxFlags::BASIC_STATS | StatxFlags::MNT_ID,
    )?;
    let dev = (u64::from(st.stx_dev_major) << 32) | u64::from(st.stx_dev_minor);
    let id = StatxFlags::from_bits_retain(st.stx_mask)
        .contains(StatxFlags::MNT_ID)
        .then_some(st.stx_mnt_id);
    // The root of a mount is one even where the mount id is not reported.
    let root = (st.stx_attributes & st.stx_attributes_mask).contains(StatxAttributes::MOUNT_ROOT);
    Ok((dev, if root { Some(u64::MAX) } else { id }))
}

#[cfg(not(target_os = "linux"))]
#[allow(clippy::unnecessary_cast)]
fn mount_of(fd: &OwnedFd) -> rustix::io::Result<(u64, Option<u64>)> {
    rustix::fs::fstat(fd).map(|st| (st.st_dev as u64, None))
}

/// Removes folder `name` in `dir` and everything in it, never following a link (a link is
/// removed as a link, and a folder is entered only by an `O_NOFOLLOW` open from its parent)
/// and never entering a folder on another mount than `dir` (checked before it is read).
/// Returns what is left: empty when `name` is gone.
pub fn remove_tree(dir: &OwnedFd, name: &str) -> Vec<Left> {
    let mut left = Vec::new();
    match mount_of(dir) {
        Ok(on) => remove_in(dir, name, name, on, 0, &mut left),
        Err(e) => left.push(Left::Failed(name.to_owned(), e)),
    }
    left
}

fn remove_in(
    dir: &OwnedFd,
    name: &str,
    shown: &str,
    on: (u64, Option<u64>),
    depth: usize,
    left: &mut Vec<Left>,
) {
    if depth > MAX_TREE_DEPTH {
        return left.push(Left::Failed(shown.to_owned(), Errno::LOOP));
    }
    let sub = match super::open_dir(dir, name) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return,
        Err(e) => return left.push(Left::Failed(shown.to_owned(), e)),
    };
    match mount_of(&sub) {
        Ok(here) if here == on => {}
        Ok(_) => return left.push(Left::MountPoint(shown.to_owned())),
        Err(e) => return left.push(Left::Failed(shown.to_owned(), e)),
    }
    let names: Vec<(String, bool)> = match rustix::fs::Dir::read_from(&sub) {
        Ok(listing) => listing
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let is_dir = e.file_type() == FileType::Directory;
                e.file_name()
                    .to_str()
                    .ok()
                    .filter(|n| *n != "." && *n != "..")
                    .map(|n| (n.to_owned(), is_dir))
            })
            .collect(),
        Err(e) => return left.push(Left::Failed(shown.to_owned(), e)),
    };
    let before = left.len();
    for (n, is_dir) in names {
        let inner = format!("{shown}/{n}");
        if is_dir {
            remove_in(&sub, &n, &inner, on, depth + 1, left);
            continue;
        }
        match rustix::fs::unlinkat(&sub, n.as_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            // A folder after all (a file system that reports no types): go in.
            Err(Errno::ISDIR) => remove_in(&sub, &n, &inner, on, depth + 1, left),
            Err(e) => left.push(Left::Failed(inner, e)),
        }
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => {}
        // What is left inside is named already.
        Err(Errno::NOTEMPTY | Errno::EXIST) if left.len() > before => {}
        Err(e) => left.push(Left::Failed(shown.to_owned(), e)),
    }
}
