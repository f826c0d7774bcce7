//! The second and third threads of placement: one writes file contents into the
//! temporaries, one keeps the disk busy while that happens.
//!
//! Creating each temporary, its owner and its mode stay on the caller's thread, in order;
//! only the bytes move here, so the copy into the page cache overlaps the caller's
//! decryption and hashing. A file that fits one buffer (most do) travels as one message.
//! Buffers travel back to the caller to be filled again: no allocation and no wiping per
//! chunk, and every buffer is wiped once when dropped.
//!
//! The commit must `syncfs` before the renames. So that it has only the tail left to wait
//! for, the disk writes while the CPU decrypts: each file's write-back is started as soon as
//! it is written (and every [`KICK_EVERY`] bytes of a large one), and every [`FLUSH_EVERY`]
//! bytes a [`SyncBehind`] thread runs a `syncfs`, which also commits the file system's
//! journal of the files created so far (docs/BENCHMARKS.md measures it). Starting write-back
//! reports no error; the `syncfs` calls do, through the descriptor opened before the first
//! byte.

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

pub type Buf = Zeroizing<Vec<u8>>;

enum Op {
    Open(File, String),
    /// A buffer and how many of its bytes are file contents.
    Data(Buf, usize),
    Close,
    /// A whole file in one buffer (most files): one message instead of three.
    Whole(File, String, Buf, usize),
}

/// A write error and the target it happened on.
pub type Failure = (String, io::Error);

pub struct Writer {
    tx: Option<mpsc::SyncSender<Op>>,
    back: mpsc::Receiver<Buf>,
    /// Buffers taken but not sent (the read that found a file's end).
    spare: Vec<Buf>,
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
            thread: Some(thread),
        })
    }

    /// A buffer of [`CHUNK`] bytes to fill: a returned one, or a new one.
    pub fn buffer(&mut self) -> Buf {
        self.spare
            .pop()
            .or_else(|| self.back.try_recv().ok())
            .unwrap_or_else(|| Zeroizing::new(vec![0; CHUNK]))
    }

    /// Gives back a buffer that was not sent.
    pub fn unused(&mut self, buf: Buf) {
        self.spare.push(buf);
    }

    pub fn open(&mut self, file: File, target: &str) -> std::result::Result<(), Failure> {
        self.send(Op::Open(file, target.to_owned()))
    }

    pub fn data(&mut self, buf: Buf, len: usize) -> std::result::Result<(), Failure> {
        self.send(Op::Data(buf, len))
    }

    pub fn close(&mut self) -> std::result::Result<(), Failure> {
        self.send(Op::Close)
    }

    /// A whole file: opened, written and closed in one message.
    pub fn whole(
        &mut self,
        file: File,
        target: &str,
        buf: Buf,
        len: usize,
    ) -> std::result::Result<(), Failure> {
        self.send(Op::Whole(file, target.to_owned(), buf, len))
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

    /// Waits until every byte sent was written; the first write error, with its target.
    pub fn finish(&mut self) -> std::result::Result<(), Failure> {
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
                Op::Whole(mut f, target, buf, len) => {
                    f.write_all(&buf[..len]).map_err(|e| (target, e))?;
                    start_writeback(&f);
                    behind.wrote(len as u64);
                    let _ = back.send(buf);
                }
            }
        }
        Ok(())
    })();
    let flushed = behind.finish().map_err(|e| (String::from("/"), e));
    result.and(flushed)
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
