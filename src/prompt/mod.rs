//! Where passphrases come from: a TTY prompt (no echo), a file (automation, tests), or
//! `systemd-ask-password` (a console with no TTY of its own). Never from argv.

pub mod systemd;

use std::io::Read;
use std::path::Path;

use age_core::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// Reads a passphrase from a file: its first line, without the line ending.
pub fn from_file(path: &Path) -> Result<SecretString> {
    let mut raw = Zeroizing::new(Vec::new());
    let mut f =
        std::fs::File::open(path).map_err(|e| Error::io("cannot read passphrase file", path, e))?;
    f.read_to_end(&mut raw)
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
