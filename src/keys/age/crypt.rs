//! Whole-file age encryption and decryption with the recipients and identities of this layer,
//! and the variants that also hand back the file key (the rekey record's MAC is keyed from it).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, PoisonError};

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use age_core::format::{FileKey, Stanza};
use age_core::secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::recipients::Recipient;
use super::Identities;

/// An age file key, kept in zeroizing memory.
pub type FileKeyBytes = Zeroizing<[u8; 16]>;

/// Decrypts a whole age file (armored or not) with any of `ids`.
pub fn decrypt(bytes: &[u8], ids: &Identities) -> Result<Zeroizing<Vec<u8>>, String> {
    // Buffered: the unbuffered reader re-parses the header from the start after each read,
    // which was a third of rekeying files with ten recipients.
    let decryptor = age::Decryptor::new_buffered(ArmoredReader::new(bytes)).map_err(describe)?;
    let mut reader = decryptor.decrypt(ids.iter()).map_err(describe)?;
    let mut out = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut out)
        .map_err(|e| format!("corrupt payload: {e}"))?;
    Ok(out)
}

fn describe(e: age::DecryptError) -> String {
    match e {
        age::DecryptError::NoMatchingKeys => "no identity given opens it".into(),
        other => format!("cannot decrypt: {other}"),
    }
}

/// Encrypts `plain` to `recipients` (see [`super::recipients`]), armored or binary.
pub fn encrypt(plain: &[u8], recipients: &[Recipient], armor: bool) -> Result<Vec<u8>, String> {
    let encryptor = age::Encryptor::with_recipients(
        recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient),
    )
    .map_err(|e| format!("cannot encrypt: {e}"))?;
    let format = if armor {
        Format::AsciiArmor
    } else {
        Format::Binary
    };
    let io = |e: std::io::Error| format!("cannot encrypt: {e}");
    let armored = ArmoredWriter::wrap_output(Vec::new(), format).map_err(io)?;
    let mut w = encryptor.wrap_output(armored).map_err(io)?;
    w.write_all(plain).map_err(io)?;
    w.finish().and_then(|a| a.finish()).map_err(io)
}

/// Decrypts all of `bytes` (so the header MAC and every chunk are checked) and returns the
/// file key that did it.
pub fn decrypt_keeping_key<'a>(
    bytes: &[u8],
    ids: impl Iterator<Item = &'a dyn age::Identity>,
) -> Result<FileKeyBytes, String> {
    let captures: Vec<CaptureIdentity> = ids
        .map(|inner| CaptureIdentity {
            inner,
            key: Mutex::new(None),
        })
        .collect();
    let decryptor = age::Decryptor::new_buffered(ArmoredReader::new(bytes))
        .map_err(|e| format!("cannot decrypt: {e}"))?;
    let mut reader = decryptor
        .decrypt(captures.iter().map(|c| c as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => "no identity given opens it".to_string(),
            other => format!("cannot decrypt: {other}"),
        })?;
    let mut sink = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut sink)
        .map_err(|e| format!("corrupt payload: {e}"))?;
    // age stops at the first identity that unwraps a stanza and uses that key alone.
    captures
        .into_iter()
        .find_map(|c| c.key.into_inner().unwrap_or_else(PoisonError::into_inner))
        .ok_or_else(|| "no file key seen".into())
}

/// An identity that remembers the file key it unwrapped.
struct CaptureIdentity<'a> {
    inner: &'a dyn age::Identity,
    key: Mutex<Option<FileKeyBytes>>,
}

impl age::Identity for CaptureIdentity<'_> {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, age::DecryptError>> {
        let r = self.inner.unwrap_stanzas(stanzas);
        if let Some(Ok(k)) = &r {
            *self.key.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(Zeroizing::new(*k.expose_secret()));
        }
        r
    }
}

/// A recipient that remembers the file key it was given to wrap: age generates the key inside
/// its encryptor and hands it to every recipient, this one included.
struct CaptureRecipient {
    inner: Recipient,
    key: Mutex<Option<FileKeyBytes>>,
}

impl age::Recipient for CaptureRecipient {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), age::EncryptError> {
        *self.key.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Zeroizing::new(*file_key.expose_secret()));
        self.inner.wrap_file_key(file_key)
    }
}

/// [`encrypt`], also returning the file key it used (for the rekey record).
pub fn encrypt_keeping_key(
    plain: &[u8],
    recipients: &[Recipient],
    armor: bool,
) -> Result<(Vec<u8>, FileKeyBytes), String> {
    let Some((first, rest)) = recipients.split_first() else {
        return Err("cannot encrypt: no recipients".into());
    };
    let capture = Arc::new(CaptureRecipient {
        inner: first.clone(),
        key: Mutex::new(None),
    });
    let all: Vec<Recipient> = std::iter::once(capture.clone() as Recipient)
        .chain(rest.iter().cloned())
        .collect();
    let bytes = encrypt(plain, &all, armor)?;
    let key = capture
        .key
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .ok_or("cannot encrypt: no file key seen")?;
    Ok((bytes, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypt_returns_the_key_that_decryption_uses() {
        let id = age::x25519::Identity::generate();
        let r: Recipient = Arc::new(id.to_public());
        let (bytes, key) = encrypt_keeping_key(b"secret", &[r], false).unwrap();
        let seen = decrypt_keeping_key(&bytes, std::iter::once(&id as &dyn age::Identity)).unwrap();
        assert_eq!(*seen, *key);
    }
}
