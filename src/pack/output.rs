//! Writing a bundle: tar → zstd → age streamed into a 0600 temporary beside the output, made
//! durable as it goes, and renamed into place only when complete.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use age_core::secrecy::SecretString;

use super::{checks, recovery, PackPlan};
use crate::archive::{self, write::Compression};
use crate::bundle::{self, KdfParams};
use crate::sync_behind::WriteBehind;
use crate::{Error, Result};

/// Settings for [`write_bundle`].
#[derive(Debug, Clone, Copy)]
pub struct PackOptions {
    pub kdf: KdfParams,
    pub compression: Compression,
    /// Replace an existing output (`--force`). Without it, an output that appeared after the
    /// up-front check is refused at the final rename too.
    pub replace: bool,
}

/// `rename(from, to)` that fails with `AlreadyExists` instead of replacing `to`.
fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        from,
        rustix::fs::CWD,
        to,
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .map_err(std::io::Error::from)
}

/// Encrypts `plan` to `out`. The bundle appears at `out` only when complete; until then it
/// is a 0600 temporary in the same folder, removed on any error.
///
/// Four stages overlap (docs/BENCHMARKS.md): this thread reads and tars the files (hashing
/// those not settled) and feeds zstd, whose worker threads compress; a second thread
/// encrypts the compressed stream; a third writes it, starting the write-back of every few
/// MiB as it goes so that the final `fsync` has little left to wait for.
pub fn write_bundle(
    plan: &PackPlan,
    out: &Path,
    passphrase: SecretString,
    opts: PackOptions,
    progress: &dyn Fn(u64),
) -> Result<u64> {
    write_atomically(
        out,
        &plan.manifest.recovery_recipients,
        passphrase,
        opts,
        |pipe| {
            archive::write::write_checked(
                pipe,
                &plan.manifest,
                &plan.sources,
                &plan.settled,
                opts.compression,
                progress,
            )
        },
    )
}

/// The payload end of the pipe [`write_atomically`] hands to the archive writer.
pub(crate) struct Pipe(ChunkSender);

