//! The recipients of one rekey run, parsed once and shared by every file and worker.
//!
//! age wraps a file key for an X25519-based recipient with a fresh ephemeral key: one
//! fixed-base multiplication for the ephemeral share, and one Diffie-Hellman with the
//! recipient's point. That second point is the same for every file of a run, so for `age1…`
//! and `ssh-ed25519` recipients we precompute a table of it, exactly as curve25519-dalek does
//! for the base point, and each stanza costs two table multiplications instead of a table and
//! a Montgomery ladder (32 µs against 104 µs here; docs/BENCHMARKS.md). Everything else (the
//! fresh ephemeral key, HKDF, the ChaCha20-Poly1305 wrap, the stanza's text) is what age's own
//! recipients do, byte for byte, and a table whose result differs from the ladder's on a
//! random scalar is never used: the recipient falls back to age's implementation.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};

use age_core::format::{FileKey, Stanza};
use age_core::primitives::{aead_encrypt, hkdf};
use age_core::secrecy::ExposeSecret;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsBasepointTable, EdwardsPoint};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::{clamp_integer, Scalar};
use curve25519_dalek::traits::{BasepointTable, IsIdentity};
use rand::RngCore;
use zeroize::{Zeroize, Zeroizing};

pub type Recipient = Arc<dyn age::Recipient + Send + Sync>;

const X25519_LABEL: &[u8] = b"age-encryption.org/v1/X25519";
const SSH_ED25519_LABEL: &[u8] = b"age-encryption.org/v1/ssh-ed25519";

/// Recipient strings already parsed in this run.
#[derive(Default)]
pub struct Recipients {
    parsed: RwLock<HashMap<String, Recipient>>,
}

impl Recipients {
    /// The recipient a rule names, parsed (and its table built) on first use.
    pub fn get(&self, s: &str) -> Result<Recipient, String> {
        let s = s.trim();
        if let Some(r) = self
            .parsed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(s)
        {
            return Ok(r.clone());
        }
        // Two workers may both build the same table the first time; one copy is kept.
        let r = parse(s)?;
        Ok(self
            .parsed
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(s.to_string())
            .or_insert(r)
            .clone())
    }

    /// The recipients of a list of strings, in order.
    pub fn all(&self, list: &[String]) -> Result<Vec<Recipient>, String> {
        list.iter().map(|s| self.get(s)).collect()
    }
}

/// A recipient string from a rule: `age1…` (X25519) or an OpenSSH public key.
pub fn parse(s: &str) -> Result<Recipient, String> {
    let s = s.trim();
    // age parses first: what is accepted, and the messages, stay age's.
    if s.starts_with("ssh-") {
        let age_own = s
            .parse::<age::ssh::Recipient>()
            .map_err(|e| format!("invalid SSH recipient {s:?}: {e:?}"))?;
        match s.strip_prefix("ssh-ed25519 ").map(Tabled::ssh_ed25519) {
            Some(Ok(Some(t))) => Ok(Arc::new(t)),
            Some(Err(why)) => Err(format!("invalid SSH recipient {s:?}: {why}")),
            Some(Ok(None)) | None => Ok(Arc::new(age_own)),
        }
    } else if s.starts_with("age1") {
        let age_own = s
            .parse::<age::x25519::Recipient>()
            .map_err(|e| format!("invalid or unsupported age recipient {s:?}: {e}"))?;
        match Tabled::x25519(s) {
            Ok(Some(t)) => Ok(Arc::new(t)),
            Err(why) => Err(format!("invalid age recipient {s:?}: {why}")),
            Ok(None) => Ok(Arc::new(age_own)),
        }
    } else {
        Err(format!(
            "unsupported recipient {s:?} (expected age1… or ssh-…)"
        ))
    }
}

/// An `X25519` or `ssh-ed25519` recipient with a table of the point it does DH with.
struct Tabled {
    /// `[8]·Q`, where Q is the recipient's point (for ssh-ed25519: times the key's tweak).
    /// Scaling by the cofactor puts it in the prime-order group, so scalars can be reduced.
    table: EdwardsBasepointTable,
    /// The recipient's Montgomery u-coordinate, as age puts it in the HKDF salt.
    salt_pk: [u8; 32],
    kind: Kind,
}

enum Kind {
    X25519,
    /// The 4-byte tag of the SSH key, base64, as the stanza's first argument.
    SshEd25519 {
        tag: String,
    },
}

