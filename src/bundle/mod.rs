//! The bundle file format: an age v1 file whose file key is wrapped by exactly one vault
//! Argon2id passphrase stanza, possibly among other stanzas (`docs/FORMAT.md`). This layer knows nothing of manifests or files on
//! disk: it turns a passphrase and a byte stream into an authenticated byte stream.

pub mod argon2id;
pub mod header;

use std::io::{self, Cursor, Read, Write};
use std::path::{Path, PathBuf};

use age::stream::{StreamReader, StreamWriter};
use age_core::format::{FileKey, Stanza, FILE_KEY_BYTES};
use age_core::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

pub use argon2id::{KdfLimits, KdfParams};
pub use header::{looks_like_bundle, HeaderError, HeaderInfo};

use crate::{Error, Result};

/// Writes the header for a new bundle to `out` and returns the payload writer. Call
/// [`StreamWriter::finish`] when done: it writes the final, authenticating chunk.
pub fn encrypt<W: Write>(
    out: W,
    passphrase: SecretString,
    kdf: KdfParams,
) -> io::Result<StreamWriter<W>> {
    encrypt_with_recovery(out, passphrase, kdf, &[])
}

/// [`encrypt`], with the file key also wrapped to each recovery recipient: their stanzas
/// follow the passphrase stanza, then age's grease (docs/FORMAT.md §1).
pub fn encrypt_with_recovery<W: Write>(
    out: W,
    passphrase: SecretString,
    kdf: KdfParams,
    recovery: &[&dyn age::Recipient],
) -> io::Result<StreamWriter<W>> {
    let recipient = WithRecovery {
        passphrase: argon2id::Recipient::new(passphrase, kdf),
        recovery,
    };
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .map_err(|e| io::Error::other(e.to_string()))?;
    encryptor.wrap_output(out)
}

/// The passphrase recipient and the recovery recipients as one: age refuses to mix the
/// passphrase stanza's random label with other recipients (the rule that keeps `scrypt`
/// alone), so the stanzas are gathered here, under the passphrase's label.
struct WithRecovery<'a> {
    passphrase: argon2id::Recipient,
    recovery: &'a [&'a dyn age::Recipient],
}

impl age::Recipient for WithRecovery<'_> {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> std::result::Result<(Vec<Stanza>, std::collections::HashSet<String>), age::EncryptError>
    {
        let (mut stanzas, labels) = self.passphrase.wrap_file_key(file_key)?;
        for r in self.recovery {
            let (more, _) = r.wrap_file_key(file_key)?;
            // A second passphrase stanza, or age's scrypt one, would make the header invalid.
            if more
                .iter()
                .any(|s| s.tag == argon2id::TAG || s.tag == "scrypt")
            {
                return Err(age::EncryptError::MixedRecipientAndPassphrase);
            }
            stanzas.extend(more);
        }
        Ok((stanzas, labels))
    }
}

/// A bundle whose header was read and checked, waiting for a passphrase.
pub struct Locked<R> {
    name: PathBuf,
    info: HeaderInfo,
    /// The bytes read so far (the header and possibly some payload), replayed to age.
    head: Vec<u8>,
    rest: R,
}

/// The file key of a bundle, unwrapped by the right passphrase.
pub struct Unwrapped(Zeroizing<[u8; FILE_KEY_BYTES]>);

impl<R: Read> Locked<R> {
    /// Reads the header of the bundle in `input`. `name` is used in error messages.
    pub fn open(mut input: R, name: &Path) -> Result<Locked<R>> {
        let mut head = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        let info = loop {
            match header::parse(&head) {
                Ok(info) => break info,
                Err(HeaderError::Incomplete) => {}
                Err(e @ (HeaderError::NotAge | HeaderError::NoVaultStanza)) => {
                    return Err(Error::NotABundle {
                        path: name.into(),
                        why: e.to_string(),
                    })
                }
                Err(e) => {
                    return Err(Error::Tampered {
                        path: name.into(),
                        why: e.to_string(),
                    })
                }
            }
            let n = input
                .read(&mut chunk)
                .map_err(|e| Error::io("cannot read", name, e))?;
            if n == 0 {
                let why = if head.is_empty() {
                    "it is empty".to_owned()
                } else {
                    "it ends inside the header (truncated)".to_owned()
                };
                return Err(
                    if head.is_empty() || !head.starts_with(header::VERSION_LINE) {
                        Error::NotABundle {
                            path: name.into(),
                            why,
                        }
                    } else {
                        Error::Tampered {
                            path: name.into(),
                            why,
                        }
                    },
                );
            }
            head.extend_from_slice(&chunk[..n]);
        };
        Ok(Locked {
            name: name.into(),
            info,
            head,
            rest: input,
        })
    }

