//! Opening whatever the user (or discovery) names as a bundle: a bare bundle file, an image
//! file or block device carrying a bundle partition, a bundle partition itself, or an ISO with
//! `/vault/bundle`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Take};
use std::path::{Path, PathBuf};

use super::input::open_input;
use super::mbr::{self, Table};
use super::partition;
use super::{byte_len, iso9660, looks_like_bundle, read_prefix, Error, Result, SECTOR};

/// A bundle inside some file: `file` is positioned at its first byte, and exactly `len` bytes
/// belong to it.
#[derive(Debug)]
pub struct BundleSource {
    pub file: File,
    pub path: PathBuf,
    pub offset: u64,
    pub len: u64,
    /// For messages and prompts, e.g. "/dev/vda (MBR slot 3)".
    pub description: String,
}

impl BundleSource {
    /// The bundle's bytes, and nothing after them (age finds the last chunk by EOF).
    pub fn reader(self) -> Take<File> {
        self.file.take(self.len)
    }

    /// Opens `len` bytes at `offset` of `path`.
    pub fn open_at(
        path: &Path,
        offset: u64,
        len: u64,
        description: String,
    ) -> Result<BundleSource> {
        let mut file = open_input(path)?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io("cannot seek in", path, e))?;
        Ok(BundleSource {
            file,
            path: path.into(),
            offset,
            len,
            description,
        })
    }
}

/// Opens the bundle `path` holds or carries. See the module documentation for what is
/// accepted; anything else is [`Error::NoBundle`].
pub fn open_source(path: &Path) -> Result<BundleSource> {
    let mut f = open_input(path)?;
    let total = byte_len(&mut f, path)?;
    if total == 0 {
        return Err(Error::NoBundle {
            path: path.into(),
            why: "it is empty (0 bytes); a device with no medium, or a stick that was unplugged, looks like this".into(),
        });
    }
    let prefix = read_prefix(&mut f, path, 0)?;
    let shown = path.display().to_string();
    if looks_like_bundle(&prefix) {
        // A bare bundle, or a bundle partition (e.g. /dev/sdb3) whose trailer gives the length.
        // Ciphertext ending in a valid trailer by chance is not a practical concern.
        let len = match total.checked_sub(SECTOR) {
            Some(last) if last > 0 => {
                let sector = super::read_at_most(&mut f, path, last, SECTOR as usize)?;
                mbr::parse_trailer(&sector)
                    .filter(|l| *l <= last)
                    .unwrap_or(total)
            }
            _ => total,
        };
        return BundleSource::open_at(path, 0, len, shown);
    }
    if crate::bundle::header::parse(&prefix) == Err(crate::bundle::HeaderError::CrLf) {
        return Err(Error::NoBundle {
            path: path.into(),
            why: crate::bundle::HeaderError::CrLf.to_string(),
        });
    }
    // `/vault/bundle` in an ISO tree, if there is one and it lies within the file.
    let iso_file = match iso9660::find_bundle(&mut f, path)? {
        Some(file)
            if file
                .offset
                .checked_add(file.len)
                .is_some_and(|e| e <= total) =>
        {
            let head = read_prefix(&mut f, path, file.offset)?;
            looks_like_bundle(&head).then_some(file)
        }
        _ => None,
    };
    // A sector that merely ends in 0x55AA with invalid entries is not an error here: the file
    // may still be an ISO with /vault/bundle.
    if let Ok(Some(table)) = Table::read(&mut f, path) {
        if let Some(slot) = table.vault_slots().next().copied() {
            let len = partition::check_partition(&mut f, path, &slot, total)?;
            // Two bundles: taking either silently could unlock the wrong one.
            if let Some(file) = iso_file {
                return Err(Error::TwoBundles {
                    path: path.into(),
                    slot: slot.index,
                    offset: slot.start(),
                    iso_offset: file.offset,
                });
            }
            return BundleSource::open_at(
                path,
                slot.start(),
                len,
                format!("{shown} (MBR slot {})", slot.index),
            );
        }
    }
    if let Some(file) = iso_file {
        return BundleSource::open_at(
            path,
            file.offset,
            file.len,
            format!("{shown} ({})", super::ISO_BUNDLE_PATH),
        );
    }
    Err(Error::NoBundle {
        path: path.into(),
        why: "it is not a bundle, has no MBR entry of type 0xDA, and no /vault/bundle in an ISO9660 tree".into(),
    })
}
