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

/// Asks once on the terminal, without echo.
pub fn ask(prompt: &str) -> Result<SecretString> {
    // A signal at the prompt ends the run at once: the terminal gets its echo back.
    let tty = crate::interrupt::TtyGuard::save();
    let answer = rpassword::prompt_password(prompt).map_err(|e| Error::Prompt(format!("{e}")));
    drop(tty);
    let answer = answer?;
    if answer.is_empty() {
        return Err(Error::EmptyPassphrase);
    }
    Ok(SecretString::from(answer))
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
