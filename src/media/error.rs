//! The media subsystem's error: each names the file or device and what to do next. Shared by
//! the media formats (MBR, ISO9660, ELF) and the operations on images and sticks, it imports
//! neither.

use std::io;
use std::path::PathBuf;

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
    crate::error::io_constructor!(pub(crate));
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

impl crate::error::Layer for Error {}
