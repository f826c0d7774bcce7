//! The MBR of an installer image, its slots, and the bundle partition's trailer.
//!
//! The table is read and written with `mbrman`'s `MBRHeader` (the 512-byte sector only: its
//! extended-partition walk and alignment guess are not needed and are not robust against
//! hostile tables). Every write is checked to change nothing but the one 16-byte entry.

use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::path::Path;

use mbrman::{MBRHeader, MBRPartitionEntry, CHS};

use super::error::{Error, Result};
use super::io::{align_up, read_at_most};

/// Sector size of MBR addressing. Installer images and USB sticks use 512-byte sectors.
pub const SECTOR: u64 = 512;
/// Partitions start on a 1 MiB boundary, as every partitioning tool aligns them.
pub const ALIGN: u64 = 1 << 20;
/// MBR type of the bundle partition: 0xDA, "non-FS data" — nothing tries to mount it.
pub const PART_TYPE: u8 = 0xDA;

/// MBR type of the binary partition: 0x96, "CHRP ISO-9660", which is what it holds.
pub const BIN_PART_TYPE: u8 = 0x96;

/// Byte offset of the first of the four 16-byte partition entries.
const TABLE_OFFSET: usize = 446;
/// Protective MBR type: the disk is partitioned by a GPT.
const GPT_PROTECTIVE: u8 = 0xEE;
/// Slots tried for a new bundle partition: 3 and 4 first, since isohybrid images use 1 (the
/// ISO) and 2 (the EFI system partition).
const SLOT_ORDER: [usize; 4] = [3, 4, 2, 1];
/// First line of the trailer sector.
const TRAILER_MAGIC: &[u8] = b"vault-media v1\n";

/// One used primary entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// 1..=4.
    pub index: usize,
    pub sys: u8,
    pub start_lba: u64,
    pub sectors: u64,
}

impl Slot {
    pub fn start(&self) -> u64 {
        self.start_lba * SECTOR
    }
    pub fn end(&self) -> u64 {
        (self.start_lba + self.sectors) * SECTOR
    }
}

/// A parsed MBR sector.
#[derive(Debug, Clone)]
pub struct Table {
    raw: [u8; 512],
    /// Used entries (any non-zero byte): an entry of type 0 that still has an extent, as
    /// xorriso writes for the ISO in slot 1, is *not* free.
    pub used: Vec<Slot>,
}

