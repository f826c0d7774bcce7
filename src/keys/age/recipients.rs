//! The recipients of one rekey run, parsed once and shared by every file and worker.
//! Plugin recipients (`age1yubikey1…`, generally `age1<name>1…`) go to age's
//! `RecipientPluginV1`, which runs `age-plugin-<name>`.
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
//!
//! Before any path is chosen, the point is canonicalised as X25519 reads it (bit 255
//! ignored, reduced mod p; for ssh-ed25519, decompressed as age decompresses it) and refused if
//! it has small order, in every encoding: with such a point the shared secret is one anyone
//! can compute. Only then does a point go to the table, or (on the twist) to age's ladder.
//! `fuzz/fuzz_targets/recipient.rs` compares both against x25519-dalek on arbitrary points.

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

/// Why a recipient of small order is refused. Every shared secret with such a point is zero
/// (or, for mixed encodings, a value anyone can compute), so anyone could unwrap the file key.
const LOW_ORDER: &str = "it is a low-order point, which no secret key matches: anyone could \
     unwrap what is encrypted to it (a damaged or hostile key; ask its owner for the real one)";

/// The u-coordinate X25519 computes with: bit 255 ignored, reduced mod p = 2^255 - 19
/// (RFC 7748, section 5). Non-canonical encodings (u + p, the high bit set) of a point are
/// the same point to age and to this module.
fn canonical_u(mut u: [u8; 32]) -> [u8; 32] {
    u[31] &= 0x7f;
    // With bit 255 clear, u < 2^255 < 2p: u ≥ p exactly when u is p + k for k in 0..19,
    // that is bytes ff…ff7f on top and a low byte of at least 0xed.
    if u[31] == 0x7f && u[1..31].iter().all(|b| *b == 0xff) && u[0] >= 0xed {
        let k = u[0] - 0xed;
        u = [0; 32];
        u[0] = k;
    }
    u
}

/// Whether `u` (on the curve or its twist) has small order, i.e. X25519 with it is zero for
/// every secret key. A clamped scalar is 8·m with 0 < m < 2^252, below the large prime order
/// of both the curve and its twist, so the ladder with any clamped scalar gives the point at
/// infinity (encoded 0) exactly when the point's order divides the cofactor 8.
fn is_small_order_u(u: &[u8; 32]) -> bool {
    MontgomeryPoint(*u).mul_clamped([0; 32]).to_bytes() == [0; 32]
}

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
        // Every key age read as ssh-ed25519 (it requires this prefix and a space) goes through
        // the table's checks; other SSH types are age's.
        match s.strip_prefix("ssh-ed25519 ").map(Tabled::ssh_ed25519) {
            Some(Ok(Some(t))) => Ok(Arc::new(t)),
            Some(Err(why)) => Err(format!("invalid SSH recipient {s:?}: {why}")),
            Some(Ok(None)) | None => Ok(Arc::new(age_own)),
        }
    } else if s.starts_with("age1") {
        // `age1<name>1…`: a plugin's (hardware key) recipient; `age1…` alone: X25519.
        if let Ok(r) = s.parse::<age::plugin::Recipient>() {
            return plugin_recipient(s, r);
        }
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
            "unsupported recipient {s:?} (expected age1…, age1<plugin>1… or ssh-…)"
        ))
    }
}

/// A plugin recipient, wrapped to by its plugin program (one process per file: wrapping needs
/// no PIN or touch). Err, naming the program, when it is not on PATH.
fn plugin_recipient(s: &str, r: age::plugin::Recipient) -> Result<Recipient, String> {
    let name = r.plugin().to_string();
    super::plugin::find(&name).map_err(|why| format!("recipient {s} {why}"))?;
    age::plugin::RecipientPluginV1::new(&name, &[r], &[], super::plugin::PromptCallbacks)
        .map(|p| Arc::new(p) as Recipient)
        .map_err(|e| format!("recipient {s}: {e}"))
}

/// For the differential fuzz target: what this module does with recipient `s` for the
/// ephemeral secret `esk`. `Err`: refused; `Ok(Some(secret))`: the table's shared secret;
/// `Ok(None)`: age's own recipient wraps.
#[doc(hidden)]
pub fn table_shared_secret(s: &str, esk: &[u8; 32]) -> Result<Option<[u8; 32]>, String> {
    parse(s)?;
    let s = s.trim();
    let t = if s.starts_with("age1") {
        Tabled::x25519(s)?
    } else if let Some(rest) = s.strip_prefix("ssh-ed25519 ") {
        Tabled::ssh_ed25519(rest)?
    } else {
        None
    };
    Ok(t.map(|t| *t.shared(esk)))
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
    /// `Err`: a point of small order, in any of its encodings (refused before anything else,
    /// whichever implementation would wrap). `Ok(None)`: a point on the quadratic twist, where
    /// no Edwards point (and no table) exists; age's own recipient handles it.
    fn x25519(s: &str) -> Result<Option<Tabled>, String> {
        let (hrp, data, _) = bech32::decode(s).map_err(|e| e.to_string())?;
        let bytes: Vec<u8> =
            bech32::FromBase32::from_base32(&data).map_err(|e: bech32::Error| e.to_string())?;
        let raw: [u8; 32] = match (hrp.as_str(), bytes.try_into()) {
            ("age", Ok(u)) => u,
            _ => return Err("not 32 bytes of an age1 public key".into()),
        };
        let u = canonical_u(raw);
        if is_small_order_u(&u) {
            return Err(LOW_ORDER.into());
        }
        let Some(point) = MontgomeryPoint(u).to_edwards(0) else {
            return Ok(None);
        };
        if point.to_montgomery().to_bytes() != u {
            return Ok(None);
        }
        // The ladder and the salt take the key's bytes as written, as age does.
        let ladder = move |k: [u8; 32]| MontgomeryPoint(raw).mul_clamped(k).to_bytes();
        Self::checked(point, raw, Kind::X25519, ladder)
    }

    /// `rest`: what follows `ssh-ed25519 ` on the key's line. `Err` for a point of small order
    /// in any encoding, and for a key whose point this code cannot read (fail closed: it is
    /// never handed to age unchecked).
    fn ssh_ed25519(rest: &str) -> Result<Option<Tabled>, String> {
        let Some(blob) = rest
            .split_whitespace()
            .next()
            .and_then(|b| STANDARD.decode(b).ok())
        else {
            return Err("its key is not base64".into());
        };
        // The wire format: string "ssh-ed25519", string key (32 bytes).
        let Some(key) = blob
            .strip_prefix(b"\0\0\0\x0bssh-ed25519\0\0\0\x20")
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
        else {
            return Err("its key is not a 32-byte ssh-ed25519 key".into());
        };
        // decompress() accepts what age accepts (y ≥ p, a sign bit on x = 0): its result is
        // the point age would use, whatever the encoding.
        let Some(ed) = CompressedEdwardsY(key).decompress() else {
            return Err("its key is not a point on the curve".into());
        };
        if ed.is_small_order() {
            return Err(LOW_ORDER.into());
        }
        let pk = ed.to_montgomery().to_bytes();
        let tweak = Zeroizing::new(hkdf(&blob, SSH_ED25519_LABEL, &[]));
        let kind = Kind::SshEd25519 {
            tag: super::header::key_blob_tag(&blob),
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
            // Unreachable after the checks above; kept so no path can wrap with a zero secret.
            return Err(LOW_ORDER.into());
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
#[path = "recipients_tests.rs"]
mod tests;
