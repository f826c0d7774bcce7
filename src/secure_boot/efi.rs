//! The UEFI structures Secure Boot variables are made of: GUIDs (in their mixed-endian
//! byte order), `EFI_TIME`, and EFI signature lists of X.509 certificates (UEFI 2.10,
//! §8.2 and §32.4.1).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A GUID, held in the byte order EFI structures store it (the first three fields
/// little-endian), shown in the usual lowercase `8-4-4-4-12` form.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid([u8; 16]);

/// `EFI_GLOBAL_VARIABLE`: the vendor GUID of `PK` and `KEK`.
pub const EFI_GLOBAL_VARIABLE: Guid = Guid::from_fields(
    0x8be4_df61,
    0x93ca,
    0x11d2,
    [0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c],
);
/// `EFI_IMAGE_SECURITY_DATABASE_GUID`: the vendor GUID of `db` and `dbx`.
pub const EFI_IMAGE_SECURITY_DATABASE: Guid = Guid::from_fields(
    0xd719_b2cb,
    0x3d3a,
    0x4596,
    [0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f],
);
/// `EFI_CERT_X509_GUID`: a signature list of DER X.509 certificates.
pub const EFI_CERT_X509: Guid = Guid::from_fields(
    0xa5c0_59a1,
    0x94e4,
    0x4aa7,
    [0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72],
);
/// `EFI_CERT_TYPE_PKCS7_GUID`: the certificate type of `EFI_VARIABLE_AUTHENTICATION_2`.
pub const EFI_CERT_TYPE_PKCS7: Guid = Guid::from_fields(
    0x4aaf_d29d,
    0x68df,
    0x49ee,
    [0x8a, 0xa9, 0x34, 0x7d, 0x37, 0x56, 0x65, 0xa7],
);

