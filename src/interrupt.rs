//! SIGINT, SIGTERM and SIGHUP end a run the way any other error does: everything it wrote is
//! removed again, then the process exits with 128 + the signal's number (130 for Ctrl-C).
//!
//! [`install`] starts a thread that receives the signals (signal-hook's self-pipe: nothing
//! but a write happens in the handler itself). What that thread does depends on the work in
//! progress:
//!
//! - While a [`Polled`] scope is alive (held by the layers above while they hold temporaries,
//!   created directories or renamed files: placing files, staging, a rekey's staged files),
//!   it only records the signal. The copy and commit loops call [`check`], which returns
//!   [`Error::Interrupted`]; that error travels the normal error path, whose rollback removes
//!   everything, and the binary exits 128 + n. A second signal ends the process at once (the
//!   next run removes what is left, see below).
//! - Otherwise nothing needs more than removing the temporaries registered with
//!   [`TempFile`] (a bundle being packed): the thread removes them, restores the terminal if
//!   a no-echo prompt was showing ([`TtyGuard`]), and exits. So a signal while blocked
//!   (at the passphrase prompt, in the key derivation) still ends the run promptly.
//!
//! The decision and any new scope take the same lock, so a scope cannot start between the
//! check and the exit.
//!
//! Once a command has committed (every file renamed into place and made durable, a bundle
//! renamed to its name, a staging area handed over for wiping: [`commit`]), there is nothing
//! left to undo: a signal from then on is only noted, the command finishes, and it ends with
//! its own exit code (0), saying that the signal came too late to stop it.
//!
//! SIGKILL and power loss cannot be caught: temporaries carry vault's own name pattern and
//! mark of their writer, and a later run removes those whose writer is gone, saying so
//! ([`crate::stale`]).

use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::{Error, Result};

/// The signals handled.
pub const SIGNALS: [i32; 3] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
];

/// The first signal received (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// Called with the signal and the message just before an immediate exit (see
/// [`before_immediate_exit`]).
static BEFORE_EXIT: std::sync::OnceLock<fn(i32, &str)> = std::sync::OnceLock::new();

/// Has `report` called with the signal and the message just before vault exits at once on a
/// signal (a prompt, the key derivation, a second signal): the command line's `--json`
/// document. Set once; later calls are ignored.
pub fn before_immediate_exit(report: fn(i32, &str)) {
    let _ = BEFORE_EXIT.set(report);
}

/// Set once the command has committed (see [`commit`]).
static COMMITTED: AtomicBool = AtomicBool::new(false);

struct State {
    /// Live [`Polled`] scopes.
    polled: usize,
    /// Temporaries to remove on an immediate exit, by registration id.
    temps: Vec<(u64, PathBuf)>,
    next_id: u64,
    /// Terminal settings to restore on an immediate exit.
    tty: Option<(OwnedFd, rustix::termios::Termios)>,
    /// Signals the watching thread has handled.
    seen: usize,
}

static STATE: Mutex<State> = Mutex::new(State {
    polled: 0,
    temps: Vec::new(),
    next_id: 0,
    tty: None,
    seen: 0,
});

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts handling [`SIGNALS`] (once, at the start of the binary).
// SAFETY: registers a signal handler whose only action is an atomic compare-and-swap.
#[allow(unsafe_code)]
pub fn install() -> io::Result<()> {
    for sig in SIGNALS {
        // Recorded in the handler itself, so that a call the signal cut short (EINTR) already
        // sees it when it returns.
        // SAFETY: the action only does an atomic compare-and-swap, which is async-signal-safe.
        unsafe {
            signal_hook::low_level::register(sig, move || {
                let _ = RECEIVED.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
            })?;
        }
    }
    let mut signals = signal_hook::iterator::Signals::new(SIGNALS)?;
    std::thread::Builder::new()
        .name("vault-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                on_signal(sig);
            }
        })?;
    Ok(())
}

// Exits with 128 + n on purpose: temporaries and the terminal are restored above, by hand.
#[allow(clippy::exit)]
fn on_signal(sig: i32) {
    let mut st = state();
    st.seen += 1;
    if COMMITTED.load(Ordering::SeqCst) {
        // Nothing to undo any more: the command finishes (see `commit`).
        return;
    }
    if st.polled > 0 && st.seen == 1 {
        // The work in progress sees it at its next check and rolls back.
        return;
    }
    let removed = st
        .temps
        .iter()
        .filter(|(_, p)| std::fs::remove_file(p).is_ok())
        .count();
    if let Some((fd, termios)) = st.tty.take() {
        let _ = rustix::termios::tcsetattr(&fd, rustix::termios::OptionalActions::Now, &termios);
        eprintln!();
    }
    let what = if st.polled > 0 {
        "; stopped without finishing the rollback (the next run removes what is left)".to_owned()
    } else if removed > 0 {
        format!("; removed {removed} unfinished temporary file(s)")
    } else {
        String::new()
    };
    let message = format!("interrupted by {}{what}", signal_name(sig));
    if let Some(report) = BEFORE_EXIT.get() {
        report(sig, &message);
    }
    eprintln!("error: {message}");
    // Still holding the lock: no scope can start now.
    std::process::exit(128 + sig);
}

