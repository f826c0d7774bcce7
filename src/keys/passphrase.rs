//! Passphrases for protected SSH keys: from `--passphrase-file` or a no-echo TTY prompt, never
//! from argv or the environment.

use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::Error;

/// Where passphrases come from.
#[derive(Debug, Clone, Default)]
pub enum Source {
    /// Ask on the controlling terminal (no echo).
    #[default]
    Prompt,
    /// The first line of this file (automation, tests).
    File(PathBuf),
}

impl Source {
    pub fn from_option(file: Option<PathBuf>) -> Source {
        file.map_or(Source::Prompt, Source::File)
    }

    /// Reads the passphrase for `what` (a key's name, shown in the prompt).
    pub fn read(&self, what: &str) -> Result<SecretString, Error> {
        match self {
            Source::File(path) => read_file(path),
            Source::Prompt => crate::prompt::ask_maybe_empty(&format!(
                "Passphrase for {}: ",
                crate::escape::escape(what)
            ))
            .map_err(|_| Error::NoPassphrase { what: what.into() }),
        }
    }
}

fn read_file(path: &Path) -> Result<SecretString, Error> {
    let raw =
        crate::prompt::read_passphrase_file(path).map_err(|e| Error::io("cannot read", path, e))?;
    let line = raw.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|e| {
        Error::io(
            "cannot read",
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })?;
    Ok(SecretString::from(text.to_owned()))
}
