//! Where passphrases come from: a TTY prompt (no echo), a file (automation, tests), or
//! `systemd-ask-password` (a console with no TTY of its own). Never from argv.

pub mod systemd;

use std::io::Read as _;
use std::path::Path;

use age_core::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// The largest passphrase file read. A passphrase is one line; a file larger than this is the
/// wrong file, and is refused before it is read into memory.
pub const MAX_PASSPHRASE_FILE: usize = 64 * 1024;

/// Reads a whole passphrase file, at most [`MAX_PASSPHRASE_FILE`] bytes, into one buffer sized
/// up front: no reallocation leaves copies of the secret behind, and the buffer is wiped when
/// dropped. A longer file is an `InvalidData` error saying so.
pub fn read_passphrase_file(path: &Path) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut f = std::fs::File::open(path)?;
    let mut raw = Zeroizing::new(vec![0u8; MAX_PASSPHRASE_FILE + 1]);
    let mut filled = 0;
    while filled < raw.len() {
        match f.read(&mut raw[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if filled > MAX_PASSPHRASE_FILE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "it is larger than {} KiB; a passphrase file holds the passphrase on its first \
                 line (is this the right file?)",
                MAX_PASSPHRASE_FILE / 1024
            ),
        ));
    }
    // Shortening keeps the allocation: nothing is copied.
    raw.truncate(filled);
    Ok(raw)
}

/// Reads a passphrase from a file: its first line, without the line ending.
pub fn from_file(path: &Path) -> Result<SecretString> {
    let raw = read_passphrase_file(path)
        .map_err(|e| Error::io("cannot read passphrase file", path, e))?;
    let line = raw.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line)
        .map_err(|_| Error::Prompt(format!("{} is not UTF-8 text", path.display())))?;
    if text.is_empty() {
        return Err(Error::Prompt(format!(
            "{} holds an empty passphrase",
            path.display()
        )));
    }
    Ok(SecretString::from(text.to_owned()))
}

/// Whether a terminal is there to prompt on.
pub fn has_tty() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_ok()
}

/// The terminal, with echo off from before its question is written until it is dropped.
///
/// Echo goes off first: a terminal echoes what is typed when it arrives, not when it is read,
/// so a prompt written before echo went off could be answered (by a fast typist, or a paste)
/// while echo was still on. Whatever was typed before the question appeared may have been
/// echoed already; nothing typed after can be.
struct Hidden {
    tty: std::os::fd::OwnedFd,
    saved: rustix::termios::Termios,
    // A signal at the question ends the run at once: the terminal gets `saved` back.
    _guard: crate::interrupt::TtyGuard,
}

impl Hidden {
    fn open() -> Result<Hidden> {
        use rustix::fs::{Mode, OFlags};
        use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
        let tty = rustix::fs::open(
            "/dev/tty",
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::Prompt(format!("/dev/tty: {e}")))?;
        let saved = tcgetattr(&tty).map_err(|e| Error::Prompt(format!("/dev/tty: {e}")))?;
        let guard = crate::interrupt::TtyGuard::save();
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        // The Enter that ends the answer still moves to the next line.
        quiet.local_modes.insert(LocalModes::ECHONL);
        // `Now`, not `Flush`: what was typed ahead stays, to be read as the answer.
        tcsetattr(&tty, OptionalActions::Now, &quiet)
            .map_err(|e| Error::Prompt(format!("/dev/tty: {e}")))?;
        Ok(Hidden {
            tty,
            saved,
            _guard: guard,
        })
    }

    fn write(&self, text: &str) -> Result<()> {
        let mut rest = text.as_bytes();
        while !rest.is_empty() {
            match rustix::io::write(&self.tty, rest) {
                Ok(n) => rest = &rest[n..],
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Error::Prompt(format!("/dev/tty: {e}"))),
            }
        }
        Ok(())
    }

    /// One line, without its line ending, into a buffer wiped when dropped. `None` at the end
    /// of input (Ctrl-D on an empty line).
    fn read_line(&self) -> Result<Option<Zeroizing<Vec<u8>>>> {
        // A terminal's line is at most 4095 bytes; the buffer is never reallocated.
        let mut buf = Zeroizing::new(vec![0u8; 4096]);
        let mut filled = 0;
        loop {
            if filled == buf.len() {
                break;
            }
            match rustix::io::read(&self.tty, &mut buf[filled..]) {
                Ok(0) if filled == 0 => return Ok(None),
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    if buf[..filled].ends_with(b"\n") {
                        filled -= 1;
                        break;
                    }
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Error::Prompt(format!("/dev/tty: {e}"))),
            }
        }
        if buf[..filled].ends_with(b"\r") {
            filled -= 1;
        }
        // Shortening keeps the allocation: nothing is copied.
        buf.truncate(filled);
        Ok(Some(buf))
    }
}

