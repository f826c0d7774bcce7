//! The secrets repository: the files vault reads and edits there but never decrypts.
//!
//! - [`sops`]: sops files (their stores and age entries) and `.sops.yaml` (read, and edited as
//!   text by `vault host add` and `host remove`).
//! - [`agenix`]: `secrets.nix` and the agenix keys file.
//! - [`nix_eval`]: `nix-instantiate` in restricted mode, for both.
//! - [`files`]: reading its files without following links.
//!
//! Decrypting and re-encrypting is `rekey`'s, above this layer; the keys it does that with are
//! `keys::age`'s, below it.

pub mod agenix;
pub mod files;
pub mod nix_eval;
pub mod sops;

use std::path::PathBuf;

/// Errors of reading the repository's rules.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a named file failed.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// `.sops.yaml`, `secrets.nix` or the rekey record is invalid.
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    /// `nix-instantiate` could not evaluate `secrets.nix`.
    #[error("cannot evaluate {path} with nix-instantiate: {message}")]
    Nix { path: PathBuf, message: String },
}

impl Error {
    crate::error::io_constructor!(pub(crate));

    pub(crate) fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Config {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl crate::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Io(e) => e.permission_hint(),
            Error::Config { .. } => Some("fix the file, then run `vault rekey --dry-run`".into()),
            Error::Nix { .. } => Some(
                "vault evaluates it in Nix's restricted mode: it may import files of its own folder (and of the agenix_keys file's), nothing else, and fetch nothing (docs/REKEY.md); nix-instantiate comes with Debian's nix-bin".into(),
            ),
        }
    }

    fn exit_code(&self) -> crate::ExitCode {
        match self {
            Error::Config { .. } => crate::ExitCode::BadManifest,
            _ => crate::ExitCode::Failure,
        }
    }
}

impl crate::error::Layer for Error {}
