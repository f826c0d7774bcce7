//! vault's passphrase stanza: the file key wrapped under an Argon2id-derived key.
//!
//! ```text
//! -> vault.bundle/argon2id <base64 salt16> <m_KiB> <t> <p>
//! <ChaCha20-Poly1305(key = Argon2id(passphrase, LABEL || salt, m, t, p), nonce = 0) of the file key>
//! ```
//!
//! Same shape as age's own `scrypt` stanza (age/src/native/scrypt.rs), with a memory-hard KDF whose
//! parameters a reader can cap before doing any work. `docs/FORMAT.md` is the specification.

use std::collections::HashSet;

use age::{DecryptError, EncryptError};
use age_core::format::{FileKey, Stanza, FILE_KEY_BYTES};
use age_core::secrecy::{ExposeSecret, SecretString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::{prelude::BASE64_STANDARD_NO_PAD, Engine};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use rand::{distributions::Alphanumeric, distributions::DistString, rngs::OsRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

/// The stanza type. A namespaced name (not a URL) so it cannot collide with other age stanzas.
pub const TAG: &str = "vault.bundle/argon2id";
/// Prefixed to the random salt, so a key derived for this stanza is useless anywhere else.
pub const SALT_LABEL: &[u8] = b"vault.bundle/argon2id";
pub const SALT_LEN: usize = 16;
const ENCRYPTED_FILE_KEY_BYTES: usize = FILE_KEY_BYTES + 16;

/// Argon2id cost parameters, as they appear in the stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes over memory.
    pub t: u32,
    /// Lanes, computed in parallel on up to p cores. The derived key depends on p, not on how
    /// many cores compute it.
    pub p: u32,
}

impl KdfParams {
    /// The default: 1 GiB (LUKS2's cap), 3 passes, 4 lanes, computed on up to 4 cores. About
    /// 2.2 s of CPU; under 1 s on a 4-core installer (docs/BENCHMARKS.md, "Argon2id").
    pub const DEFAULT: KdfParams = KdfParams {
        m_kib: 1024 * 1024,
        t: 3,
        p: 4,
    };
    /// The strong preset: 2 GiB, 3 passes, 4 lanes: twice the default's cost per guess, for
    /// installers with 4 GiB of RAM or more.
    pub const STRONG: KdfParams = KdfParams {
        m_kib: 2 * 1024 * 1024,
        t: 3,
        p: 4,
    };

    /// The work one derivation costs: memory (KiB) times passes. Every pass fills all of the
    /// memory once, whatever the lanes, so time is proportional to this product.
    pub fn work(&self) -> u64 {
        u64::from(self.m_kib) * u64::from(self.t)
    }

    /// Checks parameters a bundle asks for before any work is done. `limits.mem_available` is
    /// the unlocking machine's `MemAvailable` in bytes, when known.
    pub fn check_untrusted(&self, limits: &KdfLimits) -> Result<(), String> {
        if self.p == 0 || self.t == 0 {
            return Err("zero passes or lanes (invalid)".into());
        }
        if self.p > limits.max_p {
            return Err(format!(
                "{} lanes (at most {} allowed)",
                self.p, limits.max_p
            ));
        }
        if self.t > limits.max_t {
            return Err(format!(
                "{} passes (at most {} allowed)",
                self.t, limits.max_t
            ));
        }
        if u64::from(self.m_kib) < 8 * u64::from(self.p) {
            return Err(format!(
                "{} KiB for {} lanes (Argon2 needs 8 KiB a lane)",
                self.m_kib, self.p
            ));
        }
        if self.m_kib > limits.max_m_kib {
            return Err(format!(
                "{} of memory (at most {} allowed)",
                kib(u64::from(self.m_kib)),
                kib(u64::from(limits.max_m_kib))
            ));
        }
        if self.work() > limits.max_work {
            return Err(format!(
                "{} of memory with {} passes, a work of {} × passes (at most {} × passes allowed, \
                 for example {} with {} passes)",
                kib(u64::from(self.m_kib)),
                self.t,
                kib(self.work()),
                kib(limits.max_work),
                kib(u64::from(limits.max_m_kib)),
                limits.max_work / u64::from(limits.max_m_kib).max(1)
            ));
        }
        if let Some(avail) = limits.mem_available {
            // Leave room for the rest of the unlock (decompression, staging).
            let need = u64::from(self.m_kib) * 1024 + 64 * 1024 * 1024;
            if need > avail {
                return Err(format!(
                    "{} of memory, but this machine has only {} MiB available",
                    kib(u64::from(self.m_kib)),
                    avail / (1024 * 1024)
                ));
            }
        }
        Ok(())
    }

    fn argon2(&self) -> Result<Argon2<'static>, argon2::Error> {
        let params = Params::new(self.m_kib, self.t, self.p, Some(32))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Caps on what a bundle header may ask an unlocking machine to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfLimits {
    pub max_m_kib: u32,
    pub max_t: u32,
    pub max_p: u32,
    /// The most [`KdfParams::work`] (KiB × passes) one derivation may cost.
    pub max_work: u64,
    pub mem_available: Option<u64>,
}

/// The memory cap: 4 GiB.
pub const MAX_M_KIB: u32 = 4 * 1024 * 1024;
/// The work cap, memory × passes: 16 GiB × passes (4 GiB with 4 passes, 1 GiB with 16). One
/// core computes about 1.35 GiB × passes a second (docs/BENCHMARKS.md), so a hostile header
/// costs at most about 12 s of CPU a try; the default is 3 GiB × passes, `--strong` 6.
pub const MAX_WORK: u64 = 16 * 1024 * 1024;

impl KdfLimits {
    /// 4 GiB, 64 passes, 64 lanes, 16 GiB × passes of work, and the machine's `MemAvailable`.
    pub fn for_this_machine() -> KdfLimits {
        KdfLimits {
            max_m_kib: MAX_M_KIB,
            max_t: 64,
            max_p: 64,
            max_work: MAX_WORK,
            mem_available: mem_available(),
        }
    }
}

/// A size given in KiB, exactly: in GiB or MiB when it is a whole number of them.
pub fn kib(n: u64) -> String {
    if n != 0 && n.is_multiple_of(1024 * 1024) {
        format!("{} GiB", n / (1024 * 1024))
    } else if n != 0 && n.is_multiple_of(1024) {
        format!("{} MiB", n / 1024)
    } else {
        format!("{n} KiB")
    }
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Derives the stanza's wrapping key. Public for the test vector in `docs/FORMAT.md`.
///
/// Argon2's work memory (`m` KiB) holds values derived from the passphrase; `argon2`'s own
/// `hash_password_into` frees it without wiping it, so vault provides the memory and wipes it.
pub fn derive_key(
    passphrase: &SecretString,
    salt: &[u8; SALT_LEN],
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, argon2::Error> {
    let argon2 = params.argon2()?;
    let mut memory = vec![Block::default(); argon2.params().block_count()];
    derive_key_in(&argon2, passphrase, salt, &mut memory)
}

/// [`derive_key`] in memory the caller provides, which is all zeros again on return (on
/// error too).
fn derive_key_in(
    argon2: &Argon2<'_>,
    passphrase: &SecretString,
    salt: &[u8; SALT_LEN],
    memory: &mut [Block],
) -> Result<Zeroizing<[u8; 32]>, argon2::Error> {
    struct Wipe<'a>(&'a mut [Block]);
    impl Drop for Wipe<'_> {
        fn drop(&mut self) {
            self.0.iter_mut().for_each(Zeroize::zeroize);
        }
    }
    let memory = Wipe(memory);
    let mut inner_salt = Zeroizing::new([0u8; SALT_LABEL.len() + SALT_LEN]);
    inner_salt[..SALT_LABEL.len()].copy_from_slice(SALT_LABEL);
    inner_salt[SALT_LABEL.len()..].copy_from_slice(salt);
    let mut key = Zeroizing::new([0u8; 32]);
    argon2.hash_password_into_with_memory(
        passphrase.expose_secret().as_bytes(),
        &inner_salt[..],
        key.as_mut(),
        &mut *memory.0,
    )?;
    Ok(key)
}

/// Builds the stanza for a given salt. Deterministic; used by [`Recipient`] with a random salt
/// and by the test vector with a fixed one.
pub fn wrap_with_salt(
    passphrase: &SecretString,
    salt: &[u8; SALT_LEN],
    params: KdfParams,
    file_key: &FileKey,
) -> Result<Stanza, argon2::Error> {
    let key = derive_key(passphrase, salt, params)?;
    let cipher = ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key.as_ref()));
    let body = cipher
        .encrypt(&[0u8; 12].into(), file_key.expose_secret().as_slice())
        .map_err(|_| argon2::Error::OutputTooLong)?;
    Ok(Stanza {
        tag: TAG.to_owned(),
        args: vec![
            BASE64_STANDARD_NO_PAD.encode(salt),
            params.m_kib.to_string(),
            params.t.to_string(),
            params.p.to_string(),
        ],
        body,
    })
}