impl Table {
    /// Reads the MBR at the start of `file`. `Ok(None)` when there is no 0x55AA signature.
    pub fn read(file: &mut File, path: &Path) -> Result<Option<Table>> {
        let mut raw = [0u8; 512];
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("cannot seek in", path, e))?;
        match file.read_exact(&mut raw) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(Error::io("cannot read", path, e)),
        }
        Table::parse(raw, path)
    }

    pub fn parse(raw: [u8; 512], path: &Path) -> Result<Option<Table>> {
        if raw[510..512] != [0x55, 0xAA] {
            return Ok(None);
        }
        // Validates boot flags; the values themselves are read from the raw bytes below.
        MBRHeader::read_from(&mut Cursor::new(&raw[..])).map_err(|e| Error::NoTable {
            path: path.into(),
            why: e.to_string(),
        })?;
        let used = (1..=4)
            .filter_map(|i| {
                let e = entry_bytes(&raw, i);
                if e.iter().all(|b| *b == 0) {
                    return None;
                }
                Some(Slot {
                    index: i,
                    sys: e[4],
                    start_lba: u64::from(u32::from_le_bytes([e[8], e[9], e[10], e[11]])),
                    sectors: u64::from(u32::from_le_bytes([e[12], e[13], e[14], e[15]])),
                })
            })
            .collect();
        Ok(Some(Table { raw, used }))
    }

    /// The slot of a protective (GPT) entry, if any.
    pub fn protective_gpt(&self) -> Option<usize> {
        self.used
            .iter()
            .find(|s| s.sys == GPT_PROTECTIVE)
            .map(|s| s.index)
    }

    /// Bundle partitions (type 0xDA).
    pub fn vault_slots(&self) -> impl Iterator<Item = &Slot> {
        self.used.iter().filter(|s| s.sys == PART_TYPE)
    }

    /// Carried-binary partitions (type 0x96).
    pub fn binary_slots(&self) -> impl Iterator<Item = &Slot> {
        self.used.iter().filter(|s| s.sys == BIN_PART_TYPE)
    }

    /// Everything but vault's partitions (bundle and carried binary).
    pub fn other_slots(&self) -> impl Iterator<Item = &Slot> {
        self.used
            .iter()
            .filter(|s| s.sys != PART_TYPE && s.sys != BIN_PART_TYPE)
    }

    /// The end of the last non-bundle partition, in bytes.
    pub fn data_end(&self) -> u64 {
        self.other_slots().map(Slot::end).max().unwrap_or(0)
    }

    pub fn free_slot(&self) -> Option<usize> {
        self.free_slot_except(&[])
    }

    /// The first free slot that is not one of `taken`.
    pub fn free_slot_except(&self, taken: &[usize]) -> Option<usize> {
        SLOT_ORDER
            .into_iter()
            .find(|i| !taken.contains(i) && !self.used.iter().any(|s| s.index == *i))
    }

    /// The 512 bytes with entry `index` set (or cleared with `None`). Checks that nothing
    /// else changed.
    pub fn with_entry(
        &self,
        index: usize,
        entry: Option<(u64, u64)>,
        path: &Path,
    ) -> Result<[u8; 512]> {
        self.with_typed_entry(index, entry.map(|(s, n)| (s, n, PART_TYPE)), path)
    }

    /// Like [`Table::with_entry`], with the partition type given: (start LBA, sectors, type).
    pub fn with_typed_entry(
        &self,
        index: usize,
        entry: Option<(u64, u64, u8)>,
        path: &Path,
    ) -> Result<[u8; 512]> {
        let mut header =
            MBRHeader::read_from(&mut Cursor::new(&self.raw[..])).map_err(|e| Error::NoTable {
                path: path.into(),
                why: e.to_string(),
            })?;
        let new = match entry {
            None => MBRPartitionEntry::empty(),
            Some((start_lba, sectors, sys)) => MBRPartitionEntry {
                boot: 0,
                // Past what CHS can address: the conventional "use LBA" marker, as xorriso
                // writes for the EFI partition.
                first_chs: CHS::new(1023, 254, 63),
                sys,
                last_chs: CHS::new(1023, 254, 63),
                starting_lba: u32::try_from(start_lba)
                    .map_err(|_| Error::BeyondMbr { path: path.into() })?,
                sectors: u32::try_from(sectors)
                    .map_err(|_| Error::BeyondMbr { path: path.into() })?,
            },
        };
        let slot = header.get_mut(index).ok_or_else(|| Error::NoTable {
            path: path.into(),
            why: format!("no slot {index}"),
        })?;
        *slot = new;
        let mut out = Cursor::new(vec![0u8; 512]);
        header.write_into(&mut out).map_err(|e| Error::NoTable {
            path: path.into(),
            why: e.to_string(),
        })?;
        let out = out.into_inner();
        let mut bytes = [0u8; 512];
        bytes.copy_from_slice(out.get(..512).unwrap_or(&[0u8; 512]));
        let range = TABLE_OFFSET + 16 * (index - 1)..TABLE_OFFSET + 16 * index;
        let changed_elsewhere = (0..512).any(|i| !range.contains(&i) && bytes[i] != self.raw[i]);
        if changed_elsewhere || out.len() != 512 {
            return Err(Error::NoTable {
                path: path.into(),
                why: "rewriting the table would change more than the one entry".into(),
            });
        }
        Ok(bytes)
    }
}

fn entry_bytes(raw: &[u8; 512], index: usize) -> &[u8] {
    &raw[TABLE_OFFSET + 16 * (index - 1)..TABLE_OFFSET + 16 * index]
}

/// Where a bundle of `len` bytes goes when the data before it ends at `data_end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Byte offset of the partition (a multiple of 1 MiB).
    pub start: u64,
    /// Exact bundle length.
    pub len: u64,
}

