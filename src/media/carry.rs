//! The vault binary a stick carries, so that an installer without vault (the official NixOS
//! ISO) can unlock offline.
//!
//! Layout (docs/MEDIA.md): in partition mode the binary goes in its own MBR partition of type
//! 0x96 right after the bundle partition, formatted by vault as a minimal ISO9660 volume
//! labelled [`LABEL`] that holds one file, `vault`. Every Linux live system can mount it by
//! label (`mount -r LABEL=VAULT-BIN DIR`, util-linux or busybox) without extra tools, since it
//! mounts its own ISO9660 root the same way; a file system without Rock Ridge gives files mode
//! r-x, so the binary runs from there. The volume's application-use field records what was
//! carried (version, architecture, SHA-256, length), which `vault inspect` shows and checks.
//! In `--iso-file` mode the binary is [`ISO_BINARY_PATH`] in the installer's own ISO tree.
//!
//! A label names no device: any disk on the live system may carry `VAULT-BIN` (a second stick,
//! a partition of the disk being installed). So the command `attach` prints ([`run_command`])
//! copies the binary into root's tmpfs, checks the copy's SHA-256 against the one printed on
//! the workstation, and runs the copy only if it matches.
//!
//! Only a statically linked ELF of the installer's architecture is carried: the official live
//! system has no loader for a dynamically linked one.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::input::{open_input, FileId};
use super::{isofile, read_at_most, Error, Result};

/// MBR type of the binary partition: 0x96, "CHRP ISO-9660", which is what it holds.
pub const BIN_PART_TYPE: u8 = 0x96;
/// Volume label of the binary partition (`mount LABEL=VAULT-BIN`).
pub const LABEL: &str = "VAULT-BIN";
/// Where `--iso-file` mode puts the binary in the ISO tree.
pub const ISO_BINARY_PATH: &str = "/vault/vault";
/// Where [`run_command`] puts the checked copy of the binary: `/run` is a tmpfs only root can
/// write to, so the bytes checked are the bytes run.
pub const RUN_PATH: &str = "/run/vault";

/// The command `attach` prints (and the guides show), for the official live system: mount the
/// partition labelled [`LABEL`], copy the binary to [`RUN_PATH`], unmount, check the copy's
/// SHA-256 with `sha256sum -c` (coreutils or busybox), and only then run it as root.
pub fn run_command(sha256: &str) -> String {
    format!(
        "sudo mkdir -p /run/vault-bin && sudo mount -r LABEL={LABEL} /run/vault-bin && sudo cp /run/vault-bin/vault {RUN_PATH} && sudo umount /run/vault-bin && echo '{sha256}  {RUN_PATH}' | sha256sum -c && sudo {RUN_PATH} unlock"
    )
}

/// The same for `--iso-file` mode: the binary is in the ISO tree the live system booted from,
/// mounted at `/iso`.
pub fn iso_run_command(sha256: &str) -> String {
    let bin = format!("/iso{ISO_BINARY_PATH}");
    format!("echo '{sha256}  {bin}' | sha256sum -c && sudo {bin} unlock")
}

/// Larger files are refused: vault's static build is a few MiB.
const MAX_BINARY: u64 = 256 << 20;
const ISO_SECTOR: usize = 2048;
/// First line of the record in the volume's application-use field.
const RECORD_MAGIC: &str = "vault-binary v1\n";

/// Marks the version inside every vault binary, so that `attach` and `inspect` can tell which
/// version a binary is without running it (it may be for another architecture).
#[used]
pub static VERSION_MARKER: &[u8] =
    concat!("\0vault-version:", env!("CARGO_PKG_VERSION"), "\0").as_bytes();
/// Length of the marker's fixed part, `\0vault-version:`. The search pattern is taken from the
/// marker itself, so that no second copy of it (a separate literal) sits in the binary, and so
/// that the marker is referenced and kept by the linker.
const MARKER_PREFIX_LEN: usize = 15;

