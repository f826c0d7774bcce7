//! `vault pack`: from a validated `vault.toml` to a bundle file.
//!
//! [`plan`] expands the manifest (directories recursively), checks every source and hashes
//! every file, so all errors surface before a byte is written. [`write_bundle`] then streams
//! tar → zstd → age into a 0600 temporary beside the output and renames it into place.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use age_core::secrecy::SecretString;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::archive::write::{Compression, Stamp};
use crate::archive::{self, BundleManifest, Item, Kind};
use crate::bundle::{self, KdfParams};
use crate::manifest::{Entry, Manifest};
use crate::sync_behind::SyncBehind;
use crate::{Error, Result};

mod checks;
pub mod recovery;
pub mod repack;
pub use checks::{check_not_empty, check_output, kdf_weakness, warnings};

/// Default mode of a file entry that names none.
pub const DEFAULT_FILE_MODE: u32 = 0o600;

/// What will go into the bundle.
#[derive(Debug, Clone)]
pub struct PackPlan {
    pub manifest: BundleManifest,
    /// The file on disk for each item (`None` for directories).
    pub sources: Vec<Option<PathBuf>>,
    /// For each item: the line in `vault.toml` of the entry it comes from.
    pub lines: Vec<usize>,
    /// For each file that had settled before it was hashed: its stamp then, so streaming
    /// need not hash it again (see [`archive::write::Stamp`]).
    pub settled: Vec<Option<Stamp>>,
    pub total_bytes: u64,
}

/// Expands and checks the manifest for `hosts` (empty: all of them).
pub fn plan(m: &Manifest, hosts: &[String]) -> Result<PackPlan> {
    // Whole seconds, rounded down: the racy margin covers the rest.
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    plan_at(m, hosts, start)
}

/// [`plan`], with hashing taken to start at `start` (Unix seconds). Tests use a later time to
/// have freshly written files count as settled.
#[doc(hidden)]
pub fn plan_at(m: &Manifest, hosts: &[String], start: i64) -> Result<PackPlan> {
    let selected: Vec<String> = if hosts.is_empty() {
        m.hosts.keys().cloned().collect()
    } else {
        for h in hosts {
            if !m.hosts.contains_key(h) {
                return Err(Error::UnknownHost {
                    path: m.path.clone(),
                    name: h.clone(),
                    known: m.hosts.keys().cloned().collect(),
                });
            }
        }
        hosts.to_vec()
    };
    let mut items = Vec::new();
    let mut sources = Vec::new();
    for e in &m.shared {
        expand(m, e, None, &mut items, &mut sources)?;
    }
    for h in &selected {
        for e in &m.hosts[h].entries {
            expand(m, e, Some(h), &mut items, &mut sources)?;
        }
    }
    // Parents before children (docs/FORMAT.md §5), whichever entry or host lists them: a
    // path sorts before every path it is a prefix of. Stable, so the order is reproducible.
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| items[a].target.cmp(&items[b].target));
    let mut items: Vec<Item> = order.iter().map(|&i| items[i].clone()).collect();
    let lines: Vec<usize> = order.iter().map(|&i| sources[i].1).collect();
    let sources: Vec<Option<PathBuf>> = order.iter().map(|&i| sources[i].0.clone()).collect();

    // Hash in parallel: reading the files is most of a large pack's first pass.
    let hashed: Vec<Result<Option<Hashed>>> = sources
        .par_iter()
        .zip(&lines)
        .map(|(s, line)| match s {
            None => Ok(None),
            Some(p) => hash_file(p).map(Some).map_err(|e| match e {
                // Named by its entry's line, as every other source problem is.
                Error::Io { path, source, .. } => {
                    let fix = if source.kind() == std::io::ErrorKind::PermissionDenied {
                        " (check its permissions, or run as the user that owns it)"
                    } else {
                        ""
                    };
                    Error::manifest(
                        &m.path,
                        format!(
                            "line {line}: cannot read source {}: {source}{fix}",
                            path.display()
                        ),
                    )
                }
                other => other,
            }),
        })
        .collect();
    let mut total = 0u64;
    let mut settled = Vec::with_capacity(items.len());
    for (item, h) in items.iter_mut().zip(hashed) {
        let h = h?;
        settled.push(
            h.as_ref()
                .and_then(|h| h.stamp)
                .filter(|s| s.settled_before(start)),
        );
        if let Some(h) = h {
            item.size = h.size;
            item.sha256 = Some(h.sha256);
            total += h.size;
        }
    }
    let manifest = BundleManifest {
        format: archive::FORMAT,
        created_by: format!("vault {}", env!("CARGO_PKG_VERSION")),
        hosts: selected,
        items,
        recovery_recipients: Vec::new(),
    };
    manifest
        .validate(&archive::Limits::default())
        .map_err(|why| Error::manifest(&m.path, why))?;
    Ok(PackPlan {
        manifest,
        sources,
        lines,
        settled,
        total_bytes: total,
    })
}

