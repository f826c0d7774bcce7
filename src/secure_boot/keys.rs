//! Secure Boot key pairs as sbctl makes them: RSA-4096, a self-signed X.509 certificate
//! signed with SHA-256 with RSA, valid five years from its creation, the private key in
//! PKCS#8 PEM (`PRIVATE KEY`) and the certificate in PEM.

use std::io::Read;
use std::path::Path;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use der::asn1::{BitString, GeneralizedTime, UtcTime};
use der::{DateTime, Decode, Encode, EncodePem};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use zeroize::Zeroizing;

use super::{Error, Role};

/// sbctl's key size.
pub const RSA_BITS: usize = 4096;
/// sbctl's certificate lifetime, in calendar years.
pub const VALID_YEARS: u16 = 5;
/// Key and certificate files are small; anything bigger is not one.
const MAX_PEM: u64 = 1 << 20;

pub(crate) const SHA256_WITH_RSA: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");

/// An algorithm identifier with the explicit NULL parameter RSA's identifiers carry.
pub(crate) fn alg_with_null(oid: der::oid::ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: Some(der::asn1::Null.into()),
    }
}

/// A private key (wiped from memory on drop) with its certificate.
pub struct KeyPair {
    pub role: Role,
    key: RsaPrivateKey,
    cert: Certificate,
    cert_der: Vec<u8>,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("role", &self.role)
            .field("subject", &self.cert.tbs_certificate.subject.to_string())
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// A new RSA-4096 key and its self-signed certificate, subject `CN=<common_name>`, valid
    /// from `now` for [`VALID_YEARS`]. Slow (seconds): RSA key generation.
    pub fn generate(role: Role, common_name: &str, now: SystemTime) -> Result<KeyPair, Error> {
        let what = format!("generating the {} key", role.name());
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)
            .map_err(|e| Error::crypto(&what, e))?;
        let cert = self_signed(&key, common_name, now).map_err(|e| Error::crypto(&what, e))?;
        Self::assemble(role, key, cert).map_err(|e| Error::crypto(&what, e))
    }

    fn assemble(role: Role, key: RsaPrivateKey, cert: Certificate) -> Result<KeyPair, String> {
        let cert_der = cert.to_der().map_err(|e| e.to_string())?;
        Ok(KeyPair {
            role,
            key,
            cert,
            cert_der,
        })
    }

    /// Reads a key pair as sbctl stores it, refusing a certificate of another key.
    pub fn load(role: Role, key_path: &Path, cert_path: &Path) -> Result<KeyPair, Error> {
        let key_pem = read_capped(key_path)?;
        let cert_pem = read_capped(cert_path)?;
        let key = parse_private_key(&key_pem).map_err(|why| Error::parse(key_path, why))?;
        let cert = parse_certificate(&cert_pem).map_err(|why| Error::parse(cert_path, why))?;
        if !public_key_of(&cert).is_ok_and(|p| p == RsaPublicKey::from(&key)) {
            return Err(Error::Mismatch {
                cert: cert_path.into(),
                key: key_path.into(),
            });
        }
        Self::assemble(role, key, cert).map_err(|why| Error::parse(cert_path, why))
    }

    /// The private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), what sbctl reads.
    pub fn key_pem(&self) -> Result<Zeroizing<String>, Error> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| Error::crypto("encoding the private key", e))
    }

    /// The certificate as PEM (`-----BEGIN CERTIFICATE-----`).
    pub fn cert_pem(&self) -> Result<String, Error> {
        self.cert
            .to_pem(LineEnding::LF)
            .map_err(|e| Error::crypto("encoding the certificate", e))
    }

    /// The certificate, DER-encoded (what EFI signature lists hold).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// An RSA PKCS#1 v1.5 signature over SHA-256(`message`) (blinded).
    pub(crate) fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let digest = Sha256::digest(message);
        self.key
            .sign_with_rng(
                &mut rand::rngs::OsRng,
                Pkcs1v15Sign::new::<Sha256>(),
                &digest,
            )
            .map_err(|e| Error::crypto(format!("signing with the {} key", self.role.name()), e))
    }
}

