//! lanzaboote (`boot.lanzaboote.enable`): the Secure Boot keys must be placed, and usable.
//!
//! - `privateKeyFile` and `publicKeyFile`: lzbt signs with them through sbsign during the
//!   bootloader install inside nixos-install (no bind mounts there). With `allowUnsigned` it
//!   installs unsigned when neither exists, and signs, needing both, when one does. sbsign
//!   refuses a certificate that is not its key's.
//! - with `autoEnrollKeys`, sbctl reads the pkiBundle's `GUID` and its PK, KEK and db pairs
//!   (sbctl.conf: keydir and guid) in prepare-sb-auto-enroll.service at boot, after the
//!   mounts; with `autoGenerateKeys`, generate-sb-keys.service first creates a bundle that has
//!   no keys, so they are not required then. sbctl parses the GUID file's bytes as they are
//!   and reads PKCS#8 keys only; a pair that does not match signs enrolment updates the
//!   firmware refuses.

use std::io::Read;

use super::escape;
use super::eval::Evaluated;
use super::rules::{entry_hint, Early, Host, Placed};
use crate::secure_boot::efi::Guid;
use crate::secure_boot::{check_pair, keys, Error, Role};

/// An example of the GUID file's whole content.
const GUID_EXAMPLE: &str = "6a3c1e52-9f4b-4c7e-8d2a-0b1c2d3e4f50";

pub(super) fn lanzaboote(h: &mut Host<'_>, host: &str, ev: &Evaluated) {
    let Some(l) = &ev.lanzaboote else { return };
    let Some(bundle) = l.pki_bundle.as_deref().filter(|b| b.starts_with('/')) else {
        h.problem(
            "boot.lanzaboote.pkiBundle",
            "",
            None,
            "boot.lanzaboote is enabled, but boot.lanzaboote.pkiBundle names no directory".into(),
            "set boot.lanzaboote.pkiBundle = \"/var/lib/sbctl\" and place the Secure Boot keys there".into(),
        );
        return;
    };
    let bundle = bundle.trim_end_matches('/');
    let hint = |t: &str| entry_hint(host, t, "hosts/NAME/secureboot/…");
    const KEY: &str = "boot.lanzaboote.privateKeyFile";
    const CERT: &str = "boot.lanzaboote.publicKeyFile";
    let is_placed = |h: &Host<'_>, p: &Option<String>| {
        p.as_ref()
            .is_some_and(|p| h.placed.contains_key(&h.need(p).target))
    };
    let one_placed = is_placed(h, &l.private_key_file) || is_placed(h, &l.public_key_file);
    let mut signing = Vec::new();
    for (option, path) in [(KEY, &l.private_key_file), (CERT, &l.public_key_file)] {
        let Some(p) = path else { continue };
        if h.read_early(option, p, Early::BootloaderInstall) {
            let required = !l.allow_unsigned || one_placed;
            if let Some(pl) = h.locate(option, p, required, false, &hint) {
                signing.push((p.clone(), pl));
            }
        }
    }
    if let [(key, key_pl), (cert, cert_pl)] = &signing[..] {
        let consequence = "sbsign refuses to sign the boot files with them during the bootloader install inside nixos-install";
        let reads = format!(
            "{CERT} reads {} and {KEY} reads {}",
            escape(cert),
            escape(key)
        );
        pair(
            h,
            host,
            CERT,
            &reads,
            (cert, cert_pl),
            (key, key_pl),
            consequence,
        );
    }

    if !l.auto_enroll {
        return;
    }
    const ENROLL: &str = "boot.lanzaboote.autoEnrollKeys";
    let guid = format!("{bundle}/GUID");
    let guid_pl = h.locate(ENROLL, &guid, !l.auto_generate, false, &hint);
    let mut pairs = Vec::new();
    for role in Role::ALL {
        let n = role.name();
        let [key, cert] = ["key", "pem"].map(|ext| format!("{bundle}/keys/{n}/{n}.{ext}"));
        let key_pl = h.locate(ENROLL, &key, !l.auto_generate, false, &hint);
        let cert_pl = h.locate(ENROLL, &cert, !l.auto_generate, false, &hint);
        pairs.push((role, key, key_pl, cert, cert_pl));
    }
    if let Some(pl) = guid_pl.filter(|_| !h.reported.contains(&guid)) {
        check_guid(h, &guid, &pl);
    }
    for (role, key, key_pl, cert, cert_pl) in pairs {
        let (Some(key_pl), Some(cert_pl)) = (key_pl, cert_pl) else {
            continue;
        };
        if h.reported.contains(&key) || h.reported.contains(&cert) {
            continue;
        }
        pkcs8_only(h, &key, &key_pl);
        let consequence = match role {
            Role::Pk => "the firmware refuses the KEK that sbctl's enrolment signs with this key",
            Role::Kek => "the firmware refuses the db that sbctl's enrolment signs with this key",
            Role::Db => "the firmware trusts this certificate, not what the key signs",
        };
        let reads = format!("{ENROLL} reads {} and {}", escape(&cert), escape(&key));
        pair(
            h,
            host,
            ENROLL,
            &reads,
            (&cert, &cert_pl),
            (&key, &key_pl),
            consequence,
        );
    }
}

/// How to get a working pair back.
fn pair_hint(host: &str) -> String {
    format!(
        "put back the pair as it was made (from the secrets repository or a backup), or make new keys: move hosts/{host}/secure-boot aside, then `vault host add {host} --secure-boot` (docs/guide/secure-boot.md)"
    )
}

