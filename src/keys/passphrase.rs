//! Passphrases for protected SSH keys: from `--passphrase-file` or a no-echo TTY prompt, never
//! from argv or the environment.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use zeroize::Zeroizing;

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
            Source::Prompt => rpassword::prompt_password(format!("Passphrase for {what}: "))
                .map(SecretString::from)
                .map_err(|_| Error::NoPassphrase { what: what.into() }),
        }
    }
}

fn read_file(path: &Path) -> Result<SecretString, Error> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))?,
    );
    let line = text.lines().next().unwrap_or("");
    Ok(SecretString::from(line.to_string()))
}