impl Tabled {
    /// `Ok(None)`: a valid key this table cannot represent (a non-canonical encoding, a point
    /// on the twist); age's own recipient handles it.
    fn x25519(s: &str) -> Result<Option<Tabled>, String> {
        let (hrp, data, _) = bech32::decode(s).map_err(|e| e.to_string())?;
        let bytes: Vec<u8> =
            bech32::FromBase32::from_base32(&data).map_err(|e: bech32::Error| e.to_string())?;
        let u: [u8; 32] = match (hrp.as_str(), bytes.try_into()) {
            ("age", Ok(u)) => u,
            _ => return Ok(None),
        };
        let Some(point) = MontgomeryPoint(u).to_edwards(0) else {
            return Ok(None);
        };
        if point.to_montgomery().to_bytes() != u {
            return Ok(None);
        }
        let ladder = move |k: [u8; 32]| MontgomeryPoint(u).mul_clamped(k).to_bytes();
        Self::checked(point, u, Kind::X25519, ladder)
    }

    /// `rest`: what follows `ssh-ed25519 ` on the key's line.
    fn ssh_ed25519(rest: &str) -> Result<Option<Tabled>, String> {
        let Some(blob) = rest
            .split_whitespace()
            .next()
            .and_then(|b| STANDARD.decode(b).ok())
        else {
            return Ok(None);
        };
        // The wire format: string "ssh-ed25519", string key (32 bytes).
        let Some(key) = blob
            .strip_prefix(b"\0\0\0\x0bssh-ed25519\0\0\0\x20")
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
        else {
            return Ok(None);
        };
        let compressed = CompressedEdwardsY(key);
        let Some(ed) = compressed.decompress() else {
            return Ok(None);
        };
        if ed.compress() != compressed {
            return Ok(None);
        }
        let pk = ed.to_montgomery().to_bytes();
        let tweak = Zeroizing::new(hkdf(&blob, SSH_ED25519_LABEL, &[]));
        let kind = Kind::SshEd25519 {
            tag: super::age_util::key_blob_tag(&blob),
        };
        let q = ed.mul_clamped(*tweak);
        // age: X25519(tweak, X25519(esk, pk)).
        let tw = *tweak;
        let ladder = move |k: [u8; 32]| {
            MontgomeryPoint(pk)
                .mul_clamped(k)
                .mul_clamped(tw)
                .to_bytes()
        };
        Self::checked(q, pk, kind, ladder)
    }

    /// Builds the table for `q`, then compares it with the ladder on a random scalar.
    fn checked(
        q: EdwardsPoint,
        salt_pk: [u8; 32],
        kind: Kind,
        ladder: impl Fn([u8; 32]) -> [u8; 32],
    ) -> Result<Option<Tabled>, String> {
        let eightfold = q.mul_by_cofactor();
        if eightfold.is_identity() {
            // Every shared secret would be zero: anyone could unwrap the file key.
            return Err("it is a low-order point, which no secret key matches".into());
        }
        let t = Tabled {
            table: EdwardsBasepointTable::create(&eightfold),
            salt_pk,
            kind,
        };
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut *k);
        if *t.shared(&k) != ladder(*k) {
            debug_assert!(false, "table and ladder disagree");
            return Ok(None);
        }
        Ok(Some(t))
    }

    /// `X25519(esk, Q)`, i.e. `[clamp(esk)]·Q = [clamp(esk) / 8]·[8]·Q`.
    fn shared(&self, esk: &[u8; 32]) -> Zeroizing<[u8; 32]> {
        let clamped = Zeroizing::new(clamp_integer(*esk));
        // clamp() clears the low three bits, so this division is exact.
        let mut eighth = Zeroizing::new([0u8; 32]);
        for i in 0..32 {
            eighth[i] = (clamped[i] >> 3) | clamped.get(i + 1).map_or(0, |b| b << 5);
        }
        let mut scalar = Scalar::from_bytes_mod_order(*eighth);
        let mut point = &self.table * &scalar;
        let out = Zeroizing::new(point.to_montgomery().to_bytes());
        scalar.zeroize();
        point.zeroize();
        out
    }
}

