//! The read-only half of placement: what already stands in the way of the targets, found
//! by the same no-follow walk as the writes, before anything is written.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How directories are opened to walk through them: `O_PATH` where it exists (Linux), a plain
/// read-only open elsewhere.
#[cfg(target_os = "linux")]
const WALK: OFlags = OFlags::PATH;
#[cfg(not(target_os = "linux"))]
const WALK: OFlags = OFlags::RDONLY;

use super::Placer;
use crate::archive::{Item, Kind};
use crate::{Error, Result};

/// Something already at (or in the way of) a target.
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
    /// A regular file holding exactly the bytes, mode and owner to be placed: nothing to do,
    /// and nothing in the way.
    InPlace,
    /// An append-only or immutable directory that vault would write into: what it writes
    /// there could not be renamed or removed again. Always refused.
    Unwritable,
    /// A folder on the way that could not be opened (the error number): always refused.
    CannotOpen(i32),
    /// A folder vault would write into that this user may not write into or search (the
    /// error number of the access check): always refused.
    CannotWrite(i32),
}

impl ConflictKind {
    /// Whether it stops the run: links and directories always, existing files without `force`.
    pub fn blocks(self, force: bool) -> bool {
        match self {
            ConflictKind::InPlace => false,
            ConflictKind::Exists => !force,
            ConflictKind::NotADirectory
            | ConflictKind::IsADirectory
            | ConflictKind::Unwritable
            | ConflictKind::CannotOpen(_)
            | ConflictKind::CannotWrite(_) => true,
        }
    }

    pub fn describe(self) -> String {
        match self {
            ConflictKind::Exists => "exists".into(),
            ConflictKind::NotADirectory => "is a link or not a directory (never followed)".into(),
            ConflictKind::IsADirectory => "is a directory where a file goes".into(),
            ConflictKind::InPlace => "is already in place".into(),
            ConflictKind::Unwritable => {
                "is append-only or immutable (`chattr -a -i` it first): vault could not remove what it writes there".into()
            }
            ConflictKind::CannotOpen(errno) => format!(
                "could not be opened ({})",
                std::io::Error::from_raw_os_error(errno)
            ),
            ConflictKind::CannotWrite(errno) => format!(
                "cannot be written into by this user ({})",
                std::io::Error::from_raw_os_error(errno)
            ),
        }
    }
}

/// The conflicts found so far, each path once.
#[derive(Default)]
pub(super) struct Found {
    out: Vec<Conflict>,
    seen: HashSet<PathBuf>,
}

impl Found {
    fn push(&mut self, c: Conflict) {
        if self.seen.insert(c.path.clone()) {
            self.out.push(c);
        }
    }
}

/// Where the walk to a parent directory ended.
pub(super) struct Walk {
    /// The deepest folder on the way that exists, and its path.
    pub(super) dir: OwnedFd,
    pub(super) deepest: String,
    /// Whether a folder below `deepest` is missing (vault creates it; nothing below exists).
    missing: bool,
    /// Why vault could not write into `dir`, if it could not (asked once, when needed).
    unwritable: Option<Option<ConflictKind>>,
}

