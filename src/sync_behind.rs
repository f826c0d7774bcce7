//! Making written data durable behind the writer, on a thread of its own.
//!
//! On a machine with a lot of RAM the kernel starts writeback only when gigabytes are dirty,
//! so without help the disk idles while vault computes and then writes everything while the
//! final `fsync`/`syncfs` waits. [`SyncBehind`] runs a sync every so many bytes written, so
//! the disk works while the CPU does; submitting that writeback costs the writer nothing.
//!
//! Errors are returned, not dropped: Linux reports a writeback error once per open file
//! description, and the descriptor synced here shares the caller's, whose final sync would
//! otherwise see success.

use std::io;
use std::sync::mpsc;
use std::thread::JoinHandle;

pub struct SyncBehind {
    every: u64,
    unsynced: u64,
    kick: Option<mpsc::SyncSender<()>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl SyncBehind {
    /// Starts a thread named `name` that runs `sync` each time [`SyncBehind::wrote`] has
    /// counted `every` more bytes. If the thread cannot start, writing still works; only the
    /// overlap is lost.
    pub fn start(
        name: &str,
        every: u64,
        mut sync: impl FnMut() -> io::Result<()> + Send + 'static,
    ) -> SyncBehind {
        let (kick, kicks) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for () in kicks {
                    sync()?;
                }
                Ok(())
            })
            .ok();
        SyncBehind {
            every,
            unsynced: 0,
            kick: thread.as_ref().map(|_| kick),
            thread,
        }
    }

    /// One that never syncs (when there is nothing to sync through).
    pub fn none() -> SyncBehind {
        SyncBehind {
            every: u64::MAX,
            unsynced: 0,
            kick: None,
            thread: None,
        }
    }

    /// Counts `n` bytes written; asks for a sync every `every` bytes.
    pub fn wrote(&mut self, n: u64) {
        self.unsynced += n;
        if self.unsynced >= self.every {
            self.unsynced = 0;
            if let Some(k) = &self.kick {
                // Full means a sync is already queued: it will cover these bytes too.
                let _ = k.try_send(());
            }
        }
    }

    /// Waits for a sync in progress and returns the first error any sync had. (Dropped
    /// instead, the thread ends by itself after its current sync.)
    pub fn finish(self) -> io::Result<()> {
        drop(self.kick);
        match self.thread.map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(io::Error::other("the sync thread panicked")),
        }
    }
}

/// Asks the kernel to start writing `file`'s dirty pages to the disk now, without waiting
/// for it (Linux's `sync_file_range(SYNC_FILE_RANGE_WRITE)`; elsewhere nothing). What that
/// write-back meets is reported by the `fsync`/`syncfs` that makes the data durable later,
/// not here.
// The call below has no safe wrapper in rustix or std.
#[allow(unsafe_code)]
pub fn start_writeback(file: &impl std::os::fd::AsFd) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let fd = file.as_fd().as_raw_fd();
        // SAFETY: a system call on a descriptor open for its duration, with no pointers.
        unsafe {
            libc::sync_file_range(fd, 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

/// A file written by a thread of its own: [`Write`] gathers the data into chunks of
/// [`WriteBehind::CHUNK`] bytes and hands each to the thread, which writes it and starts the
/// write-back of every `every` bytes ([`start_writeback`]). The writer (pack's encryption)
/// then spends no time in the kernel's write path, which for a large bundle costs about as
/// much as encrypting it. Written chunks travel back to be filled again.
///
/// The thread's first error is returned by the next [`Write::write`] after it (in place of
/// a closed pipe) or by [`WriteBehind::finish`]. Dropped instead, the thread writes what it
/// has and is waited for.
pub struct WriteBehind {
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    spare: mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    thread: Option<JoinHandle<io::Result<std::fs::File>>>,
}

impl WriteBehind {
    /// Bytes handed over at a time.
    pub const CHUNK: usize = 1 << 20;
    /// Chunks in flight (memory: depth × chunk).
    const DEPTH: usize = 4;

    /// Starts the thread that writes to `file`.
    pub fn start(mut file: std::fs::File, every: u64) -> io::Result<WriteBehind> {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(Self::DEPTH);
        let (back, spare) = mpsc::sync_channel::<Vec<u8>>(Self::DEPTH + 2);
        let thread = std::thread::Builder::new()
            .name("write-behind".into())
            .spawn(move || -> io::Result<std::fs::File> {
                use std::io::Write as _;
                let mut unsent = 0u64;
                for mut chunk in rx {
                    file.write_all(&chunk)?;
                    unsent += chunk.len() as u64;
                    if unsent >= every {
                        start_writeback(&file);
                        unsent = 0;
                    }
                    chunk.clear();
                    let _ = back.try_send(chunk);
                }
                Ok(file)
            })?;
        Ok(WriteBehind {
            tx: Some(tx),
            spare,
            buf: Vec::with_capacity(Self::CHUNK),
            thread: Some(thread),
        })
    }

    /// Hands the gathered bytes to the thread; if it has stopped, returns its error.
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(Self::CHUNK));
        let full = std::mem::replace(&mut self.buf, next);
        let sent = self.tx.as_ref().map(|tx| tx.send(full));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(self.stop().err().unwrap_or_else(|| {
                io::Error::new(io::ErrorKind::BrokenPipe, "the writing thread stopped")
            })),
        }
    }

    /// Closes the pipe and waits for the thread: the file, or the thread's first error.
    fn stop(&mut self) -> io::Result<std::fs::File> {
        drop(self.tx.take());
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the writing thread panicked")),
            None => Err(io::Error::other("the writing thread has already stopped")),
        }
    }

    /// Writes what is left, waits for the thread and returns the file. Its write-back may
    /// still be under way: the caller's `fsync` makes it durable and reports its errors.
    pub fn finish(mut self) -> io::Result<std::fs::File> {
        self.send()?;
        self.stop()
    }
}

