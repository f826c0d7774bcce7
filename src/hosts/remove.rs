//! `vault host remove`: the host's table out of `vault.toml`, its lines out of `.sops.yaml` and
//! the agenix keys file, and (asked for) its key files.

use std::path::{Path, PathBuf};

use toml_edit::DocumentMut;

use super::manifest_edit::remove_host_table;
use super::{load_manifest, read, replace, Error};
use crate::repo::agenix::keys_file;
use crate::repo::sops::splice;

/// What `vault host remove` did.
#[derive(Debug, Default)]
pub struct Removed {
    /// Whether vault.toml had the host (else only the secrets repo did).
    pub in_manifest: bool,
    pub sops_lines: usize,
    pub keys_lines: usize,
    /// The agenix keys file looked at (given, or the manifest's `agenix_keys`).
    pub keys_file: Option<PathBuf>,
    pub deleted_keys: Vec<PathBuf>,
}

/// Removes `[hosts.NAME]` from the manifest and the lines `add` wrote elsewhere. Key files
/// are deleted only with `delete_keys`.
pub fn remove(
    manifest_path: &Path,
    name: &str,
    sops_config: Option<&Path>,
    agenix_keys: Option<&Path>,
    delete_keys: bool,
) -> Result<Removed, Error> {
    let manifest = load_manifest(manifest_path)?;
    // A host the secrets repo knows but vault.toml does not (a secrets folder started anew):
    // its lines in the repo still go, by its name.
    let host = manifest.hosts.get(name);
    let mut writes = Vec::new();
    let mut removed = Removed {
        in_manifest: host.is_some(),
        ..Removed::default()
    };
    if host.is_some() {
        let text = read(manifest_path)?;
        let mut doc: DocumentMut = text
            .parse()
            .map_err(|e: toml_edit::TomlError| Error::edit(manifest_path, e.to_string()))?;
        remove_host_table(&mut doc, name);
        writes.push((manifest_path.to_path_buf(), doc.to_string()));
    }
    let sops_path = sops_config
        .map(Path::to_path_buf)
        .or_else(|| manifest.secrets.sops_config.clone());
    if let Some(sp) = &sops_path {
        let (new, n) =
            splice::remove_recipient(&read(sp)?, name).map_err(|m| Error::edit(sp, m))?;
        removed.sops_lines = n;
        if n > 0 {
            writes.push((sp.clone(), new));
        }
    }
    let pub_path = host.and_then(|h| h.ssh_host_key.as_ref()).map(|k| {
        let mut p = k.clone().into_os_string();
        p.push(".pub");
        PathBuf::from(p)
    });
    let keys_path = agenix_keys
        .map(Path::to_path_buf)
        .or_else(|| manifest.secrets.agenix_keys.clone());
    if let Some(kp) = &keys_path {
        // The key of the .pub beside the host key, and, since the .pub may already hold a
        // replacement (a key rotation), whatever key converts to the recipient vault.toml
        // recorded, or sits under the host's name.
        let pub_keys: Vec<String> = pub_path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .into_iter()
            .collect();
        let (new, n) = keys_file::remove_host(
            kp,
            &read(kp)?,
            name,
            &pub_keys,
            host.and_then(|h| h.age_recipient.as_deref()),
        )
        .map_err(|m| Error::edit(kp, m))?;
        removed.keys_lines = n;
        removed.keys_file = Some(kp.clone());
        if n > 0 {
            writes.push((kp.clone(), new));
        }
    }
    if host.is_none() && removed.sops_lines + removed.keys_lines == 0 {
        return Err(Error::NotFound {
            name: name.into(),
            manifest: manifest_path.into(),
        });
    }
    for (p, t) in &writes {
        replace(p, t)?;
    }
    if delete_keys {
        let key = host.and_then(|h| h.ssh_host_key.as_ref());
        for p in key.iter().copied().chain(pub_path.iter()) {
            if p.exists() {
                std::fs::remove_file(p).map_err(|e| Error::io("cannot delete", p, e))?;
                removed.deleted_keys.push(p.clone());
            }
        }
    }
    Ok(removed)
}
