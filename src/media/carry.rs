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

use super::elf::{self, Arch};
use super::input::{open_input, FileId};
use super::{iso9660, read_at_most, Error, Result};

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
const ISO_SECTOR: usize = iso9660::SECTOR as usize;
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
        let arch = static_arch(&bytes, path, explicit)?;
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
        iso9660::build_volume(
            LABEL,
            "VAULT (STATIC BINARY FOR THE INSTALLER)",
            b"VAULT.;1",
            &self.bytes,
            &self.record(),
        )
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

/// [`elf::static_arch`], refused as the media error that names `path`.
fn static_arch(bytes: &[u8], path: &Path, explicit: bool) -> Result<Arch> {
    elf::static_arch(bytes).map_err(|r| match r {
        elf::Refusal::Not(why) => Error::NotAVaultBinary {
            path: path.into(),
            why,
        },
        elf::Refusal::Dynamic => Error::DynamicBinary {
            path: path.into(),
            explicit,
        },
    })
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
        if iso9660::find_path(f, path, &["EFI", "BOOT"], name)?.is_some() {
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
    let (ext, size) = iso9660::dir_entry(&dir, b"VAULT.;1")
        .ok_or_else(|| damaged("its volume has no file `vault`"))?;
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
        arch: elf::static_arch(&bytes).ok().map(Arch::name),
        matches_record: recorded.map(|r| r == sha256),
        sha256,
    })
}

/// The binary at [`ISO_BINARY_PATH`] in the ISO tree of `f`, if any.
pub fn read_iso_file(f: &mut File, path: &Path) -> Result<Option<Carried>> {
    let Some(file) = iso9660::find_path(f, path, &["VAULT"], "VAULT")? else {
        return Ok(None);
    };
    let location = format!("{ISO_BINARY_PATH} in the ISO tree");
    let bytes = read_binary(f, path, &location, file.offset, file.len)?;
    Ok(Some(Carried {
        location,
        offset: file.offset,
        len: file.len,
        version: version_in(&bytes).map(Into::into),
        arch: elf::static_arch(&bytes).ok().map(Arch::name),
        sha256: hex::encode(Sha256::digest(&bytes)),
        matches_record: None,
    }))
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
            iso9660::build_volume(
                LABEL,
                "VAULT (STATIC BINARY FOR THE INSTALLER)",
                b"VAULT.;1",
                &bin,
                "vault-binary v1\nversion 9.9\nsha256 x\n",
            ),
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
