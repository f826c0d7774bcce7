//! Installer media: attaching a bundle to images and sticks, and finding it on the live system.

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
