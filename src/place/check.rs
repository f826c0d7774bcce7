//! The read-only half of placement: what already stands in the way of the targets, found
//! by the same no-follow walk as the writes, before anything is written.

use std::path::PathBuf;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// How directories are opened to walk through them: `O_PATH` where it exists (Linux), a plain
/// read-only open elsewhere.
#[cfg(target_os = "linux")]
const WALK: OFlags = OFlags::PATH;
#[cfg(not(target_os = "linux"))]
const WALK: OFlags = OFlags::RDONLY;

use super::Placer;

/// Something already in the way of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub path: PathBuf,
    pub what: ConflictKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// A file exists where a file goes: replaced with `--force`.
    Exists,
    /// A link, or a non-directory, where a directory must be walked through: always refused.
    NotADirectory,
    /// A directory where a file goes: always refused.
    IsADirectory,
}

impl Placer {
    /// Without writing anything: what stands in the way of placing these targets.
    /// `dirs` are directory targets, `files` file targets.
    pub fn check<'a>(
        &self,
        dirs: impl IntoIterator<Item = &'a str>,
        files: impl IntoIterator<Item = &'a str>,
    ) -> Vec<Conflict> {
        let mut out = Vec::new();
        for (target, is_dir) in dirs
            .into_iter()
            .map(|d| (d, true))
            .chain(files.into_iter().map(|f| (f, false)))
        {
            let mut dir = match rustix::io::dup(&self.root) {
                Ok(fd) => fd,
                Err(_) => continue,
            };
            let comps: Vec<&str> = target.trim_start_matches('/').split('/').collect();
            let mut walked = String::new();
            let mut blocked = false;
            for c in &comps[..comps.len() - 1] {
                walked.push('/');
                walked.push_str(c);
                match rustix::fs::openat(
                    &dir,
                    *c,
                    OFlags::DIRECTORY | OFlags::NOFOLLOW | WALK | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => dir = fd,
                    Err(Errno::NOENT) => {
                        blocked = true; // will be created: nothing below can exist
                        break;
                    }
                    Err(_) => {
                        out.push(Conflict {
                            path: self.display_path(&walked),
                            what: ConflictKind::NotADirectory,
                        });
                        blocked = true;
                        break;
                    }
                }
            }
            if blocked {
                continue;
            }
            let last = comps[comps.len() - 1];
            match rustix::fs::statat(&dir, last, AtFlags::SYMLINK_NOFOLLOW) {
                Err(_) => {}
                Ok(st) => {
                    let ft = FileType::from_raw_mode(st.st_mode);
                    let what = match (is_dir, ft) {
                        (true, FileType::Directory) => continue,
                        (true, _) => ConflictKind::NotADirectory,
                        (false, FileType::Directory) => ConflictKind::IsADirectory,
                        (false, _) => ConflictKind::Exists,
                    };
                    out.push(Conflict {
                        path: self.display_path(target),
                        what,
                    });
                }
            }
        }
        out
    }
}
