//! The staging area itself: a private, RAM-backed directory (ramfs mounted by vault, or a
//! ramfs/tmpfs the user mounted), created, checked, swept, wiped and unmounted here. What is
//! written into it and placed from it is the parent module's.

use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::{DEFAULT_DIR, RAMFS_MAGIC, STAGED, TMPFS_MAGIC};
use crate::place::is_mount_point;
use crate::{Error, Result};

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
    // The carried binary on the official installer is not on PATH: name the one running.
    let cmd = crate::invocation::command(cmd);
    if direct_root {
        cmd
    } else {
        format!("sudo {cmd}")
    }
}

pub(super) fn io_err(action: &'static str, path: &Path, e: rustix::io::Errno) -> Error {
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

/// Prefix of the folder `unlock --stage disk` writes into before it becomes `staged/`.
pub(super) const INCOMING: &str = "incoming";
/// Prefix of the folder `staged/` is renamed to while it is wiped.
const WIPING: &str = "wiping";

/// Opens the area and marks it as holding this run's folders (see [`crate::stale`]), for as
/// long as the returned descriptor stays open.
pub(super) fn hold(dir: &Path) -> Result<OwnedFd> {
    let fd = rustix::fs::open(
        dir,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("cannot open the staging area", dir, e))?;
    let _ = crate::stale::hold(&fd);
    Ok(fd)
}

/// Wipes the folders that a killed earlier run left in `dir` half-written (`incoming…`) or
/// half-wiped (`wiping…`); returns their paths. A folder of a run still going is left alone.
/// Where there is no area, there is nothing to sweep.
pub fn sweep_stale(dir: &Path) -> Result<Vec<PathBuf>> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        _ => {}
    }
    let fd = hold(dir)?;
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("cannot read", dir, e))?;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let dead = [INCOMING, WIPING]
            .iter()
            .any(|p| crate::stale::dead_writers(&fd, name, p).is_some())
            // An older vault's `incoming-PID`: no writer to ask.
            || name
                .strip_prefix("incoming-")
                .is_some_and(|pid| pid.parse::<u32>().is_ok());
        if dead {
            wipe_tree(&e.path())?;
            out.push(e.path());
        }
    }
    Ok(out)
}

/// Wipes what is staged in `dir`: renamed away first, so the area never holds a half-wiped
/// `staged/` (see the module's documentation). With `commits`, that rename is the command's
/// commit (`vault wipe`): a signal after it no longer stops the wipe.
pub(super) fn discard(dir: &Path, commits: bool) -> Result<()> {
    let staged = dir.join(STAGED);
    let _held = hold(dir)?;
    let wiping = dir.join(crate::stale::temp_name(WIPING));
    let rename = || {
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            &staged,
            rustix::fs::CWD,
            &wiping,
            rustix::fs::RenameFlags::NOREPLACE,
        )
    };
    match commits {
        true => crate::interrupt::commit(rename),
        false => rename(),
    }
    .map_err(|e| io_err("cannot wipe", &staged, e))?;
    wipe_tree(&wiping)
}

pub(super) fn libc_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Overwrites every regular file under `dir` with zeros, unlinks it, then removes the
/// directories. Never follows links (a link is unlinked, not overwritten).
pub(super) fn wipe_tree(dir: &Path) -> Result<()> {
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

/// Discards whatever is staged in `dir` (and the folders of killed runs), then unmounts the
/// ramfs vault mounted there. Returns whether anything was staged. With `commits`, discarding
/// is the command's commit (`vault wipe`; see [`discard`]).
pub fn wipe(dir: &Path, commits: bool) -> Result<bool> {
    if !dir.exists() {
        return Ok(false);
    }
    let staged = dir.join(STAGED).exists();
    if staged {
        discard(dir, commits)?;
    }
    sweep_stale(dir)?;
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
