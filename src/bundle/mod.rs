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
mod tests {
    use super::test_util::seal;
    use super::*;

    fn open(bytes: &[u8], pass: &str) -> Result<Vec<u8>> {
        let limits = KdfLimits::for_this_machine();
        let locked = Locked::open(bytes, Path::new("b"))?;
        let key = locked
            .try_passphrase(&SecretString::from(pass.to_owned()), &limits)?
            .ok_or(Error::WrongPassphrase { path: "b".into() })?;
        let mut out = Vec::new();
        locked
            .decrypt(key)?
            .read_to_end(&mut out)
            .map_err(|e| Error::Tampered {
                path: "b".into(),
                why: AuthFailure::of(&e)
                    .map(|a| a.to_string())
                    .unwrap_or(e.to_string()),
            })?;
        Ok(out)
    }

    #[test]
    fn round_trip_and_failures() {
        let plain = vec![42u8; 200_000];
        let sealed = seal(&plain);
        assert!(looks_like_bundle(&sealed));
        assert_eq!(open(&sealed, "pw").unwrap(), plain);
        assert!(matches!(
            open(&sealed, "PW"),
            Err(Error::WrongPassphrase { .. })
        ));
        // Truncated in the payload, in the header, flipped bits in the payload.
        let e = open(&sealed[..sealed.len() - 10], "pw").unwrap_err();
        assert!(
            e.to_string().contains("authentication") || e.to_string().contains("truncated"),
            "{e}"
        );
        let e = open(&sealed[..60], "pw").unwrap_err();
        assert!(matches!(e, Error::Tampered { .. }), "{e}");
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(open(&flipped, "pw"), Err(Error::Tampered { .. })));
        assert!(matches!(open(b"", "pw"), Err(Error::NotABundle { .. })));
        assert!(matches!(
            open(b"hello world, this is not age", "pw"),
            Err(Error::NotABundle { .. })
        ));
    }

    /// A validly formed stanza asking for 4 GiB with 64 passes (minutes a try) is refused by
    /// the work cap in `check_limits`, which runs before any derivation: the error is
    /// `KdfTooExpensive`, not the wrong passphrase a derivation would end in.
    #[test]
    fn a_header_over_the_work_budget_is_refused_before_deriving() {
        let sealed = seal(b"x");
        let h = header::parse(&sealed).unwrap().len;
        let head = std::str::from_utf8(&sealed[..h]).unwrap();
        let crafted = head.replacen(" 64 1 1\n", " 4194304 64 4\n", 1);
        assert_ne!(crafted, head);
        let mut bytes = crafted.into_bytes();
        bytes.extend_from_slice(&sealed[h..]);
        let locked = Locked::open(&bytes[..], Path::new("b")).unwrap();
        assert_eq!(locked.info().kdf.work(), 4194304 * 64);
        let limits = KdfLimits {
            mem_available: None,
            ..KdfLimits::for_this_machine()
        };
        let e = locked
            .try_passphrase(&SecretString::from("pw".to_owned()), &limits)
            .err()
            .expect("refused");
        assert!(
            matches!(&e, Error::KdfTooExpensive { what, .. } if what.contains("passes allowed")),
            "{e}"
        );
    }

    /// What a key holder can do and a forger cannot: rebuild `bundle`'s header with `extra`
    /// stanza lines after the passphrase stanza (in place of the grease), MACed with the file
    /// key `file_key`; the nonce and payload are kept (they depend only on the file key).
    fn reheader(bundle: &[u8], extra: &[u8], file_key: &[u8; 16]) -> Vec<u8> {
        use hmac::Mac as _;
        let len = header::parse(bundle).unwrap().len;
        let head = &bundle[..len];
        // Version line, the vault stanza's two lines.
        let stanza_end = head
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .nth(2)
            .unwrap()
            .0
            + 1;
        let mut out = head[..stanza_end].to_vec();
        assert!(out.ends_with(b"\n") && !head[stanza_end..].starts_with(b"-> vault"));
        out.extend_from_slice(extra);
        out.extend_from_slice(b"---");
        let mut mac_key = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(Some(&[]), file_key)
            .expand(b"header", &mut mac_key)
            .unwrap();
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&mac_key).unwrap();
        mac.update(&out);
        let tag = mac.finalize().into_bytes();
        out.push(b' ');
        out.extend_from_slice(
            base64::Engine::encode(&base64::prelude::BASE64_STANDARD_NO_PAD, tag).as_bytes(),
        );
        out.push(b'\n');
        out.extend_from_slice(&bundle[len..]);
        out
    }

    fn file_key_of(bundle: &[u8]) -> [u8; 16] {
        let locked = Locked::open(bundle, Path::new("b")).unwrap();
        let key = locked
            .try_passphrase(
                &SecretString::from("pw".to_owned()),
                &KdfLimits::for_this_machine(),
            )
            .unwrap()
            .unwrap();
        *key.expose()
    }

    /// A real X25519 stanza for `file_key`, as age writes it, and the identity that opens it.
    fn x25519_stanza(file_key: &[u8; 16]) -> (Vec<u8>, age::x25519::Identity) {
        let id = age::x25519::Identity::generate();
        let (stanzas, _) =
            age::Recipient::wrap_file_key(&id.to_public(), &FileKey::new(Box::new(*file_key)))
                .unwrap();
        let s = &stanzas[0];
        let mut text = format!("-> {} {}\n", s.tag, s.args.join(" "));
        let body = base64::Engine::encode(&base64::prelude::BASE64_STANDARD_NO_PAD, &s.body);
        text.push_str(&body);
        text.push('\n');
        assert!(body.len() < 64);
        (text.into_bytes(), id)
    }

    /// Other stanzas may accompany the passphrase stanza (docs/FORMAT.md §1): one written
    /// with the file key opens, with the passphrase and, through age, with its own identity.
    #[test]
    fn an_extra_stanza_written_by_the_key_holder_opens() {
        let plain = vec![7u8; 100_000];
        let sealed = seal(&plain);
        let fk = file_key_of(&sealed);
        let (extra, id) = x25519_stanza(&fk);
        let with_extra = reheader(&sealed, &extra, &fk);
        assert_eq!(header::parse(&with_extra).unwrap().stanza_count, 2);
        assert_eq!(open(&with_extra, "pw").unwrap(), plain);
        let mut out = Vec::new();
        age::Decryptor::new_buffered(&with_extra[..])
            .unwrap()
            .decrypt(std::iter::once(&id as &dyn age::Identity))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, plain);
    }

    /// Without the passphrase there is no file key, so no header MAC: a stanza added (or one
    /// swapped in for the grease) by anyone else is refused, however well-formed.
    #[test]
    fn an_extra_stanza_added_without_the_passphrase_is_refused() {
        let sealed = seal(b"secret");
        let len = header::parse(&sealed).unwrap().len;
        // The forger's own file key: the stanza is valid age, for a key that is not this one.
        let (extra, _) = x25519_stanza(&[9u8; 16]);
        let head = &sealed[..len];
        let mac_at = head.len() - MAC_LINE.len();
        for keep_grease in [true, false] {
            let stanza_end = head
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == b'\n')
                .nth(2)
                .unwrap()
                .0
                + 1;
            let mut forged = head[..if keep_grease { mac_at } else { stanza_end }].to_vec();
            forged.extend_from_slice(&extra);
            forged.extend_from_slice(&head[mac_at..]);
            forged.extend_from_slice(&sealed[len..]);
            let e = open(&forged, "pw").unwrap_err();
            assert!(
                matches!(&e, Error::Tampered { why, .. } if why.contains("header MAC")),
                "{e}"
            );
        }
    }

    /// `encrypt_with_recovery` writes the passphrase stanza, then one stanza per recovery
    /// recipient in order, then grease; each recovery identity unwraps the same file key as
    /// the passphrase, and an identity with no stanza finds none.
    #[test]
    fn recovery_stanzas_follow_the_passphrase_stanza_and_yield_the_same_key() {
        let ids = [
            age::x25519::Identity::generate(),
            age::x25519::Identity::generate(),
        ];
        let (r0, r1) = (ids[0].to_public(), ids[1].to_public());
        let mut sealed = Vec::new();
        let mut w = encrypt_with_recovery(
            &mut sealed,
            SecretString::from("pw".to_owned()),
            super::test_util::FAST,
            &[&r0, &r1],
        )
        .unwrap();
        w.write_all(b"payload").unwrap();
        w.finish().unwrap();
        let locked = Locked::open(&sealed[..], Path::new("b")).unwrap();
        let tags: Vec<String> = locked.stanzas().map(|s| s.tag).collect();
        assert_eq!(tags.len(), 4, "{tags:?}");
        assert_eq!(&tags[..3], [argon2id::TAG, "X25519", "X25519"]);
        let fk = file_key_of(&sealed);
        for id in &ids {
            let key = locked.try_identities(&[id]).unwrap().expect("opens");
            assert_eq!(key.expose(), &fk);
        }
        let stranger = age::x25519::Identity::generate();
        assert!(locked.try_identities(&[&stranger]).unwrap().is_none());
        let key = locked.try_identities(&[&ids[1]]).unwrap().unwrap();
        let mut out = Vec::new();
        locked.decrypt(key).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, b"payload");
        assert_eq!(open(&sealed, "pw").unwrap(), b"payload");
    }

    const MAC_LINE: &[u8] = b"--- 0123456789012345678901234567890123456789012\n";

    /// The whole header, MAC line included, is at most 16 KiB: a header of exactly 16384
    /// bytes opens, one of 16385 is refused.
    #[test]
    fn the_header_limit_includes_the_mac_line() {
        let plain = b"at the limit".to_vec();
        let sealed = seal(&plain);
        let fk = file_key_of(&sealed);
        // One stanza `-> filler <arg>` with an empty body: arg_len + 12 bytes.
        let filler = |arg_len: usize| {
            let mut s = b"-> filler ".to_vec();
            s.extend(std::iter::repeat_n(b'a', arg_len));
            s.extend_from_slice(b"\n\n");
            s
        };
        let base = header::parse(&reheader(&sealed, &filler(1), &fk))
            .unwrap()
            .len;
        let arg_len = header::MAX_HEADER_LEN - base + 1;
        let at_limit = reheader(&sealed, &filler(arg_len), &fk);
        assert_eq!(header::parse(&at_limit).unwrap().len, 16384);
        assert_eq!(open(&at_limit, "pw").unwrap(), plain);
        let over = reheader(&sealed, &filler(arg_len + 1), &fk);
        assert_eq!(
            header::parse(&over),
            Err(HeaderError::Malformed("the header is larger than 16 KiB"))
        );
        let e = open(&over, "pw").unwrap_err();
        assert!(matches!(e, Error::Tampered { .. }), "{e}");
    }
}
