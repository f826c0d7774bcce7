//! Reading the payload: every tar entry is checked against the in-bundle manifest (type,
//! name, size, SHA-256, order) and the stream is read to its authenticated end. Nothing here
//! writes to disk; a [`Sink`] receives the contents and decides where they are staged.

use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::ustar::{kind_name, TarError, TarReader};
use super::write::HashingReader;
use super::{BundleManifest, Item, Kind, Limits, MANIFEST_NAME};
use crate::bundle::FailureProbe;
use crate::escape::escape_bytes;
use crate::{Error, Result};

/// Most trailing zero bytes accepted after the tar end marker (tar pads to records).
const MAX_TRAILING_ZEROS: u64 = 1 << 20;
/// Largest zstd window accepted (log2 bytes).
const MAX_WINDOW_LOG: u32 = 27;

/// Receives a bundle's contents while [`walk`] verifies them.
pub trait Sink {
    /// Called with the validated manifest before any item: the place to refuse early.
    fn manifest(&mut self, manifest: &BundleManifest) -> Result<()>;
    /// Whether the contents of this item are wanted; unwanted files are verified and dropped.
    fn wants(&self, index: usize, item: &Item) -> bool;
    /// A directory item, in bundle order.
    fn dir(&mut self, index: usize, item: &Item) -> Result<()>;
    /// A file item: `data` yields at most `item.size` bytes; the sink must read it to its end.
    /// The hash is checked after this returns: until [`walk`] returns Ok, nothing is trusted.
    fn file(&mut self, index: usize, item: &Item, data: &mut dyn Read) -> Result<()>;
}

/// A sink that wants nothing: `vault inspect` and dry runs, which still verify everything.
pub struct Discard;

impl Sink for Discard {
    fn manifest(&mut self, _: &BundleManifest) -> Result<()> {
        Ok(())
    }
    fn wants(&self, _: usize, _: &Item) -> bool {
        false
    }
    fn dir(&mut self, _: usize, _: &Item) -> Result<()> {
        Ok(())
    }
    fn file(&mut self, _: usize, _: &Item, _: &mut dyn Read) -> Result<()> {
        Ok(())
    }
}

/// Verifies the whole payload in `input` (the decrypted bundle stream) and feeds `sink`.
/// `name` labels errors; `probe` (from [`crate::bundle::Payload::probe`]) tells an
/// authentication failure from a malformed archive.
pub fn walk<R: Read>(
    input: R,
    name: &Path,
    limits: &Limits,
    probe: Option<&FailureProbe>,
    sink: &mut dyn Sink,
) -> Result<BundleManifest> {
    let decoder = match decompress(buffered(input)) {
        Ok(d) => d,
        Err(e) => return Err(Walker::new(name, probe).stream_error(e)),
    };
    walk_tar(decoder, name, limits, probe, sink)
}

/// `input` with the read buffer zstd's own constructor would give it.
pub fn buffered<R: Read>(input: R) -> io::BufReader<R> {
    io::BufReader::with_capacity(zstd::zstd_safe::DCtx::in_size(), input)
}

/// The zstd decoder of a payload, its window capped.
fn decompress<B: BufRead>(input: B) -> io::Result<zstd::Decoder<'static, B>> {
    let mut decoder = zstd::Decoder::with_buffer(input)?;
    // A frame may ask for a window of up to 2 GiB of decoder memory; 2^27 (128 MiB, libzstd's
    // own default, enough for `vault pack --level 22`) is stated here so it cannot drift.
    decoder.window_log_max(MAX_WINDOW_LOG)?;
    Ok(decoder)
}

/// [`walk`] on the decompressed tar stream.
fn walk_tar<R: Read>(
    decoder: R,
    name: &Path,
    limits: &Limits,
    probe: Option<&FailureProbe>,
    sink: &mut dyn Sink,
) -> Result<BundleManifest> {
    let mut w = Walker::new(name, probe);
    let mut tar = TarReader::new(decoder);
    let manifest = w.read_manifest(&mut tar, limits)?;
    sink.manifest(&manifest)?;
    for (index, item) in manifest.items.iter().enumerate() {
        w.read_item(&mut tar, index, item, sink)?;
    }
    if let Some(extra) = tar.next_entry().map_err(|e| w.tar_error(e))? {
        return Err(w.bad(format!(
            "the archive holds an entry not in its manifest: \"{}\"",
            escape_bytes(&extra.name)
        )));
    }
    // Read to the very end: only the last chunk proves the bundle was not cut short. Trailing
    // zeros are counted from the end of the end-of-archive marker.
    let mut rest = tar.into_inner();
    let mut buf = [0u8; 16 * 1024];
    let mut trailing = 0u64;
    loop {
        let n = match rest.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(w.stream_error(e)),
        };
        if n == 0 {
            break;
        }
        trailing += n as u64;
        if trailing > MAX_TRAILING_ZEROS || buf[..n].iter().any(|&b| b != 0) {
            return Err(w.bad("there is data after the end of the archive".into()));
        }
    }
    Ok(manifest)
}

