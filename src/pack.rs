//! `vault pack`: from a validated `vault.toml` to a bundle file.
//!
//! [`plan`] expands the manifest (directories recursively), checks every source and hashes
//! every file, so all errors surface before a byte is written. [`write_bundle`] (`output.rs`)
//! then streams tar → zstd → age into a 0600 temporary beside the output and renames it into
//! place.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::archive::write::Stamp;
use crate::archive::{self, BundleManifest, Item, Kind};
use crate::manifest::{Entry, Manifest};
use crate::{Error, Result};

mod calibrate;
mod checks;
pub mod differences;
mod output;
pub mod recovery;
pub mod repack;
pub use calibrate::{calibrate_kdf, Calibration};
pub use checks::{check_key_modes, check_not_empty, check_output, kdf_weakness, warnings};
pub(crate) use output::write_atomically;
pub use output::{write_bundle, PackOptions};

/// Default mode of a file entry that names none.
pub const DEFAULT_FILE_MODE: u32 = 0o600;

/// What will go into the bundle.
#[derive(Debug, Clone)]
pub struct PackPlan {
    pub manifest: BundleManifest,
    /// The file on disk for each item (`None` for directories).
    pub sources: Vec<Option<PathBuf>>,
    /// For each item: the line in `vault.toml` of the entry it comes from.
    pub lines: Vec<usize>,
    /// For each file that had settled before it was hashed: its stamp then, so streaming
    /// need not hash it again (see [`archive::write::Stamp`]).
    pub settled: Vec<Option<Stamp>>,
    /// For each item: whether it is a file whose first bytes, as hashed, are a private key's
    /// (see [`check_key_modes`]). Taken in the hashing pass, so no file is opened a third time.
    pub private_keys: Vec<bool>,
    pub total_bytes: u64,
}

/// Expands and checks the manifest for `hosts` (empty: all of them).
pub fn plan(m: &Manifest, hosts: &[String]) -> Result<PackPlan> {
    // Whole seconds, rounded down: the racy margin covers the rest.
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    plan_at(m, hosts, start)
}

/// [`plan`], with hashing taken to start at `start` (Unix seconds). Tests use a later time to
/// have freshly written files count as settled.
#[doc(hidden)]
pub fn plan_at(m: &Manifest, hosts: &[String], start: i64) -> Result<PackPlan> {
    let selected: Vec<String> = if hosts.is_empty() {
        m.hosts.keys().cloned().collect()
    } else {
        for h in hosts {
            if !m.hosts.contains_key(h) {
                return Err(Error::UnknownHost {
                    path: m.path.clone(),
                    name: h.clone(),
                    known: m.hosts.keys().cloned().collect(),
                });
            }
        }
        hosts.to_vec()
    };
    let mut items = Vec::new();
    let mut sources = Vec::new();
    // Each file is hashed on rayon's pool as soon as the walk finds it, so that the walk
    // overlaps the hashing: reading the files is most of a large pack's first pass.
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<Hashed>)>();
    let walked = rayon::scope(|sc| -> Result<()> {
        let mut hash = |i: usize, path: &Path| {
            let (tx, path) = (tx.clone(), path.to_path_buf());
            sc.spawn(move |_| {
                let _ = tx.send((i, hash_file(&path)));
            });
        };
        for e in &m.shared {
            expand(m, e, None, &mut items, &mut sources, &mut hash)?;
        }
        for h in &selected {
            for e in &m.hosts[h].entries {
                expand(m, e, Some(h), &mut items, &mut sources, &mut hash)?;
            }
        }
        Ok(())
    });
    drop(tx);
    let mut hashed: Vec<Option<Result<Hashed>>> = (0..items.len()).map(|_| None).collect();
    for (i, h) in rx {
        hashed[i] = Some(h);
    }
    walked?;
    // Parents before children (docs/FORMAT.md §5), whichever entry or host lists them: a
    // path sorts before every path it is a prefix of. Stable, so the order is reproducible.
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| items[a].target.cmp(&items[b].target));
    let mut items: Vec<Item> = order.iter().map(|&i| items[i].clone()).collect();
    let lines: Vec<usize> = order.iter().map(|&i| sources[i].1).collect();
    let sources: Vec<Option<PathBuf>> = order.iter().map(|&i| sources[i].0.clone()).collect();
    let hashed: Vec<Result<Option<Hashed>>> = order
        .iter()
        .map(|&i| hashed[i].take())
        .zip(&lines)
        .map(|(h, line)| match h {
            None => Ok(None),
            Some(h) => h.map(Some).map_err(|e| match e {
                // Named by its entry's line, as every other source problem is.
                Error::Io(crate::error::IoError { path, source, .. }) => {
                    let fix = if source.kind() == std::io::ErrorKind::PermissionDenied {
                        " (check its permissions, or run as the user that owns it)"
                    } else {
                        ""
                    };
                    Error::manifest(
                        &m.path,
                        format!(
                            "line {line}: cannot read source {}: {source}{fix}",
                            path.display()
                        ),
                    )
                }
                other => other,
            }),
        })
        .collect();
    let mut total = 0u64;
    let mut settled = Vec::with_capacity(items.len());
    let mut private_keys = Vec::with_capacity(items.len());
    for (item, h) in items.iter_mut().zip(hashed) {
        let h = h?;
        private_keys.push(h.as_ref().is_some_and(|h| h.private_key));
        settled.push(
            h.as_ref()
                .and_then(|h| h.stamp)
                .filter(|s| s.settled_before(start)),
        );
        if let Some(h) = h {
            item.size = h.size;
            item.sha256 = Some(h.sha256);
            total += h.size;
        }
    }
    let manifest = BundleManifest {
        format: archive::FORMAT,
        created_by: format!("vault {}", env!("CARGO_PKG_VERSION")).into(),
        identities: crate::identity::of_hosts(m, &selected),
        hosts: selected,
        items,
        recovery_recipients: Vec::new(),
    };
    manifest
        .validate(&archive::Limits::default())
        .map_err(|why| Error::manifest(&m.path, why))?;
    Ok(PackPlan {
        manifest,
        sources,
        lines,
        settled,
        private_keys,
        total_bytes: total,
    })
}