    pub fn info(&self) -> &HeaderInfo {
        &self.info
    }

    /// Refuses KDF parameters beyond `limits` before any work is done.
    pub fn check_limits(&self, limits: &KdfLimits) -> Result<()> {
        self.info
            .kdf
            .check_untrusted(limits)
            .map_err(|what| Error::KdfTooExpensive {
                path: self.name.clone(),
                what,
            })
    }

    /// Tries a passphrase: `Ok(None)` when it is wrong. Costs one Argon2id derivation.
    pub fn try_passphrase(
        &self,
        passphrase: &SecretString,
        limits: &KdfLimits,
    ) -> Result<Option<Unwrapped>> {
        self.check_limits(limits)?;
        let stanza = self.stanza()?;
        let identity = argon2id::Identity::new(passphrase.clone(), *limits);
        match age::Identity::unwrap_stanza(&identity, &stanza) {
            None => Ok(None),
            Some(Ok(key)) => Ok(Some(Unwrapped(Zeroizing::new(*key.expose_secret())))),
            Some(Err(e)) => Err(Error::Tampered {
                path: self.name.clone(),
                why: format!("the passphrase stanza is invalid ({e})"),
            }),
        }
    }

    /// Tries recovery identities on the stanzas other than the passphrase stanza: `Ok(None)`
    /// when none of them opens any. The key is not yet verified: [`Locked::decrypt`] checks
    /// the header MAC with it, which a stanza written without the file key fails.
    pub fn try_identities(&self, identities: &[&dyn age::Identity]) -> Result<Option<Unwrapped>> {
        // Identities that answer for a whole header (a plugin session's unwrapped keys) see
        // every stanza, as age shows them.
        let all: Vec<Stanza> = self.stanzas().collect();
        for id in identities {
            if let Some(Ok(key)) = id.unwrap_stanzas(&all) {
                return Ok(Some(Unwrapped(Zeroizing::new(*key.expose_secret()))));
            }
        }
        let mut invalid = None;
        for stanza in self.stanzas().filter(|s| s.tag != argon2id::TAG) {
            for id in identities {
                match id.unwrap_stanza(&stanza) {
                    None => {}
                    Some(Ok(key)) => {
                        return Ok(Some(Unwrapped(Zeroizing::new(*key.expose_secret()))))
                    }
                    Some(Err(e)) => invalid = Some(e),
                }
            }
        }
        match invalid {
            Some(e) => Err(Error::Tampered {
                path: self.name.clone(),
                why: format!("a recipient stanza for this identity is invalid ({e})"),
            }),
            None => Ok(None),
        }
    }

    /// The header as read, up to and including the MAC line.
    pub fn header_bytes(&self) -> &[u8] {
        &self.head[..self.info.len]
    }

    /// The header's stanzas, in order.
    fn stanzas(&self) -> impl Iterator<Item = Stanza> + '_ {
        let mut rest = &self.head[header::VERSION_LINE.len()..self.info.len];
        std::iter::from_fn(move || {
            let (r, s) = age_core::format::read::age_stanza(rest).ok()?;
            rest = r;
            Some(s.into())
        })
    }

    fn stanza(&self) -> Result<Stanza> {
        self.stanzas()
            .find(|s| s.tag == argon2id::TAG)
            .ok_or_else(|| Error::Tampered {
                path: self.name.clone(),
                why: "the passphrase stanza could not be read again".into(),
            })
    }

    /// Starts decrypting with an unwrapped key. age checks the header MAC here; the payload is
    /// authenticated chunk by chunk as it is read, and its end only by reading to EOF.
    pub fn decrypt(self, key: Unwrapped) -> Result<Payload<R>> {
        let name = self.name;
        // The bytes read so far, then the rest: age parses the header again, checks its MAC
        // with the file key, and reads the STREAM.
        let input = io::BufReader::new(Cursor::new(self.head).chain(self.rest));
        let decryptor =
            age::Decryptor::new_buffered(input).map_err(|e| map_decrypt_error(&name, e))?;
        let identity = argon2id::UnwrappedKey(key.0.clone());
        let inner = decryptor
            .decrypt(std::iter::once(&identity as &dyn age::Identity))
            .map_err(|e| map_decrypt_error(&name, e))?;
        Ok(Payload {
            inner,
            position: 0,
            failure: FailureProbe::default(),
        })
    }
}

