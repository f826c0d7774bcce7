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
}
