//! Writing a new image (`attach --image`, `attach --iso-file`, `detach -o`): a 0600 temporary
//! beside the output, filled, synced and renamed into place. The input is never edited.
//!
//! - Free space is checked before anything is written, for the data that will actually be
//!   written: holes of the input are copied as holes (`SEEK_DATA`/`SEEK_HOLE`), so a sparse
//!   image needs only the room of its data.
//! - The temporary is removed on any error, and on SIGINT, SIGTERM and SIGHUP: the run holds a
//!   [`crate::interrupt::Polled`] scope, checks between chunks and rolls back; a second signal
//!   exits at once and the signal thread removes the registered temporary.
//! - SIGKILL cannot be caught: temporaries carry vault's name pattern with the writer's pid
//!   (`.vault-attach.vault-PID-RANDOM.tmp`), and hold a lock while their writer lives; the next
//!   run that writes an image into the same folder removes those whose writer is gone.

use std::fs::{File, OpenOptions, Permissions};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, SeekFrom};
use rustix::io::Errno;

use super::input::{FileId, Input};
use super::{Error, Result};

/// Name prefix of the temporaries (see [`crate::interrupt::temp_name`]).
pub(crate) const TEMP_PREFIX: &str = ".vault-attach";
/// Bytes copied between two looks at the signal flag.
const CHUNK: u64 = 16 << 20;