struct Walker {
    name: PathBuf,
    probe: Option<FailureProbe>,
}

impl Walker {
    fn new(name: &Path, probe: Option<&FailureProbe>) -> Walker {
        Walker {
            name: name.to_path_buf(),
            probe: probe.cloned(),
        }
    }

    fn bad(&self, why: String) -> Error {
        Error::BadPayload {
            path: self.name.clone(),
            why,
        }
    }

    /// An error from reading the stream: tampering if authentication failed, else a bad archive.
    fn stream_error(&self, e: io::Error) -> Error {
        if let Some(t) = self.tampered() {
            return t;
        }
        self.bad(format!("the archive is malformed: {e}"))
    }

    fn tampered(&self) -> Option<Error> {
        let failure = self.probe.as_ref().and_then(|p| p.get())?;
        Some(Error::Tampered {
            path: self.name.clone(),
            why: failure.to_string(),
        })
    }

    fn tar_error(&self, e: TarError) -> Error {
        match e {
            TarError::Io(e) => self.stream_error(e),
            TarError::Bad(why) => self.tampered().unwrap_or_else(|| self.bad(why)),
        }
    }

    fn read_manifest<R: Read>(
        &mut self,
        tar: &mut TarReader<R>,
        limits: &Limits,
    ) -> Result<BundleManifest> {
        let Some(header) = tar.next_entry().map_err(|e| self.tar_error(e))? else {
            return Err(self.bad("the archive is empty".into()));
        };
        if header.kind != b'0' || header.name != MANIFEST_NAME.as_bytes() {
            return Err(self.bad(format!("the archive does not start with {MANIFEST_NAME}")));
        }
        let size = header.size;
        if size > limits.max_manifest_bytes {
            return Err(self.bad(format!(
                "{MANIFEST_NAME} is {size} bytes (at most {} allowed)",
                limits.max_manifest_bytes
            )));
        }
        let mut json = Zeroizing::new(vec![0u8; size as usize]);
        tar.read_exact(&mut json)
            .map_err(|e| self.stream_error(e))?;
        let manifest: BundleManifest = serde_json::from_slice(&json)
            .map_err(|e| self.bad(format!("{MANIFEST_NAME} is invalid: {e}")))?;
        manifest
            .validate(limits)
            .map_err(|why| self.bad(format!("{MANIFEST_NAME}: {why}")))?;
        Ok(manifest)
    }

    fn read_item<R: Read>(
        &mut self,
        tar: &mut TarReader<R>,
        index: usize,
        item: &Item,
        sink: &mut dyn Sink,
    ) -> Result<()> {
        let expected = item.archive_path();
        let Some(header) = tar.next_entry().map_err(|e| self.tar_error(e))? else {
            return Err(self.bad(format!("the archive ends before item {index} ({expected})")));
        };
        let path = &header.name;
        let path_ok = path.as_slice() == expected.as_bytes()
            || (item.kind == Kind::Dir && path.strip_suffix(b"/") == Some(expected.as_bytes()));
        if !path_ok {
            return Err(self.bad(format!(
                "entry {} is \"{}\", but the manifest says \"{expected}\"",
                index + 1,
                escape_bytes(path)
            )));
        }
        let size = header.size;
        match (item.kind, header.kind) {
            (Kind::Dir, b'5') if size == 0 => {
                if sink.wants(index, item) {
                    sink.dir(index, item)?;
                }
                Ok(())
            }
            (Kind::File, b'0') if size == item.size => {
                let mut data = HashingReader {
                    inner: &mut *tar,
                    hasher: Sha256::new(),
                    count: 0,
                };
                if sink.wants(index, item) {
                    let mut recording = RecordingReader { inner: &mut data, error: None };
                    if let Err(e) = sink.file(index, item, &mut recording) {
                        // A read error inside the sink is the stream's, not the sink's.
                        return Err(match recording.error {
                            Some(io) => self.stream_error(io),
                            None => e,
                        });
                    }
                }
                // Whatever the sink left unread is still verified.
                io::copy(&mut data, &mut io::sink()).map_err(|e| self.stream_error(e))?;
                if data.count != item.size {
                    return Err(self.bad(format!("{expected}: the archive holds fewer bytes than the manifest says")));
                }
                let digest = hex::encode(data.hasher.finalize());
                if Some(digest.as_str()) != item.sha256.as_deref() {
                    return Err(self.bad(format!("{expected}: SHA-256 does not match the manifest")));
                }
                Ok(())
            }
            (Kind::Dir, b'5') => Err(self.bad(format!(
                "{expected}: a directory entry with data ({size} bytes)"
            ))),
            (Kind::File, b'0') => Err(self.bad(format!(
                "{expected}: the archive says {size} bytes, the manifest {}",
                item.size
            ))),
            (_, other) => Err(self.bad(format!(
                "{expected} is a {} in the archive but a {} in the manifest; bundles hold only regular files (type 0) and directories (type 5)",
                kind_name(other),
                if item.kind == Kind::Dir { "directory" } else { "file" }
            ))),
        }
    }
}

