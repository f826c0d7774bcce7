//! age identities and recipients: what vault decrypts and encrypts age files with, wherever it
//! does (rekey, the recovery recipients of pack and repack, `inspect --identity`, the
//! configuration check).
//!
//! - [`recipients`]: parsing `age1…`, `ssh-ed25519 …`, `ssh-rsa …` and plugin recipients, with
//!   precomputed tables for the X25519 and ssh-ed25519 ones.
//! - [`identities`]: age identity files, OpenSSH private keys and plugin identities, loaded once
//!   per run.
//! - [`plugin`]: age plugins (hardware keys), one session per plugin and run.
//! - [`recovery`]: the recovery recipients a bundle's file key is also wrapped to.
//! - [`header`]: an age file's stanzas, read without decrypting.
//! - [`crypt`]: whole-file encryption and decryption.

pub mod crypt;
pub mod header;
pub mod identities;
pub mod plugin;
pub mod recipients;
pub mod recovery;

use std::path::PathBuf;

pub use identities::Identities;
pub use recipients::{Recipient, Recipients};

/// Errors of loading and using identities.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading an identity file failed.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// An identity file could not be used.
    #[error("identity {path}: {message}")]
    Identity { path: PathBuf, message: String },
    /// An age plugin (a hardware key) is missing or failed; nothing was changed.
    #[error("{path}: {message}; nothing was changed")]
    Plugin { path: PathBuf, message: String },
}

impl Error {
    crate::error::io_constructor!(pub(crate));
}

impl crate::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Io(e) => e.permission_hint(),
            Error::Identity { .. } => Some(
                "give an age identity file or an OpenSSH private key with -i FILE".into(),
            ),
            Error::Plugin { .. } => Some(
                "install the age plugin program named above (it must be on PATH), or plug the key in and type its PIN again, then run `vault rekey` again".into(),
            ),
        }
    }

    fn exit_code(&self) -> crate::ExitCode {
        crate::ExitCode::Failure
    }
}

impl crate::error::Layer for Error {}