/// Builds an unwrapped key from raw bytes (for tests and the format test vector).
#[doc(hidden)]
pub fn unwrapped_from_bytes(bytes: [u8; FILE_KEY_BYTES]) -> Unwrapped {
    Unwrapped(Zeroizing::new(bytes))
}

impl Unwrapped {
    /// The raw file key, for the test vector in `docs/FORMAT.md`.
    #[doc(hidden)]
    pub fn expose(&self) -> &[u8; FILE_KEY_BYTES] {
        &self.0
    }

    #[doc(hidden)]
    pub fn to_file_key(&self) -> FileKey {
        FileKey::new(Box::new(*self.0))
    }
}

fn map_decrypt_error(name: &Path, e: age::DecryptError) -> Error {
    use age::DecryptError as D;
    let why = match e {
        D::InvalidMac => "the header MAC does not match (the header was modified)".to_owned(),
        D::InvalidHeader => "the age header is invalid".to_owned(),
        D::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            "it ends before the payload (truncated)".to_owned()
        }
        D::Io(e) => return Error::io("cannot read", name, e),
        // Our own reader already saw a v1 header with a vault stanza, so age failing to
        // recognise it means a damaged header line, not a newer format.
        D::UnknownFormat => "the age header is malformed".to_owned(),
        other => other.to_string(),
    };
    Error::Tampered {
        path: name.into(),
        why,
    }
}

/// The decrypted payload stream. When a read fails authentication, the error carries an
/// [`AuthFailure`] and the [`FailureProbe`] records it, so callers that see the error only
/// through layers (zstd, tar) can still tell a tampered bundle from a malformed archive.
pub struct Payload<R: Read> {
    inner: StreamReader<io::BufReader<io::Chain<Cursor<Vec<u8>>, R>>>,
    position: u64,
    failure: FailureProbe,
}

/// Shared record of an authentication failure in a [`Payload`].
#[derive(Debug, Clone, Default)]
pub struct FailureProbe(std::sync::Arc<std::sync::OnceLock<AuthFailure>>);

impl FailureProbe {
    pub fn get(&self) -> Option<&AuthFailure> {
        self.0.get()
    }
}

impl<R: Read> Payload<R> {
    /// A handle that says, after the payload was consumed elsewhere, whether it failed to
    /// authenticate.
    pub fn probe(&self) -> FailureProbe {
        self.failure.clone()
    }
}

/// Why the payload stream stopped: it did not authenticate.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what} (at payload byte {position})")]
pub struct AuthFailure {
    pub what: &'static str,
    pub position: u64,
    /// `UnexpectedEof` (cut short) or `InvalidData` (a chunk did not open).
    pub kind: io::ErrorKind,
}

impl AuthFailure {
    /// The authentication failure inside an I/O error, if that is what it is.
    pub fn of(e: &io::Error) -> Option<&AuthFailure> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<AuthFailure>())
    }
}

impl<R: Read> Read for Payload<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Once the stream failed to authenticate, it stays failed.
        if let Some(failure) = self.failure.get() {
            return Err(io::Error::new(failure.kind, failure.clone()));
        }
        match self.inner.read(buf) {
            Ok(n) => {
                self.position += n as u64;
                Ok(n)
            }
            Err(e) => {
                let what = match e.kind() {
                    io::ErrorKind::UnexpectedEof => {
                        "the payload is truncated: its final chunk is missing"
                    }
                    io::ErrorKind::InvalidData => "a payload chunk failed authentication (the bundle was cut short or modified)",
                    _ => return Err(e),
                };
                let failure = AuthFailure {
                    what,
                    position: self.position,
                    kind: e.kind(),
                };
                let _ = self.failure.0.set(failure.clone());
                Err(io::Error::new(e.kind(), failure))
            }
        }
    }
}

/// What the unit tests of this module and its children share.
#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// An Argon2id cheap enough for tests.
    pub const FAST: KdfParams = KdfParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    /// `plain` as a bundle with passphrase "pw".
    pub fn seal(plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = encrypt(&mut out, SecretString::from("pw".to_owned()), FAST).unwrap();
        w.write_all(plain).unwrap();
        w.finish().unwrap();
        out
    }
}

#[cfg(test)]
mod tests;
