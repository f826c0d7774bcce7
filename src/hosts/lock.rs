//! One host command at a time per `vault.toml`: `host add` and `host remove` read `vault.toml`,
//! `.sops.yaml` and the keys file, compute their edits and write them back, so two at once
//! would each write over the other's edit. Each holds an exclusive `flock` on `vault.toml`'s
//! folder for its whole run; a second one is refused at once, naming the first one's PID.
//!
//! `flock` belongs to the open file description and is independent of the byte-range locks
//! of [`crate::stale`] (which the same process takes on the same folder through other
//! descriptors), and the kernel drops it when the process ends, however it ends. It leaves no
//! file behind. A file system without `flock` runs the command unlocked, as before.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};

use super::Error;

/// Held while a host command runs: dropped, the next one may run.
#[derive(Debug)]
pub struct HostLock(#[allow(dead_code)] Option<OwnedFd>);

/// Takes the host-command lock on `manifest`'s folder, or [`Error::Busy`] when another
/// process holds it.
pub fn lock(manifest: &Path) -> Result<HostLock, Error> {
    let dir = super::journal::folder(manifest);
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
    // A folder that cannot be opened: loading vault.toml then says why.
    let Ok(fd) = rustix::fs::open(dir, flags, Mode::empty()) else {
        return Ok(HostLock(None));
    };
    match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(HostLock(Some(fd))),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(Error::Busy {
            dir: std::path::absolute(dir).unwrap_or_else(|_| PathBuf::from(dir)),
            pid: holder(fd.as_fd()),
        }),
        Err(_) => Ok(HostLock(None)),
    }
}

/// The PID that holds the `flock` on `dir`, from `/proc/locks`
/// (`N: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF`).
// `st_dev`'s type differs between targets.
#[allow(clippy::unnecessary_cast)]
fn holder(dir: std::os::fd::BorrowedFd<'_>) -> Option<u32> {
    let st = rustix::fs::fstat(dir).ok()?;
    let dev = st.st_dev as u64;
    let id = format!(
        "{:02x}:{:02x}:{}",
        rustix::fs::major(dev),
        rustix::fs::minor(dev),
        st.st_ino
    );
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            [_, "FLOCK", _, "WRITE", pid, at, ..] if *at == id => pid.parse().ok(),
            _ => None,
        }
    })
}
