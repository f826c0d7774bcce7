//! Registering hosts in `vault.toml` (`vault host add/list/remove`).

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
