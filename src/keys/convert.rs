//! ssh-to-age: an ed25519 SSH key seen as an age X25519 key, exactly as Mic92/ssh-to-age does
//! it, so sops-nix (which converts `/etc/ssh/ssh_host_ed25519_key` the same way at boot) opens
//! what vault encrypts.
//!
//! - public: the Edwards point, mapped to its Montgomery u-coordinate, bech32 `age1…`;
//! - secret: SHA-512(seed)[0..32], bech32 `AGE-SECRET-KEY-1…`, *not* clamped (ssh-to-age does
//!   not clamp; X25519 clamps when it uses the scalar, so both forms are the same key).

use bech32::{ToBase32, Variant};
use curve25519_dalek::edwards::CompressedEdwardsY;
use secrecy::SecretString;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use super::Error;

/// The `age1…` recipient of an ed25519 public key (32 bytes, Edwards form).
pub fn age_recipient_from_ed25519(public: &[u8; 32]) -> Result<String, Error> {
    let point = CompressedEdwardsY(*public)
        .decompress()
        .ok_or_else(|| Error::Parse {
            what: "ed25519 public key".into(),
            why: "not a point on the curve".into(),
        })?;
    let montgomery = point.to_montgomery().to_bytes();
    bech32::encode("age", montgomery.to_base32(), Variant::Bech32).map_err(|e| Error::Parse {
        what: "age recipient".into(),
        why: e.to_string(),
    })
}

/// The `AGE-SECRET-KEY-1…` identity of an ed25519 private key, from its 32-byte seed.
pub fn age_identity_from_seed(seed: &[u8; 32]) -> Result<SecretString, Error> {
    let digest = Zeroizing::new(Sha512::digest(seed));
    // bech32's u5 vector cannot be zeroized; it lives only for the next line.
    let scalar = (&digest[..32]).to_base32();
    let encoded = Zeroizing::new(
        bech32::encode("age-secret-key-", scalar, Variant::Bech32).map_err(|e| Error::Parse {
            what: "age identity".into(),
            why: e.to_string(),
        })?,
    );
    Ok(SecretString::from(encoded.to_uppercase()))
}

/// Converts one OpenSSH public key line (`ssh-ed25519 AAAA… [comment]`, optionally preceded by
/// a known_hosts host field) to `age1…`.
pub fn ssh_public_to_age(line: &str) -> Result<String, Error> {
    let line = line.trim();
    // known_hosts / ssh-keyscan lines start with the host name(s).
    let key_part = match line.find("ssh-") {
        Some(i) => &line[i..],
        None => line,
    };
    let key = ssh_key::PublicKey::from_openssh(key_part).map_err(|e| Error::Parse {
        what: format!("public key {:?}", abbreviate(line)),
        why: e.to_string(),
    })?;
    match key.key_data() {
        ssh_key::public::KeyData::Ed25519(pk) => age_recipient_from_ed25519(&pk.0),
        other => Err(Error::NotEd25519 {
            what: format!("public key {:?}", abbreviate(line)),
            algorithm: other.algorithm().to_string(),
        }),
    }
}

fn abbreviate(s: &str) -> String {
    if s.len() > 40 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(40).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn identity_matches_public_recipient() {
        // Any seed: the X25519 identity derived from the secret must have the recipient derived
        // from the public point (checks the unclamped encoding is still the same key).
        let seed = [7u8; 32];
        let sk = ssh_key::private::Ed25519Keypair::from_seed(&seed);
        let id = age_identity_from_seed(&seed).unwrap();
        let parsed: age::x25519::Identity = id.expose_secret().parse().unwrap();
        assert_eq!(
            parsed.to_public().to_string(),
            age_recipient_from_ed25519(&sk.public.0).unwrap()
        );
    }

    #[test]
    fn rsa_is_refused() {
        let e = ssh_public_to_age("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDHD6xarNtERpyo5HTTBuowEw3EH6zGG+oHEUDswDidcWl5YMeU1el50vV4hBVbdFwKv9E3ElYr1A7e/oBBHhRSgrSHA1QMSBgQmJNNPK6aaO42hz/X1ophINIegBrtIGcFRwzJyzvkUAahyP5fGpJbLrJ3KiLBHElaPForxw06ERSFauC2c2iNyhWnqDipbKuqEowBTW3164liD6PBTgv3K7RphpNXBHdMnVp");
        assert!(e.is_err());
    }
}