fn self_signed(
    key: &RsaPrivateKey,
    common_name: &str,
    now: SystemTime,
) -> Result<Certificate, String> {
    let public = RsaPublicKey::from(key);
    let spki_der = public.to_public_key_der().map_err(|e| e.to_string())?;
    let spki =
        SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes()).map_err(|e| e.to_string())?;
    let name = Name::from_str(&format!("CN={common_name}")).map_err(|e| e.to_string())?;
    let mut serial = [0u8; 16];
    rand::Rng::fill(&mut rand::rngs::OsRng, &mut serial[..]);
    // Positive, and no leading zero byte for DER to strip: always 16 bytes.
    serial[0] = (serial[0] & 0x7f) | 0x40;
    let start = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "the clock is before 1970".to_string())?;
    let not_before = DateTime::from_unix_duration(std::time::Duration::from_secs(start.as_secs()))
        .map_err(|e| e.to_string())?;
    let not_after = plus_years(not_before, VALID_YEARS)?;
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&serial).map_err(|e| e.to_string())?,
        signature: alg_with_null(SHA256_WITH_RSA),
        issuer: name.clone(),
        validity: Validity {
            not_before: x509_time(not_before)?,
            not_after: x509_time(not_after)?,
        },
        subject: name,
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: None,
    };
    let tbs_der = tbs.to_der().map_err(|e| e.to_string())?;
    let digest = Sha256::digest(&tbs_der);
    let signature = key
        .sign_with_rng(
            &mut rand::rngs::OsRng,
            Pkcs1v15Sign::new::<Sha256>(),
            &digest,
        )
        .map_err(|e| e.to_string())?;
    Ok(Certificate {
        tbs_certificate: tbs,
        signature_algorithm: alg_with_null(SHA256_WITH_RSA),
        signature: BitString::from_bytes(&signature).map_err(|e| e.to_string())?,
    })
}

/// The same date and time `years` later (29 February becomes 28 February in a common year).
fn plus_years(t: DateTime, years: u16) -> Result<DateTime, String> {
    let y = t.year() + years;
    let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let day = if t.month() == 2 && t.day() == 29 && !leap {
        28
    } else {
        t.day()
    };
    DateTime::new(y, t.month(), day, t.hour(), t.minutes(), t.seconds()).map_err(|e| e.to_string())
}

/// RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
fn x509_time(t: DateTime) -> Result<Time, String> {
    if t.year() < 2050 {
        UtcTime::from_date_time(t)
            .map(Time::UtcTime)
            .map_err(|e| e.to_string())
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(t)))
    }
}

/// Reads a small text file (a key, a certificate), refusing anything over 1 MiB.
pub(crate) fn read_capped(path: &Path) -> Result<Zeroizing<String>, Error> {
    let bytes = read_regular(path)?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| Error::parse(path, "not a text (PEM) file"))?;
    Ok(Zeroizing::new(text.to_string()))
}

/// The bytes of the regular file `path` (at most 1 MiB). A link is refused, not followed: a
/// key kept outside the folder would otherwise be copied into it. A FIFO, socket or device is
/// refused without being opened, where reading it could wait forever; the non-blocking,
/// no-follow open enforces both if the file is swapped in between.
pub(crate) fn read_regular(path: &Path) -> Result<Zeroizing<Vec<u8>>, Error> {
    use rustix::fs::OFlags;
    use std::os::unix::fs::OpenOptionsExt;
    let refuse = |what: &str| {
        Error::parse(
            path,
            format!("is {what}, not a regular file; put the file itself there (restore it from your secrets repository)"),
        )
    };
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io("cannot read", path, e))?;
    if meta.file_type().is_symlink() {
        return Err(refuse("a symbolic link"));
    }
    if !meta.is_file() {
        return Err(refuse(if meta.is_dir() {
            "a folder"
        } else {
            "a FIFO, socket or device"
        }));
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => {
                refuse("a symbolic link")
            }
            _ => Error::io("cannot read", path, e),
        })?;
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return Err(refuse("a FIFO, socket or device"));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    f.take(MAX_PEM + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("cannot read", path, e))?;
    if bytes.len() as u64 > MAX_PEM {
        return Err(Error::parse(
            path,
            "larger than 1 MiB: not a key or certificate",
        ));
    }
    Ok(bytes)
}

/// An RSA private key in PKCS#8 (`PRIVATE KEY`, as sbctl writes it) or PKCS#1
/// (`RSA PRIVATE KEY`) PEM.
fn parse_private_key(pem: &str) -> Result<RsaPrivateKey, String> {
    let label = pem_label(pem).ok_or("not a PEM private key (no -----BEGIN line)")?;
    match label {
        "PRIVATE KEY" => RsaPrivateKey::from_pkcs8_pem(pem.trim())
            .map_err(|e| format!("not an RSA private key in PKCS#8 PEM ({e})")),
        "RSA PRIVATE KEY" => RsaPrivateKey::from_pkcs1_pem(pem.trim())
            .map_err(|e| format!("not an RSA private key in PKCS#1 PEM ({e})")),
        "ENCRYPTED PRIVATE KEY" => Err(
            "the private key is passphrase-protected; lanzaboote and sbctl need it unencrypted"
                .into(),
        ),
        other => Err(format!(
            "a PEM \"{}\" block, not an RSA private key",
            crate::escape::escape(other)
        )),
    }
}