/// Keeps the first read error, so the walker can classify errors a sink wrapped.
struct RecordingReader<'a, R: Read> {
    inner: &'a mut R,
    error: Option<io::Error>,
}

impl<R: Read> Read for RecordingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if self.error.is_none() {
                self.error = Some(io::Error::new(e.kind(), e.to_string()));
            }
        })
    }
}

/// [`walk`] split over two threads: this one decompresses `input` (for a bundle, the
/// decrypted stream, read without a copy when it comes from [`read_ahead`]), a second one does
/// everything else (tar, SHA-256, the sink), so the two halves of the work overlap
/// (docs/BENCHMARKS.md). The same checks in the same order, the same errors: the second
/// thread runs [`walk`]'s tar half on the bytes this one passes along in order, and sees a
/// read error (of the input, or of zstd) exactly where it happened.
pub fn walk_pipelined<B: BufRead>(
    input: B,
    name: &Path,
    limits: &Limits,
    probe: Option<&FailureProbe>,
    sink: &mut (dyn Sink + Send),
) -> Result<BundleManifest> {
    let decoder = match decompress(input) {
        Ok(d) => d,
        Err(e) => return Err(Walker::new(name, probe).stream_error(e)),
    };
    read_ahead(decoder, |plain| walk_tar(plain, name, limits, probe, sink)).unwrap_or_else(|_| {
        Err(Error::BadPayload {
            path: name.to_path_buf(),
            why: "the verifying thread panicked".into(),
        })
    })
}

/// Runs `consume` on a second thread, reading `input` on this one: for a bundle, this thread
/// decrypts while the other decompresses and walks (unlock moves a third of its work off
/// the decompressing thread this way; docs/BENCHMARKS.md). `consume` sees exactly the bytes
/// and the error `input` gave, where it gave them; if it stops early, so does the reading.
pub(crate) fn read_ahead<R: Read, T: Send>(
    mut input: R,
    consume: impl FnOnce(ChannelReader) -> T + Send,
) -> std::thread::Result<T> {
    let (tx, rx) = mpsc::sync_channel::<io::Result<Zeroizing<Vec<u8>>>>(PIPE_DEPTH);
    // Buffers come back for reuse; they hold plaintext, so they are zeroized when dropped.
    let (back_tx, back_rx) = mpsc::channel::<Zeroizing<Vec<u8>>>();
    std::thread::scope(|s| {
        let worker = s.spawn(move || {
            consume(ChannelReader {
                rx,
                back: back_tx,
                current: Zeroizing::new(Vec::new()),
                pos: 0,
            })
        });
        loop {
            let mut buf = back_rx
                .try_recv()
                .unwrap_or_else(|_| Zeroizing::new(Vec::with_capacity(PIPE_CHUNK)));
            buf.resize(PIPE_CHUNK, 0);
            let msg = match read_full(&mut input, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    Ok(buf)
                }
                Err(e) => Err(e),
            };
            let failed = msg.is_err();
            // A closed channel means the consumer stopped early: its result says why.
            if tx.send(msg).is_err() || failed {
                break;
            }
        }
        drop(tx);
        worker.join()
    })
}

/// Chunks in flight between the two threads of [`read_ahead`] (memory: depth × chunk).
const PIPE_DEPTH: usize = 16;
const PIPE_CHUNK: usize = 256 * 1024;

/// Reads until `buf` is full or the input ends.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The reading end of [`walk_pipelined`] and [`read_ahead`]: the chunks in order, then the
/// input's error or its end.
pub(crate) struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Zeroizing<Vec<u8>>>>,
    back: mpsc::Sender<Zeroizing<Vec<u8>>>,
    current: Zeroizing<Vec<u8>>,
    pos: usize,
}

impl BufRead for ChannelReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(Ok(next)) => {
                    let used = std::mem::replace(&mut self.current, next);
                    let _ = self.back.send(used);
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The sender is dropped only after the input's end (or after an error sent above).
                Err(_) => return Ok(&[]),
            }
        }
        Ok(&self.current[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.current.len());
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let ready = self.fill_buf()?;
        let n = buf.len().min(ready.len());
        buf[..n].copy_from_slice(&ready[..n]);
        self.consume(n);
        Ok(n)
    }
}
