//! All-or-nothing replacement of many files.
//!
//! Phase 1 writes every new file beside its original (`.NAME.vault-rekey-PID-N`, created with
//! `O_EXCL` and the original's mode), then makes them durable with one `syncfs` per
//! filesystem. Any failure removes them all: the repo is byte-identical. Phase 2 renames them
//! over the originals, then fsyncs the directories.
//!
//! SIGKILL (or power loss) in phase 1 leaves every original untouched, plus stray temporaries
//! that the next run removes. In phase 2 each `rename(2)` is atomic, so every file is either
//! its complete old or its complete new version, never a mix within one file; the repo as a
//! whole may be part old, part new, and running `vault rekey` again finishes it (old files are
//! still encrypted to their old recipients, which still open them).

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::Error;

/// Marker in temporary names; [`is_temp_name`] recognises leftovers from a killed run.
const TEMP_MARK: &str = ".vault-rekey-";

/// Whether `name` is a temporary this module writes.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMP_MARK)
}

/// One file to replace: its bytes as they were read when planning, and its new bytes.
pub struct Output {
    pub path: PathBuf,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
}

/// Replaces every file, all or nothing (see the module docs). A file that no longer holds
/// `old` (edited meanwhile) aborts the whole commit before any rename.
pub fn commit(mut outputs: Vec<Output>) -> Result<Vec<PathBuf>, Error> {
    outputs.sort_by(|a, b| a.path.cmp(&b.path));
    let mut temps: Vec<PathBuf> = Vec::with_capacity(outputs.len());
    let abort = |temps: &[PathBuf], e: Error| {
        for t in temps {
            let _ = std::fs::remove_file(t);
        }
        Err(e)
    };
    for (i, out) in outputs.iter().enumerate() {
        match write_temp(&out.path, &out.new, i) {
            Ok(t) => temps.push(t),
            Err(e) => return abort(&temps, e),
        }
    }
    // One syncfs per filesystem instead of an fsync per file: the same guarantee (every new
    // file is on disk before any rename) at a fraction of the cost for a thousand files.
    if let Err(e) = sync_filesystems(&temps) {
        return abort(&temps, e);
    }
    for out in &outputs {
        if std::fs::read(&out.path).ok().as_deref() != Some(out.old.as_slice()) {
            return abort(
                &temps,
                Error::Changed {
                    path: out.path.clone(),
                },
            );
        }
    }
    let mut dirs = BTreeSet::new();
    for (n, (Output { path, .. }, temp)) in outputs.iter().zip(&temps).enumerate() {
        if let Err(source) = std::fs::rename(temp, path) {
            for t in &temps[n..] {
                let _ = std::fs::remove_file(t);
            }
            return Err(Error::Commit {
                path: path.clone(),
                renamed: n,
                source,
            });
        }
        dirs.insert(parent(path).to_path_buf());
    }
    for d in dirs {
        // Durability of the renames; the data itself was fsynced in phase 1.
        if let Ok(f) = std::fs::File::open(&d) {
            let _ = f.sync_all();
        }
    }
    Ok(outputs.into_iter().map(|o| o.path).collect())
}

/// `syncfs(2)` once for each filesystem holding one of `files`.
fn sync_filesystems(files: &[PathBuf]) -> Result<(), Error> {
    let mut done = BTreeSet::new();
    for f in files {
        let dir = parent(f);
        let meta = std::fs::metadata(dir).map_err(|source| Error::Write {
            path: dir.into(),
            source,
        })?;
        if !done.insert(meta.dev()) {
            continue;
        }
        let d = std::fs::File::open(dir).map_err(|source| Error::Write {
            path: dir.into(),
            source,
        })?;
        rustix::fs::syncfs(&d).map_err(|e| Error::Write {
            path: dir.into(),
            source: e.into(),
        })?;
    }
    Ok(())
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn write_temp(path: &Path, bytes: &[u8], n: usize) -> Result<PathBuf, Error> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = parent(path).join(format!(".{name}{TEMP_MARK}{}-{n}", std::process::id()));
    let meta = std::fs::metadata(path).map_err(|source| Error::Write {
        path: path.into(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .map_err(|source| Error::Write {
            path: temp.clone(),
            source,
        })?;
    // Keep the owner too when allowed (a rekey run as root in a user's repo); best effort.
    let _ = std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid()));
    // `mode` went through the umask; the original's exact bits are what we keep.
    let res = f
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .and_then(|()| f.write_all(bytes));
    if let Err(source) = res {
        let _ = std::fs::remove_file(&temp);
        return Err(Error::Write { path: temp, source });
    }
    Ok(temp)
}

/// Whether the run that wrote temporary `name` is still alive (its pid is in the name).
fn writer_alive(name: &str) -> bool {
    let pid = name
        .rsplit_once(TEMP_MARK)
        .and_then(|(_, rest)| rest.split('-').next())
        .and_then(|p| p.parse::<u32>().ok());
    match pid {
        Some(pid) => Path::new(&format!("/proc/{pid}")).exists(),
        None => false,
    }
}

/// Removes temporaries a killed run left in `dir` (not recursive); those of a run still
/// going are left alone. Returns how many were removed.
pub fn remove_stale_temps(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if is_temp_name(&name)
            && !writer_alive(&name)
            && e.file_type().is_ok_and(|t| t.is_file())
            && std::fs::remove_file(e.path()).is_ok()
        {
            n += 1;
        }
    }
    n
}
