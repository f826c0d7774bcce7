//! Signed updates of Secure Boot variables (`.auth` files): an `EFI_VARIABLE_AUTHENTICATION_2`
//! header (the time stamp and a PKCS#7 SignedData) followed by the new content, an EFI
//! signature list (UEFI 2.10 §8.2.2). Firmware writes it with `SetVariable` only if the
//! signature verifies against the key the variable's place in the hierarchy demands: PK for
//! `PK` (in setup mode, the new PK itself) and `KEK`, a KEK for `db` and `dbx`.
//!
//! The signature is what `sign-efi-sig-list` (efitools) makes, byte for byte: a detached
//! PKCS#7 SignedData without signed attributes, SHA-256, RSA PKCS#1 v1.5, the signer's
//! certificate included, over `name (UTF-16LE, no NUL) ‖ vendor GUID ‖ attributes (u32 LE) ‖
//! EFI_TIME ‖ content`.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::CmsVersion;
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{OctetString, SetOfVec};
use der::oid::ObjectIdentifier;
use der::Encode;

use super::efi::{
    EfiTime, Guid, EFI_CERT_TYPE_PKCS7, EFI_GLOBAL_VARIABLE, EFI_IMAGE_SECURITY_DATABASE,
};
use super::keys::alg_with_null;
use super::{Error, KeyPair};

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// `NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS | TIME_BASED_AUTHENTICATED_WRITE_ACCESS`.
pub const ATTRIBUTES: u32 = 0x27;
/// `EFI_VARIABLE_APPEND_WRITE`: add to the variable instead of replacing it.
pub const APPEND_WRITE: u32 = 0x40;

/// `WIN_CERTIFICATE.wRevision` and `wCertificateType = WIN_CERT_TYPE_EFI_GUID`.
const WIN_CERT_REVISION: u16 = 0x0200;
const WIN_CERT_TYPE_EFI_GUID: u16 = 0x0ef1;

/// A Secure Boot variable: its name and vendor GUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    pub name: &'static str,
    pub vendor: Guid,
}

pub const PK: Variable = Variable {
    name: "PK",
    vendor: EFI_GLOBAL_VARIABLE,
};
pub const KEK: Variable = Variable {
    name: "KEK",
    vendor: EFI_GLOBAL_VARIABLE,
};
pub const DB: Variable = Variable {
    name: "db",
    vendor: EFI_IMAGE_SECURITY_DATABASE,
};
pub const DBX: Variable = Variable {
    name: "dbx",
    vendor: EFI_IMAGE_SECURITY_DATABASE,
};

/// The `.auth` bytes that set `var` to `content` (or add `content` to it, with `append`),
/// time-stamped `time` and signed by `signer`.
pub fn signed_update(
    var: Variable,
    content: &[u8],
    time: EfiTime,
    append: bool,
    signer: &KeyPair,
) -> Result<Vec<u8>, Error> {
    let attributes = ATTRIBUTES | if append { APPEND_WRITE } else { 0 };
    let mut signed = Vec::with_capacity(64 + content.len());
    for unit in var.name.encode_utf16() {
        signed.extend_from_slice(&unit.to_le_bytes());
    }
    signed.extend_from_slice(&var.vendor.bytes());
    signed.extend_from_slice(&attributes.to_le_bytes());
    signed.extend_from_slice(&time.to_bytes());
    signed.extend_from_slice(content);
    let signature = signer.sign_sha256(&signed)?;
    let pkcs7 = signed_data(signer, signature)
        .map_err(|e| Error::crypto(format!("encoding the signature of {}", var.name), e))?;

    // WIN_CERTIFICATE_UEFI_GUID: dwLength, wRevision, wCertificateType, CertType, CertData.
    let cert_len = 4 + 2 + 2 + 16 + pkcs7.len();
    let mut out = Vec::with_capacity(16 + cert_len + content.len());
    out.extend_from_slice(&time.to_bytes());
    out.extend_from_slice(&(cert_len as u32).to_le_bytes());
    out.extend_from_slice(&WIN_CERT_REVISION.to_le_bytes());
    out.extend_from_slice(&WIN_CERT_TYPE_EFI_GUID.to_le_bytes());
    out.extend_from_slice(&EFI_CERT_TYPE_PKCS7.bytes());
    out.extend_from_slice(&pkcs7);
    out.extend_from_slice(content);
    Ok(out)
}

/// The DER SignedData (not wrapped in a ContentInfo, as UEFI wants it) carrying `signature`.
fn signed_data(signer: &KeyPair, signature: Vec<u8>) -> der::Result<Vec<u8>> {
    let tbs = &signer.certificate().tbs_certificate;
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer.clone(),
            serial_number: tbs.serial_number.clone(),
        }),
        digest_alg: alg_with_null(SHA256),
        signed_attrs: None,
        signature_algorithm: alg_with_null(RSA_ENCRYPTION),
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let mut certificates = SetOfVec::new();
    certificates.insert(CertificateChoices::Certificate(
        signer.certificate().clone(),
    ))?;
    let mut digests = SetOfVec::new();
    digests.insert(alg_with_null(SHA256))?;
    let mut infos = SetOfVec::new();
    infos.insert(signer_info)?;
    SignedData {
        version: CmsVersion::V1,
        digest_algorithms: digests,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(certificates)),
        crls: None,
        signer_infos: SignerInfos(infos),
    }
    .to_der()
}
