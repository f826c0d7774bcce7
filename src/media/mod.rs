//! Installer media: attaching a bundle to images and sticks, and finding it on the live system.
//!
//! Layout (docs/MEDIA.md): the bundle is appended to the installer image at the next 1 MiB
//! boundary and recorded in a free MBR slot with type 0xDA ("non-FS data"). The partition holds
//! the bundle, zero padding to the next sector, and one last 512-byte sector, the *trailer*,
//! that records the bundle's exact length (age's STREAM finds its end by EOF, so the reader
//! must stop exactly there). The CD-capable alternative puts the bundle at `/vault/bundle` in
//! the ISO9660 tree.
//!
//! - [`mbr`]: reading and updating the MBR, slots, the trailer.
//! - [`input`]: opening inputs (only regular files and block devices, never blocking).
//! - [`output`]: new images: a temporary beside the output, holes copied as holes, free space
//!   checked first, removed on any error or signal, swept when a killed run left it.
//! - [`image`]: `attach`/`detach` on image files (copy, never edit the input).
//! - [`device`]: the same in place on a written stick, with the safety checks.
//! - [`isofile`]: the ISO9660 reader and the `xorriso` file mode.
//! - [`source`]: [`open_source`], used by `vault unlock FILE` and `vault inspect FILE`.
//! - [`discover`]: [`discover()`], used by `vault unlock` with no FILE on the live system.

pub mod attach_iso;
pub mod carry;
pub mod device;
pub mod discover;
pub mod elf;
pub mod image;
pub mod input;
pub mod iso9660;
pub mod mbr;
pub mod output;
pub mod source;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub use attach_iso::attach_iso_file;
pub use carry::{Binary, Carried};
pub use device::{attach_in_place, plan_in_place, DeviceInfo, InPlacePlan};
pub use discover::{discover, Candidate, CandidateKind};
pub use image::{attach_image, detach_image, inspect_image, Attached, ImageInfo};
pub use source::{open_source, BundleSource};

/// Sector size of MBR addressing. Installer images and USB sticks use 512-byte sectors.
pub const SECTOR: u64 = 512;
/// Partitions start on a 1 MiB boundary, as every partitioning tool aligns them.
pub const ALIGN: u64 = 1 << 20;
/// MBR type of the bundle partition: 0xDA, "non-FS data" — nothing tries to mount it.
pub const PART_TYPE: u8 = 0xDA;
/// How much of a partition or file is read to recognise a bundle: the largest header vault
/// accepts.
pub const PREFIX_LEN: usize = 16 * 1024;
/// Where the CD-capable variant keeps the bundle inside the ISO9660 tree.
pub const ISO_BUNDLE_PATH: &str = "/vault/bundle";