impl age::Recipient for Tabled {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), age::EncryptError> {
        let mut esk = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut *esk);
        let epk = EdwardsPoint::mul_base_clamped(*esk)
            .to_montgomery()
            .to_bytes();
        let shared = self.shared(&esk);
        if shared.iter().all(|b| *b == 0) {
            // Cannot happen for a point of large order unless esk is zero: a broken RNG.
            return Err(age::EncryptError::Io(std::io::Error::other(
                "all-zero X25519 shared secret: the OS random number generator is failing",
            )));
        }
        let mut salt = [0u8; 64];
        salt[..32].copy_from_slice(&epk);
        salt[32..].copy_from_slice(&self.salt_pk);
        let (tag, label, mut args) = match &self.kind {
            Kind::X25519 => ("X25519", X25519_LABEL, vec![]),
            Kind::SshEd25519 { tag } => ("ssh-ed25519", SSH_ED25519_LABEL, vec![tag.clone()]),
        };
        let wrap_key = Zeroizing::new(hkdf(&salt, label, &shared[..]));
        let body = aead_encrypt(&wrap_key, file_key.expose_secret());
        args.push(STANDARD_NO_PAD.encode(epk));
        Ok((
            vec![Stanza {
                tag: tag.to_string(),
                args,
                body,
            }],
            HashSet::new(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn roundtrip(recipient: &Recipient, identity: &dyn age::Identity) -> Vec<u8> {
        let enc = age::Encryptor::with_recipients(std::iter::once(
            recipient.as_ref() as &dyn age::Recipient
        ))
        .unwrap();
        let mut out = Vec::new();
        let mut w = enc.wrap_output(&mut out).unwrap();
        w.write_all(b"secret").unwrap();
        w.finish().unwrap();
        let dec = age::Decryptor::new(&out[..]).unwrap();
        let mut plain = Vec::new();
        dec.decrypt(std::iter::once(identity))
            .unwrap()
            .read_to_end(&mut plain)
            .unwrap();
        plain
    }

    #[test]
    fn x25519_stanzas_open_with_age_identities() {
        for _ in 0..50 {
            let id = age::x25519::Identity::generate();
            let s = id.to_public().to_string();
            assert!(Tabled::x25519(&s).unwrap().is_some(), "tabled, not age's");
            assert_eq!(roundtrip(&parse(&s).unwrap(), &id), b"secret");
        }
    }

    #[test]
    fn ssh_ed25519_stanzas_open_with_age_identities() {
        for _ in 0..20 {
            let key =
                ssh_key::PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519)
                    .unwrap();
            let public = key.public_key().to_openssh().unwrap();
            let private = key.to_openssh(ssh_key::LineEnding::LF).unwrap();
            let id = age::ssh::Identity::from_buffer(private.as_bytes(), None).unwrap();
            let rest = public.strip_prefix("ssh-ed25519 ").unwrap();
            assert!(
                Tabled::ssh_ed25519(rest).unwrap().is_some(),
                "tabled, not age's"
            );
            let r = parse(&public).unwrap();
            let stanzas = r.wrap_file_key(&FileKey::new(Box::new([7; 16]))).unwrap().0;
            assert_eq!(stanzas[0].tag, "ssh-ed25519");
            assert_eq!(roundtrip(&r, &id), b"secret");
        }
    }

    #[test]
    fn table_agrees_with_the_ladder_on_many_scalars() {
        let id = age::x25519::Identity::generate();
        let s = id.to_public().to_string();
        let t = Tabled::x25519(&s).unwrap().unwrap();
        let (_, data, _) = bech32::decode(&s).unwrap();
        let u: Vec<u8> = bech32::FromBase32::from_base32(&data).unwrap();
        let u: [u8; 32] = u.try_into().unwrap();
        for _ in 0..500 {
            let mut k = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut k);
            assert_eq!(*t.shared(&k), MontgomeryPoint(u).mul_clamped(k).to_bytes());
        }
    }

    #[test]
    fn low_order_recipients_are_refused() {
        // u = 0 and u = 1 are points of order 4 and 2 (as age1 strings).
        for u in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            let s = bech32::encode(
                "age",
                bech32::ToBase32::to_base32(&u),
                bech32::Variant::Bech32,
            )
            .unwrap();
            let err = parse(&s).err().unwrap();
            assert!(err.contains("low-order"), "{err}");
        }
    }

    #[test]
    fn a_low_order_ssh_key_is_refused() {
        // The identity point (y = 1) as an ssh-ed25519 key: age would wrap the file key with
        // an all-zero shared secret, which anyone can compute.
        let mut blob = b"\0\0\0\x0bssh-ed25519\0\0\0\x20".to_vec();
        let mut y = [0u8; 32];
        y[0] = 1;
        blob.extend_from_slice(&y);
        let line = format!("ssh-ed25519 {}", STANDARD.encode(&blob));
        let err = parse(&line).err().unwrap();
        assert!(err.contains("low-order"), "{err}");
    }

    #[test]
    fn points_on_the_twist_fall_back_to_age() {
        // Half of all u are on the quadratic twist, where no Edwards point (and no table)
        // exists; age's ladder handles them.
        let mut found = 0;
        for small in 2u8..60 {
            let mut u = [0u8; 32];
            u[0] = small;
            if MontgomeryPoint(u).to_edwards(0).is_some() {
                continue;
            }
            found += 1;
            let s = bech32::encode(
                "age",
                bech32::ToBase32::to_base32(&u),
                bech32::Variant::Bech32,
            )
            .unwrap();
            assert!(Tabled::x25519(&s).unwrap().is_none());
            let r = parse(&s).unwrap();
            assert_eq!(
                r.wrap_file_key(&FileKey::new(Box::new([7; 16]))).unwrap().0[0].tag,
                "X25519"
            );
        }
        assert!(found > 0);
    }

    #[test]
    fn the_cache_returns_one_recipient_per_string() {
        let id = age::x25519::Identity::generate();
        let s = id.to_public().to_string();
        let rs = Recipients::default();
        let a = rs.get(&s).unwrap();
        let b = rs.get(&format!(" {s}\n")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
