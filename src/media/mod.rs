//! Installer media: attaching a bundle to images and sticks, and finding it on the live system.
//!
//! Layout (docs/MEDIA.md): the bundle is appended to the installer image at the next 1 MiB
//! boundary and recorded in a free MBR slot with type 0xDA ("non-FS data"). The partition holds
//! the bundle, zero padding to the next sector, and one last 512-byte sector, the *trailer*,
//! that records the bundle's exact length (age's STREAM finds its end by EOF, so the reader
//! must stop exactly there). The CD-capable alternative puts the bundle at `/vault/bundle` in
//! the ISO9660 tree.
//!
//! The formats, which know nothing of bundles and import none of the operations:
//! - [`mbr`]: reading and updating the MBR, slots, the trailer.
//! - [`iso9660`]: reading and writing the ISO9660 tree.
//! - [`elf`]: is this a static executable, and for which CPU.
//! - [`error`], [`io`]: the media error, bounded reads and sizes, shared with the operations.
//!
//! The operations:
//! - [`partition`]: checking that a slot holds a bundle, writing one into it.
//! - [`input`]: opening inputs (only regular files and block devices, never blocking).
//! - [`output`]: new images: a temporary beside the output, holes copied as holes, free space
//!   checked first, removed on any error or signal, swept when a killed run left it.
//! - [`image`]: `attach`/`detach` on image files (copy, never edit the input).
//! - [`device`]: the same in place on a written stick, with the safety checks.
//! - [`attach_iso`]: the CD-capable variant, through `xorriso`'s file mode.
//! - [`carry`]: the vault binary a stick carries.
//! - [`source`]: [`open_source`], used by `vault unlock FILE` and `vault inspect FILE`.
//! - [`discover`]: [`discover()`], used by `vault unlock` with no FILE on the live system.

pub mod attach_iso;
pub mod carry;
pub mod device;
pub mod discover;
pub mod elf;
pub mod error;
pub mod image;
pub mod input;
pub mod io;
pub mod iso9660;
pub mod mbr;
pub mod output;
pub mod partition;
pub mod source;

use std::fs::File;
use std::path::Path;

pub use attach_iso::attach_iso_file;
pub use carry::{Binary, Carried};
pub use device::{attach_in_place, plan_in_place, DeviceInfo, InPlacePlan};
pub use discover::{discover, Candidate, CandidateKind};
pub use error::{Error, Result};
pub use image::{attach_image, detach_image, inspect_image, Attached, ImageInfo};
pub(crate) use io::{align_up, byte_len, read_at_most};
pub use mbr::{ALIGN, PART_TYPE, SECTOR};
pub use source::{open_source, BundleSource};

/// How much of a partition or file is read to recognise a bundle: the largest header vault
/// accepts.
pub const PREFIX_LEN: usize = 16 * 1024;
/// Where the CD-capable variant keeps the bundle inside the ISO9660 tree.
pub const ISO_BUNDLE_PATH: &str = "/vault/bundle";

/// Whether `prefix` starts a vault bundle (the age header with vault's Argon2id stanza).
pub fn looks_like_bundle(prefix: &[u8]) -> bool {
    crate::bundle::looks_like_bundle(prefix)
}

/// Reads up to [`PREFIX_LEN`] bytes at `offset` (fewer at the end of the file).
pub(crate) fn read_prefix(file: &mut File, path: &Path, offset: u64) -> Result<Vec<u8>> {
    read_at_most(file, path, offset, PREFIX_LEN)
}
