//! Writing the payload: `vault.json` first, then each item as a tar entry, through zstd.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{BundleManifest, Kind, MANIFEST_NAME};
use crate::{Error, Result};

/// Read and write buffer size: fewer syscalls and zstd calls than tar's own 8 KiB.
const IO_BUF: usize = 256 * 1024;

/// zstd job size when compressing on worker threads (bounds pack's memory).
const MT_JOB_SIZE: u32 = 1 << 20;

/// Compression settings for the payload.
#[derive(Debug, Clone, Copy)]
pub struct Compression {
    pub level: i32,
    /// zstd worker threads (0: compress on the calling thread).
    pub threads: u32,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            level: 3,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        }
    }
}

/// What `fstat` said of a file right after it was hashed. If it says the same after the file
/// was streamed, and the file had last changed well before hashing began (see
/// [`Stamp::settled_before`]), the bytes streamed are the bytes hashed: any write in between
/// would have moved `ctime` to a later time, and the kernel offers no way to set it back.
/// This is git's "racy clean" rule; it saves hashing every file twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// Timestamps are coarse (a kernel tick) and clocks drift a little: a file whose `ctime` is
/// closer than this to the start of hashing is hashed again while streamed.
const RACY_MARGIN_SECS: i64 = 2;

impl Stamp {
    pub fn of(file: &File) -> io::Result<Stamp> {
        let st = rustix::fs::fstat(file).map_err(io::Error::from)?;
        Ok(Stamp {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime, st.st_ctime_nsec as i64),
        })
    }

    /// Whether the file last changed more than the margin before `start` (Unix seconds),
    /// so that any later change is bound to show in `ctime`.
    pub fn settled_before(&self, start: i64) -> bool {
        self.ctime.0 < start - RACY_MARGIN_SECS
    }
}

/// Writes the compressed archive for `manifest` to `out`. `sources[i]` is the file on disk
/// for item `i` (`None` for directories). Each file is hashed again as it is streamed and
/// must match the manifest (it was hashed when the manifest was made): a file that changed
/// in between is an error, not a silently inconsistent bundle.
pub fn write<W: Write>(
    out: W,
    manifest: &BundleManifest,
    sources: &[Option<PathBuf>],
    compression: Compression,
    progress: &dyn Fn(u64),
) -> Result<W> {
    write_checked(out, manifest, sources, &[], compression, progress)
}

/// [`write`], except that a file with a stamp in `settled[i]` is not hashed again: it must
/// instead have that same stamp after it was streamed. Files without one are hashed.
pub fn write_checked<W: Write>(
    out: W,
    manifest: &BundleManifest,
    sources: &[Option<PathBuf>],
    settled: &[Option<Stamp>],
    compression: Compression,
    progress: &dyn Fn(u64),
) -> Result<W> {
    let mut tar = start(out, manifest, compression)?;
    for (i, (item, source)) in manifest.items.iter().zip(sources).enumerate() {
        let name = item.archive_path();
        match (item.kind, source) {
            (Kind::Dir, _) => append_dir(&mut tar, item)?,
            (Kind::File, Some(path)) => {
                let file = File::open(path).map_err(|e| Error::io("cannot read", path, e))?;
                let mut h = regular_header(item.size, item.mode, item.uid, item.gid);
                if let Some(stamp) = settled.get(i).copied().flatten() {
                    let mut reader = CountingReader(
                        BufReader::with_capacity(
                            IO_BUF,
                            Reported((&file).take(item.size), progress),
                        ),
                        0,
                    );
                    tar.append_data(&mut h, &name, &mut reader)
                        .map_err(|e| Error::io("cannot pack", path, e))?;
                    let now = Stamp::of(&file).map_err(|e| Error::io("cannot read", path, e))?;
                    if reader.1 != item.size || now != stamp {
                        return Err(changed(path));
                    }
                } else {
                    let mut reader = HashingReader {
                        inner: BufReader::with_capacity(
                            IO_BUF,
                            Reported(file.take(item.size), progress),
                        ),
                        hasher: Sha256::new(),
                        count: 0,
                    };
                    tar.append_data(&mut h, &name, &mut reader)
                        .map_err(|e| Error::io("cannot pack", path, e))?;
                    let digest = hex::encode(reader.hasher.finalize());
                    if reader.count != item.size || Some(digest.as_str()) != item.sha256.as_deref()
                    {
                        return Err(changed(path));
                    }
                }
            }
            (Kind::File, None) => unreachable!("pack plan gives every file a source"),
        }
    }
    finish(tar)
}

