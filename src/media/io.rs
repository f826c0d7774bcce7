//! Bounded reads and sizes of images and devices, for the media formats and the operations alike.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::error::{Error, Result};

/// Reads up to `max` bytes at `offset`; short only at the end of the file.
pub(crate) fn read_at_most(
    file: &mut File,
    path: &Path,
    offset: u64,
    max: usize,
) -> Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io("cannot seek in", path, e))?;
    let mut buf = Vec::with_capacity(max);
    file.take(max as u64)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("cannot read", path, e))?;
    Ok(buf)
}

/// The size of a regular file or block device (block devices report 0 in metadata).
pub(crate) fn byte_len(file: &mut File, path: &Path) -> Result<u64> {
    file.seek(SeekFrom::End(0))
        .map_err(|e| Error::io("cannot find the size of", path, e))
}

pub(crate) fn align_up(n: u64, to: u64) -> Option<u64> {
    n.checked_add(to - 1).map(|v| v / to * to)
}
