//! `vault attach --image` / `vault detach --image`: new image files, the input never edited.
//!
//! Outputs are written to a temporary file beside the output and renamed into place only when
//! complete and synced.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::carry::{self, Binary, Carried};
use super::input::{open_input, FileId, Input};
use super::mbr::{self, Extent, Table, BIN_PART_TYPE};
use super::output::{check_output, check_space, copy_sparse, data_len, parent_dir, Temp};
use super::partition;
use super::{align_up, byte_len, iso9660, read_prefix, Error, Result, ALIGN, SECTOR};

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
    /// Why the binary the medium records could not be read (its partition is damaged).
    pub binary_damaged: Option<String>,
}

/// Opens the bundle file and checks that it is one; returns it with its length and identity.
pub(crate) fn check_bundle(bundle: &Path) -> Result<(File, u64)> {
    let mut f = open_input(bundle)?;
    let prefix = read_prefix(&mut f, bundle, 0)?;
    if !super::looks_like_bundle(&prefix) {
        return Err(Error::NotABundle {
            path: bundle.into(),
        });
    }
    let len = byte_len(&mut f, bundle)?;
    Ok((f, len))
}

/// The inputs of a run, for [`check_output`]: the image (or device), the bundle, the binary.
pub(crate) fn inputs<'a>(
    image: (&'a Path, &File, &'static str),
    bundle: Option<(&'a Path, &File)>,
    binary: Option<&'a Binary>,
) -> Result<Vec<Input<'a>>> {
    let mut v = vec![Input {
        path: image.0,
        what: image.2,
        id: FileId::of_file(image.1, image.0)?,
    }];
    if let Some((path, f)) = bundle {
        v.push(Input {
            path,
            what: "bundle",
            id: FileId::of_file(f, path)?,
        });
    }
    if let Some(b) = binary {
        v.push(Input {
            path: &b.path,
            what: "vault binary",
            id: b.id,
        });
    }
    Ok(v)
}

/// One image carries one bundle: refuses an image whose ISO tree holds `/vault/bundle`.
pub(crate) fn refuse_iso_file_bundle(f: &mut File, path: &Path) -> Result<()> {
    match iso9660::find_bundle(f, path)? {
        Some(_) => Err(Error::CarriesIsoFile { path: path.into() }),
        None => Ok(()),
    }
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
    let iso = iso9660::volume(f, path)?.map_or(0, |v| v.size);
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
pub(crate) fn write_binary(out: &File, path: &Path, start: u64, volume: &[u8]) -> Result<()> {
    std::os::unix::fs::FileExt::write_all_at(out, volume, start)
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
    let mut inf = open_input(input)?;
    let (mut bf, len) = check_bundle(bundle)?;
    check_output(
        output,
        force,
        &inputs((input, &inf, "input image"), Some((bundle, &bf)), binary)?,
    )?;
    let in_len = byte_len(&mut inf, input)?;
    let table = usable_table(&mut inf, input)?;
    if let Some(b) = binary {
        b.check_arch(input, carry::iso_arch(&mut inf, input)?)?;
    }
    refuse_iso_file_bundle(&mut inf, input)?;
    // Appending goes after everything in the file; replacing keeps everything before the old
    // bundle partition, which must be intact and must not hold the image's own data.
    let (slot, extent) = place(&table, input, len, in_len, replace)?;
    if replace {
        if let Some(old) = table.vault_slots().next() {
            partition::check_partition(&mut inf, input, old, in_len)?;
        }
        if data_end(&mut inf, input, &table)? > extent.start {
            return Err(Error::Overlap {
                path: input.into(),
                slot,
                start: extent.start_lba(),
                end: extent.end() / super::SECTOR,
            });
        }
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
    let image_len = bin_place.map_or(extent.end(), |(_, s, l)| s + l);
    let written = extent.sectors() * SECTOR + volume.as_ref().map_or(0, |v| v.len() as u64);
    check_space(&parent_dir(output), data_len(&inf, input, keep)? + written)?;

    let mut tmp = Temp::beside(output)?;
    copy_sparse(&inf, input, &tmp.file, &tmp.path, keep)?;
    // The gap up to the 1 MiB boundary stays a hole.
    tmp.file
        .set_len(extent.start)
        .map_err(|e| Error::io("cannot extend", &tmp.path, e))?;
    partition::write_partition(&mut tmp.file, &tmp.path, &mut bf, bundle, &extent)?;
    if let (Some(v), Some((_, bstart, _))) = (&volume, bin_place) {
        write_binary(&tmp.file, &tmp.path, bstart, v)?;
    }
    mbr::write_table(&mut tmp.file, &tmp.path, &sector)?;
    tmp.file
        .set_len(image_len)
        .map_err(|e| Error::io("cannot truncate", &tmp.path, e))?;
    // An image carries the bundle, which is 0600 (its ciphertext is what passphrase guesses
    // are tried against).
    tmp.publish(output, force, 0o600)?;
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

/// What `path` (an image file or a device) carries. A damaged binary partition does not hide
/// the rest: it is reported in [`ImageInfo::binary_damaged`].
pub fn inspect_image(path: &Path) -> Result<ImageInfo> {
    let mut f = open_input(path)?;
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
    let iso_end = iso9660::volume(&mut f, path)?.map(|v| v.size);
    let iso_file = iso9660::find_bundle(&mut f, path)?.map(|i| (i.offset, i.len));
    let read = match table
        .as_ref()
        .and_then(|t| t.binary_slots().next().copied())
    {
        Some(s) => carry::read_partition(&mut f, path, s.start(), s.index).map(Some),
        None => carry::read_iso_file(&mut f, path),
    };
    let (binary, binary_damaged) = match read {
        Ok(b) => (b, None),
        Err(e @ Error::BinaryDamaged { .. }) => (None, Some(e.to_string())),
        Err(e) => return Err(e),
    };
    Ok(ImageInfo {
        binary,
        binary_damaged,
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
    let mut inf = open_input(input)?;
    check_output(
        output,
        force,
        &inputs((input, &inf, "input image"), None, None)?,
    )?;
    let in_len = byte_len(&mut inf, input)?;
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
    // A table that points past the end would make a huge, mostly empty copy.
    if keep > in_len {
        return Err(Error::Truncated {
            path: input.into(),
            len: in_len,
            end: keep,
        });
    }
    let mut sector = table.with_entry(slot.index, None, input)?;
    if let Some(b) = table.binary_slots().next() {
        let mid = Table::parse(sector, input)?.ok_or_else(|| Error::NoTable {
            path: input.into(),
            why: "the updated table lost its signature".into(),
        })?;
        sector = mid.with_typed_entry(b.index, None, input)?;
    }
    check_space(&parent_dir(output), data_len(&inf, input, keep)?)?;
    let mut tmp = Temp::beside(output)?;
    copy_sparse(&inf, input, &tmp.file, &tmp.path, keep)?;
    tmp.file
        .set_len(keep)
        .map_err(|e| Error::io("cannot truncate", &tmp.path, e))?;
    mbr::write_table(&mut tmp.file, &tmp.path, &sector)?;
    tmp.publish(output, force, 0o600)?;
    inspect_image(output)
}
