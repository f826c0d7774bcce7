//! Writing a private key (`vault keys convert -o FILE`): created with mode 0600 from the start,
//! whatever the umask (a shell's `> FILE` creates it 0644 under the usual umask 022), never
//! over an existing file unless asked, and never over the key it was made from.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::{Error, Result};

/// Refuses, before any work: `path` when it is `input` (the key being converted, or standard
/// input when `None`; compared by device and inode), and an existing `path` without `force`.
pub fn check_output(path: &Path, force: bool, input: Option<&Path>) -> Result<()> {
    let read = match input {
        Some(p) => fs::metadata(p).ok().map(|m| (m.dev(), m.ino())),
        // `vault keys convert -o KEY < KEY`: the key came on standard input.
        None => rustix::fs::fstat(std::io::stdin())
            .ok()
            .map(|s| (s.st_dev, s.st_ino)),
    };
    if let (Ok(out), Some(read)) = (fs::metadata(path), read) {
        if (out.dev(), out.ino()) == read {
            return Err(Error::Declined {
                why: format!(
                    "refusing to write to {}: it is the key being converted",
                    path.display()
                ),
                hint: Some("choose another file with -o FILE".into()),
            });
        }
    }
    if !force && fs::symlink_metadata(path).is_ok() {
        return Err(exists(path));
    }
    Ok(())
}

fn exists(path: &Path) -> Error {
    Error::Declined {
        why: format!("{} already exists", path.display()),
        hint: Some("choose another file with -o FILE, or pass --force to replace it".into()),
    }
}

/// Writes `bytes` to `path` with mode 0600, making missing folders with mode 0700, whole or
/// not at all ([`crate::new_file`]): through a 0600 temporary renamed to `path`. An existing
/// `path` is refused unless `force`, which replaces it; `input` (the key read; standard input
/// when `None`) is never replaced.
pub fn write_private(path: &Path, bytes: &[u8], force: bool, input: Option<&Path>) -> Result<()> {
    check_output(path, force, input)?;
    let opts = crate::new_file::Options {
        mode: 0o600,
        exact: true,
        dir_mode: 0o700,
        force,
    };
    crate::new_file::write(path, bytes, opts, || exists(path))
}