fn expand(
    m: &Manifest,
    e: &Entry,
    host: Option<&String>,
    items: &mut Vec<Item>,
    sources: &mut Vec<(Option<PathBuf>, usize)>,
    hash: &mut dyn FnMut(usize, &Path),
) -> Result<()> {
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
        items.push(item(
            Kind::File,
            e.target.clone(),
            e.mode.unwrap_or(DEFAULT_FILE_MODE),
        ));
        hash(sources.len(), &e.source);
        sources.push((Some(e.source.clone()), e.line));
        return Ok(());
    }
    if !meta.is_dir() {
        return Err(at(format!(
            "source {} is neither a regular file nor a directory",
            e.source.display()
        )));
    }
    items.push(item(
        Kind::Dir,
        e.target.clone(),
        e.mode.unwrap_or(meta.permissions().mode() & 0o777),
    ));
    sources.push((None, e.line));
    let mut stack = vec![(e.source.clone(), e.target.clone())];
    while let Some((dir, target)) = stack.pop() {
        let mut children: Vec<_> = fs::read_dir(&dir)
            .map_err(|err| at(format!("cannot list {}: {err}", dir.display())))?
            .collect::<std::io::Result<_>>()
            .map_err(|err| at(format!("cannot list {}: {err}", dir.display())))?;
        children.sort_by_cached_key(|c| c.file_name());
        let mut subdirs = Vec::new();
        for c in children {
            let path = c.path();
            let name = c
                .file_name()
                .into_string()
                .map_err(|_| at(format!("{} has a name that is not UTF-8", path.display())))?;
            let child_target = format!("{target}/{name}");
            // Not followed, and looked up from the open folder rather than by the whole path.
            let meta = c
                .metadata()
                .map_err(|err| at(format!("{}: {err}", path.display())))?;
            let mode = meta.permissions().mode() & 0o777;
            if meta.file_type().is_symlink() {
                return Err(at(format!(
                    "{} is a symbolic link; bundles hold only regular files and directories (list its target as its own entry)",
                    path.display()
                )));
            } else if meta.is_dir() {
                items.push(item(Kind::Dir, child_target.clone(), mode));
                sources.push((None, e.line));
                subdirs.push((path, child_target));
            } else if meta.is_file() {
                items.push(item(Kind::File, child_target, e.file_mode.unwrap_or(mode)));
                hash(sources.len(), &path);
                sources.push((Some(path), e.line));
            } else {
                return Err(at(format!(
                    "{} is not a regular file or directory",
                    path.display()
                )));
            }
        }
        // Depth-first in name order; reversed because the stack pops from the end.
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

struct Hashed {
    size: u64,
    sha256: String,
    /// Taken after reading; `None` if `fstat` failed (then the file is hashed again).
    stamp: Option<Stamp>,
    /// Whether its first bytes are a private key's ([`checks::starts_like_private_key`]).
    private_key: bool,
}

fn hash_file(path: &Path) -> Result<Hashed> {
    // One buffer per hashing thread, reused for every file (a file's bytes may be a secret:
    // it is wiped when the thread ends), large enough that reading costs few system calls.
    thread_local! {
        static BUF: std::cell::RefCell<zeroize::Zeroizing<Vec<u8>>> =
            std::cell::RefCell::new(zeroize::Zeroizing::new(vec![0; 256 << 10]));
    }
    let mut f = File::open(path).map_err(|e| Error::io("cannot read", path, e))?;
    let mut h = Sha256::new();
    let mut n = 0u64;
    // The head the private-key check reads, kept apart only if the first read was short.
    let mut head = Vec::new();
    let mut private_key = false;
    BUF.with_borrow_mut(|buf| loop {
        match std::io::Read::read(&mut f, buf) {
            Ok(0) => {
                if n < checks::KEY_HEAD as u64 {
                    private_key = checks::starts_like_private_key(&head);
                }
                head.zeroize();
                return Ok(());
            }
            Ok(k) => {
                let chunk = &buf[..k];
                h.update(chunk);
                if n < checks::KEY_HEAD as u64 {
                    if n == 0 && k >= checks::KEY_HEAD {
                        private_key = checks::starts_like_private_key(&chunk[..checks::KEY_HEAD]);
                    } else {
                        let more = (checks::KEY_HEAD - head.len()).min(k);
                        head.extend_from_slice(&chunk[..more]);
                        if head.len() == checks::KEY_HEAD {
                            private_key = checks::starts_like_private_key(&head);
                        }
                    }
                }
                n += k as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    })
    .map_err(|e| Error::io("cannot read", path, e))?;
    Ok(Hashed {
        size: n,
        sha256: hex::encode(h.finalize()),
        stamp: Stamp::of(&f).ok(),
        private_key,
    })
}
