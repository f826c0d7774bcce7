//! Checks `vault pack` makes on a plan before it asks for a passphrase: an output that would
//! destroy something, a plan with nothing in it, a weak key derivation, and the warnings worth
//! reading before the stick is written.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::PackPlan;
use crate::archive::Kind;
use crate::bundle::KdfParams;
use crate::manifest::{Manifest, Stage};
use crate::{Error, Result};

/// Refuses an output that exists (unless `force`), and always one that is an input: the
/// manifest, a source file, or one of `inputs` (name, path), such as the passphrase file.
/// Inputs are compared by device and inode, so another spelling or a hard link is caught.
pub fn check_output(
    plan: &PackPlan,
    manifest: &Path,
    inputs: &[(&str, &Path)],
    out: &Path,
    force: bool,
) -> Result<()> {
    let Some(id) = output_id(out, force)? else {
        return Ok(());
    };
    if is_same(manifest, id) {
        return Err(refuse_input(
            out,
            format!("the manifest {}", manifest.display()),
        ));
    }
    for (name, p) in inputs {
        if is_same(p, id) {
            return Err(refuse_input(out, format!("the {name} {}", p.display())));
        }
    }
    for ((source, line), item) in plan
        .sources
        .iter()
        .zip(&plan.lines)
        .zip(&plan.manifest.items)
    {
        if let Some(s) = source {
            if is_same(s, id) {
                return Err(refuse_input(
                    out,
                    format!(
                        "the source {} of {} (entry on line {line} of {})",
                        s.display(),
                        item.target,
                        manifest.display()
                    ),
                ));
            }
        }
    }
    replace_if_forced(out, force)
}

/// The device and inode of the file at `out`, for comparing inputs with; `None` when there
/// is nothing to protect: no file, or (with `force`) a dangling link, whose replacement harms
/// nothing it points to. A dangling link without `force` is an existing output.
pub(super) fn output_id(out: &Path, force: bool) -> Result<Option<(u64, u64)>> {
    match fs::metadata(out) {
        Ok(m) => Ok(Some((m.dev(), m.ino()))),
        Err(_) => match fs::symlink_metadata(out) {
            Ok(_) if !force => Err(exists(out)),
            _ => Ok(None),
        },
    }
}

/// Whether `p` is the file whose device and inode are `id` (another spelling, a hard link).
pub(super) fn is_same(p: &Path, id: (u64, u64)) -> bool {
    fs::metadata(p).is_ok_and(|m| (m.dev(), m.ino()) == id)
}

/// The refusal to write over an input; `what` names it ("the manifest vault.toml").
pub(super) fn refuse_input(out: &Path, what: String) -> Error {
    Error::Declined {
        why: format!(
            "refusing to write the bundle to {}: it is {what}",
            out.display()
        ),
        hint: Some("choose another output with -o FILE".into()),
    }
}

/// An existing output that is no input: replaced with `force`, refused without.
pub(super) fn replace_if_forced(out: &Path, force: bool) -> Result<()> {
    if force {
        Ok(())
    } else {
        Err(exists(out))
    }
}

pub(super) fn exists(out: &Path) -> Error {
    Error::Declined {
        why: format!("{} already exists", out.display()),
        hint: Some("choose another output with -o FILE, or pass --force to replace it".into()),
    }
}

/// A plan that selects no file would make a bundle that places nothing.
pub fn check_not_empty(m: &Manifest, plan: &PackPlan) -> Result<()> {
    if plan.manifest.items.iter().any(|i| i.kind == Kind::File) {
        return Ok(());
    }
    let hosts = if plan.manifest.hosts.is_empty() {
        "no host".to_owned()
    } else {
        format!("host(s) {}", plan.manifest.hosts.join(", "))
    };
    Err(Error::manifest(
        &m.path,
        format!("nothing to pack: the shared entries and those of {hosts} select no file"),
    ))
}

/// Things that pack fine but are probably not what the user meant, one line each.
pub fn warnings(m: &Manifest, plan: &PackPlan) -> Vec<String> {
    let mut out = Vec::new();
    for h in &plan.manifest.hosts {
        if m.hosts.get(h).is_some_and(|h| h.entries.is_empty()) {
            out.push(format!(
                "host {h} has no entries of its own in {}; its bundle gets only the shared ones (remove [hosts.{h}] if it is not a real host)",
                m.path.display()
            ));
        }
    }
    for (h, id) in &plan.manifest.identities {
        for (kind, v, why) in id.without_junk().1 {
            out.push(format!(
                "host {h}: the {} \"{}\" in [hosts.{h}.identity] is {why}: it never identifies a machine, so remove it",
                kind.describe(),
                crate::escape::escape(&v)
            ));
        }
    }
    for (item, source) in plan.manifest.items.iter().zip(&plan.sources) {
        let Some(source) = source else { continue };
        if item.stage == Stage::Disk
            && is_passphrase_target(&item.target)
            && ends_in_newline(source)
        {
            out.push(format!(
                "{} (for {}) ends with a newline, which LUKS takes as part of the passphrase when disko reads the file, but you will not type it at boot; write it without one (printf '%s' 'PASSPHRASE' > FILE)",
                source.display(),
                item.target
            ));
        }
    }
    out
}

