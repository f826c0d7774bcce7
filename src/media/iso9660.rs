//! ISO9660 (ECMA-119), read and written: the volume size (where an ISO ends on a stick), files
//! looked up by path (`/vault/bundle` of the CD-capable variant, the EFI loaders that tell an
//! installer's architecture), and the minimal one-file volume of the binary partition.
//!
//! The reader is minimal and defensive: only the primary volume descriptor and the primary
//! directory tree (ISO9660 names, compared without version and trailing dot, case-insensitive),
//! with every offset bounds-checked. Rock Ridge and Joliet names are not needed for the two
//! fixed names vault looks up.

use std::fs::File;
use std::path::Path;

use super::error::Result;
use super::io::read_at_most;

/// The logical sector size of every volume vault writes and of the descriptors it reads.
pub const SECTOR: u64 = 2048;
/// Directories larger than this are not walked (the path vault looks for is two levels deep).
const MAX_DIR: u64 = 1 << 20;

/// The primary volume descriptor's essentials.
#[derive(Debug, Clone, Copy)]
pub struct Volume {
    pub block_size: u64,
    /// Bytes covered by the ISO9660 volume.
    pub size: u64,
    root_extent: u64,
    root_len: u64,
}

/// Reads the primary volume descriptor at sector 16. `Ok(None)` when there is none.
pub fn volume(file: &mut File, path: &Path) -> Result<Option<Volume>> {
    let pvd = read_at_most(file, path, 16 * SECTOR, SECTOR as usize)?;
    if pvd.len() < 190 || pvd[0] != 1 || &pvd[1..6] != b"CD001" {
        return Ok(None);
    }
    let blocks = u64::from(u32::from_le_bytes([pvd[80], pvd[81], pvd[82], pvd[83]]));
    let block_size = u64::from(u16::from_le_bytes([pvd[128], pvd[129]]));
    if !matches!(block_size, 512 | 1024 | 2048) {
        return Ok(None);
    }
    let root = &pvd[156..190];
    Ok(Some(Volume {
        block_size,
        size: blocks * block_size,
        root_extent: u64::from(u32::from_le_bytes([root[2], root[3], root[4], root[5]])),
        root_len: u64::from(u32::from_le_bytes([root[10], root[11], root[12], root[13]])),
    }))
}

/// A file found in the ISO9660 tree: byte offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsoFile {
    pub offset: u64,
    pub len: u64,
}

/// Looks up `/vault/bundle` (where `attach --iso-file` puts the bundle) in the ISO at the start
/// of `file`.
pub fn find_bundle(file: &mut File, path: &Path) -> Result<Option<IsoFile>> {
    find_path(file, path, &["VAULT"], "BUNDLE")
}

/// Looks up the file `name` under the directories `dirs` (from the root) in the ISO at the
/// start of `file`.
pub fn find_path(
    file: &mut File,
    path: &Path,
    dirs: &[&str],
    name: &str,
) -> Result<Option<IsoFile>> {
    let Some(vol) = volume(file, path)? else {
        return Ok(None);
    };
    let (mut extent, mut len) = (vol.root_extent, vol.root_len);
    for d in dirs {
        let Some(dir) = lookup(file, path, &vol, extent, len, d, true)? else {
            return Ok(None);
        };
        (extent, len) = (dir.offset / vol.block_size, dir.len);
    }
    lookup(file, path, &vol, extent, len, name, false)
}

fn lookup(
    file: &mut File,
    path: &Path,
    vol: &Volume,
    extent: u64,
    len: u64,
    want: &str,
    want_dir: bool,
) -> Result<Option<IsoFile>> {
    if len > MAX_DIR {
        return Ok(None);
    }
    let Some(start) = extent.checked_mul(vol.block_size) else {
        return Ok(None);
    };
    let data = read_at_most(file, path, start, len as usize)?;
    let mut i = 0usize;
    while i < data.len() {
        let rec_len = usize::from(data[i]);
        if rec_len == 0 {
            // Records do not cross sectors: the rest of this sector is padding.
            i = (i / SECTOR as usize + 1) * SECTOR as usize;
            continue;
        }
        let Some(rec) = data.get(i..i + rec_len) else {
            break;
        };
        i += rec_len;
        if rec.len() < 33 {
            continue;
        }
        let name_len = usize::from(rec[32]);
        let Some(name) = rec.get(33..33 + name_len) else {
            continue;
        };
        let flags = rec[25];
        let is_dir = flags & 0x02 != 0;
        // Multi-extent files are not something vault writes.
        if is_dir != want_dir || flags & 0x80 != 0 {
            continue;
        }
        let name = String::from_utf8_lossy(name);
        let name = name.split(';').next().unwrap_or("").trim_end_matches('.');
        if name.eq_ignore_ascii_case(want) {
            let ext = u64::from(u32::from_le_bytes([rec[2], rec[3], rec[4], rec[5]]));
            let size = u64::from(u32::from_le_bytes([rec[10], rec[11], rec[12], rec[13]]));
            return Ok(ext
                .checked_mul(vol.block_size)
                .map(|offset| IsoFile { offset, len: size }));
        }
    }
    Ok(None)
}

const ISO_SECTOR: usize = SECTOR as usize;

