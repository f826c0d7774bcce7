//! vault: passphrase-encrypted secrets bundles for NixOS installs.
//!
//! The library holds every format, crypto and placement decision; the `vault` binary only parses
//! arguments, prompts and prints. Layers, from the bytes up:
//!
//! - [`bundle`]: the age v1 file with vault's Argon2id passphrase stanza (`docs/FORMAT.md`).
//! - [`archive`]: the tar+zstd payload inside it, with the in-bundle manifest first.
//! - [`manifest`]: the user's `vault.toml`.
//! - [`place`]: writing authenticated files under a target root without following links.
//! - [`keys`], [`rekey`], [`hosts`]: host keys, ssh-to-age, re-encrypting a secrets repo.
//! - [`secure_boot`]: Secure Boot keys for lanzaboote and their signed firmware updates.
//! - [`media`]: installer images, sticks and bundle discovery on the live system.

// Every print in the library goes through `output`, which never panics (a closed pipe or
// terminal must not turn into a crash half way through placing files): these shadow std's
// macros of the same names in every module below. The binary does the same (src/main.rs).
#[allow(unused_macros)]
macro_rules! println {
    () => { $crate::output::out(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::output::out(format_args!($($arg)*), true) };
}
#[allow(unused_macros)]
macro_rules! print {
    ($($arg:tt)*) => { $crate::output::out(format_args!($($arg)*), false) };
}
#[allow(unused_macros)]
macro_rules! eprintln {
    () => { $crate::output::err(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::output::err(format_args!($($arg)*), true) };
}
#[allow(unused_macros)]
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::output::err(format_args!($($arg)*), false) };
}

pub mod archive;
pub mod bundle;
pub mod config_check;
pub mod error;
pub mod escape;
pub mod hardening;
pub mod hosts;
pub mod identity;
pub mod initrd_key;
pub mod interrupt;
pub mod invocation;
pub mod keys;
pub mod manifest;
pub mod media;
pub mod mounts;
pub mod new_file;
pub mod output;
pub mod pack;
pub mod place;
pub mod prompt;
pub mod rekey;
pub mod repo;
pub mod secure_boot;
pub mod staging;
pub mod stale;
pub mod sync_behind;
pub mod unlock;

pub use error::{Error, ExitCode, Hint, Result};
