//! `vault attach --image` / `vault detach --image`: new image files, the input never edited.
//!
//! Outputs are written to a temporary file beside the output and renamed into place only when
//! complete and synced.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::carry::{self, Binary, Carried, BIN_PART_TYPE};
use super::mbr::{self, Extent, Table};
use super::{align_up, byte_len, isofile, read_prefix, Error, Result, ALIGN, SECTOR};

/// What `attach` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub output: PathBuf,
    /// MBR slot, 1..=4.
    pub slot: usize,
    /// Byte offset of the bundle partition.
    pub start: u64,
    /// Exact bundle length.
    pub len: u64,
    /// Sectors of the partition (bundle, padding, trailer).
    pub sectors: u64,
    /// Size of the written image.
    pub image_len: u64,
    /// Whether an existing bundle was replaced.
    pub replaced: bool,
    /// The carried binary's partition: slot, byte offset, partition length.
    pub binary: Option<(usize, u64, u64)>,
}

/// What an image carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub path: PathBuf,
    pub len: u64,
    /// Used MBR entries (empty when there is no MBR).
    pub slots: Vec<mbr::Slot>,
    /// The bundle partition: slot, byte offset, exact length (from its trailer).
    pub partition: Option<(usize, u64, u64)>,
    /// `/vault/bundle` in the ISO tree: byte offset and length.
    pub iso_file: Option<(u64, u64)>,
    /// Where the ISO9660 volume ends, if there is one.
    pub iso_end: Option<u64>,
    /// The vault binary the medium carries, if any.
    pub binary: Option<Carried>,
}

pub(crate) fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A temporary beside `output` holding the first `keep` bytes of the input image, open for
/// writing: the new image is built there and published by rename, so the input is never edited.
fn copy_prefix_beside(
    inf: &mut File,
    input: &Path,
    keep: u64,
    output: &Path,
    prefix: &str,
) -> Result<(tempfile::NamedTempFile, PathBuf, File)> {
    let dir = parent_dir(output);
    let tmp = tempfile::Builder::new()
        .prefix(prefix)
        .tempfile_in(&dir)
        .map_err(|e| Error::io("cannot create a temporary file in", &dir, e))?;
    let tmp_path = tmp.path().to_path_buf();
    let mut out = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&tmp_path)
        .map_err(|e| Error::io("cannot open", &tmp_path, e))?;
    inf.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("cannot seek in", input, e))?;
    // std uses copy_file_range here: reflinks or in-kernel copies where the filesystem can.
    std::io::copy(&mut std::io::Read::take(inf, keep), &mut out)
        .map_err(|e| Error::io("cannot copy the image to", &tmp_path, e))?;
    Ok((tmp, tmp_path, out))
}

