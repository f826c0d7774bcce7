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
//! - [`media`]: installer images, sticks and bundle discovery on the live system.

pub mod archive;
pub mod bundle;
pub mod config_check;
pub mod error;
pub mod escape;
pub mod hosts;
pub mod initrd_key;
pub mod interrupt;
pub mod keys;
pub mod manifest;
pub mod media;
pub mod mounts;
pub mod pack;
pub mod place;
pub mod prompt;
pub mod rekey;
pub mod staging;
pub mod stale;
pub mod sync_behind;
pub mod unlock;

pub use error::{Error, ExitCode, Hint, Result};
