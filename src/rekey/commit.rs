//! All-or-nothing replacement of many files.
//!
//! Phase 1 writes every new file beside its original (`.NAME.vault-rekey-PID-N`, created with
//! `O_EXCL` and the original's mode) as it is produced ([`Staged::add`]), then makes them
//! durable with one `syncfs` per filesystem. Any failure removes them all: the repo is
//! byte-identical. Phase 2 ([`Staged::commit`]) renames them over the originals, then fsyncs
//! the directories.
//!
//! SIGINT, SIGTERM or SIGHUP in phase 1 is an error like any other (the temporaries are
//! removed); once the first rename is done the commit finishes, then the run exits 128 + n.
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

use rayon::prelude::*;

use super::Error;

/// Marker in temporary names; [`is_temp_name`] recognises leftovers from a killed run.
const TEMP_MARK: &str = ".vault-rekey-";

/// Whether `name` is a temporary this module writes.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMP_MARK)
}

/// Temporaries written beside their originals and not yet renamed over them. Dropped
/// without [`Staged::commit`] (a failed job, an error, a panic), it removes them all, so the
/// repo is as it was.
///
/// [`Staged::add`] may be called while other files are still being re-encrypted: the
/// temporaries are written on one thread as results arrive, which hides their creation (one
/// directory lock) behind the CPU work instead of after it.
pub struct Staged<'a> {
    files: Vec<StagedFile<'a>>,
    /// While temporaries exist a signal is only recorded ([`crate::interrupt`]): the next
    /// [`Staged::add`], or the start of the commit, turns it into [`Error::Interrupted`] and
    /// dropping `self` removes them. Once renaming has begun the commit finishes first.
    _signals: crate::interrupt::Polled,
}

impl Default for Staged<'_> {
    fn default() -> Self {
        Staged {
            files: Vec::new(),
            _signals: crate::interrupt::Polled::enter(),
        }
    }
}

fn not_interrupted() -> Result<(), Error> {
    match crate::interrupt::received() {
        Some(signal) => Err(Error::Interrupted { signal }),
        None => Ok(()),
    }
}

struct StagedFile<'a> {
    path: PathBuf,
    /// The original's bytes as they were read when planning (None: it must not exist).
    old: Option<&'a [u8]>,
    temp: PathBuf,
}

impl<'a> Staged<'a> {
    /// Writes `new` as a temporary beside `path` (`n` makes its name unique within this run).
    pub fn add(&mut self, path: &Path, old: &'a [u8], new: &[u8], n: usize) -> Result<(), Error> {
        not_interrupted()?;
        let temp = write_temp(path, path, new, n)?;
        self.files.push(StagedFile {
            path: path.to_path_buf(),
            old: Some(old),
            temp,
        });
        Ok(())
    }

    /// Like [`Staged::add`] for a file that does not exist yet, created with the mode and
    /// owner of `like`; the commit aborts if it appeared meanwhile.
    pub fn add_new(&mut self, path: &Path, like: &Path, new: &[u8], n: usize) -> Result<(), Error> {
        not_interrupted()?;
        let temp = write_temp(path, like, new, n)?;
        self.files.push(StagedFile {
            path: path.to_path_buf(),
            old: None,
            temp,
        });
        Ok(())
    }

    /// Makes every temporary durable, checks that no original changed since it was read,
    /// then renames them over the originals (see the module docs). A file that no longer
    /// holds its old bytes (edited meanwhile) aborts before any rename.
    pub fn commit(mut self) -> Result<Vec<PathBuf>, Error> {
        // Renamed in path order whatever order the results came in, so a killed run leaves a
        // predictable prefix done.
        self.files.sort_by(|a, b| a.path.cmp(&b.path));
        // One syncfs per filesystem instead of an fsync per file: the same guarantee (every
        // new file is on disk before any rename) at a fraction of the cost for many files.
        sync_filesystems(self.files.iter().map(|f| f.temp.as_path()))?;
        // Reads only, so in parallel (on the caller's rayon pool).
        let changed = self
            .files
            .par_iter()
            .filter(|f| match f.old {
                Some(old) => {
                    crate::repo::files::read_no_follow(&f.path).ok().as_deref() != Some(old)
                }
                None => std::fs::symlink_metadata(&f.path).is_ok(),
            })
            .map(|f| f.path.clone())
            .min();
        if let Some(path) = changed {
            return Err(Error::Changed { path });
        }
        // The last point of return: after the first rename, finishing is the rollback, so
        // the command counts as committed from here and a later signal no longer changes its
        // outcome or exit code ([`crate::interrupt::commit`]).
        crate::interrupt::commit(not_interrupted)?;
        let mut dirs = BTreeSet::new();
        let files = std::mem::take(&mut self.files);
        let mut done = Vec::with_capacity(files.len());
        let mut rest = files.into_iter();
        while let Some(f) = rest.next() {
            if let Err(source) = std::fs::rename(&f.temp, &f.path) {
                let path = f.path.clone();
                // Dropping the rest removes their temporaries; this one too.
                self.files = std::iter::once(f).chain(rest).collect();
                return Err(Error::Commit {
                    path,
                    renamed: done.len(),
                    source,
                });
            }
            dirs.insert(parent(&f.path).to_path_buf());
            done.push(f.path);
        }
        for d in dirs {
            // Durability of the renames; the data itself was made durable above.
            if let Ok(f) = std::fs::File::open(&d) {
                let _ = f.sync_all();
            }
        }
        Ok(done)
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(&f.temp);
        }
    }
}

/// `syncfs(2)` once for each filesystem holding one of `files`.
#[cfg(target_os = "linux")]
fn sync_filesystems<'p>(files: impl Iterator<Item = &'p Path>) -> Result<(), Error> {
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

/// Without syncfs (macOS): an fsync of each file, the same guarantee at a higher cost.
#[cfg(not(target_os = "linux"))]
fn sync_filesystems<'p>(files: impl Iterator<Item = &'p Path>) -> Result<(), Error> {
    for f in files {
        std::fs::File::open(f)
            .and_then(|h| h.sync_all())
            .map_err(|source| Error::Write {
                path: f.into(),
                source,
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

/// Writes `bytes` to a temporary beside `path` with the mode and owner of `like`.
fn write_temp(path: &Path, like: &Path, bytes: &[u8], n: usize) -> Result<PathBuf, Error> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = parent(path).join(format!(".{name}{TEMP_MARK}{}-{n}", std::process::id()));
    // The original was read as a regular file; a link in its place now is not followed.
    let meta = std::fs::symlink_metadata(like)
        .and_then(|m| {
            if m.is_file() {
                Ok(m)
            } else {
                Err(std::io::Error::other("no longer a regular file"))
            }
        })
        .map_err(|source| Error::Write {
            path: like.into(),
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

/// Temporaries a killed run left in `dirs` (not recursive), in path order; those of a run
/// still going are not listed. `vault rekey --check` names them (a `git add -A` would commit
/// them); the next real run removes them ([`remove_stale_temps`]).
pub fn stale_temps<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if is_temp_name(&name)
                && !writer_alive(&name)
                && e.file_type().is_ok_and(|t| t.is_file())
            {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Removes the temporaries a killed run left in `dirs` (see [`stale_temps`]). Returns those
/// removed.
pub fn remove_stale_temps<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> Vec<PathBuf> {
    stale_temps(dirs)
        .into_iter()
        .filter(|p| std::fs::remove_file(p).is_ok())
        .collect()
}