fn expand(
    m: &Manifest,
    e: &Entry,
    host: Option<&String>,
    items: &mut Vec<Item>,
    sources: &mut Vec<(Option<PathBuf>, usize)>,
) -> Result<()> {
    let at = |msg: String| Error::manifest(&m.path, format!("line {}: {msg}", e.line));
    let meta = fs::metadata(&e.source).map_err(|err| {
        at(match err.kind() {
            std::io::ErrorKind::NotFound => format!("source {} does not exist", e.source.display()),
            _ => format!("source {}: {err}", e.source.display()),
        })
    })?;
    let item = |kind: Kind, target: String, mode: u32| Item {
        host: host.cloned(),
        stage: e.stage,
        kind,
        target,
        mode,
        uid: e.uid,
        gid: e.gid,
        size: 0,
        sha256: None,
    };
    if meta.is_file() {
        if e.file_mode.is_some() {
            return Err(at(format!(
                "file_mode applies to directory entries, but {} is a file (use mode)",
                e.source.display()
            )));
        }
        items.push(item(
            Kind::File,
            e.target.clone(),
            e.mode.unwrap_or(DEFAULT_FILE_MODE),
        ));
        sources.push((Some(e.source.clone()), e.line));
        return Ok(());
    }
    if !meta.is_dir() {
        return Err(at(format!(
            "source {} is neither a regular file nor a directory",
            e.source.display()
        )));
    }
    items.push(item(
        Kind::Dir,
        e.target.clone(),
        e.mode.unwrap_or(meta.permissions().mode() & 0o777),
    ));
    sources.push((None, e.line));
    let mut stack = vec![(e.source.clone(), e.target.clone())];
    while let Some((dir, target)) = stack.pop() {
        let mut children: Vec<_> = fs::read_dir(&dir)
            .map_err(|err| at(format!("cannot list {}: {err}", dir.display())))?
            .collect::<std::io::Result<_>>()
            .map_err(|err| at(format!("cannot list {}: {err}", dir.display())))?;
        children.sort_by_key(|c| c.file_name());
        let mut subdirs = Vec::new();
        for c in children {
            let path = c.path();
            let name = c
                .file_name()
                .into_string()
                .map_err(|_| at(format!("{} has a name that is not UTF-8", path.display())))?;
            let child_target = format!("{target}/{name}");
            let meta = fs::symlink_metadata(&path)
                .map_err(|err| at(format!("{}: {err}", path.display())))?;
            let mode = meta.permissions().mode() & 0o777;
            if meta.file_type().is_symlink() {
                return Err(at(format!(
                    "{} is a symbolic link; bundles hold only regular files and directories (list its target as its own entry)",
                    path.display()
                )));
            } else if meta.is_dir() {
                items.push(item(Kind::Dir, child_target.clone(), mode));
                sources.push((None, e.line));
                subdirs.push((path, child_target));
            } else if meta.is_file() {
                items.push(item(Kind::File, child_target, e.file_mode.unwrap_or(mode)));
                sources.push((Some(path), e.line));
            } else {
                return Err(at(format!(
                    "{} is not a regular file or directory",
                    path.display()
                )));
            }
        }
        // Depth-first in name order; reversed because the stack pops from the end.
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

struct Hashed {
    size: u64,
    sha256: String,
    /// Taken after reading; `None` if `fstat` failed (then the file is hashed again).
    stamp: Option<Stamp>,
}

fn hash_file(path: &Path) -> Result<Hashed> {
    let mut f = File::open(path).map_err(|e| Error::io("cannot read", path, e))?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h).map_err(|e| Error::io("cannot read", path, e))?;
    Ok(Hashed {
        size: n,
        sha256: hex::encode(h.finalize()),
        stamp: Stamp::of(&f).ok(),
    })
}

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
/// Three stages overlap (docs/BENCHMARKS.md): this thread reads, hashes and tars the files
/// and feeds zstd, whose worker threads compress; a second thread encrypts the compressed
/// stream and writes it, asking the kernel to start writing back every few MiB so that the
/// final `fsync` has little left to wait for.
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
    remove_stale_temps(&dir, &prefix);
    let temp = dir.join(crate::interrupt::temp_name(&prefix));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| Error::io("cannot create", &temp, e))?;
    // A signal removes it too (see crate::interrupt).
    let guard = TempGuard(Some((
        temp.clone(),
        crate::interrupt::TempFile::register(&temp),
    )));
    let write_err = |e| Error::io("cannot write", &temp, e);
    // The KDF runs here, before any thread starts.
    let stream =
        bundle::encrypt_with_recovery(Writeback::new(file), passphrase, opts.kdf, &recovery)
            .map_err(write_err)?;
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(PIPE_DEPTH);
    let (file, packed) = std::thread::scope(|s| {
        let encryptor = s.spawn(move || -> std::io::Result<File> {
            let mut stream = stream;
            for chunk in rx {
                stream.write_all(&chunk)?;
            }
            // age writes whole 64 KiB chunks: no buffer needed in front of the file.
            let file = stream.finish()?.into_file()?;
            file.sync_all()?;
            Ok(file)
        });
        let pipe = Pipe(ChunkSender {
            tx,
            buf: Vec::with_capacity(PIPE_CHUNK),
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
    if opts.replace {
        fs::rename(&temp, out).map_err(|e| Error::io("cannot create", out, e))?;
    } else {
        rename_no_replace(&temp, out).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => checks::exists(out),
            _ => Error::io("cannot create", out, e),
        })?;
    }
    guard.disarm();
    Ok(size)
}

/// Chunks in flight between the compressing and the encrypting thread (memory: depth × chunk).
const PIPE_DEPTH: usize = 8;
const PIPE_CHUNK: usize = 1 << 20;

/// The writing end of the pipe to the encryption thread: batches writes into whole chunks.
struct ChunkSender {
    tx: mpsc::SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChunkSender {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(PIPE_CHUNK));
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

/// A file whose written data a second thread makes durable as it goes (see
/// [`SyncBehind`]): an `fdatasync` every [`WRITEBACK_EVERY`] bytes.
pub(crate) struct Writeback {
    file: File,
    behind: SyncBehind,
}

/// How much is written before a background sync of it is asked for.
const WRITEBACK_EVERY: u64 = 16 << 20;

impl Writeback {
    pub(crate) fn new(file: File) -> Writeback {
        let behind = match file.try_clone() {
            Ok(f) => SyncBehind::start("vault-sync", WRITEBACK_EVERY, move || f.sync_data()),
            Err(_) => SyncBehind::none(),
        };
        Writeback { file, behind }
    }

    /// Waits for a background sync in progress and returns its error, if any; the caller's
    /// `fsync` does the rest.
    pub(crate) fn into_file(self) -> std::io::Result<File> {
        self.behind.finish()?;
        Ok(self.file)
    }
}

impl Write for Writeback {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(data)?;
        self.behind.wrote(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Removes the partial bundles that a killed earlier run (SIGKILL, power loss) left beside
/// the output, saying so.
fn remove_stale_temps(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let stale = e
            .file_name()
            .to_str()
            .is_some_and(|n| crate::interrupt::is_stale_temp(n, prefix));
        if stale && e.file_type().is_ok_and(|t| t.is_file()) && fs::remove_file(e.path()).is_ok() {
            eprintln!(
                "note: removed {}, a partial bundle left by an interrupted earlier run",
                e.path().display()
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

/// The outcome of [`calibrate_kdf`].
#[derive(Debug, Clone, Copy)]
pub struct Calibration {
    pub params: KdfParams,
    /// Seconds one derivation took on this machine with `params`.
    pub seconds: f64,
    /// The passes the target time called for, when more than an unlocking vault accepts
    /// ([`KdfLimits`]' pass and work caps): `params.t` is the cap, and `seconds` is short of
    /// the target.
    ///
    /// [`KdfLimits`]: bundle::argon2id::KdfLimits
    pub capped_from: Option<u32>,
}

/// Chooses Argon2id parameters whose derivation takes about `target_secs` on this machine:
/// the memory first (more memory is what makes a guess expensive on a GPU), up to
/// `max_m_kib`, then passes. Lanes stay at the default, so the key does not depend on the
/// unlocking machine's cores. Costs a few derivations (about 3× the target).
pub fn calibrate_kdf(target_secs: f64, max_m_kib: u32) -> Result<Calibration> {
    const MIN_M_KIB: u32 = 64 * 1024;
    let p = KdfParams::DEFAULT.p;
    let time = |params: KdfParams| -> Result<f64> {
        let start = std::time::Instant::now();
        let pass = SecretString::from("calibration".to_owned());
        bundle::argon2id::derive_key(&pass, &[0u8; bundle::argon2id::SALT_LEN], params).map_err(
            |e| Error::Refused {
                why: format!("Argon2id with {params:?} failed: {e}"),
                hint: Some("choose a smaller --target-memory".into()),
            },
        )?;
        Ok(start.elapsed().as_secs_f64())
    };
    let max_m = max_m_kib.max(MIN_M_KIB);
    // One pass at the largest memory allowed: the unit cost of a pass.
    let mut m = max_m;
    let one = time(KdfParams { m_kib: m, t: 1, p })?;
    let t = if one > target_secs {
        // Even one pass is too slow: less memory, one pass (time is linear in memory).
        m = ((f64::from(m) * target_secs / one) as u32).clamp(MIN_M_KIB, max_m);
        1
    } else {
        ((target_secs / one).round() as u32).max(1)
    };
    // Rounded to whole MiB, as the CLI shows it; no more passes than an unlocking vault
    // accepts, by its pass cap and its work cap (memory × passes).
    let m_kib = m / 1024 * 1024;
    let limits = bundle::argon2id::KdfLimits::for_this_machine();
    let max_t = limits
        .max_t
        .min(u32::try_from(limits.max_work / u64::from(m_kib)).unwrap_or(u32::MAX));
    let capped_from = (t > max_t).then_some(t);
    let t = t.min(max_t);
    let params = KdfParams { m_kib, t, p };
    let seconds = time(params)?;
    Ok(Calibration {
        params,
        seconds,
        capped_from,
    })
}