fn parse_certificate(pem: &str) -> Result<Certificate, String> {
    match pem_label(pem) {
        Some("CERTIFICATE") => {}
        Some(other) => {
            return Err(format!(
                "a PEM \"{}\" block, not a certificate",
                crate::escape::escape(other)
            ))
        }
        None => return Err("not a PEM certificate (no -----BEGIN CERTIFICATE----- line)".into()),
    }
    // Text before or after the block (openssl's `-text` output) is allowed, as sbsign allows.
    let start = pem.find("-----BEGIN").unwrap_or(0);
    let end = pem[start..]
        .find("-----END CERTIFICATE-----")
        .map(|i| start + i + "-----END CERTIFICATE-----".len())
        .ok_or("the certificate's -----END CERTIFICATE----- line is missing")?;
    use der::DecodePem;
    Certificate::from_pem(&pem[start..end]).map_err(|e| format!("not an X.509 certificate ({e})"))
}

/// The label of the first `-----BEGIN LABEL-----` line.
fn pem_label(pem: &str) -> Option<&str> {
    let i = pem.find("-----BEGIN ")?;
    let rest = &pem[i + "-----BEGIN ".len()..];
    let end = rest.find("-----")?;
    Some(&rest[..end])
}

fn public_key_of(cert: &Certificate) -> Result<RsaPublicKey, String> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let der = spki.to_der().map_err(|e| e.to_string())?;
    use rsa::pkcs8::DecodePublicKey;
    RsaPublicKey::from_public_key_der(&der)
        .map_err(|e| format!("the certificate's key is not an RSA key ({e})"))
}

/// The DER bytes of the PEM certificate at `path` (at most 1 MiB).
pub fn load_certificate_der(path: &Path) -> Result<Vec<u8>, Error> {
    let pem = read_capped(path)?;
    parse_certificate(&pem)
        .and_then(|c| c.to_der().map_err(|e| e.to_string()))
        .map_err(|why| Error::parse(path, why))
}

/// Whether the PEM certificate `cert_pem` holds the public half of the PEM private key
/// `key_pem` (PKCS#8 or PKCS#1 RSA). `Ok(false)`: both parse, but belong to different keys.
/// `cert_path`/`key_path` only name the inputs in errors.
pub fn cert_matches_key(
    cert_pem: &str,
    cert_path: &Path,
    key_pem: &str,
    key_path: &Path,
) -> Result<bool, Error> {
    let cert = parse_certificate(cert_pem).map_err(|why| Error::parse(cert_path, why))?;
    let key = parse_private_key(key_pem).map_err(|why| Error::parse(key_path, why))?;
    let public = public_key_of(&cert).map_err(|why| Error::parse(cert_path, why))?;
    let mine = RsaPublicKey::from(&key);
    Ok(public.n() == mine.n() && public.e() == mine.e())
}

/// [`cert_matches_key`] on two files (each at most 1 MiB), e.g. lanzaboote's
/// `publicKeyFile` and `privateKeyFile`.
pub fn check_pair(cert_path: &Path, key_path: &Path) -> Result<bool, Error> {
    let cert = read_capped(cert_path)?;
    let key = read_capped(key_path)?;
    cert_matches_key(&cert, cert_path, &key, key_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leap_day_certificates_end_on_the_28th() {
        let t = DateTime::new(2024, 2, 29, 12, 0, 0).unwrap();
        let e = plus_years(t, 5).unwrap();
        assert_eq!((e.year(), e.month(), e.day()), (2029, 2, 28));
        let t = DateTime::new(2047, 6, 1, 0, 0, 0).unwrap();
        assert!(matches!(
            x509_time(plus_years(t, 5).unwrap()).unwrap(),
            Time::GeneralTime(_)
        ));
        assert!(matches!(x509_time(t).unwrap(), Time::UtcTime(_)));
    }

    #[test]
    fn junk_is_refused_with_the_reason() {
        let p = Path::new("x.pem");
        let k = Path::new("x.key");
        let e = cert_matches_key("hello", p, "hello", k).unwrap_err();
        assert!(e.to_string().contains("no -----BEGIN"), "{e}");
        let bad = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = cert_matches_key(bad, p, "x", k).unwrap_err();
        assert!(e.to_string().contains("not an X.509 certificate"), "{e}");
        let e = parse_private_key("-----BEGIN ENCRYPTED PRIVATE KEY-----\n").unwrap_err();
        assert!(e.contains("passphrase-protected"), "{e}");
        let e = parse_private_key("-----BEGIN \x1b[31mX-----\n").unwrap_err();
        assert!(!e.contains('\x1b'), "{e}");
    }
}
