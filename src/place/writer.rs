//! The second and third threads of placement: one writes file contents into the
//! temporaries, one keeps the disk busy while that happens.
//!
//! Creating each temporary, its owner and its mode stay on the caller's thread, in order;
//! only the bytes move here, so the copy into the page cache overlaps the caller's
//! decryption and hashing. Small files (most) are packed one after another into a shared
//! buffer and travel together, up to [`PACKED_FILES`] to a message: one message and at most
//! one wake-up of this thread for a dozen files instead of one each. Buffers travel back to
//! the caller to be filled again: no allocation and no wiping per chunk, and every buffer is
//! wiped once when dropped.
//!
//! The commit must `syncfs` before the renames. So that it has only the tail left to wait
//! for, the disk writes while the CPU decrypts: every [`FLUSH_EVERY`] bytes a [`SyncBehind`]
//! thread runs a `syncfs`, which writes back the files written so far in one batch and
//! commits the file system's journal of the files created; a large file's write-back is also
//! started as it is written (every [`KICK_EVERY`] bytes, and when it is closed). A small
//! file's is not started on its own: one request per small file cost more CPU than the batch
//! does (docs/BENCHMARKS.md measures it). Starting write-back reports no error; the `syncfs`
//! calls do, through the descriptor opened before the first byte.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::sync::mpsc;
use std::thread::JoinHandle;

use zeroize::Zeroizing;

use crate::sync_behind::{start_writeback, SyncBehind};

/// Size of each buffer of file contents handed to the writer.
pub const CHUNK: usize = 256 * 1024;
/// Buffers in flight: bounds the memory the writer holds (8 MiB).
const QUEUE: usize = 32;
/// Written bytes between two background `syncfs` calls.
const FLUSH_EVERY: u64 = 32 << 20;
/// Bytes of one file between two requests to start its write-back.
const KICK_EVERY: u64 = 8 << 20;
/// Most files packed into one buffer: bounds the descriptors in flight (with [`QUEUE`]), and
/// lower under a low limit of open files (see [`packed_files`]).
const PACKED_FILES: usize = 8;
/// A packing buffer with less room than this left is sent.
const PACKED_ROOM: usize = 4 << 10;

pub type Buf = Zeroizing<Vec<u8>>;

enum Op {
    Open(File, String),
    /// A buffer and how many of its bytes are file contents.
    Data(Buf, usize),
    Close,
    /// Whole files packed one after another from the start of one buffer: each file and how
    /// many bytes are its.
    Packed(Buf, Vec<(File, String, usize)>),
}

/// A write error and the target it happened on.
pub type Failure = (String, io::Error);

/// Why copying a file's contents stopped.
pub(super) enum Stop {
    Interrupted(crate::Error),
    Read(io::Error),
    Write(Failure),
}

/// Small files read into one buffer and not sent yet: the buffer, the files in it and the
/// bytes used from its start.
struct Packing {
    buf: Buf,
    files: Vec<(File, String, usize)>,
    used: usize,
}

pub struct Writer {
    tx: Option<mpsc::SyncSender<Op>>,
    back: mpsc::Receiver<Buf>,
    /// Buffers taken but not sent (the read that found a file's end).
    spare: Vec<Buf>,
    packing: Option<Packing>,
    /// Most files to a packing buffer here.
    packed_files: usize,
    thread: Option<JoinHandle<std::result::Result<(), Failure>>>,
}

impl Writer {
    /// `fs` is any descriptor on the target filesystem (what the flusher syncs).
    pub fn start(fs: OwnedFd) -> io::Result<Writer> {
        let (tx, rx) = mpsc::sync_channel::<Op>(QUEUE);
        let (back_tx, back) = mpsc::channel::<Buf>();
        let thread = std::thread::Builder::new()
            .name("vault-place".into())
            .spawn(move || write_loop(rx, back_tx, fs))?;
        Ok(Writer {
            tx: Some(tx),
            back,
            spare: Vec::new(),
            packing: None,
            packed_files: packed_files(),
            thread: Some(thread),
        })
    }

    /// A buffer of [`CHUNK`] bytes to fill: a returned one, or a new one.
    fn buffer(&mut self) -> Buf {
        self.spare
            .pop()
            .or_else(|| self.back.try_recv().ok())
            .unwrap_or_else(|| Zeroizing::new(vec![0; CHUNK]))
    }