pub(crate) fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Refuses an output that is one of `inputs` (same file, also through links, or the same block
/// device) or that exists without `force`.
pub(crate) fn check_output(output: &Path, force: bool, inputs: &[Input<'_>]) -> Result<()> {
    match std::fs::metadata(output) {
        Ok(meta) => {
            let id = FileId::of(&meta);
            if let Some(i) = inputs.iter().find(|i| i.id.same(&id)) {
                return Err(Error::OutputIsInput {
                    input: i.path.into(),
                    output: output.into(),
                    what: i.what,
                });
            }
            if !force {
                return Err(Error::OutputExists {
                    path: output.into(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("cannot check", output, e)),
    }
}

/// The signal received so far, as an error.
pub(crate) fn interrupted() -> Result<()> {
    match crate::interrupt::received() {
        Some(signal) => Err(Error::Interrupted { signal }),
        None => Ok(()),
    }
}

/// Refuses to start when the filesystem holding `dir` has less than `need` bytes free, plus a
/// margin for the filesystem's own metadata.
pub(crate) fn check_space(dir: &Path, need: u64) -> Result<()> {
    let st = rustix::fs::statvfs(dir).map_err(|e| Error::io("cannot check", dir, e.into()))?;
    let available = st.f_bavail.saturating_mul(st.f_frsize);
    let need = need.saturating_add(need / 64).saturating_add(1 << 20);
    if need > available {
        return Err(Error::NoSpace {
            dir: dir.into(),
            need,
            available,
        });
    }
    Ok(())
}

/// A temporary beside the output, removed when dropped unless published. While it lives, a
/// signal only sets a flag that [`copy_range`] and [`Temp::publish`] look at.
pub(crate) struct Temp {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    published: bool,
    _held: crate::stale::HeldDir,
    _registered: crate::interrupt::TempFile,
    _polled: crate::interrupt::Polled,
}

impl Temp {
    /// Removes what killed earlier runs left beside `output`, then creates an empty 0600
    /// temporary there.
    pub(crate) fn beside(output: &Path) -> Result<Temp> {
        let polled = crate::interrupt::Polled::enter();
        interrupted()?;
        let dir = parent_dir(output);
        let held =
            crate::stale::HeldDir::open(&dir).map_err(|e| Error::io("cannot open", &dir, e))?;
        sweep(&held, &dir);
        let path = dir.join(crate::stale::temp_name(TEMP_PREFIX));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("cannot create a temporary file in", &dir, e))?;
        // Held while this process lives: a sweeper in another PID namespace, where this pid
        // means nothing, sees the temporary is in use.
        let _ = rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive);
        Ok(Temp {
            _held: held,
            _registered: crate::interrupt::TempFile::register(&path),
            path,
            file,
            published: false,
            _polled: polled,
        })
    }

    /// Gives the file `mode`, syncs it and renames it to `output` (no-clobber unless `force`).
    pub(crate) fn publish(mut self, output: &Path, force: bool, mode: u32) -> Result<()> {
        interrupted()?;
        // Reopened by name: a tool (xorriso) may have written it through the name.
        let f = File::open(&self.path).map_err(|e| Error::io("cannot open", &self.path, e))?;
        f.set_permissions(Permissions::from_mode(mode))
            .map_err(|e| Error::io("cannot set the mode of", &self.path, e))?;
        f.sync_all()
            .map_err(|e| Error::io("cannot sync", &self.path, e))?;
        // The output's name is the commit: a signal is handled wholly before it (the
        // temporary is removed, exit 128 + n) or after it (the command completes, exit 0).
        crate::interrupt::commit(|| {
            interrupted()?;
            if force {
                std::fs::rename(&self.path, output)
                    .map_err(|e| Error::io("cannot rename to", output, e))
            } else {
                // A hard link fails if the output appeared meanwhile: no clobbering by a race.
                std::fs::hard_link(&self.path, output).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        Error::OutputExists {
                            path: output.into(),
                        }
                    } else {
                        Error::io("cannot create", output, e)
                    }
                })
            }
        })?;
        if !force {
            let _ = std::fs::remove_file(&self.path);
        }
        self.published = true;
        if let Ok(d) = File::open(parent_dir(output)) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Removes the temporaries in `dir` whose writer is gone (killed, or the machine lost power),
/// saying so. A temporary whose lock is held belongs to a running vault and stays.
pub(crate) fn sweep(held: &crate::stale::HeldDir, dir: &Path) {
    for path in held.dead_temp_files(dir, TEMP_PREFIX) {
        let Ok(f) = File::open(&path) else { continue };
        if rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive).is_err() {
            continue;
        }
        if std::fs::remove_file(&path).is_ok() {
            eprintln!(
                "note: removed {}, a partial image left by an interrupted earlier `vault attach` or `vault detach`",
                crate::escape::escape_path(&path)
            );
        }
    }
}

/// Calls `visit(start, end)` for each range of data (not holes) in bytes `0..len` of `f`. A
/// file or device that cannot tell holes from data is one range.
fn data_ranges(
    f: &File,
    path: &Path,
    len: u64,
    mut visit: impl FnMut(u64, u64) -> Result<()>,
) -> Result<()> {
    let mut pos = 0;
    while pos < len {
        let start = match rustix::fs::seek(f, SeekFrom::Data(pos)) {
            Ok(s) => s,
            // Only a hole from here to the end.
            Err(Errno::NXIO) => return Ok(()),
            Err(Errno::INVAL | Errno::OPNOTSUPP) => return visit(pos, len),
            Err(e) => return Err(Error::io("cannot read", path, e.into())),
        };
        if start >= len {
            return Ok(());
        }
        let end = match rustix::fs::seek(f, SeekFrom::Hole(start)) {
            Ok(e) if e > start => e.min(len),
            _ => len,
        };
        visit(start, end)?;
        pos = end;
    }
    Ok(())
}

/// How many bytes of `0..len` of `f` are data (what copying them writes).
pub(crate) fn data_len(f: &File, path: &Path, len: u64) -> Result<u64> {
    let mut n = 0;
    data_ranges(f, path, len, |s, e| {
        n += e - s;
        Ok(())
    })?;
    Ok(n)
}

/// Copies bytes `0..len` of `from` to the same offsets of `to`, holes as holes. `to` must not
/// hold data there already (it is a new, empty temporary).
pub(crate) fn copy_sparse(
    from: &File,
    from_path: &Path,
    to: &File,
    to_path: &Path,
    len: u64,
) -> Result<()> {
    data_ranges(from, from_path, len, |s, e| {
        copy_range(from, from_path, s, to, to_path, s, e - s)
    })
}

/// Copies `n` bytes from `from` at `off_in` to `to` at `off_out`, looking at the signal flag
/// between chunks. In-kernel (`copy_file_range`: a reflink or a copy without passing through
/// vault) where the filesystems allow; otherwise, and to name the side that failed, by reads
/// and writes.
pub(crate) fn copy_range(
    from: &File,
    from_path: &Path,
    mut off_in: u64,
    to: &File,
    to_path: &Path,
    mut off_out: u64,
    mut n: u64,
) -> Result<()> {
    let mut buf = Vec::new();
    while n > 0 {
        interrupted()?;
        let chunk = n.min(CHUNK) as usize;
        let done = match rustix::fs::copy_file_range(
            from,
            Some(&mut off_in),
            to,
            Some(&mut off_out),
            chunk,
        ) {
            Ok(0) => return Err(shrank(from_path)),
            Ok(k) => k as u64,
            Err(_) => {
                if buf.is_empty() {
                    buf = vec![0u8; 1 << 20];
                }
                let k = copy_by_hand(
                    from, from_path, off_in, to, to_path, off_out, chunk, &mut buf,
                )?;
                off_in += k;
                off_out += k;
                k
            }
        };
        n -= done;
    }
    Ok(())
}

fn shrank(path: &Path) -> Error {
    Error::io(
        "cannot read",
        path,
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "it became shorter while it was copied",
        ),
    )
}

/// Up to `n` bytes by `pread`/`pwrite`; returns how many were copied (more than 0).
#[allow(clippy::too_many_arguments)]
fn copy_by_hand(
    from: &File,
    from_path: &Path,
    off_in: u64,
    to: &File,
    to_path: &Path,
    off_out: u64,
    n: usize,
    buf: &mut [u8],
) -> Result<u64> {
    let want = n.min(buf.len());
    let got = loop {
        match from.read_at(&mut buf[..want], off_in) {
            Ok(0) => return Err(shrank(from_path)),
            Ok(k) => break k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => interrupted()?,
            Err(e) => return Err(Error::io("cannot read", from_path, e)),
        }
    };
    to.write_all_at(&buf[..got], off_out)
        .map_err(|e| Error::io("cannot write", to_path, e))?;
    Ok(got as u64)
}
