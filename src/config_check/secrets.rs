//! The secret files a configuration uses (`sops.secrets`, `age.secrets`) must open with the
//! keys the host will have: the files vault places where the configuration reads its keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::escape;
use super::eval::{AgeOptions, SopsOptions};
use super::rules::Host;
use crate::keys::age::Identities;
use crate::rekey::sops;
use crate::repo::sops::format::Format;

/// A store path shown as the file inside the flake (`secrets/wifi.yaml`).
fn display_file(f: &str) -> String {
    let shown = match f.strip_prefix("/nix/store/") {
        Some(rest) => match rest.split_once('/') {
            Some((_, inner)) => inner.to_owned(),
            None => rest.split_once('-').map_or(rest, |(_, n)| n).to_owned(),
        },
        None => f.to_owned(),
    };
    escape(&shown)
}

pub(super) fn quoted(prefix: &str, name: &str) -> String {
    format!("{prefix}.\"{}\"", escape(name))
}

/// "`sops.secrets."a"`" or "`sops.secrets."a"` (and 2 more)".
fn names_of(prefix: &str, names: &[&String]) -> String {
    let first = quoted(prefix, names.first().map_or("", |s| s.as_str()));
    match names.len() {
        0 | 1 => first,
        n => format!("{first} (and {} more)", n - 1),
    }
}

/// The bytes of a secret file the configuration uses: its store copy, or the placed source
/// when the configuration names a path on the host that vault places.
fn read_secret(h: &Host<'_>, file: &str) -> std::io::Result<Vec<u8>> {
    if !file.starts_with("/nix/store/") {
        if let Some(pl) = h.placed.get(&h.need(file).target) {
            return std::fs::read(&pl.source);
        }
    }
    std::fs::read(file)
}

pub(super) fn check_sops_files(h: &mut Host<'_>, s: &SopsOptions, ids: &Identities) {
    let mut files: BTreeMap<(&str, Option<&str>), Vec<&String>> = BTreeMap::new();
    for (name, secret) in &s.secrets {
        let Some(f) = secret.file.as_deref() else {
            let option = quoted("sops.secrets", name);
            let msg = format!("{option} names no sopsFile, and sops.defaultSopsFile is not set");
            h.problem(
                &option,
                "",
                None,
                msg,
                "set sops.defaultSopsFile or the secret's sopsFile".into(),
            );
            continue;
        };
        files
            .entry((f, secret.format.as_deref()))
            .or_default()
            .push(name);
    }
    for ((file, format), names) in files {
        let option = names_of("sops.secrets", &names);
        let shown = display_file(file);
        let fail = |h: &mut Host<'_>, why: String, hint: String| {
            let msg = format!("{option} uses {shown}, {why}");
            h.problem(&option, &shown, None, msg, hint);
        };
        let bytes = match read_secret(h, file) {
            Ok(b) => b,
            Err(e) => {
                fail(
                    h,
                    format!("which cannot be read: {e}"),
                    "check the path in the configuration".into(),
                );
                continue;
            }
        };
        let fmt = match format {
            Some("yaml") => Format::Yaml,
            Some("json" | "binary") => Format::Json,
            Some("dotenv") => Format::Dotenv,
            Some("ini") => Format::Ini,
            _ => Format::of(Path::new(file)),
        };
        let groups = match String::from_utf8(bytes).ok().map(|t| fmt.read(&t)) {
            Some(Ok(Some(g))) => g,
            Some(Ok(None)) | None => {
                fail(
                    h,
                    "which is not sops-encrypted".into(),
                    "encrypt it with `sops --encrypt --in-place`".into(),
                );
                continue;
            }
            Some(Err(why)) => {
                fail(
                    h,
                    format!("whose sops metadata is damaged: {}", escape(&why)),
                    "restore it from version control".into(),
                );
                continue;
            }
        };
        // sops needs every key group (its default threshold); the host must open one entry of each.
        let host = h.name.to_owned();
        if groups.is_empty() || groups.iter().any(|g| sops::open_group(g, ids).is_err()) {
            fail(
                h,
                format!("which {host}'s key cannot open; run `vault rekey`"),
                format!("its .sops.yaml creation rule must list {host} (`vault host add {host}` adds it), then `vault rekey` re-encrypts it"),
            );
        }
    }
}

/// The identities `age -i FILE` makes of each file, as agenix calls it: an SSH private key is
/// an SSH identity only (not its ssh-to-age X25519 form, which sops-nix uses), an age key file
/// its `AGE-SECRET-KEY-1…` lines. The files were loaded once already, so they are usable.
fn agenix_identities(sources: &[PathBuf]) -> Vec<Box<dyn age::Identity + Send + Sync>> {
    let mut out: Vec<Box<dyn age::Identity + Send + Sync>> = Vec::new();
    for p in sources {
        let Ok(bytes) = std::fs::read(p).map(Zeroizing::new) else {
            continue;
        };
        if bytes.windows(16).any(|w| w == b"PRIVATE KEY-----") {
            if let Ok(id @ age::ssh::Identity::Unencrypted(_)) =
                age::ssh::Identity::from_buffer(&bytes[..], None)
            {
                out.push(Box::new(id));
            }
        } else if let Ok(ids) = age::IdentityFile::from_buffer(&bytes[..])
            .and_then(|f| f.into_identities().map_err(std::io::Error::other))
        {
            out.extend(ids);
        }
    }
    out
}

fn age_decrypt(bytes: &[u8], ids: &[Box<dyn age::Identity + Send + Sync>]) -> Result<(), String> {
    let d = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(bytes))
        .map_err(|e| format!("not an age file: {e}"))?;
    let mut r = d
        .decrypt(ids.iter().map(|b| b.as_ref() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => "no identity given opens it".to_owned(),
            other => other.to_string(),
        })?;
    let mut sink = Zeroizing::new(Vec::new());
    std::io::Read::read_to_end(&mut r, &mut sink).map_err(|e| format!("corrupt payload: {e}"))?;
    Ok(())
}

pub(super) fn check_age_files(h: &mut Host<'_>, a: &AgeOptions, sources: &[PathBuf]) {
    let ids = agenix_identities(sources);
    let mut files: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for (name, f) in &a.secrets {
        match f {
            Some(f) => files.entry(f.as_str()).or_default().push(name),
            None => {
                let option = quoted("age.secrets", name);
                let msg = format!("{option} names no file");
                h.problem(&option, "", None, msg, "set the secret's file".into());
            }
        }
    }
    let host = h.name.to_owned();
    for (file, names) in files {
        let option = names_of("age.secrets", &names);
        let shown = display_file(file);
        let (why, hint) = match read_secret(h, file) {
            Err(e) => (format!("which cannot be read: {e}"), "check the path in the configuration".to_owned()),
            Ok(bytes) => match age_decrypt(&bytes, &ids) {
                Ok(_) => continue,
                Err(why) => (
                    format!("which {host}'s key cannot open ({}); run `vault rekey`", escape(&why)),
                    format!("secrets.nix must list {host}'s key for this file, then `vault rekey` re-encrypts it"),
                ),
            },
        };
        let msg = format!("{option} uses {shown}, {why}");
        h.problem(&option, &shown, None, msg, hint);
    }
}