    /// Writes what `data` yields into `file` (the temporary for `target`), reading it on
    /// this thread. A file that fits the room left in the packing buffer joins the files
    /// there; a larger one goes as a file of its own, in buffers of [`CHUNK`] bytes.
    pub(super) fn copy(
        &mut self,
        file: File,
        target: &str,
        data: &mut dyn Read,
    ) -> std::result::Result<(), Stop> {
        crate::interrupt::check().map_err(Stop::Interrupted)?;
        let mut packing = match self.packing.take() {
            Some(p) => p,
            None => Packing {
                buf: self.buffer(),
                files: Vec::new(),
                used: 0,
            },
        };
        let at = packing.used;
        let (n, end) = match fill(data, &mut packing.buf[at..]) {
            Ok(r) => r,
            Err(e) => {
                self.packing = Some(packing);
                return Err(Stop::Read(e));
            }
        };
        if end {
            packing.files.push((file, target.to_owned(), n));
            packing.used += n;
            return self.keep_packing(packing);
        }
        // More than the room left. Its first bytes move to a buffer of their own (the files
        // packed before it go now); a file that still fits one buffer starts the next packing.
        let mut first = packing.buf;
        let mut have = n;
        if at > 0 {
            let mut own = self.buffer();
            own[..n].copy_from_slice(&first[at..at + n]);
            let earlier = std::mem::replace(&mut first, own);
            self.send(Op::Packed(earlier, packing.files))
                .map_err(Stop::Write)?;
            let (more, end) = fill(data, &mut first[n..]).map_err(Stop::Read)?;
            have += more;
            if end {
                let files = vec![(file, target.to_owned(), have)];
                return self.keep_packing(Packing {
                    buf: first,
                    files,
                    used: have,
                });
            }
        }
        self.copy_large(file, target, first, have, data)
    }

    /// Keeps `packing` for the next small file, or sends it when it is full.
    fn keep_packing(&mut self, packing: Packing) -> std::result::Result<(), Stop> {
        if packing.files.len() >= self.packed_files || CHUNK - packing.used < PACKED_ROOM {
            self.send(Op::Packed(packing.buf, packing.files))
                .map_err(Stop::Write)
        } else {
            self.packing = Some(packing);
            Ok(())
        }
    }

    /// A file larger than one buffer: `first` holds its first `len` bytes (a full buffer).
    fn copy_large(
        &mut self,
        file: File,
        target: &str,
        first: Buf,
        len: usize,
        data: &mut dyn Read,
    ) -> std::result::Result<(), Stop> {
        self.send(Op::Open(file, target.to_owned()))
            .map_err(Stop::Write)?;
        self.send(Op::Data(first, len)).map_err(Stop::Write)?;
        loop {
            crate::interrupt::check().map_err(Stop::Interrupted)?;
            let mut buf = self.buffer();
            let (n, end) = fill(data, &mut buf).map_err(Stop::Read)?;
            if n > 0 {
                self.send(Op::Data(buf, n)).map_err(Stop::Write)?;
            } else {
                self.spare.push(buf);
            }
            if end {
                return self.send(Op::Close).map_err(Stop::Write);
            }
        }
    }

    fn send(&mut self, op: Op) -> std::result::Result<(), Failure> {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(op).is_ok());
        if sent {
            Ok(())
        } else {
            // The thread stopped: its error says why.
            self.finish().and(Err((
                String::new(),
                io::Error::other("the writer thread stopped"),
            )))
        }
    }

    /// Drops the packed files not sent yet (their temporaries stay empty): for a rollback,
    /// which removes them anyway.
    pub fn discard_packed(&mut self) {
        self.packing = None;
    }

    /// Sends the packed files, then waits until every byte sent was written; the first write
    /// error, with its target.
    pub fn finish(&mut self) -> std::result::Result<(), Failure> {
        if let (Some(p), Some(tx)) = (self.packing.take(), self.tx.as_ref()) {
            // If the thread stopped, its own error is the one to report (below).
            let _ = tx.send(Op::Packed(p.buf, p.files));
        }
        self.tx = None;
        match self.thread.take().map(|t| t.join()) {
            None => Ok(()),
            Some(Ok(r)) => r,
            Some(Err(_)) => Err((
                String::new(),
                io::Error::other("the writer thread panicked"),
            )),
        }
    }
}

