//! Two-step installs with one passphrase entry: `vault unlock --stage disk` places the disk
//! entries (e.g. `/tmp/disko-password`) and keeps the host's authenticated root-stage
//! contents in a private RAM-backed staging area; after partitioning and mounting,
//! `vault place --root /mnt` places them from there without asking again and wipes the area.
//!
//! The area is a 0700 directory (default [`DEFAULT_DIR`]) that must be on ramfs or tmpfs
//! (checked with `statfs`): root secrets never touch a disk. When run as root on a directory
//! that is not yet a mount point, vault mounts a fresh ramfs there (never swapped, unlike
//! tmpfs). Layout:
//!
//! ```text
//! /run/vault/                           ramfs, 0700
//!   incoming.vault-PID-RUN-SEQ.tmp/     being written by `unlock --stage disk`; removed on failure
//!   staged/                             renamed from incoming only after the whole bundle verified
//!     manifest.json                     host, bundle name, the root-stage items (with SHA-256)
//!     <index>                           contents of item <index>, 0600
//!   wiping.vault-PID-RUN-SEQ.tmp/       `staged/` being wiped
//! ```
//!
//! `vault place` re-hashes every staged file against `manifest.json` before its commit.
//! Wiping first renames `staged/` away (one step: the area is either staged, complete, or not
//! at all), then overwrites each file with zeros before unlinking it (the pages of a ramfs
//! file are freed on unlink; zeroing first keeps them from being handed out with secrets in
//! them). The `incoming` and `wiping` folders carry [`crate::stale`]'s names: a run killed
//! while it wrote or wiped one leaves a folder the next `unlock --stage disk`, `place` or
//! `wipe` wipes.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::archive::write::HashingReader;
use crate::archive::{BundleManifest, Item, Kind, Limits, FORMAT};
use crate::manifest::Stage;
use crate::place::{with_leftovers, ConflictKind, NotSwept, PlaceOptions, Placer, SweptKind};
use crate::{Error, Result};

mod area;
pub use area::{as_root, check_ram_backed, check_usable, prepare, release, sweep_stale, wipe};
use area::{discard, io_err, libc_nofollow, wipe_tree};

/// Where `vault unlock --stage disk` keeps root-stage contents.
pub const DEFAULT_DIR: &str = "/run/vault";
/// `statfs` magic numbers (linux/magic.h) of the RAM-only filesystems accepted.
pub const TMPFS_MAGIC: u64 = 0x0102_1994;
pub const RAMFS_MAGIC: u64 = 0x8584_58f6;
const STAGED: &str = "staged";
const MANIFEST: &str = "manifest.json";
/// An honest staged manifest is a fraction of the bundle's; this bounds what `place` reads.
const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// What `staged/manifest.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagedManifest {
    pub format: u32,
    /// The bundle it came from, for messages.
    pub bundle: String,
    pub host: Option<String>,
    /// Root-stage items for `host`, in bundle order; file `i` of `items` is `staged/<i>`.
    pub items: Vec<Item>,
}

/// Receives root-stage contents during `vault unlock --stage disk`. Nothing is visible as
/// `staged/` until [`Stager::commit`]; dropping it uncommitted wipes what it wrote.
pub struct Stager {
    dir: PathBuf,
    /// The area, held open: its lock marks `incoming` as a live run's (see [`crate::stale`]).
    _held: std::os::fd::OwnedFd,
    incoming: PathBuf,
    bundle: String,
    host: Option<String>,
    items: Vec<Item>,
    committed: bool,
    /// A signal stops the copy with [`Error::Interrupted`]; dropping the stager wipes.
    _polled: crate::interrupt::Polled,
}

