//! The passphrase through systemd's password agents: `vault unlock --ask-password`.
//!
//! For when vault runs without a terminal (a systemd unit, or a script started by one). The
//! question goes to whichever agents are running — the console agent, the wall agent (a user
//! answers with `systemd-tty-ask-password-agent` from any shell), plymouth — and the answer
//! comes back on `systemd-ask-password`'s standard output. Only the message and the id go on the
//! command line; the passphrase never does.
//!
//! Protocol, for readers and for `tests/ask_password.rs`: `systemd-ask-password` writes
//! `/run/systemd/ask-password/ask.XXXXXX` (an ini file: `[Ask]` with `PID=`, `Socket=`, `Id=`,
//! `Message=`, `Echo=`, `NotAfter=`) and waits for one datagram on that `AF_UNIX` socket: `+` and
//! the passphrase, or `-` to cancel. It ignores datagrams not sent by root (it checks
//! `SCM_CREDENTIALS`).

use std::ffi::OsStr;
use std::io::{ErrorKind, Read};
use std::process::{Command, Stdio};

use secrecy::SecretString;
use zeroize::Zeroizing;

/// The program asked, found on `PATH`.
pub const PROGRAM: &str = "systemd-ask-password";

/// Ask for a passphrase through `systemd-ask-password --id=<id> --timeout=0 <message>`.
///
/// `id` follows systemd's `subsystem:detail` convention (e.g. `vault:/dev/sda3`); agents show
/// it and may use it to pick cached answers. There is no timeout: an installer console may wait
/// for its user indefinitely.
pub fn ask_password(message: &str, id: &str) -> Result<SecretString, String> {
    ask_password_with(OsStr::new(PROGRAM), message, id)
}

/// [`ask_password`] with an explicit program (a path, or a name looked up on `PATH`).
pub fn ask_password_with(program: &OsStr, message: &str, id: &str) -> Result<SecretString, String> {
    let name = program.to_string_lossy();
    let mut child = Command::new(program)
        .arg(format!("--id={id}"))
        .arg("--timeout=0")
        // A message starting with '-' must not be read as an option.
        .arg("--")
        .arg(message)
        // Not the terminal: with a TTY on stdin, systemd-ask-password reads that TTY itself and
        // never asks the agents, which is the whole point of --ask-password.
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => format!(
                "{name} not found: --ask-password needs systemd's password tools \
                 (Debian: apt-get install systemd). On a terminal, run vault without \
                 --ask-password; in a script, use --passphrase-file"
            ),
            _ => format!("cannot run {name}: {e}"),
        })?;

    // Sized up front so that reading a passphrase does not reallocate and leave copies behind.
    let mut out = Zeroizing::new(Vec::with_capacity(4096));
    let read = child
        .stdout
        .take()
        .map(|mut s| s.read_to_end(&mut out))
        .transpose();
    let mut err = String::new();
    if let Some(mut s) = child.stderr.take() {
        // Best effort: stderr only feeds the error message.
        let _ = s.read_to_string(&mut err);
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for {name}: {e}"))?;
    read.map_err(|e| format!("reading the answer from {name}: {e}"))?;

    if !status.success() {
        let why = err.trim();
        let why = if why.is_empty() {
            "the question was cancelled or no agent answered"
        } else {
            why
        };
        return Err(format!("{name} failed ({status}): {why}"));
    }
    // One answer, terminated by a newline.
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    let text = std::str::from_utf8(&out)
        .map_err(|_| format!("{name} returned a passphrase that is not UTF-8"))?;
    // `to_owned` allocates exactly once; `out` is zeroized when it drops.
    Ok(SecretString::from(text.to_owned()))
}
