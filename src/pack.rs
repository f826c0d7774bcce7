//! `vault pack`: from a validated `vault.toml` to a bundle file.
//!
//! [`plan`] expands the manifest (directories recursively), checks every source and hashes
//! every file, so all errors surface before a byte is written. [`write_bundle`] then streams
//! tar → zstd → age into a 0600 temporary beside the output and renames it into place.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use age_core::secrecy::SecretString;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::archive::{self, write::Compression, BundleManifest, Item, Kind};
use crate::bundle::{self, KdfParams};
use crate::manifest::{Entry, Manifest};
use crate::{Error, Result};

/// Default mode of a file entry that names none.
pub const DEFAULT_FILE_MODE: u32 = 0o600;

/// What will go into the bundle.
#[derive(Debug, Clone)]
pub struct PackPlan {
    pub manifest: BundleManifest,
    /// The file on disk for each item (`None` for directories).
    pub sources: Vec<Option<PathBuf>>,
    pub total_bytes: u64,
}

/// Expands and checks the manifest for `hosts` (empty: all of them).
pub fn plan(m: &Manifest, hosts: &[String]) -> Result<PackPlan> {
    let selected: Vec<String> = if hosts.is_empty() {
        m.hosts.keys().cloned().collect()
    } else {
        for h in hosts {
            if !m.hosts.contains_key(h) {
                let known: Vec<&str> = m.hosts.keys().map(String::as_str).collect();
                return Err(Error::manifest(
                    &m.path,
                    format!("host {h} is not in this manifest (hosts: {})", known.join(", ")),
                ));
            }
        }
        hosts.to_vec()
    };
    let mut items = Vec::new();
    let mut sources = Vec::new();
    for e in &m.shared {
        expand(m, e, None, &mut items, &mut sources)?;
    }
    for h in &selected {
        for e in &m.hosts[h].entries {
            expand(m, e, Some(h), &mut items, &mut sources)?;
        }
    }

    // Hash in parallel: reading the files is most of a large pack's first pass.
    let hashed: Vec<Result<Option<(u64, String)>>> = sources
        .par_iter()
        .map(|s| match s {
            None => Ok(None),
            Some(p) => hash_file(p).map(Some),
        })
        .collect();
    let mut total = 0u64;
    for (item, h) in items.iter_mut().zip(hashed) {
        if let Some((size, sha)) = h? {
            item.size = size;
            item.sha256 = Some(sha);
            total += size;
        }
    }
    let manifest = BundleManifest {
        format: archive::FORMAT,
        created_by: format!("vault {}", env!("CARGO_PKG_VERSION")),
        hosts: selected,
        items,
    };
    manifest
        .validate(&archive::Limits::default())
        .map_err(|why| Error::manifest(&m.path, why))?;
    Ok(PackPlan {
        manifest,
        sources,
        total_bytes: total,
    })
}

