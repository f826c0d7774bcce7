//! The read-only half of placement: what already stands in the way of the targets, found
//! by the same no-follow walk as the writes, before anything is written.

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
}

impl ConflictKind {
    /// Whether it stops the run: links and directories always, existing files without `force`.
    pub fn blocks(self, force: bool) -> bool {
        match self {
            ConflictKind::InPlace => false,
            ConflictKind::Exists => !force,
            ConflictKind::NotADirectory | ConflictKind::IsADirectory => true,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            ConflictKind::Exists => "exists",
            ConflictKind::NotADirectory => "is a link or not a directory (never followed)",
            ConflictKind::IsADirectory => "is a directory where a file goes",
            ConflictKind::InPlace => "is already in place",
        }
    }
}

impl Placer {
    /// Without writing anything: what stands at or in the way of placing these items. A path
    /// in the way of several targets is listed once.
    pub fn check<'a>(&self, items: impl IntoIterator<Item = &'a Item>) -> Vec<Conflict> {
        let mut out: Vec<Conflict> = Vec::new();
        let mut push = |c: Conflict| {
            if !out.iter().any(|o| o.path == c.path) {
                out.push(c);
            }
        };
        for item in items {
            let target = item.target.as_str();
            let is_dir = item.kind == Kind::Dir;
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
                        push(Conflict {
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
            if let Ok(st) = rustix::fs::statat(&dir, last, AtFlags::SYMLINK_NOFOLLOW) {
                let ft = FileType::from_raw_mode(st.st_mode);
                let what = match (is_dir, ft) {
                    (true, FileType::Directory) => continue,
                    (true, _) => ConflictKind::NotADirectory,
                    (false, FileType::Directory) => ConflictKind::IsADirectory,
                    (false, FileType::RegularFile) if self.holds(&dir, last, &st, item) => {
                        ConflictKind::InPlace
                    }
                    (false, _) => ConflictKind::Exists,
                };
                push(Conflict {
                    path: self.display_path(target),
                    what,
                });
            }
        }
        out
    }

    /// Whether the regular file `name` in `dir` holds exactly what `item` places: its mode,
    /// its owner (the bundle's when vault sets owners, the caller's otherwise), its size and
    /// its SHA-256 (the manifest's, which the walk checks every payload byte against before
    /// anything is committed), compared in constant time, read without following a link.
    fn holds(&self, dir: &OwnedFd, name: &str, st: &rustix::fs::Stat, item: &Item) -> bool {
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

impl Placer {
    /// Finds the temporaries that an earlier run killed outright (SIGKILL, power loss) left
    /// in the parent directories of `files` (vault's own name pattern, writer no longer
    /// running), and removes them unless `dry_run`. Returns their paths.
    pub fn sweep_stale<'a>(
        &self,
        files: impl IntoIterator<Item = &'a str>,
        dry_run: bool,
    ) -> Vec<PathBuf> {
        let parents: std::collections::BTreeSet<&str> =
            files.into_iter().map(|f| super::split(f).0).collect();
        let mut out = Vec::new();
        for parent in parents {
            let Ok((dir, _)) = self.parent_no_create(&format!("{parent}/x")) else {
                continue;
            };
            let Ok(listing) = rustix::fs::Dir::read_from(&dir) else {
                continue;
            };
            let names: Vec<String> = listing
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().ok().map(str::to_owned))
                .filter(|n| crate::interrupt::is_stale_temp(n, ""))
                .collect();
            for name in names {
                let regular = rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile);
                if regular
                    && (dry_run
                        || rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty()).is_ok())
                {
                    out.push(self.display_path(&format!("{parent}/{name}")));
                }
            }
        }
        out
    }
}
