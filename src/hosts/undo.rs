//! What an undo record holds ([`super::journal`] writes and acts on it,
//! [`super::record_trust`] decides whether it may), and the paths it names.

use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// What undoing a host add takes. Paths are kept as bytes: they need not be UTF-8.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Undo {
    /// Files the run creates: removed.
    pub created: Vec<Vec<u8>>,
    /// Folders the run creates, outermost first: removed (innermost first) when empty.
    pub dirs: Vec<Vec<u8>>,
    /// Files the run edits, with their text before: written back where it differs.
    pub restore: Vec<(Vec<u8>, String)>,
    /// Files the run deletes in its commit step (they all exist when the record is written).
    #[serde(default)]
    pub delete: Vec<Vec<u8>>,
    /// The host a `host remove` removes.
    #[serde(default)]
    pub removes: Option<String>,
    /// The device and inode of `vault.toml`'s folder when the record was written: a record is
    /// acted on only in that folder ([`super::record_trust`]).
    #[serde(default)]
    pub folder: Option<[u64; 2]>,
}

/// A path of the record, from its bytes.
pub(super) fn path(b: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsString::from_vec(b.to_vec()))
}

/// The folder that holds `manifest`.
pub(super) fn folder(manifest: &Path) -> &Path {
    match manifest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