/// Errors of the media subsystem. Each names the file or device and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a named file or device failed.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// The image or device has no usable MBR (no 0x55AA signature, or a broken entry).
    #[error("{path} has no usable MBR partition table: {why}")]
    NoTable { path: PathBuf, why: String },
    /// A protective MBR (0xEE): the disk is partitioned by GPT, which vault does not update.
    #[error("{path} is partitioned with GPT (protective MBR entry 0xEE in slot {slot}); vault only adds MBR partitions")]
    ProtectiveGpt { path: PathBuf, slot: usize },
    /// All four primary MBR slots are in use.
    #[error("{path} has no free MBR slot: all four primary entries are in use")]
    NoFreeSlot { path: PathBuf },
    /// The image already carries a bundle partition and `--replace` was not given.
    #[error("{path} already carries a vault bundle (MBR slot {slot})")]
    AlreadyCarries { path: PathBuf, slot: usize },
    /// The image already carries a bundle as `/vault/bundle` in its ISO tree: one image carries
    /// one bundle, or the live system would have to guess.
    #[error("{path} already carries a vault bundle as /vault/bundle in its ISO tree")]
    CarriesIsoFile { path: PathBuf },
    /// The image carries a bundle partition and `/vault/bundle`: vault does not choose.
    #[error("{path} carries two vault bundles, one in MBR slot {slot} (byte {offset}) and /vault/bundle in its ISO tree (byte {iso_offset}); vault does not choose between them")]
    TwoBundles {
        path: PathBuf,
        slot: usize,
        offset: u64,
        iso_offset: u64,
    },
    /// An input that is neither a regular file nor a block device (a FIFO would block forever).
    #[error("{path} is {kind}, not a regular file or block device")]
    NotAFile { path: PathBuf, kind: &'static str },
    /// The output's filesystem has too little room for what will be written.
    #[error("not enough free space in {dir}: the new image needs {} MiB ({need} bytes of data), {} MiB are free", need.div_ceil(1 << 20), available >> 20)]
    NoSpace {
        dir: PathBuf,
        need: u64,
        available: u64,
    },
    /// The image is shorter than its own partitions or ISO9660 volume say.
    #[error("{path} ends at byte {len}, but its partition table or ISO9660 volume reaches byte {end}; was it truncated?")]
    Truncated { path: PathBuf, len: u64, end: u64 },
    /// SIGINT, SIGTERM or SIGHUP arrived; what this run wrote was removed.
    #[error("interrupted by {}", crate::interrupt::signal_name(*signal))]
    Interrupted { signal: i32 },
    /// `--replace` or `detach` on an image that carries no bundle partition.
    #[error("{path} carries no vault bundle partition (no MBR entry of type 0xDA)")]
    NothingAttached { path: PathBuf },
    /// The file given as bundle is not a vault bundle.
    #[error("{path} is not a vault bundle (it must start with the age header and vault's argon2id stanza)")]
    NotABundle { path: PathBuf },
    /// No bundle found in a file, image or device given as a source.
    #[error("no vault bundle in {path}: {why}")]
    NoBundle { path: PathBuf, why: String },
    /// The output path is an input (the image, the bundle, the carried binary), or a link to it.
    #[error("the output {output} is the {what} {input}; inputs are never modified")]
    OutputIsInput {
        input: PathBuf,
        output: PathBuf,
        /// "input image", "bundle", "vault binary".
        what: &'static str,
    },
    /// The output exists and `--force` was not given.
    #[error("{path} already exists")]
    OutputExists { path: PathBuf },
    /// The device lacks room for the bundle after the data it holds.
    #[error("{path} is too small: vault's partitions need bytes {start}..{end}, the device has {capacity} bytes")]
    TooSmall {
        path: PathBuf,
        start: u64,
        end: u64,
        capacity: u64,
    },
    /// MBR addresses are 32-bit sector numbers: nothing past 2 TiB.
    #[error("{path}: the bundle partition would end past 2 TiB, which an MBR cannot address")]
    BeyondMbr { path: PathBuf },
    /// The new partition would overlap an existing one.
    #[error(
        "{path}: the bundle partition at sectors {start}..{end} would overlap MBR slot {slot}"
    )]
    Overlap {
        path: PathBuf,
        slot: usize,
        start: u64,
        end: u64,
    },
    /// The device (or one of its partitions) is mounted.
    #[error("{path} is in use: {what} is mounted at {mount_point}")]
    Mounted {
        path: PathBuf,
        what: String,
        mount_point: PathBuf,
    },
    /// The device does not call itself removable.
    #[error("{path} is not a removable device ({model})")]
    NotRemovable {
        path: PathBuf,
        model: crate::escape::Untrusted,
    },
    /// `--device` was given something that is not a whole-disk block device.
    #[error("{path} is not a whole-disk block device: {why}")]
    NotADisk { path: PathBuf, why: String },
    /// The user did not confirm.
    #[error("nothing was written to {path}")]
    NotConfirmed { path: PathBuf },
    /// An external tool (xorriso) failed or is missing.
    #[error("{tool} failed: {why}")]
    Tool { tool: &'static str, why: String },
    /// The bundle partition's trailer is missing or inconsistent.
    #[error("{path}: the bundle partition at byte {offset} is damaged: {why}")]
    Damaged {
        path: PathBuf,
        offset: u64,
        why: String,
    },
    /// The carried binary's partition (or file) is damaged; the bundle is another partition.
    #[error("{path}: the vault binary ({location}) at byte {offset} is damaged: {why}; the bundle is not affected")]
    BinaryDamaged {
        path: PathBuf,
        /// "MBR slot 4, label VAULT-BIN" or "/vault/vault in the ISO tree".
        location: String,
        offset: u64,
        why: String,
    },
    /// Discovery on the live system found nothing.
    #[error("no vault bundle found: looked at {looked}")]
    NothingFound {
        looked: String,
        /// Some devices could not be opened for lack of permission (named in `looked`).
        denied: bool,
    },
    /// Discovery could not read a device it had to look at: the installer's own disk, or every
    /// device when it found nothing.
    #[error("cannot read {failures}; {context}")]
    Unreadable {
        /// Each device with what it is and the error, e.g. "/dev/sda (the installer disk):
        /// Input/output error (os error 5)".
        failures: String,
        /// What was found, or looked at, otherwise.
        context: String,
    },
    /// The binary to carry is not a vault executable vault can carry.
    #[error("{path} cannot be carried on the stick: {why}")]
    NotAVaultBinary { path: PathBuf, why: String },
    /// The binary to carry needs a loader the official live system does not have.
    #[error("{path} is dynamically linked (it has a program interpreter); the official installer cannot run it")]
    DynamicBinary { path: PathBuf, explicit: bool },
    /// The binary is for another CPU than the installer.
    #[error("{path} is built for {binary}, but the installer {image} is for {iso}")]
    WrongArch {
        path: PathBuf,
        binary: &'static str,
        image: PathBuf,
        iso: &'static str,
        explicit: bool,
    },
    /// Neither the volume label nor an EFI loader names the installer's architecture.
    #[error("cannot tell which CPU the installer {image} is for (its volume label names neither x86_64 nor aarch64, and it has no /EFI/BOOT/BOOTX64.EFI or BOOTAA64.EFI)")]
    UnknownArch { image: PathBuf },
}

