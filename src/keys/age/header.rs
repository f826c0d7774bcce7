//! Reading an age file's header without decrypting it: its recipient stanzas, whether it is
//! armored, and the tags SSH stanzas name their recipients by.

use std::io::Read;

use age::armor::ArmoredReader;
use base64::Engine as _;
use sha2::{Digest, Sha256};

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