impl Guid {
    pub const fn from_fields(a: u32, b: u16, c: u16, d: [u8; 8]) -> Guid {
        let a = a.to_le_bytes();
        let b = b.to_le_bytes();
        let c = c.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5],
            d[6], d[7],
        ])
    }

    /// A random (version 4) GUID, as sbctl's `GUID` file holds.
    pub fn random() -> Guid {
        let mut b = [0u8; 16];
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut b[..]);
        // Version 4 in the high nibble of the third field (stored little-endian), RFC 4122
        // variant in the top bits of byte 8.
        b[7] = (b[7] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Guid(b)
    }

    /// Parses what sbctl reads from its `GUID` file (Go's `uuid.ParseBytes`):
    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in either case, also in braces, after `urn:uuid:`,
    /// or as 32 hex digits. Nothing else: no surrounding whitespace, no trailing newline, which
    /// sbctl refuses and lanzaboote's first-boot enrolment would then fail on.
    pub fn parse(s: &str) -> Option<Guid> {
        let s = match s.len() {
            36 => s,
            38 => s.strip_prefix('{')?.strip_suffix('}')?,
            45 => s
                .get(..9)
                .filter(|p| p.eq_ignore_ascii_case("urn:uuid:"))
                .and(s.get(9..))?,
            32 => {
                let b = hex::decode(s).ok()?;
                return Some(Guid::from_fields(
                    u32::from_be_bytes(b[0..4].try_into().ok()?),
                    u16::from_be_bytes(b[4..6].try_into().ok()?),
                    u16::from_be_bytes(b[6..8].try_into().ok()?),
                    b[8..16].try_into().ok()?,
                ));
            }
            _ => return None,
        };
        let parts: Vec<&str> = s.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        if parts.len() != 5
            || parts
                .iter()
                .zip(lens)
                .any(|(p, n)| p.len() != n || !p.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return None;
        }
        let a = u32::from_str_radix(parts[0], 16).ok()?;
        let b = u16::from_str_radix(parts[1], 16).ok()?;
        let c = u16::from_str_radix(parts[2], 16).ok()?;
        let tail = hex::decode(format!("{}{}", parts[3], parts[4])).ok()?;
        let d: [u8; 8] = tail.try_into().ok()?;
        Some(Guid::from_fields(a, b, c, d))
    }

    /// The 16 bytes as EFI stores them.
    pub fn bytes(&self) -> [u8; 16] {
        self.0
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{}-{}",
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u16::from_le_bytes([b[4], b[5]]),
            u16::from_le_bytes([b[6], b[7]]),
            hex::encode(&b[8..10]),
            hex::encode(&b[10..16])
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

/// `EFI_TIME` as authenticated variables carry it: a UTC date and time to the second, with
/// `Pad1`, `Nanosecond`, `TimeZone`, `Daylight` and `Pad2` zero (UEFI 2.10 §8.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EfiTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl EfiTime {
    pub fn from_system_time(t: SystemTime) -> Option<EfiTime> {
        let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
        let dt = der::DateTime::from_unix_duration(std::time::Duration::from_secs(secs)).ok()?;
        Some(EfiTime {
            year: dt.year(),
            month: dt.month(),
            day: dt.day(),
            hour: dt.hour(),
            minute: dt.minutes(),
            second: dt.seconds(),
        })
    }

    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..2].copy_from_slice(&self.year.to_le_bytes());
        b[2] = self.month;
        b[3] = self.day;
        b[4] = self.hour;
        b[5] = self.minute;
        b[6] = self.second;
        b
    }

    /// `YYYY-MM-DD HH:MM:SS`, the form `sign-efi-sig-list -t` takes.
    pub fn to_text(self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `YYYYMMDDTHHMMSSZ`, for file names.
    pub fn to_compact(self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// An `EFI_SIGNATURE_LIST` of one X.509 certificate (DER) owned by `owner`: what
/// `cert-to-efi-sig-list -g OWNER cert.pem` writes.
pub fn x509_signature_list(owner: Guid, cert_der: &[u8]) -> Vec<u8> {
    // EFI_SIGNATURE_DATA: the owner GUID, then the certificate.
    let signature_size = 16 + cert_der.len();
    // SignatureType, SignatureListSize, SignatureHeaderSize, SignatureSize, then one entry.
    let list_size = 16 + 4 + 4 + 4 + signature_size;
    let mut out = Vec::with_capacity(list_size);
    out.extend_from_slice(&EFI_CERT_X509.bytes());
    out.extend_from_slice(&(list_size as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(signature_size as u32).to_le_bytes());
    out.extend_from_slice(&owner.bytes());
    out.extend_from_slice(cert_der);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_print_and_parse_as_efi_stores_them() {
        assert_eq!(
            EFI_GLOBAL_VARIABLE.to_string(),
            "8be4df61-93ca-11d2-aa0d-00e098032b8c"
        );
        // The first field is little-endian in memory.
        assert_eq!(&EFI_GLOBAL_VARIABLE.bytes()[..4], &[0x61, 0xdf, 0xe4, 0x8b]);
        let g = Guid::random();
        assert_eq!(Guid::parse(&g.to_string()), Some(g));
        assert_eq!(Guid::parse(&g.to_string().to_uppercase()), Some(g));
        assert_eq!(Guid::parse(&format!("{{{g}}}")), Some(g));
        assert_eq!(Guid::parse(&format!("urn:uuid:{g}")), Some(g));
        assert_eq!(Guid::parse(&g.to_string().replace('-', "")), Some(g));
        // sbctl (Go's uuid.ParseBytes) refuses these, so vault does too.
        for bad in [format!("{g}\n"), format!(" {g}"), format!("{{{g}}}\n")] {
            assert_eq!(Guid::parse(&bad), None, "{bad:?}");
        }
        assert_eq!(g.to_string().as_bytes()[14], b'4');
        for bad in [
            "",
            "8be4df61-93ca-11d2-aa0d-00e098032b8",
            "8be4df6193ca11d2aa0d00e098032b8",
            "{8be4df61-93ca-11d2-aa0d-00e098032b8c ",
            "8be4df61-93ca-11d2-aa0d-00e098032b8g",
            "+be4df61-93ca-11d2-aa0d-00e098032b8c",
        ] {
            assert_eq!(Guid::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn efi_time_is_utc_and_zero_padded() {
        let t =
            EfiTime::from_system_time(UNIX_EPOCH + std::time::Duration::from_secs(1_704_067_200))
                .unwrap();
        assert_eq!(t.to_text(), "2024-01-01 00:00:00");
        assert_eq!(
            t.to_bytes(),
            [0xe8, 0x07, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }
}