/// CPU architectures NixOS installers exist for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
    fn from_name(s: &str) -> Option<Arch> {
        let s = s.to_ascii_lowercase();
        if s.contains("x86_64") || s.contains("x86-64") || s.contains("amd64") {
            Some(Arch::X86_64)
        } else if s.contains("aarch64") || s.contains("arm64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }
}

/// A binary to carry, checked: static ELF, its architecture, hash and version.
#[derive(Debug, Clone)]
pub struct Binary {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub arch: Arch,
    pub sha256: String,
    /// From the version marker; `None` for a binary that is not vault.
    pub version: Option<String>,
    /// Given with `--vault-binary` (as opposed to the running vault): shapes the hints.
    pub explicit: bool,
    /// The file it was read from: an output may not be it.
    pub id: FileId,
}

impl Binary {
    /// Reads and checks `path`: an ELF executable for x86_64 or aarch64 without a program
    /// interpreter (statically linked), carrying vault's version marker.
    pub fn load(path: &Path, explicit: bool) -> Result<Binary> {
        let f = open_input(path)?;
        let meta = f
            .metadata()
            .map_err(|e| Error::io("cannot read", path, e))?;
        let len = meta.len();
        let id = FileId::of(&meta);
        if len > MAX_BINARY {
            return Err(Error::NotAVaultBinary {
                path: path.into(),
                why: format!("it is {len} bytes, more than vault's static build could be"),
            });
        }
        let mut bytes = Vec::with_capacity(len as usize);
        f.take(MAX_BINARY)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("cannot read", path, e))?;
        let arch = elf_static_arch(&bytes, path, explicit)?;
        let version = version_in(&bytes);
        if version.is_none() {
            return Err(Error::NotAVaultBinary {
                path: path.into(),
                why: "it has no vault version marker".into(),
            });
        }
        let sha256 = hex::encode(Sha256::digest(&bytes));
        Ok(Binary {
            path: path.into(),
            bytes,
            arch,
            sha256,
            version,
            explicit,
            id,
        })
    }

    /// The running vault, if it can be carried.
    pub fn running() -> Result<Binary> {
        let exe = std::fs::read_link("/proc/self/exe")
            .unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
        Binary::load(&exe, false)
    }

    /// Refuses a binary that the installer at `image` cannot run.
    pub fn check_arch(&self, image: &Path, iso: Option<Arch>) -> Result<()> {
        match iso {
            Some(a) if a == self.arch => Ok(()),
            Some(a) => Err(Error::WrongArch {
                path: self.path.clone(),
                binary: self.arch.name(),
                image: image.into(),
                iso: a.name(),
                explicit: self.explicit,
            }),
            None => Err(Error::UnknownArch {
                image: image.into(),
            }),
        }
    }

    /// The ISO9660 volume of the binary partition.
    pub fn volume(&self) -> Vec<u8> {
        build_volume(&self.bytes, &self.record())
    }

    fn record(&self) -> String {
        format!(
            "{RECORD_MAGIC}version {}\narch {}\nsha256 {}\nlength {}\n",
            self.version.as_deref().unwrap_or("unknown"),
            self.arch.name(),
            self.sha256,
            self.bytes.len()
        )
    }
}

/// The version in vault's marker, if `bytes` holds one.
pub fn version_in(bytes: &[u8]) -> Option<String> {
    let prefix = VERSION_MARKER.get(..MARKER_PREFIX_LEN)?;
    let at = bytes.windows(prefix.len()).position(|w| w == prefix)?;
    let rest = &bytes[at + prefix.len()..];
    let end = rest.iter().take(64).position(|b| *b == 0)?;
    let v = std::str::from_utf8(&rest[..end]).ok()?;
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic())).then(|| v.to_owned())
}

/// The architecture of a statically linked ELF executable; refuses anything else.
fn elf_static_arch(b: &[u8], path: &Path, explicit: bool) -> Result<Arch> {
    let bad = |why: &str| Error::NotAVaultBinary {
        path: path.into(),
        why: why.into(),
    };
    if b.len() < 64 || &b[..4] != b"\x7fELF" {
        return Err(bad("it is not an ELF executable"));
    }
    if b[4] != 2 || b[5] != 1 {
        return Err(bad("it is not a 64-bit little-endian ELF file"));
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let e_type = u16_at(16);
    if e_type != 2 && e_type != 3 {
        return Err(bad("it is not an ELF executable (wrong e_type)"));
    }
    let arch = match u16_at(18) {
        62 => Arch::X86_64,
        183 => Arch::Aarch64,
        m => {
            return Err(bad(&format!(
                "its machine type {m} is neither x86_64 nor aarch64"
            )))
        }
    };
    let phoff = u64::from_le_bytes(b[32..40].try_into().unwrap_or_default());
    let phentsize = u64::from(u16_at(54));
    let phnum = u64::from(u16_at(56));
    if phentsize < 56 || phnum == 0 {
        return Err(bad("it has no program headers"));
    }
    for i in 0..phnum {
        let off = phoff
            .checked_add(i * phentsize)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|o| o.checked_add(4).is_some_and(|e| e <= b.len()))
            .ok_or_else(|| bad("its program headers lie outside the file"))?;
        let p_type = u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]]);
        // PT_INTERP: the program needs a loader (ld-linux), i.e. it is dynamically linked.
        if p_type == 3 {
            return Err(Error::DynamicBinary {
                path: path.into(),
                explicit,
            });
        }
    }
    Ok(arch)
}