impl Stager {
    /// Starts staging into `dir` (already [`prepare`]d).
    pub fn new(dir: &Path, bundle: &Path) -> Result<Stager> {
        let held = area::hold(dir)?;
        let incoming = dir.join(crate::stale::temp_name(area::INCOMING));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&incoming)
            .map_err(|e| Error::io("cannot create", &incoming, e))?;
        Ok(Stager {
            dir: dir.to_path_buf(),
            _held: held,
            incoming,
            bundle: bundle.display().to_string(),
            host: None,
            items: Vec::new(),
            committed: false,
            _polled: crate::interrupt::Polled::enter(),
        })
    }

    /// Called with the chosen host once the manifest is known.
    pub fn set_host(&mut self, host: Option<String>) {
        self.host = host;
    }

    /// Whether `item` is one this stager keeps: the chosen host's root-stage items.
    pub fn wants(&self, item: &Item) -> bool {
        item.stage == Stage::Root
            && match &self.host {
                Some(h) => item.is_for(h),
                None => item.host.is_none(),
            }
    }

    pub fn dir(&mut self, item: &Item) -> Result<()> {
        self.items.push(item.clone());
        Ok(())
    }

    /// Copies a file item's contents into the area. The walker checks the hash afterwards;
    /// `place` checks it again against the staged manifest.
    pub fn file(&mut self, item: &Item, data: &mut dyn Read) -> Result<()> {
        let path = self.incoming.join(self.items.len().to_string());
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc_nofollow())
            .open(&path)
            .map_err(|e| Error::io("cannot create", &path, e))?;
        let mut buf = Zeroizing::new(vec![0u8; 64 * 1024]);
        loop {
            crate::interrupt::check()?;
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("cannot read bundle data for", &item.target, e)),
            };
            f.write_all(&buf[..n])
                .map_err(|e| Error::io("cannot write", &path, e))?;
        }
        self.items.push(item.clone());
        Ok(())
    }

    /// Number of items kept so far.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Writes the manifest and makes the area `staged/`. Call only after the whole bundle
    /// verified.
    pub fn commit(&mut self) -> Result<PathBuf> {
        let m = StagedManifest {
            format: FORMAT,
            bundle: self.bundle.clone(),
            host: self.host.clone(),
            items: self.items.clone(),
        };
        let json = serde_json::to_vec_pretty(&m)
            .map_err(|e| Error::io("cannot encode", MANIFEST, io::Error::other(e)))?;
        let path = self.incoming.join(MANIFEST);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(&json))
            .map_err(|e| Error::io("cannot write", &path, e))?;
        let staged = self.dir.join(STAGED);
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            &self.incoming,
            rustix::fs::CWD,
            &staged,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| io_err("cannot stage into", &staged, e))?;
        self.committed = true;
        Ok(staged)
    }
}

impl Drop for Stager {
    fn drop(&mut self) {
        if !self.committed {
            if let Err(e) = wipe_tree(&self.incoming) {
                eprintln!("warning: {}", crate::escape::escape_message(&e.to_string()));
            }
        }
    }
}

/// Reads and checks the staged manifest in `dir`.
pub fn load(dir: &Path) -> Result<Option<StagedManifest>> {
    let staged = dir.join(STAGED);
    if !staged.exists() {
        return Ok(None);
    }
    check_ram_backed(dir)?;
    let path = staged.join(MANIFEST);
    let f = File::open(&path).map_err(|e| Error::io("cannot read", &path, e))?;
    let mut json = Vec::new();
    f.take(MAX_MANIFEST_BYTES)
        .read_to_end(&mut json)
        .map_err(|e| Error::io("cannot read", &path, e))?;
    let bad = |why: String| Error::BadPayload {
        path: path.clone(),
        why,
    };
    let m: StagedManifest =
        serde_json::from_slice(&json).map_err(|e| bad(format!("invalid: {e}")))?;
    // The same rules as a bundle's manifest: targets, modes, sizes, tree shape.
    let as_bundle = BundleManifest {
        format: m.format,
        created_by: Default::default(),
        hosts: m.host.iter().cloned().collect(),
        items: m.items.clone(),
        recovery_recipients: Vec::new(),
        identities: Default::default(),
    };
    as_bundle.validate(&Limits::default()).map_err(bad)?;
    if m.items.iter().any(|i| i.stage != Stage::Root) {
        return Err(bad("it holds a disk-stage item".into()));
    }
    Ok(Some(m))
}

/// What `vault place` did.
#[derive(Debug, Clone, Serialize)]
pub struct PlaceReport {
    pub bundle: String,
    pub host: Option<String>,
    pub placed: Vec<PathBuf>,
    /// Temporaries a killed earlier run left beside the targets, removed.
    pub swept: Vec<PathBuf>,
    /// Files a killed earlier run had replaced, whose originals were put back.
    pub restored: Vec<PathBuf>,
    /// Temporary folders a killed earlier run left that could not be removed, and why.
    pub not_swept: Vec<NotSwept>,
    /// Why the staging area could not be wiped after the files were placed (they are placed;
    /// `vault wipe` discards the area).
    pub not_wiped: Option<String>,
}

