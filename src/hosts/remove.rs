//! `vault host remove`: the host's table out of `vault.toml`, its lines out of `.sops.yaml` and
//! the agenix keys file, and (asked for) its key files.

use std::path::{Path, PathBuf};

use toml_edit::DocumentMut;

use super::manifest_edit::remove_host_table;
use super::{journal, load_manifest, read, replace, Error};
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
    /// Records of host adds and removes a killed run left unfinished, undone (or finished)
    /// before this one.
    pub undone: Vec<(PathBuf, super::Outcome)>,
}

/// Removes `[hosts.NAME]` from the manifest and the lines `add` wrote elsewhere. Key files
/// are deleted only with `delete_keys`, as the commit step. Like `add`, every edit is undone on
/// an error or a caught signal, and after SIGKILL by the next `host add` or `host remove`
/// ([`super::journal`]).
pub fn remove(
    manifest_path: &Path,
    name: &str,
    sops_config: Option<&Path>,
    agenix_keys: Option<&Path>,
    delete_keys: bool,
) -> Result<Removed, Error> {
    let flags: Vec<&Path> = sops_config.into_iter().chain(agenix_keys).collect();
    let undone = journal::sweep(manifest_path, &flags)?;
    let manifest = load_manifest(manifest_path)?;
    // A host the secrets repo knows but vault.toml does not (a secrets folder started anew):
    // its lines in the repo still go, by its name.
    let host = manifest.hosts.get(name);
    let mut writes = Vec::new();
    // The text of each file before its edit, for the undo record.
    let mut originals = Vec::new();
    let mut removed = Removed {
        in_manifest: host.is_some(),
        undone,
        ..Removed::default()
    };
    if host.is_some() {
        let text = read(manifest_path)?;
        let mut doc: DocumentMut = text
            .parse()
            .map_err(|e: toml_edit::TomlError| Error::edit(manifest_path, e.to_string()))?;
        remove_host_table(&mut doc, name);
        writes.push((manifest_path.to_path_buf(), doc.to_string()));
        originals.push((manifest_path.to_path_buf(), text));
    }
    let sops_path = sops_config
        .map(Path::to_path_buf)
        .or_else(|| manifest.secrets.sops_config.clone());
    if let Some(sp) = &sops_path {
        let text = read(sp)?;
        let (new, n) = splice::remove_recipient(&text, name).map_err(|m| Error::edit(sp, m))?;
        removed.sops_lines = n;
        if n > 0 {
            writes.push((sp.clone(), new));
            originals.push((sp.clone(), text));
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
        let text = read(kp)?;
        let (new, n) = keys_file::remove_host(
            kp,
            &text,
            name,
            &pub_keys,
            host.and_then(|h| h.age_recipient.as_deref()),
        )
        .map_err(|m| Error::edit(kp, m))?;
        removed.keys_lines = n;
        removed.keys_file = Some(kp.clone());
        if n > 0 {
            writes.push((kp.clone(), new));
            originals.push((kp.clone(), text));
        }
    }
    if host.is_none() && removed.sops_lines + removed.keys_lines == 0 {
        // Killed while deleting its keys, and finished by the sweep above: removed now.
        let finished = super::Outcome::Finished(name.to_owned());
        if removed.undone.iter().any(|(_, o)| *o == finished) {
            return Ok(removed);
        }
        return Err(Error::NotFound {
            name: name.into(),
            manifest: manifest_path.into(),
        });
    }
    let delete: Vec<PathBuf> = match delete_keys {
        true => host
            .and_then(|h| h.ssh_host_key.as_ref())
            .into_iter()
            .chain(pub_path.iter())
            .filter(|p| std::fs::symlink_metadata(p).is_ok())
            .cloned()
            .collect(),
        false => Vec::new(),
    };
    let undo = journal::Undo {
        restore: originals
            .into_iter()
            .map(|(p, t)| (journal::bytes(&p), t))
            .collect(),
        delete: delete.iter().map(|p| journal::bytes(p)).collect(),
        removes: Some(name.to_owned()),
        ..journal::Undo::default()
    };
    let journal = journal::Journal::begin(manifest_path, undo)?;
    for (p, t) in &writes {
        journal.check()?;
        replace(p, t)?;
    }
    journal.commit_with(|| {
        for p in &delete {
            std::fs::remove_file(p).map_err(|e| Error::io("cannot delete", p, e))?;
        }
        Ok(())
    })?;
    removed.deleted_keys = delete;
    Ok(removed)
}