/// Writes the archive for `manifest` to `out` from contents held in memory (`vault repack`):
/// `contents[i]` holds item `i`'s bytes (`None` for directories), which must match its size
/// and hash.
pub fn write_contents<W: Write>(
    out: W,
    manifest: &BundleManifest,
    contents: &[Option<&[u8]>],
    compression: Compression,
) -> Result<W> {
    let mut tar = start(out, manifest, compression)?;
    for (item, data) in manifest.items.iter().zip(contents) {
        match (item.kind, data) {
            (Kind::Dir, _) => append_dir(&mut tar, item)?,
            (Kind::File, Some(data)) => {
                let digest = hex::encode(Sha256::digest(data));
                if data.len() as u64 != item.size || Some(digest.as_str()) != item.sha256.as_deref()
                {
                    return Err(Error::io(
                        "cannot pack",
                        &item.target,
                        io::Error::other("its contents do not match the manifest's size and hash"),
                    ));
                }
                let mut h = regular_header(item.size, item.mode, item.uid, item.gid);
                tar.append_data(&mut h, item.archive_path(), *data)
                    .map_err(|e| Error::io("cannot write", "bundle", e))?;
            }
            (Kind::File, None) => {
                return Err(Error::io(
                    "cannot pack",
                    &item.target,
                    io::Error::other("no contents for this file"),
                ))
            }
        }
    }
    finish(tar)
}

type Tar<W> = tar::Builder<BufWriter<zstd::Encoder<'static, W>>>;

/// The zstd stream and the tar builder on it, with `vault.json` written.
fn start<W: Write>(out: W, manifest: &BundleManifest, compression: Compression) -> Result<Tar<W>> {
    let json = serde_json::to_vec_pretty(manifest)
        .map_err(|e| Error::io("cannot encode", MANIFEST_NAME, io::Error::other(e)))?;
    let mut encoder = zstd::Encoder::new(out, compression.level)
        .map_err(|e| Error::io("cannot start zstd for", "bundle", e))?;
    if compression.threads > 0 {
        encoder
            .multithread(compression.threads)
            .map_err(|e| Error::io("cannot start zstd workers for", "bundle", e))?;
        // Each worker holds about two jobs of input and output; libzstd's default job (4×
        // the window, 8 MiB at level 3) made peak RSS ~115 MiB higher for large payloads.
        encoder
            .set_parameter(zstd::stream::raw::CParameter::JobSize(MT_JOB_SIZE))
            .map_err(|e| Error::io("cannot start zstd workers for", "bundle", e))?;
    }
    // tar copies in 8 KiB pieces: batch them so zstd sees large writes.
    let mut tar = tar::Builder::new(BufWriter::with_capacity(IO_BUF, encoder));
    tar.mode(tar::HeaderMode::Deterministic);

    let mut header = regular_header(json.len() as u64, 0o600, 0, 0);
    tar.append_data(&mut header, MANIFEST_NAME, json.as_slice())
        .map_err(|e| Error::io("cannot write", "bundle", e))?;
    Ok(tar)
}

fn append_dir<W: Write>(tar: &mut Tar<W>, item: &crate::archive::Item) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(item.mode);
    h.set_uid(item.uid.into());
    h.set_gid(item.gid.into());
    h.set_mtime(0);
    tar.append_data(&mut h, item.archive_path(), io::empty())
        .map_err(|e| Error::io("cannot write", "bundle", e))
}

/// Ends the tar archive and the zstd stream.
fn finish<W: Write>(tar: Tar<W>) -> Result<W> {
    let encoder = tar
        .into_inner()
        .and_then(|b| b.into_inner().map_err(|e| e.into_error()))
        .map_err(|e| Error::io("cannot write", "bundle", e))?;
    encoder
        .finish()
        .map_err(|e| Error::io("cannot write", "bundle", e))
}

fn changed(path: &Path) -> Error {
    Error::io(
        "cannot pack",
        path,
        io::Error::other("the file changed while vault was packing it; run `vault pack` again"),
    )
}

fn regular_header(size: u64, mode: u32, uid: u32, gid: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(uid.into());
    h.set_gid(gid.into());
    h.set_mtime(0);
    h
}

/// Reports each read to the progress callback: one call per buffer refill (256 KiB), so a
/// bar moves within a large file, not only between files.
struct Reported<'p, R>(R, &'p dyn Fn(u64));

impl<R: Read> Read for Reported<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        (self.1)(n as u64);
        Ok(n)
    }
}

/// Counts what passes through.
struct CountingReader<R>(R, u64);

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1 += n as u64;
        Ok(n)
    }
}

/// Hashes and counts what passes through.
pub(crate) struct HashingReader<R> {
    pub(crate) inner: R,
    pub(crate) hasher: Sha256,
    pub(crate) count: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}