/// Parses the stanza's arguments strictly: canonical base64 salt, canonical decimals.
pub fn parse_args(args: &[String]) -> Option<([u8; SALT_LEN], KdfParams)> {
    let [salt, m, t, p] = args else { return None };
    if salt.len() != 22 {
        return None;
    }
    let raw = BASE64_STANDARD_NO_PAD.decode(salt).ok()?;
    // Reject non-canonical encodings (stray bits in the last character).
    if BASE64_STANDARD_NO_PAD.encode(&raw) != *salt {
        return None;
    }
    let salt: [u8; SALT_LEN] = raw.try_into().ok()?;
    Some((
        salt,
        KdfParams {
            m_kib: decimal(m)?,
            t: decimal(t)?,
            p: decimal(p)?,
        },
    ))
}

/// A canonical decimal: digits only, no leading zero, fits in u32.
fn decimal(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// Encrypts a file key to a passphrase.
pub struct Recipient {
    passphrase: SecretString,
    params: KdfParams,
}

impl Recipient {
    pub fn new(passphrase: SecretString, params: KdfParams) -> Self {
        Recipient { passphrase, params }
    }
}

impl age::Recipient for Recipient {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), EncryptError> {
        let mut salt = [0u8; SALT_LEN];
        OsRng.fill_bytes(&mut salt);
        let stanza =
            wrap_with_salt(&self.passphrase, &salt, self.params, file_key).map_err(|e| {
                EncryptError::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    e.to_string(),
                ))
            })?;
        // A random label: a passphrase file must not also open with some other key.
        let label = Alphanumeric.sample_string(&mut OsRng, 32);
        Ok((vec![stanza], HashSet::from([label])))
    }
}

