//! The undo record of a `vault host add` while it writes: which files and folders it creates
//! (the key pair, `hosts/NAME/`) and the original text of each file it edits (`vault.toml`,
//! `.sops.yaml`, the agenix keys file).
//!
//! It is written (and made durable) beside `vault.toml` before the first change, as a
//! lock-marked temporary ([`crate::stale`]), and removed as the commit. So:
//!
//! - an error or a caught signal before the commit undoes every change from it;
//! - after SIGKILL or power loss, the next `host add` finds a dead writer's record, undoes
//!   what it lists and removes it, before reading `vault.toml`;
//! - no record, no undo: the host was added in full.

use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::Error;

/// The record's name: `.vault-host-add.vault-PID-RUN-SEQ.tmp`.
const PREFIX: &str = ".vault-host-add";

/// What undoing a host add takes. Paths are kept as bytes: they need not be UTF-8.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Undo {
    /// Files the run creates: removed.
    pub created: Vec<Vec<u8>>,
    /// Folders the run creates, outermost first: removed (innermost first) when empty.
    pub dirs: Vec<Vec<u8>>,
    /// Files the run edits, with their text before: written back where it differs.
    pub restore: Vec<(Vec<u8>, String)>,
}

/// `p` as the record keeps it: absolute (a later run may start elsewhere), as bytes.
pub(super) fn bytes(p: &Path) -> Vec<u8> {
    let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    p.as_os_str().as_bytes().to_vec()
}

fn path(b: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsString::from_vec(b.to_vec()))
}

impl Undo {
    /// Undoes what the record lists; the paths it could not put back.
    fn apply(&self) -> Vec<PathBuf> {
        let mut failed = Vec::new();
        for (p, text) in &self.restore {
            let p = path(p);
            let now = std::fs::read_to_string(&p).ok();
            let back = match now.as_deref() == Some(text.as_str()) {
                // Never replaced (or already put back): only its edit temporaries go.
                true => super::sweep_edits_beside(&p),
                false => super::replace(&p, text),
            };
            if back.is_err() {
                failed.push(p);
            }
        }
        for f in &self.created {
            let f = path(f);
            if let Err(e) = std::fs::remove_file(&f) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    failed.push(f);
                }
            }
        }
        for d in self.dirs.iter().rev() {
            // Left alone when not empty: then it holds files this run did not make.
            let _ = std::fs::remove_dir(path(d));
        }
        failed
    }
}

/// The folder that holds `manifest`.
fn folder(manifest: &Path) -> &Path {
    match manifest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Undoes the host adds a killed run left unfinished beside `manifest`; returns the records
/// found (an unreadable record was written before any change: it is only removed).
pub(super) fn sweep(manifest: &Path) -> Result<Vec<PathBuf>, Error> {
    let dir = folder(manifest);
    // A folder that cannot be read holds no record; loading vault.toml then says why.
    let (Ok(held), Ok(entries)) = (crate::stale::HeldDir::open(dir), std::fs::read_dir(dir)) else {
        return Ok(Vec::new());
    };
    let mut undone = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !held.is_dead_temp(name, PREFIX) || !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let p = e.path();
        let undo: Option<Undo> = std::fs::read(&p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let failed = undo.map(|u| u.apply()).unwrap_or_default();
        if let Some(f) = failed.first() {
            return Err(Error::io(
                "cannot undo an interrupted `vault host add` at",
                f,
                std::io::Error::other(format!("its record {} stays", p.display())),
            ));
        }
        std::fs::remove_file(&p).map_err(|e| Error::io("cannot remove", &p, e))?;
        undone.push(p);
    }
    Ok(undone)
}

/// A host add in progress: its record on disk, signals only recorded (the writer polls
/// [`Journal::check`]). Dropped without [`Journal::commit`], it undoes every change.
pub(super) struct Journal {
    path: PathBuf,
    undo: Undo,
    done: bool,
    _held: crate::stale::HeldDir,
    _polled: crate::interrupt::Polled,
}

impl Journal {
    /// Writes the record of `undo` beside `manifest`, durable before anything changes.
    pub(super) fn begin(manifest: &Path, undo: Undo) -> Result<Journal, Error> {
        let polled = crate::interrupt::Polled::enter();
        let dir = folder(manifest);
        let held =
            crate::stale::HeldDir::open(dir).map_err(|e| Error::io("cannot open", dir, e))?;
        let path = dir.join(crate::stale::temp_name(PREFIX));
        let json =
            serde_json::to_vec(&undo).map_err(|e| Error::io("cannot write", &path, e.into()))?;
        let res = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(&json).and_then(|()| f.sync_all()));
        if let Err(e) = res {
            let _ = std::fs::remove_file(&path);
            return Err(Error::io("cannot write", &path, e));
        }
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        let j = Journal {
            path,
            undo,
            done: false,
            _held: held,
            _polled: polled,
        };
        j.check()?;
        Ok(j)
    }

    /// [`Error::Interrupted`] once a signal arrived.
    pub(super) fn check(&self) -> Result<(), Error> {
        match crate::interrupt::received() {
            Some(signal) => Err(Error::Interrupted { signal }),
            None => Ok(()),
        }
    }

    /// Removes the record: the host is added for good, and a signal from now on no longer
    /// changes the outcome ([`crate::interrupt::commit`]).
    pub(super) fn commit(mut self) -> Result<(), Error> {
        crate::interrupt::commit(|| {
            self.check()?;
            std::fs::remove_file(&self.path).map_err(|e| Error::io("cannot remove", &self.path, e))
        })?;
        self.done = true;
        if let Ok(d) = std::fs::File::open(folder(&self.path)) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // What cannot be put back now stays listed for the next run.
        if self.undo.apply().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