/// Ends the process for a signal the caller noticed: prints with `report`, exits 128 + n.
/// Holds the lock the watching thread takes, so only one of them reports.
#[allow(clippy::exit)]
pub fn exit_for(signal: i32, report: impl FnOnce()) -> ! {
    let _st = state();
    report();
    std::process::exit(i32::from(exit_code(signal)));
}

/// Runs `step`, the one that makes the command's work visible for good (the last rename),
/// such that a signal is handled either entirely before it (rolled back as usual) or after
/// it; once it succeeded, the command counts as committed: signals no longer stop it or
/// change its exit code.
pub fn commit<T, E>(step: impl FnOnce() -> std::result::Result<T, E>) -> std::result::Result<T, E> {
    let _st = state();
    let r = step();
    if r.is_ok() {
        COMMITTED.store(true, Ordering::SeqCst);
    }
    r
}

/// Marks the command as committed (see [`commit`]); for work whose commit was a sequence of
/// steps that all polled [`check`].
pub fn commit_point() {
    let _st = state();
    COMMITTED.store(true, Ordering::SeqCst);
}

/// Whether the command has committed.
pub fn committed() -> bool {
    COMMITTED.load(Ordering::SeqCst)
}

/// The signal received so far, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// [`Error::Interrupted`] once a signal was received.
pub fn check() -> Result<()> {
    match received() {
        Some(signal) => Err(Error::Interrupted { signal }),
        None => Ok(()),
    }
}

/// An error that happened after a signal was received is reported as the interruption
/// that caused it (a read cut short by [`Reader`], a rollback's own message).
pub fn explain(e: Error) -> Error {
    match received() {
        Some(signal) if !matches!(e, Error::Interrupted { .. } | Error::Incomplete { .. }) => {
            Error::Interrupted { signal }
        }
        _ => e,
    }
}

/// The process exit code for a signal: 128 + its number.
pub fn exit_code(signal: i32) -> u8 {
    (128 + signal).clamp(0, 255) as u8
}

pub use crate::error::signal_name;

/// While alive, a signal is only recorded: the holder polls [`check`] and rolls back.
pub struct Polled(());

impl Polled {
    pub fn enter() -> Polled {
        state().polled += 1;
        Polled(())
    }
}

impl Drop for Polled {
    fn drop(&mut self) {
        state().polled -= 1;
    }
}

/// A temporary file that an immediate exit removes (deregistered on drop).
pub struct TempFile(u64);

impl TempFile {
    pub fn register(path: &Path) -> TempFile {
        let mut st = state();
        TempFile::add(&mut st, path)
    }

    fn add(st: &mut State, path: &Path) -> TempFile {
        st.next_id += 1;
        let id = st.next_id;
        st.temps.push((id, path.to_path_buf()));
        TempFile(id)
    }

    /// Creates the temporary at `path` with `create` and registers it, as one step for a
    /// signal: handled before (nothing is created) or after (it is removed), never between.
    pub fn create<T>(
        path: &Path,
        create: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<(T, TempFile)> {
        let mut st = state();
        let made = create()?;
        Ok((made, TempFile::add(&mut st, path)))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        state().temps.retain(|(id, _)| *id != self.0);
    }
}

/// Saves the terminal's settings while a no-echo prompt shows, so that an immediate exit
/// gives the user their echo back.
pub struct TtyGuard(());

impl TtyGuard {
    pub fn save() -> TtyGuard {
        let tty = rustix::fs::open(
            "/dev/tty",
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        );
        if let Ok(fd) = tty {
            if let Ok(t) = rustix::termios::tcgetattr(fd.as_fd()) {
                state().tty = Some((fd, t));
            }
        }
        TtyGuard(())
    }
}

impl Drop for TtyGuard {
    fn drop(&mut self) {
        state().tty = None;
    }
}

/// A reader that fails once a signal was received, so a long read of a bundle (verifying
/// entries no one placed) stops at the next block instead of at the end.
pub struct Reader<R>(pub R);

impl<R: Read> Read for Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(s) = received() {
            return Err(io::Error::other(format!(
                "interrupted by {}",
                signal_name(s)
            )));
        }
        self.0.read(buf)
    }
}
