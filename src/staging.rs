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
//! /run/vault/                ramfs, 0700
//!   incoming-<pid>/          being written by `unlock --stage disk`; removed on failure
//!   staged/                  renamed from incoming only after the whole bundle verified
//!     manifest.json          host, bundle name, the root-stage items (with SHA-256)
//!     <index>                contents of item <index>, 0600
//! ```
//!
//! `vault place` re-hashes every staged file against `manifest.json` before its commit, and
//! wiping overwrites each file with zeros before unlinking it (the pages of a ramfs file are
//! freed on unlink; zeroing first keeps them from being handed out with secrets in them).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::archive::{BundleManifest, Item, Kind, Limits, FORMAT};
use crate::manifest::Stage;
use crate::place::{is_mount_point, ConflictKind, PlaceOptions, Placer};
use crate::{Error, Result};

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

/// Which filesystem `dir` is on, if it is RAM-only; a clear refusal otherwise.
pub fn check_ram_backed(dir: &Path) -> Result<&'static str> {
    let st = rustix::fs::statfs(dir).map_err(|e| {
        Error::io(
            "cannot check the staging area",
            dir,
            io::Error::from_raw_os_error(e.raw_os_error()),
        )
    })?;
    // f_type is a signed word whose width differs between targets; the magics are 32-bit.
    #[allow(clippy::unnecessary_cast)]
    let magic = (st.f_type as u64) & 0xffff_ffff;
    match magic {
        RAMFS_MAGIC => Ok("ramfs"),
        TMPFS_MAGIC => Ok("tmpfs"),
        other => Err(Error::Refused {
            why: format!(
                "{} is not on ramfs or tmpfs (filesystem magic {other:#x}): staged secrets would be written to a disk",
                dir.display()
            ),
            hint: Some(format!(
                "run it with sudo so vault can mount a ramfs at {DEFAULT_DIR}, or mount one yourself: `sudo mount -t ramfs -o mode=0700 ramfs {}`; or unlock in one step with `{}` once the target is mounted",
                dir.display(),
                as_root("vault unlock --root /mnt")
            )),
        }),
    }
}

/// A live-system command (unlock, place, wipe) as the reader of a hint must type it: with
/// `sudo ` unless vault runs in a root shell of its own. Under sudo, as a non-root user, or from
/// a systemd unit (whose console is then used by whoever logs in, e.g. the NixOS installer's
/// `nixos` user), the command needs sudo to run again.
pub fn as_root(cmd: &str) -> String {
    let direct_root = rustix::process::geteuid().is_root()
        && std::env::var_os("SUDO_USER").is_none()
        && std::env::var_os("INVOCATION_ID").is_none();
    if direct_root {
        cmd.to_string()
    } else {
        format!("sudo {cmd}")
    }
}

fn io_err(action: &'static str, path: &Path, e: rustix::io::Errno) -> Error {
    Error::io(action, path, io::Error::from_raw_os_error(e.raw_os_error()))
}

/// Makes `dir` a usable staging area: created 0700, on a fresh ramfs if `mount` and this
/// process may mount, RAM-backed in any case, owned by us and private. Refuses if a bundle is
/// already staged there.
pub fn prepare(dir: &Path, mount: bool) -> Result<&'static str> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io("cannot create the staging area", dir, e))?;
    }
    // Mounting a ramfs is Linux's; elsewhere the directory must already be RAM-backed.
    #[cfg(target_os = "linux")]
    if mount && rustix::process::geteuid().is_root() && !is_mount_point(dir).unwrap_or(false) {
        use rustix::mount::MountFlags;
        rustix::mount::mount(
            "vault-staging",
            dir,
            "ramfs",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            c"mode=0700",
        )
        .map_err(|e| io_err("cannot mount a ramfs at", dir, e))?;
    }
    let fs = check_ram_backed(dir)?;
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| Error::io("cannot check the staging area", dir, e))?;
    if !meta.is_dir() || meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(Error::Refused {
            why: format!("{} is not a directory owned by this user", dir.display()),
            hint: Some("remove it, or choose another staging directory".into()),
        });
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("cannot make the staging area private", dir, e))?;
    }
    refuse_if_staged(dir)?;
    Ok(fs)
}

fn refuse_if_staged(dir: &Path) -> Result<()> {
    if dir.join(STAGED).exists() {
        return Err(Error::Refused {
            why: format!("a bundle is already staged in {}", dir.display()),
            hint: Some(format!(
                "place it with `{}`, or discard it with `{}`",
                as_root("vault place --root /mnt"),
                as_root("vault wipe")
            )),
        });
    }
    Ok(())
}

/// The refusals of [`prepare`], without creating or mounting anything (for a dry run): a
/// bundle already staged, or an existing area on a disk that vault would not mount over.
pub fn check_usable(dir: &Path, mount: bool) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let would_mount =
        mount && rustix::process::geteuid().is_root() && !is_mount_point(dir).unwrap_or(false);
    if !would_mount {
        check_ram_backed(dir)?;
    }
    refuse_if_staged(dir)
}