/// Places the staged root-stage items under `root`, verifying each file's size and SHA-256
/// against the staged manifest before the commit, then wipes the staging area. On any
/// failure nothing is placed and the staging area is kept, so the same command can be run
/// again (e.g. with `--force`).
pub fn place(dir: &Path, root: &Path, opts: PlaceOptions) -> Result<PlaceReport> {
    let m = load(dir)?.ok_or_else(|| Error::Refused {
        why: format!("nothing is staged in {}", dir.display()),
        hint: Some(format!(
            "run `{}` first, or unlock in one step with `{}`",
            as_root("vault unlock --stage disk"),
            as_root("vault unlock --root /mnt")
        )),
    })?;
    let staged = dir.join(STAGED);
    let mut placer = Placer::new(root, opts)?;
    let (mut swept, mut restored, mut not_swept) = (Vec::new(), Vec::new(), Vec::new());
    let files = m.items.iter().filter(|i| i.kind == Kind::File);
    for s in placer.sweep_stale(files, false) {
        match s.what {
            SweptKind::Removed => swept.push(s.path),
            SweptKind::Restored(at) => restored.push(at),
            SweptKind::NotRemoved(why) => not_swept.push(NotSwept { path: s.path, why }),
        }
    }
    let in_place = refuse_conflicts(&placer, &m.items, opts.force)?;
    if let Err(e) = copy_staged(&mut placer, &staged, &m.items, &in_place) {
        let left = placer.rollback();
        return Err(with_leftovers(crate::interrupt::explain(e), left));
    }
    placer.commit()?;
    // Every file is in place and durable: from here on a signal changes nothing.
    crate::interrupt::commit_point();
    placer.release();
    let placed = placer.placed().collect();
    let not_wiped = discard(dir, false).err().map(|e| e.to_string());
    release(dir);
    Ok(PlaceReport {
        bundle: m.bundle,
        host: m.host,
        placed,
        swept,
        restored,
        not_swept,
        not_wiped,
    })
}

/// Writes the staged copies of `items` (but those `in_place`) into `placer`'s temporaries,
/// each checked against its size and SHA-256 in the staged manifest.
fn copy_staged(
    placer: &mut Placer,
    staged: &Path,
    items: &[Item],
    in_place: &[String],
) -> Result<()> {
    for (i, item) in items.iter().enumerate() {
        if in_place.contains(&item.target) {
            continue;
        }
        match item.kind {
            Kind::Dir => placer.dir(&item.target, item.mode, item.uid, item.gid)?,
            Kind::File => {
                let path = staged.join(i.to_string());
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc_nofollow())
                    .open(&path)
                    .map_err(|e| Error::io("cannot read staged file", &path, e))?;
                let mut hashing = HashingReader {
                    inner: f.take(item.size.saturating_add(1)),
                    hasher: Sha256::new(),
                    count: 0,
                };
                placer.file(&item.target, item.mode, item.uid, item.gid, &mut hashing)?;
                let digest = hex::encode(hashing.hasher.finalize());
                if hashing.count != item.size || Some(digest.as_str()) != item.sha256.as_deref() {
                    return Err(Error::Tampered {
                        path: path.clone(),
                        why: format!(
                            "the staged copy of {} does not match its SHA-256 (the staging area was modified)",
                            item.target
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The same refusal `vault unlock` gives: links in the way always, existing files without
/// `--force`. Returns the targets already in place (exactly these bytes, mode and owner).
fn refuse_conflicts(placer: &Placer, items: &[Item], force: bool) -> Result<Vec<String>> {
    crate::place::check_open_files(items.iter().map(|i| (Stage::Root, i)))?;
    let found = placer.check(items);
    let in_place = items
        .iter()
        .filter(|i| {
            found.iter().any(|c| {
                c.what == ConflictKind::InPlace && c.path == placer.display_path(&i.target)
            })
        })
        .map(|i| i.target.clone())
        .collect();
    crate::place::refuse_conflicts_with(
        &found,
        force,
        "add --force to replace them (the staged files are kept until placed)",
        format!(
            "remove or fix those paths in the target, then run `{}` again",
            as_root("vault place")
        ),
    )?;
    let mut room = crate::place::Room::default();
    placer.count_room(&mut room, items, &found);
    room.check()?;
    Ok(in_place)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_backed_directory_is_refused() {
        // The crate's own directory is on the build machine's disk, never tmpfs/ramfs here.
        let d = Path::new(env!("CARGO_MANIFEST_DIR"));
        if let Err(e) = check_ram_backed(d) {
            assert!(e.to_string().contains("not on ramfs or tmpfs"), "{e}");
        }
    }
}
