//! Opening whatever the user (or discovery) names as a bundle: a bare bundle file, an image
//! file or block device carrying a bundle partition, a bundle partition itself, or an ISO with
//! `/vault/bundle`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Take};
use std::path::{Path, PathBuf};

use super::mbr::{self, Table};
use super::{byte_len, isofile, looks_like_bundle, read_prefix, Error, Result, SECTOR};

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
        let mut file = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
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
    let mut f = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let total = byte_len(&mut f, path)?;
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
    // A sector that merely ends in 0x55AA with invalid entries is not an error here: the file
    // may still be an ISO with /vault/bundle.
    if let Ok(Some(table)) = Table::read(&mut f, path) {
        if let Some(slot) = table.vault_slots().next().copied() {
            let start = slot.start();
            let part_len = slot.sectors * SECTOR;
            if start.checked_add(part_len).is_none_or(|end| end > total) {
                return Err(Error::Damaged {
                    path: path.into(),
                    offset: start,
                    why: format!("MBR slot {} extends past the end ({total} bytes); was the image truncated?", slot.index),
                });
            }
            let head = read_prefix(&mut f, path, start)?;
            if !looks_like_bundle(&head) {
                return Err(Error::Damaged {
                    path: path.into(),
                    offset: start,
                    why: format!(
                        "MBR slot {} (type 0xDA) does not start with a vault bundle",
                        slot.index
                    ),
                });
            }
            let len = mbr::bundle_len(&mut f, path, start, part_len)?;
            return BundleSource::open_at(
                path,
                start,
                len,
                format!("{shown} (MBR slot {})", slot.index),
            );
        }
    }
    if let Some(file) = isofile::find_bundle(&mut f, path)? {
        let in_bounds = file
            .offset
            .checked_add(file.len)
            .is_some_and(|e| e <= total);
        let head = if in_bounds {
            read_prefix(&mut f, path, file.offset)?
        } else {
            Vec::new()
        };
        if in_bounds && looks_like_bundle(&head) {
            return BundleSource::open_at(
                path,
                file.offset,
                file.len,
                format!("{shown} ({})", super::ISO_BUNDLE_PATH),
            );
        }
    }
    Err(Error::NoBundle {
        path: path.into(),
        why: "it is not a bundle, has no MBR entry of type 0xDA, and no /vault/bundle in an ISO9660 tree".into(),
    })
}