/// Wipes the half-written areas (`incoming-PID`) that a killed earlier run left in `dir`
/// (its process is gone); returns their paths.
pub fn sweep_stale(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("cannot read", dir, e))?;
    for e in entries.flatten() {
        let name = e.file_name();
        let stale = name
            .to_str()
            .and_then(|n| n.strip_prefix("incoming-"))
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| {
                pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
            });
        if stale {
            wipe_tree(&e.path())?;
            out.push(e.path());
        }
    }
    Ok(out)
}

/// Receives root-stage contents during `vault unlock --stage disk`. Nothing is visible as
/// `staged/` until [`Stager::commit`]; dropping it uncommitted wipes what it wrote.
pub struct Stager {
    dir: PathBuf,
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
        let incoming = dir.join(format!("incoming-{}", std::process::id()));
        if incoming.exists() {
            wipe_tree(&incoming)?;
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&incoming)
            .map_err(|e| Error::io("cannot create", &incoming, e))?;
        Ok(Stager {
            dir: dir.to_path_buf(),
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
                eprintln!("warning: {e}");
            }
        }
    }
}

fn libc_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Overwrites every regular file under `dir` with zeros, unlinks it, then removes the
/// directories. Never follows links (a link is unlinked, not overwritten).
fn wipe_tree(dir: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("cannot wipe", dir, e)),
    };
    if !meta.is_dir() {
        return wipe_file(dir, &meta);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("cannot wipe", dir, e))?;
    for e in entries {
        let e = e.map_err(|e| Error::io("cannot wipe", dir, e))?;
        let path = e.path();
        let meta =
            std::fs::symlink_metadata(&path).map_err(|e| Error::io("cannot wipe", &path, e))?;
        if meta.is_dir() {
            wipe_tree(&path)?;
        } else {
            wipe_file(&path, &meta)?;
        }
    }
    std::fs::remove_dir(dir).map_err(|e| Error::io("cannot remove", dir, e))
}

fn wipe_file(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    if meta.is_file() {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc_nofollow())
            .open(path)
            .map_err(|e| Error::io("cannot wipe", path, e))?;
        let zeros = vec![0u8; 64 * 1024];
        let mut left = meta.len();
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            f.write_all(&zeros[..n])
                .map_err(|e| Error::io("cannot wipe", path, e))?;
            left -= n as u64;
        }
        f.sync_data()
            .map_err(|e| Error::io("cannot wipe", path, e))?;
    }
    std::fs::remove_file(path).map_err(|e| Error::io("cannot remove", path, e))
}

/// Discards whatever is staged in `dir` (and half-written areas of crashed runs), then
/// unmounts the ramfs vault mounted there. Returns whether anything was staged.
pub fn wipe(dir: &Path) -> Result<bool> {
    if !dir.exists() {
        return Ok(false);
    }
    let staged = dir.join(STAGED).exists();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("cannot wipe", dir, e))?;
    for e in entries {
        let e = e.map_err(|e| Error::io("cannot wipe", dir, e))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name == STAGED || name.starts_with("incoming-") {
            wipe_tree(&e.path())?;
        }
    }
    unmount_if_ours(dir);
    Ok(staged)
}

/// Undoes [`prepare`] for a run that staged nothing (refused, wrong passphrase): unmounts the
/// ramfs it mounted, if it is still empty. A committed area is not empty, so it stays.
pub fn release(dir: &Path) {
    unmount_if_ours(dir);
}

/// Unmounts `dir` if it is the default area and an empty ramfs mount point (the one
/// [`prepare`] mounted); a directory the user chose keeps whatever they mounted there.
fn unmount_if_ours(dir: &Path) {
    if dir != Path::new(DEFAULT_DIR) {
        return;
    }
    let ramfs = rustix::fs::statfs(dir)
        .map(|s| {
            #[allow(clippy::unnecessary_cast)]
            let m = (s.f_type as u64) & 0xffff_ffff;
            m == RAMFS_MAGIC
        })
        .unwrap_or(false);
    let empty = std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    #[cfg(target_os = "linux")]
    if ramfs && empty && is_mount_point(dir).unwrap_or(false) {
        let _ = rustix::mount::unmount(dir, rustix::mount::UnmountFlags::empty());
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ramfs, empty);
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
        created_by: String::new(),
        hosts: m.host.iter().cloned().collect(),
        items: m.items.clone(),
        recovery_recipients: Vec::new(),
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
    let in_place = refuse_conflicts(&placer, &m.items, opts.force)?;
    for (i, item) in m.items.iter().enumerate() {
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
                let mut hashing = HashCount {
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
    placer.commit()?;
    let placed = placer.placed().collect();
    wipe(dir)?;
    Ok(PlaceReport {
        bundle: m.bundle,
        host: m.host,
        placed,
    })
}

/// The same refusal `vault unlock` gives: links in the way always, existing files without
/// `--force`. Returns the targets already in place (exactly these bytes, mode and owner).
fn refuse_conflicts(placer: &Placer, items: &[Item], force: bool) -> Result<Vec<String>> {
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
    crate::unlock::refuse_conflicts_with(
        &found,
        force,
        "add --force to replace them (the staged files are kept until placed)",
        format!(
            "remove or fix those paths in the target, then run `{}` again",
            as_root("vault place")
        ),
    )?;
    Ok(in_place)
}

struct HashCount<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Read for HashCount<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
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
