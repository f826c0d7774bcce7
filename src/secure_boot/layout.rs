//! Where the keys live. On the workstation, beside `vault.toml`:
//!
//! ```text
//! hosts/NAME/secure-boot/
//!   pki/                      sbctl's layout, placed as lanzaboote's pkiBundle
//!     GUID                    the owner GUID of the host's signature list entries
//!     keys/PK/PK.key PK.pem   (KEK and db alike)
//!   auth/                     signed updates for the firmware (.auth)
//!   retired/db-<time>/        db keys --rotate replaced
//! ```
//!
//! Directories are created 0700, private keys 0600, the rest 0644, each with its final mode
//! from the start.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::auth::{self, Variable};
use super::efi::{x509_signature_list, EfiTime, Guid};
use super::keys::read_capped;
use super::{Error, KeyPair, Role};

pub const DIR_MODE: u32 = 0o700;
pub const KEY_MODE: u32 = 0o600;
pub const PUBLIC_MODE: u32 = 0o644;

/// `hosts/NAME/secure-boot`, relative to the manifest's folder.
pub fn host_dir_rel(name: &str) -> String {
    format!("hosts/{name}/secure-boot")
}

/// The `pki` folder the manifest entry places, relative to the manifest's folder.
pub fn pki_rel(name: &str) -> String {
    format!("{}/pki", host_dir_rel(name))
}

pub fn guid_file(pki: &Path) -> PathBuf {
    pki.join("GUID")
}

pub fn key_file(pki: &Path, role: Role) -> PathBuf {
    pki.join("keys")
        .join(role.name())
        .join(format!("{}.key", role.name()))
}

pub fn cert_file(pki: &Path, role: Role) -> PathBuf {
    pki.join("keys")
        .join(role.name())
        .join(format!("{}.pem", role.name()))
}

/// The GUID in sbctl's `GUID` file at `path`, refusing what sbctl could not read.
pub fn read_guid(path: &Path) -> Result<Guid, Error> {
    let text = read_capped(path)?;
    Guid::parse(&text).ok_or_else(|| {
        Error::parse(
            path,
            "not a GUID sbctl can read: 36 characters like 6a3c1e52-1d3b-4f0e-9c3a-5b2e8d7f4a10, with no newline or spaces around it (`printf %s \"$(tr -d ' \\n' < GUID)\" > GUID` removes them)",
        )
    })
}

/// A host's three key pairs and the GUID that owns their signature list entries.
#[derive(Debug)]
pub struct Hierarchy {
    pub guid: Guid,
    pub pk: KeyPair,
    pub kek: KeyPair,
    pub db: KeyPair,
}

/// The certificate subject: the host's name, then sbctl's description of the key.
pub fn common_name(host: &str, role: Role) -> String {
    format!("{host} {}", role.description())
}

impl Hierarchy {
    /// New keys for `host` (three RSA-4096 keys: seconds each) and a new GUID.
    pub fn generate(host: &str, now: SystemTime) -> Result<Hierarchy, Error> {
        let make = |role| KeyPair::generate(role, &common_name(host, role), now);
        Ok(Hierarchy {
            guid: Guid::random(),
            pk: make(Role::Pk)?,
            kek: make(Role::Kek)?,
            db: make(Role::Db)?,
        })
    }

    /// Reads sbctl's layout under `pki`, checking every certificate against its key.
    pub fn load(pki: &Path) -> Result<Hierarchy, Error> {
        let guid = read_guid(&guid_file(pki))?;
        let load = |role| KeyPair::load(role, &key_file(pki, role), &cert_file(pki, role));
        Ok(Hierarchy {
            guid,
            pk: load(Role::Pk)?,
            kek: load(Role::Kek)?,
            db: load(Role::Db)?,
        })
    }

    pub fn get(&self, role: Role) -> &KeyPair {
        match role {
            Role::Pk => &self.pk,
            Role::Kek => &self.kek,
            Role::Db => &self.db,
        }
    }

    /// The signature list enrolling `role`'s certificate, owned by the host's GUID.
    pub fn signature_list(&self, role: Role) -> Vec<u8> {
        x509_signature_list(self.guid, self.get(role).cert_der())
    }

    /// `PK.auth`, `KEK.auth` and `db.auth`: the host's own certificates, each variable replaced
    /// and signed as the hierarchy demands (PK by itself, KEK by PK, db by KEK). What a
    /// firmware in setup mode enrols; sbctl's `enroll-keys --export auth` without `--microsoft`.
    pub fn enrolment(&self, time: EfiTime) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let one = |var: Variable, role: Role, signer: &KeyPair| {
            auth::signed_update(var, &self.signature_list(role), time, false, signer)
                .map(|b| (format!("{}.auth", var.name), b))
        };
        Ok(vec![
            one(auth::PK, Role::Pk, &self.pk)?,
            one(auth::KEK, Role::Kek, &self.pk)?,
            one(auth::DB, Role::Db, &self.kek)?,
        ])
    }
}

/// Creates `dir` with mode 0700; it must not exist.
pub fn create_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| Error::io("cannot create", dir, e))
}

/// Creates `path` with `mode` from the start (never a later chmod); it must not exist.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    crate::keys::ssh::write_new(path, bytes, mode).map_err(|e| match e {
        crate::keys::Error::Io(crate::error::IoError {
            action,
            path,
            source,
        }) => Error::Io(crate::error::IoError {
            action,
            path,
            source,
        }),
        other => Error::io(
            "cannot create",
            path,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, other.to_string()),
        ),
    })
}

/// Writes one key pair as sbctl does: `DIR/NAME/NAME.key` (0600) and `.pem` (0644), in a new
/// 0700 folder `DIR/NAME`.
pub fn write_pair(keys_dir: &Path, pair: &KeyPair) -> Result<(), Error> {
    let dir = keys_dir.join(pair.role.name());
    create_dir(&dir)?;
    let key = pair.key_pem()?;
    write_new(
        &dir.join(format!("{}.key", pair.role.name())),
        key.as_bytes(),
        KEY_MODE,
    )?;
    write_new(
        &dir.join(format!("{}.pem", pair.role.name())),
        pair.cert_pem()?.as_bytes(),
        PUBLIC_MODE,
    )
}

/// Writes sbctl's layout into the new folder `pki`.
pub fn write_pki(pki: &Path, h: &Hierarchy) -> Result<(), Error> {
    create_dir(pki)?;
    // sbctl writes the GUID without a trailing newline.
    write_new(&guid_file(pki), h.guid.to_string().as_bytes(), PUBLIC_MODE)?;
    let keys = pki.join("keys");
    create_dir(&keys)?;
    for role in Role::ALL {
        write_pair(&keys, h.get(role))?;
    }
    Ok(())
}

/// Writes `files` into the new folder `dir` (0644 each).
pub fn write_auth(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), Error> {
    create_dir(dir)?;
    for (name, bytes) in files {
        write_new(&dir.join(name), bytes, PUBLIC_MODE)?;
    }
    Ok(())
}

/// The certificates (DER) of the db keys `--rotate` retired, oldest first:
/// `retired/*/db.pem`. Only the certificate is needed (for dbx); the key beside it may have
/// been deleted.
pub fn retired_db_certs(retired: &Path) -> Result<Vec<Vec<u8>>, Error> {
    let entries = match std::fs::read_dir(retired) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot list", retired, e)),
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|d| super::keys::load_certificate_der(&d.join("db.pem")))
        .collect()
}