/// How to get a vault the official installer can run.
const GET_STATIC: &str = "build one with `scripts/build-static` (or `nix build .#vault-static`, `.#vault-static-aarch64` for aarch64) and give it with --vault-binary PATH; or add --no-binary if the installer has vault already (the NixOS installer module)";

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io(crate::error::IoError::new(action, path, source))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl crate::Hint for Error {
    fn hint(&self) -> Option<String> {
        Some(match self {
            Error::Io(crate::error::IoError { source, .. }) if source.kind() == io::ErrorKind::PermissionDenied => {
                "run it with sudo (reading or writing a device needs root), or check the file's permissions".into()
            }
            Error::Io(crate::error::IoError { source, .. }) if source.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => {
                "an input/output error: the disk or stick (or its USB port) may be failing; check `dmesg`, plug it into another port, or write the image to another stick".into()
            }
            Error::Io(crate::error::IoError { source, .. }) if source.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) => {
                "the disk is full: free some space, or give -o on another filesystem".into()
            }
            Error::Io(_) | Error::Interrupted { .. } => return None,
            Error::NoTable { .. } => {
                "give an isohybrid installer image (nixpkgs builds them), or use `vault attach --iso-file`"
                    .into()
            }
            Error::ProtectiveGpt { .. } => {
                "use `vault attach --iso-file --image IN -o OUT` (the bundle as a file in the ISO), or copy the bundle to the installer another way"
                    .into()
            }
            Error::NoFreeSlot { .. } => {
                "use `vault attach --iso-file` instead, which needs no partition slot; or --no-binary, which needs one slot fewer".into()
            }
            Error::AlreadyCarries { .. } => {
                "add --replace to swap the bundle, or `vault detach --image IMG -o OUT` first".into()
            }
            Error::NothingAttached { path } => format!(
                "attach one with `vault attach --image {} --bundle FILE -o OUT.img`",
                path.display()
            ),
            Error::NotABundle { .. } => "give the file written by `vault pack`".into(),
            Error::NoBundle { .. } => {
                "give a bundle written by `vault pack`, or an image or device written by `vault attach`"
                    .into()
            }
            Error::OutputIsInput { .. } => "give a new output path with -o".into(),
            Error::CarriesIsoFile { .. } => {
                "start from the original installer image: one image carries one bundle (`vault attach --iso-file` on it again replaces /vault/bundle)".into()
            }
            Error::TwoBundles { slot, .. } => format!(
                "name the one to use: on the installer, the partition (e.g. `vault unlock /dev/sda{slot}`) or `vault unlock /iso/vault/bundle`; on the workstation, `vault detach --image IMG -o ONE.img` writes a copy that keeps only /vault/bundle"
            ),
            Error::NotAFile { .. } => {
                "give the image, bundle or stick itself (a regular file or a block device such as /dev/sdb); vault does not read pipes, sockets, directories or character devices".into()
            }
            Error::NoSpace { .. } => "free some space, or give -o on another filesystem".into(),
            Error::Truncated { .. } => {
                "download or copy the installer image again (compare its checksum), then attach again".into()
            }
            Error::OutputExists { .. } => "choose another path with -o, or add --force to replace it".into(),
            Error::TooSmall { .. } => {
                "use a larger stick, or write the image made by `vault attach --image` to it (--no-binary needs less room)".into()
            }
            Error::BeyondMbr { .. } => "use `vault attach --iso-file` instead".into(),
            Error::Overlap { .. } => {
                "this image's partitions extend beyond its data; use `vault attach --iso-file`".into()
            }
            Error::Mounted { what, .. } => format!("unmount it first: `umount {what}`"),
            Error::NotRemovable { .. } => {
                "check that this is the stick and not a system disk (`lsblk`); if it is, add --yes-not-removable"
                    .into()
            }
            Error::NotADisk { .. } => {
                "give the whole stick, e.g. /dev/sdb, not a partition such as /dev/sdb1".into()
            }
            Error::NotConfirmed { .. } => "run again and answer `yes`, or add --yes".into(),
            Error::Tool { tool, .. } => {
                format!("install {tool} (`apt-get install {tool}` or `nix shell nixpkgs#{tool}`)")
            }
            Error::Damaged { .. } => {
                "make the stick again from the original installer image: `vault attach --image INSTALLER.iso --bundle FILE -o OUT.img`".into()
            }
            Error::BinaryDamaged { .. } => {
                "carry the binary again: `vault attach --replace --image IMG --bundle FILE -o NEW.img` (or `--device` for a stick)".into()
            }
            Error::Unreadable { .. } => {
                "the stick (or its USB port) may be failing: check `dmesg`, plug it into another port, or write the image to another stick; to use a bundle elsewhere, name it: `vault unlock /path/to/bundle` (or a device such as /dev/sdb3)".into()
            }
            Error::NothingFound { denied: true, .. } => {
                "run it with sudo (reading disks needs root), or give the bundle's path: `vault unlock /path/to/bundle`"
                    .into()
            }
            Error::NothingFound { .. } => {
                "give the bundle's path: `vault unlock /path/to/bundle` (or a device such as /dev/sdb3)"
                    .into()
            }
            Error::NotAVaultBinary { .. } | Error::UnknownArch { .. } => GET_STATIC.into(),
            Error::DynamicBinary { explicit, .. } | Error::WrongArch { explicit, .. } => {
                if *explicit {
                    GET_STATIC.into()
                } else {
                    format!("this vault cannot go on the stick; {GET_STATIC}")
                }
            }
        })
    }

    fn exit_code(&self) -> crate::ExitCode {
        match self {
            Error::NotABundle { .. }
            | Error::NoBundle { .. }
            | Error::Damaged { .. }
            | Error::BinaryDamaged { .. } => crate::ExitCode::BadBundle,
            Error::NoTable { .. }
            | Error::CarriesIsoFile { .. }
            | Error::TwoBundles { .. }
            | Error::NotAFile { .. }
            | Error::NoSpace { .. }
            | Error::Truncated { .. }
            | Error::ProtectiveGpt { .. }
            | Error::NoFreeSlot { .. }
            | Error::AlreadyCarries { .. }
            | Error::OutputIsInput { .. }
            | Error::OutputExists { .. }
            | Error::TooSmall { .. }
            | Error::BeyondMbr { .. }
            | Error::Overlap { .. }
            | Error::Mounted { .. }
            | Error::NotRemovable { .. }
            | Error::NotADisk { .. }
            | Error::NotConfirmed { .. }
            | Error::NotAVaultBinary { .. }
            | Error::DynamicBinary { .. }
            | Error::WrongArch { .. }
            | Error::UnknownArch { .. } => crate::ExitCode::Refused,
            _ => crate::ExitCode::Failure,
        }
    }
}

/// Whether `prefix` starts a vault bundle (the age header with vault's Argon2id stanza).
pub fn looks_like_bundle(prefix: &[u8]) -> bool {
    crate::bundle::looks_like_bundle(prefix)
}

/// Reads up to [`PREFIX_LEN`] bytes at `offset` (fewer at the end of the file).
pub(crate) fn read_prefix(file: &mut File, path: &Path, offset: u64) -> Result<Vec<u8>> {
    read_at_most(file, path, offset, PREFIX_LEN)
}

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

impl crate::error::Layer for Error {}
