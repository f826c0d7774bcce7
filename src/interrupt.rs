//! SIGINT, SIGTERM and SIGHUP end a run the way any other error does: everything it wrote is
//! removed again, then the process exits with 128 + the signal's number (130 for Ctrl-C).
//!
//! [`install`] starts a thread that receives the signals (signal-hook's self-pipe: nothing
//! but a write happens in the handler itself). What that thread does depends on the work in
//! progress:
//!
//! - While a [`Polled`] scope is alive (a [`crate::place::Placer`], a
//!   [`crate::staging::Stager`] or a rekey's staged files, holding temporaries, created
//!   directories, renamed files),
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
//! SIGKILL and power loss cannot be caught: temporaries carry vault's own name pattern and
//! the process id of their writer ([`temp_name`]), and a later run removes those whose writer
//! is gone ([`is_stale_temp`]), saying so.

use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
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
    eprintln!("error: interrupted by {}{what}", signal_name(sig));
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
        Some(signal) if !matches!(e, Error::Interrupted { .. }) => Error::Interrupted { signal },
        _ => e,
    }
}

/// The process exit code for a signal: 128 + its number.
pub fn exit_code(signal: i32) -> u8 {
    (128 + signal).clamp(0, 255) as u8
}

pub fn signal_name(sig: i32) -> String {
    match sig {
        signal_hook::consts::SIGINT => "SIGINT".into(),
        signal_hook::consts::SIGTERM => "SIGTERM".into(),
        signal_hook::consts::SIGHUP => "SIGHUP".into(),
        n => format!("signal {n}"),
    }
}

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
        st.next_id += 1;
        let id = st.next_id;
        st.temps.push((id, path.to_path_buf()));
        TempFile(id)
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

/// A temporary's name for a writer: `PREFIX.vault-PID-RANDOM.tmp`, e.g. `.vault-123-…` or
/// `.bundle.vault-123-…` ([`is_stale_temp`] recognises it).
pub fn temp_name(prefix: &str) -> String {
    format!(
        "{prefix}.vault-{}-{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    )
}

/// Whether `name` is a temporary named by [`temp_name`] with `prefix` (or by an older vault:
/// `PREFIX.vault-HEX.tmp`) whose writer is no longer running.
pub fn is_stale_temp(name: &str, prefix: &str) -> bool {
    let Some(middle) = name
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix(".vault-"))
        .and_then(|r| r.strip_suffix(".tmp"))
    else {
        return false;
    };
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    match middle.split_once('-') {
        None => hex(middle),
        Some((pid, rand)) => {
            hex(rand)
                && pid.parse::<u32>().is_ok_and(|pid| {
                    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temp_names() {
        let mine = temp_name("");
        assert!(!is_stale_temp(&mine, ""), "a live writer's temporary");
        assert!(is_stale_temp(".vault-0123456789abcdef.tmp", ""));
        // pid_max is at most 2^22: this pid cannot be running.
        assert!(is_stale_temp(".vault-99999999-00ff.tmp", ""));
        assert!(is_stale_temp(".b.vault-99999999-00ff.tmp", ".b"));
        assert!(!is_stale_temp(".b.vault-99999999-00ff.tmp", ""));
        assert!(!is_stale_temp(".vault-99999999-00ff.tmp.x", ""));
        assert!(!is_stale_temp("vault-0123.tmp", ""));
        assert!(!is_stale_temp(".vault-.tmp", ""));
        assert!(!is_stale_temp(".vault-12-zz.tmp", ""));
    }
}