/// The installer's architecture, from the ISO's volume label (nixpkgs names it, e.g.
/// `nixos-minimal-25.11-x86_64-linux`) or else its EFI loader (`/EFI/BOOT/BOOTX64.EFI` or
/// `BOOTAA64.EFI`).
pub fn iso_arch(f: &mut File, path: &Path) -> Result<Option<Arch>> {
    let pvd = read_at_most(f, path, 16 * ISO_SECTOR as u64, ISO_SECTOR)?;
    if pvd.len() < 72 || &pvd[1..6] != b"CD001" {
        return Ok(None);
    }
    if let Some(a) = Arch::from_name(&String::from_utf8_lossy(&pvd[40..72])) {
        return Ok(Some(a));
    }
    for (name, arch) in [
        ("BOOTX64.EFI", Arch::X86_64),
        ("BOOTAA64.EFI", Arch::Aarch64),
    ] {
        if isofile::find_path(f, path, &["EFI", "BOOT"], name)?.is_some() {
            return Ok(Some(arch));
        }
    }
    Ok(None)
}

/// What a medium carries, as `inspect` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    /// Where: "MBR slot 4 (label VAULT-BIN)" or "/vault/vault in the ISO tree".
    pub location: String,
    pub offset: u64,
    pub len: u64,
    /// From the record `attach` wrote on the stick, or the binary's own marker: the stick's
    /// word, not vault's.
    pub version: Option<crate::escape::Untrusted>,
    pub arch: Option<&'static str>,
    /// SHA-256 of the bytes as they are on the medium now.
    pub sha256: String,
    /// Whether that matches what `attach` recorded (`None` when nothing was recorded).
    pub matches_record: Option<bool>,
}

/// Reads the carried binary of `len` bytes at `offset` (bounded by [`MAX_BINARY`]);
/// `location` names it in errors.
fn read_binary(
    f: &mut File,
    path: &Path,
    location: &str,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>> {
    let damaged = |why: &str| Error::BinaryDamaged {
        path: path.into(),
        location: location.into(),
        offset,
        why: why.into(),
    };
    if len > MAX_BINARY {
        return Err(damaged("the carried binary is implausibly large"));
    }
    // Within the file before anything is allocated for it.
    let total = super::byte_len(f, path)?;
    if offset.checked_add(len).is_none_or(|end| end > total) {
        return Err(damaged("the carried binary extends past the end"));
    }
    let bytes = read_at_most(f, path, offset, len as usize)?;
    if bytes.len() as u64 != len {
        return Err(damaged("the carried binary extends past the end"));
    }
    Ok(bytes)
}

/// The binary in a binary partition at byte `start` of `f`.
pub fn read_partition(f: &mut File, path: &Path, start: u64, slot: usize) -> Result<Carried> {
    let location = format!("MBR slot {slot}, label {LABEL}");
    let damaged = |why: &str| Error::BinaryDamaged {
        path: path.into(),
        location: location.clone(),
        offset: start,
        why: why.into(),
    };
    let pvd = read_at_most(f, path, start + 16 * ISO_SECTOR as u64, ISO_SECTOR)?;
    if pvd.len() < ISO_SECTOR || &pvd[..6] != b"\x01CD001" {
        return Err(damaged("its partition holds no ISO9660 volume"));
    }
    let root_extent = u64::from(u32::from_le_bytes(
        pvd[158..162].try_into().unwrap_or_default(),
    ));
    let dir = read_at_most(f, path, start + root_extent * ISO_SECTOR as u64, ISO_SECTOR)?;
    let (ext, size) =
        dir_entry(&dir, b"VAULT.;1").ok_or_else(|| damaged("its volume has no file `vault`"))?;
    let offset = start + ext * ISO_SECTOR as u64;
    let bytes = read_binary(f, path, &location, offset, size)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let record = String::from_utf8_lossy(&pvd[883..883 + 512]).into_owned();
    let field = |k: &str| {
        record
            .strip_prefix(RECORD_MAGIC)?
            .lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(' ').map(str::to_owned))
    };
    let recorded = field("sha256");
    Ok(Carried {
        location: format!("MBR slot {slot} (label {LABEL}), file vault"),
        offset,
        len: size,
        version: field("version")
            .or_else(|| version_in(&bytes))
            .map(Into::into),
        arch: elf_static_arch(&bytes, path, false).ok().map(Arch::name),
        matches_record: recorded.map(|r| r == sha256),
        sha256,
    })
}

