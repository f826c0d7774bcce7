//! Reading a bundle's header without the passphrase: enough to show KDF parameters, cap them
//! before any work, and recognise a bundle on a partition. age itself parses (and MACs) the
//! header again when decrypting; this reader only has to be strict and never panic.

use age_core::format::{read::age_stanza, Stanza};

use super::argon2id::{self, KdfParams};

/// The first line of every age v1 file.
pub const VERSION_LINE: &[u8] = b"age-encryption.org/v1\n";
/// No honest bundle header comes near this; a reader of untrusted media stops here.
pub const MAX_HEADER_LEN: usize = 16 * 1024;
/// `--- ` + 43 base64 characters + newline.
const MAC_LINE_LEN: usize = 4 + 43 + 1;

/// What the header of a bundle says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderInfo {
    pub kdf: KdfParams,
    /// The passphrase stanza's salt, base64 as in the file.
    pub salt_b64: String,
    /// All stanzas, including age's random "grease" stanza.
    pub stanza_count: usize,
    /// Bytes up to and including the MAC line; the 16-byte payload nonce follows.
    pub len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("it does not start with an age header")]
    NotAge,
    #[error("the age header is cut short")]
    Incomplete,
    #[error(
        "it is an age file, but not a vault bundle (no {} stanza)",
        argon2id::TAG
    )]
    NoVaultStanza,
    #[error("the header has two passphrase stanzas")]
    TwoVaultStanzas,
    #[error("the header is malformed: {0}")]
    Malformed(&'static str),
    /// The telltale of a binary file copied as text. Every age header line ends in a bare LF.
    #[error(
        "its header has CRLF line endings: a text tool converted it (a git checkout with \
         core.autocrlf, an email client, a text-mode transfer), which also damages the \
         encrypted payload; copy it again as a binary file (with git: `*.bundle binary` in \
         .gitattributes)"
    )]
    CrLf,
}

/// Parses the header at the start of `buf` (which may hold more than the header).
pub fn parse(buf: &[u8]) -> Result<HeaderInfo, HeaderError> {
    if buf.len() < VERSION_LINE.len() {
        return Err(if VERSION_LINE.starts_with(buf) {
            HeaderError::Incomplete
        } else {
            HeaderError::NotAge
        });
    }
    if !buf.starts_with(VERSION_LINE) {
        let bare = &VERSION_LINE[..VERSION_LINE.len() - 1];
        return Err(if buf.starts_with(bare) && buf[bare.len()] == b'\r' {
            HeaderError::CrLf
        } else {
            HeaderError::NotAge
        });
    }
    let buf = &buf[..buf.len().min(MAX_HEADER_LEN)];
    let mut rest = &buf[VERSION_LINE.len()..];
    let mut stanzas: Vec<Stanza> = Vec::new();
    while rest.starts_with(b"-> ") {
        match age_stanza(rest) {
            Ok((r, s)) => {
                stanzas.push(s.into());
                rest = r;
            }
            Err(nom::Err::Incomplete(_)) => return Err(incomplete_or_too_long(buf)),
            Err(_) => {
                return Err(cr_or(
                    rest,
                    HeaderError::Malformed("a recipient stanza is not well-formed"),
                ))
            }
        }
    }
    if rest.len() < MAC_LINE_LEN {
        return Err(incomplete_or_too_long(buf));
    }
    if !rest.starts_with(b"--- ") || rest[MAC_LINE_LEN - 1] != b'\n' {
        return Err(cr_or(
            rest,
            HeaderError::Malformed("the MAC line is missing or not where expected"),
        ));
    }
    let len = buf.len() - rest.len() + MAC_LINE_LEN;

    let mut ours = stanzas.iter().filter(|s| s.tag == argon2id::TAG);
    let stanza = ours.next().ok_or(HeaderError::NoVaultStanza)?;
    if ours.next().is_some() {
        return Err(HeaderError::TwoVaultStanzas);
    }
    let (_, kdf) = argon2id::parse_args(&stanza.args).ok_or(HeaderError::Malformed(
        "the passphrase stanza's arguments are not canonical",
    ))?;
    Ok(HeaderInfo {
        kdf,
        salt_b64: stanza.args[0].clone(),
        stanza_count: stanzas.len(),
        len,
    })
}

/// [`HeaderError::CrLf`] if a line from the one that failed to parse up to the MAC line ends
/// in CR, else `other`.
fn cr_or(rest: &[u8], other: HeaderError) -> HeaderError {
    for line in rest.split(|&b| b == b'\n') {
        if line.ends_with(b"\r") {
            return HeaderError::CrLf;
        }
        if line.starts_with(b"---") {
            break;
        }
    }
    other
}