/// Finds `name` in one directory sector of the volume vault writes: (extent, size).
pub fn dir_entry(dir: &[u8], name: &[u8]) -> Option<(u64, u64)> {
    let mut i = 0;
    while i + 33 < dir.len() {
        let rec_len = usize::from(dir[i]);
        if rec_len < 34 {
            return None;
        }
        let rec = dir.get(i..i + rec_len)?;
        let nlen = usize::from(rec[32]);
        if rec.get(33..33 + nlen) == Some(name) && rec[25] & 0x02 == 0 {
            let ext = u32::from_le_bytes(rec[2..6].try_into().ok()?);
            let size = u32::from_le_bytes(rec[10..14].try_into().ok()?);
            return Some((u64::from(ext), u64::from(size)));
        }
        i += rec_len;
    }
    None
}

fn both16(v: u16) -> [u8; 4] {
    let (l, b) = (v.to_le_bytes(), v.to_be_bytes());
    [l[0], l[1], b[0], b[1]]
}

fn both32(v: u32) -> [u8; 8] {
    let (l, b) = (v.to_le_bytes(), v.to_be_bytes());
    [l[0], l[1], l[2], l[3], b[0], b[1], b[2], b[3]]
}

/// A directory record (ECMA-119 9.1), date fixed at 1980-01-01 so the volume is reproducible.
fn dir_record(extent: u32, size: u32, dir: bool, name: &[u8]) -> Vec<u8> {
    let len = 33 + name.len() + (1 - name.len() % 2);
    let mut r = vec![0u8; len];
    r[0] = len as u8;
    r[2..10].copy_from_slice(&both32(extent));
    r[10..18].copy_from_slice(&both32(size));
    r[18..25].copy_from_slice(&[80, 1, 1, 0, 0, 0, 0]);
    r[25] = if dir { 0x02 } else { 0 };
    r[28..32].copy_from_slice(&both16(1));
    r[32] = name.len() as u8;
    r[33..33 + name.len()].copy_from_slice(name);
    r
}

fn pad_field(dst: &mut [u8], s: &str) {
    dst.fill(b' ');
    let n = s.len().min(dst.len());
    dst[..n].copy_from_slice(&s.as_bytes()[..n]);
}

/// A minimal ISO9660 volume (ECMA-119, no Rock Ridge or Joliet) labelled `label`, holding `file`
/// as the one file `name` (an ISO9660 name such as `VAULT.;1`), `application` as its
/// application identifier and `record` in the application-use field. Sectors: 0–15 system
/// area (zero), 16 primary volume descriptor, 17 terminator, 18 L path table, 19 M path table,
/// 20 root directory, 21… the file, zero-padded to a whole sector.
pub fn build_volume(
    label: &str,
    application: &str,
    name: &[u8],
    file: &[u8],
    record: &str,
) -> Vec<u8> {
    const ROOT: u32 = 20;
    const FILE: u32 = 21;
    let file_sectors = file.len().div_ceil(ISO_SECTOR) as u32;
    let total = FILE + file_sectors;
    let mut v = vec![0u8; total as usize * ISO_SECTOR];
    let sec = |n: u32| n as usize * ISO_SECTOR;

    let root_rec = dir_record(ROOT, ISO_SECTOR as u32, true, &[0]);
    let p = &mut v[sec(16)..sec(17)];
    p[0] = 1;
    p[1..6].copy_from_slice(b"CD001");
    p[6] = 1;
    pad_field(&mut p[8..40], "LINUX");
    pad_field(&mut p[40..72], label);
    p[80..88].copy_from_slice(&both32(total));
    p[120..124].copy_from_slice(&both16(1));
    p[124..128].copy_from_slice(&both16(1));
    p[128..132].copy_from_slice(&both16(ISO_SECTOR as u16));
    p[132..140].copy_from_slice(&both32(10));
    p[140..144].copy_from_slice(&18u32.to_le_bytes());
    p[148..152].copy_from_slice(&19u32.to_be_bytes());
    p[156..190].copy_from_slice(&root_rec);
    for (at, len) in [
        (190, 128),
        (318, 128),
        (446, 128),
        (574, 128),
        (702, 37),
        (739, 37),
        (776, 37),
    ] {
        pad_field(&mut p[at..at + len], "");
    }
    pad_field(&mut p[574..702], application);
    for at in [813, 830, 847, 864] {
        p[at..at + 16].copy_from_slice(b"0000000000000000");
    }
    p[881] = 1;
    let rec = record.as_bytes();
    let n = rec.len().min(512);
    p[883..883 + n].copy_from_slice(&rec[..n]);

    let t = &mut v[sec(17)..sec(18)];
    t[0] = 255;
    t[1..6].copy_from_slice(b"CD001");
    t[6] = 1;

    // One path table entry: the root.
    v[sec(18)..sec(18) + 10].copy_from_slice(&[1, 0, ROOT as u8, 0, 0, 0, 1, 0, 0, 0]);
    v[sec(19)..sec(19) + 10].copy_from_slice(&[1, 0, 0, 0, 0, ROOT as u8, 0, 1, 0, 0]);

    let mut dir = dir_record(ROOT, ISO_SECTOR as u32, true, &[0]);
    dir.extend(dir_record(ROOT, ISO_SECTOR as u32, true, &[1]));
    dir.extend(dir_record(FILE, file.len() as u32, false, name));
    v[sec(ROOT)..sec(ROOT) + dir.len()].copy_from_slice(&dir);
    v[sec(FILE)..sec(FILE) + file.len()].copy_from_slice(file);
    v
}