/// Private keys placed with a mode that lets others read or write them: refused, before the
/// passphrase, with every such entry named (a key that other users of the installed system
/// can read is a key they hold). Group access is a warning (some services share a key with a
/// group); the returned lines are those warnings. A private key is recognised by its first
/// bytes: PEM or OpenSSH `PRIVATE KEY` armor, or an age identity (`AGE-SECRET-KEY-1`).
pub fn check_key_modes(m: &Manifest, plan: &PackPlan) -> Result<Vec<String>> {
    let mut refused = Vec::new();
    let mut warnings = Vec::new();
    for (((item, source), line), &private_key) in plan
        .manifest
        .items
        .iter()
        .zip(&plan.sources)
        .zip(&plan.lines)
        .zip(&plan.private_keys)
    {
        let Some(source) = source else { continue };
        if item.kind != Kind::File || item.mode & 0o077 == 0 || !private_key {
            continue;
        }
        let what = format!(
            "{} (line {line} of {}) is a private key ({}) placed with mode {:04o}",
            item.target,
            m.path.display(),
            source.display(),
            item.mode
        );
        if item.mode & 0o007 != 0 {
            refused.push(format!(
                "\n  {what}: every user of the installed system could read it"
            ));
        } else {
            warnings.push(format!(
                "{what}: its group can read it; mode = \"0600\" keeps it to its owner"
            ));
        }
    }
    if refused.is_empty() {
        return Ok(warnings);
    }
    Err(Error::Declined {
        why: format!("private keys others could read:{}", refused.concat()),
        hint: Some(format!(
            "set mode = \"0600\" on those entries in {} (or \"0640\" with a group, if a service needs it)",
            m.path.display()
        )),
    })
}

/// How much of a file's start [`starts_like_private_key`] looks at.
pub(super) const KEY_HEAD: usize = 4096;

/// Whether `head`, a file's first [`KEY_HEAD`] bytes (or all of a shorter file), starts like
/// a private key: its first line that is neither empty nor a comment. The hashing pass
/// ([`super::plan`]) calls it on the bytes it reads anyway.
pub(super) fn starts_like_private_key(head: &[u8]) -> bool {
    // Line by line: only the lines up to the first that counts are decoded.
    head.split(|&b| b == b'\n')
        .map(String::from_utf8_lossy)
        .find(|l| !l.trim().is_empty() && !l.trim().starts_with('#'))
        .is_some_and(|l| {
            let l = l.trim();
            (l.starts_with("-----BEGIN ") && l.contains("PRIVATE KEY-----"))
                || l.starts_with("AGE-SECRET-KEY-1")
        })
}

/// Disk-stage files disko or cryptsetup read as a passphrase, by name.
fn is_passphrase_target(target: &str) -> bool {
    let name = target
        .rsplit('/')
        .next()
        .unwrap_or(target)
        .to_ascii_lowercase();
    ["password", "passphrase", "passwd", "luks"]
        .iter()
        .any(|w| name.contains(w))
}

fn ends_in_newline(path: &Path) -> bool {
    let Ok(mut f) = fs::File::open(path) else {
        return false;
    };
    let mut last = [0u8; 1];
    f.seek(SeekFrom::End(-1)).is_ok() && f.read_exact(&mut last).is_ok() && last[0] == b'\n'
}

/// Why `kdf` is weaker than [`KdfParams::DEFAULT`], or `None` if it is not: less memory, or
/// less memory × passes (the work one guess costs an attacker).
pub fn kdf_weakness(kdf: &KdfParams) -> Option<String> {
    let d = KdfParams::DEFAULT;
    let work = |k: &KdfParams| u64::from(k.m_kib) * u64::from(k.t);
    if kdf.m_kib < d.m_kib {
        Some(format!(
            "{} MiB of memory is less than the default {} MiB, so each guess at the passphrase costs an attacker's GPU less memory",
            kdf.m_kib / 1024,
            d.m_kib / 1024
        ))
    } else if work(kdf) < work(&d) {
        Some(format!(
            "{} MiB × {} passes is less work per guess than the default {} MiB × {} passes",
            kdf.m_kib / 1024,
            kdf.t,
            d.m_kib / 1024,
            d.t
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weaker_means_less_memory_or_less_total_work() {
        let d = KdfParams::DEFAULT;
        assert!(kdf_weakness(&d).is_none());
        assert!(kdf_weakness(&KdfParams::STRONG).is_none());
        let less_mem = KdfParams {
            m_kib: d.m_kib / 2,
            t: d.t * 4,
            ..d
        };
        assert!(kdf_weakness(&less_mem).unwrap().contains("memory"));
        let one_pass = KdfParams { t: 1, ..d };
        assert!(kdf_weakness(&one_pass).unwrap().contains("passes"));
        let more_mem_fewer_passes = KdfParams {
            m_kib: d.m_kib * 4,
            t: 1,
            ..d
        };
        assert!(kdf_weakness(&more_mem_fewer_passes).is_none());
    }

    #[test]
    fn private_keys_by_their_first_line_that_counts() {
        let yes: [&[u8]; 4] = [
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blb\n",
            b"# created: 2024\r\n\r\n  AGE-SECRET-KEY-1QQQ\r\n",
            b"\n\n-----BEGIN RSA PRIVATE KEY-----",
            b"# \xff\xfe not UTF-8\n-----BEGIN EC PRIVATE KEY-----\n",
        ];
        for head in yes {
            assert!(starts_like_private_key(head), "{head:?}");
        }
        let no: [&[u8]; 4] = [
            b"",
            b"ssh-ed25519 AAAA host\n",
            b"hello\n-----BEGIN OPENSSH PRIVATE KEY-----\n",
            b"-----BEGIN PUBLIC KEY-----\n",
        ];
        for head in no {
            assert!(!starts_like_private_key(head), "{head:?}");
        }
    }

    #[test]
    fn passphrase_targets_by_name() {
        assert!(is_passphrase_target("/tmp/disko-password"));
        assert!(is_passphrase_target("/run/luks.key"));
        assert!(!is_passphrase_target("/run/keys/deploy_key"));
    }
}