fn incomplete_or_too_long(buf: &[u8]) -> HeaderError {
    if buf.len() >= MAX_HEADER_LEN {
        HeaderError::Malformed("the header is larger than 16 KiB")
    } else {
        HeaderError::Incomplete
    }
}

/// Whether `prefix` (the first few KiB of a file or partition) starts a vault bundle.
/// Used to recognise bundles on block devices and images.
pub fn looks_like_bundle(prefix: &[u8]) -> bool {
    parse(prefix).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"age-encryption.org/v1\n\
-> vault.bundle/argon2id AQEBAQEBAQEBAQEBAQEBAQ 65536 3 4\n\
Bhp5ycc7dzqBCrrhwJRCAGIwTfrjXgrNsyATnk5BEHM\n\
-> X\n\
\n\
--- gAhdCeX9gSlHPEDY05mdqP/k54MhWMp0OCDzgNEtNAU\n\
NONCE";

    #[test]
    fn parses_sample() {
        let h = parse(SAMPLE).unwrap();
        assert_eq!(
            h.kdf,
            KdfParams {
                m_kib: 65536,
                t: 3,
                p: 4
            }
        );
        assert_eq!(h.stanza_count, 2);
        assert_eq!(&SAMPLE[h.len..], b"NONCE");
        assert!(looks_like_bundle(SAMPLE));
    }

    #[test]
    fn every_prefix_is_incomplete_not_a_panic() {
        let end = SAMPLE.len() - 5;
        for i in 0..end {
            let r = parse(&SAMPLE[..i]);
            assert_eq!(r, Err(HeaderError::Incomplete), "prefix {i}");
        }
    }

    #[test]
    fn rejects() {
        assert_eq!(
            parse(b"\x7fELF...................."),
            Err(HeaderError::NotAge)
        );
        // The version line with something else than CR before its LF, or another first line
        // with a CR at that place, is not age: neither is a CRLF conversion.
        for other in [
            &b"age-encryption.org/v1 x\n"[..],
            b"age-encryption.org/v2\n---",
            b"encryption.org/v1 abc\r\n",
        ] {
            assert_eq!(parse(other), Err(HeaderError::NotAge), "{other:?}");
        }
        let plain_age = b"age-encryption.org/v1\n-> X25519 abc\nAAAA\n--- gAhdCeX9gSlHPEDY05mdqP/k54MhWMp0OCDzgNEtNAU\n";
        assert_eq!(parse(plain_age), Err(HeaderError::NoVaultStanza));
        let s = std::str::from_utf8(SAMPLE).unwrap();
        let two = s.replace("-> X\n\n", "-> vault.bundle/argon2id AQEBAQEBAQEBAQEBAQEBAQ 65536 3 4\nBhp5ycc7dzqBCrrhwJRCAGIwTfrjXgrNsyATnk5BEHM\n");
        assert_eq!(parse(two.as_bytes()), Err(HeaderError::TwoVaultStanzas));
        let zero = s.replace(" 65536 3 4", " 065536 3 4");
        assert!(matches!(
            parse(zero.as_bytes()),
            Err(HeaderError::Malformed(_))
        ));
        let bad_mac = s.replace("--- ", "---");
        assert!(matches!(
            parse(bad_mac.as_bytes()),
            Err(HeaderError::Malformed(_))
        ));
    }

    /// A header converted to CRLF (whole or in part) is named as such, not "not age".
    #[test]
    fn crlf_is_named() {
        let s = std::str::from_utf8(SAMPLE).unwrap();
        let all = s.replace('\n', "\r\n");
        assert_eq!(parse(all.as_bytes()), Err(HeaderError::CrLf));
        assert_eq!(parse(&all.as_bytes()[..22]), Err(HeaderError::CrLf));
        assert_eq!(parse(&all.as_bytes()[..21]), Err(HeaderError::Incomplete));
        // One stanza line, one body line, the MAC line.
        for (from, to) in [
            (" 3 4\n", " 3 4\r\n"),
            ("BEHM\n", "BEHM\r\n"),
            ("NAU\n", "NAU\r\n"),
        ] {
            let one = s.replacen(from, to, 1);
            assert_ne!(one, s);
            assert_eq!(parse(one.as_bytes()), Err(HeaderError::CrLf), "{to:?}");
        }
        assert!(HeaderError::CrLf.to_string().contains("binary"));
    }
}
