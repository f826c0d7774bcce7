//! The bundle partition as the operations use it: checking that a slot holds a bundle, and
//! writing one into it. The MBR format itself ([`super::mbr`]) knows nothing of bundles
//! beyond the trailer that records a partition's length.

use std::fs::File;
use std::path::Path;

use super::mbr::{bundle_len, trailer, Extent, Slot};
use super::{Error, Result, SECTOR};

/// Checks the bundle partition in `slot` of an image or device of `total` bytes: inside it,
/// starting with a bundle, ending in a trailer. Returns the bundle's exact length.
pub fn check_partition(file: &mut File, path: &Path, slot: &Slot, total: u64) -> Result<u64> {
    let start = slot.start();
    let part_len = slot.sectors * SECTOR;
    if start.checked_add(part_len).is_none_or(|end| end > total) {
        return Err(Error::Damaged {
            path: path.into(),
            offset: start,
            why: format!(
                "MBR slot {} extends past the end ({total} bytes); was the image truncated?",
                slot.index
            ),
        });
    }
    let head = super::read_prefix(file, path, start)?;
    if !super::looks_like_bundle(&head) {
        return Err(Error::Damaged {
            path: path.into(),
            offset: start,
            why: format!(
                "MBR slot {} (type 0xDA) does not start with a vault bundle",
                slot.index
            ),
        });
    }
    bundle_len(file, path, start, part_len)
}

/// Writes the bundle (from `bundle`, exactly `extent.len` bytes), zero padding and the trailer
/// at `extent.start` of `out`. Stops at a signal (see [`super::output::copy_range`]).
pub fn write_partition(
    out: &mut File,
    out_path: &Path,
    bundle: &mut File,
    bundle_path: &Path,
    extent: &Extent,
) -> Result<()> {
    super::output::copy_range(
        bundle,
        bundle_path,
        0,
        out,
        out_path,
        extent.start,
        extent.len,
    )?;
    let pad = (extent.sectors() - 1) * SECTOR - extent.len;
    let mut tail = vec![0u8; pad as usize];
    tail.extend_from_slice(&trailer(extent.len));
    std::os::unix::fs::FileExt::write_all_at(out, &tail, extent.start + extent.len)
        .map_err(|e| Error::io("cannot write the bundle to", out_path, e))
}