impl Drop for Hidden {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            &self.tty,
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

/// Asks once on the terminal, without echo; an empty answer is [`Error::EmptyPassphrase`].
pub fn ask(prompt: &str) -> Result<SecretString> {
    let answer = ask_maybe_empty(prompt)?;
    if answer.expose_secret().is_empty() {
        return Err(Error::EmptyPassphrase);
    }
    Ok(answer)
}

/// Asks once on the terminal, without echo (an empty answer is one).
pub fn ask_maybe_empty(prompt: &str) -> Result<SecretString> {
    let tty = Hidden::open()?;
    tty.write(prompt)?;
    let line = tty.read_line()?;
    drop(tty);
    let line = line.unwrap_or_default();
    let text = std::str::from_utf8(&line)
        .map_err(|_| Error::Prompt("what was typed is not UTF-8 text".into()))?;
    // `to_owned` allocates exactly once; `line` is wiped when it drops.
    Ok(SecretString::from(text.to_owned()))
}

/// A choice among `count` listed things (numbered from 1), asked on the terminal without echo:
/// someone who expected the passphrase prompt and types the passphrase here must not see it
/// on the screen (or in a serial console's log). `question` is written first (it should say
/// what is asked, and what comes next); Enter alone takes `default`. Anything that is not a
/// listed number is a wrong answer, said without repeating it; after `tries` of them, `None`.
pub fn ask_number(
    question: &str,
    count: usize,
    default: Option<usize>,
    tries: u32,
) -> Result<Option<usize>> {
    let tty = Hidden::open()?;
    let range = format!("1-{count}");
    let prompt = match default {
        Some(d) => format!("Number ({range}, Enter for {d}): "),
        None => format!("Number ({range}): "),
    };
    tty.write(question)?;
    for _ in 0..tries {
        tty.write(&prompt)?;
        let Some(line) = tty.read_line()? else {
            return Ok(None);
        };
        let answer = std::str::from_utf8(&line).unwrap_or("").trim();
        let chosen = if answer.is_empty() {
            default
        } else if answer.len() <= 6 && answer.bytes().all(|b| b.is_ascii_digit()) {
            answer
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=count).contains(n))
        } else {
            None
        };
        match chosen {
            // Only a listed number is ever shown back.
            Some(n) => {
                tty.write(&format!("-> {n}\n"))?;
                return Ok(Some(n));
            }
            None => tty.write(&format!(
                "That is not one of the numbers {range} (what was typed is not shown).\n"
            ))?,
        }
    }
    Ok(None)
}

/// Asks for a new passphrase twice; up to three tries to type the same thing.
pub fn ask_new(prompt: &str) -> Result<SecretString> {
    for _ in 0..3 {
        let first = ask(prompt)?;
        let second = ask("Repeat it: ")?;
        if first.expose_secret() == second.expose_secret() {
            return Ok(first);
        }
        eprintln!("The two passphrases differ; try again.");
    }
    Err(Error::Prompt(
        "the passphrases did not match three times".into(),
    ))
}

/// Asks a question on the terminal with echo (for choices, never for secrets).
pub fn ask_visible(question: &str) -> Result<String> {
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| Error::Prompt(format!("/dev/tty: {e}")))?;
    (&tty)
        .write_all(question.as_bytes())
        .map_err(|e| Error::Prompt(e.to_string()))?;
    let mut line = String::new();
    std::io::BufReader::new(&tty)
        .read_line(&mut line)
        .map_err(|e| Error::Prompt(e.to_string()))?;
    Ok(line.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_files_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        // At the limit: read, first line only.
        let mut text = b"correct horse\r\n".to_vec();
        text.resize(MAX_PASSPHRASE_FILE, b'x');
        std::fs::write(&path, &text).unwrap();
        let pass = from_file(&path).unwrap();
        assert_eq!(pass.expose_secret(), "correct horse");
        // One byte over: refused with a message that says why, before it is all read.
        text.push(b'x');
        std::fs::write(&path, &text).unwrap();
        let e = from_file(&path).unwrap_err().to_string();
        assert!(e.contains("larger than 64 KiB"), "{e}");
        assert!(e.contains(&path.display().to_string()), "{e}");
        // Not a regular file, and endless: still bounded.
        let e = from_file(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("larger than 64 KiB"), "{e}");
    }
}