fn write_loop(
    rx: mpsc::Receiver<Op>,
    back: mpsc::Sender<Buf>,
    fs: OwnedFd,
) -> std::result::Result<(), Failure> {
    let mut behind = SyncBehind::start("vault-flush", FLUSH_EVERY, move || {
        super::syncfs(&fs).map_err(io::Error::from)
    });
    let mut current: Option<(File, String)> = None;
    // Bytes of the current file not yet handed to write-back.
    let mut unsent = 0u64;
    let result = (|| {
        for op in rx {
            match op {
                Op::Open(f, target) => {
                    current = Some((f, target));
                    unsent = 0;
                }
                Op::Data(buf, len) => {
                    if let Some((f, target)) = current.as_mut() {
                        f.write_all(&buf[..len]).map_err(|e| (target.clone(), e))?;
                        unsent += len as u64;
                        if unsent >= KICK_EVERY {
                            start_writeback(f);
                            unsent = 0;
                        }
                    }
                    behind.wrote(len as u64);
                    // The caller may be gone (it failed); then the buffer is just dropped.
                    let _ = back.send(buf);
                }
                Op::Close => {
                    if let Some((f, _)) = current.take() {
                        start_writeback(&f);
                    }
                }
                Op::Packed(buf, files) => {
                    let mut at = 0;
                    for (mut f, target, len) in files {
                        f.write_all(&buf[at..at + len]).map_err(|e| (target, e))?;
                        at += len;
                    }
                    behind.wrote(at as u64);
                    let _ = back.send(buf);
                }
            }
        }
        Ok(())
    })();
    let flushed = behind.finish().map_err(|e| (String::from("/"), e));
    result.and(flushed)
}

/// How many files may share a packing buffer: [`PACKED_FILES`], or fewer when the limit of
/// open files is so low that the descriptors waiting in the queue would use more than a
/// quarter of it (the placement also keeps every folder it writes into open).
fn packed_files() -> usize {
    let share = super::process::open_files_limit() / 4 / (QUEUE as u64 + 1);
    (share as usize).clamp(1, PACKED_FILES)
}

/// Reads from `data` until `buf` is full or `data` ends: how much, and whether it ended. A
/// read interrupted by a signal is read again.
pub(super) fn fill(data: &mut dyn Read, buf: &mut [u8]) -> io::Result<(usize, bool)> {
    let mut n = 0;
    while n < buf.len() {
        match data.read(&mut buf[n..]) {
            Ok(0) => return Ok((n, true)),
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((n, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(i: usize, len: usize) -> Vec<u8> {
        (0..len).map(|j| (i * 7 + j * 13 % 251) as u8).collect()
    }

    /// Files of every size around the packing's limits, in an order that takes every path:
    /// packed, sent when full or at the file count, a file moved out of a packing it did not
    /// fit into (then packed again, or large), large files of one and more buffers, and
    /// empty files. Every file ends up with exactly its bytes.
    #[test]
    fn every_file_gets_its_bytes_whatever_its_size_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let fs = File::open(dir.path()).unwrap();
        let mut w = Writer::start(fs.into()).unwrap();
        let mut sizes = vec![0, 1, 100 << 10, 100 << 10, 60 << 10, CHUNK, CHUNK + 1, 0];
        sizes.extend([10; PACKED_FILES + 3]);
        sizes.extend([
            CHUNK - 1,
            1,
            CHUNK - PACKED_ROOM,
            PACKED_ROOM,
            3 * CHUNK + 5,
            200 << 10,
        ]);
        sizes.extend([200 << 10, 2 * CHUNK, 7, 0]);
        for (i, &len) in sizes.iter().enumerate() {
            let path = dir.path().join(i.to_string());
            let f = File::create_new(&path).unwrap();
            let bytes = contents(i, len);
            assert!(w.copy(f, &i.to_string(), &mut bytes.as_slice()).is_ok());
        }
        assert!(w.finish().is_ok());
        for (i, &len) in sizes.iter().enumerate() {
            let got = std::fs::read(dir.path().join(i.to_string())).unwrap();
            assert!(got == contents(i, len), "file {i} ({len} bytes)");
        }
    }

    /// A rollback drops the packed files that were not sent: nothing more is written.
    #[test]
    fn discarded_packed_files_are_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let fs = File::open(dir.path()).unwrap();
        let mut w = Writer::start(fs.into()).unwrap();
        let path = dir.path().join("a");
        let f = File::create_new(&path).unwrap();
        assert!(w.copy(f, "a", &mut &b"secret"[..]).is_ok());
        w.discard_packed();
        assert!(w.finish().is_ok());
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }
}
