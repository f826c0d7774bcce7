//! `vault host add NAME --initrd-ssh`: a separate SSH host key for the initrd (remote LUKS
//! unlock over SSH). It is never the main host key: NixOS copies initrd secrets, unencrypted,
//! into the initrd on `/boot`, so whoever reads `/boot` has it.

use std::path::{Path, PathBuf};

use toml_edit::{ArrayOfTables, DocumentMut, Item};

use crate::config_check::rules::INITRD_KEY_TARGET;
use crate::hosts::{self, Error};
use crate::keys::HostKey;
use crate::manifest::Manifest;

/// What `--initrd-ssh` did.
#[derive(Debug)]
pub struct InitrdKey {
    /// Records of host adds and removes a killed run left unfinished, undone (or finished)
    /// before this one.
    pub undone: Vec<(PathBuf, hosts::Outcome)>,
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    pub ssh_public: String,
    /// Where the entry places it on the installed system.
    pub target: String,
    /// The line for the NixOS configuration.
    pub nix_line: String,
}

/// Paths of the initrd key pair beside the manifest, relative and absolute.
pub fn key_paths(manifest_dir: &Path, name: &str) -> (String, PathBuf, PathBuf) {
    let rel = format!("hosts/{name}/initrd_ssh_host_ed25519_key");
    (
        rel.clone(),
        manifest_dir.join(&rel),
        manifest_dir.join(format!("{rel}.pub")),
    )
}

/// Generates the host's initrd key pair and adds the entry placing it at
/// [`INITRD_KEY_TARGET`]. The host must already be in the manifest.
pub fn add(manifest_path: &Path, name: &str) -> Result<InitrdKey, Error> {
    // A killed run's half-done edits are undone before vault.toml is read.
    let undone = hosts::sweep_records(manifest_path)?;
    let manifest = hosts::load_manifest(manifest_path)?;
    manifest.hosts.get(name).ok_or_else(|| Error::NotFound {
        name: name.into(),
        manifest: manifest_path.into(),
    })?;
    if let Some(e) = manifest
        .entries_for(name)
        .find(|e| e.target == INITRD_KEY_TARGET)
    {
        return Err(Error::Edit {
            path: manifest_path.into(),
            message: format!(
                "line {}: host {name} already places a key at {INITRD_KEY_TARGET}",
                e.line
            ),
        });
    }
    let dir = manifest.dir().to_path_buf();
    let (rel, key_path, pub_path) = key_paths(&dir, name);
    for p in [&key_path, &pub_path] {
        if p.exists() {
            return Err(crate::keys::Error::Exists { path: p.clone() }.into());
        }
    }
    let key = HostKey::generate(&format!("root@{name}-initrd"))?;
    let ssh_public = key.public_openssh_bare();
    let text = hosts::read(manifest_path)?;
    let new = edit_manifest(manifest_path, &text, name, &rel)?;

    hosts::add_key_pair(manifest_path, &key, (&key_path, &pub_path), &new)?;
    Ok(InitrdKey {
        undone,
        private_key: key_path,
        public_key: pub_path,
        ssh_public,
        target: INITRD_KEY_TARGET.into(),
        nix_line: format!("boot.initrd.network.ssh.hostKeys = [ \"{INITRD_KEY_TARGET}\" ];"),
    })
}

fn edit_manifest(path: &Path, text: &str, name: &str, rel: &str) -> Result<String, Error> {
    let edit = |m: &str| Error::Edit {
        path: path.into(),
        message: m.into(),
    };
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| edit(&e.to_string()))?;
    let entries = doc
        .get_mut("hosts")
        .and_then(|h| h.get_mut(name))
        .and_then(Item::as_table_mut)
        .ok_or_else(|| edit(&format!("`hosts.{name}` is not a table")))?
        .entry("entry")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| edit(&format!("`hosts.{name}.entry` is not an array of tables")))?;
    entries.push(hosts::entry_table(rel, INITRD_KEY_TARGET, "0600"));
    let out = doc.to_string();
    Manifest::from_str(path, &out).map_err(|e| {
        edit(&format!(
            "the edited manifest would be invalid ({e}); nothing was changed"
        ))
    })?;
    Ok(out)
}