/// Refuses an output that is the input (same inode, also through links) or that exists
/// without `force`.
pub(crate) fn check_output(input: &Path, output: &Path, force: bool) -> Result<()> {
    let inm = std::fs::metadata(input).map_err(|e| Error::io("cannot open", input, e))?;
    match std::fs::metadata(output) {
        Ok(outm) => {
            if outm.dev() == inm.dev() && outm.ino() == inm.ino() {
                return Err(Error::OutputIsInput {
                    input: input.into(),
                    output: output.into(),
                });
            }
            if !force {
                return Err(Error::OutputExists {
                    path: output.into(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("cannot check", output, e)),
    }
}

/// Opens the bundle file and checks that it is one; returns it with its length.
pub(crate) fn check_bundle(bundle: &Path) -> Result<(File, u64)> {
    let mut f = File::open(bundle).map_err(|e| Error::io("cannot open", bundle, e))?;
    let prefix = read_prefix(&mut f, bundle, 0)?;
    if !super::looks_like_bundle(&prefix) {
        return Err(Error::NotABundle {
            path: bundle.into(),
        });
    }
    let len = byte_len(&mut f, bundle)?;
    Ok((f, len))
}

/// Syncs and renames a finished temporary file to `output` (no-clobber unless `force`).
pub(crate) fn publish(tmp: &Path, output: &Path, force: bool) -> Result<()> {
    let f = File::open(tmp).map_err(|e| Error::io("cannot open", tmp, e))?;
    // An image carries the bundle, which is 0600 (its ciphertext is what passphrase guesses
    // are tried against). Temporaries are created 0600; xorriso's output lies in a private
    // 0700 directory: either way no other user could open it before this.
    f.set_permissions(Permissions::from_mode(0o600))
        .map_err(|e| Error::io("cannot set the mode of", tmp, e))?;
    f.sync_all().map_err(|e| Error::io("cannot sync", tmp, e))?;
    if force {
        std::fs::rename(tmp, output).map_err(|e| Error::io("cannot rename to", output, e))?;
    } else {
        // A hard link fails if the output appeared meanwhile: no clobbering by a race.
        std::fs::hard_link(tmp, output).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::OutputExists {
                    path: output.into(),
                }
            } else {
                Error::io("cannot create", output, e)
            }
        })?;
        let _ = std::fs::remove_file(tmp);
    }
    if let Ok(d) = File::open(parent_dir(output)) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads the table and refuses layouts vault cannot update.
fn usable_table(f: &mut File, path: &Path) -> Result<Table> {
    let table = Table::read(f, path)?.ok_or_else(|| Error::NoTable {
        path: path.into(),
        why: "no MBR signature (0x55AA) in the first sector".into(),
    })?;
    if let Some(slot) = table.protective_gpt() {
        return Err(Error::ProtectiveGpt {
            path: path.into(),
            slot,
        });
    }
    Ok(table)
}

/// Where the image's own data ends: its partitions and its ISO9660 volume.
pub(crate) fn data_end(f: &mut File, path: &Path, table: &Table) -> Result<u64> {
    let iso = isofile::volume(f, path)?.map_or(0, |v| v.size);
    Ok(table.data_end().max(iso))
}

/// Decides slot and extent for a bundle of `len` bytes on `table`, appending after
/// `append_after` (or in the existing bundle partition with `replace`).
pub(crate) fn place(
    table: &Table,
    path: &Path,
    len: u64,
    append_after: u64,
    replace: bool,
) -> Result<(usize, Extent)> {
    let existing = table.vault_slots().next().copied();
    let (slot, extent) = match (existing, replace) {
        (Some(s), false) => {
            return Err(Error::AlreadyCarries {
                path: path.into(),
                slot: s.index,
            })
        }
        (None, true) => {
            return Err(Error::NothingAttached { path: path.into() });
        }
        (Some(s), true) => (
            s.index,
            Extent {
                start: s.start(),
                len,
            },
        ),
        (None, false) => {
            let slot = table
                .free_slot()
                .ok_or_else(|| Error::NoFreeSlot { path: path.into() })?;
            (slot, Extent::after(append_after, len, path)?)
        }
    };
    extent.check_mbr(path)?;
    extent.check_overlap(table, path)?;
    Ok((slot, extent))
}

/// Where the carried binary's partition goes: right after the bundle partition (next 1 MiB
/// boundary), in the slot of an earlier binary partition or a free one other than the bundle's.
/// Returns (slot, byte offset); the partition is `volume_len` bytes.
pub(crate) fn place_binary(
    table: &Table,
    path: &Path,
    bundle_slot: usize,
    bundle: &Extent,
    volume_len: u64,
) -> Result<(usize, u64)> {
    let slot = match table.binary_slots().next() {
        Some(s) => s.index,
        None => table
            .free_slot_except(&[bundle_slot])
            .ok_or_else(|| Error::NoFreeSlot { path: path.into() })?,
    };
    let start =
        align_up(bundle.end(), ALIGN).ok_or_else(|| Error::BeyondMbr { path: path.into() })?;
    let end = start + volume_len;
    if end / SECTOR > u64::from(u32::MAX) {
        return Err(Error::BeyondMbr { path: path.into() });
    }
    for s in table.other_slots() {
        if s.sectors > 0 && s.start() < end && start < s.end() {
            return Err(Error::Overlap {
                path: path.into(),
                slot: s.index,
                start: start / SECTOR,
                end: end / SECTOR,
            });
        }
    }
    Ok((slot, start))
}

/// The MBR sector with the bundle entry set and the binary entry set (or, without a binary,
/// an earlier binary entry cleared).
pub(crate) fn table_with(
    table: &Table,
    path: &Path,
    slot: usize,
    extent: &Extent,
    binary: Option<(usize, u64, u64)>,
) -> Result<[u8; 512]> {
    let sector = table.with_entry(slot, Some((extent.start_lba(), extent.sectors())), path)?;
    let old_bin = table.binary_slots().next().map(|s| s.index);
    let (index, entry) = match (binary, old_bin) {
        (Some((bslot, start, len)), _) => {
            (bslot, Some((start / SECTOR, len / SECTOR, BIN_PART_TYPE)))
        }
        (None, Some(old)) => (old, None),
        (None, None) => return Ok(sector),
    };
    let mid = Table::parse(sector, path)?.ok_or_else(|| Error::NoTable {
        path: path.into(),
        why: "the updated table lost its signature".into(),
    })?;
    mid.with_typed_entry(index, entry, path)
}

/// Writes the binary partition's volume at `start` of `out`.
pub(crate) fn write_binary(out: &mut File, path: &Path, start: u64, volume: &[u8]) -> Result<()> {
    use std::io::Write;
    out.seek(SeekFrom::Start(start))
        .map_err(|e| Error::io("cannot seek in", path, e))?;
    out.write_all(volume)
        .map_err(|e| Error::io("cannot write the vault binary to", path, e))
}

/// `vault attach --image INPUT --bundle BUNDLE -o OUTPUT [--replace]`, carrying `binary`.
pub fn attach_image(
    input: &Path,
    bundle: &Path,
    output: &Path,
    replace: bool,
    force: bool,
    binary: Option<&Binary>,
) -> Result<Attached> {
    check_output(input, output, force)?;
    let (mut bf, len) = check_bundle(bundle)?;
    let mut inf = File::open(input).map_err(|e| Error::io("cannot open", input, e))?;
    let in_len = byte_len(&mut inf, input)?;
    let table = usable_table(&mut inf, input)?;
    if let Some(b) = binary {
        b.check_arch(input, carry::iso_arch(&mut inf, input)?)?;
    }
    // Appending goes after everything in the file; replacing keeps everything before the old
    // bundle partition, which must not hold the image's own data.
    let (slot, extent) = place(&table, input, len, in_len, replace)?;
    if replace && data_end(&mut inf, input, &table)? > extent.start {
        return Err(Error::Overlap {
            path: input.into(),
            slot,
            start: extent.start_lba(),
            end: extent.end() / super::SECTOR,
        });
    }
    let keep = if replace { extent.start } else { in_len };
    let volume = binary.map(Binary::volume);
    let bin_place = match &volume {
        Some(v) => {
            let (bslot, bstart) = place_binary(&table, input, slot, &extent, v.len() as u64)?;
            Some((bslot, bstart, v.len() as u64))
        }
        None => None,
    };
    let sector = table_with(&table, input, slot, &extent, bin_place)?;

    let (tmp, tmp_path, mut out) =
        copy_prefix_beside(&mut inf, input, keep, output, ".vault-attach-")?;
    // Zero gap up to the 1 MiB boundary (sparse where the filesystem allows).
    out.set_len(extent.start)
        .map_err(|e| Error::io("cannot extend", &tmp_path, e))?;
    mbr::write_partition(&mut out, &tmp_path, &mut bf, bundle, &extent)?;
    if let (Some(v), Some((_, bstart, _))) = (&volume, bin_place) {
        write_binary(&mut out, &tmp_path, bstart, v)?;
    }
    mbr::write_table(&mut out, &tmp_path, &sector)?;
    let image_len = bin_place.map_or(extent.end(), |(_, s, l)| s + l);
    out.set_len(image_len)
        .map_err(|e| Error::io("cannot truncate", &tmp_path, e))?;
    drop(out);
    publish(&tmp_path, output, force)?;
    // The temporary is gone after publish; keep tempfile from complaining about it.
    let _ = tmp.into_temp_path().keep();
    Ok(Attached {
        output: output.into(),
        slot,
        start: extent.start,
        len,
        sectors: extent.sectors(),
        image_len,
        replaced: replace,
        binary: bin_place,
    })
}

/// What `path` (an image file or a device) carries.
pub fn inspect_image(path: &Path) -> Result<ImageInfo> {
    let mut f = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let len = byte_len(&mut f, path)?;
    let table = Table::read(&mut f, path)?;
    let slots = table.as_ref().map(|t| t.used.clone()).unwrap_or_default();
    let mut partition = None;
    if let Some(t) = &table {
        if let Some(s) = t.vault_slots().next() {
            let blen = mbr::bundle_len(&mut f, path, s.start(), s.sectors * super::SECTOR)?;
            partition = Some((s.index, s.start(), blen));
        }
    }
    let iso_end = isofile::volume(&mut f, path)?.map(|v| v.size);
    let iso_file = isofile::find_bundle(&mut f, path)?.map(|i| (i.offset, i.len));
    let binary = match table
        .as_ref()
        .and_then(|t| t.binary_slots().next().copied())
    {
        Some(s) => Some(carry::read_partition(&mut f, path, s.start(), s.index)?),
        None => carry::read_iso_file(&mut f, path)?,
    };
    Ok(ImageInfo {
        binary,
        path: path.into(),
        len,
        slots,
        partition,
        iso_file,
        iso_end,
    })
}

/// `vault detach --image INPUT -o OUTPUT`: the image without its bundle partition, cut back to
/// where its own data ends.
pub fn detach_image(input: &Path, output: &Path, force: bool) -> Result<ImageInfo> {
    check_output(input, output, force)?;
    let mut inf = File::open(input).map_err(|e| Error::io("cannot open", input, e))?;
    let table = usable_table(&mut inf, input)?;
    let slot = *table
        .vault_slots()
        .next()
        .ok_or_else(|| Error::NothingAttached { path: input.into() })?;
    let end = data_end(&mut inf, input, &table)?;
    let first = table
        .binary_slots()
        .map(mbr::Slot::start)
        .fold(slot.start(), u64::min);
    let keep = if end == 0 || end > first { first } else { end };
    let mut sector = table.with_entry(slot.index, None, input)?;
    if let Some(b) = table.binary_slots().next() {
        let mid = Table::parse(sector, input)?.ok_or_else(|| Error::NoTable {
            path: input.into(),
            why: "the updated table lost its signature".into(),
        })?;
        sector = mid.with_typed_entry(b.index, None, input)?;
    }
    let (tmp, tmp_path, mut out) =
        copy_prefix_beside(&mut inf, input, keep, output, ".vault-detach-")?;
    mbr::write_table(&mut out, &tmp_path, &sector)?;
    drop(out);
    publish(&tmp_path, output, force)?;
    let _ = tmp.into_temp_path().keep();
    inspect_image(output)
}