impl Placer {
    /// Without writing anything: what stands at or in the way of placing these items. A path
    /// in the way of several targets is listed once. Each parent directory is walked once.
    pub fn check<'a>(&self, items: impl IntoIterator<Item = &'a Item>) -> Vec<Conflict> {
        let mut found = Found::default();
        // Parent path → its walk (`None`: something in the way, already reported).
        let mut walks: HashMap<String, Option<Walk>> = HashMap::new();
        for item in items {
            let target = item.target.as_str();
            let is_dir = item.kind == Kind::Dir;
            let (parent, last) = super::split(target);
            let walk = walks
                .entry(parent.to_owned())
                .or_insert_with(|| self.walk(parent, &mut found));
            let Some(w) = walk else {
                continue;
            };
            // Whether vault creates an entry in the folder for this target (anything but a
            // directory that exists or a file already in place).
            let mut creates = true;
            if !w.missing {
                // Where a dry run's sweep would put an original back, judge the original.
                let name = self.would_restore.get(target).map_or(last, String::as_str);
                if let Ok(st) = rustix::fs::statat(&w.dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                    let ft = FileType::from_raw_mode(st.st_mode);
                    let what = match (is_dir, ft) {
                        (true, FileType::Directory) => None,
                        (true, _) => Some(ConflictKind::NotADirectory),
                        (false, FileType::Directory) => Some(ConflictKind::IsADirectory),
                        (false, FileType::RegularFile) if self.holds(&w.dir, name, &st, item) => {
                            Some(ConflictKind::InPlace)
                        }
                        (false, _) => Some(ConflictKind::Exists),
                    };
                    creates = matches!(what, Some(ConflictKind::Exists));
                    if let Some(what) = what {
                        found.push(Conflict {
                            path: self.display_path(target),
                            what,
                        });
                    }
                }
            }
            if let Some(what) = creates
                .then(|| *w.unwritable.get_or_insert_with(|| why_unwritable(&w.dir)))
                .flatten()
            {
                found.push(Conflict {
                    path: self.display_path(&w.deepest),
                    what,
                });
            }
        }
        found.out
    }

    /// Walks to `parent` without following links or creating anything: the deepest folder
    /// that exists, or `None` when a link or a non-directory is in the way (reported).
    pub(super) fn walk(&self, parent: &str, found: &mut Found) -> Option<Walk> {
        let mut dir = match rustix::io::dup(&self.root.fd) {
            Ok(d) => d,
            Err(e) => {
                found.push(Conflict {
                    path: self.display_path(""),
                    what: ConflictKind::CannotOpen(e.raw_os_error()),
                });
                return None;
            }
        };
        let mut walked = String::new();
        let mut deepest = String::new();
        let mut missing = false;
        for c in parent.split('/').filter(|c| !c.is_empty()) {
            walked.push('/');
            walked.push_str(c);
            match rustix::fs::openat(
                &dir,
                c,
                OFlags::DIRECTORY | OFlags::NOFOLLOW | WALK | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => {
                    dir = fd;
                    deepest.clone_from(&walked);
                }
                Err(Errno::NOENT) => {
                    missing = true;
                    break;
                }
                Err(e) => {
                    let (what, at) = match e {
                        Errno::LOOP | Errno::NOTDIR => (ConflictKind::NotADirectory, walked),
                        // The folder that may not be searched is the one this walk is in.
                        Errno::ACCESS | Errno::PERM => {
                            (ConflictKind::CannotOpen(e.raw_os_error()), deepest)
                        }
                        // Not what stands there: that it could not be looked at (EIO, EMFILE,
                        // a name too long).
                        e => (ConflictKind::CannotOpen(e.raw_os_error()), walked),
                    };
                    found.push(Conflict {
                        path: self.display_path(&at),
                        what,
                    });
                    return None;
                }
            }
        }
        Some(Walk {
            dir,
            deepest,
            missing,
            unwritable: None,
        })
    }

    /// Whether the regular file `name` in `dir` holds exactly what `item` places: its mode,
    /// its owner (the bundle's when vault sets owners, the caller's otherwise), its size and
    /// its SHA-256 (the manifest's, which the walk checks every payload byte against before
    /// anything is committed), compared in constant time, read without following a link.
    pub(super) fn holds(
        &self,
        dir: &OwnedFd,
        name: &str,
        st: &rustix::fs::Stat,
        item: &Item,
    ) -> bool {
        let (uid, gid) = if self.opts.chown {
            (item.uid, item.gid)
        } else {
            (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            )
        };
        let Some(want) = item.sha256.as_deref().and_then(|h| hex::decode(h).ok()) else {
            return false;
        };
        if st.st_mode & 0o7777 != item.mode
            || st.st_uid != uid
            || st.st_gid != gid
            || st.st_size as u64 != item.size
        {
            return false;
        }
        let Ok(fd) = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return false;
        };
        let Ok((size, digest)) = sha256_of(&mut std::fs::File::from(fd)) else {
            return false;
        };
        size == item.size && bool::from(digest.ct_eq(&want))
    }
}

/// Why vault could not create entries in `dir`: append-only or immutable, or not writable
/// and searchable by this process (without root: its mode or owner; with root: a
/// root-squashed NFS, a read-only mount), judged as the real run would meet it.
fn why_unwritable(dir: &OwnedFd) -> Option<ConflictKind> {
    if unwritable(dir) {
        return Some(ConflictKind::Unwritable);
    }
    let access = rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK;
    match rustix::fs::accessat(dir, ".", access, AtFlags::EACCESS) {
        Err(e @ (Errno::ACCESS | Errno::PERM | Errno::ROFS)) => {
            Some(ConflictKind::CannotWrite(e.raw_os_error()))
        }
        _ => None,
    }
}