impl Extent {
    pub fn after(data_end: u64, len: u64, path: &Path) -> Result<Extent> {
        let start =
            align_up(data_end, ALIGN).ok_or_else(|| Error::BeyondMbr { path: path.into() })?;
        Ok(Extent { start, len })
    }
    /// Partition length in sectors: the bundle rounded up, plus the trailer sector.
    pub fn sectors(&self) -> u64 {
        self.len.div_ceil(SECTOR) + 1
    }
    pub fn end(&self) -> u64 {
        self.start + self.sectors() * SECTOR
    }
    pub fn start_lba(&self) -> u64 {
        self.start / SECTOR
    }
    /// Refuses extents an MBR cannot describe.
    pub fn check_mbr(&self, path: &Path) -> Result<()> {
        if self.start_lba() > u64::from(u32::MAX)
            || self.sectors() > u64::from(u32::MAX)
            || self.end() / SECTOR > u64::from(u32::MAX)
        {
            return Err(Error::BeyondMbr { path: path.into() });
        }
        Ok(())
    }
    /// Refuses an extent that overlaps any non-bundle partition.
    pub fn check_overlap(&self, table: &Table, path: &Path) -> Result<()> {
        for s in table.other_slots() {
            if s.sectors > 0 && s.start() < self.end() && self.start < s.end() {
                return Err(Error::Overlap {
                    path: path.into(),
                    slot: s.index,
                    start: self.start_lba(),
                    end: self.end() / SECTOR,
                });
            }
        }
        Ok(())
    }
}

/// The trailer sector recording the bundle's exact length.
pub fn trailer(len: u64) -> [u8; 512] {
    let mut t = [0u8; 512];
    let text = format!("vault-media v1\nlength {len}\n");
    t[..text.len()].copy_from_slice(text.as_bytes());
    t
}

/// The bundle length a trailer records, if `sector` is one.
pub fn parse_trailer(sector: &[u8]) -> Option<u64> {
    let rest = sector.strip_prefix(TRAILER_MAGIC)?;
    let rest = rest.strip_prefix(b"length ")?;
    let end = rest.iter().position(|b| *b == b'\n')?;
    let digits = rest.get(..end)?;
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The exact bundle length of a partition of `part_len` bytes at `offset` in `file`, from its
/// trailer.
pub fn bundle_len(file: &mut File, path: &Path, offset: u64, part_len: u64) -> Result<u64> {
    let damaged = |why: &str| Error::Damaged {
        path: path.into(),
        offset,
        why: why.into(),
    };
    let last = part_len
        .checked_sub(SECTOR)
        .ok_or_else(|| damaged("it is smaller than one sector"))?;
    let sector = read_at_most(file, path, offset + last, SECTOR as usize)?;
    let len = parse_trailer(&sector).ok_or_else(|| {
        damaged("its last sector is not a vault trailer (was it written by `vault attach`?)")
    })?;
    if len > last || len == 0 {
        return Err(damaged(
            "its trailer records a length that does not fit the partition",
        ));
    }
    Ok(len)
}

/// Writes the MBR sector.
pub fn write_table(out: &mut File, path: &Path, sector: &[u8; 512]) -> Result<()> {
    out.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("cannot seek in", path, e))?;
    out.write_all(sector)
        .map_err(|e| Error::io("cannot write the partition table of", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_round_trip() {
        assert_eq!(parse_trailer(&trailer(12345)), Some(12345));
        assert_eq!(parse_trailer(&[0u8; 512]), None);
        assert_eq!(parse_trailer(b"vault-media v1\nlength \n"), None);
        assert_eq!(
            parse_trailer(b"vault-media v1\nlength 99999999999999999999999\n"),
            None
        );
    }

    #[test]
    fn extent_layout() {
        let p = Path::new("x");
        let e = Extent::after((13 << 20) + 1, 1000, p).unwrap();
        assert_eq!(e.start, 14 << 20);
        assert_eq!(e.sectors(), 2 + 1);
        assert_eq!(e.end(), (14 << 20) + 3 * 512);
        let e = Extent::after(14 << 20, 1024, p).unwrap();
        assert_eq!(e.start, 14 << 20);
        assert_eq!(e.sectors(), 3);
    }

    #[test]
    fn hostile_tables_do_not_panic() {
        let p = Path::new("x");
        let mut raw = [0xFFu8; 512];
        raw[510] = 0x55;
        raw[511] = 0xAA;
        // Boot flags 0xFF are invalid: refused, not a panic.
        assert!(Table::parse(raw, p).is_err());
        for i in 0..4 {
            raw[TABLE_OFFSET + 16 * i] = 0;
        }
        let t = Table::parse(raw, p).unwrap().unwrap();
        assert_eq!(t.used.len(), 4);
        assert_eq!(t.free_slot(), None);
        // Ends past u32 sectors are computed in u64.
        assert!(t.data_end() > u64::from(u32::MAX));
    }
}
