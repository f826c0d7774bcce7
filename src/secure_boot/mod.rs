//! Secure Boot keys for lanzaboote, made on the workstation and kept with the host's other
//! keys, so that `nixos-install` already signs with them and first-boot enrolment needs no
//! key generated on the machine.
//!
//! - [`keys`]: RSA-4096 key pairs with self-signed X.509 certificates (SHA-256 with RSA, five
//!   years), as sbctl makes them; whether a certificate belongs to a private key.
//! - [`efi`]: GUIDs, `EFI_TIME` and EFI signature lists.
//! - [`auth`]: signed authenticated-variable updates (`.auth`: `EFI_VARIABLE_AUTHENTICATION_2`
//!   with a PKCS#7 signature), the files firmware enrolment reads.
//! - [`layout`]: sbctl's key directory (lanzaboote's `pkiBundle`) and the host folder around it.
//! - [`host`]: `vault host add NAME --secure-boot [--rotate]`.

pub mod auth;
pub mod efi;
pub mod host;
pub mod keys;
pub mod layout;

use std::path::PathBuf;

pub use keys::{cert_matches_key, check_pair, KeyPair};

/// Where sbctl keeps its keys, and the usual `boot.lanzaboote.pkiBundle`.
pub const DEFAULT_PKI_BUNDLE: &str = "/var/lib/sbctl";

/// The three keys of a Secure Boot hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Platform Key: owns the platform; signs updates of PK and KEK.
    Pk,
    /// Key Exchange Key: signs updates of db and dbx.
    Kek,
    /// Signature database key: signs what boots (lanzaboote signs with it).
    Db,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Pk, Role::Kek, Role::Db];

    /// The name sbctl's files and the EFI variable use: `PK`, `KEK`, `db`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Pk => "PK",
            Role::Kek => "KEK",
            Role::Db => "db",
        }
    }

    /// sbctl's description, used in the certificate's subject.
    pub fn description(self) -> &'static str {
        match self {
            Role::Pk => "Platform Key",
            Role::Kek => "Key Exchange Key",
            Role::Db => "Database Key",
        }
    }
}

/// Errors of this subsystem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// A key, certificate or GUID file that cannot be used.
    #[error("{path}: {why}")]
    Parse { path: PathBuf, why: String },
    /// A certificate that does not belong to the private key beside it.
    #[error("{cert} does not belong to the private key {key}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    /// Generating or signing failed (the RSA or DER code refused).
    #[error("{what}: {why}")]
    Crypto { what: String, why: String },
    /// The host has Secure Boot keys already.
    #[error("host {name} has Secure Boot keys already in {dir}")]
    Exists { name: String, dir: PathBuf },
    /// `--rotate` for a host without Secure Boot keys.
    #[error("host {name} has no Secure Boot keys in {dir} to rotate")]
    Missing { name: String, dir: PathBuf },
    /// A `--pki-bundle` the keys cannot be placed at, or lanzaboote cannot use.
    #[error("--pki-bundle {}: {why}", crate::escape::escape(path))]
    PkiBundle { path: String, why: &'static str },
}

impl Error {
    crate::error::io_constructor!(pub(crate));
    pub(crate) fn crypto(what: impl Into<String>, why: impl std::fmt::Display) -> Self {
        Error::Crypto {
            what: what.into(),
            why: why.to_string(),
        }
    }
    pub(crate) fn parse(path: impl Into<PathBuf>, why: impl Into<String>) -> Self {
        Error::Parse {
            path: path.into(),
            why: why.into(),
        }
    }
}

impl crate::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Io(e) => e.permission_hint(),
            Error::Crypto { .. } => None,
            Error::Parse { .. } => Some(
                "sbctl's layout holds PKCS#8 PEM RSA keys (`PRIVATE KEY`), PEM certificates and a GUID file; restore the file from your secrets repository".into(),
            ),
            Error::Mismatch { .. } => Some(
                "put the certificate made with that key beside it (both come from the same `vault host add --secure-boot`), or point the configuration at the matching pair".into(),
            ),
            Error::Exists { name, .. } => Some(format!(
                "`vault host add {name} --secure-boot --rotate` replaces its db key; see docs/guide/secure-boot.md"
            )),
            Error::Missing { name, .. } => Some(format!(
                "make them first: `vault host add {name} --secure-boot`"
            )),
            Error::PkiBundle { .. } => Some(
                "give the absolute path your configuration sets as boot.lanzaboote.pkiBundle, e.g. --pki-bundle /persist/var/lib/sbctl (nothing was changed)".into(),
            ),
        }
    }

    fn exit_code(&self) -> crate::ExitCode {
        match self {
            Error::Parse { .. } | Error::Mismatch { .. } => crate::ExitCode::BadManifest,
            Error::PkiBundle { .. } => crate::ExitCode::Usage,
            _ => crate::ExitCode::Failure,
        }
    }
}

impl crate::error::Layer for Error {}
