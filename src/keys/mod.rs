//! Host keys: OpenSSH ed25519 generation, and the ssh-to-age conversion.

/// Errors of this subsystem. (Stub: the owner of this module fills it in.)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{0}")]
    Other(String),
}

impl crate::Hint for Error {
    fn hint(&self) -> Option<String> {
        None
    }
}
