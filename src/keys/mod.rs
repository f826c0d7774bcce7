//! Host keys: OpenSSH ed25519 generation and loading, the ssh-to-age conversion, and the
//! passphrase prompt for protected SSH keys.
//!
//! - [`convert`]: ssh-to-age, bit for bit like Mic92/ssh-to-age (secret scalar left unclamped).
//! - [`ssh`]: reading (possibly passphrase-protected) OpenSSH keys and generating host keys.
//! - [`passphrase`]: where a key's passphrase comes from (a file or the TTY, never argv).
//! - [`strength`]: what guessing a bundle passphrase would cost against its Argon2id settings.
//! - [`private_file`]: writing a converted private key with mode 0600 from the start.
//! - [`age`]: age identities, recipients and plugins, and whole-file encryption.

pub mod age;
pub mod convert;
pub mod passphrase;
pub mod private_file;
pub mod ssh;
pub mod strength;

use std::path::PathBuf;

pub use convert::{age_identity_from_seed, age_recipient_from_ed25519, ssh_public_to_age};
pub use ssh::{load_private_key, HostKey};

/// Errors of this subsystem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a key file failed.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// The input is not a key vault understands.
    #[error("{what}: {why}")]
    Parse { what: String, why: String },
    /// ssh-to-age exists only for ed25519 keys.
    #[error("{what} is a {algorithm} key; only ssh-ed25519 keys convert to age (ssh-to-age)")]
    NotEd25519 { what: String, algorithm: String },
    /// The passphrase did not decrypt the key.
    #[error("wrong passphrase for {what}")]
    WrongPassphrase { what: String },
    /// No passphrase source is available.
    #[error("{what} is passphrase-protected and there is no terminal to ask on")]
    NoPassphrase { what: String },
    /// The destination exists already; vault never overwrites a key.
    #[error("{path} exists already; vault never overwrites a key")]
    Exists { path: PathBuf },
}

impl Error {
    crate::error::io_constructor!(pub);
}

impl crate::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Io(e) => e.permission_hint(),
            Error::Parse { .. } => Some(
                "give an OpenSSH ed25519 key (`ssh-keygen -t ed25519`), its .pub line, or an age identity file"
                    .into(),
            ),
            Error::NotEd25519 { .. } => Some(
                "generate an ed25519 host key with `vault host add NAME`, or use the key directly as an age SSH recipient".into(),
            ),
            Error::WrongPassphrase { .. } => Some("check the passphrase and try again".into()),
            Error::NoPassphrase { .. } => {
                Some("run in a terminal, or give --passphrase-file FILE".into())
            }
            Error::Exists { path } => Some(format!(
                "move {} away first, or adopt it with `vault host add NAME --from-existing {}`",
                path.display(),
                path.display()
            )),
        }
    }

    fn exit_code(&self) -> crate::ExitCode {
        match self {
            Error::WrongPassphrase { .. } => crate::ExitCode::WrongPassphrase,
            _ => crate::ExitCode::Failure,
        }
    }
}

impl crate::error::Layer for Error {}
