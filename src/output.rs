//! Writing to standard output and standard error without ever panicking.
//!
//! std's `println!` panics when the write fails, and a reader that went away (`vault inspect B
//! | head -1`) makes it fail with `EPIPE` (Rust ignores `SIGPIPE`, so the process is not simply
//! killed). Here the reader going away only ends the printing: the rest of the output is
//! dropped, and the command's work (files placed, a bundle written, a rollback) goes on to its
//! end exactly as it would have, so a closed pipe never leaves a half-done write behind, nor
//! changes the exit code. Other write errors on standard output (a full disk behind `>`) are
//! kept for the binary to report at the end ([`stdout_error`]); errors on standard error have
//! nowhere to be reported and are dropped.
//!
//! The library and the binary shadow `println!`, `print!`, `eprintln!` and `eprint!` with
//! macros that call [`out`] and [`err`], so no print in vault can panic (see `src/lib.rs`).

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
static STDERR_GONE: AtomicBool = AtomicBool::new(false);
static STDOUT_ERROR: Mutex<Option<io::Error>> = Mutex::new(None);

/// Prints `args` (and a newline if `newline`) on standard output.
pub fn out(args: fmt::Arguments<'_>, newline: bool) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut lock = io::stdout().lock();
    let r = lock
        .write_fmt(args)
        .and_then(|()| {
            if newline {
                lock.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| if newline { Ok(()) } else { lock.flush() });
    if let Err(e) = r {
        stdout_failed(e);
    }
}

/// Writes `bytes` as they are on standard output (a generated completion script, a man page).
pub fn out_bytes(bytes: &[u8]) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut lock = io::stdout().lock();
    if let Err(e) = lock.write_all(bytes).and_then(|()| lock.flush()) {
        stdout_failed(e);
    }
}

/// Prints `args` (and a newline if `newline`) on standard error.
pub fn err(args: fmt::Arguments<'_>, newline: bool) {
    if STDERR_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut lock = io::stderr().lock();
    let r = lock.write_fmt(args).and_then(|()| {
        if newline {
            lock.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    if r.is_err() {
        STDERR_GONE.store(true, Ordering::Relaxed);
    }
}

fn stdout_failed(e: io::Error) {
    STDOUT_GONE.store(true, Ordering::Relaxed);
    if e.kind() != io::ErrorKind::BrokenPipe {
        let mut first = STDOUT_ERROR.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert(e);
    }
}

/// Flushes standard output; a failure other than a closed pipe, here or in any earlier
/// print, is returned (once).
pub fn stdout_error() -> Option<io::Error> {
    if !STDOUT_GONE.load(Ordering::Relaxed) {
        if let Err(e) = io::stdout().lock().flush() {
            stdout_failed(e);
        }
    }
    STDOUT_ERROR
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
}

/// Whether standard output's reader went away (or it failed otherwise).
pub fn stdout_gone() -> bool {
    STDOUT_GONE.load(Ordering::Relaxed)
}