fn expand(m: &Manifest, e: &Entry, host: Option<&String>, items: &mut Vec<Item>, sources: &mut Vec<Option<PathBuf>>) -> Result<()> {
    let at = |msg: String| Error::manifest(&m.path, format!("line {}: {msg}", e.line));
    let meta = fs::metadata(&e.source).map_err(|err| {
        at(match err.kind() {
            std::io::ErrorKind::NotFound => format!("source {} does not exist", e.source.display()),
            _ => format!("source {}: {err}", e.source.display()),
        })
    })?;
    let item = |kind: Kind, target: String, mode: u32| Item {
        host: host.cloned(),
        stage: e.stage,
        kind,
        target,
        mode,
        uid: e.uid,
        gid: e.gid,
        size: 0,
        sha256: None,
    };
    if meta.is_file() {
        if e.file_mode.is_some() {
            return Err(at(format!(
                "file_mode applies to directory entries, but {} is a file (use mode)",
                e.source.display()
            )));
        }
        items.push(item(Kind::File, e.target.clone(), e.mode.unwrap_or(DEFAULT_FILE_MODE)));
        sources.push(Some(e.source.clone()));
        return Ok(());
    }
    if !meta.is_dir() {
        return Err(at(format!(
            "source {} is neither a regular file nor a directory",
            e.source.display()
        )));
    }
    items.push(item(Kind::Dir, e.target.clone(), e.mode.unwrap_or(meta.permissions().mode() & 0o777)));
    sources.push(None);
    let mut stack = vec![(e.source.clone(), e.target.clone())];
    while let Some((dir, target)) = stack.pop() {
        let mut children: Vec<_> = fs::read_dir(&dir)
            .map_err(|err| at(format!("cannot list {}: {err}", dir.display())))?
            .collect::<std::io::Result<_>>()
            .map_err(|err| at(format!("cannot list {}: {err}", dir.display())))?;
        children.sort_by_key(|c| c.file_name());
        let mut subdirs = Vec::new();
        for c in children {
            let path = c.path();
            let name = c
                .file_name()
                .into_string()
                .map_err(|_| at(format!("{} has a name that is not UTF-8", path.display())))?;
            let child_target = format!("{target}/{name}");
            let meta = fs::symlink_metadata(&path).map_err(|err| at(format!("{}: {err}", path.display())))?;
            let mode = meta.permissions().mode() & 0o777;
            if meta.file_type().is_symlink() {
                return Err(at(format!(
                    "{} is a symbolic link; bundles hold only regular files and directories (list its target as its own entry)",
                    path.display()
                )));
            } else if meta.is_dir() {
                items.push(item(Kind::Dir, child_target.clone(), mode));
                sources.push(None);
                subdirs.push((path, child_target));
            } else if meta.is_file() {
                items.push(item(Kind::File, child_target, e.file_mode.unwrap_or(mode)));
                sources.push(Some(path));
            } else {
                return Err(at(format!("{} is not a regular file or directory", path.display())));
            }
        }
        // Depth-first in name order; reversed because the stack pops from the end.
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut f = File::open(path).map_err(|e| Error::io("cannot read", path, e))?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h).map_err(|e| Error::io("cannot read", path, e))?;
    Ok((n, hex::encode(h.finalize())))
}

/// Settings for [`write_bundle`].
#[derive(Debug, Clone, Copy)]
pub struct PackOptions {
    pub kdf: KdfParams,
    pub compression: Compression,
}

/// Encrypts `plan` to `out`. The bundle appears at `out` only when complete; until then it
/// is a 0600 temporary in the same folder, removed on any error.
pub fn write_bundle(plan: &PackPlan, out: &Path, passphrase: SecretString, opts: PackOptions, progress: &dyn Fn(u64)) -> Result<u64> {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "bundle".into());
    let temp = dir.join(format!(".{file_name}.vault-{:08x}.tmp", rand::random::<u32>()));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| Error::io("cannot create", &temp, e))?;
    let guard = TempGuard(Some(temp.clone()));
    let stream = bundle::encrypt(BufWriter::with_capacity(1 << 20, file), passphrase, opts.kdf).map_err(|e| Error::io("cannot write", &temp, e))?;
    let stream = archive::write::write(stream, &plan.manifest, &plan.sources, opts.compression, progress)?;
    let mut buffered = stream.finish().map_err(|e| Error::io("cannot write", &temp, e))?;
    buffered.flush().map_err(|e| Error::io("cannot write", &temp, e))?;
    let file = buffered.into_inner().map_err(|e| Error::io("cannot write", &temp, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io("cannot write", &temp, e))?;
    let size = file.metadata().map_err(|e| Error::io("cannot read", &temp, e))?.len();
    fs::rename(&temp, out).map_err(|e| Error::io("cannot create", out, e))?;
    guard.disarm();
    Ok(size)
}

/// Removes a temporary unless disarmed.
struct TempGuard(Option<PathBuf>);

impl TempGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}