impl io::Write for WriteBehind {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(Self::CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == Self::CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks go when full or at the end; the file is made durable by the caller.
        Ok(())
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn counting(fail: bool) -> (Arc<AtomicUsize>, impl FnMut() -> io::Result<()> + Send) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        (calls, move || {
            c.fetch_add(1, Ordering::SeqCst);
            if fail {
                Err(io::Error::other("EIO"))
            } else {
                Ok(())
            }
        })
    }

    #[test]
    fn syncs_only_once_enough_is_written() {
        let (calls, sync) = counting(false);
        let mut b = SyncBehind::start("test-sync", 10, sync);
        b.wrote(9);
        b.finish().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        let (calls, sync) = counting(false);
        let mut b = SyncBehind::start("test-sync", 10, sync);
        b.wrote(9);
        b.wrote(1);
        b.finish().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_sync_error_comes_back_from_finish() {
        let (calls, sync) = counting(true);
        let mut b = SyncBehind::start("test-sync", 10, sync);
        b.wrote(10);
        let e = b.finish().unwrap_err();
        assert_eq!(e.to_string(), "EIO");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn write_behind_writes_everything_in_order() {
        use std::io::{Read, Seek, Write};
        let f = tempfile::tempfile().unwrap();
        let mut w = WriteBehind::start(f, 3 << 20).unwrap();
        let data: Vec<u8> = (0..5 * WriteBehind::CHUNK + 12345)
            .map(|i| (i % 251) as u8)
            .collect();
        for piece in data.chunks(65_552) {
            w.write_all(piece).unwrap();
        }
        let mut f = w.finish().unwrap();
        f.rewind().unwrap();
        let mut back = Vec::new();
        f.read_to_end(&mut back).unwrap();
        assert!(back == data);
    }

    /// A write the thread could not make comes back as that error, not as a closed pipe.
    #[test]
    fn write_behind_returns_the_threads_error() {
        use std::io::Write;
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        // Opened for reading only: the thread's first write fails with EBADF.
        let f = std::fs::File::open(&p).unwrap();
        let mut w = WriteBehind::start(f, 1 << 20).unwrap();
        let chunk = vec![0u8; WriteBehind::CHUNK];
        let mut err = None;
        for _ in 0..10 {
            if let Err(e) = w.write_all(&chunk) {
                err = Some(e);
                break;
            }
        }
        let e = match err {
            Some(e) => e,
            None => w.finish().unwrap_err(),
        };
        assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e}");
    }
}
