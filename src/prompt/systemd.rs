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
use std::time::{Duration, Instant};

use secrecy::SecretString;
use zeroize::Zeroizing;

/// The program asked, found on `PATH`.
pub const PROGRAM: &str = "systemd-ask-password";

/// How long a question waits for an answer unless told otherwise (`vault unlock
/// --ask-password-timeout`): long enough to walk to a console and answer from
/// `systemd-tty-ask-password-agent`, short enough that a unit with nobody to answer does not
/// hang forever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Why no passphrase came back.
#[derive(Debug)]
pub enum AskError {
    /// Nobody answered within the timeout.
    TimedOut(Duration),
    /// The program is missing, failed, or the question was cancelled.
    Failed(String),
}

impl std::fmt::Display for AskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AskError::TimedOut(t) => write!(
                f,
                "no password agent answered within {} s ({PROGRAM} waited for one)",
                t.as_secs()
            ),
            AskError::Failed(why) => f.write_str(why),
        }
    }
}

/// What a question waits for, to say before asking (a wait with no word looks like a hang).
pub fn waiting_for(timeout: Option<Duration>) -> String {
    let until = match timeout {
        Some(t) => format!("gives up after {} s", t.as_secs()),
        None => "waits without a time limit".into(),
    };
    format!(
        "no terminal to ask on: asking through {PROGRAM}, which waits for a password agent to \
         answer (the console or wall agent, Plymouth; from any shell on this machine: `sudo \
         systemd-tty-ask-password-agent`); it {until}"
    )
}

/// Asks for a passphrase through `systemd-ask-password --id=<id> --timeout=<s> <message>`,
/// waiting [`DEFAULT_TIMEOUT`] at most; the error as text.
///
/// `id` follows systemd's `subsystem:detail` convention (e.g. `vault:/dev/sda3`); agents show
/// it and may use it to pick cached answers.
pub fn ask_password(message: &str, id: &str) -> Result<SecretString, String> {
    ask(OsStr::new(PROGRAM), message, id, Some(DEFAULT_TIMEOUT)).map_err(|e| e.to_string())
}

/// [`ask_password`] with an explicit program (a path, or a name looked up on `PATH`).
pub fn ask_password_with(program: &OsStr, message: &str, id: &str) -> Result<SecretString, String> {
    ask(program, message, id, Some(DEFAULT_TIMEOUT)).map_err(|e| e.to_string())
}

/// Asks through `program`, waiting `timeout` at most (`None`: without a limit).
///
/// The question ends with vault: the program gets SIGTERM when vault ends, however it ends
/// (an error, a signal, SIGKILL), and on SIGTERM systemd-ask-password removes its `ask.*`
/// file and socket, so no agent is left showing a question nobody waits for.
// SAFETY: a pre_exec hook that makes only async-signal-safe system calls (prctl, getppid).
#[allow(unsafe_code)]
pub fn ask(
    program: &OsStr,
    message: &str,
    id: &str,
    timeout: Option<Duration>,
) -> Result<SecretString, AskError> {
    let name = program.to_string_lossy();
    let parent = rustix::process::getpid();
    let mut cmd = Command::new(program);
    cmd.arg(format!("--id={id}"))
        .arg(format!(
            "--timeout={}",
            timeout.map_or(0, |t| t.as_secs().max(1))
        ))
        // A message starting with '-' must not be read as an option.
        .arg("--")
        .arg(message)
        // Not the terminal: with a TTY on stdin, systemd-ask-password reads that TTY itself and
        // never asks the agents, which is the whole point of --ask-password.
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec only async-signal-safe system calls (prctl, getppid).
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))?;
            // vault ended before the line above: the signal will never come.
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::other("vault has ended"));
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        AskError::Failed(match e.kind() {
            ErrorKind::NotFound => format!(
                "{name} not found: --ask-password needs systemd's password tools \
                 (Debian: apt-get install systemd). On a terminal, run vault without \
                 --ask-password; in a script, use --passphrase-file"
            ),
            _ => format!("cannot run {name}: {e}"),
        })
    })?;

    // Sized up front so that reading a passphrase does not reallocate and leave copies behind.
    let mut out = Zeroizing::new(Vec::with_capacity(4096));
    let read = child
        .stdout
        .take()
        .map(|mut s| s.read_to_end(&mut out))
        .transpose();
    let mut err = String::new();
    if let Some(s) = child.stderr.take() {
        // Best effort, and bounded: stderr only feeds the error message.
        let _ = s.take(64 * 1024).read_to_string(&mut err);
    }
    let status = child
        .wait()
        .map_err(|e| AskError::Failed(format!("waiting for {name}: {e}")))?;
    read.map_err(|e| AskError::Failed(format!("reading the answer from {name}: {e}")))?;

    if !status.success() {
        if let Some(t) = timeout.filter(|t| started.elapsed() >= *t) {
            return Err(AskError::TimedOut(t));
        }
        let why = err.trim();
        let why = if why.is_empty() {
            "the question was cancelled or no agent answered"
        } else {
            why
        };
        return Err(AskError::Failed(format!("{name} failed ({status}): {why}")));
    }
    // One answer, terminated by a newline.
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    let text = std::str::from_utf8(&out)
        .map_err(|_| AskError::Failed(format!("{name} returned a passphrase that is not UTF-8")))?;
    // `to_owned` allocates exactly once; `out` is zeroized when it drops.
    Ok(SecretString::from(text.to_owned()))
}