/// A certificate that is not its key's, or a file that is no key or certificate.
fn pair(
    h: &mut Host<'_>,
    host: &str,
    option: &str,
    reads: &str,
    (cert, cert_pl): (&str, &Placed),
    (key, key_pl): (&str, &Placed),
    consequence: &str,
) {
    let message = match check_pair(&cert_pl.source, &key_pl.source) {
        Ok(true) => return,
        Ok(false) => format!(
            "{reads}, but the certificate vault.toml places there ({}) does not belong to the key ({}; line {}): {consequence}",
            h.shown(&cert_pl.source),
            h.shown(&key_pl.source),
            key_pl.line
        ),
        Err(e) => {
            let (p, pl) = match &e {
                Error::Parse { path, .. } | Error::Io(crate::error::IoError { path, .. })
                    if path == &cert_pl.source =>
                {
                    (cert, cert_pl)
                }
                _ => (key, key_pl),
            };
            let why = match &e {
                Error::Parse { why, .. } => why.clone(),
                other => other.to_string(),
            };
            format!(
                "{option} reads {}, but the file vault.toml places there ({}, line {}) is not usable: {}",
                escape(p),
                h.shown(&pl.source),
                pl.line,
                escape(&why)
            )
        }
    };
    h.reported.insert(cert.to_owned());
    h.reported.insert(key.to_owned());
    h.problem(option, cert, Some(key_pl.line), message, pair_hint(host));
}

/// sbctl reads its keys as PKCS#8 (`PRIVATE KEY`); openssl's older default is PKCS#1.
fn pkcs8_only(h: &mut Host<'_>, key: &str, pl: &Placed) {
    let Ok(text) = keys::read_capped(&pl.source) else {
        return; // Reported by the pair check.
    };
    let pkcs1 = "-----BEGIN RSA PRIVATE KEY-----";
    if text.find("-----BEGIN ") != text.find(pkcs1) {
        return;
    }
    let src = h.shown(&pl.source);
    let quoted = crate::invocation::shell_quote(&src);
    let new = crate::invocation::shell_quote(&format!("{src}.pkcs8"));
    h.problem(
        "boot.lanzaboote.autoEnrollKeys",
        key,
        Some(pl.line),
        format!(
            "boot.lanzaboote.autoEnrollKeys reads {}, but the key vault.toml places there ({src}, line {}) is in PKCS#1 form ({pkcs1}); sbctl reads only PKCS#8 (-----BEGIN PRIVATE KEY-----)",
            escape(key),
            pl.line
        ),
        format!("convert it in place: (umask 077 && openssl pkcs8 -topk8 -nocrypt -in {quoted} -out {new}) && mv {new} {quoted}"),
    );
}

/// The forms sbctl's UUID parser (google/uuid `ParseBytes`) takes: `xxxxxxxx-xxxx-…`, in
/// braces, after `urn:uuid:`, or 32 hex digits.
fn sbctl_parses(text: &str) -> bool {
    Guid::parse(text).is_some()
}

/// sbctl parses the GUID file's bytes as a UUID, as they are.
fn check_guid(h: &mut Host<'_>, guid: &str, pl: &Placed) {
    let mut bytes = Vec::new();
    let read = std::fs::File::open(&pl.source).and_then(|f| f.take(4096).read_to_end(&mut bytes));
    let src = h.shown(&pl.source);
    let (why, hint) = match read {
        Err(e) => (
            format!("it cannot be read ({})", escape(&e.to_string())),
            format!("check that {src} is a readable file"),
        ),
        Ok(_) => {
            let text = std::str::from_utf8(&bytes).unwrap_or("");
            let trimmed = text.trim();
            if !sbctl_parses(trimmed) {
                (
                    format!("it holds no GUID (sbctl writes one like {GUID_EXAMPLE}, with no newline)"),
                    "put back the GUID file as it was made (from the secrets repository or a backup); it names the owner of your keys in the firmware".to_owned(),
                )
            } else if trimmed.len() == text.len() {
                return;
            } else if text.trim_start().len() == text.len() {
                (
                    "the GUID ends with a newline or spaces, and sbctl parses the file as it is"
                        .to_owned(),
                    format!(
                        "remove them: truncate -s {} {}",
                        trimmed.len(),
                        crate::invocation::shell_quote(&src)
                    ),
                )
            } else {
                (
                    "the GUID has spaces or newlines around it, and sbctl parses the file as it is"
                        .to_owned(),
                    format!(
                        "write the GUID alone: printf %s {} > {}",
                        crate::invocation::shell_quote(trimmed),
                        crate::invocation::shell_quote(&src)
                    ),
                )
            }
        }
    };
    h.problem(
        "boot.lanzaboote.autoEnrollKeys",
        guid,
        Some(pl.line),
        format!(
            "boot.lanzaboote.autoEnrollKeys reads {}, but the file vault.toml places there ({src}, line {}) is not usable: {why}",
            escape(guid),
            pl.line
        ),
        hint,
    );
}

#[cfg(test)]
mod tests {
    use super::sbctl_parses;

    #[test]
    fn the_guid_forms_sbctl_parses() {
        for ok in [
            super::GUID_EXAMPLE,
            "{6a3c1e52-9f4b-4c7e-8d2a-0b1c2d3e4f50}",
            "urn:uuid:6a3c1e52-9f4b-4c7e-8d2a-0b1c2d3e4f50",
            "6a3c1e529f4b4c7e8d2a0b1c2d3e4f50",
        ] {
            assert!(sbctl_parses(ok), "{ok}");
        }
        for bad in [
            "",
            "laptop",
            "6a3c1e52-9f4b-4c7e-8d2a-0b1c2d3e4f5",
            "urn:uuid: 6a3c1e52-9f4b-4c7e-8d2a-0b1c2d3e4f50",
        ] {
            assert!(!sbctl_parses(bad), "{bad}");
        }
    }
}
