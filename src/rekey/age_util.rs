//! Small age helpers shared by the sops and agenix paths: reading a file's stanza types
//! without decrypting it, decrypting, and encrypting.

use std::io::{Read, Write};

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::recipients::Recipient;
use super::Identities;

pub const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";

/// One recipient stanza of an age header: type and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza {
    pub kind: String,
    pub args: Vec<String>,
}

/// Whether a stanza of this type is age's grease: random stanzas the `age` crate adds to every
/// header (types ending in `-grease`), which wrap nothing and which every reader skips.
pub fn is_grease(kind: &str) -> bool {
    kind.ends_with("-grease")
}

/// Whether `bytes` is an ASCII-armored age file (leading whitespace allowed, as age does).
pub fn is_armored(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    bytes[start..].starts_with(ARMOR_BEGIN.as_bytes())
}

/// The recipient stanzas of an age file (armored or not), without decrypting anything.
pub fn stanzas(bytes: &[u8]) -> Result<Vec<Stanza>, String> {
    // Headers are small; 64 KiB of de-armored input holds any real one.
    let mut head = Vec::new();
    ArmoredReader::new(bytes)
        .take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(|e| format!("not an age file: {e}"))?;
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split('\n');
    if lines.next() != Some("age-encryption.org/v1") {
        return Err("not an age file (no age-encryption.org/v1 header)".into());
    }
    let mut out = Vec::new();
    for line in lines {
        if let Some(rest) = line.strip_prefix("-> ") {
            let mut parts = rest.split(' ');
            let kind = parts.next().unwrap_or("").to_string();
            out.push(Stanza {
                kind,
                args: parts.map(str::to_string).collect(),
            });
        } else if line.starts_with("---") {
            return Ok(out);
        }
    }
    Err("truncated age header".into())
}

/// The tag an `ssh-ed25519` / `ssh-rsa` stanza carries for an OpenSSH public key line:
/// base64(SHA-256(wire-format key)[..4]) — how age names the recipient without revealing it.
pub fn ssh_tag(public_line: &str) -> Option<(String, String)> {
    let mut parts = public_line.split_whitespace();
    let kind = parts.next()?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(parts.next()?)
        .ok()?;
    Some((kind.to_string(), key_blob_tag(&blob)))
}

/// The stanza tag of an SSH key given as its wire-format blob.
pub fn key_blob_tag(blob: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(&Sha256::digest(blob)[..4])
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_of_agenix_user1() {
        // From the agenix fixture: user1's key; its tag is what secret1.age's stanza names.
        let (kind, tag) = ssh_tag(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL0idNvgGiucWgup/mP78zyC23uFjYq0evcWdjGQUaBH",
        )
        .unwrap();
        assert_eq!(kind, "ssh-ed25519");
        assert_eq!(tag.len(), 6);
    }
}
