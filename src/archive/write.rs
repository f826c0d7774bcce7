//! Writing the payload: `vault.json` first, then each item as a tar entry, through zstd.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{BundleManifest, Kind, MANIFEST_NAME};
use crate::{Error, Result};

/// The buffer a file goes through to zstd: a small file (the header, its data, the padding)
/// fits whole; a larger one passes in pieces of this size.
const IO_BUF: usize = 256 * 1024;

/// zstd job size when compressing on worker threads (bounds pack's memory).
const MT_JOB_SIZE: u32 = 1 << 20;

/// How much of the data before a job its worker loads as history: 1/32 of the window (64 KiB
/// at level 3). libzstd's default for this level, 1/8 (256 KiB), made a worker index a
/// quarter of a 1 MiB job again before compressing it: about 8 % of the compression's CPU
/// for 0.4 % smaller text.
const MT_OVERLAP_LOG: u32 = 4;

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
    let mut tar = TarZstd::start(out, manifest, compression)?;
    for (i, (item, source)) in manifest.items.iter().zip(sources).enumerate() {
        let name = item.archive_path();
        match (item.kind, source) {
            (Kind::Dir, _) => append_dir(&mut tar, item)?,
            (Kind::File, Some(path)) => {
                let file = File::open(path).map_err(|e| Error::io("cannot read", path, e))?;
                let mut h = regular_header(item.size, item.mode, item.uid, item.gid);
                let stamp = settled.get(i).copied().flatten();
                let mut hasher = stamp.is_none().then(Sha256::new);
                let streamed =
                    tar.append_file(&mut h, &name, &file, item.size, hasher.as_mut(), progress);
                match streamed {
                    Ok(()) => {}
                    // Shorter than when it was hashed.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Err(changed(path))
                    }
                    Err(e) => return Err(Error::io("cannot pack", path, e)),
                }
                let same = match (stamp, hasher) {
                    (Some(stamp), _) => {
                        Stamp::of(&file).map_err(|e| Error::io("cannot read", path, e))? == stamp
                    }
                    (None, Some(hasher)) => {
                        Some(hex::encode(hasher.finalize()).as_str()) == item.sha256.as_deref()
                    }
                    (None, None) => unreachable!("a file without a stamp is hashed"),
                };
                if !same {
                    return Err(changed(path));
                }
            }
            (Kind::File, None) => unreachable!("pack plan gives every file a source"),
        }
    }
    tar.finish()
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
    let mut tar = TarZstd::start(out, manifest, compression)?;
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
                tar.append(&mut h, &item.archive_path(), data)
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
    tar.finish()
}

/// A tar archive written into a zstd stream. Each entry's header blocks come from the `tar`
/// crate's builder (so a long name gets its GNU extension entry exactly as `tar` writes it),
/// and a file's data goes from one reused buffer straight into zstd: one `read` per small
/// file and one copy into zstd, where a `BufReader`, `io::copy` and a `BufWriter` made three.
struct TarZstd<W: Write> {
    zstd: zstd::Encoder<'static, W>,
    /// Writes only headers: its output is taken after each entry.
    headers: tar::Builder<Vec<u8>>,
    /// A file's header, data and padding on their way to zstd; wiped when dropped (the data
    /// may be a secret).
    buf: Zeroizing<Vec<u8>>,
}

const BLOCK: usize = 512;

impl<W: Write> TarZstd<W> {
    /// The zstd stream with `vault.json` written.
    fn start(out: W, manifest: &BundleManifest, compression: Compression) -> Result<Self> {
        let json = serde_json::to_vec_pretty(manifest)
            .map_err(|e| Error::io("cannot encode", MANIFEST_NAME, io::Error::other(e)))?;
        let mut zstd = zstd::Encoder::new(out, compression.level)
            .map_err(|e| Error::io("cannot start zstd for", "bundle", e))?;
        if compression.threads > 0 {
            zstd.multithread(compression.threads)
                .map_err(|e| Error::io("cannot start zstd workers for", "bundle", e))?;
            // Each worker holds about two jobs of input and output; libzstd's default job (4×
            // the window, 8 MiB at level 3) made peak RSS ~115 MiB higher for large payloads.
            zstd.set_parameter(zstd::stream::raw::CParameter::JobSize(MT_JOB_SIZE))
                .map_err(|e| Error::io("cannot start zstd workers for", "bundle", e))?;
            zstd.set_parameter(zstd::stream::raw::CParameter::OverlapSizeLog(
                MT_OVERLAP_LOG,
            ))
            .map_err(|e| Error::io("cannot start zstd workers for", "bundle", e))?;
        }
        let mut tar = TarZstd {
            zstd,
            headers: tar::Builder::new(Vec::with_capacity(4 * BLOCK)),
            buf: Zeroizing::new(vec![0; IO_BUF]),
        };
        let mut header = regular_header(json.len() as u64, 0o600, 0, 0);
        tar.append(&mut header, MANIFEST_NAME, &json)
            .map_err(|e| Error::io("cannot write", "bundle", e))?;
        Ok(tar)
    }