impl Write for Pipe {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.write(data)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Writes a bundle to `out` through a 0600 temporary renamed into place when complete:
/// `fill` writes the payload (tar+zstd) into the pipe and returns it. The file key is also
/// wrapped to each of `recovery` (already in the payload's `vault.json`, so the recipients
/// and the stanzas cannot disagree).
pub(crate) fn write_atomically(
    out: &Path,
    recovery: &[String],
    passphrase: SecretString,
    opts: PackOptions,
    fill: impl FnOnce(Pipe) -> Result<Pipe>,
) -> Result<u64> {
    let recovery = recovery::parse_all(recovery, &|i| format!("recovery recipient {}", i + 1))?;
    let recovery: Vec<&dyn age::Recipient> = recovery.iter().map(|r| r.as_age()).collect();
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".into());
    let prefix = format!(".{file_name}");
    // Held open until the rename: its lock marks the temporary as a live run's.
    let held = crate::stale::HeldDir::open(&dir).map_err(|e| Error::io("cannot open", &dir, e))?;
    remove_stale_temps(&held, &dir, &prefix);
    let temp = dir.join(crate::stale::temp_name(&prefix));
    // Created and registered in one step: a signal removes it too (see crate::interrupt).
    let (file, registered) = crate::interrupt::TempFile::create(&temp, || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
    })
    .map_err(|e| Error::io("cannot create", &temp, e))?;
    let guard = TempGuard(Some((temp.clone(), registered)));
    let write_err = |e| Error::io("cannot write", &temp, e);
    // The KDF runs here, before any thread starts.
    let behind = WriteBehind::start(file, WRITEBACK_EVERY).map_err(write_err)?;
    let stream = bundle::encrypt_with_recovery(behind, passphrase, opts.kdf, &recovery)
        .map_err(write_err)?;
    let (tx, rx) = mpsc::sync_channel::<Chunk>(PIPE_DEPTH);
    // Written chunks go back to be filled again: no allocation and no fresh pages per chunk.
    let (back, spare) = mpsc::sync_channel::<Chunk>(PIPE_DEPTH + 2);
    let (file, packed) = std::thread::scope(|s| {
        let encryptor = s.spawn(move || -> std::io::Result<File> {
            let mut stream = stream;
            for mut chunk in rx {
                stream.write_all(&chunk)?;
                chunk.clear();
                let _ = back.try_send(chunk);
            }
            let file = stream.finish()?.finish()?;
            file.sync_all()?;
            Ok(file)
        });
        let pipe = Pipe(ChunkSender {
            tx,
            spare,
            buf: Chunk::new(Vec::with_capacity(PIPE_CHUNK)),
        });
        let packed = fill(pipe).and_then(|mut pipe| pipe.0.send().map_err(write_err));
        // On error the sender is dropped with `packed`, so the encryptor stops too.
        let encrypted = encryptor
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the encryption thread panicked")));
        (encrypted, packed)
    });
    // A closed pipe in `packed` is the encryptor's error showing through: report the cause.
    let file = match (file, packed) {
        (Err(e), _) => return Err(write_err(e)),
        (Ok(_), Err(e)) => return Err(e),
        (Ok(f), Ok(())) => f,
    };
    let size = file
        .metadata()
        .map_err(|e| Error::io("cannot read", &temp, e))?
        .len();
    // The bundle's one visible step; once done, a signal no longer undoes the pack.
    crate::interrupt::commit(|| match opts.replace {
        true => fs::rename(&temp, out),
        false => rename_no_replace(&temp, out),
    })
    .map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists if !opts.replace => checks::exists(out),
        _ => Error::io("cannot create", out, e),
    })?;
    guard.disarm();
    drop(held);
    Ok(size)
}

/// Chunks in flight between the compressing and the encrypting thread (memory: depth × chunk).
const PIPE_DEPTH: usize = 8;
const PIPE_CHUNK: usize = 1 << 20;

/// Compressed payload on its way to encryption: secret, so wiped when dropped.
type Chunk = zeroize::Zeroizing<Vec<u8>>;

/// The writing end of the pipe to the encryption thread: batches writes into whole chunks.
struct ChunkSender {
    tx: mpsc::SyncSender<Chunk>,
    /// Chunks the encryption thread has written, to be filled again.
    spare: mpsc::Receiver<Chunk>,
    buf: Chunk,
}

impl ChunkSender {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Chunk::new(Vec::with_capacity(PIPE_CHUNK)));
        let full = std::mem::replace(&mut self.buf, next);
        self.tx.send(full).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the encryption thread stopped",
            )
        })
    }
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(PIPE_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PIPE_CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Chunks go when full or at the end; zstd's flushes need not cross threads.
        Ok(())
    }
}

/// How much is written before its write-back is started (see
/// [`crate::sync_behind::WriteBehind`]): the disk works while the CPU compresses and
/// encrypts, and the final `fsync` waits only for the tail. Write-back errors reach that
/// `fsync`: the descriptor was opened before the first byte.
const WRITEBACK_EVERY: u64 = 4 << 20;

/// Removes the partial bundles that a killed earlier run (SIGKILL, power loss) left beside
/// the output, saying so (see [`crate::stale`]).
fn remove_stale_temps(held: &crate::stale::HeldDir, dir: &Path, prefix: &str) {
    for path in held.dead_temp_files(dir, prefix) {
        if fs::remove_file(&path).is_ok() {
            eprintln!(
                "note: removed {}, a partial bundle left by an interrupted earlier run",
                crate::escape::escape_path(&path)
            );
        }
    }
}

/// Removes a temporary unless disarmed.
struct TempGuard(Option<(PathBuf, crate::interrupt::TempFile)>);

impl TempGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some((p, _registered)) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}