/// Decrypts a file key with a passphrase, refusing parameters beyond `limits`.
pub struct Identity {
    passphrase: SecretString,
    limits: KdfLimits,
}

impl Identity {
    pub fn new(passphrase: SecretString, limits: KdfLimits) -> Self {
        Identity { passphrase, limits }
    }
}

impl age::Identity for Identity {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, DecryptError>> {
        if stanza.tag != TAG {
            return None;
        }
        let Some((salt, params)) = parse_args(&stanza.args) else {
            return Some(Err(DecryptError::InvalidHeader));
        };
        if stanza.body.len() != ENCRYPTED_FILE_KEY_BYTES
            || params.check_untrusted(&self.limits).is_err()
        {
            return Some(Err(DecryptError::InvalidHeader));
        }
        let key = match derive_key(&self.passphrase, &salt, params) {
            Ok(k) => k,
            Err(_) => return Some(Err(DecryptError::InvalidHeader)),
        };
        let cipher = ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key.as_ref()));
        let plain = Zeroizing::new(
            cipher
                .decrypt(&[0u8; 12].into(), stanza.body.as_slice())
                .ok()?,
        );
        // Any failure above (`.ok()?`) means the passphrase is wrong: report "no match".
        Some(FileKey::try_init_with_mut(|k| {
            if plain.len() == FILE_KEY_BYTES {
                k.copy_from_slice(&plain);
                Ok(())
            } else {
                Err(DecryptError::DecryptionFailed)
            }
        }))
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, DecryptError>> {
        // Two passphrase stanzas would let a bundle open with either of two passphrases.
        if stanzas.iter().filter(|s| s.tag == TAG).count() > 1 {
            return Some(Err(DecryptError::InvalidHeader));
        }
        stanzas.iter().find_map(|s| self.unwrap_stanza(s))
    }
}

/// Hands age a file key already unwrapped (so a retry loop derives the key once per attempt,
/// and decryption does not derive it again).
pub struct UnwrappedKey(pub(crate) Zeroizing<[u8; FILE_KEY_BYTES]>);

impl age::Identity for UnwrappedKey {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, DecryptError>> {
        (stanza.tag == TAG).then(|| Ok(FileKey::new(Box::new(*self.0))))
    }
}

#[cfg(test)]
#[path = "argon2id_tests.rs"]
mod tests;