    /// Writes `h`'s header blocks for an entry named `name` (which sets its path and
    /// checksum) into `self.headers`' buffer and returns them.
    fn header(&mut self, h: &mut tar::Header, name: &str) -> io::Result<Vec<u8>> {
        self.headers.get_mut().clear();
        // With no data, `append_data` writes the header blocks alone (no padding); the
        // caller writes the `h.size()` bytes and their padding.
        self.headers.append_data(h, name, io::empty())?;
        Ok(std::mem::take(self.headers.get_mut()))
    }

    /// Gives the header buffer back for the next entry.
    fn reuse(&mut self, mut headers: Vec<u8>) {
        headers.clear();
        *self.headers.get_mut() = headers;
    }

    /// An entry whose data is in memory.
    fn append(&mut self, h: &mut tar::Header, name: &str, data: &[u8]) -> io::Result<()> {
        let headers = self.header(h, name)?;
        self.zstd.write_all(&headers)?;
        self.zstd.write_all(data)?;
        self.zstd
            .write_all(&[0; BLOCK][..padding(data.len() as u64)])?;
        self.reuse(headers);
        Ok(())
    }

    /// An entry of `size` bytes read from `file`, hashed into `hasher` if given. A file that
    /// is shorter than `size` is an `UnexpectedEof` error; only `size` bytes are read.
    fn append_file(
        &mut self,
        h: &mut tar::Header,
        name: &str,
        mut file: &File,
        size: u64,
        mut hasher: Option<&mut Sha256>,
        progress: &dyn Fn(u64),
    ) -> io::Result<()> {
        let headers = self.header(h, name)?;
        // The header goes in front of the data when it fits (it does unless the name is
        // longer than the buffer), so that a small file is one write into zstd.
        let mut used = match headers.len() <= self.buf.len() - BLOCK {
            true => {
                self.buf[..headers.len()].copy_from_slice(&headers);
                headers.len()
            }
            false => {
                self.zstd.write_all(&headers)?;
                0
            }
        };
        self.reuse(headers);
        let buf = &mut self.buf[..];
        let mut left = size;
        while left > 0 {
            let n = (buf.len() - used).min(usize::try_from(left).unwrap_or(usize::MAX));
            let data = &mut buf[used..used + n];
            file.read_exact(data)?;
            if let Some(hasher) = hasher.as_mut() {
                hasher.update(&*data);
            }
            progress(n as u64);
            used += n;
            left -= n as u64;
            if left > 0 {
                self.zstd.write_all(&buf[..used])?;
                used = 0;
            }
        }
        let pad = padding(size);
        if used + pad > buf.len() {
            self.zstd.write_all(&buf[..used])?;
            used = 0;
        }
        buf[used..used + pad].fill(0);
        self.zstd.write_all(&buf[..used + pad])
    }

    /// Ends the tar archive (two zero blocks, as `tar::Builder::finish`) and the zstd stream.
    fn finish(mut self) -> Result<W> {
        self.zstd
            .write_all(&[0; 2 * BLOCK])
            .map_err(|e| Error::io("cannot write", "bundle", e))?;
        self.zstd
            .finish()
            .map_err(|e| Error::io("cannot write", "bundle", e))
    }
}

/// Zero bytes after `len` bytes of data up to the next tar block.
fn padding(len: u64) -> usize {
    (BLOCK - (len % BLOCK as u64) as usize) % BLOCK
}

/// A folder's tar header: its mode and owner, no size, mtime 0.
fn dir_header(item: &crate::archive::Item) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(item.mode);
    h.set_uid(item.uid.into());
    h.set_gid(item.gid.into());
    h.set_mtime(0);
    h
}

fn append_dir<W: Write>(tar: &mut TarZstd<W>, item: &crate::archive::Item) -> Result<()> {
    let mut h = dir_header(item);
    tar.append(&mut h, &item.archive_path(), &[])
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

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