/// The binary at [`ISO_BINARY_PATH`] in the ISO tree of `f`, if any.
pub fn read_iso_file(f: &mut File, path: &Path) -> Result<Option<Carried>> {
    let Some(file) = isofile::find_path(f, path, &["VAULT"], "VAULT")? else {
        return Ok(None);
    };
    let location = format!("{ISO_BINARY_PATH} in the ISO tree");
    let bytes = read_binary(f, path, &location, file.offset, file.len)?;
    Ok(Some(Carried {
        location,
        offset: file.offset,
        len: file.len,
        version: version_in(&bytes).map(Into::into),
        arch: elf_static_arch(&bytes, path, false).ok().map(Arch::name),
        sha256: hex::encode(Sha256::digest(&bytes)),
        matches_record: None,
    }))
}

/// Finds `name` in one directory sector of the volume vault writes: (extent, size).
fn dir_entry(dir: &[u8], name: &[u8]) -> Option<(u64, u64)> {
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

/// A minimal ISO9660 volume (ECMA-119, no Rock Ridge or Joliet) holding `binary` as the one
/// file `VAULT.;1` (`vault` on Linux), `record` in the application-use field. Sectors:
/// 0–15 system area (zero), 16 primary volume descriptor, 17 terminator, 18 L path table,
/// 19 M path table, 20 root directory, 21… the file, zero-padded to a whole sector.
pub fn build_volume(binary: &[u8], record: &str) -> Vec<u8> {
    const ROOT: u32 = 20;
    const FILE: u32 = 21;
    let file_sectors = binary.len().div_ceil(ISO_SECTOR) as u32;
    let total = FILE + file_sectors;
    let mut v = vec![0u8; total as usize * ISO_SECTOR];
    let sec = |n: u32| n as usize * ISO_SECTOR;

    let root_rec = dir_record(ROOT, ISO_SECTOR as u32, true, &[0]);
    let p = &mut v[sec(16)..sec(17)];
    p[0] = 1;
    p[1..6].copy_from_slice(b"CD001");
    p[6] = 1;
    pad_field(&mut p[8..40], "LINUX");
    pad_field(&mut p[40..72], LABEL);
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
    pad_field(&mut p[574..702], "VAULT (STATIC BINARY FOR THE INSTALLER)");
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
    dir.extend(dir_record(FILE, binary.len() as u32, false, b"VAULT.;1"));
    v[sec(ROOT)..sec(ROOT) + dir.len()].copy_from_slice(&dir);
    v[sec(FILE)..sec(FILE) + binary.len()].copy_from_slice(binary);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_binary_has_a_version_marker() {
        let me = std::fs::read("/proc/self/exe").unwrap();
        // The test binary links the library, so the marker is in it.
        assert_eq!(version_in(&me).as_deref(), Some(env!("CARGO_PKG_VERSION")));
        assert!(std::hint::black_box(VERSION_MARKER).len() > 16);
    }

    #[test]
    fn volume_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v");
        let bin = b"\x7fELF not really".repeat(300);
        std::fs::write(
            &p,
            build_volume(&bin, "vault-binary v1\nversion 9.9\nsha256 x\n"),
        )
        .unwrap();
        let mut f = File::open(&p).unwrap();
        let c = read_partition(&mut f, &p, 0, 4).unwrap();
        assert_eq!(c.len, bin.len() as u64);
        assert_eq!(c.offset, 21 * 2048);
        assert_eq!(c.version.as_ref().map(|v| v.as_raw()), Some("9.9"));
        assert_eq!(c.matches_record, Some(false));
        assert_eq!(c.sha256, hex::encode(Sha256::digest(&bin)));
    }
}