/// Whether `dir` is append-only or immutable (`chattr +a`, `+i`), as far as its file system
/// reports such attributes.
#[cfg(target_os = "linux")]
fn unwritable(dir: &OwnedFd) -> bool {
    use rustix::fs::{statx, StatxAttributes, StatxFlags};
    statx(dir, "", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS).is_ok_and(|s| {
        (s.stx_attributes & s.stx_attributes_mask)
            .intersects(StatxAttributes::APPEND | StatxAttributes::IMMUTABLE)
    })
}

#[cfg(not(target_os = "linux"))]
fn unwritable(_: &OwnedFd) -> bool {
    false
}

/// The length and SHA-256 of everything `input` yields, read through a buffer that is wiped
/// afterwards (the file may hold a key); a read interrupted by a signal is read again.
pub(super) fn sha256_of(input: &mut impl Read) -> std::io::Result<(u64, [u8; 32])> {
    let mut h = Sha256::new();
    let mut buf = zeroize::Zeroizing::new(vec![0u8; 64 * 1024]);
    let mut size = 0u64;
    loop {
        match input.read(&mut buf) {
            Ok(0) => return Ok((size, h.finalize().into())),
            Ok(n) => {
                h.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Refuses when something is in the way: links and directories always, existing files
/// without `force`. Nothing has been written when this is called. `vault place` refuses the
/// same way.
pub fn refuse_conflicts(conflicts: &[Conflict], force: bool) -> Result<()> {
    refuse_conflicts_with(
        conflicts,
        force,
        "add --force to replace them (the old files are removed, no copy is kept)",
        "remove or fix those paths in the target, then run the same command again".into(),
    )
}

/// The refusal for `conflicts` that block (links always, existing files without `--force`),
/// with the hint for each case: `force_hint` when only existing files are in the way.
pub fn refuse_conflicts_with(
    conflicts: &[Conflict],
    force: bool,
    force_hint: &str,
    fix_hint: String,
) -> Result<()> {
    let blocking: Vec<&Conflict> = conflicts.iter().filter(|c| c.what.blocks(force)).collect();
    if blocking.is_empty() {
        return Ok(());
    }
    let only_existing = blocking.iter().all(|c| c.what == ConflictKind::Exists);
    let list: String = blocking
        .iter()
        .map(|c| {
            let path = crate::escape::escape_path(&c.path);
            format!("\n  {path} {}", c.what.describe())
        })
        .collect();
    Err(Error::Refused {
        why: format!("nothing was written; in the way:{list}"),
        hint: Some(if only_existing {
            force_hint.into()
        } else {
            fix_hint
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{item, opts};
    use super::*;

    /// A folder on the way that cannot be opened for another reason than a link or a file in
    /// the way (here a name longer than the file system allows; on a root-squashed NFS, EACCES;
    /// out of descriptors, EMFILE) is reported with the system's reason, not as a link.
    #[test]
    fn a_folder_that_cannot_be_opened_is_not_called_a_link() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("srv")).unwrap();
        let p = Placer::new(t.path(), opts()).unwrap();
        let long = "n".repeat(300);
        let found = p.check([&item(&format!("/srv/{long}/key"), b"k", 0o600)]);
        let kinds: Vec<_> = found.iter().map(|c| c.what).collect();
        assert_eq!(kinds, vec![ConflictKind::CannotOpen(36)]);
        assert!(found[0].what.describe().contains("File name too long"));
        assert!(found[0].what.blocks(true));
    }

    /// A path in the list of what is in the way is escaped like every path vault prints: a
    /// newline in it (the target root's own name, here) cannot start a line of its own.
    #[test]
    fn paths_in_the_way_are_escaped() {
        let c = Conflict {
            path: "/mnt\nerror: forged/etc".into(),
            what: ConflictKind::NotADirectory,
        };
        let e = refuse_conflicts(&[c], false).unwrap_err().to_string();
        assert!(e.contains("/mnt\\nerror: forged/etc is a link"), "{e}");
        assert!(!e.contains("\nerror: forged"), "{e}");
    }
}
